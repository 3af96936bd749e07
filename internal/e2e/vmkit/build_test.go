//go:build linux

package vmkit

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// TestBuildGuestBinaries builds a stand-in module with the three guest package paths, so the
// cross-build is checked even before the real guest programs exist.
func TestBuildGuestBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: cross-compiles three programs")
	}
	testkit.NeedTool(t, "go", "golang-go")
	mod := t.TempDir()
	testkit.Must(t, os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/guest\n\ngo 1.26\n"), 0o644))
	for _, pkg := range []string{AgentPackage, InitrdPackage, RugixCtrlPackage} {
		dir := filepath.Join(mod, pkg)
		testkit.Must(t, os.MkdirAll(dir, 0o755))
		src := "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"" + filepath.Base(pkg) + "\\n\") }\n"
		testkit.Must(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
	}
	out := filepath.Join(t.TempDir(), "bin")
	agent, initrd, rugix, err := BuildGuestBinaries(t.Context(), mod, out)
	if err != nil {
		t.Fatalf("BuildGuestBinaries: %v", err)
	}
	for _, tc := range []struct{ path, name string }{{agent, "otabake-agent"}, {initrd, "initrd"}, {rugix, "rugixctrl"}} {
		if filepath.Dir(tc.path) != out || filepath.Base(tc.path) != tc.name {
			t.Errorf("binary %s, want %s in %s", tc.path, tc.name, out)
		}
		f, err := elf.Open(tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if f.Machine != elf.EM_X86_64 || f.Section(".interp") != nil {
			t.Errorf("%s: machine %v, interpreter section %v; want a static x86-64 binary", tc.path, f.Machine, f.Section(".interp") != nil)
		}
		f.Close()
		if got, err := exec.Command(tc.path).Output(); err == nil && strings.TrimSpace(string(got)) != filepath.Base(tc.name) {
			t.Errorf("%s printed %q", tc.path, got)
		}
	}

	// A package that does not compile is an error that carries the compiler's message.
	testkit.Must(t, os.WriteFile(filepath.Join(mod, InitrdPackage, "main.go"), []byte("package main\n\nfunc main() { undefined() }\n"), 0o644))
	if _, _, _, err := BuildGuestBinaries(t.Context(), mod, out); err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Fatalf("BuildGuestBinaries of a broken package: %v; want the compiler error", err)
	}
}
