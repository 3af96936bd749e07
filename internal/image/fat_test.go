package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/otabake/otabake/internal/rootfs"
	"github.com/otabake/otabake/internal/testkit"
)

func TestMakeFATWithFieldTools(t *testing.T) {
	fsck := testkit.NeedTool(t, "fsck.vfat", "dosfstools")
	src := t.TempDir()
	testkit.WriteFile(t, filepath.Join(src, "UPPER.TXT"), "upper")
	testkit.WriteFile(t, filepath.Join(src, "lower.txt"), "lower")
	testkit.WriteFile(t, filepath.Join(src, "Mixed.Txt"), "mixed")
	testkit.WriteFile(t, filepath.Join(src, ".rugix/bootstrap"), "")
	testkit.WriteFile(t, filepath.Join(src, "overlays/vc4-kms-v3d-pi4.dtbo"), strings.Repeat("o", 5000))
	testkit.WriteFile(t, filepath.Join(src, "boot_spare.disabled.env"), "x")
	testkit.WriteFile(t, filepath.Join(src, "boot_spare.enabled.env"), "y")
	testkit.WriteFile(t, filepath.Join(src, "a/b/c/deep file with spaces.txt"), "deep")
	for i := range 40 {
		testkit.WriteFile(t, filepath.Join(src, fmt.Sprintf("many/long-file-name-%02d.dat", i)), strings.Repeat("m", i*100))
	}
	tests := []struct {
		name string
		size int64
		want string // what file(1)-like check: FAT16 or FAT32 in the boot sector
	}{
		{"fat16-16MiB", 16 * MiB, "FAT16   "},
		{"fat16-256MiB", 256 * MiB, "FAT16   "},
		{"fat32-3GiB", 3 << 30, "FAT32   "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "fat.img")
			if err := MakeFAT(context.Background(), src, img, tt.size, FATOptions{Serial: 0x12345678, Clamp: testEpoch}); err != nil {
				t.Fatal(err)
			}
			testkit.Run(t, fsck, "-n", img)
			b := make([]byte, 512)
			f, _ := os.Open(img)
			f.ReadAt(b, 0)
			f.Close()
			if !strings.Contains(string(b[:100]), tt.want) {
				t.Errorf("boot sector does not say %q", tt.want)
			}
			out := extractFAT(t, img, dir)
			err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(src, p)
				want, _ := os.ReadFile(p)
				got, err := os.ReadFile(filepath.Join(out, rel))
				if err != nil || string(got) != string(want) {
					t.Errorf("%s: got %d bytes, %v", rel, len(got), err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMakeFATErrors(t *testing.T) {
	src := t.TempDir()
	testkit.WriteFile(t, filepath.Join(src, "big"), strings.Repeat("x", 3*MiB))
	dir := t.TempDir()
	img := filepath.Join(dir, "fat.img")
	if err := MakeFAT(context.Background(), src, img, 3*MiB, FATOptions{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("overfull: err = %v", err)
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Errorf("partial image left: %v", err)
	}
	if err := MakeFAT(context.Background(), src, img, 512*1024, FATOptions{}); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("tiny: err = %v", err)
	}
	os.Remove(filepath.Join(src, "big"))
	os.Symlink("nowhere", filepath.Join(src, "dangling"))
	if err := MakeFAT(context.Background(), src, img, 8*MiB, FATOptions{}); err == nil {
		t.Error("dangling symlink accepted")
	}
	os.Remove(filepath.Join(src, "dangling"))
	testkit.WriteFile(t, filepath.Join(src, "bad:name"), "x")
	if err := MakeFAT(context.Background(), src, img, 8*MiB, FATOptions{}); err == nil || !strings.Contains(err.Error(), "characters FAT does not allow") {
		t.Errorf("bad name: err = %v", err)
	}
}

func TestFindInRootStaysInside(t *testing.T) {
	root := t.TempDir()
	testkit.WriteFile(t, filepath.Join(root, "boot/vmlinuz-1"), "k")
	outside := t.TempDir()
	testkit.WriteFile(t, filepath.Join(outside, "secret"), "s")
	os.Symlink("/boot/vmlinuz-1", filepath.Join(root, "abs"))
	os.Symlink("../../../../../../"+outside+"/secret", filepath.Join(root, "escape"))
	os.Symlink(outside+"/secret", filepath.Join(root, "host"))
	os.Symlink("loop", filepath.Join(root, "loop"))
	r, err := rootfs.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tt := range []struct {
		candidates []string
		want, why  string
	}{
		{[]string{"abs"}, "abs", ""},
		{[]string{"escape", "host", "loop", "boot/vmlinuz-*"}, "boot/vmlinuz-1", ""},
		{[]string{"escape"}, "", "climbs above the root"},
		{[]string{"host"}, "", ""}, // resolves inside the root, where it does not exist
		{[]string{"loop"}, "", "too many levels"},
		{[]string{"boot"}, "", "is a directory"},
	} {
		got, tried := findInRoot(r, tt.candidates)
		if got != tt.want || !strings.Contains(strings.Join(tried, " "), tt.why) {
			t.Errorf("findInRoot(%q) = %q, %q; want %q, tried mentioning %q", tt.candidates, got, tried, tt.want, tt.why)
		}
	}
}

func TestRewriteCmdline(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"console=tty1 root=/dev/mmcblk0p2 rootwait quiet init=/sbin/init panic=5\n", "console=tty1 rootwait panic=60 root=R init=/usr/bin/rugix-ctrl"},
		{"", "panic=60 root=R init=/usr/bin/rugix-ctrl"},
	} {
		if got := RewriteCmdline(tt.in, "R"); got != tt.want {
			t.Errorf("RewriteCmdline(%q) = %q", tt.in, got)
		}
	}
}

func TestCopyTreeStaysInside(t *testing.T) {
	outside := t.TempDir()
	testkit.WriteFile(t, filepath.Join(outside, "secret"), "HOST SECRET")
	tests := []struct {
		name  string
		setup func(t *testing.T, src string)
		want  string // error text; "" for success
	}{
		{"links inside", func(t *testing.T, src string) {
			os.Symlink("sub/inner.txt", filepath.Join(src, "link-inside"))
			os.Symlink("/sub", filepath.Join(src, "abs-dir"))
		}, ""},
		{"absolute link to a host file", func(t *testing.T, src string) {
			os.Symlink("/etc/passwd", filepath.Join(src, "host"))
		}, "does not exist"},
		{"relative link out", func(t *testing.T, src string) {
			os.Symlink("../../../../../../../.."+outside+"/secret", filepath.Join(src, "up"))
		}, "climbs above the root"},
		{"directory link to a host directory", func(t *testing.T, src string) {
			os.Symlink(outside, filepath.Join(src, "overlays"))
		}, "does not exist"},
		{"link loop", func(t *testing.T, src string) {
			os.Symlink("..", filepath.Join(src, "sub/up"))
		}, "symbolic link loop"},
		{"FIFO", func(t *testing.T, src string) {
			if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "fifo is a named pipe (FIFO)"},
		{"larger than the partition", func(t *testing.T, src string) {
			f, _ := os.Create(filepath.Join(src, "big"))
			f.Truncate(24 << 30)
			f.Close()
		}, "big is 25769803776 bytes, more than the boot partition has left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			testkit.WriteFile(t, filepath.Join(src, "ok.txt"), "ok")
			testkit.WriteFile(t, filepath.Join(src, "sub/inner.txt"), "inner")
			tt.setup(t, src)
			r, err := rootfs.OpenRoot(src)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			dst := filepath.Join(t.TempDir(), "dst")
			err = copyTree(r, ".", dst, newBudget("boot partition", 16*MiB))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range []string{"ok.txt", "sub/inner.txt", "link-inside", "abs-dir/inner.txt"} {
					if _, err := os.Stat(filepath.Join(dst, f)); err != nil {
						t.Errorf("not copied: %v", err)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
				if data, _ := os.ReadFile(p); strings.Contains(string(data), "HOST SECRET") {
					t.Errorf("%s holds the host's file", p)
				}
				return nil
			})
		})
	}
}

func TestGrubMkimageReproducible(t *testing.T) {
	testkit.NeedTool(t, "grub-mkimage", "grub-common")
	testkit.NeedFile(t, "/usr/lib/grub/x86_64-efi/linux.mod", "grub-efi-amd64-bin")
	var sums []string
	for range 2 {
		dir := t.TempDir()
		out := filepath.Join(dir, "BOOTX64.efi")
		if err := grubMkimage(context.Background(), "/usr/lib/grub/x86_64-efi", "x86_64-efi", out, dir, testEpoch); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, testkit.SHA256File(t, out))
	}
	if sums[0] != sums[1] {
		t.Errorf("grub-mkimage output differs: %v", sums)
	}
}
