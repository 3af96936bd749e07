package bake

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/sign"
	"github.com/otabake/otabake/internal/testkit"
)

func devCA(t *testing.T) (ca, signer *x509.Certificate) {
	t.Helper()
	k, err := sign.NewDevKeys(sign.DevKeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := sign.ParseCertificates(k.CACert)
	s, _ := sign.ParseCertificates(k.SignerCert)
	return c[0], s[0]
}

// TestTrustRoots: the roots land where Rugix Ctrl reads them, a rootfs's own ctrl.toml keeps
// its other settings, a second run changes nothing, and a non-CA root is refused.
func TestTrustRoots(t *testing.T) {
	ca1, signer := devCA(t)
	ca2, _ := devCA(t)
	for _, tt := range []struct {
		name     string
		existing string // etc/rugix/ctrl.toml already in the rootfs
		roots    []*x509.Certificate
		want     []string // signatures.roots
		keep     string   // a key of existing that must survive
		wantErr  string
	}{
		{"one root", "", []*x509.Certificate{ca1}, []string{"/etc/rugix/root.crt"}, "", ""},
		{"two roots", "", []*x509.Certificate{ca1, ca2}, []string{"/etc/rugix/root.crt", "/etc/rugix/root-2.crt"}, "", ""},
		{"merged into the rootfs's ctrl.toml", "# mine\n[compatibility]\nrequire-bundle-components = true\n[signatures]\nroots = [\"/old.crt\"]\n",
			[]*x509.Certificate{ca1}, []string{"/etc/rugix/root.crt"}, "require-bundle-components", ""},
		{"broken ctrl.toml", "[signatures\n", []*x509.Certificate{ca1}, nil, "", "not valid TOML"},
		{"signer as root", "", []*x509.Certificate{signer}, nil, "", "is not a CA certificate"},
		{"root twice", "", []*x509.Certificate{ca1, ca1}, nil, "", "given twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.existing != "" {
				os.MkdirAll(filepath.Join(root, "etc/rugix"), 0o755)
				os.WriteFile(filepath.Join(root, CtrlConfig), []byte(tt.existing), 0o644)
			}
			opts := Options{System: "s", Version: "1", TrustRoots: tt.roots}
			_, err := Bake(context.Background(), root, opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(root, CtrlConfig))
			var cfg map[string]any
			if _, err := toml.Decode(string(data), &cfg); err != nil {
				t.Fatalf("ctrl.toml: %v\n%s", err, data)
			}
			got, _ := cfg["signatures"].(map[string]any)["roots"].([]any)
			if len(got) != len(tt.want) {
				t.Fatalf("signatures.roots = %v, want %v", got, tt.want)
			}
			var bundle []*x509.Certificate
			for i, w := range tt.want {
				if got[i] != w {
					t.Errorf("roots[%d] = %v, want %s", i, got[i], w)
				}
				pem, _ := os.ReadFile(filepath.Join(root, w))
				certs, err := sign.ParseCertificates(pem)
				if err != nil || len(certs) != 1 || !certs[0].Equal(tt.roots[i]) || !strings.HasPrefix(string(pem), "-----BEGIN CERTIFICATE-----") {
					t.Errorf("%s: not exactly root %d as bare PEM (%v)", w, i, err)
				}
				bundle = append(bundle, tt.roots[i])
			}
			all, _ := os.ReadFile(filepath.Join(root, RootsBundle))
			if certs, _ := sign.ParseCertificates(all); len(certs) != len(bundle) {
				t.Errorf("%s holds %d certificates, want %d", RootsBundle, len(certs), len(bundle))
			}
			if tt.keep != "" && !strings.Contains(string(data), tt.keep) {
				t.Errorf("ctrl.toml lost %s:\n%s", tt.keep, data)
			}
			res, err := Bake(context.Background(), root, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range res.Files {
				if f.Changed {
					t.Errorf("second run rewrote %s", f.Path)
				}
			}
		})
	}
}

// TestBakeRaucKeyring: with engine rauc the trust roots are RAUC's keyring, one PEM file, and
// none of Rugix Ctrl's files is written.
func TestBakeRaucKeyring(t *testing.T) {
	root := t.TempDir()
	a, _ := devCA(t)
	b, _ := devCA(t)
	if _, err := Bake(context.Background(), root, Options{System: "pc", Version: "1", Engine: "rauc", TrustRoots: []*x509.Certificate{a, b}}); err != nil {
		t.Fatal(err)
	}
	if got, want := testkit.ReadFile(t, filepath.Join(root, RaucKeyring)), string(rootPEM(a))+string(rootPEM(b)); got != want {
		t.Errorf("keyring = %q, want both roots", got)
	}
	for _, f := range []string{CtrlConfig, RootsBundle, RootPath(0)} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			t.Errorf("a RAUC system has %s", f)
		}
	}
}
