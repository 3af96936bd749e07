package vm

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSession runs `otabake run`'s session against the fake QEMU of start_test.go: the host and
// image checks, the command line, a snapshot copy that leaves the image alone and is removed
// by Close, and QEMU's exit status.
func TestSession(t *testing.T) {
	dir := fakeHost(t)
	if err := os.WriteFile(filepath.Join(dir, "bin", "qemu-system-x86_64"), []byte(fakeQEMU), 0o755); err != nil {
		t.Fatal(err)
	}
	old := kvmUsable
	kvmUsable = func() bool { return false }
	t.Cleanup(func() { kvmUsable = old })
	img := filepath.Join(dir, "build", "system.img")
	os.MkdirAll(filepath.Dir(img), 0o755)
	data := append(make([]byte, 8192), "data"...)
	os.WriteFile(img, data, 0o644)

	for in, want := range map[string]Accel{"auto": AccelAuto, "kvm": AccelKVM, "tcg": AccelTCG} {
		if a, err := ParseAccel(in); err != nil || a != want {
			t.Errorf("ParseAccel(%q) = %q, %v", in, a, err)
		}
	}
	if _, err := ParseAccel("hvf"); err == nil {
		t.Error("ParseAccel accepted hvf")
	}
	if _, err := NewSession(SessionOptions{Image: img, Arch: "amd64", Accel: AccelKVM}); !errors.Is(err, ErrNoKVM) {
		t.Errorf("explicit KVM without /dev/kvm: %v", err)
	}
	var disk *DiskError
	if _, err := (SessionOptions{Image: img + ".missing", Arch: "amd64"}).CommandLine(); !errors.As(err, &disk) ||
		!errors.Is(err, fs.ErrNotExist) || err.Error() != img+".missing: no such file or directory" {
		t.Errorf("missing image: %v", err)
	}

	o := SessionOptions{Image: img, Arch: "amd64", SSHPort: 2222, Snapshot: true}
	cl, err := o.CommandLine()
	if err != nil || cl.KVM || !strings.HasPrefix(cl.String(), filepath.Join(dir, "bin", "qemu-system-x86_64")+" -machine q35 -accel tcg") ||
		!strings.Contains(cl.String(), "file="+filepath.Join(dir, "build", ".run", "OVMF_VARS.fd")) {
		t.Fatalf("command line %+v, %v", cl, err)
	}
	s, err := NewSession(o)
	if err != nil {
		t.Fatal(err)
	}
	if s.KVM() || s.Machine.Disk == img || filepath.Dir(filepath.Dir(s.Machine.Disk)) != RunDir(img) {
		t.Fatalf("snapshot session: %+v", s)
	}
	if got, _ := os.ReadFile(s.Machine.Disk); string(got) != string(data) {
		t.Fatal("the snapshot copy differs from the image")
	}
	var out syncBuffer
	if err := s.Run(context.Background(), StartOptions{Stdio: Stdio{Stdin: strings.NewReader("hi\n"), Stdout: &out}}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "booted with kvm=no\nserial: hi\n") {
		t.Errorf("stdout %q", out.String())
	}
	copyDir := filepath.Dir(s.Machine.Disk)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(copyDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("snapshot copy left behind: %v", err)
	}

	// QEMU's exit status is the session's error.
	kvmUsable = func() bool { return true }
	t.Setenv("FAKE_KVM", "exit")
	s, err = NewSession(SessionOptions{Image: img, Arch: "amd64", Accel: AccelKVM})
	if err != nil || !s.KVM() {
		t.Fatalf("KVM session: %+v %v", s, err)
	}
	defer s.Close()
	if err := s.Run(context.Background(), StartOptions{}); err == nil || err.Error() != "QEMU exited with status 1" {
		t.Errorf("Run = %v, want QEMU's exit status", err)
	}
}
