// Package ci checks the CI templates in docs/ci/: that they are valid YAML with the pipeline
// shape the README promises, and that every otabake command line they run names a real
// subcommand and real flags of the CLI, so a renamed flag cannot silently break users who
// copied a template.
package ci

import (
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// Invocation is one otabake command line found in a script.
type Invocation struct {
	// Line is the command as written, for messages.
	Line string
	// Args are the shell words after "otabake".
	Args []string
}

// Check returns the command path (e.g. "schema validate") and the positional arguments
// of inv, after checking every token against app: global flags before the first command,
// subcommands by name or alias, and the final command's flags with their values.
func Check(app *ucli.App, inv Invocation) (path []string, positional []string, err error) {
	flags := app.Flags
	cmds := app.Commands
	var cmd *ucli.Command
	args := inv.Args
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name, _, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
			f := findFlag(flags, name)
			if f == nil {
				where := "otabake"
				if cmd != nil {
					where = "otabake " + strings.Join(path, " ")
				}
				return nil, nil, fmt.Errorf("%q: %s has no flag %s", inv.Line, where, a)
			}
			if takesValue(f) && !hasVal {
				if i+1 >= len(args) {
					return nil, nil, fmt.Errorf("%q: flag %s needs a value", inv.Line, a)
				}
				i++
			}
			continue
		}
		if len(positional) == 0 && (cmd == nil || len(cmd.Subcommands) > 0) {
			next := findCommand(cmds, a)
			if next == nil {
				where := "otabake"
				if cmd != nil {
					where = "otabake " + strings.Join(path, " ")
				}
				return nil, nil, fmt.Errorf("%q: %s has no subcommand %q", inv.Line, where, a)
			}
			cmd, cmds, flags = next, next.Subcommands, next.Flags
			path = append(path, next.Name)
			continue
		}
		positional = append(positional, a)
	}
	if cmd == nil {
		return nil, nil, fmt.Errorf("%q: no otabake subcommand", inv.Line)
	}
	if len(cmd.Subcommands) > 0 && cmd.Action == nil {
		return nil, nil, fmt.Errorf("%q: otabake %s needs a subcommand", inv.Line, strings.Join(path, " "))
	}
	return path, positional, nil
}

func findFlag(flags []ucli.Flag, name string) ucli.Flag {
	if name == "help" || name == "h" {
		return ucli.HelpFlag
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func takesValue(f ucli.Flag) bool {
	if dv, ok := f.(ucli.DocGenerationFlag); ok {
		return dv.TakesValue()
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

// Invocations returns the otabake command lines of a shell script: every simple command
// (separated by newlines, ;, &&, ||, |, or opened by $( or a shell keyword) whose first word,
// after variable assignments, is "otabake".
func Invocations(script string) ([]Invocation, error) {
	words, err := splitShell(script)
	if err != nil {
		return nil, err
	}
	var out []Invocation
	var cur []string
	flush := func() {
		for len(cur) > 0 && (isKeyword(cur[0]) || isAssignment(cur[0])) {
			cur = cur[1:]
		}
		if len(cur) > 0 && cur[0] == "otabake" {
			out = append(out, Invocation{Line: strings.Join(cur, " "), Args: append([]string(nil), cur[1:]...)})
		}
		cur = nil
	}
	for _, w := range words {
		if w.op {
			flush()
			continue
		}
		cur = append(cur, w.s)
	}
	flush()
	return out, nil
}

func isKeyword(s string) bool {
	switch s {
	case "if", "then", "else", "elif", "do", "while", "until", "!", "time", "{", "exec":
		return true
	}
	return false
}

func isAssignment(s string) bool {
	name, _, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

type word struct {
	s  string
	op bool // a command separator
}

// splitShell splits a script into words and separators with POSIX quoting, enough for the
// command lines of CI templates: quotes, backslash escapes and line continuations, comments,
// and the separators of simple commands. Substitutions inside quotes stay part of the word.
func splitShell(s string) ([]word, error) {
	var out []word
	var b strings.Builder
	inWord := false
	emit := func() {
		if inWord {
			out = append(out, word{s: b.String()})
			b.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++
		case c == '\\' && i+1 < len(s):
			b.WriteByte(s[i+1])
			inWord = true
			i++
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' quote at byte %d", i)
			}
			b.WriteString(s[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated \" quote at byte %d", i)
			}
			b.WriteString(s[i+1 : j])
			inWord = true
			i = j
		case c == '#' && !inWord:
			for i < len(s) && s[i] != '\n' {
				i++
			}
			i--
		case c == ' ' || c == '\t':
			emit()
		case c == '\n' || c == ';' || c == '|' || c == '&' || c == '(' || c == ')' || c == '`':
			emit()
			out = append(out, word{op: true})
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			emit()
			out = append(out, word{op: true})
			i++
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	emit()
	return out, nil
}
