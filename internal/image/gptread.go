package image

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// GPTPartition is one used entry of a GUID partition table as it is on a disk.
type GPTPartition struct {
	// Number is the 1-based entry index, the N of /dev/vdaN.
	Number int `json:"number"`
	// Type and UUID are the partition type GUID and the unique partition GUID (PARTUUID).
	Type UUID `json:"type"`
	UUID UUID `json:"uuid"`
	// Start and Sectors are in 512-byte sectors.
	Start   int64 `json:"start"`
	Sectors int64 `json:"sectors"`
}

// Offset returns the partition's byte offset in the disk.
func (p GPTPartition) Offset() int64 { return p.Start * SectorSize }

// Bytes returns the partition's size in bytes.
func (p GPTPartition) Bytes() int64 { return p.Sectors * SectorSize }

// maxGPTEntryBytes bounds the entry array a reader accepts (the usual array is 16 KiB), so a
// hostile header cannot make it allocate without limit.
const maxGPTEntryBytes = 1 << 20

// ReadGPT reads the primary GUID partition table of a disk with 512-byte sectors, checking
// the header and entry-array CRCs, and returns the used entries in table order. It is how
// tools find a partition of a built image (the config partition for `otabake run --spare`).
func ReadGPT(r io.ReaderAt) ([]GPTPartition, error) {
	hdr := make([]byte, SectorSize)
	if _, err := r.ReadAt(hdr, SectorSize); err != nil {
		return nil, fmt.Errorf("read GPT header at offset %d: %w", SectorSize, err)
	}
	if !bytes.Equal(hdr[:8], []byte("EFI PART")) {
		return nil, fmt.Errorf("no GPT header at offset %d (no \"EFI PART\" signature)", SectorSize)
	}
	le := binary.LittleEndian
	hsize := le.Uint32(hdr[12:])
	if hsize < 92 || hsize > SectorSize {
		return nil, fmt.Errorf("GPT header at offset %d: header size %d", SectorSize, hsize)
	}
	want := le.Uint32(hdr[16:])
	h := append([]byte(nil), hdr[:hsize]...)
	clear(h[16:20])
	if got := crc32.ChecksumIEEE(h); got != want {
		return nil, fmt.Errorf("GPT header at offset %d: CRC %08x, header says %08x", SectorSize, got, want)
	}
	entriesLBA := int64(le.Uint64(hdr[72:]))
	count, esize := int64(le.Uint32(hdr[80:])), int64(le.Uint32(hdr[84:]))
	if esize < 128 || esize%8 != 0 || count*esize > maxGPTEntryBytes || entriesLBA < 2 || entriesLBA > 1<<40 {
		return nil, fmt.Errorf("GPT header at offset %d: %d entries of %d bytes at LBA %d", SectorSize, count, esize, entriesLBA)
	}
	arr := make([]byte, count*esize)
	if _, err := r.ReadAt(arr, entriesLBA*SectorSize); err != nil {
		return nil, fmt.Errorf("read GPT entries at offset %d: %w", entriesLBA*SectorSize, err)
	}
	if got, want := crc32.ChecksumIEEE(arr), le.Uint32(hdr[88:]); got != want {
		return nil, fmt.Errorf("GPT entries at offset %d: CRC %08x, header says %08x", entriesLBA*SectorSize, got, want)
	}
	var out []GPTPartition
	for i := int64(0); i < count; i++ {
		e := arr[i*esize : (i+1)*esize]
		var typ [16]byte
		copy(typ[:], e[:16])
		if typ == ([16]byte{}) {
			continue
		}
		first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
		if first <= 0 || last < first || last > 1<<48 {
			return nil, fmt.Errorf("GPT entry %d at offset %d: sectors %d..%d", i+1, entriesLBA*SectorSize+i*esize, first, last)
		}
		var uuid [16]byte
		copy(uuid[:], e[16:32])
		out = append(out, GPTPartition{
			Number: int(i + 1), Type: fromMixedEndian(typ), UUID: fromMixedEndian(uuid),
			Start: first, Sectors: last - first + 1,
		})
	}
	return out, nil
}

// fromMixedEndian undoes UUID.mixedEndian.
func fromMixedEndian(m [16]byte) UUID {
	var u UUID
	u[0], u[1], u[2], u[3] = m[3], m[2], m[1], m[0]
	u[4], u[5] = m[5], m[4]
	u[6], u[7] = m[7], m[6]
	copy(u[8:], m[8:])
	return u
}
