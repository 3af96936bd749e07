package image

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/otabake/otabake/internal/atomicfile"
)

// FAT geometry limits from the Microsoft FAT specification: the FAT type is decided by the
// cluster count alone.
const (
	fat16MinClusters = 4085
	fat16MaxClusters = 65524
	fat32MinClusters = 65525
	fat16RootEntries = 512
	dirEntrySize     = 32
	attrDir          = 0x10
	attrArchive      = 0x20
	attrLFN          = 0x0f
)

// FATOptions control the reproducible identity of a FAT filesystem.
type FATOptions struct {
	// Serial is the volume serial number (mkfs.vfat -i).
	Serial uint32
	// Clamp is the latest timestamp written; later file times are clamped to it. The FAT
	// epoch starts in 1980, so earlier times are raised to 1980-01-01.
	Clamp time.Time
}

type fatNode struct {
	name     string
	src      string // host path of a regular file
	size     int64
	mtime    time.Time
	dir      bool
	children []*fatNode

	short     [11]byte
	caseFlags byte
	lfn       bool
	cluster   uint32
	nclusters uint32
}

type fatGeometry struct {
	fat32         bool
	totalSectors  int64
	spc           int64 // sectors per cluster
	reserved      int64
	fatSectors    int64
	rootSectors   int64
	clusters      int64
	firstDataSect int64
}

func (g fatGeometry) clusterBytes() int64 { return g.spc * SectorSize }

func (g fatGeometry) clusterOffset(c uint32) int64 {
	return (g.firstDataSect + int64(c-2)*g.spc) * SectorSize
}

// planFAT chooses FAT16 with the smallest cluster that keeps the count in FAT16's range, as
// dosfstools does for the 128 and 256 MiB partitions Rugix uses, and FAT32 for volumes too
// large for FAT16 with 32 KiB clusters.
func planFAT(size int64) (fatGeometry, error) {
	total := size / SectorSize
	for spc := int64(1); spc <= 64; spc *= 2 {
		g := fatGeometry{totalSectors: total, spc: spc, reserved: 1, rootSectors: fat16RootEntries * dirEntrySize / SectorSize}
		g.fatSectors = ((total/spc+2)*2 + SectorSize - 1) / SectorSize
		g.firstDataSect = g.reserved + 2*g.fatSectors + g.rootSectors
		if g.firstDataSect >= total {
			continue
		}
		g.clusters = (total - g.firstDataSect) / spc
		if g.clusters < fat16MinClusters {
			return fatGeometry{}, fmt.Errorf("FAT: %d bytes is too small for FAT16 (FAT12 is not supported)", size)
		}
		if g.clusters <= fat16MaxClusters {
			return g, nil
		}
	}
	var spc int64
	switch {
	case size <= 8<<30:
		spc = 8
	case size <= 16<<30:
		spc = 16
	case size <= 32<<30:
		spc = 32
	default:
		spc = 64
	}
	g := fatGeometry{fat32: true, totalSectors: total, spc: spc, reserved: 32}
	g.fatSectors = ((total/spc+2)*4 + SectorSize - 1) / SectorSize
	g.firstDataSect = g.reserved + 2*g.fatSectors
	g.clusters = (total - g.firstDataSect) / spc
	if g.clusters < fat32MinClusters || g.clusters > 0x0ffffff5 {
		return fatGeometry{}, fmt.Errorf("FAT: no FAT16 or FAT32 geometry for %d bytes", size)
	}
	return g, nil
}

