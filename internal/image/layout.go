package image

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
)

// SectorSize is the logical block size of every image; Rugix and sfdisk count in 512-byte
// sectors.
const SectorSize = 512

// alignSectors is the partition alignment (1 MiB), which is also where the first partition
// starts.
const alignSectors = 2048

// minSystemBytes is the floor of the computed system partition size (Bakery's "64M").
const minSystemBytes = 64 * MiB

// Sizes overrides the default sizes of a layout, in bytes; zero keeps the default. Image only
// enlarges the disk: partitions keep their sizes and the free space is left for Rugix Ctrl to
// add system-b and data.
type Sizes struct {
	Config int64 `json:"config,omitempty"`
	BootA  int64 `json:"bootA,omitempty"`
	BootB  int64 `json:"bootB,omitempty"`
	System int64 `json:"system,omitempty"`
	Image  int64 `json:"image,omitempty"`
}

// Partition is one entry of a resolved layout.
type Partition struct {
	// Number is the partition number as Linux and Rugix Ctrl count it: 1–4 primary, 5 and up
	// for logical partitions inside the extended one.
	Number int    `json:"number"`
	Role   Role   `json:"role"`
	Type   string `json:"type"`
	// Start and Sectors are in 512-byte sectors.
	Start   int64  `json:"start"`
	Sectors int64  `json:"sectors"`
	FS      FSType `json:"fs,omitempty"`
	// Label is the GPT partition name, when the target gives one.
	Label string `json:"label,omitempty"`
}

// Offset returns the byte offset of the partition in the disk image.
func (p Partition) Offset() int64 { return p.Start * SectorSize }

// Bytes returns the size of the partition in bytes.
func (p Partition) Bytes() int64 { return p.Sectors * SectorSize }

// Layout is a fully resolved disk layout: every start and size is known, so the partition
// table and the root= device of the boot configuration can be written.
type Layout struct {
	Table      TableType   `json:"table"`
	Partitions []Partition `json:"partitions"`
	// DiskSectors is the size of the whole image in sectors.
	DiskSectors int64 `json:"diskSectors"`
}

// DiskBytes returns the size of the disk image in bytes.
func (l Layout) DiskBytes() int64 { return l.DiskSectors * SectorSize }

// ByRole returns the partition with the given role.
func (l Layout) ByRole(r Role) (Partition, bool) {
	for _, p := range l.Partitions {
		if p.Role == r {
			return p, true
		}
	}
	return Partition{}, false
}

// SystemSize applies Bakery's rule for a system partition without a fixed size:
// max(content, 64 MiB) plus 20 %, rounded up to whole sectors.
func SystemSize(contentBytes int64) int64 {
	n := max(contentBytes, minSystemBytes)
	n += (n + 4) / 5
	return alignUp(n, SectorSize)
}

// TreeSize sums lstat sizes of every entry below dir, directories included, the way Bakery
// measures a root before sizing its partition.
func TreeSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure %s: %w", dir, err)
	}
	return total, nil
}

// ErrTooLarge reports content that does not fit a fixed partition or image size.
var ErrTooLarge = errors.New("content larger than the configured size")

// Plan resolves the target's default layout with the size overrides: 2048-sector alignment,
// the first partition at sector 2048, logical partitions one alignment step after the start of
// the extended partition (room for the EBR), the extended partition running to the end of the
// disk, and 1 MiB of slack after the last partition for the backup GPT. rootfsBytes is the
// TreeSize of the system root.
func Plan(t Target, s Sizes, rootfsBytes int64) (Layout, error) {
	if t.Name == "" || len(t.Partitions) == 0 {
		return Layout{}, errors.New("plan layout: no target (use TargetByName)")
	}
	for _, v := range []struct {
		name string
		n    int64
	}{{"config", s.Config}, {"boot-a", s.BootA}, {"boot-b", s.BootB}, {"system", s.System}, {"image", s.Image}} {
		if v.n < 0 {
			return Layout{}, fmt.Errorf("plan layout: negative %s size %d", v.name, v.n)
		}
	}
	l := Layout{Table: t.Table}
	next := int64(alignSectors)
	var extIndex = -1
	number := 1
	for _, spec := range t.Partitions {
		p := Partition{Role: spec.Role, Type: spec.Type, FS: spec.FS, Label: spec.Label}
		size := spec.Size
		switch spec.Role {
		case RoleConfig:
			size = pick(s.Config, size)
		case RoleBootA:
			size = pick(s.BootA, size)
		case RoleBootB:
			size = pick(s.BootB, size)
		case RoleSystemB:
			// The spare rootfs slot takes what system-a may grow to.
			if a, ok := l.ByRole(RoleSystemA); ok {
				size = a.Bytes()
			}
		case RoleSystemA:
			if s.System > 0 {
				if rootfsBytes > s.System {
					return Layout{}, fmt.Errorf("plan layout: root filesystem of %d bytes does not fit the fixed system size of %d bytes: %w", rootfsBytes, s.System, ErrTooLarge)
				}
				size = s.System
			} else {
				size = SystemSize(rootfsBytes)
			}
		}
		if spec.Role == RoleExtended {
			p.Number = number
			p.Start = next
			extIndex = len(l.Partitions)
			l.Partitions = append(l.Partitions, p)
			number = 5
			continue
		}
		if size < MiB {
			return Layout{}, fmt.Errorf("plan layout: %s partition of %d bytes is smaller than 1 MiB", spec.Role, size)
		}
		if extIndex >= 0 {
			next = alignUp(next+1, alignSectors)
		}
		p.Number = number
		number++
		p.Start = next
		p.Sectors = alignUp(size, SectorSize) / SectorSize
		next = alignUp(p.Start+p.Sectors, alignSectors)
		l.Partitions = append(l.Partitions, p)
	}
	last := l.Partitions[len(l.Partitions)-1]
	l.DiskSectors = alignUp(last.Start+last.Sectors, alignSectors) + alignSectors
	if s.Image > 0 {
		if s.Image%SectorSize != 0 {
			return Layout{}, fmt.Errorf("plan layout: image size %d is not a multiple of %d", s.Image, SectorSize)
		}
		if s.Image/SectorSize < l.DiskSectors {
			return Layout{}, fmt.Errorf("plan layout: image size %d bytes is smaller than the %d bytes the partitions need: %w", s.Image, l.DiskSectors*SectorSize, ErrTooLarge)
		}
		l.DiskSectors = s.Image / SectorSize
	}
	if extIndex >= 0 {
		ext := &l.Partitions[extIndex]
		ext.Sectors = l.DiskSectors - ext.Start
	}
	if t.Table == MBR && l.DiskSectors > 1<<32-1 {
		return Layout{}, fmt.Errorf("plan layout: %d sectors exceed what an MBR can address", l.DiskSectors)
	}
	return l, nil
}

func pick(override, def int64) int64 {
	if override > 0 {
		return override
	}
	return def
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }
