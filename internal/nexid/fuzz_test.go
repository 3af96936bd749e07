package nexid

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse accepts exactly the IDs of the table: whatever it accepts has a
// known prefix, the kind's exact length, only base-58 digits in a flat raw part and the
// YYYYMMDD-HHMM- form in a dated one, and checks as its own kind.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"d_ev_20250721-1133-ArDVfyQp", "audit_ev_20250721-1133-ArDVfyQp", "u_ZjRcffdyfXutC6XUAkswBx",
		"repo_123456789ABCDEFGHJKLMN", "repo_not-an-id", "d_ev_20250721-1133-ArDVfyQpAAAA",
		"d_ev_--", "d_ev_20250721--", "pkg_v_123456789ABCDEFGHJKLMN", "org_sk_" + strings.Repeat("z", 66),
		"deployment_" + strings.Repeat("1", 66), "", "_", "u_sk_", "d_ev_\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := Parse(s)
		if err != nil {
			if err != nil && k != (Kind{}) {
				t.Fatalf("Parse(%q) failed with a kind", s)
			}
			return
		}
		if len(s) != k.Len() || !strings.HasPrefix(s, k.Prefix+"_") || k.Check(s) != nil {
			t.Fatalf("Parse(%q) = %s", s, k.Name)
		}
		raw := s[len(k.Prefix)+1:]
		for i := 0; i < len(raw); i++ {
			c := raw[i]
			if k.Dated && (i == 8 || i == 13) {
				if c != '-' {
					t.Fatalf("%q: dated raw without '-' at %d", s, i)
				}
				continue
			}
			if k.Dated && i < 13 {
				if c < '0' || c > '9' {
					t.Fatalf("%q: non-digit in date", s)
				}
				continue
			}
			if !strings.ContainsRune(Alphabet, rune(c)) {
				t.Fatalf("%q: %q is not base-58", s, c)
			}
		}
	})
}
