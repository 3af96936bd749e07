package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/atomicfile"
)

// Assemble writes the disk image of layout to outPath: a sparse file of layout.DiskBytes(),
// the partition table, and each partition image of parts copied at its offset (only its data
// ranges, so holes stay holes). Partitions without an image (boot-b, the extended partition)
// stay zero. The file appears at outPath only when complete.
func Assemble(ctx context.Context, layout Layout, parts *Partitions, outPath string, ids Identifiers) error {
	if parts == nil {
		return errors.New("assemble: no partition images")
	}
	f, err := atomicfile.Create(outPath, 0o644)
	if err != nil {
		return fmt.Errorf("assemble: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(layout.DiskBytes()); err != nil {
		return fmt.Errorf("assemble %s: size to %d bytes: %w", outPath, layout.DiskBytes(), err)
	}
	if err := WriteTable(f.File, layout, ids); err != nil {
		return fmt.Errorf("assemble %s: %w", outPath, err)
	}
	for _, p := range layout.Partitions {
		src := parts.ByRole(p.Role)
		if src == "" {
			if p.FS != FSNone {
				return fmt.Errorf("assemble %s: no image for the %s partition %d", outPath, p.Role, p.Number)
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyInto(f.File, p, src); err != nil {
			return fmt.Errorf("assemble %s: %w", outPath, err)
		}
	}
	return f.Commit()
}

// copyInto copies the data ranges of the image file src into dst at the partition offset.
func copyInto(dst *os.File, p Partition, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("partition %d: %w", p.Number, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("partition %d: %w", p.Number, err)
	}
	if st.Size() > p.Bytes() {
		return fmt.Errorf("partition %d: image %s is %d bytes, larger than the partition (%d bytes): %w", p.Number, src, st.Size(), p.Bytes(), ErrTooLarge)
	}
	ranges, err := DataRanges(in, st.Size())
	if err != nil {
		return fmt.Errorf("partition %d: %s: %w", p.Number, src, err)
	}
	for _, r := range ranges {
		if err := copyRange(dst, in, r.Start, p.Offset()+r.Start, r.End-r.Start); err != nil {
			return fmt.Errorf("partition %d: copy %s bytes %d–%d: %w", p.Number, src, r.Start, r.End, err)
		}
	}
	return nil
}

// copyRange copies n bytes in the kernel where it can (copy_file_range, which may also share
// extents) and falls back to a buffered copy across filesystems that refuse it.
func copyRange(dst, src *os.File, srcOff, dstOff, n int64) error {
	for n > 0 {
		so, do := srcOff, dstOff
		c, err := unix.CopyFileRange(int(src.Fd()), &so, int(dst.Fd()), &do, int(min(n, 1<<30)), 0)
		if err != nil || c == 0 {
			if err != nil && !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EOPNOTSUPP) {
				return err
			}
			_, err := io.Copy(io.NewOffsetWriter(dst, dstOff), io.NewSectionReader(src, srcOff, n))
			return err
		}
		srcOff += int64(c)
		dstOff += int64(c)
		n -= int64(c)
	}
	return nil
}

// Range is a half-open byte range [Start, End) of a file.
type Range struct{ Start, End int64 }

// DataRanges lists the data ranges of a file of the given size with SEEK_DATA/SEEK_HOLE. On
// filesystems without hole reporting the whole file is one range, which is correct if slower.
func DataRanges(f *os.File, size int64) ([]Range, error) {
	var out []Range
	fd := int(f.Fd())
	off := int64(0)
	for off < size {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				break
			}
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return []Range{{off, size}}, nil
			}
			return nil, fmt.Errorf("seek data at %d: %w", off, err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole at %d: %w", start, err)
		}
		end = min(end, size)
		if start >= end {
			break
		}
		out = append(out, Range{start, end})
		off = end
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return out, nil
}
