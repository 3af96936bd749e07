package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

// Reading a root filesystem.
//
// A root filesystem otabake builds from is untrusted input: any package can ship a symlink
// such as u-boot-arm64.bin -> /proc/self/environ, or an etc/os-release that is a FIFO or a
// character device. Opened with os.Open, the first copies a file of the build host (the CI
// runner's environment) into a published image; the second blocks a build forever or reads
// without end. Every file otabake reads from a root filesystem, and from a directory a
// project names in otabake.toml (boot files, boot loader), is therefore opened through Root:
//
//   - symbolic links are followed as the device would follow them: an absolute target starts
//     again at the root of the tree, not at the build host's "/";
//   - ".." never climbs above the root: a link that tries is refused (ErrEscapes) instead of
//     being clamped at the root as the kernel does in a chroot, because such a link was made
//     for some other tree (typically a host path turned relative) and clamping would quietly
//     read an unrelated file;
//   - at most MaxLinks links are followed (ELOOP);
//   - every component is looked up relative to the handle of its parent directory (os.Root,
//     openat), never by joining strings, so nothing outside the tree is ever touched;
//   - only regular files are opened, with O_NONBLOCK so that a FIFO swapped in at the last
//     moment cannot block either; anything else (FIFO, device, socket, directory) is an error
//     naming the path and its type (ErrNotRegular);
//   - ReadFile bounds what it reads (ErrTooLarge) for files that are small by nature.

// MaxLinks bounds the symbolic links followed resolving one name, like the kernel's limit.
const MaxLinks = 40

// Errors wrapped by Root's methods (syscall.ELOOP for too many links, fs.ErrNotExist for a
// missing name).
var (
	// ErrEscapes: a ".." component, possibly in a link's target, climbs above the root.
	ErrEscapes = errors.New("climbs above the root")
	// ErrNotRegular: the name resolves to something other than a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is larger than the caller's limit.
	ErrTooLarge = errors.New("larger than the limit")
)

// Root is a directory tree read as a device reads its root filesystem. Names are
// slash-separated and relative to the root; a leading "/" is allowed and means the same.
// Errors name paths relative to the root.
type Root struct {
	dir  string
	root *os.Root
}

// OpenRoot opens dir, a root filesystem or a directory a project names (a boot directory),
// for reading under the rules above.
func OpenRoot(dir string) (*Root, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open root directory: %w", err)
	}
	return &Root{dir: dir, root: r}, nil
}

// Close releases the root's handle.
func (r *Root) Close() error { return r.root.Close() }

// Dir is the directory r was opened on.
func (r *Root) Dir() string { return r.dir }

// ReadFile reads the regular file name inside the root filesystem dir, at most limit bytes
// (see Root.ReadFile).
func ReadFile(dir, name string, limit int64) ([]byte, error) {
	r, err := OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadFile(name, limit)
}

// Open opens the regular file name resolves to inside r. It is the one way otabake opens a
// file of a root filesystem; see the rules at the top of this file.
func (r *Root) Open(name string) (*os.File, error) {
	w, err := r.walkExisting(name)
	if err != nil {
		return nil, err
	}
	defer w.release()
	if !w.fi.Mode().IsRegular() {
		return nil, w.notRegular(w.fi.Mode())
	}
	f, err := w.top().OpenFile(w.base, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, w.fail(unwrapPath(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, w.fail(err)
	}
	if !fi.Mode().IsRegular() { // swapped after the lookup
		f.Close()
		return nil, w.notRegular(fi.Mode())
	}
	return f, nil
}

// ReadFile returns the content of the regular file name resolves to inside r. A file larger
// than limit bytes is refused (ErrTooLarge) before anything is read, and reading stops at
// limit in case it grows meanwhile; limit <= 0 means no limit.
func (r *Root) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clean(name), err)
	}
	if limit > 0 && fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, %w of %d bytes", clean(name), fi.Size(), ErrTooLarge, limit)
	}
	rd := io.Reader(f)
	if limit > 0 {
		rd = io.LimitReader(f, limit+1)
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", clean(name), err)
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, fmt.Errorf("%s grew past %d bytes while being read, %w of %d bytes", clean(name), limit, ErrTooLarge, limit)
	}
	return data, nil
}

// Stat returns what name resolves to inside r, following links (never a symlink's own
// information).
func (r *Root) Stat(name string) (fs.FileInfo, error) {
	w, err := r.walkExisting(name)
	if err != nil {
		return nil, err
	}
	defer w.release()
	return w.fi, nil
}

