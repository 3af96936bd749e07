package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// testImage builds a small efi-grub disk image once per test.
func testImage(t *testing.T) string {
	t.Helper()
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	dir := t.TempDir()
	return buildImage(t, dir, TargetEFIGrub, "amd64", fakeRootfs(t, dir)).img
}

// sparseInput makes a file that exercises every path of the chunked compressor: a full zero
// chunk (the cached stream), a chunk with some data, a second zero chunk and a short tail.
func sparseInput(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := bytes.Repeat([]byte("otabake sparse test data "), 40000)
	f.WriteAt(data, xzChunkSize+12345)
	f.WriteAt([]byte("tail"), 3*xzChunkSize+1000)
	return p
}

func TestCompressXZ(t *testing.T) {
	xzTool := testkit.NeedTool(t, "xz", "xz-utils")
	img := sparseInput(t)
	dir := t.TempDir()
	var outs [][]byte
	for _, workers := range []int{1, 2} {
		out := filepath.Join(dir, "system.img.xz")
		if err := CompressXZ(context.Background(), img, out, workers); err != nil {
			t.Fatal(err)
		}
		testkit.Run(t, xzTool, "-t", out)
		data, _ := os.ReadFile(out)
		outs = append(outs, data)
		plain, err := exec.Command(xzTool, "-dc", out).Output()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(img)
		if !bytes.Equal(plain, want) {
			t.Fatalf("workers=%d: xz -d output differs from the image (%d vs %d bytes)", workers, len(plain), len(want))
		}
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("output depends on the worker count")
	}
	st, _ := os.Stat(img)
	t.Logf("image %d bytes -> xz %d bytes", st.Size(), len(outs[0]))
}

func TestCompressZstd(t *testing.T) {
	zstdTool := testkit.NeedTool(t, "zstd", "zstd")
	img := sparseInput(t)
	out := filepath.Join(t.TempDir(), "system.img.zst")
	if err := CompressZstd(context.Background(), img, out, 1); err != nil {
		t.Fatal(err)
	}
	one, _ := os.ReadFile(out)
	if err := CompressZstd(context.Background(), img, out, 2); err != nil {
		t.Fatal(err)
	}
	if two, _ := os.ReadFile(out); !bytes.Equal(one, two) {
		t.Error("zstd output depends on the worker count")
	}
	plain, err := exec.Command(zstdTool, "-dc", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(img)
	if !bytes.Equal(plain, want) {
		t.Fatal("zstd -d output differs from the image")
	}
}

func TestCompressCancelled(t *testing.T) {
	img := filepath.Join(t.TempDir(), "in")
	os.WriteFile(img, bytes.Repeat([]byte("abc"), 1<<20), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := img + ".xz"
	if err := CompressXZ(ctx, img, out, 2); err == nil {
		t.Fatal("cancelled compression succeeded")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("partial output left: %v", err)
	}
}

func TestBmapCopy(t *testing.T) {
	bmaptool := testkit.NeedTool(t, "bmaptool", "bmap-tools")
	img := testImage(t)
	dir := t.TempDir()
	bmap := filepath.Join(dir, "system.img.bmap")
	if err := WriteBmap(img, bmap); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "copy.img")
	testkit.Run(t, bmaptool, "copy", "--bmap", bmap, img, out)
	if a, b := testkit.SHA256File(t, img), testkit.SHA256File(t, out); a != b {
		t.Fatalf("bmaptool copy gives %s, image is %s", b, a)
	}
	// A corrupted bmap must be refused by bmaptool, which proves the checksum is checked.
	data, _ := os.ReadFile(bmap)
	bad := bytes.Replace(data, []byte("<BlockSize> 4096"), []byte("<BlockSize> 4097"), 1)
	os.WriteFile(bmap, bad, 0o644)
	if err := exec.Command(bmaptool, "copy", "--bmap", bmap, img, out+"2").Run(); err == nil {
		t.Error("bmaptool accepted a bmap with a wrong file checksum")
	}
}

func TestCompressDispatch(t *testing.T) {
	in := filepath.Join(t.TempDir(), "img")
	os.WriteFile(in, []byte("data"), 0o644)
	if out, err := CompressionNone.Compress(context.Background(), in, 1); err != nil || out != in {
		t.Errorf("none: %q, %v", out, err)
	}
	if out, err := CompressionZstd.Compress(context.Background(), in, 1); err != nil || out != in+".zst" {
		t.Errorf("zst: %q, %v", out, err)
	}
	if _, err := Compression("lz4").Compress(context.Background(), in, 1); err == nil {
		t.Error("unknown format accepted")
	}
	for in, want := range map[string]Compression{"": CompressionXZ, "xz": CompressionXZ, "zst": CompressionZstd, "none": CompressionNone} {
		if got, err := ParseCompression(in); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseCompression("gz"); err == nil || !strings.Contains(err.Error(), "want xz, zst or none") {
		t.Errorf("ParseCompression(gz) = %v", err)
	}
}
