//go:build linux

package vmkit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// InitramfsMtime is the modification time of every archive entry, so that the same inputs give
// byte-identical initramfs images (and therefore identical boot partitions and bundle hashes).
const InitramfsMtime = 1577836800 // 2020-01-01T00:00:00Z

// initramfsDirs are created empty: mount points for the /init program.
var initramfsDirs = []string{"dev", "proc", "sys", "newroot", "run"}

// WriteInitramfs writes a gzip-compressed newc cpio archive for the kernel's built-in
// initramfs unpacker: /init (the static initBinary), the given modules (paths relative to
// k.ModulesDir, as ModuleClosure returns them) uncompressed under /lib/modules/, /etc/modules.order
// listing them one per line relative to /lib/modules/ in the given (load) order, the empty
// directories /dev /proc /sys /newroot /run, and the /dev/console node (char 5,1), which the
// kernel needs to give /init a console before devtmpfs is mounted.
//
// The output is deterministic: entries are sorted by name, every mtime is InitramfsMtime, the
// owner is root and inode numbers are assigned in order.
func WriteInitramfs(w io.Writer, initBinary string, k *Kernel, modules []string) error {
	var entries []cpioEntry
	fi, err := os.Stat(initBinary)
	if err != nil {
		return fmt.Errorf("initramfs /init: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("initramfs /init: %s is not a regular file", initBinary)
	}
	entries = append(entries, cpioEntry{name: "init", mode: modeReg | 0o755, src: initBinary})

	var order bytes.Buffer
	seen := map[string]bool{}
	for _, m := range modules {
		clean := path.Clean(filepath.ToSlash(m))
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("initramfs: module path %q is not relative to the modules directory", m)
		}
		if _, ok := moduleName(clean); !ok {
			return fmt.Errorf("initramfs: %q is not a kernel module", m)
		}
		dst := uncompressedPath(clean)
		if seen[dst] {
			return fmt.Errorf("initramfs: module %s listed twice", dst)
		}
		seen[dst] = true
		entries = append(entries, cpioEntry{
			name: "lib/modules/" + dst, mode: modeReg | 0o644,
			src: filepath.Join(k.ModulesDir, filepath.FromSlash(clean)), module: true,
		})
		order.WriteString(dst)
		order.WriteByte('\n')
	}
	entries = append(entries, cpioEntry{name: "etc/modules.order", mode: modeReg | 0o644, data: order.Bytes()})
	for _, d := range initramfsDirs {
		entries = append(entries, cpioEntry{name: d, mode: modeDir | 0o755})
	}
	entries = append(entries, cpioEntry{name: "dev/console", mode: modeChr | 0o600, rdevMajor: 5, rdevMinor: 1})
	entries = withParents(entries)
	slices.SortFunc(entries, func(a, b cpioEntry) int { return strings.Compare(a.name, b.name) })

	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	cw := &cpioWriter{w: bw}
	for _, e := range entries {
		if err := cw.write(e); err != nil {
			return fmt.Errorf("initramfs %s: %w", e.name, err)
		}
	}
	if err := cw.trailer(); err != nil {
		return fmt.Errorf("initramfs trailer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return nil
}

// File type bits of a cpio mode (the same as st_mode).
const (
	modeDir = 0o040000
	modeReg = 0o100000
	modeChr = 0o020000
)

type cpioEntry struct {
	name                 string // without a leading slash
	mode                 uint32
	rdevMajor, rdevMinor uint32
	data                 []byte // content of a generated file
	src                  string // content of a copied file
	module               bool   // src may be compressed and is stored uncompressed
}

// withParents adds a directory entry for every parent not listed, so that the kernel never has
// to create one implicitly (it would not, and the file would be dropped).
func withParents(entries []cpioEntry) []cpioEntry {
	have := map[string]bool{}
	for _, e := range entries {
		have[e.name] = true
	}
	for _, e := range slices.Clone(entries) {
		for d := path.Dir(e.name); d != "." && !have[d]; d = path.Dir(d) {
			have[d] = true
			entries = append(entries, cpioEntry{name: d, mode: modeDir | 0o755})
		}
	}
	return entries
}

// cpioWriter writes the "newc" (070701) format, the one the kernel unpacks.
type cpioWriter struct {
	w   io.Writer
	ino uint32
}

func (c *cpioWriter) write(e cpioEntry) error {
	data := e.data
	if e.src != "" {
		var err error
		if data, err = readSource(e); err != nil {
			return err
		}
	}
	c.ino++
	nlink := uint32(1)
	if e.mode&modeDir == modeDir {
		nlink = 2
	}
	return c.record(e.name, c.ino, e.mode, nlink, e.rdevMajor, e.rdevMinor, data)
}

// readSource loads a copied file; modules are decompressed. The largest input is /init (a few
// MB), so holding one file in memory is fine and gives the size the header needs up front.
func readSource(e cpioEntry) ([]byte, error) {
	if !e.module {
		return os.ReadFile(e.src)
	}
	r, err := openModule(e.src)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", e.src, err)
	}
	return data, nil
}

func (c *cpioWriter) trailer() error {
	return c.record("TRAILER!!!", 0, 0, 1, 0, 0, nil)
}

func (c *cpioWriter) record(name string, ino, mode, nlink, rmaj, rmin uint32, data []byte) error {
	if uint64(len(data)) > 0xffffffff {
		return fmt.Errorf("%d bytes is too large for cpio", len(data))
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, uint32(InitramfsMtime), len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(name)+4)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	if _, err := c.w.Write(buf); err != nil {
		return err
	}
	if _, err := c.w.Write(data); err != nil {
		return err
	}
	if n := (4 - len(data)%4) % 4; n > 0 {
		if _, err := c.w.Write(make([]byte, n)); err != nil {
			return err
		}
	}
	return nil
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
