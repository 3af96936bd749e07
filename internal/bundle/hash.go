package bundle

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// HashAlgorithm names a hash function as the bundle format writes it: "sha512-256" (the
// default everywhere), "sha256" or "sha512".
type HashAlgorithm string

// The hash algorithms of the format.
const (
	SHA512_256 HashAlgorithm = "sha512-256"
	SHA256     HashAlgorithm = "sha256"
	SHA512     HashAlgorithm = "sha512"
)

// ParseHashAlgorithm accepts the spellings rugix accepts ("sha512_256" too) and returns the
// canonical name.
func ParseHashAlgorithm(s string) (HashAlgorithm, error) {
	switch s {
	case "sha512-256", "sha512_256":
		return SHA512_256, nil
	case "sha256":
		return SHA256, nil
	case "sha512":
		return SHA512, nil
	}
	return "", fmt.Errorf("unknown hash algorithm %q (want sha512-256, sha256 or sha512)", s)
}

// New returns a new hash.Hash of the algorithm.
func (a HashAlgorithm) New() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	}
	return sha512.New512_256()
}

// Size returns the digest size in bytes.
func (a HashAlgorithm) Size() int {
	if a == SHA512 {
		return 64
	}
	return 32
}

// manifestName is the spelling sidex/serde uses in the manifest JSON ("sha512_256").
func (a HashAlgorithm) manifestName() string {
	if a == SHA512_256 {
		return "sha512_256"
	}
	return string(a)
}

// Sum hashes b.
func (a HashAlgorithm) Sum(b []byte) []byte {
	h := a.New()
	h.Write(b)
	return h.Sum(nil)
}

// Digest is a hash value with its algorithm. Its text form, "sha512-256:<lowercase hex>", is
// how bundle hashes are published and how every Rugix version parses them.
type Digest struct {
	Algorithm HashAlgorithm
	Sum       []byte
}

// String returns "<alg>:<lowercase hex>".
func (d Digest) String() string { return string(d.Algorithm) + ":" + hex.EncodeToString(d.Sum) }

// Equal reports whether d and o have the same algorithm and value.
func (d Digest) Equal(o Digest) bool {
	return d.Algorithm == o.Algorithm && string(d.Sum) == string(o.Sum)
}

// ParseDigest parses a digest the way rugix-ctrl does: split at the last ':' or '_', any hex
// case, so "sha512-256:…", "sha512_256:…" and "sha512_256_…" all work. Surrounding whitespace
// is trimmed because hash files may end with a newline.
func ParseDigest(s string) (Digest, error) {
	t := strings.TrimSpace(s)
	i := strings.LastIndexAny(t, ":_")
	if i < 0 {
		return Digest{}, fmt.Errorf("digest %q: want <algorithm>:<hex>", s)
	}
	alg, err := ParseHashAlgorithm(t[:i])
	if err != nil {
		return Digest{}, fmt.Errorf("digest %q: %w", s, err)
	}
	sum, err := hex.DecodeString(t[i+1:])
	if err != nil || len(sum) != alg.Size() {
		return Digest{}, fmt.Errorf("digest %q: want %d bytes of hex after %q", s, alg.Size(), t[:i+1])
	}
	return Digest{Algorithm: alg, Sum: sum}, nil
}
