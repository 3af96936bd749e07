package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

func TestReplaceFATFile(t *testing.T) {
	mtype := testkit.NeedTool(t, "mtype", "mtools")
	for _, size := range []int64{32 * MiB, 300 * MiB} {
		t.Run(fmt.Sprintf("%dMiB", size/MiB), func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "tree")
			big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320000 bytes: many clusters
			files := map[string][]byte{
				"rugpi/boot_spare.grubenv": bytes.Repeat([]byte{'#'}, 1024),
				"EFI/BOOT/BOOTX64.EFI":     big,
				"a-long-file-name.txt":     []byte("hello"),
			}
			for name, data := range files {
				p := filepath.Join(src, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			img := filepath.Join(dir, "fat.img")
			if err := MakeFAT(context.Background(), src, img, size, FATOptions{Serial: 1, Clamp: time.Unix(1700000000, 0)}); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			newBig := bytes.Repeat([]byte("fedcba9876543210"), 20000)
			for _, c := range []struct {
				path string
				data []byte
			}{
				{"/rugpi/boot_spare.grubenv", bytes.Repeat([]byte{'x'}, 1024)},
				{"EFI/BOOT/bootx64.efi", newBig},
				{"A-LONG-FILE-NAME.TXT", []byte("HELLO")},
			} {
				if err := ReplaceFATFile(f, 0, size, c.path, c.data); err != nil {
					t.Fatalf("ReplaceFATFile(%s): %v", c.path, err)
				}
				out, err := exec.Command(mtype, "-i", img, "::"+strings.TrimPrefix(c.path, "/")).Output()
				if err != nil {
					t.Fatalf("mtype %s: %v", c.path, err)
				}
				if !bytes.Equal(out, c.data) {
					t.Errorf("mtype %s: got %d bytes, not the replacement", c.path, len(out))
				}
			}
			for _, c := range []struct{ path, want string }{
				{"rugpi/missing", "does not exist"},
				{"rugpi", "is a directory"},
				{"a-long-file-name.txt/x", "not a directory"},
				{"a-long-file-name.txt", "only same-size"},
			} {
				err := ReplaceFATFile(f, 0, size, c.path, []byte("toolong!"))
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("ReplaceFATFile(%s) = %v, want %q", c.path, err, c.want)
				}
			}
		})
	}
	if err := ReplaceFATFile(bytesRW(make([]byte, 4096)), 0, 4096, "x", nil); err == nil || !strings.Contains(err.Error(), "no FAT boot sector") {
		t.Errorf("zeros: %v", err)
	}
}

type bytesRW []byte

func (b bytesRW) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(b)) {
		return 0, io.ErrUnexpectedEOF
	}
	return copy(p, b[off:]), nil
}

// WriteAt ignores writes outside the buffer, so a prefix of a disk can stand for all of it.
func (b bytesRW) WriteAt(p []byte, off int64) (int, error) {
	if off >= 0 && off < int64(len(b)) {
		copy(b[off:], p)
	}
	return len(p), nil
}
