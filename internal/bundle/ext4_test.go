package bundle

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	ext4Once sync.Once
	ext4Path string
	ext4Err  string
)

// ext4Image makes a 64 MiB ext4 image with `mkfs.ext4 -d` from a copy of a real directory tree,
// once per test binary.
func ext4Image(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPING ext4 round trip: %s not found (install Debian package e2fsprogs)", tool)
		}
	}
	ext4Once.Do(func() {
		dir, err := os.MkdirTemp("", "otabake-ext4-")
		if err != nil {
			ext4Err = err.Error()
			return
		}
		tree := filepath.Join(dir, "tree")
		os.Mkdir(tree, 0o755)
		for _, src := range []string{"/usr/share/perl", "/usr/share/i18n", "/usr/share/doc/e2fsprogs"} {
			if _, err := os.Stat(src); err == nil {
				if out, err := exec.Command("cp", "-a", src, tree+"/").CombinedOutput(); err != nil {
					ext4Err = "cp: " + string(out)
					return
				}
			}
		}
		ext4Path = filepath.Join(dir, "rootfs.ext4")
		out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, ext4Path, "64M").CombinedOutput()
		if err != nil {
			ext4Err = "mkfs.ext4: " + string(out)
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

func fileSHA256(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestExt4RoundTrip bundles a real ext4 image with each chunker, with and without compression
// and deduplication, and extracts it back to the exact bytes.
func TestExt4RoundTrip(t *testing.T) {
	img := ext4Image(t)
	want := fileSHA256(t, img)
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
			if got := fileSHA256(t, f.Name()); got != want {
				t.Fatalf("extracted image differs (sha256 %x, want %x)", got, want)
			}
			t.Logf("%s: %d blocks, %d stored, bundle %d bytes (image 64 MiB)", v.name, st.Blocks, st.StoredBlocks, res.Size)
			if v.dedup && st.StoredBlocks >= st.Blocks {
				t.Errorf("deduplication stored every block (%d)", st.Blocks)
			}
		})
	}
}
