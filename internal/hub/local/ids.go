package local

import (
	"crypto/rand"
	"strings"
)

// base58 is the Nexigon ID alphabet (no 0, O, I or l).
const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// idLen is the number of base58 characters after an ID's prefix.
const idLen = 22

// newID returns prefix + "_" + 22 random base58 characters, the shape of every Hub ID.
func newID(prefix string) string {
	return prefix + "_" + randomBase58(idLen)
}

// randomBase58 returns n random base58 characters, by rejection sampling so that every
// character is equally likely.
func randomBase58(n int) string {
	var sb strings.Builder
	sb.Grow(n)
	var buf [64]byte
	for sb.Len() < n {
		rand.Read(buf[:]) // never fails (crypto/rand panics on an unusable source)
		for _, b := range buf {
			if b < 58*4 && sb.Len() < n {
				sb.WriteByte(base58[b%58])
			}
		}
	}
	return sb.String()
}

// RandomToken returns a fresh organization API token (org_sk_ + 66 base58), the form the Hub's
// CLI accepts, for `otabake hub serve` when the user gives none.
func RandomToken() string { return "org_sk_" + randomBase58(66) }

// isID reports whether s is a whole ID with prefix: prefix + "_" + 22 base58 characters. Like
// the Hub's CLI, anything else (for example "repo_not-an-id") is a name.
func isID(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != idLen {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(base58, rest[i]) < 0 {
			return false
		}
	}
	return true
}
