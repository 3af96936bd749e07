package bake

import (
	"bytes"
	"sort"
	"strings"
)

// SetOSRelease returns the os-release content with each key of vars set to its value. Lines
// assigning one of the keys are replaced in place; every other line is kept byte for byte;
// keys that were absent are appended in sorted order.
func SetOSRelease(content []byte, vars map[string]string) []byte {
	var out bytes.Buffer
	seen := make(map[string]bool, len(vars))
	rest := content
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		key := osReleaseKey(line)
		if v, ok := vars[key]; ok {
			out.WriteString(key + "=" + quoteOSRelease(v) + "\n")
			seen[key] = true
			continue
		}
		out.Write(line)
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) > 0 && out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	for _, k := range keys {
		out.WriteString(k + "=" + quoteOSRelease(vars[k]) + "\n")
	}
	return out.Bytes()
}

// osReleaseKey returns the variable a line assigns, or "" for comments and other lines.
func osReleaseKey(line []byte) string {
	s := strings.TrimLeft(string(line), " \t")
	i := strings.IndexByte(s, '=')
	if i <= 0 {
		return ""
	}
	k := s[:i]
	for _, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return ""
		}
	}
	return k
}

// quoteOSRelease leaves shell-safe values bare, as Yocto writes IMAGE_ID, and double-quotes
// anything else with the escapes os-release(5) allows.
func quoteOSRelease(v string) string {
	safe := v != ""
	for _, r := range v {
		if !(r == '.' || r == '_' || r == '-' || r == '+' || r == '@' || r == ':' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			safe = false
			break
		}
	}
	if safe {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}
