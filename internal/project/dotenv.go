package project

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// maxDotEnvSize bounds how much of a .env file is read; real ones are a few hundred bytes.
const maxDotEnvSize = 1 << 20

// DotEnvEntry is one assignment of a .env file.
type DotEnvEntry struct {
	Key   string
	Value string
	// Line is the 1-based line number of the assignment.
	Line int
}

// ParseDotEnv parses the .env files the release scripts source with bash: KEY=VALUE lines,
// blank lines and # comments, an optional "export " prefix, values unquoted, 'single-quoted'
// (literal) or "double-quoted" (backslash escapes \" \\ \$ \`). A later assignment of a key
// wins, as in the shell. Anything bash would read differently from what a reader expects
// is an error naming name:line rather than a silently different value: spaces around "=",
// unterminated quotes, text after a closing quote, and $ or ` expansion (write the literal
// value in single quotes instead).
func ParseDotEnv(name string, r io.Reader) ([]DotEnvEntry, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxDotEnvSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxDotEnvSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; is it really a .env file?", name, maxDotEnvSize)
	}
	var out []DotEnvEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxDotEnvSize+1)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		key, value, ok, err := parseDotEnvLine(text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if ok {
			out = append(out, DotEnvEntry{Key: key, Value: value, Line: line})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// parseDotEnvLine parses one line; ok is false for blank and comment lines.
func parseDotEnvLine(text string) (key, value string, ok bool, err error) {
	s := strings.TrimLeft(text, " \t")
	if s == "" || s[0] == '#' {
		return "", "", false, nil
	}
	if rest, found := strings.CutPrefix(s, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		s = strings.TrimLeft(rest, " \t")
	}
	eq := strings.IndexByte(s, '=')
	if eq < 0 {
		return "", "", false, fmt.Errorf("want KEY=VALUE (no '=' on this line)")
	}
	key = s[:eq]
	if strings.TrimRight(key, " \t") != key {
		return "", "", false, fmt.Errorf("%s: no spaces allowed around '=' (the shell would run a command)", strings.TrimSpace(key))
	}
	if !validEnvName(key) {
		return "", "", false, fmt.Errorf("invalid variable name %q: want letters, digits and _, not starting with a digit", truncate(key, 40))
	}
	value, err = parseDotEnvValue(s[eq+1:])
	if err != nil {
		return "", "", false, fmt.Errorf("%s: %w", key, err)
	}
	return key, value, true, nil
}

// parseDotEnvValue reads a value as bash would for the subset ParseDotEnv accepts. Values are
// never echoed into errors because they may be secrets.
func parseDotEnvValue(s string) (string, error) {
	var b strings.Builder
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			rest := strings.TrimLeft(s[i:], " \t")
			if rest != "" && rest[0] != '#' {
				return "", fmt.Errorf("unquoted space in the value: quote the value")
			}
			return b.String(), nil
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", fmt.Errorf("unterminated single quote (values cannot span lines)")
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 2
		case c == '"':
			i++
			closed := false
			for i < len(s) && !closed {
				switch s[i] {
				case '"':
					closed = true
				case '\\':
					if i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
						b.WriteByte(s[i+1])
						i++
					} else {
						b.WriteByte('\\')
					}
				case '$', '`':
					return "", fmt.Errorf("shell expansion (%c) is not supported: write the literal value in single quotes", s[i])
				default:
					b.WriteByte(s[i])
				}
				i++
			}
			if !closed {
				return "", fmt.Errorf("unterminated double quote (values cannot span lines)")
			}
		case c == '\\':
			if i+1 >= len(s) {
				return "", fmt.Errorf("trailing backslash (values cannot span lines)")
			}
			b.WriteByte(s[i+1])
			i += 2
		case c == '$' || c == '`':
			return "", fmt.Errorf("shell expansion (%c) is not supported: write the literal value in single quotes", c)
		case c == ';' || c == '&' || c == '|' || c == '<' || c == '>' || c == '(' || c == ')':
			return "", fmt.Errorf("shell operator %q in the value: quote the value", c)
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// validEnvName reports whether s is a shell variable name.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
