//go:build linux

package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/bootenv"
	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/image"
	"github.com/otabake/otabake/internal/testkit"
)

const (
	testBootBytes   = 8 << 20
	testSystemBytes = 16 << 20
)

// device is a host-side stand-in for the guest: a disk image, the config partition's files,
// a data directory and the kernel command line.
type device struct {
	dir, disk, config, data, cmdline string
	ctrl                             string // /etc/rugix/ctrl.toml; absent unless a test writes it
	size                             int64
}

func (d *device) env() func(string) string {
	m := map[string]string{envDisk: d.disk, envConfig: d.config, envData: d.data, envCmdline: d.cmdline, envCtrlConfig: d.ctrl}
	return func(k string) string { return m[k] }
}

// run runs the CLI against the device and returns the exit status, stdout and stderr.
func (d *device) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, d.env(), &out, &errb)
	return code, out.String(), errb.String()
}

func (d *device) table(t *testing.T) *gpt.Table {
	t.Helper()
	f, err := os.Open(d.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f, d.size)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// bootFrom writes the kernel command line GRUB passes when booting system partition n.
func (d *device) bootFrom(t *testing.T, n int) {
	t.Helper()
	p, ok := d.table(t).Partition(n)
	if !ok {
		t.Fatalf("no partition %d", n)
	}
	line := "BOOT_IMAGE=/vmlinuz ro init=/usr/bin/rugix-ctrl root=PARTUUID=" + p.UUID.String() + " console=ttyS0\n"
	if err := os.WriteFile(d.cmdline, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newDevice builds an efi-grub disk image of diskBytes with otabake's partition table, the
// committed boot environment of a fresh image (bootpart 2) and a kernel booted from system-a.
// With bootstrapped, partitions 5 and 6 are added as on first boot.
func newDevice(t *testing.T, diskBytes int64, bootstrapped bool) *device {
	t.Helper()
	dir := t.TempDir()
	d := &device{dir: dir, disk: filepath.Join(dir, "disk.img"), config: filepath.Join(dir, "config"),
		data: filepath.Join(dir, "data"), cmdline: filepath.Join(dir, "cmdline"), ctrl: filepath.Join(dir, "ctrl.toml")}
	tgt, err := image.TargetByName("efi-grub", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	l, err := image.Plan(tgt, image.Sizes{Config: 8 << 20, BootA: testBootBytes, BootB: testBootBytes, System: testSystemBytes, Image: diskBytes}, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.size = l.DiskBytes()
	f, err := os.Create(d.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(d.size); err != nil {
		t.Fatal(err)
	}
	if err := image.WriteTable(f, l, image.DeriveIdentifiers("rugixctrl-test", "r1")); err != nil {
		t.Fatal(err)
	}
	if bootstrapped {
		tab, err := gpt.Read(f, d.size)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := repartition(tab, d.size, defaultEFISchema(testSystemBytes)); err != nil {
			t.Fatal(err)
		}
		if err := tab.Write(f, d.size); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(d.config, "rugpi"), d.data} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeBootPart(d.config, "2"); err != nil {
		t.Fatal(err)
	}
	if err := writeSpareFlag(d.config, false); err != nil {
		t.Fatal(err)
	}
	d.bootFrom(t, partSystemA)
	return d
}

// grubEditenvList returns `grub-editenv FILE list`, the reference reader of env blocks.
func grubEditenvList(t *testing.T, file string) string {
	t.Helper()
	return testkit.Run(t, testkit.NeedTool(t, "grub-editenv", "grub-common"), file, "list")
}

// payloadImages makes the two payloads: an ext4 boot filesystem holding boot.grubenv (with an
// extra variable that the post-install must keep) and a system image with repeated content, so
// that deduplicated blocks are read back from the slot.
func payloadImages(t *testing.T, dir string) (bootImg, sysImg string) {
	t.Helper()
	root := filepath.Join(dir, "bootroot")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	env, err := bootenv.EncodeGrubEnv([]bootenv.Var{
		{Name: "otabake_keep", Value: "yes"},
		{Name: varBootArgs, Value: "ro init=/usr/bin/rugix-ctrl root=PARTUUID=00000000-0000-0000-0000-000000000000"},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{bootEnvName: env, "vmlinuz": bytes.Repeat([]byte("kernel"), 1000)} {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bootImg = filepath.Join(dir, "boot.img")
	if err := image.MakeExt4(context.Background(), root, bootImg, testBootBytes, image.Ext4Options{Journal: true}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	chunk := make([]byte, 3<<20)
	for i := range chunk {
		chunk[i] = byte(rng.Uint32())
	}
	sys := bytes.Repeat(chunk, 5)
	sys = append(sys, make([]byte, testSystemBytes-len(sys))...)
	sysImg = filepath.Join(dir, "system.img")
	if err := os.WriteFile(sysImg, sys, 0o644); err != nil {
		t.Fatal(err)
	}
	return bootImg, sysImg
}

// makeBundle writes a bundle with the boot payload xz-compressed and the system payload stored
// raw (so that a flipped byte is a block hash error, not an xz error).
func makeBundle(t *testing.T, dir, bootImg, sysImg string) (string, *bundle.Result) {
	t.Helper()
	out := filepath.Join(dir, "update.rugixb")
	spec := bundle.Spec{Payloads: []bundle.Payload{
		{Slot: "boot", Path: bootImg, BlockEncoding: &bundle.BlockEncoding{Chunker: "casync-64", Deduplicate: true, Compression: &bundle.Compression{}}},
		{Slot: "system", Path: sysImg, BlockEncoding: &bundle.BlockEncoding{Chunker: "casync-64", Deduplicate: true}},
	}}
	res, err := bundle.Create(context.Background(), out, spec, bundle.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

// rangeServer serves one file with Range support (http.ServeContent) and counts requests.
type rangeServer struct {
	*httptest.Server
	requests atomic.Int64
}

func serveFile(t *testing.T, path string) *rangeServer {
	t.Helper()
	rs := &rangeServer{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.requests.Add(1)
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, filepath.Base(path), time.Time{}, f)
	}))
	t.Cleanup(rs.Close)
	return rs
}

// readDisk returns n bytes of the disk image at off.
func (d *device) readDisk(t *testing.T, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(d.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// debugfsCat returns a file of the ext4 filesystem at byte offset off of the disk image.
func debugfsCat(t *testing.T, disk string, off int64, name string) []byte {
	t.Helper()
	spec := disk + "?offset=" + strconv.FormatInt(off, 10)
	out, err := exec.Command(testkit.NeedTool(t, "debugfs", "e2fsprogs"), "-R", "cat /"+name, spec).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s in %s: %v", name, spec, err)
	}
	return out
}
