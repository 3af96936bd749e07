package bundle

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

var (
	ext4Once sync.Once
	ext4Path string
	ext4Err  string
)

// ext4Image makes a 64 MiB ext4 image with testkit.MakeExt4 from copies of real directory
// trees, once per test binary; TestMain removes it.
func ext4Image(t *testing.T) string {
	t.Helper()
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs", "the ext4 round trip did not run")
	ext4Once.Do(func() {
		dir, err := os.MkdirTemp("", "otabake-ext4-")
		if err != nil {
			ext4Err = err.Error()
			return
		}
		ext4Path, err = testkit.MakeExt4(dir, testkit.Ext4Options{
			Size:    "64M",
			Sources: []string{"/usr/share/perl", "/usr/share/i18n", "/usr/share/doc/e2fsprogs"},
		})
		if err != nil {
			ext4Path, ext4Err = "", err.Error()
			os.RemoveAll(dir)
		}
	})
	if ext4Err != "" {
		t.Fatal(ext4Err)
	}
	return ext4Path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ext4Path != "" {
		os.RemoveAll(filepath.Dir(ext4Path))
	}
	os.Exit(code)
}

// TestExt4RoundTrip bundles a real ext4 image with each chunker, with and without compression
// and deduplication, and extracts it back to the exact bytes.
func TestExt4RoundTrip(t *testing.T) {
	img := ext4Image(t)
	want := testkit.SHA256File(t, img)
	type variant struct {
		name    string
		chunker string
		dedup   bool
		level   *int
	}
	var vs []variant
	for _, ch := range []string{"casync-64", "fixed-64"} {
		vs = append(vs,
			variant{ch + "/plain", ch, false, nil},
			variant{ch + "/dedup", ch, true, nil},
			variant{ch + "/dedup-xz0", ch, true, level(0)},
		)
	}
	vs = append(vs, variant{"casync-64/xz6", "casync-64", false, level(6)})
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			enc := &BlockEncoding{Chunker: v.chunker, Deduplicate: v.dedup}
			if v.level != nil {
				enc.Compression = &Compression{Level: v.level}
			}
			out := filepath.Join(dir, "b.rugixb")
			res, err := Create(context.Background(), out, Spec{Payloads: []Payload{{Slot: "system", Path: img, BlockEncoding: enc}}}, CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			f, err := os.Create(filepath.Join(dir, "system.img"))
			if err != nil {
				t.Fatal(err)
			}
			st, err := b.ExtractPayload(context.Background(), 0, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := testkit.SHA256File(t, f.Name()); got != want {
				t.Fatalf("extracted image differs (sha256 %s, want %s)", got, want)
			}
			t.Logf("%s: %d blocks, %d stored, bundle %d bytes (image 64 MiB)", v.name, st.Blocks, st.StoredBlocks, res.Size)
			if v.dedup && st.StoredBlocks >= st.Blocks {
				t.Errorf("deduplication stored every block (%d)", st.Blocks)
			}
		})
	}
}
