package hub

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Digest is a content digest in the Hub's form "<alg>_<lowercase hex>", for example
// "sha256_dffd…". The Hub also accepts ':' as the separator; otabake always writes '_'.
type Digest string

// SHA256Digest returns the Digest of a SHA-256 sum.
func SHA256Digest(sum []byte) Digest { return Digest("sha256_" + hex.EncodeToString(sum)) }

// ParseDigest validates a digest string and returns it normalised to the '_' separator and
// the sha512_256 algorithm spelling.
func ParseDigest(s string) (Digest, error) {
	var alg, hx string
	for _, a := range []string{"sha512_256", "sha512-256", "sha256", "sha512"} {
		if len(s) > len(a) && s[:len(a)] == a && (s[len(a)] == '_' || s[len(a)] == ':') {
			alg, hx = a, s[len(a)+1:]
			break
		}
	}
	n := 32
	switch alg {
	case "":
		return "", fmt.Errorf("digest %q: want <algorithm>_<hex> with algorithm sha256, sha512_256 or sha512", s)
	case "sha512-256":
		alg = "sha512_256"
	case "sha512":
		n = 64
	}
	b, err := hex.DecodeString(hx)
	if err != nil || len(b) != n || strings.ToLower(hx) != hx {
		return "", fmt.Errorf("digest %q: want %d bytes of lowercase hex", s, n)
	}
	return Digest(alg + "_" + hx), nil
}

// Algorithm returns the digest's algorithm name.
func (d Digest) Algorithm() string {
	if strings.HasPrefix(string(d), "sha512_256_") {
		return "sha512_256"
	}
	alg, _, _ := strings.Cut(string(d), "_")
	return alg
}

// Hex returns the digest's hex part.
func (d Digest) Hex() string { return string(d)[len(d.Algorithm())+1:] }

// DigestReader computes the SHA-256 Digest and size of everything read from r.
func DigestReader(r io.Reader) (Digest, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return SHA256Digest(h.Sum(nil)), n, nil
}

// NewSHA256 returns a hash that DigestOf turns into a Digest; it exists so that callers can
// hash while copying.
func NewSHA256() hash.Hash { return sha256.New() }

// DigestOf returns the SHA-256 Digest of a hash made by NewSHA256.
func DigestOf(h hash.Hash) Digest { return SHA256Digest(h.Sum(nil)) }
