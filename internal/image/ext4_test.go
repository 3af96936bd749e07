package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

// TestExt4AtimeIsMtime: the atimes of the staged tree (which reading it during the build moves
// to the clock's time) never reach the image: every atime is the inode's clamped mtime, so
// two builds of the same tree are byte-identical however often it was read in between.
func TestExt4AtimeIsMtime(t *testing.T) {
	debugfs := testkit.NeedTool(t, "debugfs", "e2fsprogs")
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	dir := t.TempDir()
	rootfs := fakeRootfs(t, dir)
	old := testEpoch.Add(-time.Hour) // an mtime before the clamp, kept
	if err := os.Chtimes(filepath.Join(rootfs, "usr/bin/rugix-ctrl"), old, old); err != nil {
		t.Fatal(err)
	}
	ids := DeriveIdentifiers("demo", "demo@1")
	opts := Ext4Options{Clamp: testEpoch, UUID: ids.Ext4UUID(2), HashSeed: ids.Ext4HashSeed(2)}
	var imgs []string
	for i, atime := range []time.Time{old.Add(time.Minute), testEpoch.Add(time.Hour)} { // below and above the clamp
		if err := os.Chtimes(filepath.Join(rootfs, "usr/bin/rugix-ctrl"), atime, old); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(dir, fmt.Sprintf("s%d.img", i))
		if err := MakeExt4(context.Background(), rootfs, img, 32*MiB, opts); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	if a, b := testkit.SHA256File(t, imgs[0]), testkit.SHA256File(t, imgs[1]); a != b {
		t.Errorf("images differ with only the source's atime changed: %s vs %s", a, b)
	}
	for path, want := range map[string]time.Time{"/usr/bin/rugix-ctrl": old, "/etc/os-release": testEpoch} {
		out := testkit.Run(t, debugfs, "-R", "stat "+path, imgs[0])
		for _, f := range []string{" atime", " mtime"} {
			if line := fmt.Sprintf("%s: 0x%x:", f, want.Unix()); !strings.Contains(out, line) {
				t.Errorf("%s: stat lacks %q:\n%s", path, line, out)
			}
		}
	}
}
