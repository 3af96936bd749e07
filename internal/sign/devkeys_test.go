package sign

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevKeys: otabake keys init's PKI is what Rugix's docs make (P-256 CA and a CA:FALSE,
// digitalSignature, no-EKU signer), is marked development-only, signs bundles that verify
// against the CA under Rugix Ctrl 1.x's rules, and never replaces existing keys.
func TestDevKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := NewDevKeys(DevKeyOptions{SignerValidity: 3650 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	written, err := k.Write(dir)
	if err != nil || len(written) != 4 {
		t.Fatalf("Write = %v, %v", written, err)
	}
	for _, tt := range []struct {
		name string
		perm os.FileMode
	}{{DevCACert, 0o644}, {DevCAKey, 0o600}, {DevSignerCert, 0o644}, {DevSignerKey, 0o600}} {
		p := filepath.Join(dir, tt.name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tt.perm {
			t.Errorf("%s mode %v, want %v", tt.name, fi.Mode().Perm(), tt.perm)
		}
		data, _ := os.ReadFile(p)
		if !strings.HasPrefix(string(data), "# DEVELOPMENT ONLY") || !strings.HasPrefix(tt.name, "dev-") {
			t.Errorf("%s is not marked development-only", tt.name)
		}
	}
	s, err := LoadSigner(context.Background(), filepath.Join(dir, DevSignerKey), filepath.Join(dir, DevSignerCert), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCertificates(filepath.Join(dir, DevCACert))
	if err != nil {
		t.Fatal(err)
	}
	if root, ok := ChainRoot(ca); !ok || !root.IsCA || root.PublicKeyAlgorithm.String() != "ECDSA" {
		t.Errorf("CA: self-signed %v, IsCA %v, %v", ok, root.IsCA, root.PublicKeyAlgorithm)
	}
	if s.Cert.IsCA || len(s.Cert.ExtKeyUsage) != 0 || SelfSigned(s.Cert) {
		t.Errorf("signer: IsCA %v, EKU %v, self-signed %v", s.Cert.IsCA, s.Cert.ExtKeyUsage, SelfSigned(s.Cert))
	}
	if err := s.CheckChainsTo(ca, time.Now()); err != nil {
		t.Errorf("signer does not chain to its CA: %v", err)
	}
	other, _ := NewDevKeys(DevKeyOptions{})
	otherCA, _ := ParseCertificates(other.CACert)
	if err := s.CheckChainsTo(otherCA, time.Now()); err == nil {
		t.Error("signer chains to a foreign CA")
	}
	if err := s.CheckChainsTo(ca, time.Now().Add(11*365*24*time.Hour)); err == nil {
		t.Error("an expired signer passes")
	}

	// A second init, even with one file left, writes nothing.
	os.Remove(filepath.Join(dir, DevSignerKey))
	before, _ := os.ReadFile(filepath.Join(dir, DevCAKey))
	k2, _ := NewDevKeys(DevKeyOptions{})
	if _, err := k2.Write(dir); !errors.Is(err, ErrKeysExist) {
		t.Errorf("second Write: %v, want ErrKeysExist", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, DevCAKey))
	if string(before) != string(after) {
		t.Error("the CA key was replaced")
	}
	if _, err := os.Stat(filepath.Join(dir, DevSignerKey)); err == nil {
		t.Error("a partial second init wrote a file")
	}
	if _, err := NewDevKeys(DevKeyOptions{CAValidity: time.Hour, SignerValidity: 2 * time.Hour}); err == nil {
		t.Error("a signer outliving its CA was accepted")
	}
}
