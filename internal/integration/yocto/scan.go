package yocto

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// shellCtx is an open shell construct: a quote, a substitution or an expansion.
type shellCtx struct {
	kind  byte // '"' double quote, '`' backquote, '(' $( … ), '{' ${ … }
	line  int
	depth int // nested parentheses inside $( … )
}

// heredocRE matches a here-document operator and its delimiter word, quoted or not.
var heredocRE = regexp.MustCompile(`^<<(-?)\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)['"]?`)

var shellCtxName = map[byte]string{'"': `"`, '`': "`", '(': "$(", '{': "${"}

// checkShell reports unbalanced quotes, command substitutions and parameter expansions in a
// shell function body. Line numbers are relative to the body.
func checkShell(body string) error {
	var stack []shellCtx
	line := 1
	wordStart := true
	top := func() byte {
		if len(stack) == 0 {
			return 0
		}
		return stack[len(stack)-1].kind
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\n' {
			line++
		}
		cur := top()
		atWordStart := wordStart
		wordStart = strings.IndexByte(" \t\n;&|()", c) >= 0
		switch {
		case c == '\\':
			if i+1 < len(body) && body[i+1] == '\n' {
				line++
			}
			i++
		case c == '<' && (cur == 0 || cur == '(') && heredocRE.MatchString(body[i:]):
			m := heredocRE.FindStringSubmatch(body[i:])
			delim, docLine := m[3], line
			nl := strings.IndexByte(body[i:], '\n')
			if nl < 0 {
				return fmt.Errorf("line %d: here-document %s has no body", docLine, delim)
			}
			// The rest of the introducing line is shell code.
			if err := checkShell(body[i+len(m[0]) : i+nl]); err != nil {
				return fmt.Errorf("line %d: %v", docLine, err)
			}
			// The document ends at a line holding only the delimiter (leading tabs stripped
			// with <<-). line counts the document's lines; scanning resumes at the newline
			// that ends the delimiter line.
			start := i + nl + 1
			for {
				line++
				j := strings.IndexByte(body[start:], '\n')
				l := body[start:]
				if j >= 0 {
					l = body[start : start+j]
				}
				if m[1] == "-" {
					l = strings.TrimLeft(l, "\t")
				}
				if l == delim {
					if j < 0 {
						i = len(body)
					} else {
						i = start + j - 1
					}
					break
				}
				if j < 0 {
					return fmt.Errorf("line %d: here-document %s is not terminated", docLine, delim)
				}
				start += j + 1
			}
		case c == '$' && i+1 < len(body) && body[i+1] == '(':
			stack = append(stack, shellCtx{kind: '(', line: line})
			i++
		case c == '$' && i+1 < len(body) && body[i+1] == '{':
			stack = append(stack, shellCtx{kind: '{', line: line})
			i++
		case cur == '"':
			if c == '"' {
				stack = stack[:len(stack)-1]
			} else if c == '`' {
				stack = append(stack, shellCtx{kind: '`', line: line})
			}
		case c == '`' && cur == '`':
			stack = stack[:len(stack)-1]
		case c == '"':
			stack = append(stack, shellCtx{kind: '"', line: line})
		case c == '`':
			stack = append(stack, shellCtx{kind: '`', line: line})
		case c == '\'':
			j := strings.IndexByte(body[i+1:], '\'')
			if j < 0 {
				return fmt.Errorf("line %d: unterminated ' quote", line)
			}
			line += strings.Count(body[i+1:i+1+j], "\n")
			i += j + 1
		case c == '#' && atWordStart && cur != '{':
			j := strings.IndexByte(body[i:], '\n')
			if j < 0 {
				i = len(body)
			} else {
				i += j - 1
			}
		case cur == '(' && c == '(':
			stack[len(stack)-1].depth++
		case cur == '(' && c == ')':
			if stack[len(stack)-1].depth > 0 {
				stack[len(stack)-1].depth--
			} else {
				stack = stack[:len(stack)-1]
			}
		case cur == '{' && c == '}':
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		s := stack[len(stack)-1]
		return fmt.Errorf("line %d: unterminated %s", s.line, shellCtxName[s.kind])
	}
	return nil
}