// walkExisting resolves name to something that exists; the caller releases the walker.
func (r *Root) walkExisting(name string) (*walker, error) {
	w, err := r.walk(name, walkFinal)
	if err != nil {
		return nil, err
	}
	if w.fi == nil {
		err := w.fail(fs.ErrNotExist)
		w.release()
		return nil, err
	}
	return w, nil
}

// Resolve returns the path name resolves to inside r, relative to the root ("." for the root
// itself), following every link. The last component need not exist.
func (r *Root) Resolve(name string) (string, error) {
	w, err := r.walk(name, walkFinal)
	if err != nil {
		return "", err
	}
	defer w.release()
	return w.resolved(), nil
}

// ReadDir lists the directory name resolves to inside r, sorted by name. The entries'
// types are their own (a symlink is listed as a symlink); open or stat an entry through r.
func (r *Root) ReadDir(name string) ([]fs.DirEntry, error) {
	w, err := r.walkExisting(name)
	if err != nil {
		return nil, err
	}
	defer w.release()
	if !w.fi.IsDir() {
		return nil, w.fail(syscall.ENOTDIR)
	}
	d, err := w.top().OpenRoot(w.base)
	if err != nil {
		return nil, w.fail(unwrapPath(err))
	}
	defer d.Close()
	f, err := d.Open(".")
	if err != nil {
		return nil, w.fail(unwrapPath(err))
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, w.fail(unwrapPath(err))
	}
	sortEntries(ents)
	return ents, nil
}

// MkdirAll makes sure the directory name resolves to exists inside r and returns its
// resolved path. Missing directories are created with perm, but never at the target of a
// link: a dangling link is reported (fs.ErrNotExist) rather than papered over.
func (r *Root) MkdirAll(name string, perm fs.FileMode) (string, error) {
	w, err := r.walk(name, walkMkdir(perm))
	if err != nil {
		return "", err
	}
	defer w.release()
	if w.fi == nil { // only at the target of a link, see walk
		return "", w.fail(notExist("symbolic link dangles"))
	}
	if !w.fi.IsDir() {
		return "", w.fail(syscall.ENOTDIR)
	}
	return w.resolved(), nil
}

type walkMode struct {
	mkdir bool
	perm  fs.FileMode
}

var walkFinal = walkMode{}

func walkMkdir(perm fs.FileMode) walkMode { return walkMode{mkdir: true, perm: perm} }

// walker is one resolution in progress: the handles of the directories on the way, opened
// one from the other, and what the last component is.
type walker struct {
	r     *Root
	name  string     // as asked for, cleaned, for messages
	dirs  []*os.Root // dirs[i] is the directory names[:i+1]
	names []string
	base  string      // the last component, in top(); "." for the root itself
	fi    fs.FileInfo // Lstat of base (never a symlink), nil when it does not exist
}

type component struct {
	name string
	// link is "path -> target" when the component is part of a link's target (so that a
	// missing one means the link dangles), for messages.
	link string
}

