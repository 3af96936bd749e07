package project

import (
	"fmt"
	"log/slog"
)

// Secret holds a credential such as a Hub token. Every way of printing it (fmt verbs, JSON,
// slog) yields "<redacted>" (or "" when it is empty), so that a Config can be logged or shown
// without leaking; only Reveal returns the value, which makes each real use easy to find.
type Secret string

const redacted = "<redacted>"

// Reveal returns the secret's value, for the one place that must send it (an Authorization
// header).
func (s Secret) Reveal() string { return string(s) }

// String returns "<redacted>", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString redacts %#v as well.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// Format redacts every fmt verb (%s, %v, %q, %x, …).
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// MarshalJSON writes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText writes the redacted form, so encoders that prefer text (TOML, YAML) redact too.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue redacts the secret in structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
