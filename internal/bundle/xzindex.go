package bundle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// The .xz index at the end of every stream records the uncompressed size of each of its blocks.
// Reading it tells how much a stream will decode to without decoding it; the decoders check the
// index against the data, and the callers here bound the decoded length independently, so a
// lying index can make a size estimate wrong but never make a decoder write more.

const (
	xzHeaderSize = 12
	xzFooterSize = 12
	// xzMinStream is the size of the smallest possible .xz stream (no blocks).
	xzMinStream = xzHeaderSize + 8 + xzFooterSize
)

var xzStreamMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// xzUncompressedSize returns the total uncompressed size recorded in the index of the single
// .xz stream that stream holds (with nothing after it).
func xzUncompressedSize(stream []byte) (int64, error) {
	if len(stream) < xzMinStream || !bytes.HasPrefix(stream, xzStreamMagic) {
		return 0, errors.New("xz: not an xz stream (bad magic or too short)")
	}
	return xzIndexSize(bytes.NewReader(stream), int64(len(stream)))
}

// xzIndexSize reads the footer and index of the .xz stream that occupies r[0:size] and returns
// the sum of the uncompressed sizes of its blocks.
func xzIndexSize(r io.ReaderAt, size int64) (int64, error) {
	if size < xzMinStream {
		return 0, fmt.Errorf("xz: stream of %d bytes is shorter than the minimum %d", size, xzMinStream)
	}
	var foot [xzFooterSize]byte
	if _, err := r.ReadAt(foot[:], size-xzFooterSize); err != nil {
		return 0, fmt.Errorf("xz: read stream footer: %w", err)
	}
	if foot[10] != 'Y' || foot[11] != 'Z' {
		return 0, errors.New("xz: bad stream footer magic (data after the stream?)")
	}
	if crc32.ChecksumIEEE(foot[4:10]) != binary.LittleEndian.Uint32(foot[:4]) {
		return 0, errors.New("xz: stream footer checksum mismatch")
	}
	isize := (int64(binary.LittleEndian.Uint32(foot[4:8])) + 1) * 4
	if isize > size-xzHeaderSize-xzFooterSize {
		return 0, fmt.Errorf("xz: index of %d bytes does not fit in a stream of %d bytes", isize, size)
	}
	idx := make([]byte, isize)
	if _, err := r.ReadAt(idx, size-xzFooterSize-isize); err != nil {
		return 0, fmt.Errorf("xz: read index: %w", err)
	}
	if crc32.ChecksumIEEE(idx[:isize-4]) != binary.LittleEndian.Uint32(idx[isize-4:]) {
		return 0, errors.New("xz: index checksum mismatch")
	}
	if idx[0] != 0 {
		return 0, errors.New("xz: bad index indicator")
	}
	p := 1
	end := len(idx) - 4
	mbi := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9; i++ {
			if p >= end {
				return 0, errors.New("xz: truncated index")
			}
			c := idx[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				if c == 0 && i > 0 {
					return 0, errors.New("xz: non-minimal integer in index")
				}
				return v, nil
			}
		}
		return 0, errors.New("xz: integer in index too long")
	}
	n, err := mbi()
	if err != nil {
		return 0, err
	}
	// Every record takes at least two bytes.
	if n > uint64(end-p)/2 {
		return 0, fmt.Errorf("xz: index claims %d records in %d bytes", n, end-p)
	}
	var total uint64
	for i := uint64(0); i < n; i++ {
		if _, err := mbi(); err != nil { // unpadded size
			return 0, err
		}
		u, err := mbi()
		if err != nil {
			return 0, err
		}
		if u > math.MaxInt64-total {
			return 0, errors.New("xz: uncompressed sizes in the index overflow")
		}
		total += u
	}
	for ; p < end; p++ {
		if idx[p] != 0 {
			return 0, errors.New("xz: non-zero index padding")
		}
	}
	return int64(total), nil
}