// walk resolves name component by component: Lstat in the parent's handle, Readlink and
// start over for a link, OpenRoot to step into a directory.
func (r *Root) walk(name string, mode walkMode) (*walker, error) {
	w := &walker{r: r, name: clean(name), base: "."}
	queue := splitComponents(name, "")
	links := 0
	ok := false
	defer func() {
		if !ok {
			w.release()
		}
	}()
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		switch c.name {
		case "..":
			if len(w.dirs) == 0 {
				if c.link != "" {
					return nil, fmt.Errorf("%s: symbolic link %s %w", w.name, c.link, ErrEscapes)
				}
				return nil, fmt.Errorf("%s: %w", w.name, ErrEscapes)
			}
			w.dirs[len(w.dirs)-1].Close()
			w.dirs, w.names = w.dirs[:len(w.dirs)-1], w.names[:len(w.names)-1]
			continue
		}
		last := len(queue) == 0
		fi, err := w.top().Lstat(c.name)
		switch {
		case errors.Is(err, fs.ErrNotExist) && mode.mkdir && c.link == "":
			if err := w.top().Mkdir(c.name, mode.perm); err != nil {
				return nil, w.failAt(c.name, unwrapPath(err))
			}
			if fi, err = w.top().Lstat(c.name); err != nil {
				return nil, w.failAt(c.name, unwrapPath(err))
			}
		case errors.Is(err, fs.ErrNotExist) && last:
			w.base, w.fi = c.name, nil
			ok = true
			return w, nil
		case errors.Is(err, fs.ErrNotExist) && c.link != "":
			return nil, fmt.Errorf("%s: %w", w.name, notExist("symbolic link "+c.link+" dangles: "+w.path(c.name)+" does not exist in the root"))
		case err != nil:
			return nil, w.failAt(c.name, unwrapPath(err))
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if links++; links > MaxLinks {
				return nil, fmt.Errorf("%s: %w", w.name, syscall.ELOOP)
			}
			target, err := w.top().Readlink(c.name)
			if err != nil {
				return nil, w.failAt(c.name, unwrapPath(err))
			}
			if target == "" {
				return nil, w.failAt(c.name, errors.New("empty symbolic link"))
			}
			link := w.path(c.name) + " -> " + target
			if strings.HasPrefix(target, "/") {
				w.popAll() // absolute: from the root of the tree, as the device sees it
			}
			// A relative target continues from the link's directory, where the walk is.
			queue = append(splitComponents(target, link), queue...)
			continue
		}
		if last {
			w.base, w.fi = c.name, fi
			ok = true
			return w, nil
		}
		if !fi.IsDir() {
			return nil, w.failAt(c.name, syscall.ENOTDIR)
		}
		d, err := w.top().OpenRoot(c.name)
		if err != nil {
			return nil, w.failAt(c.name, unwrapPath(err))
		}
		w.dirs, w.names = append(w.dirs, d), append(w.names, c.name)
	}
	// The name (or a link's target) ended at a directory: it is the result.
	if len(w.dirs) > 0 {
		w.base = w.names[len(w.names)-1]
		w.dirs[len(w.dirs)-1].Close()
		w.dirs, w.names = w.dirs[:len(w.dirs)-1], w.names[:len(w.names)-1]
	}
	fi, err := w.top().Lstat(w.base)
	if err != nil {
		return nil, w.fail(unwrapPath(err))
	}
	w.fi = fi
	ok = true
	return w, nil
}

func splitComponents(p, link string) []component {
	var out []component
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, component{c, link})
		}
	}
	return out
}

func (w *walker) top() *os.Root {
	if len(w.dirs) == 0 {
		return w.r.root
	}
	return w.dirs[len(w.dirs)-1]
}

func (w *walker) popAll() {
	for _, d := range w.dirs {
		d.Close()
	}
	w.dirs, w.names = w.dirs[:0], w.names[:0]
}

func (w *walker) release() { w.popAll() }

// path is the root-relative path of component c in the current directory.
func (w *walker) path(c string) string {
	return path.Join(append(append([]string(nil), w.names...), c)...)
}

// resolved is the root-relative path of the result.
func (w *walker) resolved() string { return w.path(w.base) }

// fail wraps err for the result, naming it and, when different, what it resolved to.
func (w *walker) fail(err error) error {
	if res := w.resolved(); res != w.name {
		return fmt.Errorf("%s (resolved to %s): %w", w.name, res, err)
	}
	return fmt.Errorf("%s: %w", w.name, err)
}

// failAt wraps err for component c on the way.
func (w *walker) failAt(c string, err error) error {
	if p := w.path(c); p != w.name {
		return fmt.Errorf("%s: %s: %w", w.name, p, err)
	}
	return fmt.Errorf("%s: %w", w.name, err)
}

func (w *walker) notRegular(m fs.FileMode) error {
	what := w.name
	if res := w.resolved(); res != w.name {
		what += " (resolved to " + res + ")"
	}
	return fmt.Errorf("%s is %s, %w", what, TypeName(m), ErrNotRegular)
}

// TypeName names a file type for messages: "a named pipe (FIFO)", "a character device"…
func TypeName(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "an irregular file"
}

// clean renders a name as the root-relative path it asks for.
func clean(name string) string {
	p := path.Clean("/" + name)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// unwrapPath drops an os.Root *PathError's own path (relative to some directory handle), so
// that messages carry root-relative paths only.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// notExist is a message that is fs.ErrNotExist.
type notExist string

func (e notExist) Error() string        { return string(e) }
func (e notExist) Is(target error) bool { return target == fs.ErrNotExist }

// sortEntries sorts by name: f.ReadDir does not, and callers (globs, tree copies) want a
// stable order.
func sortEntries(ents []fs.DirEntry) {
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
}
