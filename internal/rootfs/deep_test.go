package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deepArchive is a chain of depth directories named "d", each holding a small file, with a
// symlink at the bottom: a deep tree such as node_modules or a Yocto sysroot produces.
func deepArchive(t testing.TB, depth int) []byte {
	t.Helper()
	var hdrs []*tar.Header
	dir := ""
	for i := 0; i < depth; i++ {
		dir += "d/"
		hdrs = append(hdrs,
			&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mtime},
			&tar.Header{Typeflag: tar.TypeReg, Name: dir + "f", Mode: 0o644, Size: 1, ModTime: mtime},
		)
	}
	hdrs = append(hdrs, &tar.Header{Typeflag: tar.TypeSymlink, Name: dir + "up", Linkname: "..", ModTime: mtime})
	return makeTar(t, hdrs, "tar")
}

// TestExtractDeepPath extracts a 2,000-level deep tree. Every operation used to resolve its
// whole name again, component by component, so the extraction cost grew with the square of
// the depth (13 s here for 2,000 levels, against 1.5 s for a flat tree of as many entries); it now keeps the directory chain open.
func TestExtractDeepPath(t *testing.T) {
	const depth = 2000
	data := deepArchive(t, depth)
	work := filepath.Join(t.TempDir(), "w")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	tree, err := Extract(ctx, bytes.NewReader(data), work, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("extracted %d entries, %d levels deep, in %v", tree.Entries, depth, time.Since(start))
	if want := 2*depth + 1; tree.Entries != want {
		t.Fatalf("entries = %d, want %d", tree.Entries, want)
	}
	// Check the bottom through an os.Root, which has no PATH_MAX limit.
	root, err := os.OpenRoot(tree.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	bottom := strings.Repeat("d/", depth)
	fi, err := root.Lstat(bottom + "f")
	if err != nil || fi.Size() != 1 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("bottom file: %v, %v", fi, err)
	}
	if target, err := root.Readlink(bottom + "up"); err != nil || target != ".." {
		t.Fatalf("bottom link: %q, %v", target, err)
	}
	fi, err = root.Lstat(bottom)
	if err != nil || fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("bottom directory: %v, %v", fi, err)
	}
}

// flatArchive has as many entries as deepArchive(depth), all one level deep: the linear
// baseline deep archives are compared with.
func flatArchive(t testing.TB, n int) []byte {
	t.Helper()
	var hdrs []*tar.Header
	for i := 0; i < n; i++ {
		dir := fmt.Sprintf("d%d/", i)
		hdrs = append(hdrs,
			&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mtime},
			&tar.Header{Typeflag: tar.TypeReg, Name: dir + "f", Mode: 0o644, Size: 1, ModTime: mtime},
		)
	}
	return makeTar(t, hdrs, "tar")
}

// BenchmarkExtractDeep compares deep chains with flat trees of the same size; the times per
// archive should grow linearly and stay close to each other.
func BenchmarkExtractDeep(b *testing.B) {
	for _, n := range []int{250, 500, 1000, 2000} {
		for _, shape := range []struct {
			name string
			make func(testing.TB, int) []byte
		}{{"deep", deepArchive}, {"flat", flatArchive}} {
			data := shape.make(b, n)
			b.Run(fmt.Sprintf("%s-%d", shape.name, n), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					work := filepath.Join(b.TempDir(), "w")
					if _, err := Extract(context.Background(), bytes.NewReader(data), work, Options{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
