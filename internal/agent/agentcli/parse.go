package agentcli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// The agent's command line is parsed with the standard library's flag package rather than a
// CLI framework: the agent ships on every device, and a framework's templates and reflection
// cost about a megabyte of binary for four commands.

// flagDef is one command-line flag. Usage may name the value's placeholder in backquotes
// ("prefix every path with `DIR`"); help shows it after the flag name.
type flagDef struct {
	name    string
	usage   string
	def     string // default of a string flag
	env     string // environment variable read when the flag is not given
	boolean bool
}

// command is one node of the command tree: a runnable leaf or a group of subcommands.
type command struct {
	name        string
	usage       string // one line, shown in the parent's command list
	description string // paragraphs shown in the command's own help
	flags       []flagDef
	subs        []*command
	run         func(e *env, inv *invocation) error
}

// invocation is a parsed command line: the command to run with every flag's value resolved
// from the arguments, the environment and the defaults, in that order.
type invocation struct {
	cmd    *command
	path   []string // command names from the root, "otabake-agent" first
	values map[string]string
	// help and version are set when the line asks for help (of cmd) or the version instead.
	help, version bool
}

// str returns the value of a string flag of the invocation (global or the command's own).
func (inv *invocation) str(name string) string { return inv.values[name] }

// boolean returns the value of a boolean flag of the invocation.
func (inv *invocation) boolean(name string) bool { return inv.values[name] == "true" }

// usageError is a command line that does not match the command tree; Main exits with 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(path []string, format string, args ...any) error {
	name := strings.Join(path, " ")
	return &usageError{fmt.Sprintf("%s: %s (see '%s --help')", name, fmt.Sprintf(format, args...), name)}
}

// parse resolves args (without the program name) against the tree rooted at root. Flags of a
// command come after its name and before its subcommand, like `agent --root D status --json`.
// getenv supplies the flags' environment variables.
func parse(root *command, args []string, getenv func(string) string) (*invocation, error) {
	inv := &invocation{cmd: root, path: []string{root.name}, values: map[string]string{}}
	for {
		c := inv.cmd
		fs := flag.NewFlagSet(strings.Join(inv.path, " "), flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Usage = func() {}
		strs := map[string]*string{}
		bools := map[string]*bool{}
		for _, f := range c.flags {
			if f.boolean {
				bools[f.name] = fs.Bool(f.name, false, f.usage)
			} else {
				strs[f.name] = fs.String(f.name, f.def, f.usage)
			}
		}
		var help, version bool
		fs.BoolVar(&help, "help", false, "show help")
		fs.BoolVar(&help, "h", false, "show help")
		if c == root {
			fs.BoolVar(&version, "version", false, "print the version")
			fs.BoolVar(&version, "v", false, "print the version")
		}
		if err := fs.Parse(args); err != nil {
			return nil, usagef(inv.path, "%v", err)
		}
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for _, f := range c.flags {
			switch {
			case f.boolean:
				inv.values[f.name] = fmt.Sprint(*bools[f.name])
			case !given[f.name] && f.env != "" && getenv(f.env) != "":
				inv.values[f.name] = getenv(f.env)
			default:
				inv.values[f.name] = *strs[f.name]
			}
		}
		if help || version {
			inv.help, inv.version = help, version && !help
			return inv, nil
		}
		args = fs.Args()
		if len(args) > 0 && (args[0] == "help" || args[0] == "h") {
			return helpFor(inv, args[1:])
		}
		if len(c.subs) == 0 {
			if len(args) > 0 {
				return nil, usagef(inv.path, "unexpected argument %q", args[0])
			}
			return inv, nil
		}
		if len(args) == 0 {
			// A group without a subcommand shows its help: the list of what it holds.
			inv.help = true
			return inv, nil
		}
		sub := c.sub(args[0])
		if sub == nil {
			return nil, usagef(inv.path, "unknown command %q", args[0])
		}
		inv.cmd, inv.path, args = sub, append(inv.path, sub.name), args[1:]
	}
}

// helpFor resolves `help [command…]` relative to inv's command.
func helpFor(inv *invocation, names []string) (*invocation, error) {
	for _, n := range names {
		sub := inv.cmd.sub(n)
		if sub == nil {
			return nil, usagef(inv.path, "no help for unknown command %q", n)
		}
		inv.cmd, inv.path = sub, append(inv.path, sub.name)
	}
	inv.help = true
	return inv, nil
}

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// writeHelp prints the help of inv's command: name and usage line, synopsis, description,
// subcommands and every flag with its help, default and environment variable.
func writeHelp(w io.Writer, inv *invocation, version string) error {
	c, name := inv.cmd, strings.Join(inv.path, " ")
	isRoot := len(inv.path) == 1
	var b strings.Builder
	fmt.Fprintf(&b, "NAME:\n   %s - %s\n\nUSAGE:\n", name, c.usage)
	switch {
	case isRoot:
		fmt.Fprintf(&b, "   %s [global options] command [command options]\n", name)
	case len(c.subs) > 0:
		fmt.Fprintf(&b, "   %s subcommand [command options]\n", name)
	default:
		fmt.Fprintf(&b, "   %s [command options]\n", name)
	}
	if isRoot {
		fmt.Fprintf(&b, "\nVERSION:\n   %s\n", version)
	}
	if c.description != "" {
		fmt.Fprintf(&b, "\nDESCRIPTION:\n   %s\n", strings.ReplaceAll(c.description, "\n", "\n   "))
	}
	if len(c.subs) > 0 {
		rows := make([][2]string, 0, len(c.subs)+1)
		for _, s := range c.subs {
			rows = append(rows, [2]string{s.name, s.usage})
		}
		rows = append(rows, [2]string{"help, h", "Shows a list of commands or help for one command"})
		b.WriteString("\nCOMMANDS:\n")
		writeRows(&b, rows)
	}
	rows := make([][2]string, 0, len(c.flags)+2)
	for _, f := range c.flags {
		rows = append(rows, flagRow(f))
	}
	rows = append(rows, [2]string{"--help, -h", "show help"})
	if isRoot {
		rows = append(rows, [2]string{"--version, -v", "print the version"})
		b.WriteString("\nGLOBAL OPTIONS:\n")
	} else {
		b.WriteString("\nOPTIONS:\n")
	}
	writeRows(&b, rows)
	_, err := io.WriteString(w, b.String())
	return err
}

// flagRow renders a flag as "--name PLACEHOLDER" and "help (default: …) [$ENV]".
func flagRow(f flagDef) [2]string {
	usage, placeholder := f.usage, "value"
	if i := strings.IndexByte(usage, '`'); i >= 0 {
		if j := strings.IndexByte(usage[i+1:], '`'); j >= 0 {
			placeholder = usage[i+1 : i+1+j]
			usage = usage[:i] + placeholder + usage[i+2+j:]
		}
	}
	left := "--" + f.name
	switch {
	case f.boolean:
		usage += " (default: false)"
	default:
		left += " " + placeholder
		if f.def != "" {
			usage += fmt.Sprintf(" (default: %q)", f.def)
		}
	}
	if f.env != "" {
		usage += " [$" + f.env + "]"
	}
	return [2]string{left, usage}
}

func writeRows(b *strings.Builder, rows [][2]string) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(b, "   %-*s  %s\n", width, r[0], r[1])
	}
}

// isUsage reports whether err is a malformed command line.
func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}
