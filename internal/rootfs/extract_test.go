package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/testkit"
	"github.com/otabake/otabake/internal/tool"
)

// capValue is a VFS_CAP_REVISION_2 security.capability granting cap_net_raw (effective).
var capValue = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

var mtime = time.Unix(1_700_000_000, 0)

// fixtureEntries is a small rootfs with everything an ordinary user cannot create on disk.
func fixtureEntries() []*tar.Header {
	dir := func(n string, mode int64, uid, gid int) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: mode, Uid: uid, Gid: gid, ModTime: mtime}
	}
	return []*tar.Header{
		dir("./", 0o755, 0, 0),
		dir("./usr/", 0o755, 0, 0),
		dir("./usr/bin/", 0o755, 0, 0),
		{Typeflag: tar.TypeReg, Name: "./usr/bin/su", Mode: 0o4755, Size: 4, ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: "./usr/bin/ping", Mode: 0o755, Size: 4, ModTime: mtime,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": capValue, "SCHILY.xattr.user.note": "hello"}},
		{Typeflag: tar.TypeLink, Name: "./usr/bin/su-link", Linkname: "./usr/bin/su", ModTime: mtime},
		{Typeflag: tar.TypeSymlink, Name: "./usr/bin/sh", Linkname: "dash", ModTime: mtime},
		dir("./home/", 0o755, 0, 0),
		dir("./home/user/", 0o750, 1000, 1000),
		{Typeflag: tar.TypeReg, Name: "./home/user/.profile", Mode: 0o644, Uid: 1000, Gid: 1000, Size: 4, ModTime: mtime},
		dir("./tmp/", 0o1777, 0, 0),
		dir("./var/mail/", 0o2775, 0, 8),
		dir("./dev/", 0o755, 0, 0),
		{Typeflag: tar.TypeChar, Name: "./dev/console", Mode: 0o600, Devmajor: 5, Devminor: 1, ModTime: mtime},
		{Typeflag: tar.TypeLink, Name: "./dev/a-console-link", Linkname: "./dev/console", ModTime: mtime},
		{Typeflag: tar.TypeBlock, Name: "./dev/sda", Mode: 0o660, Gid: 6, Devmajor: 8, Devminor: 0, ModTime: mtime},
		dir("./run/", 0o755, 0, 0),
		{Typeflag: tar.TypeFifo, Name: "./run/initctl", Mode: 0o600, ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: "./etc/shadow", Mode: 0o640, Gid: 42, Size: 4, ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: "./etc/gshadow", Mode: 0, Size: 4, ModTime: mtime},
	}
}

type compressor func(*bytes.Buffer) (interface {
	Write([]byte) (int, error)
	Close() error
}, error)

