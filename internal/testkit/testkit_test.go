package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records skips and failures instead of ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestNeedToolSkipsLoudly(t *testing.T) {
	r := &recorder{TB: t}
	NeedTool(r, "otabake-no-such-tool", "otabake-nothing", "the oracle check did not run")
	want := "SKIPPING: otabake-no-such-tool not installed (Debian package otabake-nothing); the oracle check did not run"
	if r.skipped != want {
		t.Errorf("skip message %q, want %q", r.skipped, want)
	}
	r = &recorder{TB: t}
	NeedTool(r, "otabake-no-such-tool", "otabake-nothing")
	if !strings.HasSuffix(r.skipped, "; this test did not run") {
		t.Errorf("default skip message %q", r.skipped)
	}
	r = &recorder{TB: t}
	NeedTools(r, "the boot proof did not run",
		Tool{"otabake-no-such-tool", "pkg-a"}, Tool{"/nonexistent/otabake/file", "pkg-b"}, Tool{"otabake-other", "pkg-a"})
	want = "SKIPPING: otabake-no-such-tool, /nonexistent/otabake/file, otabake-other not installed (Debian packages pkg-a pkg-b); the boot proof did not run"
	if r.skipped != want {
		t.Errorf("skip message %q, want %q", r.skipped, want)
	}
}

func TestNeedRoot(t *testing.T) {
	r := &recorder{TB: t}
	NeedRoot(r, "creating device nodes")
	if os.Geteuid() == 0 {
		if r.skipped != "" {
			t.Errorf("skipped as root: %q", r.skipped)
		}
	} else if want := "SKIPPING: creating device nodes needs root; this test did not run"; r.skipped != want {
		t.Errorf("skip message %q, want %q", r.skipped, want)
	}
}

func TestNeedToolFinds(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("SKIPPING: sh not installed (Debian package dash); this test did not run")
	}
	r := &recorder{TB: t}
	if p := NeedTool(r, "sh", "dash"); p != sh || r.skipped != "" {
		t.Errorf("NeedTool(sh) = %q, skipped %q; want %q", p, r.skipped, sh)
	}
	if p := NeedFile(r, sh, "dash"); p != sh || r.skipped != "" {
		t.Errorf("NeedFile(%s) = %q, skipped %q", sh, p, r.skipped)
	}
}

func TestRun(t *testing.T) {
	NeedTool(t, "sh", "dash")
	if out := Run(t, "sh", "-c", "echo out; echo err >&2"); out != "out\nerr\n" {
		t.Errorf("Run output %q", out)
	}
	r := &recorder{TB: t}
	Run(r, "sh", "-c", "echo broken; exit 3")
	if !strings.Contains(r.failed, "exit status 3") || !strings.Contains(r.failed, "broken") {
		t.Errorf("failure message %q lacks the status or the output", r.failed)
	}
}

func TestFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "c.txt")
	WriteFile(t, p, "abc")
	if got := ReadFile(t, p); got != "abc" {
		t.Errorf("ReadFile = %q", got)
	}
	if got, want := SHA256File(t, p), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("SHA256File = %s, want %s", got, want)
	}
}

func TestExt4Image(t *testing.T) {
	src := t.TempDir()
	WriteFile(t, filepath.Join(src, "etc", "hostname"), "demo\n")
	WriteFile(t, filepath.Join(src, "big"), strings.Repeat("x", 200<<10))
	if err := os.Symlink("etc/hostname", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	img := Ext4Image(t, "", Ext4Options{Size: "4M", BlockSize: 4096, MkfsArgs: []string{"-E", "root_owner=0:0"}, Sources: []string{src, "/nonexistent/otabake"}})
	debugfs := NeedTool(t, "debugfs", "e2fsprogs")
	base := filepath.Base(src)
	if out := Run(t, debugfs, "-R", "cat /"+base+"/etc/hostname", img); !strings.Contains(out, "demo") {
		t.Errorf("the image lacks the copied file: %q", out)
	}
	if out := Run(t, debugfs, "-R", "stat /"+base+"/link", img); !strings.Contains(out, "symlink") {
		t.Errorf("the image lacks the symlink: %q", out)
	}

	// With a budget, the file larger than what is left is not copied.
	img = Ext4Image(t, "", Ext4Options{Size: "4M", Sources: []string{src}, Budget: 100 << 10})
	if out := Run(t, debugfs, "-R", "ls -l /"+base, img); strings.Contains(out, "big") || !strings.Contains(out, "etc") {
		t.Errorf("budgeted copy: %q", out)
	}
}

func TestRepoRootAndGoBuild(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "cmd", "otabake")); err != nil {
		t.Fatalf("RepoRoot = %s: %v", root, err)
	}
	if testing.Short() {
		return
	}
	NeedTool(t, "go", "golang-go")
	out := filepath.Join(t.TempDir(), "tool")
	if err := GoBuild(out, "./internal/tool"); err != nil {
		t.Fatal(err)
	}
	if err := GoBuild(out, "./internal/no-such-package"); err == nil || !strings.Contains(err.Error(), "no-such-package") {
		t.Errorf("GoBuild of a missing package: %v", err)
	}
}
