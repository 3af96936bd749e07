package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/otabake/otabake/internal/rootfs"
)

// Staging copies boot files out of a root filesystem, or out of a directory the project
// names, into the trees that become FAT or ext4 partitions. Every file is read through
// rootfs.Root, so a link is followed as the device would follow it and never out of its
// tree (see internal/rootfs/read.go), and only regular files and directories are copied.

// maxSmallFile bounds files that are small by nature: cmdline.txt, config.txt, boot.env.
const maxSmallFile = 1 << 20

// maxStagedEntries bounds the files and directories one staging copies, so that directory
// links fanning out (a -> b twice, b -> c twice…) cannot multiply a small tree without end.
const maxStagedEntries = 1 << 16

// budget is what a partition can still hold: staging stops at a file that cannot fit instead
// of copying, say, a sparse 24 GB file that the partition could never take.
type budget struct {
	what    string // "config partition"
	size    int64
	used    int64
	entries int
}

func newBudget(what string, size int64) *budget { return &budget{what: what, size: size} }

// take accounts for one entry of n bytes named name.
func (b *budget) take(name string, n int64) error {
	if b == nil {
		return nil
	}
	if b.entries++; b.entries > maxStagedEntries {
		return fmt.Errorf("%s: more than %d files and directories for the %s (directory links fanning out?)", name, maxStagedEntries, b.what)
	}
	if b.size > 0 && n > b.size-b.used {
		return fmt.Errorf("%s is %d bytes, more than the %s has left (%d of %d bytes)", name, n, b.what, b.size-b.used, b.size)
	}
	b.used += n
	return nil
}

// copyFrom copies the regular file name of r to dst.
func copyFrom(r *rootfs.Root, name, dst string, b *budget) error {
	in, err := r.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	return copyOpen(in, name, dst, b)
}

// copyOpen copies the open regular file in, named name in messages, to dst.
func copyOpen(in *os.File, name, dst string, b *budget) error {
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := b.take(name, fi.Size()); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	// At most the size accounted for, should the file grow meanwhile.
	if _, err := io.Copy(out, io.LimitReader(in, fi.Size())); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", name, err)
	}
	return out.Close()
}

// copyTree copies the directory dir of r into dst: regular files and directories, links
// followed inside r (FAT has none). Anything else is an error naming it, and so is a link
// back to a directory being copied.
func copyTree(r *rootfs.Root, dir, dst string, b *budget) error {
	res, err := r.Resolve(dir)
	if err != nil {
		return err
	}
	fi, err := r.Stat(res)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is %s, not a directory", dir, rootfs.TypeName(fi.Mode()))
	}
	return copyDir(r, res, dst, b, []string{res})
}

// copyDir copies the resolved directory dir; stack holds the resolved directories being
// copied, to refuse link loops.
func copyDir(r *rootfs.Root, dir, dst string, b *budget, stack []string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := r.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := path.Join(dir, e.Name())
		target := filepath.Join(dst, e.Name())
		fi, err := r.Stat(name)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			res, err := r.Resolve(name)
			if err != nil {
				return err
			}
			for _, s := range stack {
				if res == "." || res == s || strings.HasPrefix(s, res+"/") {
					return fmt.Errorf("%s leads back to %s, which is being copied: %w", name, res, errLinkLoop)
				}
			}
			if err := b.take(name, 0); err != nil {
				return err
			}
			if err := copyDir(r, res, target, b, append(stack, res)); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyFrom(r, name, target, b); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s is %s: a boot partition holds only regular files and directories", name, rootfs.TypeName(fi.Mode()))
		}
	}
	return nil
}

var errLinkLoop = errors.New("symbolic link loop")

// openConfigured opens a file the project names directly (a GRUB EFI binary): not part of a
// root filesystem, so a link is followed as the user made it, but it must be a regular file,
// and a FIFO must not block the build.
func openConfigured(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is %s, %w", p, rootfs.TypeName(fi.Mode()), rootfs.ErrNotRegular)
	}
	return f, nil
}

// copyConfigured copies the configured file p to dst.
func copyConfigured(p, dst string, b *budget) error {
	in, err := openConfigured(p)
	if err != nil {
		return err
	}
	defer in.Close()
	return copyOpen(in, p, dst, b)
}

// isNotExist reports a name that is simply not there, as opposed to one refused (a link out
// of its tree, a FIFO) or unreadable.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