// checkPython reports unbalanced brackets and strings and inconsistent indentation in a
// Python function body. With indented, the body's first line must be indented (BitBake
// function bodies are). Line numbers are relative to the body.
func checkPython(body string, indented bool) error {
	lines := strings.Split(body, "\n")
	var (
		brackets   []byte
		bracketAt  []int
		triple     string // the open triple quote, if any
		tripleAt   int
		continued  bool // previous physical line ended with a backslash
		indents    []int
		opensBlock bool
		lastSig    byte
		indentCh   byte
	)
	closing := map[byte]byte{')': '(', ']': '[', '}': '{'}
	for n, l := range lines {
		ln := n + 1
		i := 0
		if triple == "" && len(brackets) == 0 && !continued {
			trimmed := strings.TrimLeft(l, " \t")
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			ws := l[:len(l)-len(trimmed)]
			for k := 0; k < len(ws); k++ {
				if indentCh == 0 {
					indentCh = ws[k]
				} else if ws[k] != indentCh {
					return fmt.Errorf("line %d: indentation mixes tabs and spaces", ln)
				}
			}
			ind := len(ws)
			switch {
			case len(indents) == 0:
				if indented && ind == 0 {
					return fmt.Errorf("line %d: the body must be indented", ln)
				}
				indents = append(indents, ind)
			case opensBlock:
				if ind <= indents[len(indents)-1] {
					return fmt.Errorf("line %d: expected an indented block", ln)
				}
				indents = append(indents, ind)
			case ind > indents[len(indents)-1]:
				return fmt.Errorf("line %d: unexpected indent", ln)
			default:
				for len(indents) > 1 && ind < indents[len(indents)-1] {
					indents = indents[:len(indents)-1]
				}
				if ind != indents[len(indents)-1] {
					return fmt.Errorf("line %d: unindent does not match any outer indentation level", ln)
				}
			}
			i = len(ws)
			lastSig = 0
		}
		continued = false
	scan:
		for ; i < len(l); i++ {
			c := l[i]
			if triple != "" {
				if strings.HasPrefix(l[i:], triple) {
					i += 2
					triple = ""
					lastSig = 'x'
				} else if c == '\\' {
					i++
				}
				continue
			}
			switch c {
			case '#':
				break scan
			case '\\':
				if i == len(l)-1 {
					continued = true
				}
				i++
			case '\'', '"':
				if strings.HasPrefix(l[i:], strings.Repeat(string(c), 3)) {
					triple, tripleAt = strings.Repeat(string(c), 3), ln
					i += 2
					continue
				}
				j := i + 1
				for ; j < len(l) && l[j] != c; j++ {
					if l[j] == '\\' {
						j++
					}
				}
				if j >= len(l) {
					return fmt.Errorf("line %d: unterminated %c string", ln, c)
				}
				i = j
				lastSig = 'x'
			case '(', '[', '{':
				brackets = append(brackets, c)
				bracketAt = append(bracketAt, ln)
				lastSig = c
			case ')', ']', '}':
				if len(brackets) == 0 {
					return fmt.Errorf("line %d: unbalanced %c", ln, c)
				}
				if open := brackets[len(brackets)-1]; open != closing[c] {
					return fmt.Errorf("line %d: %c closes the %c of line %d", ln, c, open, bracketAt[len(bracketAt)-1])
				}
				brackets, bracketAt = brackets[:len(brackets)-1], bracketAt[:len(bracketAt)-1]
				lastSig = c
			case ' ', '\t':
			default:
				lastSig = c
			}
		}
		if triple == "" && len(brackets) == 0 && !continued {
			opensBlock = lastSig == ':'
		}
	}
	switch {
	case triple != "":
		return fmt.Errorf("line %d: unterminated %s string", tripleAt, triple)
	case len(brackets) > 0:
		return fmt.Errorf("line %d: unclosed %c", bracketAt[len(bracketAt)-1], brackets[len(brackets)-1])
	case continued:
		return errors.New("the last line ends with a backslash")
	case opensBlock:
		return errors.New("the body ends where an indented block was expected")
	}
	return nil
}

var expandRE = regexp.MustCompile(`\$\{[a-zA-Z0-9\-_+./~:]+?\}`)

// Expand replaces ${VAR} references by their values in vars, recursively, as BitBake does
// before it runs a shell function. References to variables not in vars stay as they are (the
// shell then sees them, as with BitBake). Inline Python ${@…} is an error: callers supply the
// values of variables that hold it instead.
func Expand(s string, vars map[string]string) (string, error) {
	for range 32 {
		if i := strings.Index(s, "${@"); i >= 0 {
			return "", fmt.Errorf("inline Python at offset %d cannot be expanded outside BitBake", i)
		}
		changed := false
		s = expandRE.ReplaceAllStringFunc(s, func(ref string) string {
			v, ok := vars[ref[2:len(ref)-1]]
			if !ok {
				return ref
			}
			changed = true
			return v
		})
		if !changed {
			return s, nil
		}
	}
	return "", errors.New("variable references nest more than 32 levels (a cycle?)")
}
