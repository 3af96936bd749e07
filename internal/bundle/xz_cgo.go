//go:build cgo

package bundle

/*
#cgo LDFLAGS: -llzma
#include <lzma.h>
#include <stdlib.h>
#include <string.h>

static lzma_stream *otb_stream_new(void) {
	lzma_stream *s = malloc(sizeof(lzma_stream));
	if (s != NULL) {
		lzma_stream init = LZMA_STREAM_INIT;
		memcpy(s, &init, sizeof(init));
	}
	return s;
}

static void otb_stream_free(lzma_stream *s) {
	lzma_end(s);
	free(s);
}

// otb_run feeds all of in and finishes the stream. It returns LZMA_STREAM_END on success,
// LZMA_BUF_ERROR when out is too small, or the liblzma error.
static int otb_run(lzma_stream *s, const uint8_t *in, size_t in_size, uint8_t *out, size_t out_cap, size_t *out_size, size_t *in_left) {
	s->next_in = in;
	s->avail_in = in_size;
	s->next_out = out;
	s->avail_out = out_cap;
	lzma_ret r = lzma_code(s, LZMA_FINISH);
	while (r == LZMA_OK && s->avail_out > 0) {
		r = lzma_code(s, LZMA_FINISH);
	}
	*out_size = out_cap - s->avail_out;
	*in_left = s->avail_in;
	if (r == LZMA_OK) {
		return LZMA_BUF_ERROR;
	}
	return r;
}

static int otb_encode(lzma_stream *s, uint32_t preset, const uint8_t *in, size_t in_size, uint8_t *out, size_t out_cap, size_t *out_size) {
	size_t in_left;
	lzma_ret r = lzma_easy_encoder(s, preset, LZMA_CHECK_CRC64);
	if (r != LZMA_OK) {
		return r;
	}
	return otb_run(s, in, in_size, out, out_cap, out_size, &in_left);
}

static int otb_decoder_init(lzma_stream *s, uint64_t memlimit) {
	return lzma_stream_decoder(s, memlimit, 0);
}

// otb_code runs one lzma_code(LZMA_FINISH) step over the remaining input and a fresh output
// window, so the caller can grow its output buffer between steps.
static int otb_code(lzma_stream *s, const uint8_t *in, size_t in_size, uint8_t *out, size_t out_cap, size_t *in_used, size_t *out_used) {
	s->next_in = in;
	s->avail_in = in_size;
	s->next_out = out;
	s->avail_out = out_cap;
	lzma_ret r = lzma_code(s, LZMA_FINISH);
	*in_used = in_size - s->avail_in;
	*out_used = out_cap - s->avail_out;
	return r;
}
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unsafe"
)

// xzEncoder compresses blocks with liblzma's easy encoder (preset, CRC64): the encoder Rust's
// xz2 crate drives for rugix-bundler, so compressed blocks are byte-identical to Rugix's.
// One encoder is reused for many blocks to save liblzma's allocations; it is not safe for
// concurrent use.
type xzEncoder struct {
	s      *C.lzma_stream
	preset C.uint32_t
}

func newXZEncoder(level int) (*xzEncoder, error) {
	if level < 0 || level > 9 {
		return nil, fmt.Errorf("xz level %d out of range 0–9", level)
	}
	s := C.otb_stream_new()
	if s == nil {
		return nil, errors.New("xz: out of memory")
	}
	return &xzEncoder{s: s, preset: C.uint32_t(level)}, nil
}

// encode appends data as one complete .xz stream to dst.
func (e *xzEncoder) encode(dst *bytes.Buffer, data []byte) error {
	capacity := len(data) + len(data)/64 + 1024
	for {
		dst.Grow(capacity)
		out := dst.AvailableBuffer()[:capacity]
		var n C.size_t
		r := C.otb_encode(e.s, e.preset, cbytes(data), C.size_t(len(data)), (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(out))), C.size_t(len(out)), &n)
		switch r {
		case C.LZMA_STREAM_END:
			dst.Write(out[:n])
			return nil
		case C.LZMA_BUF_ERROR:
			capacity *= 2
		default:
			return fmt.Errorf("xz compress: liblzma error %d", int(r))
		}
	}
}

func (e *xzEncoder) close() {
	if e.s != nil {
		C.otb_stream_free(e.s)
		e.s = nil
	}
}

// xzDecoder decodes single .xz streams with liblzma, reusing its allocations.
type xzDecoder struct{ s *C.lzma_stream }

func newXZDecoder() (*xzDecoder, error) {
	s := C.otb_stream_new()
	if s == nil {
		return nil, errors.New("xz: out of memory")
	}
	return &xzDecoder{s: s}, nil
}

// xzMemLimit bounds liblzma's decoder memory; preset 9 (64 MiB dictionary) fits.
const xzMemLimit = 80 << 20

// decode appends the content of one .xz stream (which must decode to at most limit bytes and
// be followed by nothing) to dst. The output grows as data arrives, so a hostile limit-sized
// claim costs nothing until the data is really there.
func (d *xzDecoder) decode(dst, stream []byte, limit int) ([]byte, error) {
	stream, err := capXZDict(stream, limit)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	if r := C.otb_decoder_init(d.s, xzMemLimit); r != C.LZMA_OK {
		return dst, fmt.Errorf("xz decoder: liblzma error %d", int(r))
	}
	in := 0
	for {
		if len(dst) == cap(dst) {
			if len(dst)-start > limit {
				return dst[:start], fmt.Errorf("xz: decompressed data exceeds %d bytes", limit)
			}
			n := min(max(2*(len(dst)-start), 4*len(stream), 64<<10), limit+1)
			nd := make([]byte, len(dst), start+n)
			copy(nd, dst)
			dst = nd
		}
		free := dst[len(dst):cap(dst)]
		var inUsed, outUsed C.size_t
		r := C.otb_code(d.s, cbytes(stream[in:]), C.size_t(len(stream)-in), (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(free))), C.size_t(len(free)), &inUsed, &outUsed)
		in += int(inUsed)
		dst = dst[:len(dst)+int(outUsed)]
		if len(dst)-start > limit {
			return dst[:start], fmt.Errorf("xz: decompressed data exceeds %d bytes", limit)
		}
		switch r {
		case C.LZMA_OK:
			continue
		case C.LZMA_STREAM_END:
			if in != len(stream) {
				return dst[:start], fmt.Errorf("xz: %d bytes after the end of the stream", len(stream)-in)
			}
			return dst, nil
		case C.LZMA_BUF_ERROR:
			if len(dst) < cap(dst) {
				return dst[:start], errors.New("xz: truncated stream")
			}
			continue
		case C.LZMA_MEMLIMIT_ERROR:
			return dst[:start], fmt.Errorf("xz: stream needs more than %d MiB to decode", xzMemLimit>>20)
		case C.LZMA_DATA_ERROR, C.LZMA_FORMAT_ERROR, C.LZMA_OPTIONS_ERROR:
			return dst[:start], fmt.Errorf("xz: corrupt stream (liblzma error %d)", int(r))
		default:
			return dst[:start], fmt.Errorf("xz decompress: liblzma error %d", int(r))
		}
	}
}

func (d *xzDecoder) close() {
	if d.s != nil {
		C.otb_stream_free(d.s)
		d.s = nil
	}
}

// xzStreamReader decodes one in-memory .xz stream incrementally, so that arrays which may
// expand far beyond their stored size are consumed in small pieces instead of being held whole.
type xzStreamReader struct {
	d    *xzDecoder
	in   []byte
	pos  int
	done bool
	err  error
}

// newXZStreamReader returns a reader of the content of stream; dictLimit caps the LZMA2
// dictionary the stream may ask for (see capXZDict). Close releases liblzma's memory.
func newXZStreamReader(stream []byte, dictLimit int) (*xzStreamReader, error) {
	stream, err := capXZDict(stream, dictLimit)
	if err != nil {
		return nil, err
	}
	d, err := newXZDecoder()
	if err != nil {
		return nil, err
	}
	if r := C.otb_decoder_init(d.s, xzMemLimit); r != C.LZMA_OK {
		d.close()
		return nil, fmt.Errorf("xz decoder: liblzma error %d", int(r))
	}
	return &xzStreamReader{d: d, in: stream}, nil
}

func (r *xzStreamReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		var inUsed, outUsed C.size_t
		ret := C.otb_code(r.d.s, cbytes(r.in[r.pos:]), C.size_t(len(r.in)-r.pos), (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(p))), C.size_t(len(p)), &inUsed, &outUsed)
		r.pos += int(inUsed)
		n := int(outUsed)
		switch ret {
		case C.LZMA_OK:
			if n > 0 {
				return n, nil
			}
			continue
		case C.LZMA_STREAM_END:
			r.done = true
			if r.pos != len(r.in) {
				r.err = fmt.Errorf("xz: %d bytes after the end of the stream", len(r.in)-r.pos)
				return n, r.err
			}
			return n, nil
		case C.LZMA_BUF_ERROR:
			if n > 0 {
				return n, nil
			}
			r.err = errors.New("xz: truncated stream")
		case C.LZMA_MEMLIMIT_ERROR:
			r.err = fmt.Errorf("xz: stream needs more than %d MiB to decode", xzMemLimit>>20)
		case C.LZMA_DATA_ERROR, C.LZMA_FORMAT_ERROR, C.LZMA_OPTIONS_ERROR:
			r.err = fmt.Errorf("xz: corrupt stream (liblzma error %d)", int(ret))
		default:
			r.err = fmt.Errorf("xz decompress: liblzma error %d", int(ret))
		}
		return n, r.err
	}
}

func (r *xzStreamReader) Close() error {
	r.d.close()
	return nil
}

// cbytes passes a Go slice to C without copying; an empty slice becomes a valid pointer.
func cbytes(b []byte) *C.uint8_t {
	if len(b) == 0 {
		var zero [1]byte
		return (*C.uint8_t)(unsafe.Pointer(&zero[0]))
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b)))
}
