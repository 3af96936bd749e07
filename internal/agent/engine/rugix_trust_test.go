package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRugixVerificationFlags: what each Rugix Ctrl version needs to verify a bundle, from the
// trust roots the image lists in /etc/rugix/ctrl.toml and the pinned hash; the version is
// read once.
func TestRugixVerificationFlags(t *testing.T) {
	const u = "https://hub.example/b.rugixb"
	tail := []string{"--reboot", "no", "--", u}
	one := "[signatures]\nroots = [\"/etc/rugix/root.crt\"]\n"
	two := "[signatures]\nroots = [\"/etc/rugix/root.crt\", \"/etc/rugix/root-2.crt\"]\n"
	for _, tc := range []struct {
		name, version, ctrl, hash string
		bundle                    bool // roots.pem present next to ctrl.toml
		want                      []string
		wantErr                   string
	}{
		{"0.8 one root", "rugix-ctrl v0.8.15", one, "", false, []string{"--verify-signature", "--root-cert", "/etc/rugix/root.crt"}, ""},
		{"0.8 one root and hash", "rugix-ctrl v0.8.15", one, testHash, false, []string{"--verify-signature", "--root-cert", "/etc/rugix/root.crt", "--verify-bundle", testHash}, ""},
		{"0.8 two roots", "rugix-ctrl v0.8.15", two, "", true, []string{"--verify-signature", "--root-cert", "<dir>/roots.pem"}, ""},
		{"0.8 two roots without bundle", "rugix-ctrl v0.8.15", two, "", false, nil, "takes one --root-cert"},
		{"0.8 no config, hash", "rugix-ctrl v0.8.15", "", testHash, false, []string{"--verify-bundle", testHash}, ""},
		{"0.8 config without signatures", "rugix-ctrl v0.8.15", "[compatibility]\nrequire-bundle-components = false\n", testHash, false, []string{"--verify-bundle", testHash}, ""},
		{"1.x roots: rugix-ctrl reads them", "rugix-ctrl 1.2.0", one, "", false, nil, ""},
		{"1.x roots and hash", "rugix-ctrl 1.2.0", two, testHash, false, []string{"--bundle-hash", testHash}, ""},
		{"1.x no config", "rugix-ctrl 1.0.0", "", "", false, nil, ""},
		{"broken config", "rugix-ctrl 1.2.0", "[signatures\n", "", false, nil, "not valid TOML"},
		{"relative root", "rugix-ctrl 0.8.15", "[signatures]\nroots = [\"root.crt\"]\n", "", false, nil, "not an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctrl := filepath.Join(dir, "ctrl.toml")
			if tc.ctrl != "" {
				os.WriteFile(ctrl, []byte(tc.ctrl), 0o644)
			}
			if tc.bundle {
				os.WriteFile(filepath.Join(dir, "roots.pem"), []byte("pem"), 0o644)
			}
			f := &fakeRunner{answers: map[string]string{"rugix-ctrl --version": tc.version}}
			r := &Rugix{run: f.run, ctrlConfig: ctrl}
			for range 2 {
				err := r.Install(context.Background(), u, InstallOptions{BundleHash: tc.hash})
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("err = %v, want %q", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			for _, a := range append(append([]string{"rugix-ctrl", "update", "install"}, tc.want...), tail...) {
				want = append(want, strings.ReplaceAll(a, "<dir>", dir))
			}
			if got := f.calls[len(f.calls)-1]; !slices.Equal(got, want) {
				t.Errorf("argv %q, want %q", got, want)
			}
			versions := 0
			for _, c := range f.calls {
				if slices.Contains(c, "--version") {
					versions++
				}
			}
			if needs := tc.ctrl != "" && strings.Contains(tc.ctrl, "roots") || tc.hash != ""; (versions == 1) != needs || versions > 1 {
				t.Errorf("rugix-ctrl --version ran %d times over two installs; want %v once", versions, needs)
			}
		})
	}
}
