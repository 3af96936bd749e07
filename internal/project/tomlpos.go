package project

import (
	"strings"
)

// keyLines maps every key of a TOML document (dotted path, as toml.Key.String prints it) to
// the line it is defined on. BurntSushi/toml keeps key positions private, and unknown keys
// and validation errors must name a line, so this is a small scanner that understands just
// enough TOML to find keys: table headers, dotted and quoted keys, strings (including
// multi-line ones) and brackets spanning lines. It is only used for messages; the document
// itself is parsed by the toml package, so a construct it misreads costs a line number,
// never a wrong value.
type keyLines map[string]int

// scanKeyLines indexes the keys of data.
func scanKeyLines(data []byte) keyLines {
	kl := keyLines{}
	var table []string
	var st valueState
	for n, line := range strings.Split(string(data), "\n") {
		lineNo := n + 1
		if st.open() {
			st.scan(line)
			continue
		}
		s := strings.TrimSpace(line)
		if s == "" || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			inner := strings.TrimPrefix(s, "[")
			inner = strings.TrimPrefix(inner, "[")
			path, _ := parseKeyPath(inner)
			table = path
			kl.add(path, lineNo)
			continue
		}
		path, rest := parseKeyPath(s)
		if len(path) == 0 || !strings.HasPrefix(rest, "=") {
			continue
		}
		kl.add(append(append([]string(nil), table...), path...), lineNo)
		st.scan(rest[1:])
	}
	return kl
}

// add records the line of path and of its implicitly defined parents, unless already known.
func (kl keyLines) add(path []string, line int) {
	for n := 1; n <= len(path); n++ {
		k := keyString(path[:n])
		if _, ok := kl[k]; !ok {
			kl[k] = line
		}
	}
}

// line returns the line of path, or of its nearest defined parent (keys inside an inline
// table share its line); 0 when unknown.
func (kl keyLines) line(path ...string) int {
	for n := len(path); n > 0; n-- {
		if l, ok := kl[keyString(path[:n])]; ok {
			return l
		}
	}
	return 0
}

// keyString joins a key path the way toml.Key.String does for bare keys, quoting others.
func keyString(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
			b.WriteString(p)
		} else {
			b.WriteString(`"` + strings.ReplaceAll(strings.ReplaceAll(p, `\`, `\\`), `"`, `\"`) + `"`)
		}
	}
	return b.String()
}

// parseKeyPath reads a dotted key (bare, "basic" or 'literal' parts) from the start of s and
// returns it with the rest of s after trailing spaces.
func parseKeyPath(s string) ([]string, string) {
	var path []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return path, s
		}
		var part string
		switch s[0] {
		case '"':
			var b strings.Builder
			i := 1
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
				i++
			}
			if i >= len(s) {
				return nil, ""
			}
			part, s = b.String(), s[i+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, ""
			}
			part, s = s[1:1+end], s[end+2:]
		default:
			i := 0
			for i < len(s) && (s[i] == '_' || s[i] == '-' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
				i++
			}
			if i == 0 {
				return path, s
			}
			part, s = s[:i], s[i:]
		}
		path = append(path, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return path, s
		}
		s = s[1:]
	}
}

// valueState tracks constructs of a value that continue on the next line.
type valueState struct {
	depth int    // open [ and {
	multi string // open """ or ''' delimiter
}

func (v *valueState) open() bool { return v.depth > 0 || v.multi != "" }

// scan consumes one line of value text.
func (v *valueState) scan(s string) {
	for i := 0; i < len(s); {
		if v.multi != "" {
			end := strings.Index(s[i:], v.multi)
			if end < 0 {
				return
			}
			i += end + 3
			v.multi = ""
			continue
		}
		switch c := s[i]; c {
		case '#':
			return
		case '[', '{':
			v.depth++
			i++
		case ']', '}':
			if v.depth > 0 {
				v.depth--
			}
			i++
		case '"', '\'':
			if strings.HasPrefix(s[i:], strings.Repeat(string(c), 3)) {
				v.multi = strings.Repeat(string(c), 3)
				i += 3
				continue
			}
			i++
			for i < len(s) && s[i] != c {
				if c == '"' && s[i] == '\\' {
					i++
				}
				i++
			}
			i++
		default:
			i++
		}
	}
}
