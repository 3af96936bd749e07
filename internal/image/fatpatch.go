package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// ReadWriterAt is a disk image opened for reading and writing in place.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// fatVolume is the part of a FAT16/32 boot sector needed to find and rewrite a file.
type fatVolume struct {
	r           io.ReaderAt
	off, size   int64 // partition byte range in the disk
	bytesPerSec int64
	spc         int64
	fatOff      int64 // byte offset of the first FAT within the partition
	fat32       bool
	rootOff     int64 // FAT16: fixed root directory
	rootBytes   int64
	rootCluster uint32 // FAT32
	dataOff     int64
	clusters    uint32
}

func openFATVolume(r io.ReaderAt, off, size int64) (*fatVolume, error) {
	var bs [512]byte
	if _, err := r.ReadAt(bs[:], off); err != nil {
		return nil, fmt.Errorf("read FAT boot sector at offset %d: %w", off, err)
	}
	if bs[510] != 0x55 || bs[511] != 0xaa {
		return nil, fmt.Errorf("no FAT boot sector at offset %d (signature %02x%02x)", off, bs[510], bs[511])
	}
	le := binary.LittleEndian
	v := &fatVolume{r: r, off: off, size: size}
	v.bytesPerSec = int64(le.Uint16(bs[11:]))
	v.spc = int64(bs[13])
	reserved := int64(le.Uint16(bs[14:]))
	nfats := int64(bs[16])
	rootEntries := int64(le.Uint16(bs[17:]))
	total := int64(le.Uint16(bs[19:]))
	if total == 0 {
		total = int64(le.Uint32(bs[32:]))
	}
	fatSecs := int64(le.Uint16(bs[22:]))
	if fatSecs == 0 {
		fatSecs = int64(le.Uint32(bs[36:]))
		v.fat32 = true
		v.rootCluster = le.Uint32(bs[44:])
	}
	switch v.bytesPerSec {
	case 512, 1024, 2048, 4096:
	default:
		return nil, fmt.Errorf("FAT boot sector at offset %d: bytes per sector %d", off, v.bytesPerSec)
	}
	if v.spc == 0 || v.spc&(v.spc-1) != 0 || nfats == 0 || reserved == 0 || fatSecs == 0 {
		return nil, fmt.Errorf("FAT boot sector at offset %d: inconsistent geometry", off)
	}
	v.fatOff = reserved * v.bytesPerSec
	v.rootOff = v.fatOff + nfats*fatSecs*v.bytesPerSec
	v.rootBytes = rootEntries * dirEntrySize
	v.dataOff = v.rootOff + (v.rootBytes+v.bytesPerSec-1)/v.bytesPerSec*v.bytesPerSec
	if total*v.bytesPerSec > size || v.dataOff >= total*v.bytesPerSec {
		return nil, fmt.Errorf("FAT boot sector at offset %d: filesystem larger than its partition", off)
	}
	v.clusters = uint32((total*v.bytesPerSec - v.dataOff) / (v.spc * v.bytesPerSec))
	return v, nil
}

func (v *fatVolume) clusterBytes() int64 { return v.spc * v.bytesPerSec }

func (v *fatVolume) clusterOff(c uint32) int64 {
	return v.off + v.dataOff + int64(c-2)*v.clusterBytes()
}

func (v *fatVolume) next(c uint32) (uint32, error) {
	var b [4]byte
	if v.fat32 {
		if _, err := v.r.ReadAt(b[:4], v.off+v.fatOff+int64(c)*4); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint32(b[:]) & 0x0fffffff, nil
	}
	if _, err := v.r.ReadAt(b[:2], v.off+v.fatOff+int64(c)*2); err != nil {
		return 0, err
	}
	n := uint32(binary.LittleEndian.Uint16(b[:]))
	if n >= 0xfff8 {
		n = 0x0ffffff8
	}
	return n, nil
}

// chain returns the clusters of a chain starting at c, bounded by the cluster count so a
// looping FAT cannot run forever.
func (v *fatVolume) chain(c uint32) ([]uint32, error) {
	var out []uint32
	for c >= 2 && c < 0x0ffffff8 {
		if c-2 >= v.clusters {
			return nil, fmt.Errorf("cluster %d outside the filesystem", c)
		}
		if uint32(len(out)) > v.clusters {
			return nil, errors.New("cluster chain loops")
		}
		out = append(out, c)
		n, err := v.next(c)
		if err != nil {
			return nil, err
		}
		c = n
	}
	return out, nil
}

// fatEntry is a directory entry found by name.
type fatEntry struct {
	cluster uint32
	size    uint32
	dir     bool
}

