// Package ci checks the CI templates in docs/ci/: that they are valid YAML with the pipeline
// shape the README promises, and that every otabake command line they, the READMEs, docs and
// drop-in scripts run parses with the real CLI parser, so a renamed flag cannot silently break
// users who copied a template.
package ci

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/otabake/otabake/internal/cli"
)

// Invocation is one otabake command line found in a script.
type Invocation struct {
	// Line is the command as written, for messages.
	Line string
	// Args are the shell words after "otabake".
	Args []string
}

// Check runs inv through otabake's real parser (cli.Parse: the argument reordering, flag
// definitions and checks of the otabake binary, with no command action) and returns the command
// path (e.g. "schema validate") and the positional arguments; the error is a usage error.
func Check(inv Invocation) (path []string, positional []string, err error) {
	p, err := cli.Parse(append([]string{"otabake"}, inv.Args...))
	if err != nil {
		return nil, nil, fmt.Errorf("%q: %w", inv.Line, err)
	}
	if p.Help {
		return nil, nil, nil
	}
	return p.Command, p.Args, nil
}

// otabakeWord matches the command words that run otabake: otabake itself and the drop-in
// scripts' "${OTABAKE:-otabake}".
var otabakeWord = regexp.MustCompile(`^(otabake|\$\{[A-Za-z_][A-Za-z0-9_]*:-otabake\})$`)

// scriptArgs matches the words that stand for the script's own arguments ("$@", "$*",
// "${args[@]}", "${args[@]+"${args[@]}"}"): none, one or many words the check cannot know, so
// they are left out.
var scriptArgs = regexp.MustCompile(`^(\$[@*]|\$\{[A-Za-z_][A-Za-z0-9_]*\[[@*]\].*\})$`)

// Invocations returns the otabake command lines of a shell script: every simple command
// (separated by newlines, ;, &&, ||, |, or opened by $( or a shell keyword) whose first word,
// after variable assignments, is "otabake" (or "${OTABAKE:-otabake}"). Words that stand for the
// script's own arguments ("$@") are left out; other variables stay as they are written, one word.
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
		if len(cur) > 0 && otabakeWord.MatchString(cur[0]) {
			var args []string
			for _, a := range cur[1:] {
				if !scriptArgs.MatchString(a) {
					args = append(args, a)
				}
			}
			out = append(out, Invocation{Line: strings.Join(cur, " "), Args: args})
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
	var out, subs []word // subs: the commands substituted inside double quotes
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
				switch {
				case s[j] == '\\' && j+1 < len(s):
					j++
				case s[j] == '$' && j+1 < len(s) && s[j+1] == '(':
					// A command substitution in quotes ("systems=$(otabake --json config show | jq …)")
					// stays part of the word and is a script of its own.
					k := closingParen(s, j+2)
					if k < 0 {
						return nil, fmt.Errorf("unterminated $( at byte %d", j)
					}
					inner, err := splitShell(s[j+2 : k])
					if err != nil {
						return nil, err
					}
					subs = append(append(append(subs, word{op: true}), inner...), word{op: true})
					j = k
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
	return append(out, subs...), nil
}

// closingParen returns the index of the ")" that closes the "(" before s[start:], skipping
// quoted text and nested parentheses, or -1.
func closingParen(s string, start int) int {
	depth := 1
	for i := start; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return -1
			}
			i += j + 1
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}
