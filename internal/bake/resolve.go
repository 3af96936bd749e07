package bake

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks bounds symlink resolution like the kernel's ELOOP limit, so a link cycle in an
// untrusted rootfs is an error instead of a hang.
const maxLinks = 40

// resolve maps name (slash-separated, relative to the rootfs root) to a host path inside
// root, following symlinks as if root were "/": an absolute link target starts again at
// root, and ".." never climbs above it; a relative target that would is an error. The last
// component need not exist. With mkdirs, missing directories on the way are created, but only
// when no symlink was followed to reach them, so a dangling or foreign link is reported rather
// than papered over with new directories.
func resolve(root, name string, mkdirs bool) (string, error) {
	queue := splitPath(name)
	var stack []string
	links := 0
	viaLink := false
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return "", fmt.Errorf("%s: path escapes the rootfs", name)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cur := "/" + path.Join(append(append([]string(nil), stack...), c)...)
		host := filepath.Join(root, filepath.FromSlash(cur))
		fi, err := os.Lstat(host)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if len(queue) == 0 {
				stack = append(stack, c)
				continue
			}
			if !mkdirs || viaLink {
				return "", fmt.Errorf("%s: %s does not exist inside the rootfs", name, cur)
			}
			if err := os.Mkdir(host, 0o755); err != nil {
				return "", fmt.Errorf("%s: create %s: %w", name, cur, err)
			}
			stack = append(stack, c)
		case err != nil:
			return "", fmt.Errorf("%s: %w", name, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			links++
			if links > maxLinks {
				return "", fmt.Errorf("%s: too many levels of symbolic links", name)
			}
			target, err := os.Readlink(host)
			if err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
			if strings.HasPrefix(target, "/") {
				stack = stack[:0]
			}
			queue = append(splitPath(target), queue...)
			viaLink = true
		case len(queue) > 0 && !fi.IsDir():
			return "", fmt.Errorf("%s: %s is not a directory", name, cur)
		default:
			stack = append(stack, c)
		}
	}
	return filepath.Join(root, filepath.FromSlash(path.Join(stack...))), nil
}

func splitPath(p string) []string { return strings.Split(p, "/") }
