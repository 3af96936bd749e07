package image

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
)

// GPT geometry: 128 entries of 128 bytes (32 sectors), as sfdisk and every other tool write it.
const (
	gptEntries     = 128
	gptEntrySize   = 128
	gptEntrySector = 2
	gptArraySects  = gptEntries * gptEntrySize / SectorSize
	gptHeaderSize  = 92
)

// WriteTable writes the partition table of l into w, which must already be l.DiskBytes()
// long: a protective MBR, primary and backup GPT headers and entry arrays for GPT; the MBR and
// one EBR per logical partition for MBR. Nothing else is touched, so it can run before or
// after the partition contents are copied.
func WriteTable(w io.WriterAt, l Layout, ids Identifiers) error {
	switch l.Table {
	case GPT:
		return writeGPT(w, l, ids)
	case MBR:
		return writeMBR(w, l, ids)
	}
	return fmt.Errorf("write partition table: unknown table type %q", l.Table)
}

func writeGPT(w io.WriterAt, l Layout, ids Identifiers) error {
	n := l.DiskSectors
	if n < alignSectors+2*(gptArraySects+1) {
		return fmt.Errorf("write GPT: disk of %d sectors is too small", n)
	}
	pmbr := make([]byte, SectorSize)
	putMBREntry(pmbr[446:], 0xee, 1, min(n-1, 0xffffffff))
	pmbr[510], pmbr[511] = 0x55, 0xaa
	if _, err := w.WriteAt(pmbr, 0); err != nil {
		return fmt.Errorf("write protective MBR: %w", err)
	}

	array := make([]byte, gptEntries*gptEntrySize)
	for i, p := range l.Partitions {
		if i >= gptEntries {
			return fmt.Errorf("write GPT: more than %d partitions", gptEntries)
		}
		typ, err := ParseUUID(p.Type)
		if err != nil {
			return fmt.Errorf("write GPT: partition %d type: %w", p.Number, err)
		}
		e := array[(p.Number-1)*gptEntrySize:]
		tg := typ.mixedEndian()
		copy(e[0:16], tg[:])
		ug := ids.PartitionGUID(p.Number).mixedEndian()
		copy(e[16:32], ug[:])
		binary.LittleEndian.PutUint64(e[32:], uint64(p.Start))
		binary.LittleEndian.PutUint64(e[40:], uint64(p.Start+p.Sectors-1))
	}
	arrayCRC := crc32.ChecksumIEEE(array)
	lastUsable := n - 2 - gptArraySects
	for _, p := range l.Partitions {
		if p.Start < alignSectors || p.Start+p.Sectors-1 > lastUsable {
			return fmt.Errorf("write GPT: partition %d (%d+%d sectors) outside the usable area %d–%d", p.Number, p.Start, p.Sectors, alignSectors, lastUsable)
		}
	}
	header := func(my, alt, entries int64) []byte {
		h := make([]byte, SectorSize)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], gptHeaderSize)
		binary.LittleEndian.PutUint64(h[24:], uint64(my))
		binary.LittleEndian.PutUint64(h[32:], uint64(alt))
		binary.LittleEndian.PutUint64(h[40:], alignSectors)
		binary.LittleEndian.PutUint64(h[48:], uint64(lastUsable))
		dg := ids.DiskGUID.mixedEndian()
		copy(h[56:72], dg[:])
		binary.LittleEndian.PutUint64(h[72:], uint64(entries))
		binary.LittleEndian.PutUint32(h[80:], gptEntries)
		binary.LittleEndian.PutUint32(h[84:], gptEntrySize)
		binary.LittleEndian.PutUint32(h[88:], arrayCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:gptHeaderSize]))
		return h
	}
	backupArray := n - 1 - gptArraySects
	writes := []struct {
		what string
		data []byte
		lba  int64
	}{
		{"primary GPT header", header(1, n-1, gptEntrySector), 1},
		{"primary GPT entries", array, gptEntrySector},
		{"backup GPT entries", array, backupArray},
		{"backup GPT header", header(n-1, 1, backupArray), n - 1},
	}
	for _, wr := range writes {
		if _, err := w.WriteAt(wr.data, wr.lba*SectorSize); err != nil {
			return fmt.Errorf("write %s at sector %d: %w", wr.what, wr.lba, err)
		}
	}
	return nil
}

func writeMBR(w io.WriterAt, l Layout, ids Identifiers) error {
	mbr := make([]byte, SectorSize)
	binary.LittleEndian.PutUint32(mbr[440:], ids.MBRDiskID)
	var ext *Partition
	var logical []Partition
	for i := range l.Partitions {
		p := l.Partitions[i]
		typ, err := strconv.ParseUint(p.Type, 16, 8)
		if err != nil {
			return fmt.Errorf("write MBR: partition %d type %q is not a hex byte", p.Number, p.Type)
		}
		if p.Start+p.Sectors > 1<<32 {
			return fmt.Errorf("write MBR: partition %d ends beyond sector 2^32", p.Number)
		}
		switch {
		case p.Number <= 4:
			putMBREntry(mbr[446+16*(p.Number-1):], byte(typ), p.Start, p.Sectors)
			if p.Role == RoleExtended {
				ext = &l.Partitions[i]
			}
		default:
			if ext == nil {
				return fmt.Errorf("write MBR: logical partition %d without an extended partition", p.Number)
			}
			logical = append(logical, p)
		}
	}
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := w.WriteAt(mbr, 0); err != nil {
		return fmt.Errorf("write MBR: %w", err)
	}
	// Each logical partition has an EBR one alignment step before it (Plan leaves the room);
	// its second entry links to the next EBR, relative to the start of the extended partition.
	for i, p := range logical {
		ebrLBA := p.Start - alignSectors
		if i == 0 {
			ebrLBA = ext.Start
		}
		if ebrLBA < ext.Start || ebrLBA >= p.Start {
			return fmt.Errorf("write MBR: no room for the EBR of partition %d", p.Number)
		}
		ebr := make([]byte, SectorSize)
		typ, _ := strconv.ParseUint(p.Type, 16, 8)
		putMBREntry(ebr[446:], byte(typ), p.Start-ebrLBA, p.Sectors)
		if i+1 < len(logical) {
			nxt := logical[i+1]
			nextEBR := nxt.Start - alignSectors
			putMBREntry(ebr[462:], 0x05, nextEBR-ext.Start, nxt.Start+nxt.Sectors-nextEBR)
		}
		ebr[510], ebr[511] = 0x55, 0xaa
		if _, err := w.WriteAt(ebr, ebrLBA*SectorSize); err != nil {
			return fmt.Errorf("write EBR of partition %d: %w", p.Number, err)
		}
	}
	return nil
}

// putMBREntry fills a 16-byte MBR partition entry. start is relative to whatever the entry's
// table is relative to; the CHS fields use the 255-head, 63-sector geometry sfdisk assumes and
// saturate beyond cylinder 1023, which is all any firmware still reads from them.
func putMBREntry(e []byte, typ byte, start, sectors int64) {
	e[0] = 0
	putCHS(e[1:4], start)
	e[4] = typ
	putCHS(e[5:8], start+sectors-1)
	binary.LittleEndian.PutUint32(e[8:], uint32(start))
	binary.LittleEndian.PutUint32(e[12:], uint32(sectors))
}

func putCHS(b []byte, lba int64) {
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
