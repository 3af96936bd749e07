package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeysInitAndTrustRoot: keys init writes a development PKI and says how to use it,
// refuses to run twice, and bake --trust-root takes its CA but not its signer.
func TestKeysInitAndTrustRoot(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"init", []string{"--project-dir", dir, "keys", "init"}, 0, []string{"keys/dev-ca.crt", "DEVELOPMENT KEYS ONLY", `key = "keys/dev-signer.key"`, `roots = ["keys/dev-ca.crt"]`, "bundle verify --root-cert keys/dev-ca.crt"}},
		{"init again", []string{"--project-dir", dir, "keys", "init"}, 1, []string{"key files already exist"}},
		{"bad validity", []string{"keys", "init", "--dir", filepath.Join(dir, "k2"), "--signer-days", "0"}, 1, []string{"--signer-days 0"}},
		{"bake trusts the CA", []string{"bake", "--rootfs", filepath.Join(dir, "rootfs"), "--system", "s", "--version", "1", "--trust-root", filepath.Join(dir, "keys/dev-ca.crt")}, 0, []string{"written   /etc/rugix/root.crt", "/etc/rugix/ctrl.toml"}},
		{"bake refuses the signer as root", []string{"bake", "--rootfs", filepath.Join(dir, "rootfs"), "--system", "s", "--version", "1", "--trust-root", filepath.Join(dir, "keys/dev-signer.crt")}, 1, []string{"not a CA certificate"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.MkdirAll(filepath.Join(dir, "rootfs/etc"), 0o755)
			code, out, errs := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(out+errs, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errs)
				}
			}
		})
	}
	if fi, err := os.Stat(filepath.Join(dir, "keys/dev-signer.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dev-signer.key: %v %v", fi, err)
	}
}
