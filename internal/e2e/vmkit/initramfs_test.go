//go:build linux

package vmkit

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/otabake/otabake/internal/testkit"
)

// gunzip decompresses an initramfs into the plain cpio archive.
func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	testkit.Must(t, err)
	var out bytes.Buffer
	_, err = out.ReadFrom(zr)
	testkit.Must(t, err)
	return out.Bytes()
}

// cpioList runs cpio -tv and returns name → the ls-style mode column.
func cpioList(t *testing.T, archive []byte) (names []string, modes map[string]string) {
	t.Helper()
	cpio := testkit.NeedTool(t, "cpio", "cpio", "the initramfs was not checked with GNU cpio")
	cmd := exec.Command(cpio, "-t", "-v", "--quiet")
	cmd.Stdin = bytes.NewReader(archive)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -tv: %v", err)
	}
	modes = map[string]string{}
	for l := range strings.Lines(string(out)) {
		f := strings.Fields(l)
		if len(f) < 2 {
			t.Fatalf("cpio -tv line %q", l)
		}
		name := f[len(f)-1]
		names = append(names, name)
		modes[name] = f[0]
	}
	return names, modes
}

func TestWriteInitramfs(t *testing.T) {
	testkit.NeedTool(t, "cpio", "cpio", "the initramfs was not checked with GNU cpio")
	k := &Kernel{Version: "test", ModulesDir: t.TempDir()}
	mods := map[string][]byte{
		"kernel/drivers/virtio/virtio.ko":         elfModule(t, "depends="),
		"kernel/drivers/virtio/virtio_ring.ko.xz": elfModule(t, "depends=virtio"),
		"kernel/drivers/block/virtio_blk.ko.zst":  elfModule(t, "depends=virtio_ring,virtio"),
	}
	for p, data := range mods {
		full := filepath.Join(k.ModulesDir, p)
		testkit.Must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		testkit.Must(t, os.WriteFile(full, compress(t, p, data), 0o644))
	}
	initBin := filepath.Join(t.TempDir(), "init")
	initData := []byte("\x7fELF pretend static init binary, odd length.")
	testkit.Must(t, os.WriteFile(initBin, initData, 0o700))
	order := []string{"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko.xz", "kernel/drivers/block/virtio_blk.ko.zst"}

	var buf bytes.Buffer
	testkit.Must(t, WriteInitramfs(&buf, initBin, k, order))
	var again bytes.Buffer
	testkit.Must(t, WriteInitramfs(&again, initBin, k, order))
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two WriteInitramfs runs over the same input differ")
	}
	archive := gunzip(t, buf.Bytes())

	names, modes := cpioList(t, archive)
	wantNames := []string{"dev", "dev/console", "etc", "etc/modules.order", "init", "lib", "lib/modules", "lib/modules/kernel",
		"lib/modules/kernel/drivers", "lib/modules/kernel/drivers/block", "lib/modules/kernel/drivers/block/virtio_blk.ko",
		"lib/modules/kernel/drivers/virtio", "lib/modules/kernel/drivers/virtio/virtio.ko",
		"lib/modules/kernel/drivers/virtio/virtio_ring.ko", "newroot", "proc", "run", "sys"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("archive names\n got %q\nwant %q", names, wantNames)
	}
	for name, want := range map[string]string{
		"init": "-rwxr-xr-x", "dev/console": "crw-------", "dev": "drwxr-xr-x", "newroot": "drwxr-xr-x",
		"etc/modules.order": "-rw-r--r--", "lib/modules/kernel/drivers/block/virtio_blk.ko": "-rw-r--r--",
	} {
		if modes[name] != want {
			t.Errorf("mode of %s = %q, want %q", name, modes[name], want)
		}
	}

	// Extract and compare contents; the device node needs root.
	dst := t.TempDir()
	cmd := exec.Command("cpio", "-i", "-d", "--quiet", "--no-absolute-filenames")
	cmd.Dir = dst
	cmd.Stdin = bytes.NewReader(archive)
	if out, err := cmd.CombinedOutput(); err != nil && os.Geteuid() == 0 {
		t.Fatalf("cpio -i: %v: %s", err, out)
	}
	for name, want := range map[string][]byte{
		"init":              initData,
		"etc/modules.order": []byte("kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/block/virtio_blk.ko\n"),
		"lib/modules/kernel/drivers/virtio/virtio.ko":      mods["kernel/drivers/virtio/virtio.ko"],
		"lib/modules/kernel/drivers/virtio/virtio_ring.ko": mods["kernel/drivers/virtio/virtio_ring.ko.xz"],
		"lib/modules/kernel/drivers/block/virtio_blk.ko":   mods["kernel/drivers/block/virtio_blk.ko.zst"],
	} {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil {
			t.Errorf("extracted %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("extracted %s: %d bytes differ from the %d expected", name, len(got), len(want))
		}
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the /dev/console node was checked by cpio -tv only")
		return
	}
	var st syscall.Stat_t
	testkit.Must(t, syscall.Lstat(filepath.Join(dst, "dev/console"), &st))
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || major(st.Rdev) != 5 || minor(st.Rdev) != 1 {
		t.Errorf("dev/console: mode %o rdev %d:%d, want a char device 5:1", st.Mode, major(st.Rdev), minor(st.Rdev))
	}
}

func major(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func minor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }

func TestWriteInitramfsErrors(t *testing.T) {
	k := &Kernel{Version: "test", ModulesDir: t.TempDir()}
	initBin := filepath.Join(t.TempDir(), "init")
	testkit.Must(t, os.WriteFile(initBin, []byte("x"), 0o755))
	testkit.Must(t, os.WriteFile(filepath.Join(k.ModulesDir, "a.ko"), []byte("a"), 0o644))
	tests := []struct {
		name    string
		init    string
		modules []string
		wantErr string
	}{
		{"missing init", filepath.Join(t.TempDir(), "nope"), nil, "/init"},
		{"init is a directory", t.TempDir(), nil, "not a regular file"},
		{"missing module", initBin, []string{"b.ko"}, "b.ko"},
		{"escaping path", initBin, []string{"../a.ko"}, "not relative"},
		{"absolute path", initBin, []string{"/a.ko"}, "not relative"},
		{"not a module", initBin, []string{"modules.dep"}, "not a kernel module"},
		{"listed twice", initBin, []string{"a.ko", "./a.ko"}, "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteInitramfs(&bytes.Buffer{}, tc.init, k, tc.modules)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("WriteInitramfs: %v; want error containing %q", err, tc.wantErr)
			}
		})
	}
}