// MakeFAT writes a FAT filesystem of exactly size bytes to out holding the tree below dir.
// Entries are written in byte order of their names with contiguous clusters, long names get
// VFAT entries and generated ~N short names, and all identity comes from opts, so the same tree
// gives the same bytes. Symbolic links are followed; other special files are an error, since
// FAT cannot hold them.
func MakeFAT(ctx context.Context, dir, out string, size int64, opts FATOptions) error {
	if size%SectorSize != 0 {
		return fmt.Errorf("make FAT %s: size %d is not a multiple of %d", out, size, SectorSize)
	}
	g, err := planFAT(size)
	if err != nil {
		return fmt.Errorf("make FAT %s: %w", out, err)
	}
	root := &fatNode{dir: true, mtime: opts.Clamp}
	if err := readFATTree(dir, root, opts.Clamp); err != nil {
		return fmt.Errorf("make FAT %s: %w", out, err)
	}
	// Allocate clusters depth-first: a directory, its files, then its subdirectories.
	next := uint32(2)
	var alloc func(n *fatNode, isRoot bool) error
	alloc = func(n *fatNode, isRoot bool) error {
		if n.dir {
			entries := int64(0)
			if !isRoot {
				entries = 2
			}
			used := map[[11]byte]bool{}
			for _, c := range n.children {
				if err := assignShortName(c, used); err != nil {
					return err
				}
				entries += 1 + lfnCount(c)
			}
			bytes := entries * dirEntrySize
			if isRoot && !g.fat32 {
				if entries > fat16RootEntries {
					return fmt.Errorf("root directory needs %d entries, FAT16 has %d", entries, fat16RootEntries)
				}
			} else {
				n.nclusters = uint32(max(1, (bytes+g.clusterBytes()-1)/g.clusterBytes()))
			}
		} else {
			n.nclusters = uint32((n.size + g.clusterBytes() - 1) / g.clusterBytes())
		}
		if n.nclusters > 0 {
			n.cluster = next
			next += n.nclusters
			if int64(next-2) > g.clusters {
				return fmt.Errorf("content does not fit into %d bytes: %w", size, ErrTooLarge)
			}
		}
		for _, c := range n.children {
			if !c.dir {
				if err := alloc(c, false); err != nil {
					return err
				}
			}
		}
		for _, c := range n.children {
			if c.dir {
				if err := alloc(c, false); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := alloc(root, true); err != nil {
		return fmt.Errorf("make FAT %s: %w", out, err)
	}

	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return fmt.Errorf("make FAT: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("make FAT %s: %w", out, err)
	}
	used := next - 2
	if err := writeFATMeta(f.File, g, opts.Serial, used); err != nil {
		return fmt.Errorf("make FAT %s: %w", out, err)
	}
	if err := writeFATTable(f.File, g, root); err != nil {
		return fmt.Errorf("make FAT %s: %w", out, err)
	}
	var write func(n, parent *fatNode, isRoot bool) error
	write = func(n, parent *fatNode, isRoot bool) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !n.dir {
			if n.size == 0 {
				return nil
			}
			return copyFileAt(f.File, n.src, n.size, g.clusterOffset(n.cluster))
		}
		var buf []byte
		if !isRoot {
			var dot, dotdot [11]byte
			copy(dot[:], ".          ")
			copy(dotdot[:], "..         ")
			buf = appendDirEntry(buf, dot, 0, attrDir, n.cluster, 0, n.mtime, g.fat32)
			pc := uint32(0)
			if parent != nil {
				pc = parent.cluster
			}
			buf = appendDirEntry(buf, dotdot, 0, attrDir, pc, 0, n.mtime, g.fat32)
		}
		for _, c := range n.children {
			if c.lfn {
				buf = appendLFN(buf, c.name, c.short)
			}
			attr := byte(attrArchive)
			if c.dir {
				attr = attrDir
			}
			buf = appendDirEntry(buf, c.short, c.caseFlags, attr, c.cluster, uint32(c.size), c.mtime, g.fat32)
		}
		off := g.clusterOffset(n.cluster)
		if isRoot && !g.fat32 {
			off = (g.reserved + 2*g.fatSectors) * SectorSize
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return fmt.Errorf("write directory %q: %w", n.name, err)
		}
		var self *fatNode
		if !isRoot {
			self = n
		}
		for _, c := range n.children {
			if err := write(c, self, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(root, nil, true); err != nil {
		return fmt.Errorf("make FAT %s: %w", out, err)
	}
	return f.Commit()
}

func readFATTree(dir string, n *fatNode, clamp time.Time) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	seen := map[string]string{}
	for _, name := range names {
		p := filepath.Join(dir, name)
		if other, dup := seen[strings.ToUpper(name)]; dup {
			return fmt.Errorf("%s and %s differ only in case, which FAT cannot hold", filepath.Join(dir, other), p)
		}
		seen[strings.ToUpper(name)] = name
		if err := validLongName(name); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		c := &fatNode{name: name, mtime: clampFATTime(info.ModTime(), clamp)}
		switch {
		case info.IsDir():
			c.dir = true
			if err := readFATTree(p, c, clamp); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if info.Size() > 0xffffffff {
				return fmt.Errorf("%s: %d bytes exceed FAT's 4 GiB file size limit", p, info.Size())
			}
			c.src, c.size = p, info.Size()
		default:
			return fmt.Errorf("%s: %v is neither a file nor a directory, which FAT cannot hold", p, info.Mode().Type())
		}
		n.children = append(n.children, c)
	}
	return nil
}

func clampFATTime(t, clamp time.Time) time.Time {
	if !clamp.IsZero() && t.After(clamp) {
		t = clamp
	}
	t = t.UTC()
	if t.Year() < 1980 {
		return time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() > 2107 {
		return time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	return t
}

func validLongName(name string) error {
	if len(utf16.Encode([]rune(name))) > 255 {
		return errors.New("name longer than FAT's 255 characters")
	}
	if strings.ContainsAny(name, "\"*/:<>?\\|") || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 }) {
		return fmt.Errorf("name %q has characters FAT does not allow", name)
	}
	if strings.TrimRight(name, ". ") == "" {
		return fmt.Errorf("name %q is only dots and spaces", name)
	}
	return nil
}

const shortNameChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()-@^_`{}~"

// assignShortName gives n an 8.3 name. A name that already is 8.3 (each part all upper or all
// lower case) is stored without VFAT entries, using the NT case bits as Linux and Windows do;
// anything else gets a long name and a unique BASIS~N short name.
func assignShortName(n *fatNode, used map[[11]byte]bool) error {
	base, ext := n.name, ""
	if i := strings.LastIndexByte(n.name, '.'); i > 0 {
		base, ext = n.name[:i], n.name[i+1:]
	}
	if sn, flags, ok := plain83(base, ext); ok && !used[sn] {
		n.short, n.caseFlags, used[sn] = sn, flags, true
		return nil
	}
	n.lfn = true
	clean := func(s string, max int) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			if b.Len() >= max {
				break
			}
			switch {
			case r == ' ' || r == '.':
			case r < 0x80 && strings.ContainsRune(shortNameChars, r):
				b.WriteRune(r)
			default:
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	if strings.LastIndexByte(n.name, '.') <= 0 {
		base, ext = strings.TrimLeft(n.name, "."), ""
	}
	b, e := clean(base, 8), clean(ext, 3)
	for i := 1; i < 1000000; i++ {
		tail := fmt.Sprintf("~%d", i)
		stem := b
		if len(stem)+len(tail) > 8 {
			stem = stem[:8-len(tail)]
		}
		var sn [11]byte
		copy(sn[:], fmt.Sprintf("%-8s%-3s", stem+tail, e))
		if !used[sn] {
			n.short, used[sn] = sn, true
			return nil
		}
	}
	return fmt.Errorf("no free short name for %q", n.name)
}

func plain83(base, ext string) ([11]byte, byte, bool) {
	var sn [11]byte
	if len(base) < 1 || len(base) > 8 || len(ext) > 3 || strings.ContainsRune(base, '.') {
		return sn, 0, false
	}
	var flags byte
	for i, part := range []string{base, ext} {
		upper, lower := false, false
		for _, r := range part {
			switch {
			case r >= 'a' && r <= 'z':
				lower = true
			case r >= 'A' && r <= 'Z':
				upper = true
			case r >= 0x80 || !strings.ContainsRune(shortNameChars, r):
				return sn, 0, false
			}
		}
		if upper && lower {
			return sn, 0, false
		}
		if lower {
			flags |= byte(0x08 << i)
		}
	}
	copy(sn[:], fmt.Sprintf("%-8s%-3s", strings.ToUpper(base), strings.ToUpper(ext)))
	return sn, flags, true
}

func lfnCount(n *fatNode) int64 {
	if !n.lfn {
		return 0
	}
	return int64((len(utf16.Encode([]rune(n.name))) + 12) / 13)
}

func lfnChecksum(sn [11]byte) byte {
	var sum byte
	for _, c := range sn {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

func appendLFN(buf []byte, name string, sn [11]byte) []byte {
	units := utf16.Encode([]rune(name))
	count := (len(units) + 12) / 13
	sum := lfnChecksum(sn)
	pos := [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}
	for seq := count; seq >= 1; seq-- {
		var e [dirEntrySize]byte
		e[0] = byte(seq)
		if seq == count {
			e[0] |= 0x40
		}
		e[11], e[13] = attrLFN, sum
		for i := range 13 {
			k := (seq-1)*13 + i
			var u uint16
			switch {
			case k < len(units):
				u = units[k]
			case k == len(units):
				u = 0
			default:
				u = 0xffff
			}
			binary.LittleEndian.PutUint16(e[pos[i]:], u)
		}
		buf = append(buf, e[:]...)
	}
	return buf
}

func appendDirEntry(buf []byte, sn [11]byte, caseFlags, attr byte, cluster, size uint32, t time.Time, fat32 bool) []byte {
	var e [dirEntrySize]byte
	copy(e[:11], sn[:])
	e[11], e[12] = attr, caseFlags
	date := uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	tm := uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	binary.LittleEndian.PutUint16(e[14:], tm)
	binary.LittleEndian.PutUint16(e[16:], date)
	binary.LittleEndian.PutUint16(e[18:], date)
	if fat32 {
		binary.LittleEndian.PutUint16(e[20:], uint16(cluster>>16))
	}
	binary.LittleEndian.PutUint16(e[22:], tm)
	binary.LittleEndian.PutUint16(e[24:], date)
	binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
	binary.LittleEndian.PutUint32(e[28:], size)
	return append(buf, e[:]...)
}

func writeFATMeta(w io.WriterAt, g fatGeometry, serial uint32, usedClusters uint32) error {
	bs := make([]byte, SectorSize)
	copy(bs[3:], "OTABAKE ")
	binary.LittleEndian.PutUint16(bs[11:], SectorSize)
	bs[13] = byte(g.spc)
	binary.LittleEndian.PutUint16(bs[14:], uint16(g.reserved))
	bs[16] = 2
	bs[21] = 0xf8
	binary.LittleEndian.PutUint16(bs[24:], 63)
	binary.LittleEndian.PutUint16(bs[26:], 255)
	if !g.fat32 && g.totalSectors < 1<<16 {
		binary.LittleEndian.PutUint16(bs[19:], uint16(g.totalSectors))
	} else {
		binary.LittleEndian.PutUint32(bs[32:], uint32(g.totalSectors))
	}
	ext := 36
	if g.fat32 {
		copy(bs[0:3], []byte{0xeb, 0x58, 0x90})
		binary.LittleEndian.PutUint32(bs[36:], uint32(g.fatSectors))
		binary.LittleEndian.PutUint32(bs[44:], 2)
		binary.LittleEndian.PutUint16(bs[48:], 1)
		binary.LittleEndian.PutUint16(bs[50:], 6)
		ext = 64
	} else {
		copy(bs[0:3], []byte{0xeb, 0x3c, 0x90})
		binary.LittleEndian.PutUint16(bs[17:], fat16RootEntries)
		binary.LittleEndian.PutUint16(bs[22:], uint16(g.fatSectors))
	}
	bs[ext] = 0x80
	bs[ext+2] = 0x29
	binary.LittleEndian.PutUint32(bs[ext+3:], serial)
	copy(bs[ext+7:], "NO NAME    ")
	if g.fat32 {
		copy(bs[ext+18:], "FAT32   ")
	} else {
		copy(bs[ext+18:], "FAT16   ")
	}
	bs[510], bs[511] = 0x55, 0xaa
	if _, err := w.WriteAt(bs, 0); err != nil {
		return fmt.Errorf("write boot sector: %w", err)
	}
	if !g.fat32 {
		return nil
	}
	fsinfo := make([]byte, SectorSize)
	binary.LittleEndian.PutUint32(fsinfo[0:], 0x41615252)
	binary.LittleEndian.PutUint32(fsinfo[484:], 0x61417272)
	binary.LittleEndian.PutUint32(fsinfo[488:], uint32(g.clusters)-usedClusters)
	binary.LittleEndian.PutUint32(fsinfo[492:], 0xffffffff)
	binary.LittleEndian.PutUint32(fsinfo[508:], 0xaa550000)
	for _, s := range []struct {
		data []byte
		sect int64
	}{{fsinfo, 1}, {bs, 6}, {fsinfo, 7}} {
		if _, err := w.WriteAt(s.data, s.sect*SectorSize); err != nil {
			return fmt.Errorf("write FAT32 reserved sector %d: %w", s.sect, err)
		}
	}
	return nil
}

func writeFATTable(w io.WriterAt, g fatGeometry, root *fatNode) error {
	entry := int64(2)
	eoc := uint32(0xffff)
	if g.fat32 {
		entry, eoc = 4, 0x0fffffff
	}
	table := make([]byte, g.fatSectors*SectorSize)
	put := func(i, v uint32) {
		if g.fat32 {
			binary.LittleEndian.PutUint32(table[int64(i)*entry:], v)
		} else {
			binary.LittleEndian.PutUint16(table[int64(i)*entry:], uint16(v))
		}
	}
	put(0, eoc&^0xff|0xf8)
	put(1, eoc)
	var walk func(n *fatNode)
	walk = func(n *fatNode) {
		for i := uint32(0); i < n.nclusters; i++ {
			c := n.cluster + i
			if i+1 == n.nclusters {
				put(c, eoc)
			} else {
				put(c, c+1)
			}
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(root)
	for i := range int64(2) {
		if _, err := w.WriteAt(table, (g.reserved+i*g.fatSectors)*SectorSize); err != nil {
			return fmt.Errorf("write FAT %d: %w", i+1, err)
		}
	}
	return nil
}

func copyFileAt(dst io.WriterAt, src string, size, off int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	n, err := io.Copy(io.NewOffsetWriter(dst, off), io.LimitReader(in, size))
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("copy %s: file changed size while copying (%d of %d bytes)", src, n, size)
	}
	return nil
}
