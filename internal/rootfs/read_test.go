package rootfs

import (
	"errors"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/testkit"
)

// hostSecret is a file outside every test root whose content must never be read.
func hostSecret(t testing.TB) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("HOST SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

// treeSpec builds a test tree: files (content), links (target), dirs, fifos; devices need root.
type treeSpec struct {
	files map[string]string
	links map[string]string
	fifos []string
	chars []string // character devices 1:5 (/dev/zero's numbers)
	socks []string
	big   map[string]int64 // sparse files of the given size
}

func (s treeSpec) build(t testing.TB, root string) {
	t.Helper()
	mkparent := func(p string) string {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		return full
	}
	for p, c := range s.files {
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(mkparent(p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// In path order, so that a link is made before the links through it ("etc" before
	// "etc/os-release"); map order made that fail now and then.
	for _, p := range slices.Sorted(maps.Keys(s.links)) {
		if err := os.Symlink(s.links[p], mkparent(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range s.fifos {
		if err := unix.Mkfifo(mkparent(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range s.chars {
		if err := unix.Mknod(mkparent(p), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range s.socks {
		l, err := net.Listen("unix", mkparent(p))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	for p, size := range s.big {
		f, err := os.Create(mkparent(p))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// within runs f and fails the test if it has not returned after five seconds: a FIFO or a
// device must be refused, not read from.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return within 5 s (blocked on a FIFO or reading a device?)", what)
	}
}

func TestRootReadFile(t *testing.T) {
	outside, secret := hostSecret(t)
	tests := []struct {
		name    string
		spec    treeSpec
		root    bool // needs root (mknod)
		read    string
		limit   int64
		want    string // content, when no error is expected
		wantErr error
		msg     string // part of the error message
	}{
		{name: "plain file", spec: treeSpec{files: map[string]string{"etc/os-release": "ID=x\n"}}, read: "etc/os-release", want: "ID=x\n"},
		{name: "leading slash", spec: treeSpec{files: map[string]string{"etc/os-release": "ID=x\n"}}, read: "/etc/os-release", want: "ID=x\n"},
		{name: "absolute link stays inside", spec: treeSpec{files: map[string]string{"usr/lib/os-release": "ID=usr\n"}, links: map[string]string{"etc/os-release": "/usr/lib/os-release"}}, read: "etc/os-release", want: "ID=usr\n"},
		{name: "relative link", spec: treeSpec{files: map[string]string{"usr/lib/os-release": "ID=usr\n"}, links: map[string]string{"etc/os-release": "../usr/lib/os-release"}}, read: "etc/os-release", want: "ID=usr\n"},
		{name: "absolute directory link inside", spec: treeSpec{files: map[string]string{"opt/rugix/u-boot/boot.scr": "scr"}, links: map[string]string{"usr/share/rugix": "/opt/rugix"}}, read: "usr/share/rugix/u-boot/boot.scr", want: "scr"},
		{name: "link chain with .. after a directory link", spec: treeSpec{files: map[string]string{"a/b/c/f": "deep", "a/b/g": "g"}, links: map[string]string{"x": "a/b/c", "y": "x/../g"}}, read: "y", want: "g"},
		{name: "absolute link to a host file", spec: treeSpec{files: map[string]string{"usr/share/rugix/u-boot/": ""}, links: map[string]string{"usr/share/rugix/u-boot/u-boot-arm64.bin": secret}}, read: "usr/share/rugix/u-boot/u-boot-arm64.bin", wantErr: fs.ErrNotExist},
		{name: "absolute link to /proc/self/environ", spec: treeSpec{files: map[string]string{"usr/share/rugix/u-boot/": ""}, links: map[string]string{"usr/share/rugix/u-boot/u-boot-arm64.bin": "/proc/self/environ"}}, read: "usr/share/rugix/u-boot/u-boot-arm64.bin", wantErr: fs.ErrNotExist},
		{name: "relative link climbing out", spec: treeSpec{files: map[string]string{"etc/": ""}, links: map[string]string{"etc/os-release": "../../../../../../../../../.." + secret}}, read: "etc/os-release", wantErr: ErrEscapes, msg: "symbolic link etc/os-release -> ../"},
		{name: "directory link to a host directory", spec: treeSpec{files: map[string]string{"usr/share/": ""}, links: map[string]string{"usr/share/rugix": outside}}, read: "usr/share/rugix/secret", wantErr: fs.ErrNotExist},
		{name: "relative directory link climbing out", spec: treeSpec{files: map[string]string{"usr/share/": ""}, links: map[string]string{"usr/share/rugix": "../../../../../../../../.." + outside}}, read: "usr/share/rugix/secret", wantErr: ErrEscapes},
		{name: "name climbing out", spec: treeSpec{files: map[string]string{"etc/os-release": "x"}}, read: "etc/../../secret", wantErr: ErrEscapes},
		{name: "link loop", spec: treeSpec{links: map[string]string{"a": "b", "b": "/a"}}, read: "a", wantErr: syscall.ELOOP},
		{name: "dangling directory link", spec: treeSpec{links: map[string]string{"etc": "/nowhere"}}, read: "etc/os-release", wantErr: fs.ErrNotExist, msg: "dangles"},
		{name: "file as directory", spec: treeSpec{files: map[string]string{"etc": "x"}}, read: "etc/os-release", wantErr: syscall.ENOTDIR},
		{name: "FIFO", spec: treeSpec{fifos: []string{"etc/os-release"}}, read: "etc/os-release", wantErr: ErrNotRegular, msg: "etc/os-release is a named pipe (FIFO)"},
		{name: "link to a FIFO", spec: treeSpec{fifos: []string{"run/fifo"}, links: map[string]string{"etc/os-release": "/run/fifo"}}, read: "etc/os-release", wantErr: ErrNotRegular, msg: "resolved to run/fifo"},
		{name: "character device", root: true, spec: treeSpec{chars: []string{"etc/os-release"}}, read: "etc/os-release", wantErr: ErrNotRegular, msg: "is a character device"},
		{name: "link to /dev/zero in the rootfs", root: true, spec: treeSpec{chars: []string{"dev/zero"}, links: map[string]string{"etc/os-release": "/dev/zero"}}, read: "etc/os-release", wantErr: ErrNotRegular, msg: "character device"},
		{name: "link to /dev/zero, none in the rootfs", spec: treeSpec{files: map[string]string{"etc/": ""}, links: map[string]string{"etc/os-release": "/dev/zero"}}, read: "etc/os-release", wantErr: fs.ErrNotExist},
		{name: "socket", spec: treeSpec{socks: []string{"s"}}, read: "s", wantErr: ErrNotRegular, msg: "socket"},
		{name: "directory", spec: treeSpec{files: map[string]string{"etc/os-release/": ""}}, read: "etc/os-release", wantErr: ErrNotRegular, msg: "directory"},
		{name: "root itself", spec: treeSpec{}, read: "/", wantErr: ErrNotRegular},
		{name: "oversized", spec: treeSpec{big: map[string]int64{"etc/os-release": 24 << 30}}, read: "etc/os-release", limit: 1 << 20, wantErr: ErrTooLarge, msg: "etc/os-release is 25769803776 bytes, larger than the limit of 1048576 bytes"},
		{name: "at the limit", spec: treeSpec{files: map[string]string{"f": "12345"}}, read: "f", limit: 5, want: "12345"},
		{name: "missing", spec: treeSpec{}, read: "etc/os-release", wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testkit.NeedRoot(t, "creating device nodes", "this check did not run")
			}
			root := t.TempDir()
			tt.spec.build(t, root)
			var data []byte
			var err error
			within(t, "ReadFile", func() { data, err = ReadFile(root, tt.read, tt.limit) })
			if strings.Contains(string(data), "HOST SECRET") {
				t.Fatalf("read the host's file: %q", data)
			}
			if tt.wantErr == nil {
				if err != nil || string(data) != tt.want {
					t.Fatalf("ReadFile = %q, %v; want %q", data, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v; want %v mentioning %q", err, tt.wantErr, tt.msg)
			}
			if strings.Contains(err.Error(), root) {
				t.Errorf("error names the host path of the root: %v", err)
			}
		})
	}
}

func TestRootResolveAndMkdirAll(t *testing.T) {
	root := t.TempDir()
	treeSpec{
		files: map[string]string{"usr/lib/os-release": "x", "usr/etc/": ""},
		links: map[string]string{"etc": "usr/etc", "etc/os-release": "../lib/os-release", "var/run": "/run", "dangling": "/nowhere/x"},
	}.build(t, root)
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, want := range map[string]string{
		"etc/os-release":   "usr/lib/os-release",
		"/etc/new":         "usr/etc/new",
		"etc":              "usr/etc",
		".":                ".",
		"usr/lib/..":       "usr",
		"usr/etc/../lib/x": "usr/lib/x",
	} {
		if got, err := r.Resolve(name); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if got, err := r.MkdirAll("etc/rugix/sub", 0o755); err != nil || got != "usr/etc/rugix/sub" {
		t.Fatalf("MkdirAll = %q, %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/etc/rugix/sub")); err != nil || !fi.IsDir() {
		t.Fatalf("not created: %v", err)
	}
	// A link to a missing directory is reported, not papered over.
	if _, err := r.MkdirAll("var/run/x", 0o755); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "dangles") {
		t.Fatalf("MkdirAll through a dangling link: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "run")); err == nil {
		t.Fatal("created the target of a dangling link")
	}
	if _, err := r.MkdirAll("dangling", 0o755); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("MkdirAll of a dangling link: %v", err)
	}
	fi, err := r.Stat("etc")
	if err != nil || !fi.IsDir() {
		t.Fatalf("Stat(etc) = %v, %v", fi, err)
	}
	ents, err := r.ReadDir("etc")
	if err != nil || len(ents) != 2 || ents[0].Name() != "os-release" || ents[1].Name() != "rugix" {
		t.Fatalf("ReadDir(etc) = %v, %v", ents, err)
	}
}
