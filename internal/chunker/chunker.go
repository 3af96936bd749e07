package chunker

import (
	"errors"
	"fmt"
	"io"
)

// Block is one block of the stream. Data aliases the chunker's buffer and is valid only until the
// next call to Next: copy it to keep it.
type Block struct {
	// Offset is the position of the block's first byte in the stream.
	Offset int64
	Data   []byte
}

// cutter finds block boundaries in memory; the streaming and the parallel front ends share it.
type cutter struct {
	kind     Kind
	min, max int
	div      divisor
}

func newCutter(spec Spec) (cutter, error) {
	if err := spec.Validate(); err != nil {
		return cutter{}, fmt.Errorf("chunker: %w", err)
	}
	c := cutter{kind: spec.Kind, min: spec.MinSize(), max: spec.MaxSize()}
	if spec.Kind == Casync {
		c.div = newDivisor(discriminator(c.min, spec.AvgSize(), c.max))
	}
	return c, nil
}

// cut returns the length of the first block of p, which must hold at least max bytes unless the
// stream ends with p. It returns 0 only for an empty p.
func (c *cutter) cut(p []byte) int {
	if c.kind == Casync {
		return casyncCut(p, c.min, c.max, c.div)
	}
	return min(len(p), c.max)
}

// bufferSize is the size of a read buffer for blocks of at most max bytes: several blocks, so that
// moving the unconsumed tail to the front stays rare, and large enough for efficient reads.
func bufferSize(maxBlock int) int { return max(4*maxBlock, 1<<20) }

// maxEmptyReads bounds how often a reader may return (0, nil) in a row before we give up, as
// bufio does, so a broken reader cannot make us spin forever.
const maxEmptyReads = 100

// fill reads into buf[end:] until end-start ≥ want, the buffer is full, or the reader is done. It
// returns the new end and whether the stream ended; a read error other than io.EOF is returned
// with the stream offset where it happened (off is the stream offset of buf[start]).
func fill(r io.Reader, buf []byte, start, end, want int, off int64) (int, bool, error) {
	empty := 0
	for end-start < want && end < len(buf) {
		n, err := r.Read(buf[end:])
		if n < 0 || n > len(buf)-end {
			return end, false, fmt.Errorf("read at offset %d: reader returned invalid count %d", off+int64(end-start), n)
		}
		end += n
		if errors.Is(err, io.EOF) {
			return end, true, nil
		}
		if err != nil {
			return end, false, fmt.Errorf("read at offset %d: %w", off+int64(end-start), err)
		}
		if n == 0 {
			if empty++; empty >= maxEmptyReads {
				return end, false, fmt.Errorf("read at offset %d: %w", off+int64(end-start), io.ErrNoProgress)
			}
		} else {
			empty = 0
		}
	}
	return end, false, nil
}

// Chunker splits a stream into blocks. It allocates one buffer of a few maximum block sizes up
// front and nothing per block, so scanning runs at memory speed.
type Chunker struct {
	r     io.Reader
	cut   cutter
	buf   []byte
	start int   // first unconsumed byte in buf
	end   int   // end of valid data in buf
	off   int64 // stream offset of buf[start]
	eof   bool
	err   error // sticky: returned by every later Next
}

// New returns a chunker reading r. An invalid spec is reported by the first Next.
func New(spec Spec, r io.Reader) *Chunker {
	cut, err := newCutter(spec)
	c := &Chunker{r: r, cut: cut, err: err}
	if err == nil {
		c.buf = make([]byte, bufferSize(cut.max))
	}
	return c
}

// Next returns the next block, or io.EOF after the last one. An empty stream has no blocks. Read
// errors are wrapped with the offset where they occurred and repeat on later calls.
func (c *Chunker) Next() (Block, error) {
	if c.err != nil {
		return Block{}, c.err
	}
	if !c.eof && c.end-c.start < c.cut.max {
		if len(c.buf)-c.start < c.cut.max {
			c.end = copy(c.buf, c.buf[c.start:c.end])
			c.start = 0
		}
		var err error
		c.end, c.eof, err = fill(c.r, c.buf, c.start, c.end, c.cut.max, c.off)
		if err != nil {
			c.err = err
			return Block{}, err
		}
	}
	if c.start == c.end {
		c.err = io.EOF
		return Block{}, io.EOF
	}
	n := c.cut.cut(c.buf[c.start:c.end])
	b := Block{Offset: c.off, Data: c.buf[c.start : c.start+n : c.start+n]}
	c.start += n
	c.off += int64(n)
	return b, nil
}