func makeTar(t testing.TB, hdrs []*tar.Header, comp string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	var err error
	switch comp {
	case "tar":
		w = nopCloser{&buf}
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(w)
	for _, h := range hdrs {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(strings.Repeat("x", int(h.Size)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// inodeInfo is what debugfs "stat" reports about a path.
type inodeInfo struct {
	Type        string
	Mode        string
	User, Group string
	Links       string
	Device      string
}

var (
	reType   = regexp.MustCompile(`Type: (\S+(?: special)?)\s+Mode:\s+(\d+)`)
	reOwner  = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+)`)
	reLinks  = regexp.MustCompile(`Links: (\d+)`)
	reDevice = regexp.MustCompile(`Device major/minor number: ([0-9a-f]+:[0-9a-f]+)`)
)

func statImage(t *testing.T, img, p string) inodeInfo {
	t.Helper()
	debugfs, _ := tool.Find("debugfs", "e2fsprogs")
	out, err := exec.Command(debugfs, "-R", "stat "+quote(p), img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs stat %s: %v\n%s", p, err, out)
	}
	s := string(out)
	var in inodeInfo
	if m := reType.FindStringSubmatch(s); m != nil {
		in.Type, in.Mode = m[1], m[2]
	} else {
		t.Fatalf("debugfs stat %s: no type in\n%s", p, s)
	}
	if m := reOwner.FindStringSubmatch(s); m != nil {
		in.User, in.Group = m[1], m[2]
	}
	if m := reLinks.FindStringSubmatch(s); m != nil {
		in.Links = m[1]
	}
	if m := reDevice.FindStringSubmatch(s); m != nil {
		in.Device = m[1]
	}
	return in
}

func eaGet(t *testing.T, img, p, name string) string {
	t.Helper()
	debugfs, _ := tool.Find("debugfs", "e2fsprogs")
	out := filepath.Join(t.TempDir(), "ea")
	res, err := exec.Command(debugfs, "-R", fmt.Sprintf("ea_get -f %s %s %s", out, quote(p), name), img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs ea_get: %v\n%s", err, res)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("ea_get %s %s: %v (%s)", p, name, err, res)
	}
	return string(b)
}

// buildImage runs the documented pipeline: mkfs.ext4 -d from the extracted tree, then fixups.
func buildImage(t *testing.T, tree *Tree) string {
	t.Helper()
	mkfs, _ := tool.Find("mkfs.ext4", "e2fsprogs")
	img := filepath.Join(t.TempDir(), "system.img")
	testkit.Run(t, mkfs, "-q", "-F", "-d", tree.Dir, "-E", "root_owner=0:0", img, "64M")
	if err := tree.Fixups().Apply(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	if e2fsck, err := tool.Find("e2fsck", "e2fsprogs"); err == nil {
		testkit.Run(t, e2fsck, "-fn", img)
	}
	return img
}

func checkFidelity(t *testing.T, img string) {
	t.Helper()
	want := map[string]inodeInfo{
		"/":                   {Type: "directory", Mode: "0755", User: "0", Group: "0", Links: "10"},
		"/usr/bin/su":         {Type: "regular", Mode: "04755", User: "0", Group: "0", Links: "2"},
		"/usr/bin/su-link":    {Type: "regular", Mode: "04755", User: "0", Group: "0", Links: "2"},
		"/usr/bin/ping":       {Type: "regular", Mode: "0755", User: "0", Group: "0", Links: "1"},
		"/usr/bin/sh":         {Type: "symlink", Mode: "0777", User: "0", Group: "0", Links: "1"},
		"/home/user":          {Type: "directory", Mode: "0750", User: "1000", Group: "1000", Links: "2"},
		"/home/user/.profile": {Type: "regular", Mode: "0644", User: "1000", Group: "1000", Links: "1"},
		"/tmp":                {Type: "directory", Mode: "01777", User: "0", Group: "0", Links: "2"},
		"/var/mail":           {Type: "directory", Mode: "02775", User: "0", Group: "8", Links: "2"},
		"/dev/console":        {Type: "character special", Mode: "0600", User: "0", Group: "0", Links: "2", Device: "05:01"},
		"/dev/a-console-link": {Type: "character special", Mode: "0600", User: "0", Group: "0", Links: "2", Device: "05:01"},
		"/dev/sda":            {Type: "block special", Mode: "0660", User: "0", Group: "6", Links: "1", Device: "08:00"},
		"/run/initctl":        {Type: "FIFO", Mode: "0600", User: "0", Group: "0", Links: "1"},
		"/etc/shadow":         {Type: "regular", Mode: "0640", User: "0", Group: "42", Links: "1"},
		"/etc/gshadow":        {Type: "regular", Mode: "0000", User: "0", Group: "0", Links: "1"},
		"/etc":                {Type: "directory", Mode: "0755", User: "0", Group: "0", Links: "2"},
	}
	for p, w := range want {
		if got := statImage(t, img, p); got != w {
			t.Errorf("%s: got %+v, want %+v", p, got, w)
		}
	}
	if got := eaGet(t, img, "/usr/bin/ping", "security.capability"); got != capValue {
		t.Errorf("security.capability = %x, want %x", got, capValue)
	}
	if got := eaGet(t, img, "/usr/bin/ping", "user.note"); got != "hello" {
		t.Errorf("user.note = %q", got)
	}
}

func TestExtractFidelity(t *testing.T) {
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	testkit.NeedTool(t, "debugfs", "e2fsprogs")
	for _, comp := range []string{"tar", "gzip", "xz", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			data := makeTar(t, fixtureEntries(), comp)
			work := filepath.Join(t.TempDir(), "work")
			tree, err := Extract(context.Background(), bytes.NewReader(data), work, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tree.Entries != len(fixtureEntries()) {
				t.Fatalf("entries = %d", tree.Entries)
			}
			checkFidelity(t, buildImage(t, tree))
		})
	}
}

// TestExtractFidelityAsUser repeats the fidelity check as an unprivileged user when the tests
// run as root, by re-running this test binary under setpriv as nobody.
func TestExtractFidelityAsUser(t *testing.T) {
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	testkit.NeedTool(t, "debugfs", "e2fsprogs")
	if os.Getenv("OTABAKE_ROOTFS_AS_USER") == "1" {
		if os.Geteuid() == 0 {
			t.Fatal("child still runs as root")
		}
		dir := os.Getenv("OTABAKE_ROOTFS_DIR")
		data := makeTar(t, fixtureEntries(), "zstd")
		tree, err := Extract(context.Background(), bytes.NewReader(data), filepath.Join(dir, "work"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkFidelity(t, buildImage(t, tree))
		checkDirAsUser(t, filepath.Join(dir, "src"), filepath.Join(dir, "dirwork"))
		return
	}
	if os.Geteuid() != 0 {
		t.Log("running as an ordinary user already; TestExtractFidelity covers it")
		return
	}
	setpriv := testkit.NeedTool(t, "setpriv", "util-linux", "the unprivileged run did not happen")
	shared, err := os.MkdirTemp("", "rootfs-as-user-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shared)
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	makeRootDir(t, filepath.Join(shared, "src"))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(shared, "rootfs.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-test.run=^TestExtractFidelityAsUser$", "-test.v")
	cmd.Env = append(os.Environ(), "OTABAKE_ROOTFS_AS_USER=1", "OTABAKE_ROOTFS_DIR="+shared, "TMPDIR="+shared, "HOME="+shared)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS")) {
		t.Fatalf("unprivileged run failed: %v\n%s", err, out)
	}
	t.Logf("unprivileged run (uid 65534) passed")
}

// makeRootDir builds, as root, a directory rootfs such as a root-run debootstrap leaves behind.
func makeRootDir(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"usr/bin", "home/nobody"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := []struct {
		name     string
		mode     os.FileMode
		uid, gid int
	}{
		{"usr/bin/su", 0o755 | os.ModeSetuid, 0, 0},
		{"usr/bin/ping", 0o755, 0, 0},
		{"home/nobody/.profile", 0o644, 65534, 65534},
		{"etc-group-owned", 0o644, 0, 42},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, f.uid, f.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(filepath.Join(dir, "home/nobody"), 65534, 65534)
	if err := unix.Lsetxattr(filepath.Join(dir, "usr/bin/ping"), "security.capability", []byte(capValue), 0); err != nil {
		t.Skipf("SKIPPING: cannot set security.capability here: %v", err)
	}
}

// checkDirAsUser runs, as an ordinary user, the directory path of build-release: Open, Clone,
// mkfs.ext4 -d of the clone, fixups.
func checkDirAsUser(t *testing.T, src, work string) {
	tree, err := Open(context.Background(), src, work, Options{})
	if err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(work, "clone")
	if err := Clone(context.Background(), src, clone); err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, &Tree{Dir: clone, fixups: tree.Fixups()})
	want := map[string]inodeInfo{
		"/usr/bin/su":           {Type: "regular", Mode: "04755", User: "0", Group: "0", Links: "1"},
		"/usr/bin/ping":         {Type: "regular", Mode: "0755", User: "0", Group: "0", Links: "1"},
		"/home/nobody":          {Type: "directory", Mode: "0755", User: "0", Group: "0", Links: "2"},
		"/home/nobody/.profile": {Type: "regular", Mode: "0644", User: "0", Group: "0", Links: "1"},
		"/etc-group-owned":      {Type: "regular", Mode: "0644", User: "0", Group: "42", Links: "1"},
	}
	for p, w := range want {
		if got := statImage(t, img, p); got != w {
			t.Errorf("directory input %s: got %+v, want %+v", p, got, w)
		}
	}
	if got := eaGet(t, img, "/usr/bin/ping", "security.capability"); got != capValue {
		t.Errorf("directory input: security.capability = %x", got)
	}
}

func TestExtractRejectsEscapes(t *testing.T) {
	reg := func(n string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: 4, ModTime: mtime}
	}
	tests := []struct {
		name  string
		hdrs  []*tar.Header
		entry string
		want  string
	}{
		{"absolute", []*tar.Header{reg("/etc/passwd")}, "/etc/passwd", "absolute name"},
		{"dotdot", []*tar.Header{reg("./a/../../evil")}, "./a/../../evil", `contains ".."`},
		{"dotdot hidden", []*tar.Header{reg("a/b/../../../evil")}, "a/b/../../../evil", `contains ".."`},
		{"write through symlink", []*tar.Header{{Typeflag: tar.TypeSymlink, Name: "etc", Linkname: "/etc", ModTime: mtime}, reg("etc/passwd")}, "etc/passwd", "is a symlink"},
		{"write through relative symlink", []*tar.Header{{Typeflag: tar.TypeSymlink, Name: "up", Linkname: "../../..", ModTime: mtime}, reg("up/x")}, "up/x", "is a symlink"},
		{"symlink dir then dir", []*tar.Header{{Typeflag: tar.TypeSymlink, Name: "d", Linkname: "/tmp", ModTime: mtime}, {Typeflag: tar.TypeDir, Name: "d/sub", Mode: 0o755, ModTime: mtime}}, "d/sub", "is a symlink"},
		{"hard link outside", []*tar.Header{{Typeflag: tar.TypeLink, Name: "passwd", Linkname: "/etc/passwd", ModTime: mtime}}, "passwd", "absolute name"},
		{"hard link dotdot", []*tar.Header{{Typeflag: tar.TypeLink, Name: "passwd", Linkname: "../../etc/passwd", ModTime: mtime}}, "passwd", `contains ".."`},
		{"hard link to unknown", []*tar.Header{{Typeflag: tar.TypeLink, Name: "x", Linkname: "etc/hostname", ModTime: mtime}}, "x", "not an earlier entry"},
		{"hard link through symlink", []*tar.Header{{Typeflag: tar.TypeSymlink, Name: "etc", Linkname: "/etc", ModTime: mtime}, {Typeflag: tar.TypeLink, Name: "x", Linkname: "etc/passwd", ModTime: mtime}}, "x", "not an earlier entry"},
		{"file as parent", []*tar.Header{reg("f"), reg("f/g")}, "f/g", "not a directory"},
		{"quote in name", []*tar.Header{reg(`a"b`)}, `a"b`, "double quote"},
		{"newline in name", []*tar.Header{reg("a\nb")}, "a\nb", "line break"},
		{"root is a file", []*tar.Header{reg(".")}, ".", "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outside := t.TempDir()
			work := filepath.Join(t.TempDir(), "work")
			data := makeTar(t, tt.hdrs, "tar")
			_, err := Extract(context.Background(), bytes.NewReader(data), work, Options{})
			if err == nil {
				t.Fatal("extraction succeeded")
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.entry)) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want entry %q and %q", err, tt.entry, tt.want)
			}
			if ents, _ := os.ReadDir(work); len(ents) != 0 {
				t.Fatalf("work dir not cleaned: %v", ents)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("wrote outside: %v", ents)
			}
		})
	}
}

func TestExtractCorrupt(t *testing.T) {
	good := makeTar(t, fixtureEntries(), "tar")
	gz := makeTar(t, fixtureEntries(), "gzip")
	zs := makeTar(t, fixtureEntries(), "zstd")
	xzd := makeTar(t, fixtureEntries(), "xz")
	flipped := append([]byte(nil), good...)
	copy(flipped[148:], "99999999") // not an octal checksum
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated tar in data", good[:512*4+2], `in entry "./usr/bin/su"`},
		{"truncated tar header", good[:512*5+100], "archive corrupt at tar offset"},
		{"bad checksum", flipped, "archive corrupt"},
		{"truncated gzip", gz[:len(gz)/2], "gzip archive corrupt"},
		{"truncated zstd", zs[:len(zs)/2], "zstd archive corrupt"},
		{"truncated xz", xzd[:len(xzd)/2], "xz archive corrupt"},
		{"garbage", bytes.Repeat([]byte("garbage!"), 100), "unknown magic bytes"},
		{"bzip2", []byte("BZh91AY&SY"), "bzip2"},
		{"empty", nil, "unknown magic bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := filepath.Join(t.TempDir(), "work")
			_, err := Extract(context.Background(), bytes.NewReader(tt.data), work, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if ents, _ := os.ReadDir(work); len(ents) != 0 {
				t.Fatalf("work dir not cleaned: %v", ents)
			}
		})
	}
}

// TestExtractXZWithoutCLI covers the pure Go decoder used when the xz program is absent.
func TestExtractXZWithoutCLI(t *testing.T) {
	t.Setenv("PATH", "")
	data := makeTar(t, fixtureEntries(), "xz")
	tree, err := Extract(context.Background(), bytes.NewReader(data), filepath.Join(t.TempDir(), "w"), Options{})
	if err != nil || tree.Entries != len(fixtureEntries()) {
		t.Fatalf("extract: %v", err)
	}
	_, err = Extract(context.Background(), bytes.NewReader(data[:len(data)-30]), filepath.Join(t.TempDir(), "w"), Options{})
	if err == nil || !strings.Contains(err.Error(), "xz archive corrupt") {
		t.Fatalf("truncated: err = %v", err)
	}
}

func TestExtractReplacedEntries(t *testing.T) {
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeReg, Name: "a", Mode: 0o644, Size: 4, ModTime: mtime},
		{Typeflag: tar.TypeLink, Name: "b", Linkname: "a", ModTime: mtime},
		{Typeflag: tar.TypeChar, Name: "a", Mode: 0o600, Devmajor: 1, Devminor: 3, ModTime: mtime},
		{Typeflag: tar.TypeLink, Name: "c", Linkname: "b", ModTime: mtime},
		{Typeflag: tar.TypeSymlink, Name: "c", Linkname: "a", ModTime: mtime},
		{Typeflag: tar.TypeDir, Name: "d", Mode: 0o700, ModTime: mtime},
		{Typeflag: tar.TypeDir, Name: "d", Mode: 0o755, Uid: 5, ModTime: mtime},
	}
	tree, err := Extract(context.Background(), bytes.NewReader(makeTar(t, hdrs, "tar")), filepath.Join(t.TempDir(), "w"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fix := strings.Join(tree.Fixups(), "\n")
	if strings.Contains(fix, "ln ") || !strings.Contains(fix, `mknod "a" c 1 3`) || !strings.Contains(fix, `sif "/d" uid 5`) {
		t.Fatalf("fixups:\n%s", fix)
	}
	if st, err := os.Lstat(filepath.Join(tree.Dir, "b")); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("b: %v %v", st, err)
	}
	if l, err := os.Readlink(filepath.Join(tree.Dir, "c")); err != nil || l != "a" {
		t.Fatalf("c: %q %v", l, err)
	}
	if _, err := os.Lstat(filepath.Join(tree.Dir, "a")); !os.IsNotExist(err) {
		t.Fatalf("device a exists on disk: %v", err)
	}
}

func TestExtractNonEmptyWorkDir(t *testing.T) {
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "keep"), nil, 0o644)
	_, err := Extract(context.Background(), bytes.NewReader(makeTar(t, fixtureEntries(), "tar")), work, Options{})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(work, "keep")); err != nil {
		t.Fatal("existing file removed")
	}
}

func TestFixupsDeterministic(t *testing.T) {
	data := makeTar(t, fixtureEntries(), "tar")
	clamp := time.Unix(1_600_000_000, 0)
	var prev []string
	for i := 0; i < 2; i++ {
		tree, err := Extract(context.Background(), bytes.NewReader(data), filepath.Join(t.TempDir(), "w"), Options{Clamp: clamp})
		if err != nil {
			t.Fatal(err)
		}
		fix := tree.Fixups()
		for j, c := range fix {
			fix[j] = strings.ReplaceAll(c, filepath.Dir(tree.Dir), "WORK")
		}
		if i == 1 && strings.Join(prev, "\n") != strings.Join(fix, "\n") {
			t.Fatalf("fixups differ between runs:\n%s\n---\n%s", strings.Join(prev, "\n"), strings.Join(fix, "\n"))
		}
		prev = fix
	}
	joined := strings.Join(prev, "\n")
	for _, want := range []string{`mknod "console" c 5 1`, `sif "/dev/console" mtime @1600000000`, `ln "/dev/console" "/dev/a-console-link"`, `sif "/dev/console" links_count 2`, `mknod "initctl" p`} {
		if !strings.Contains(joined, want) {
			t.Errorf("fixups lack %q:\n%s", want, joined)
		}
	}
}

func TestDetect(t *testing.T) {
	tarHead := make([]byte, 512)
	copy(tarHead[257:], "ustar")
	tests := []struct {
		head []byte
		want Compression
	}{
		{[]byte{0x1f, 0x8b, 8}, Gzip},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, XZ},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
		{tarHead, None},
	}
	for _, tt := range tests {
		if got, err := Detect(tt.head); err != nil || got != tt.want {
			t.Errorf("Detect(%x) = %v, %v; want %v", tt.head[:4], got, err, tt.want)
		}
	}
}

func TestFromDirAndOpen(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "hostname"), []byte("x\n"), 0o644)
	tree, err := Open(context.Background(), dir, filepath.Join(t.TempDir(), "unused"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tree.Dir != dir {
		t.Fatalf("Dir = %s", tree.Dir)
	}
	if os.Geteuid() == 0 && len(tree.Fixups()) != 0 {
		t.Fatalf("root needs no ownership fixups, got %v", tree.Fixups())
	}
	if os.Geteuid() != 0 && len(tree.Fixups()) != 4 {
		t.Fatalf("want uid and gid fixups for etc and etc/hostname, got %v", tree.Fixups())
	}
	kept, err := FromDir(context.Background(), dir, Options{KeepOwners: true})
	if err != nil || len(kept.Fixups()) != 0 {
		t.Fatalf("KeepOwners: %v %v", kept.Fixups(), err)
	}
	arch := filepath.Join(t.TempDir(), "rootfs.tar.zst")
	os.WriteFile(arch, makeTar(t, fixtureEntries(), "zstd"), 0o644)
	tree, err = Open(context.Background(), arch, filepath.Join(t.TempDir(), "w"), Options{})
	if err != nil || tree.Entries != len(fixtureEntries()) {
		t.Fatalf("Open archive: %v", err)
	}
}
