package release

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/sign"
)

// TestPlanTrust: build-release refuses a native system whose devices could not verify their
// next update, with the fix in the message; otherwise it decides the roots to bake in.
func TestPlanTrust(t *testing.T) {
	const sys = "[systems.s]\nrootfs = \"rootfs\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\n"
	const signer = "[systems.s.signing]\nkey = \"keys/dev-signer.key\"\ncert = \"keys/dev-signer.crt\"\n"
	for _, tt := range []struct {
		name, toml string
		wantErr    []string // substrings of the error; nil means success
		wantRoots  int
		wantWarn   string
	}{
		{"unsigned, no hash: refused with the fix", sys, []string{
			"refusing to build a system whose devices could not verify their next update",
			"otabake keys init", "use_bundle_hash = true", "insecure_unsigned = true"}, 0, ""},
		{"unsigned with use_bundle_hash", sys + "use_bundle_hash = true\n", nil, 0, ""},
		{"insecure opt-out warns", sys + "signing = { insecure_unsigned = true }\n", nil, 0, "INSECURE"},
		{"explicit roots", sys + signer + "roots = [\"keys/dev-ca.crt\"]\n", nil, 1, ""},
		{"default root from a self-contained chain", sys + signer + "chain = [\"keys/dev-ca.crt\"]\n", nil, 1, ""},
		{"chain without its root: refused", sys + signer, []string{"does not end in a self-signed root", "roots = [\"CA.crt\"]"}, 0, ""},
		{"chain without its root, hash pinned: warned", sys + "use_bundle_hash = true\n" + signer, nil, 0, "trusts no root"},
		{"self-signed signer: refused", sys + "[systems.s.signing]\nkey = \"keys/dev-ca.key\"\ncert = \"keys/dev-ca.crt\"\n", []string{"self-signed", "CA used as end entity"}, 0, ""},
		{"root file with two certificates", sys + signer + "roots = [\"keys/both.crt\"]\n", []string{"holds 2 certificates"}, 0, ""},
		{"missing root file", sys + signer + "roots = [\"keys/nope.crt\"]\n", []string{"nope.crt"}, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			k, err := sign.NewDevKeys(sign.DevKeyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := k.Write(filepath.Join(dir, "keys")); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "keys/both.crt"), append(append([]byte{}, k.CACert...), k.SignerCert...), 0o644)
			cfg := loadConfig(t, dir, tt.toml)
			s, err := cfg.System("s")
			if err != nil {
				t.Fatal(err)
			}
			p, err := planTrust(cfg, s)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				// The same refusal comes from Build, before anything is built.
				if _, berr := Build(context.Background(), cfg, &Identity{Version: "v"}, []string{"s"}, BuildOptions{}); berr == nil || !strings.Contains(berr.Error(), tt.wantErr[0]) {
					t.Errorf("Build: %v", berr)
				}
				if _, err := os.Stat(BuildDir(dir, "s")); err == nil {
					t.Error("build/s exists after a refused build")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.roots) != tt.wantRoots {
				t.Errorf("%d roots, want %d", len(p.roots), tt.wantRoots)
			}
			if tt.wantRoots > 0 && !strings.Contains(p.roots[0].Subject.CommonName, "DEVELOPMENT Update CA") {
				t.Errorf("root %s, want the CA", p.roots[0].Subject)
			}
			if w := strings.Join(p.warnings, "\n"); (tt.wantWarn == "") != (w == "") || !strings.Contains(w, tt.wantWarn) {
				t.Errorf("warnings %q, want %q", w, tt.wantWarn)
			}
		})
	}
}
