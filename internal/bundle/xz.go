package bundle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// DefaultXZLevel is the xz preset rugix-bundler uses when the manifest gives none.
const DefaultXZLevel = 6

var errXZHeader = errors.New("xz: malformed stream or block header")

// capXZDict returns stream with the LZMA2 dictionary size of its first block capped to at
// least limit bytes (rounded up to an encodable size), fixing the block header's CRC32. It
// copies only when a change is needed.
func capXZDict(stream []byte, limit int) ([]byte, error) {
	const streamHeader = 12
	if len(stream) < streamHeader+1 || !bytes.HasPrefix(stream, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		return nil, errors.New("xz: not an xz stream (bad magic)")
	}
	if stream[streamHeader] == 0 {
		return stream, nil // index indicator: a stream without blocks
	}
	hsize := (int(stream[streamHeader]) + 1) * 4
	if len(stream) < streamHeader+hsize {
		return nil, errXZHeader
	}
	hdr := stream[streamHeader : streamHeader+hsize]
	if crc32.ChecksumIEEE(hdr[:hsize-4]) != binary.LittleEndian.Uint32(hdr[hsize-4:]) {
		return nil, errors.New("xz: block header checksum mismatch")
	}
	flags := hdr[1]
	p := 2
	skipVarint := func() bool {
		for i := 0; i < 9; i++ {
			if p >= hsize-4 {
				return false
			}
			c := hdr[p]
			p++
			if c&0x80 == 0 {
				return true
			}
		}
		return false
	}
	readVarint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9; i++ {
			if p >= hsize-4 {
				return 0, false
			}
			c := hdr[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 && !skipVarint() {
		return nil, errXZHeader
	}
	if flags&0x80 != 0 && !skipVarint() {
		return nil, errXZHeader
	}
	want := byte(0)
	for want < 40 && dictSize(want) < int64(limit) {
		want++
	}
	for f := 0; f <= int(flags&3); f++ {
		id, ok1 := readVarint()
		n, ok2 := readVarint()
		if !ok1 || !ok2 || n > uint64(hsize-4-p) {
			return nil, errXZHeader
		}
		if id == 0x21 && n == 1 && hdr[p] > want {
			out := bytes.Clone(stream)
			h := out[streamHeader : streamHeader+hsize]
			h[p] = want
			binary.LittleEndian.PutUint32(h[hsize-4:], crc32.ChecksumIEEE(h[:hsize-4]))
			return out, nil
		}
		p += int(n)
	}
	return stream, nil
}

// dictSize decodes the LZMA2 dictionary-size property byte.
func dictSize(b byte) int64 {
	if b >= 40 {
		return 1<<32 - 1
	}
	return int64(2|b&1) << (b/2 + 11)
}

// compressXZ compresses data as one .xz stream with a fresh encoder (for the block arrays).
func compressXZ(dst *bytes.Buffer, data []byte, level int) error {
	e, err := newXZEncoder(level)
	if err != nil {
		return err
	}
	defer e.close()
	return e.encode(dst, data)
}

// decompressXZ decodes one .xz stream with a fresh decoder (for the block arrays).
func decompressXZ(dst, stream []byte, limit int) ([]byte, error) {
	d, err := newXZDecoder()
	if err != nil {
		return dst, err
	}
	defer d.close()
	return d.decode(dst, stream, limit)
}
