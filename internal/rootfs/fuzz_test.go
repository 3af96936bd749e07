package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
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
