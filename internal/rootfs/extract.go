package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/otabake/otabake/internal/tool"
)

// Compression is the outer format of an archive, detected from its first bytes.
type Compression string

// Detected compressions.
const (
	None Compression = "tar"
	Gzip Compression = "gzip"
	XZ   Compression = "xz"
	Zstd Compression = "zstd"
)

// Detect names the compression of an archive from its first bytes (at least 6, ideally
// 512 so that a plain tar's "ustar" magic at offset 257 can be seen).
func Detect(head []byte) (Compression, error) {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip, nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return XZ, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd, nil
	case bytes.HasPrefix(head, []byte("BZh")):
		return "", errors.New("bzip2 archives are not supported: recompress with gzip, xz or zstd")
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return None, nil
	}
	return "", errors.New("not a tar, tar.gz, tar.xz or tar.zst archive (unknown magic bytes)")
}

// Extract unpacks an archive read from r into workDir/rootfs and records everything an
// ordinary user cannot create on disk as fixups. On any error nothing is left in workDir.
func Extract(ctx context.Context, r io.Reader, workDir string, opts Options) (t *Tree, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(512)
	comp, err := Detect(head)
	if err != nil {
		return nil, err
	}
	var stream io.Reader = br
	switch comp {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		stream = zr
	case XZ:
		xr, stop, err := newXZReader(ctx, br)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		defer stop()
		stream = xr
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		stream = zr
	}

	_, statErr := os.Stat(workDir)
	created := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	if ents, err := os.ReadDir(workDir); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	} else if len(ents) != 0 {
		return nil, fmt.Errorf("work directory %s is not empty", workDir)
	}
	defer func() {
		if err != nil {
			if created {
				os.RemoveAll(workDir)
			} else {
				removeContents(workDir)
			}
		}
	}()
	dir := filepath.Join(workDir, "rootfs")
	x := &extractor{
		ctx: ctx, buf: make([]byte, copyChunk),
		dir: dir, sideDir: filepath.Join(workDir, "xattrs"), opts: opts,
		entries: map[string]*entry{".": {typ: tar.TypeDir, mode: 0o755}},
		sides:   map[string]string{},
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if x.root, err = os.OpenRoot(dir); err != nil {
		return nil, err
	}
	defer x.root.Close()
	x.dirs = newDirChain(x.root)
	defer x.dirs.close()
	cr := &countingReader{r: stream}
	tr := tar.NewReader(cr)
	last := "(start of archive)"
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := cr.n
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s archive corrupt at tar offset %d, after entry %q: %w", comp, start, last, err)
		}
		if err := x.add(hdr, tr); err != nil {
			if errors.Is(err, errCorrupt) {
				return nil, fmt.Errorf("%s archive corrupt in entry %q at tar offset %d: %w", comp, hdr.Name, start, err)
			}
			return nil, fmt.Errorf("entry %q at tar offset %d: %w", hdr.Name, start, err)
		}
		last = hdr.Name
		n++
	}
	// Read to the end so that the decompressor checks its trailer (CRC, index, checksum): a
	// truncated .xz or .gz can still hold a complete tar stream.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return nil, fmt.Errorf("%s archive corrupt after the end of the tar stream (offset %d): %w", comp, cr.n, err)
	}
	fix, err := x.finish()
	if err != nil {
		return nil, err
	}
	return &Tree{Dir: dir, Entries: n, Warnings: x.warnings, fixups: fix}, nil
}

// errCorrupt marks failures to read an entry's content from the archive, as opposed to
// failures to write it.
var errCorrupt = errors.New("read entry data")

