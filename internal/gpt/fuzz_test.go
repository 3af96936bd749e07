package gpt_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/image"
)

// memDisk is a disk held in memory; writes outside it are dropped, so a prefix can stand for a
// whole disk.
type memDisk []byte

func (d memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d)) {
		return 0, bytes.ErrTooLarge
	}
	return copy(p, d[off:]), nil
}

func (d memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off >= 0 && off < int64(len(d)) {
		copy(d[off:], p)
	}
	return len(p), nil
}

// FuzzRead: a hostile partition table gives an error, never a panic or an allocation beyond the
// entry-array limit, and every partition of an accepted table has a sane extent.
func FuzzRead(f *testing.F) {
	tg, err := image.TargetByName(image.TargetEFIGrub, "amd64")
	if err != nil {
		f.Fatal(err)
	}
	l, err := image.Plan(tg, image.Sizes{}, 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	seed := make(memDisk, 64<<10)
	if err := image.WriteTable(seed, l, image.DeriveIdentifiers("fuzz", "fuzz@1")); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(seed))
	f.Add([]byte("EFI PART"))
	f.Fuzz(func(t *testing.T, data []byte) {
		table, err := gpt.Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, p := range table.Partitions() {
			if p.Number <= 0 || p.Last < p.First {
				t.Fatalf("accepted partition %+v", p)
			}
		}
	})
}

// FuzzParseGUID checks that every accepted GUID string formats back to itself.
func FuzzParseGUID(f *testing.F) {
	f.Add("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	f.Add("0fc63daf-8483-4772-8e79-3d69d8477de4")
	f.Add("not-a-guid")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := gpt.ParseGUID(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(g.String(), s) || g.Upper() != strings.ToUpper(s) {
			t.Fatalf("ParseGUID(%q) formats as %q / %q", s, g.String(), g.Upper())
		}
	})
}
