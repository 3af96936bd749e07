package image

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/otabake/otabake/internal/gpt"
)

// WriteTable writes the partition table of l into w, which must already be l.DiskBytes()
// long: a protective MBR, primary and backup GPT headers and entry arrays for GPT; the MBR and
// one EBR per logical partition for MBR. Nothing else is touched, so it can run before or
// after the partition contents are copied.
func WriteTable(w gpt.ReadWriterAt, l Layout, ids Identifiers) error {
	switch l.Table {
	case GPT:
		return writeGPT(w, l, ids)
	case MBR:
		return writeMBR(w, l, ids)
	}
	return fmt.Errorf("write partition table: unknown table type %q", l.Table)
}

func writeGPT(w gpt.ReadWriterAt, l Layout, ids Identifiers) error {
	size := l.DiskBytes()
	t, err := gpt.New(size, ids.DiskGUID, alignSectors)
	if err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	for _, p := range l.Partitions {
		typ, err := gpt.ParseGUID(p.Type)
		if err != nil {
			return fmt.Errorf("write GPT: partition %d type: %w", p.Number, err)
		}
		if err := t.SetPartition(gpt.Partition{Number: p.Number, Type: typ, UUID: ids.PartitionGUID(p.Number), Name: p.Label,
			First: uint64(p.Start), Last: uint64(p.Start + p.Sectors - 1)}); err != nil {
			return fmt.Errorf("write GPT: %w", err)
		}
	}
	return t.Create(w, size)
}

func writeMBR(w gpt.ReadWriterAt, l Layout, ids Identifiers) error {
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
			gpt.PutMBREntry(mbr[446+16*(p.Number-1):], byte(typ), uint64(p.Start), uint64(p.Sectors))
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
		gpt.PutMBREntry(ebr[446:], byte(typ), uint64(p.Start-ebrLBA), uint64(p.Sectors))
		if i+1 < len(logical) {
			nxt := logical[i+1]
			nextEBR := nxt.Start - alignSectors
			gpt.PutMBREntry(ebr[462:], 0x05, uint64(nextEBR-ext.Start), uint64(nxt.Start+nxt.Sectors-nextEBR))
		}
		ebr[510], ebr[511] = 0x55, 0xaa
		if _, err := w.WriteAt(ebr, ebrLBA*SectorSize); err != nil {
			return fmt.Errorf("write EBR of partition %d: %w", p.Number, err)
		}
	}
	return nil
}
