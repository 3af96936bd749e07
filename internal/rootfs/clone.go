package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Clone copies the directory tree src to dst (which must not exist) so that a build can bake
// into a root filesystem without touching the user's tree. Modes, modification times,
// symlinks, hard links within the tree, FIFOs and extended attributes are kept; ownership is
// kept when running as root. File data goes through copy_file_range, which reflinks on
// filesystems that can. Device nodes need root: without it they are an error naming the node
// (a tarball input records them instead).
func Clone(ctx context.Context, src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("clone %s: %s already exists", src, dst)
	}
	root := os.Geteuid() == 0
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	var dirs []string // directories whose mtimes are set after their contents
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("clone %s: no stat information", p)
		}
		mode := fi.Mode()
		if !mode.IsDir() && st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, seen := links[key]; seen {
				return os.Link(first, target)
			}
			links[key] = target
		}
		switch {
		case mode.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, p)
		case mode.IsRegular():
			if err := copyRegular(p, target); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			dest, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(dest, target); err != nil {
				return err
			}
		case mode&fs.ModeNamedPipe != 0:
			if err := unix.Mkfifo(target, uint32(mode.Perm())); err != nil {
				return fmt.Errorf("clone FIFO %s: %w", p, err)
			}
		case mode&fs.ModeDevice != 0:
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("clone device node %s: %w (as an ordinary user, give the rootfs as a tarball: its device nodes are recorded and created in the image)", p, err)
			}
		default:
			return fmt.Errorf("clone %s: unsupported file type %v", p, mode.Type())
		}
		return finishInode(p, target, fi, st, root)
	})
	if err != nil {
		return fmt.Errorf("clone %s into %s: %w", src, dst, err)
	}
	// Directory modes and times last: adding entries changed their mtimes, and a read-only
	// directory would have refused them.
	for i := len(dirs) - 1; i >= 0; i-- {
		p := dirs[i]
		rel, _ := filepath.Rel(src, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if err := os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		if err := os.Chtimes(target, fi.ModTime(), fi.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// finishInode copies ownership (as root), mode, extended attributes and mtime of p to target.
func finishInode(p, target string, fi fs.FileInfo, st *syscall.Stat_t, root bool) error {
	if root {
		if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if err := copyXattrs(p, target); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		ts := []unix.Timespec{unix.NsecToTimespec(fi.ModTime().UnixNano()), unix.NsecToTimespec(fi.ModTime().UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	if fi.IsDir() {
		return nil
	}
	if err := os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(target, fi.ModTime(), fi.ModTime())
}

// copyRegular copies src, which lstat found to be a regular file: opened without following a
// link and without blocking, and checked again, so that a file swapped for a FIFO or a link
// meanwhile is an error rather than a hang or a read outside the tree.
func copyRegular(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return err
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is %s, %w", src, TypeName(fi.Mode()), ErrNotRegular)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// copyXattrs copies every extended attribute the caller may read and write; attributes of
// namespaces an ordinary user cannot set (trusted.*, security.* without privileges) are an
// error only when running as root.
func copyXattrs(src, dst string) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(src, buf)
	if err != nil {
		return err
	}
	for _, name := range splitNul(buf[:n]) {
		vsize, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return fmt.Errorf("read xattr %s of %s: %w", name, src, err)
		}
		val := make([]byte, vsize)
		if vsize > 0 {
			if vsize, err = unix.Lgetxattr(src, name, val); err != nil {
				return fmt.Errorf("read xattr %s of %s: %w", name, src, err)
			}
		}
		if err := unix.Lsetxattr(dst, name, val[:vsize], 0); err != nil {
			if os.Geteuid() != 0 && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
				continue
			}
			return fmt.Errorf("copy xattr %s of %s: %w", name, src, err)
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
