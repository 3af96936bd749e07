// Package gpt reads and rewrites the GUID partition tables of existing disks and disk images,
// without external tools: find a partition by number or by the unique GUID a kernel command line
// names (root=PARTUUID=…), add partitions the way Rugix Ctrl's first-boot bootstrapping does,
// rewriting both the primary and the backup table with valid CRCs, and write new tables (New,
// Create). It is otabake's one GPT and GUID codec: internal/image writes the tables of its disk
// images with it, `otabake run` finds the config partition of an image with it, and the VM
// guest programs grow tables with it.
//
// Only 512-byte logical sectors are supported; that is what virtio-blk and disk image files use.
package gpt

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// SectorSize is the logical sector size the tables are read and written with.
const SectorSize = 512

const (
	signature     = "EFI PART"
	revision      = 0x00010000
	headerSize    = 92
	minEntrySize  = 128
	maxEntries    = 1024
	maxEntryBytes = 1 << 20
)

// TypeLinux is the GPT type of a Linux filesystem partition, the type of every boot, system and
// data partition of the efi-grub layout.
var TypeLinux = MustParseGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")

// ErrNoGPT reports a disk without a valid GPT header, so that callers scanning several disks can
// skip it instead of failing.
var ErrNoGPT = errors.New("no GPT")

// GUID is a GUID in its textual (big-endian) byte order. GPT stores the first three fields
// little-endian; Read and Write convert, so that comparisons with PARTUUID strings are direct.
type GUID [16]byte

// ParseGUID parses the 36-character textual form in either case.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("parse GUID %q: want 8-4-4-4-12 hex digits", s)
	}
	if _, err := hex.Decode(g[:], []byte(strings.ReplaceAll(s, "-", ""))); err != nil {
		return g, fmt.Errorf("parse GUID %q: %w", s, err)
	}
	return g, nil
}

