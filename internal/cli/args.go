package cli

import (
	"fmt"
	"io"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// Flags anywhere.
//
// urfave/cli v2 parses flags with Go's flag package, which stops at the first argument that is
// not a flag, and it parses the global flags only before the command name. So that every
// command takes its own flags and the global flags before or after its arguments, Main (and
// Parse) run the command line through reorderArgs first, the one place that does this for all
// commands. It rewrites
//
//	otabake [flags] CMD [SUB…] [flags and arguments in any order] [-- arguments]
//
// into the order urfave/cli parses:
//
//	otabake [global flags] CMD [SUB…] [CMD's flags] [--] [arguments]
//
// using each command's flag definitions: which flags take a value (the next word, or after
// "=") and which are booleans. A flag after the command name belongs to the command when the
// command defines it (config show --json) and to the app otherwise (--json, --project-dir/-C,
// --log-level, --no-progress, --version); --help/-h belongs to the command it follows, whose
// arguments it then drops.
// Everything after "--" is an argument, even when it starts with "-". A flag nobody defines
// stays where urfave/cli reports it as a usage error. The relative order of the flags is kept,
// so a repeated flag (upload-release -s a -s b) collects its values in the order written.
// Commands therefore read their arguments with c.Args() and declare required flags with
// Required, as usual.

// reorderArgs returns args (args[0] is the program name) with every flag moved in front of the
// arguments of the command it belongs to; see above. It fails only for a flag that needs a value
// and is the last word: moved in front of the arguments, it would take one of them as its value.
func reorderArgs(app *ucli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	in := args[1:]
	var tail []string
	if n := len(in); in[n-1] == "--generate-bash-completion" {
		// Shell completion wants this last, after the partial word being completed.
		in, tail = in[:n-1], in[n-1:]
	}
	var (
		global     []string
		segs       [][]string // one per command in the path: its name, then its flags
		cur        *ucli.Command
		positional []string
		rest       []string
		dashdash   bool
		helpOf     = -1 // the index in segs of the command that --help/-h follows
	)
	subcommands := app.Commands
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			dashdash, rest = true, in[i+1:]
			break
		}
		if isFlagWord(a) {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			var f ucli.Flag
			dst := &global
			if cur != nil {
				dst = &segs[len(segs)-1]
				if f = commandFlag(cur, name); f == nil {
					if f = appFlag(app, name); f != nil {
						dst = &global
					}
				}
			} else {
				f = appFlag(app, name)
			}
			*dst = append(*dst, a)
			if f == ucli.HelpFlag && dst != &global && !strings.HasSuffix(a, "=false") {
				helpOf = len(segs) - 1
			}
			if f != nil && flagTakesValue(f) && !hasValue {
				if i+1 >= len(in) {
					where := "otabake"
					for _, s := range segs {
						where += " " + s[0]
					}
					return nil, fmt.Errorf("flag %s needs a value (see '%s --help')", a, where)
				}
				i++
				*dst = append(*dst, in[i])
			}
			continue
		}
		if len(positional) == 0 && (cur == nil || len(cur.Subcommands) > 0) {
			if next := findCommand(subcommands, a); next != nil {
				cur, subcommands = next, next.Subcommands
				segs = append(segs, []string{a})
				continue
			}
		}
		positional = append(positional, a)
	}
	if helpOf >= 0 && helpOf == len(segs)-1 {
		// "build-release SYSTEM --help" shows the command's help; urfave/cli would take SYSTEM
		// for the name of a subcommand to show the help of.
		positional, rest, dashdash = nil, nil, false
	}
	out := append([]string{args[0]}, global...)
	for _, s := range segs {
		out = append(out, s...)
	}
	if dashdash {
		out = append(out, "--")
	}
	out = append(out, positional...)
	out = append(out, rest...)
	return append(out, tail...), nil
}

// isFlagWord reports whether Go's flag package would take a as a flag: "-x", "--x", "-x=v";
// not "-" (stdin) and not "--".
func isFlagWord(a string) bool {
	return len(a) > 1 && a[0] == '-' && a != "--"
}

