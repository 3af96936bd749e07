package engine

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// The agent hands what the Hub answers (a download URL, a bundle hash) to rugix-ctrl or rauc
// as command-line arguments. Nothing the Hub says is trusted blindly: a file:// URL would make
// the tool install a bundle already lying on the device, a value starting with "-" would be
// read as an option, and a malformed hash silently changes what is verified. The checks below
// run before any tool sees a value; the engines also put every such value after "--".

// SourcePolicy says which bundle URLs are acceptable.
type SourcePolicy struct {
	// AllowHTTP accepts plain http:// URLs. The agent sets it only when the Hub itself is
	// reached over http:// (a lab or local Hub); when the Hub URL is https:// or unknown,
	// bundles must come over https://.
	AllowHTTP bool
}

// CheckBundleURL checks a download URL from the Hub: an absolute https:// URL (http:// only
// with p.AllowHTTP) with a host, without whitespace or control characters. Presigned queries
// are redacted in the error.
func CheckBundleURL(raw string, p SourcePolicy) error {
	shown := Redact(raw)
	if raw == "" {
		return fmt.Errorf("the Hub gave an empty bundle URL")
	}
	if strings.HasPrefix(raw, "-") {
		return fmt.Errorf("bundle URL %q starts with '-': refusing a value the update tool would read as an option", shown)
	}
	if i := strings.IndexFunc(raw, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		return fmt.Errorf("bundle URL %q contains whitespace or control characters", shown)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bundle URL %q does not parse: %v", shown, redactErr(err))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return fmt.Errorf("bundle URL %q is plain http but the Hub is not reached over http: only https bundle URLs are accepted", shown)
		}
	default:
		want := "https"
		if p.AllowHTTP {
			want = "http or https"
		}
		return fmt.Errorf("bundle URL %q has scheme %q: only %s bundle URLs are accepted", shown, u.Scheme, want)
	}
	if u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("bundle URL %q has no host", shown)
	}
	return nil
}

func redactErr(err error) string { return Redact(err.Error()) }

// hashSizes are the bundle hash algorithms Rugix Ctrl accepts and their digest sizes in bytes
// (internal/bundle's HashAlgorithm; Rugix's HashDigest). sha512_256 is Rugix's other spelling.
var hashSizes = map[string]int{"sha512-256": 32, "sha512_256": 32, "sha256": 32, "sha512": 64}

// CheckBundleHash checks a bundle hash from the Hub's metadata: "<algorithm>:<hex>" with a
// known algorithm and exactly its digest length of hex digits (sha512-256: 64 hex digits, the
// form otabake and Rugix Bakery publish).
func CheckBundleHash(h string) error {
	alg, digits, ok := strings.Cut(h, ":")
	if !ok {
		return fmt.Errorf("bundle hash %q: want <algorithm>:<hex>, such as sha512-256:<64 hex digits>", h)
	}
	size, known := hashSizes[alg]
	if !known {
		return fmt.Errorf("bundle hash %q: unknown algorithm %q (want sha512-256, sha256 or sha512)", h, alg)
	}
	if len(digits) != 2*size {
		return fmt.Errorf("bundle hash %q: %s needs %d hex digits, got %d", h, alg, 2*size, len(digits))
	}
	if _, err := hex.DecodeString(digits); err != nil {
		return fmt.Errorf("bundle hash %q: not hexadecimal", h)
	}
	return nil
}
