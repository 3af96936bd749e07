package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

// FuzzRewriteCmdline feeds arbitrary cmdline.txt contents (they come from the rootfs) to the
// Rugix patch: the result must end with the Rugix arguments and carry no other root= or init=.
func FuzzRewriteCmdline(f *testing.F) {
	f.Add("console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 fsck.repair=yes rootwait quiet\n")
	f.Add("")
	f.Add("init=/bin/sh panic=5\troot=PARTUUID=1234-02")
	f.Fuzz(func(t *testing.T, cmdline string) {
		got := RewriteCmdline(cmdline, "PARTUUID=6F746162-05")
		if !strings.HasSuffix(got, "panic=60 root=PARTUUID=6F746162-05 init=/usr/bin/rugix-ctrl") {
			t.Fatalf("missing Rugix arguments: %q", got)
		}
		fields := strings.Fields(got)
		for _, f := range fields[:len(fields)-3] {
			if strings.HasPrefix(f, "root=") || strings.HasPrefix(f, "init=") || strings.HasPrefix(f, "panic") || f == "quiet" {
				t.Fatalf("leftover argument %q in %q", f, got)
			}
		}
		if strings.ContainsAny(got, "\n\t") {
			t.Fatalf("whitespace other than spaces in %q", got)
		}
	})
}

func TestGrubScriptsParse(t *testing.T) {
	check := testkit.NeedTool(t, "grub-script-check", "grub-common")
	for name, script := range map[string]string{"first": GrubFirstStage, "second": GrubSecondStage, "embedded": grubEmbedded,
		"rauc first": RaucGrubFirstStage("PARTUUID=a", "PARTUUID=b")} {
		p := filepath.Join(t.TempDir(), name+".cfg")
		if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		testkit.Run(t, check, p)
	}
}

// FuzzReplaceFATFile: rewriting a file in a hostile FAT image fails cleanly or writes inside
// the image.
func FuzzReplaceFATFile(f *testing.F) {
	dir := f.TempDir()
	src := filepath.Join(dir, "tree", "rugpi")
	if err := os.MkdirAll(src, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "boot_spare.grubenv"), bytes.Repeat([]byte{'#'}, 1024), 0o644); err != nil {
		f.Fatal(err)
	}
	img := filepath.Join(dir, "fat.img")
	if err := MakeFAT(context.Background(), filepath.Join(dir, "tree"), img, 16*MiB, FATOptions{Serial: 7, Clamp: time.Unix(1e9, 0)}); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed[:256<<10])
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ReplaceFATFile(bytesRW(data), 0, int64(len(data)), "rugpi/boot_spare.grubenv", bytes.Repeat([]byte{'x'}, 1024))
	})
}
