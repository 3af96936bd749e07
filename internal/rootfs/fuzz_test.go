package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzExtract feeds arbitrary archives to Extract: it must never panic, never write outside
// its work directory and leave the work directory empty whenever it fails.
func FuzzExtract(f *testing.F) {
	f.Add(makeTar(f, fixtureEntries(), "tar"))
	f.Add(makeTar(f, fixtureEntries()[:6], "gzip"))
	f.Add(makeTar(f, []*tar.Header{
		{Typeflag: tar.TypeSymlink, Name: "etc", Linkname: "/etc"},
		{Typeflag: tar.TypeReg, Name: "etc/passwd", Size: 4},
	}, "tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		work := filepath.Join(base, "work")
		tree, err := Extract(context.Background(), bytes.NewReader(data), work, Options{})
		ents, _ := os.ReadDir(base)
		if len(ents) > 1 {
			t.Fatalf("wrote next to the work directory: %v", ents)
		}
		if err != nil {
			if ents, _ := os.ReadDir(work); len(ents) != 0 {
				t.Fatalf("failed extraction left %v", ents)
			}
			return
		}
		for _, c := range tree.Fixups() {
			if bytes.ContainsAny([]byte(c), "\n\r") {
				t.Fatalf("fixup with a line break: %q", c)
			}
		}
	})
}

// FuzzRootRead resolves and reads fuzzed names in a tree with two fuzzed symlinks, a
// directory link among them, next to a file outside the root: nothing may ever resolve
// outside the root or read that file.
func FuzzRootRead(f *testing.F) {
	for _, seed := range [][3]string{
		{"a/l1/f", "b", "/a"},
		{"l2/b/f", "../../outside/secret", "/a"},
		{"a/l1", "/../outside/secret", "a/l1"},
		{"l2/l1/../b/f", ".", "a"},
		{"l2", "../..", "a/l1/../../../outside"},
		{"a/l1/x/../f", "b", "l2"},
		{"/l2/../a/b/f", "/proc/self/environ", "/dev/zero"},
		{"a/l1/../../../outside/secret", "//a//b/", "a/./b/../b/f"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, name, target1, target2 string) {
		if len(name) > 512 || len(target1) > 512 || len(target2) > 512 {
			return
		}
		dir := t.TempDir()
		root := filepath.Join(dir, "root")
		if err := os.MkdirAll(filepath.Join(root, "a/b"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Mkdir(filepath.Join(dir, "outside"), 0o755)
		os.WriteFile(filepath.Join(dir, "outside/secret"), []byte("SECRET"), 0o644)
		os.WriteFile(filepath.Join(root, "a/b/f"), []byte("inside"), 0o644)
		if os.Symlink(target1, filepath.Join(root, "a/l1")) != nil || os.Symlink(target2, filepath.Join(root, "l2")) != nil {
			return // not a valid link target (empty, NUL)
		}
		r, err := OpenRoot(root)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if res, err := r.Resolve(name); err == nil {
			if res != "." && (path.IsAbs(res) || res != path.Clean(res) || res == ".." || strings.HasPrefix(res, "../")) {
				t.Fatalf("Resolve(%q) = %q, not a clean path inside the root", name, res)
			}
		} else if strings.Contains(err.Error(), dir) {
			t.Fatalf("error names a host path: %v", err)
		}
		data, err := r.ReadFile(name, 1<<10)
		if err == nil && string(data) != "inside" {
			t.Fatalf("ReadFile(%q) = %q: read something that is not the tree's only file", name, data)
		}
		if _, err := r.Stat(name); err != nil && strings.Contains(err.Error(), dir) {
			t.Fatalf("error names a host path: %v", err)
		}
		if ents, err := r.ReadDir(name); err == nil {
			for _, e := range ents {
				if e.Name() == "secret" {
					t.Fatalf("ReadDir(%q) listed the directory outside the root", name)
				}
			}
		}
	})
}
