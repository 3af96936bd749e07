package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// FromDir uses dir in place. Unless opts.KeepOwners is set, entries owned by the current user
// or group are fixed up to be owned by root, since mkfs.ext4 -d copies owners from the tree
// and -E root_owner covers only the root directory. See fromDir for what else an ordinary
// user's tree needs.
func FromDir(ctx context.Context, dir string, opts Options) (*Tree, error) {
	return fromDir(ctx, dir, "", opts)
}

// fromDir records, when not running as root, what a copy made by Clone cannot carry and what
// mkfs.ext4 -d reading dir gets wrong: owners other than the current user's (and the current
// user's own files, mapped to root), setuid/setgid/sticky bits, and security./trusted.
// xattrs, whose values are kept as side files in workDir. The fixups are right for dir itself
// and for a Clone of it alike. Running as root, Clone and mkfs.ext4 preserve all of that and
// no fixups are needed. Device nodes in a directory need root to be cloned (a tarball input
// records them instead).
func fromDir(ctx context.Context, dir, workDir string, opts Options) (*Tree, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("rootfs: %s is not a directory", dir)
	}
	t := &Tree{Dir: dir}
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		return t, nil
	}
	sides := map[string]string{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/"
		}
		if strings.ContainsAny(name, "\"\n\r") {
			return fmt.Errorf("%s: %w", p, errUnaddressable)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no ownership information", p)
		}
		wantUID, wantGID := int(st.Uid), int(st.Gid)
		if !opts.KeepOwners {
			if wantUID == uid {
				wantUID = 0
			}
			if wantGID == gid {
				wantGID = 0
			}
		}
		fix := &t.fixups
		if st.Mode&syscall.S_IFMT == syscall.S_IFSOCK {
			return nil // mkfs.ext4 -d does not copy sockets
		}
		if rel != "." {
			if wantUID != uid {
				*fix = append(*fix, fmt.Sprintf("sif %s uid %d", quote(name), wantUID))
			}
			if wantGID != gid {
				*fix = append(*fix, fmt.Sprintf("sif %s gid %d", quote(name), wantGID))
			}
		}
		if st.Mode&0o7000 != 0 && st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			*fix = append(*fix, fmt.Sprintf("sif %s mode 0%o", quote(name), st.Mode))
		}
		attrs, err := privilegedXattrs(p)
		if err != nil {
			return err
		}
		for _, a := range attrs {
			if workDir == "" {
				return fmt.Errorf("%s: xattr %s needs a work directory to be carried into the image (use Open)", p, a[0])
			}
			file, err := sideFile(sides, filepath.Join(workDir, "xattrs"), a[1])
			if err != nil {
				return err
			}
			*fix = append(*fix, fmt.Sprintf("ea_set -f %s %s %s", quote(file), quote(name), a[0]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", dir, err)
	}
	return t, nil
}

// privilegedXattrs lists the security. and trusted. attributes of p, which an ordinary user
// can read but not set on a copy.
func privilegedXattrs(p string) ([][2]string, error) {
	names, err := listXattrs(p)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, n := range names {
		if !strings.HasPrefix(n, "security.") && !strings.HasPrefix(n, "trusted.") {
			continue
		}
		v, err := getXattr(p, n)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{n, string(v)})
	}
	return out, nil
}

func listXattrs(p string) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < 1<<20 {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read xattr %s of %s: %w", name, p, err)
		}
		return buf[:n], nil
	}
}

func sideFile(sides map[string]string, dir, value string) (string, error) {
	sum := sha256.Sum256([]byte(value))
	key := hex.EncodeToString(sum[:])
	if f, ok := sides[key]; ok {
		return f, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f := filepath.Join(dir, key)
	if strings.ContainsAny(f, "\"\n\r") {
		return "", fmt.Errorf("work directory %s: %w", dir, errUnaddressable)
	}
	if err := os.WriteFile(f, []byte(value), 0o600); err != nil {
		return "", err
	}
	sides[key] = f
	return f, nil
}