// MustParseGUID is ParseGUID for constants.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String formats the GUID in lower case, as the kernel and blkid print PARTUUIDs.
func (g GUID) String() string {
	h := hex.EncodeToString(g[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Upper formats the GUID in upper case, as sfdisk scripts and reports write GUIDs.
func (g GUID) Upper() string { return strings.ToUpper(g.String()) }

// IsZero reports an unused entry's type.
func (g GUID) IsZero() bool { return g == GUID{} }

// NewRandomGUID returns a random version 4 GUID for a new partition.
func NewRandomGUID() (GUID, error) {
	var g GUID
	if _, err := rand.Read(g[:]); err != nil {
		return g, fmt.Errorf("random GUID: %w", err)
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g, nil
}

// decodeMixed converts GPT's on-disk byte order to the textual order (and back: it is its own
// inverse).
func decodeMixed(b []byte) GUID {
	var g GUID
	copy(g[:], b)
	g[0], g[1], g[2], g[3] = g[3], g[2], g[1], g[0]
	g[4], g[5] = g[5], g[4]
	g[6], g[7] = g[7], g[6]
	return g
}

// Partition is one used entry of the table.
type Partition struct {
	// Number is the Linux partition number, the entry index plus one.
	Number int
	Type   GUID
	UUID   GUID
	// First and Last are inclusive LBAs.
	First, Last uint64
	Attrs       uint64
	Name        string
}

// Sectors returns the partition's length in sectors.
func (p Partition) Sectors() uint64 { return p.Last - p.First + 1 }

// Offset returns the partition's byte offset on the disk.
func (p Partition) Offset() int64 { return int64(p.First) * SectorSize }

// Bytes returns the partition's length in bytes.
func (p Partition) Bytes() int64 { return int64(p.Sectors()) * SectorSize }

// Table is a parsed GPT. Entries keeps the whole entry array so that rewriting preserves
// entries (and bytes) it does not understand.
type Table struct {
	DiskGUID    GUID
	FirstUsable uint64
	LastUsable  uint64
	// NumEntries and EntrySize describe the entry array.
	NumEntries uint32
	EntrySize  uint32
	// Entries is the raw entry array, NumEntries*EntrySize bytes.
	Entries []byte
}

// Partitions returns the used entries in table order.
func (t *Table) Partitions() []Partition {
	var ps []Partition
	for i := 0; i < int(t.NumEntries); i++ {
		if p, ok := t.Partition(i + 1); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// Partition returns partition n (1-based) if its entry is used.
func (t *Table) Partition(n int) (Partition, bool) {
	if n < 1 || n > int(t.NumEntries) {
		return Partition{}, false
	}
	e := t.Entries[(n-1)*int(t.EntrySize):][:t.EntrySize]
	typ := decodeMixed(e[0:16])
	if typ.IsZero() {
		return Partition{}, false
	}
	u16 := make([]uint16, 0, 36)
	for i := 56; i+1 < 128; i += 2 {
		c := binary.LittleEndian.Uint16(e[i:])
		if c == 0 {
			break
		}
		u16 = append(u16, c)
	}
	return Partition{
		Number: n,
		Type:   typ,
		UUID:   decodeMixed(e[16:32]),
		First:  binary.LittleEndian.Uint64(e[32:]),
		Last:   binary.LittleEndian.Uint64(e[40:]),
		Attrs:  binary.LittleEndian.Uint64(e[48:]),
		Name:   string(utf16.Decode(u16)),
	}, true
}

// FindUUID returns the partition whose unique GUID is u.
func (t *Table) FindUUID(u GUID) (Partition, bool) {
	for _, p := range t.Partitions() {
		if p.UUID == u {
			return p, true
		}
	}
	return Partition{}, false
}

// SetPartition fills entry p.Number with p. It checks that the range lies within the usable
// area and overlaps no other partition, so that a bug cannot write a table that destroys data.
func (t *Table) SetPartition(p Partition) error {
	if p.Number < 1 || p.Number > int(t.NumEntries) {
		return fmt.Errorf("partition %d: the table has %d entries", p.Number, t.NumEntries)
	}
	if p.Type.IsZero() {
		return fmt.Errorf("partition %d: zero type GUID marks an unused entry", p.Number)
	}
	if p.First > p.Last || p.First < t.FirstUsable || p.Last > t.LastUsable {
		return fmt.Errorf("partition %d: LBAs %d–%d outside the usable area %d–%d", p.Number, p.First, p.Last, t.FirstUsable, t.LastUsable)
	}
	for _, o := range t.Partitions() {
		if o.Number != p.Number && p.First <= o.Last && o.First <= p.Last {
			return fmt.Errorf("partition %d: LBAs %d–%d overlap partition %d (%d–%d)", p.Number, p.First, p.Last, o.Number, o.First, o.Last)
		}
	}
	name := utf16.Encode([]rune(p.Name))
	if len(name) > 36 {
		return fmt.Errorf("partition %d: name %q longer than 36 UTF-16 units", p.Number, p.Name)
	}
	e := t.Entries[(p.Number-1)*int(t.EntrySize):][:t.EntrySize]
	clear(e)
	typ, uu := decodeMixed(p.Type[:]), decodeMixed(p.UUID[:])
	copy(e[0:16], typ[:])
	copy(e[16:32], uu[:])
	binary.LittleEndian.PutUint64(e[32:], p.First)
	binary.LittleEndian.PutUint64(e[40:], p.Last)
	binary.LittleEndian.PutUint64(e[48:], p.Attrs)
	for i, c := range name {
		binary.LittleEndian.PutUint16(e[56+2*i:], c)
	}
	return nil
}

// entrySectors is the number of sectors the entry array occupies.
func (t *Table) entrySectors() uint64 {
	return (uint64(len(t.Entries)) + SectorSize - 1) / SectorSize
}

// Read parses the primary GPT of a disk of size bytes, checking the header and entry array CRCs.
// A disk without the "EFI PART" signature gives an error wrapping ErrNoGPT.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	if size < 3*SectorSize {
		return nil, fmt.Errorf("read GPT: disk of %d bytes: %w", size, ErrNoGPT)
	}
	hdr := make([]byte, SectorSize)
	if _, err := r.ReadAt(hdr, SectorSize); err != nil {
		return nil, fmt.Errorf("read GPT header at LBA 1: %w", err)
	}
	if string(hdr[:8]) != signature {
		return nil, fmt.Errorf("read GPT: LBA 1 has no %q signature: %w", signature, ErrNoGPT)
	}
	hsz := binary.LittleEndian.Uint32(hdr[12:])
	if hsz < headerSize || hsz > SectorSize {
		return nil, fmt.Errorf("read GPT: header size %d out of range", hsz)
	}
	want := binary.LittleEndian.Uint32(hdr[16:])
	h := bytes.Clone(hdr[:hsz])
	binary.LittleEndian.PutUint32(h[16:], 0)
	if got := crc32.ChecksumIEEE(h); got != want {
		return nil, fmt.Errorf("read GPT: header CRC %08x, expected %08x", got, want)
	}
	t := &Table{
		FirstUsable: binary.LittleEndian.Uint64(hdr[40:]),
		LastUsable:  binary.LittleEndian.Uint64(hdr[48:]),
		DiskGUID:    decodeMixed(hdr[56:72]),
		NumEntries:  binary.LittleEndian.Uint32(hdr[80:]),
		EntrySize:   binary.LittleEndian.Uint32(hdr[84:]),
	}
	entriesLBA := binary.LittleEndian.Uint64(hdr[72:])
	if t.EntrySize < minEntrySize || t.EntrySize%8 != 0 || t.NumEntries == 0 || t.NumEntries > maxEntries ||
		uint64(t.NumEntries)*uint64(t.EntrySize) > maxEntryBytes {
		return nil, fmt.Errorf("read GPT: %d entries of %d bytes not supported", t.NumEntries, t.EntrySize)
	}
	t.Entries = make([]byte, int(t.NumEntries)*int(t.EntrySize))
	if entriesLBA < 2 || int64(entriesLBA)*SectorSize+int64(len(t.Entries)) > size {
		return nil, fmt.Errorf("read GPT: entry array at LBA %d beyond the disk", entriesLBA)
	}
	if _, err := r.ReadAt(t.Entries, int64(entriesLBA)*SectorSize); err != nil {
		return nil, fmt.Errorf("read GPT entries at LBA %d: %w", entriesLBA, err)
	}
	if got, want := crc32.ChecksumIEEE(t.Entries), binary.LittleEndian.Uint32(hdr[88:]); got != want {
		return nil, fmt.Errorf("read GPT: entry array CRC %08x, expected %08x", got, want)
	}
	return t, nil
}

// Fit moves the end of the usable area to where a disk of size bytes puts it: the backup entry
// array right before the backup header in the last sector. A disk image grown after it was
// written (qemu-img resize) so gains the new space, as sfdisk and Rugix Ctrl do.
func (t *Table) Fit(size int64) error {
	last := uint64(size/SectorSize) - 1
	if last < 2*t.entrySectors()+3 {
		return fmt.Errorf("fit GPT: disk of %d bytes too small for the tables", size)
	}
	lu := last - t.entrySectors() - 1
	for _, p := range t.Partitions() {
		if p.Last > lu {
			return fmt.Errorf("fit GPT: partition %d ends at LBA %d, past the last usable LBA %d of a %d-byte disk", p.Number, p.Last, lu, size)
		}
	}
	t.LastUsable = lu
	return nil
}

// DefaultEntries and DefaultEntrySize are the entry array sfdisk, gdisk and the UEFI
// specification's minimum agree on: 128 entries of 128 bytes, 32 sectors.
const (
	DefaultEntries   = 128
	DefaultEntrySize = 128
)

// New returns an empty table for a disk of size bytes: the default entry array at LBA 2, the
// usable area from firstUsable (the first partition's alignment, 2048 for 1 MiB) to right
// before the backup entry array.
func New(size int64, diskGUID GUID, firstUsable uint64) (*Table, error) {
	t := &Table{DiskGUID: diskGUID, FirstUsable: firstUsable, NumEntries: DefaultEntries, EntrySize: DefaultEntrySize,
		Entries: make([]byte, DefaultEntries*DefaultEntrySize)}
	if firstUsable < 2+t.entrySectors() {
		return nil, fmt.Errorf("new GPT: first usable LBA %d inside the primary entry array", firstUsable)
	}
	if err := t.Fit(size); err != nil {
		return nil, fmt.Errorf("new GPT: %w", err)
	}
	if t.LastUsable < firstUsable {
		return nil, fmt.Errorf("new GPT: disk of %d bytes has no room after LBA %d", size, firstUsable)
	}
	return t, nil
}

// Create writes t onto a blank disk of size bytes: a protective MBR whose 0xEE entry spans the
// disk, then the tables (Write). Nothing else on the disk is touched.
func (t *Table) Create(w ReadWriterAt, size int64) error {
	last := uint64(size/SectorSize) - 1
	pmbr := make([]byte, SectorSize)
	PutMBREntry(pmbr[446:462], 0xee, 1, min(last, 0xffffffff))
	pmbr[510], pmbr[511] = 0x55, 0xaa
	if _, err := w.WriteAt(pmbr, 0); err != nil {
		return fmt.Errorf("write protective MBR: %w", err)
	}
	return t.Write(w, size)
}

// PutMBREntry fills a 16-byte MBR partition entry (the protective MBR's, or one of an MBR
// disk's). start is relative to whatever the entry's table is relative to; the CHS fields use
// the 255-head, 63-sector geometry sfdisk assumes and saturate beyond cylinder 1023, which is
// all any firmware still reads from them.
func PutMBREntry(e []byte, typ byte, start, sectors uint64) {
	e[0] = 0
	putCHS(e[1:4], start)
	e[4] = typ
	putCHS(e[5:8], start+sectors-1)
	binary.LittleEndian.PutUint32(e[8:], uint32(start))
	binary.LittleEndian.PutUint32(e[12:], uint32(sectors))
}

func putCHS(b []byte, lba uint64) {
	const heads, sectors = 255, 63
	c := lba / (heads * sectors)
	h := (lba / sectors) % heads
	s := lba%sectors + 1
	if c > 1023 {
		c, h, s = 1023, 254, 63
	}
	b[0] = byte(h)
	b[1] = byte(s) | byte((c>>2)&0xc0)
	b[2] = byte(c)
}

// ReadWriterAt is a disk opened for reading and writing.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// Write writes the primary header and entries at LBA 1 and 2, and the backup entries and header
// at the end of a disk of size bytes, with fresh CRCs, and makes the protective MBR's 0xEE entry
// span the disk (sfdisk and fdisk complain about a mismatch). No partition data is touched.
// Call Fit first when the disk size may have changed.
func (t *Table) Write(w ReadWriterAt, size int64) error {
	if len(t.Entries) != int(t.NumEntries)*int(t.EntrySize) {
		return fmt.Errorf("write GPT: entry array of %d bytes, header says %d×%d", len(t.Entries), t.NumEntries, t.EntrySize)
	}
	last := uint64(size/SectorSize) - 1
	backupEntries := last - t.entrySectors()
	if t.LastUsable >= backupEntries || t.FirstUsable < 2+t.entrySectors() {
		return fmt.Errorf("write GPT: usable area %d–%d collides with the tables of a %d-byte disk", t.FirstUsable, t.LastUsable, size)
	}
	entries := make([]byte, t.entrySectors()*SectorSize)
	copy(entries, t.Entries)
	crc := crc32.ChecksumIEEE(t.Entries)
	header := func(my, alt, entriesLBA uint64) []byte {
		h := make([]byte, SectorSize)
		copy(h, signature)
		binary.LittleEndian.PutUint32(h[8:], revision)
		binary.LittleEndian.PutUint32(h[12:], headerSize)
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], t.FirstUsable)
		binary.LittleEndian.PutUint64(h[48:], t.LastUsable)
		g := decodeMixed(t.DiskGUID[:])
		copy(h[56:72], g[:])
		binary.LittleEndian.PutUint64(h[72:], entriesLBA)
		binary.LittleEndian.PutUint32(h[80:], t.NumEntries)
		binary.LittleEndian.PutUint32(h[84:], t.EntrySize)
		binary.LittleEndian.PutUint32(h[88:], crc)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:headerSize]))
		return h
	}
	// Backup first: if the primary write is torn, firmware and the kernel fall back to it.
	writes := []struct {
		lba  uint64
		data []byte
		what string
	}{
		{backupEntries, entries, "backup entries"},
		{last, header(last, 1, backupEntries), "backup header"},
		{2, entries, "primary entries"},
		{1, header(1, last, 2), "primary header"},
	}
	for _, wr := range writes {
		if _, err := w.WriteAt(wr.data, int64(wr.lba)*SectorSize); err != nil {
			return fmt.Errorf("write GPT %s at LBA %d: %w", wr.what, wr.lba, err)
		}
	}
	return fixProtectiveMBR(w, last)
}

// fixProtectiveMBR sets the length of the protective MBR's 0xEE partition to cover the disk up
// to LBA last (capped at 32 bits, as the UEFI specification says).
func fixProtectiveMBR(w ReadWriterAt, last uint64) error {
	mbr := make([]byte, SectorSize)
	if _, err := w.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("read protective MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil
	}
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i:][:16]
		if e[4] != 0xee {
			continue
		}
		n := min(last, 0xffffffff)
		if binary.LittleEndian.Uint32(e[12:]) == uint32(n) {
			return nil
		}
		binary.LittleEndian.PutUint32(e[12:], uint32(n))
		if _, err := w.WriteAt(e[12:16], int64(446+16*i+12)); err != nil {
			return fmt.Errorf("write protective MBR: %w", err)
		}
		return nil
	}
	return nil
}