// dirBytes reads a directory: the fixed FAT16 root (cluster 0) or a cluster chain.
func (v *fatVolume) dirBytes(cluster uint32) ([]byte, error) {
	if cluster == 0 && !v.fat32 {
		buf := make([]byte, v.rootBytes)
		_, err := v.r.ReadAt(buf, v.off+v.rootOff)
		return buf, err
	}
	if cluster == 0 {
		cluster = v.rootCluster
	}
	chain, err := v.chain(cluster)
	if err != nil {
		return nil, err
	}
	if int64(len(chain))*v.clusterBytes() > 16<<20 {
		return nil, errors.New("directory larger than 16 MiB")
	}
	buf := make([]byte, int64(len(chain))*v.clusterBytes())
	for i, c := range chain {
		if _, err := v.r.ReadAt(buf[int64(i)*v.clusterBytes():int64(i+1)*v.clusterBytes()], v.clusterOff(c)); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// lookup finds name (case-insensitive, long or 8.3) in the directory at cluster.
func (v *fatVolume) lookup(cluster uint32, name string) (fatEntry, error) {
	buf, err := v.dirBytes(cluster)
	if err != nil {
		return fatEntry{}, err
	}
	var lfn []uint16
	for i := 0; i+dirEntrySize <= len(buf); i += dirEntrySize {
		e := buf[i : i+dirEntrySize]
		switch {
		case e[0] == 0:
			return fatEntry{}, errNotFound
		case e[0] == 0xe5:
			lfn = nil
			continue
		case e[11] == attrLFN:
			part := make([]uint16, 0, 13)
			for _, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
				part = append(part, binary.LittleEndian.Uint16(e[o:]))
			}
			lfn = append(part, lfn...) // entries come last piece first
			continue
		}
		long := ""
		if lfn != nil {
			n := len(lfn)
			for j, u := range lfn {
				if u == 0 {
					n = j
					break
				}
			}
			long = string(utf16.Decode(lfn[:n]))
		}
		lfn = nil
		short := strings.TrimRight(string(e[0:8]), " ")
		if ext := strings.TrimRight(string(e[8:11]), " "); ext != "" {
			short += "." + ext
		}
		if strings.EqualFold(long, name) || strings.EqualFold(short, name) {
			le := binary.LittleEndian
			c := uint32(le.Uint16(e[26:]))
			if v.fat32 {
				c |= uint32(le.Uint16(e[20:])) << 16
			}
			return fatEntry{cluster: c, size: le.Uint32(e[28:]), dir: e[11]&attrDir != 0}, nil
		}
	}
	return fatEntry{}, errNotFound
}

var errNotFound = errors.New("not found")

// ReplaceFATFile overwrites the contents of an existing file in the FAT16/32 filesystem of the
// partition at [off, off+size) of disk, in place. data must have exactly the file's size: the
// directory entry and the FAT are not touched, which is what lets a tool flip a boot flag
// (rugpi/boot_spare.grubenv) in an image without a FAT writer or mtools.
func ReplaceFATFile(disk ReadWriterAt, off, size int64, path string, data []byte) error {
	v, err := openFATVolume(disk, off, size)
	if err != nil {
		return err
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var cur uint32 // root
	var ent fatEntry
	for i, p := range parts {
		ent, err = v.lookup(cur, p)
		if errors.Is(err, errNotFound) {
			return fmt.Errorf("FAT partition at offset %d: %s does not exist", off, "/"+strings.Join(parts[:i+1], "/"))
		}
		if err != nil {
			return fmt.Errorf("FAT partition at offset %d: read directory of %s: %w", off, path, err)
		}
		if i < len(parts)-1 {
			if !ent.dir {
				return fmt.Errorf("FAT partition at offset %d: %s is not a directory", off, "/"+strings.Join(parts[:i+1], "/"))
			}
			cur = ent.cluster
		}
	}
	if ent.dir {
		return fmt.Errorf("FAT partition at offset %d: %s is a directory", off, path)
	}
	if int64(ent.size) != int64(len(data)) {
		return fmt.Errorf("FAT partition at offset %d: %s has %d bytes, the replacement %d (only same-size replacement is supported)", off, path, ent.size, len(data))
	}
	chain, err := v.chain(ent.cluster)
	if err != nil {
		return fmt.Errorf("FAT partition at offset %d: %s: %w", off, path, err)
	}
	if int64(len(chain))*v.clusterBytes() < int64(len(data)) {
		return fmt.Errorf("FAT partition at offset %d: %s: cluster chain shorter than the file size", off, path)
	}
	for i := 0; len(data) > 0; i++ {
		n := min(int64(len(data)), v.clusterBytes())
		if _, err := disk.WriteAt(data[:n], v.clusterOff(chain[i])); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		data = data[n:]
	}
	return nil
}