// removeContents empties dir after a failed extraction. Directories are created owner-writable,
// so RemoveAll succeeds as an ordinary user.
func removeContents(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

// newXZReader decompresses with the xz program when it is installed, which is about twice as
// fast as the pure Go decoder, and with github.com/ulikunitz/xz otherwise. stop releases the
// decoder and must be called once reading is done or abandoned.
func newXZReader(ctx context.Context, r io.Reader) (io.Reader, func(), error) {
	path, err := tool.Find("xz", "xz-utils")
	if err != nil {
		xr, err := xz.NewReader(r)
		return xr, func() {}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, path, "-dc")
	cmd.Stdin = r
	x := &xzProcess{cmd: cmd}
	cmd.Stderr = &x.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, nil, err
	}
	x.out = out
	return x, func() {
		cancel()
		if !x.waited {
			cmd.Wait()
		}
	}, nil
}

// xzProcess reads the output of "xz -dc" and turns a failing exit at the end of the stream
// into a read error, so that a truncated or corrupt archive is reported as such.
type xzProcess struct {
	cmd    *exec.Cmd
	out    io.Reader
	stderr bytes.Buffer
	waited bool
}

func (x *xzProcess) Read(p []byte) (int, error) {
	n, err := x.out.Read(p)
	if err == io.EOF && !x.waited {
		x.waited = true
		if werr := x.cmd.Wait(); werr != nil {
			return n, fmt.Errorf("xz -dc: %w: %s", werr, strings.TrimSpace(x.stderr.String()))
		}
	}
	return n, err
}

// trackedReader remembers a read error so that a truncated archive is told apart from a
// failing disk.
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// entry is the recorded metadata of one archive member.
type entry struct {
	typ          byte
	mode         int64 // permission and setuid/setgid/sticky bits
	uid, gid     int
	major, minor int64
	mtime        int64
	links        int    // number of names of an inode kept only in fixups (devices, FIFOs)
	primary      string // for a hard link to a device or FIFO (kept only in fixups): the first name
	xattrs       [][2]string
	// disk is the mode and owner of the inode on disk, taken once they are final (after
	// creation for files and symlinks, in finish for directories), so that computing the
	// fixups needs no second walk over the tree.
	disk *diskMeta
}

type diskMeta struct{ mode, uid, gid uint32 }

// lstat records what dir.Lstat(base) reports in e.disk.
func (e *entry) lstat(dir *os.Root, base string) error {
	fi, err := dir.Lstat(base)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("lstat %s: no stat information", base)
	}
	e.disk = &diskMeta{mode: st.Mode, uid: st.Uid, gid: st.Gid}
	return nil
}

// ErrUnsafeEntry is wrapped by every error that rejects an archive entry for trying to write
// outside the work directory (absolute names, "..", writes through symlinks, foreign links).
var ErrUnsafeEntry = errors.New("unsafe entry")

type extractor struct {
	ctx          context.Context
	buf          []byte // copy buffer, reused across entries
	dir, sideDir string
	root         *os.Root
	dirs         *dirChain // open handles of the last entry's parent directories
	opts         Options
	entries      map[string]*entry
	sides        map[string]string // xattr value hash -> side file
	warnings     []string
	dirTimes     []string
}

// cleanName turns an archive name into a clean relative path or rejects it.
func cleanName(name string) (string, error) {
	if strings.ContainsAny(name, "\"\n\r\x00") {
		return "", fmt.Errorf("%w: %w", ErrUnsafeEntry, errUnaddressable)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name", ErrUnsafeEntry)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: name contains \"..\"", ErrUnsafeEntry)
		}
	}
	p := path.Clean(name)
	if p == "" {
		p = "."
	}
	return p, nil
}

// parents ensures every parent of name is a directory of the archive (creating missing ones
// as root-owned 0755 directories, as tar does), never a symlink or a file.
func (x *extractor) parents(name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	var missing []string
	for d := dir; d != "."; d = path.Dir(d) {
		e, ok := x.entries[d]
		if !ok {
			missing = append(missing, d)
			continue
		}
		if e.typ == tar.TypeSymlink {
			return fmt.Errorf("%w: parent %q is a symlink; writing through it is refused", ErrUnsafeEntry, d)
		}
		if e.typ != tar.TypeDir {
			return fmt.Errorf("%w: parent %q is not a directory", ErrUnsafeEntry, d)
		}
		break
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d, base, err := x.dirs.parent(missing[i])
		if err != nil {
			return err
		}
		if err := d.Mkdir(base, 0o755); err != nil {
			return err
		}
		x.entries[missing[i]] = &entry{typ: tar.TypeDir, mode: 0o755}
		x.dirTimes = append(x.dirTimes, missing[i])
	}
	return nil
}

