package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBakeCommand(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=debian\n"), 0o644)
	os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release"))

	args := []string{"bake", "--rootfs", root, "--system", "pc", "--version", "20260101", "--ota-path", "fleet/pc/stable", "--use-bundle-hash", "--target", "efi-grub"}
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("bake = %d %q %q", code, out, errs)
	}
	for _, want := range []string{"written   /etc/rugix/system-build-info.json", "/etc/os-release -> /usr/lib/os-release", "/etc/otabake/ota.json", "/etc/rugix/system.toml", "baked pc (release pc@20260101)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/lib/os-release")); string(b) != "ID=debian\nIMAGE_ID=pc\nIMAGE_VERSION=20260101\n" {
		t.Errorf("os-release %q", b)
	}

	code, out, errs = runCLI(t, append([]string{"--json"}, args...)...)
	if code != 0 {
		t.Fatalf("bake --json = %d %q %q", code, out, errs)
	}
	var res struct {
		BuildInfo struct {
			Name    string
			Release struct{ ID, Version string }
		}
		Files []struct {
			Path    string
			Changed bool
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if res.BuildInfo.Release.ID != "pc@20260101" || len(res.Files) != 4 {
		t.Fatalf("--json result %+v", res)
	}
	for _, f := range res.Files {
		if f.Changed {
			t.Errorf("second run changed %s", f.Path)
		}
	}
}

func TestBakeCommandErrors(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bake", "--rootfs", root, "--system", "pc"}, "version"},
		{[]string{"bake", "--rootfs", root, "--system", "pc", "--version", "1", "--ota-path", "a/b"}, "ota-path"},
		{[]string{"bake", "--rootfs", root, "--system", "pc", "--version", "1", "--target", "x86"}, "unknown image target"},
		{[]string{"bake", "--rootfs", filepath.Join(root, "missing"), "--system", "pc", "--version", "1"}, "rootfs"},
		{[]string{"bake", "--rootfs", root, "--system", "pc", "--version", "1", "extra"}, "no arguments"},
		{[]string{"bake", "--rootfs", root, "--system", "pc", "--version", "1", "--use-bundle-hash"}, "needs --ota-path"},
	}
	for _, tt := range tests {
		code, _, errs := runCLI(t, tt.args...)
		if code == 0 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: code %d, stderr %q, want %q", tt.args, code, errs, tt.want)
		}
	}
}

func TestSBOMCommand(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte("Package: zlib1g\nStatus: install ok installed\nMaintainer: Debian <d@d>\nArchitecture: amd64\nVersion: 1:1.2.13\n\n"), 0o644)
	out := filepath.Join(t.TempDir(), "sbom.json")
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	for i := 0; i < 2; i++ {
		code, _, errs := run(t, "sbom", "--rootfs", root, "--system", "demo", "--version", "v1", "--output", out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
	}
	data, _ := os.ReadFile(out)
	for _, want := range []string{`"spdxVersion": "SPDX-2.3"`, "pkg:deb/debian/zlib1g@1%3A1.2.13?arch=amd64", "2026-01-01T00:00:00Z", "demo"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("SBOM lacks %q", want)
		}
	}
	if code, _, _ := run(t, "sbom", "--rootfs", root, "--system", "demo", "--version", "v1", "--created", "yesterday"); code == 0 {
		t.Error("a bad --created was accepted")
	}
}
