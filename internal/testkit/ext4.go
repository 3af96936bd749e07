package testkit

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/otabake/otabake/internal/tool"
)

// Ext4Options describe a small, realistic ext4 image made with `mkfs.ext4 -d` from copies of
// directories of the host.
type Ext4Options struct {
	// Size is the filesystem size as mkfs.ext4 takes it ("12M", "64M").
	Size string
	// BlockSize is passed as -b when not zero.
	BlockSize int
	// MkfsArgs are further mkfs.ext4 arguments, such as -E root_owner=0:0.
	MkfsArgs []string
	// Sources are host directories copied into the image, each as a top-level directory
	// named after its last element; missing ones are left out. Regular files and symlinks are
	// copied, with the directories that hold them; what cannot be read is left out.
	Sources []string
	// Budget, when not zero, stops the copy after about this many bytes of file data: files
	// larger than what is left are left out, and the copy ends when less than 64 KiB is left.
	Budget int64
}

// Ext4Image makes the image in dir (a new temporary directory when dir is "") and returns its
// path, dir/fs.ext4. It skips the test loudly when mkfs.ext4 is missing and fails it when the
// image cannot be made.
func Ext4Image(t testing.TB, dir string, o Ext4Options) string {
	t.Helper()
	NeedTool(t, "mkfs.ext4", "e2fsprogs", "the tests on a real ext4 image did not run")
	if dir == "" {
		dir = t.TempDir()
	}
	p, err := MakeExt4(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// MakeExt4 is Ext4Image without a test, for images shared by several tests (built once, under
// a sync.Once, and removed by TestMain). The source tree is dir/tree.
func MakeExt4(dir string, o Ext4Options) (string, error) {
	mkfs, err := tool.Find("mkfs.ext4", "e2fsprogs")
	if err != nil {
		return "", err
	}
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return "", err
	}
	budget := o.Budget
	for _, src := range o.Sources {
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := copySample(src, filepath.Join(tree, filepath.Base(src)), o.Budget != 0, &budget); err != nil {
			return "", fmt.Errorf("copy %s into the ext4 tree: %w", src, err)
		}
	}
	img := filepath.Join(dir, "fs.ext4")
	args := []string{"-q", "-F"}
	if o.BlockSize != 0 {
		args = append(args, "-b", strconv.Itoa(o.BlockSize))
	}
	args = append(args, o.MkfsArgs...)
	args = append(args, "-d", tree, img, o.Size)
	if out, err := exec.Command(mkfs, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkfs.ext4 %v: %v\n%s", args, err, out)
	}
	return img, nil
}

// copySample copies the tree at src to dst, leaving out what cannot be read; with bounded, it
// stops when *budget runs low.
func copySample(src, dst string, bounded bool, budget *int64) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if bounded && *budget < 64<<10 {
			return fs.SkipAll
		}
		if err != nil {
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil || (bounded && info.Size() > *budget) {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			*budget -= int64(len(data))
			return os.WriteFile(target, data, info.Mode().Perm()|0o600)
		}
		return nil
	})
}