func (x *extractor) add(hdr *tar.Header, body io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) > math.MaxUint32 || int64(hdr.Gid) > math.MaxUint32 {
		return fmt.Errorf("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	typ := hdr.Typeflag
	switch typ {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		typ = tar.TypeReg
	case tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("unsupported tar entry type %q", string(typ))
	}
	if name == "." {
		if typ != tar.TypeDir {
			return fmt.Errorf("%w: the archive root is not a directory", ErrUnsafeEntry)
		}
		e := x.entries["."]
		e.mode, e.uid, e.gid, e.mtime = hdr.Mode&0o7777, hdr.Uid, hdr.Gid, hdr.ModTime.Unix()
		return x.xattrs(e, hdr)
	}
	if err := x.parents(name); err != nil {
		return err
	}
	// Operations on name go through its parent's handle (see dirChain); hard links, which
	// name two paths, go through the root.
	dir, base, err := x.dirs.parent(name)
	if err != nil {
		return err
	}
	if old, ok := x.entries[name]; ok {
		if old.typ == tar.TypeDir && typ == tar.TypeDir {
			old.mode, old.uid, old.gid, old.mtime, old.xattrs = hdr.Mode&0o7777, hdr.Uid, hdr.Gid, hdr.ModTime.Unix(), nil
			return x.xattrs(old, hdr)
		}
		if old.links > 1 {
			return fmt.Errorf("entry replaces %q, which has hard links", name)
		}
		if old.primary != "" {
			x.entries[old.primary].links--
		} else if old.onDisk() {
			if err := dir.Remove(base); err != nil {
				return fmt.Errorf("replace existing entry: %w", err)
			}
		}
		delete(x.entries, name)
	}
	e := &entry{typ: typ, mode: hdr.Mode & 0o7777, uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime.Unix()}
	switch typ {
	case tar.TypeDir:
		if err := dir.Mkdir(base, 0o700); err != nil {
			return err
		}
		x.dirTimes = append(x.dirTimes, name)
	case tar.TypeReg:
		f, err := dir.OpenFile(base, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		rd := &trackedReader{r: body}
		if err := x.copySparse(f, rd); err != nil || rd.err != nil {
			f.Close()
			if rd.err != nil {
				return fmt.Errorf("%w: %w", errCorrupt, rd.err)
			}
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		// Owner-readable on disk so that mkfs.ext4 -d can read it as an ordinary user; the
		// exact mode (e.g. Fedora's 0000 /etc/shadow) comes from a fixup.
		if err := dir.Chmod(base, fs.FileMode(e.mode&0o777|0o400)); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsAny(hdr.Linkname, "\x00") {
			return fmt.Errorf("%w: empty or invalid symlink target", ErrUnsafeEntry)
		}
		// The link is only stored; nothing is ever written through it (see parents).
		if err := dir.Symlink(hdr.Linkname, base); err != nil {
			return err
		}
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		te, ok := x.entries[target]
		if !ok || target == "." {
			return fmt.Errorf("%w: hard link to %q, which is not an earlier entry of the archive", ErrUnsafeEntry, hdr.Linkname)
		}
		if te.typ == tar.TypeDir {
			return fmt.Errorf("%w: hard link to directory %q", ErrUnsafeEntry, hdr.Linkname)
		}
		if te.primary != "" {
			target, te = te.primary, x.entries[te.primary]
		}
		if te.onDisk() {
			if err := x.root.Link(target, name); err != nil {
				return err
			}
			x.entries[name] = &entry{typ: tar.TypeLink}
			return nil
		}
		te.links++
		x.entries[name] = &entry{typ: tar.TypeLink, primary: target}
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		e.major, e.minor, e.links = hdr.Devmajor, hdr.Devminor, 1
		if e.major < 0 || e.minor < 0 || e.major > 0xfff || e.minor > 0xfffff {
			return fmt.Errorf("device number %d:%d out of range", e.major, e.minor)
		}
	}
	x.entries[name] = e
	if typ == tar.TypeReg {
		mt := hdr.ModTime
		if err := dir.Chtimes(base, mt, mt); err != nil {
			return err
		}
	}
	if typ == tar.TypeReg || typ == tar.TypeSymlink {
		if err := e.lstat(dir, base); err != nil {
			return err
		}
	}
	return x.xattrs(e, hdr)
}

// copyChunk is the unit in which file data is copied and checked for holes.
const copyChunk = 128 << 10

var zeroChunk [copyChunk]byte

// copySparse copies r to f leaving all-zero chunks as holes, as GNU tar does for sparse
// entries; mkfs.ext4 -d keeps the holes. Without this, a small archive declaring a huge sparse
// file would fill the disk with zeros. Cancellation is checked per chunk.
func (x *extractor) copySparse(f *os.File, r io.Reader) error {
	var off int64
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, x.buf)
		if n > 0 {
			if !bytes.Equal(x.buf[:n], zeroChunk[:n]) {
				if _, werr := f.WriteAt(x.buf[:n], off); werr != nil {
					return werr
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			// A short final read is the end of the entry; a truncated archive shows up as
			// trackedReader's error.
			break
		}
		if err != nil {
			return err
		}
	}
	return f.Truncate(off)
}

// onDisk reports whether e exists in the extracted directory, rather than only in fixups.
func (e *entry) onDisk() bool {
	return onDisk(e.typ) || e.typ == tar.TypeLink && e.primary == ""
}

// onDisk reports whether entries of type typ exist in the extracted directory.
func onDisk(typ byte) bool {
	return typ == tar.TypeReg || typ == tar.TypeDir || typ == tar.TypeSymlink
}

// xattrs records the PAX xattr records of hdr, storing each distinct value once as a side file
// for debugfs "ea_set -f".
func (x *extractor) xattrs(e *entry, hdr *tar.Header) error {
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			keys = append(keys, k)
		} else if strings.HasPrefix(k, "SCHILY.acl.") {
			x.warnings = append(x.warnings, fmt.Sprintf("%s: POSIX ACL record %s dropped", hdr.Name, k))
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attr := strings.TrimPrefix(k, "SCHILY.xattr.")
		if attr == "" || strings.ContainsAny(attr, "\" \t\n\r") {
			return fmt.Errorf("%w: invalid xattr name %q", ErrUnsafeEntry, attr)
		}
		v := hdr.PAXRecords[k]
		sum := sha256.Sum256([]byte(v))
		key := hex.EncodeToString(sum[:])
		file, ok := x.sides[key]
		if !ok {
			if len(x.sides) == 0 {
				if err := os.Mkdir(x.sideDir, 0o700); err != nil {
					return err
				}
			}
			file = filepath.Join(x.sideDir, key)
			if strings.ContainsAny(file, "\"\n\r") {
				return fmt.Errorf("work directory %s: %w", x.sideDir, errUnaddressable)
			}
			if err := os.WriteFile(file, []byte(v), 0o600); err != nil {
				return err
			}
			x.sides[key] = file
		}
		e.xattrs = append(e.xattrs, [2]string{attr, file})
	}
	return nil
}

// finish sets directory times and modes on disk and computes the fixups, in sorted name order
// so that debugfs allocates inodes identically on every build. Directories are visited in the
// order they were created, parents first, which keeps dirChain's walk short; changing a
// directory's mode or times does not touch its parent's mtime.
func (x *extractor) finish() (Fixups, error) {
	for _, name := range x.dirTimes {
		if e, ok := x.entries[name]; ok && e.typ == tar.TypeDir {
			dir, base, err := x.dirs.parent(name)
			if err != nil {
				return nil, err
			}
			if err := dir.Chmod(base, fs.FileMode(e.mode&0o777|0o700)); err != nil {
				return nil, err
			}
			t := unixTime(e.mtime)
			if err := dir.Chtimes(base, t, t); err != nil {
				return nil, err
			}
			if err := e.lstat(dir, base); err != nil {
				return nil, err
			}
		}
	}
	x.dirs.close()
	if err := x.root.Chmod(".", fs.FileMode(x.entries["."].mode&0o777|0o700)); err != nil {
		return nil, err
	}
	if err := x.entries["."].lstat(x.root, "."); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(x.entries))
	for n := range x.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var fix, links Fixups
	cwd := "/"
	for _, name := range names {
		e := x.entries[name]
		p := "/" + name
		if name == "." {
			p = "/"
		}
		switch e.typ {
		case tar.TypeLink:
			if e.primary != "" {
				links = append(links, fmt.Sprintf("ln %s %s", quote("/"+e.primary), quote(p)))
			}
			continue
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if d := path.Dir(p); d != cwd {
				fix = append(fix, "cd "+quote(d))
				cwd = d
			}
			base := quote(path.Base(p))
			ftype := map[byte]int64{tar.TypeChar: syscall.S_IFCHR, tar.TypeBlock: syscall.S_IFBLK, tar.TypeFifo: syscall.S_IFIFO}[e.typ]
			if e.typ == tar.TypeFifo {
				fix = append(fix, "mknod "+base+" p")
			} else {
				fix = append(fix, fmt.Sprintf("mknod %s %c %d %d", base, map[byte]byte{tar.TypeChar: 'c', tar.TypeBlock: 'b'}[e.typ], e.major, e.minor))
			}
			fix = append(fix, fmt.Sprintf("sif %s mode 0%o", quote(p), ftype|e.mode))
			if e.uid != 0 {
				fix = append(fix, fmt.Sprintf("sif %s uid %d", quote(p), e.uid))
			}
			if e.gid != 0 {
				fix = append(fix, fmt.Sprintf("sif %s gid %d", quote(p), e.gid))
			}
			t := e.mtime
			if !x.opts.Clamp.IsZero() && t > x.opts.Clamp.Unix() {
				t = x.opts.Clamp.Unix()
			}
			for _, f := range []string{"atime", "mtime", "ctime"} {
				fix = append(fix, fmt.Sprintf("sif %s %s @%d", quote(p), f, t))
			}
			if e.links > 1 {
				fix = append(fix, fmt.Sprintf("sif %s links_count %d", quote(p), e.links))
			}
		default:
			if e.disk == nil {
				return nil, fmt.Errorf("%s: no on-disk metadata recorded", p)
			}
			st := *e.disk
			if name == "." {
				st.uid, st.gid = 0, 0 // mkfs.ext4 -E root_owner=0:0
			}
			if e.typ != tar.TypeSymlink {
				if int64(st.mode&0o7777) != e.mode {
					fix = append(fix, fmt.Sprintf("sif %s mode 0%o", quote(p), int64(st.mode&syscall.S_IFMT)|e.mode))
				}
			}
			if int(st.uid) != e.uid {
				fix = append(fix, fmt.Sprintf("sif %s uid %d", quote(p), e.uid))
			}
			if int(st.gid) != e.gid {
				fix = append(fix, fmt.Sprintf("sif %s gid %d", quote(p), e.gid))
			}
		}
		for _, xa := range e.xattrs {
			fix = append(fix, fmt.Sprintf("ea_set -f %s %s %s", quote(xa[1]), quote(p), xa[0]))
		}
	}
	if cwd != "/" {
		fix = append(fix, "cd /")
	}
	return append(fix, links...), nil
}

func unixTime(sec int64) time.Time { return time.Unix(sec, 0) }
