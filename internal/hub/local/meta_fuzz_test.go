package local

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzValidateBolt feeds arbitrary files to the bbolt meta validator: it must never panic, and
// whatever it accepts must have a meta page whose high-water mark fits in the file.
func FuzzValidateBolt(f *testing.F) {
	// A real small hub.db: its meta pages, cut at several places.
	dir := f.TempDir()
	if s, err := Open(dir, Options{}); err == nil {
		s.Init(context.Background(), "repo", "pkg")
		s.Close()
		if data, err := os.ReadFile(filepath.Join(dir, "hub.db")); err == nil {
			f.Add(data[:min(len(data), 3*4096)])
			f.Add(data[:min(len(data), 8192+100)])
			f.Add(data[:min(len(data), 4096)])
			f.Add(data[:min(len(data), 100)])
		}
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xED}, 9000))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := validateBolt(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if c.Meta == nil {
			t.Fatal("accepted without a meta")
		}
		if c.Meta.Pgid*uint64(c.Meta.PageSize) > uint64(len(data)) {
			t.Fatalf("accepted a file of %d bytes for %d pages of %d", len(data), c.Meta.Pgid, c.Meta.PageSize)
		}
	})
}
