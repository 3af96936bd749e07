package project

import (
	"fmt"
	"strings"
)

// TagPlaceholders are the placeholders of the [release] tag patterns: {time} is the build
// time as UTC %Y%m%d%H%M%S, {commit} the short git commit, {branch} the branch with "/"
// replaced by "-".
var TagPlaceholders = []string{"time", "commit", "branch"}

// ExpandPattern replaces the {name} placeholders of a tag pattern with values. An unknown
// placeholder or an unbalanced brace is an error; values must hold every placeholder used.
func ExpandPattern(pattern string, values map[string]string) (string, error) {
	var b strings.Builder
	for s := pattern; s != ""; {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		if s[i] == '}' {
			return "", fmt.Errorf("pattern %q: unmatched '}'", pattern)
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("pattern %q: unmatched '{'", pattern)
		}
		name := s[i+1 : i+end]
		if !isPlaceholder(name) {
			return "", fmt.Errorf("pattern %q: unknown placeholder {%s}; want {%s}", pattern, name, strings.Join(TagPlaceholders, "}, {"))
		}
		if values != nil {
			v, ok := values[name]
			if !ok {
				return "", fmt.Errorf("pattern %q: no value for {%s}", pattern, name)
			}
			b.WriteString(v)
		}
		s = s[i+end+1:]
	}
	return b.String(), nil
}

// ValidatePattern checks a tag pattern's syntax and placeholders.
func ValidatePattern(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("empty pattern")
	}
	_, err := ExpandPattern(pattern, nil)
	return err
}

func isPlaceholder(name string) bool {
	for _, p := range TagPlaceholders {
		if p == name {
			return true
		}
	}
	return false
}