// commandFlag returns cmd's flag called name, with the --help/-h every command has.
func commandFlag(cmd *ucli.Command, name string) ucli.Flag {
	if f := lookupFlag(cmd.Flags, name); f != nil {
		return f
	}
	if !cmd.HideHelp && (name == "help" || name == "h") {
		return ucli.HelpFlag
	}
	return nil
}

// appFlag returns the global flag called name, with --help/-h and --version/-v that urfave/cli
// adds to the app.
func appFlag(app *ucli.App, name string) ucli.Flag {
	if f := lookupFlag(app.Flags, name); f != nil {
		return f
	}
	switch {
	case !app.HideHelp && (name == "help" || name == "h"):
		return ucli.HelpFlag
	case !app.HideVersion && app.Version != "" && (name == "version" || name == "v"):
		return ucli.VersionFlag
	}
	return nil
}

func lookupFlag(flags []ucli.Flag, name string) ucli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// flagTakesValue reports whether f reads the next word as its value (all but booleans).
func flagTakesValue(f ucli.Flag) bool {
	if df, ok := f.(ucli.DocGenerationFlag); ok {
		return df.TakesValue()
	}
	return true
}

func findCommand(cmds []*ucli.Command, name string) *ucli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// Parsed is a command line as otabake's parser understands it.
type Parsed struct {
	// Command is the command path, e.g. ["config", "show"]; empty when only help or the
	// version was asked for.
	Command []string
	// Args are the command's positional arguments.
	Args []string
	// Flags are the command's flags that are set (on the command line or from the
	// environment), by their first name, with their values as text (lists joined by ",").
	Flags map[string]string
	// Globals are the global flags that are set, likewise.
	Globals map[string]string
	// Help is true when the command line asks for help or the version instead of a command.
	Help bool
}

// Parse runs args (args[0] being the program name) through the parser Main uses: the same
// argument reordering, flag definitions, required-flag and --log-level checks, but every
// command's action replaced by one that only records what was parsed. Nothing is read or
// written; the error is a usage error.
func Parse(args []string) (*Parsed, error) {
	app := NewApp(strings.NewReader(""), io.Discard, io.Discard)
	var got *Parsed
	var globals map[string]string
	before := app.Before // checks --log-level
	app.Before = func(c *ucli.Context) error {
		globals = setFlags(c, app.Flags)
		return before(c)
	}
	var record func(path []string, cmds []*ucli.Command)
	record = func(path []string, cmds []*ucli.Command) {
		for _, cmd := range cmds {
			cmd := cmd
			p := append(append([]string(nil), path...), cmd.Name)
			cmd.Before, cmd.After = nil, nil
			if cmd.Action != nil || len(cmd.Subcommands) == 0 {
				cmd.Action = func(c *ucli.Context) error {
					got = &Parsed{Command: p, Args: c.Args().Slice(), Flags: setFlags(c, cmd.Flags), Globals: globals}
					return nil
				}
			}
			record(p, cmd.Subcommands)
		}
	}
	record(nil, app.Commands)
	norm, err := reorderArgs(app, args)
	if err != nil {
		return nil, err
	}
	if err := app.Run(norm); err != nil {
		return nil, err
	}
	if got != nil {
		return got, nil
	}
	for _, a := range norm[1:] {
		if a == "--" {
			break
		}
		switch strings.TrimLeft(a, "-") {
		case "help", "h", "version", "v":
			return &Parsed{Help: true}, nil
		}
	}
	return nil, fmt.Errorf("%q needs a subcommand", strings.Join(args, " "))
}

// setFlags returns the flags of flags that are set in c, by first name, as text.
func setFlags(c *ucli.Context, flags []ucli.Flag) map[string]string {
	m := map[string]string{}
	for _, f := range flags {
		name := f.Names()[0]
		if !c.IsSet(name) {
			continue
		}
		switch f.(type) {
		case *ucli.StringSliceFlag:
			m[name] = strings.Join(c.StringSlice(name), ",")
		default:
			m[name] = fmt.Sprint(c.Value(name))
		}
	}
	return m
}
