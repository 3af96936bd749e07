package local

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// The bbolt file layout, as go.etcd.io/bbolt v1.5.0 writes it (internal/common/page.go and
// meta.go): pages 0 and 1 are meta pages; each starts with a 16-byte page header
// (id u64, flags u16, count u16, overflow u32) followed by the meta:
//
//	magic u32 | version u32 | pageSize u32 | flags u32 | root bucket (root pgid u64, sequence
//	u64) | freelist pgid u64 | pgid (high-water mark) u64 | txid u64 | checksum u64
//
// in native byte order, the checksum being FNV-64a of the meta up to the checksum field. bbolt
// mmaps the file and trusts the meta it picks (the valid one with the highest txid): a file
// shorter than pgid × pageSize is read past its end, which is SIGBUS, not an error. So the meta
// pages are checked here before bbolt ever sees the file.
const (
	boltPageHeaderSize = 16
	boltMetaSize       = 64
	boltMagic          = 0xED0CDAED
	boltVersion        = 2
	boltMetaFlag       = 0x04
	boltNoFreelist     = ^uint64(0)
	// bbolt probes the second meta page at 1 KiB << 0..14 when the first is unreadable.
	boltMinPageSize = 1024
	boltMaxPageSize = 1024 << 14
)

// boltMeta is a decoded bbolt meta page.
type boltMeta struct {
	PageID   uint64
	Flags    uint16
	Magic    uint32
	Version  uint32
	PageSize uint32
	Root     uint64
	Freelist uint64
	Pgid     uint64
	Txid     uint64
	Checksum uint64
}

// decodeBoltMeta reads the page header and meta at the start of b.
func decodeBoltMeta(b []byte) (boltMeta, bool) {
	if len(b) < boltPageHeaderSize+boltMetaSize {
		return boltMeta{}, false
	}
	e := binary.NativeEndian
	m := b[boltPageHeaderSize:]
	return boltMeta{
		PageID:   e.Uint64(b[0:]),
		Flags:    e.Uint16(b[8:]),
		Magic:    e.Uint32(m[0:]),
		Version:  e.Uint32(m[4:]),
		PageSize: e.Uint32(m[8:]),
		Root:     e.Uint64(m[16:]),
		Freelist: e.Uint64(m[32:]),
		Pgid:     e.Uint64(m[40:]),
		Txid:     e.Uint64(m[48:]),
		Checksum: e.Uint64(m[56:]),
	}, true
}

// checkBoltMeta validates a meta page as bbolt's Meta.Validate does, plus the structural rules
// bbolt only asserts when writing (root and freelist below the high-water mark) and a sane page
// size. b starts at the page header.
func checkBoltMeta(b []byte) (boltMeta, error) {
	m, ok := decodeBoltMeta(b)
	if !ok {
		return m, errors.New("meta page is cut short")
	}
	switch {
	case m.Magic != boltMagic:
		return m, fmt.Errorf("meta page has magic %#x, not bbolt's %#x", m.Magic, uint32(boltMagic))
	case m.Version != boltVersion:
		return m, fmt.Errorf("meta page has format version %d, want %d", m.Version, boltVersion)
	}
	h := fnv.New64a()
	h.Write(b[boltPageHeaderSize : boltPageHeaderSize+56])
	if sum := h.Sum64(); sum != m.Checksum {
		return m, fmt.Errorf("meta page checksum %#x does not match its content (%#x)", m.Checksum, sum)
	}
	switch {
	case m.Flags&boltMetaFlag == 0:
		return m, fmt.Errorf("page is not flagged as a meta page (flags %#x)", m.Flags)
	case m.PageSize < boltMinPageSize || m.PageSize > boltMaxPageSize || m.PageSize&(m.PageSize-1) != 0:
		return m, fmt.Errorf("meta page has page size %d", m.PageSize)
	case m.Pgid < 2:
		return m, fmt.Errorf("meta page has high-water mark %d, below the two meta pages", m.Pgid)
	case m.Pgid > (1<<62)/uint64(m.PageSize):
		return m, fmt.Errorf("meta page has high-water mark %d, beyond any file", m.Pgid)
	case m.Root >= m.Pgid || m.Root < 2:
		return m, fmt.Errorf("meta page has root page %d outside 2..%d", m.Root, m.Pgid-1)
	case m.Freelist != boltNoFreelist && (m.Freelist >= m.Pgid || m.Freelist < 2):
		return m, fmt.Errorf("meta page has freelist page %d outside 2..%d", m.Freelist, m.Pgid-1)
	}
	return m, nil
}

// boltFileCheck is what validating a bbolt file found.
type boltFileCheck struct {
	Size  int64
	Metas [2]error // nil for a valid meta page
	// Meta is the meta bbolt would use: the valid one with the highest txid.
	Meta *boltMeta
}

// validateBolt checks that bbolt can open the file behind r (of the given size) without
// reading past its end: at least one valid meta page, and every valid meta's high-water mark
// within the file. It returns what it found and an error describing the damage.
func validateBolt(r io.ReaderAt, size int64) (*boltFileCheck, error) {
	c := &boltFileCheck{Size: size}
	if size == 0 {
		return c, errors.New("the file is empty")
	}
	buf := make([]byte, boltPageHeaderSize+boltMetaSize)
	read := func(off int64) []byte {
		n, _ := r.ReadAt(buf, off)
		return buf[:n]
	}
	var metas []boltMeta
	m0, err := checkBoltMeta(read(0))
	c.Metas[0] = err
	var pageSizes []int64
	if err == nil {
		metas = append(metas, m0)
		pageSizes = []int64{int64(m0.PageSize)}
	} else {
		// Like bbolt, look for the second meta page at every possible page size.
		for ps := int64(boltMinPageSize); ps <= boltMaxPageSize && ps < size; ps <<= 1 {
			pageSizes = append(pageSizes, ps)
		}
	}
	c.Metas[1] = errors.New("no second meta page found")
	for _, ps := range pageSizes {
		m1, err := checkBoltMeta(read(ps))
		if err == nil && int64(m1.PageSize) == ps {
			metas = append(metas, m1)
			c.Metas[1] = nil
			break
		}
		if len(pageSizes) == 1 {
			c.Metas[1] = err
		}
	}
	if len(metas) == 0 {
		return c, fmt.Errorf("no valid meta page (first: %v; second: %v)", c.Metas[0], c.Metas[1])
	}
	best := metas[0]
	for _, m := range metas {
		if need := m.Pgid * uint64(m.PageSize); uint64(size) < need {
			return c, fmt.Errorf("the file has %d bytes but its meta page (txid %d) says %d pages of %d bytes (%d bytes): it was truncated", size, m.Txid, m.Pgid, m.PageSize, need)
		}
		if m.Txid > best.Txid {
			best = m
		}
	}
	c.Meta = &best
	return c, nil
}

// validateBoltFile runs validateBolt on an open file.
func validateBoltFile(f *os.File) (*boltFileCheck, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return &boltFileCheck{}, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	return validateBolt(f, fi.Size())
}
