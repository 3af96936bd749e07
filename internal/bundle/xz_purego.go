//go:build !cgo

package bundle

import (
	"bytes"
	"fmt"
	"io"

	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// xzEncoder is the pure-Go fallback for builds without cgo (and so without liblzma). Its
// streams are standard .xz with a CRC64 check that rugix-ctrl accepts, but they are larger and
// slower to make than liblzma's and not byte-identical to rugix-bundler's. The preset only
// selects the dictionary; the hash-chain matcher is used for every preset because this
// package's binary-tree matcher is orders of magnitude slower.
type xzEncoder struct{ cfg xz.WriterConfig }

func newXZEncoder(level int) (*xzEncoder, error) {
	if level < 0 || level > 9 {
		return nil, fmt.Errorf("xz level %d out of range 0–9", level)
	}
	dict := []int{256 << 10, 1 << 20, 2 << 20, 4 << 20, 4 << 20, 8 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20}[level]
	return &xzEncoder{cfg: xz.WriterConfig{DictCap: dict, CheckSum: xz.CRC64, Matcher: lzma.HashTable4}}, nil
}

func (e *xzEncoder) encode(dst *bytes.Buffer, data []byte) error {
	cfg := e.cfg
	// A dictionary larger than the data only costs allocation.
	for cfg.DictCap > 4096 && cfg.DictCap/2 >= len(data) {
		cfg.DictCap /= 2
	}
	w, err := cfg.NewWriter(dst)
	if err != nil {
		return fmt.Errorf("xz encoder: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("xz compress: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("xz compress: %w", err)
	}
	return nil
}

func (e *xzEncoder) close() {}

type xzDecoder struct{}

func newXZDecoder() (*xzDecoder, error) { return &xzDecoder{}, nil }

// decode appends the content of one .xz stream, which must decode to at most limit bytes.
// The announced dictionary is capped first (capXZDict), so a hostile header cannot make the
// decoder allocate more than the block needs.
func (d *xzDecoder) decode(dst, stream []byte, limit int) ([]byte, error) {
	patched, err := capXZDict(stream, limit)
	if err != nil {
		return dst, err
	}
	r, err := xz.ReaderConfig{SingleStream: true, DictCap: 1 << 12}.NewReader(bytes.NewReader(patched))
	if err != nil {
		return dst, fmt.Errorf("xz: %w", err)
	}
	buf := bytes.NewBuffer(dst)
	n, err := io.Copy(buf, io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return dst, fmt.Errorf("xz: %w", err)
	}
	if n > int64(limit) {
		return dst, fmt.Errorf("xz: decompressed data exceeds %d bytes", limit)
	}
	return buf.Bytes(), nil
}

func (d *xzDecoder) close() {}

// xzStreamReader decodes one in-memory .xz stream incrementally (see the cgo variant).
type xzStreamReader struct{ io.Reader }

func newXZStreamReader(stream []byte, dictLimit int) (*xzStreamReader, error) {
	patched, err := capXZDict(stream, dictLimit)
	if err != nil {
		return nil, err
	}
	r, err := xz.ReaderConfig{SingleStream: true, DictCap: 1 << 12}.NewReader(bytes.NewReader(patched))
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return &xzStreamReader{r}, nil
}

func (r *xzStreamReader) Close() error { return nil }
