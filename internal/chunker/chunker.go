package chunker

import (
	"errors"
	"fmt"
	"io"
	"sync"
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

// cutAll appends to ends the end offsets of the blocks of buf that start at offset start: all of
// them if the stream ends with buf (eof), otherwise those that start at least max bytes before
// the end of buf, whose boundaries cannot depend on data after buf. With parts > 1 the data is
// cut in parts goroutines, see cutParallel.
func (c *cutter) cutAll(buf []byte, start int, eof bool, parts int, ends []int) []int {
	if parts > 1 && c.kind == Casync && len(buf)-start >= parts*minPartSize {
		return c.cutParallel(buf, start, eof, parts, ends)
	}
	ends, _ = c.cutFrom(buf, start, eof, len(buf), ends)
	return ends
}

// minPartSize is the smallest part cutParallel gives a goroutine: large enough that the
// resynchronisation at its start is a small fraction of the work.
const minPartSize = 2 << 20

// cutFrom appends the ends of the blocks that start at pos and after, up to the first block end
// at or beyond stop, and returns them with the start of the next block.
func (c *cutter) cutFrom(buf []byte, pos int, eof bool, stop int, ends []int) ([]int, int) {
	for pos < stop && pos < len(buf) && (eof || len(buf)-pos >= c.max) {
		pos += c.cut(buf[pos:])
		ends = append(ends, pos)
	}
	return ends, pos
}

// cutParallel is cutAll with the data split into parts cut concurrently. Part 0 starts at a true
// block start; every other part starts at an arbitrary offset, so its first boundaries may be
// wrong. But where a block starts fixes where it ends (casyncCut looks only at the bytes from the
// start, and at whether the stream ends), so once the true sequence, extended from the previous
// parts, reaches a position that is also a block start in part k, the two sequences are the same
// from there on and part k's boundaries are taken over. If they never meet, the true sequence is
// simply extended through part k, as a single goroutine would have cut it: the result is
// identical to cutAll with parts = 1 in every case.
func (c *cutter) cutParallel(buf []byte, start int, eof bool, parts int, ends []int) []int {
	n := len(buf) - start
	bounds := make([]int, parts+1)
	for k := range bounds {
		bounds[k] = start + n/parts*k
	}
	bounds[parts] = len(buf)
	lists := make([][]int, parts)
	var wg sync.WaitGroup
	for k := 1; k < parts; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lists[k], _ = c.cutFrom(buf, bounds[k], eof, bounds[k+1], nil)
		}()
	}
	ends, pos := c.cutFrom(buf, start, eof, bounds[1], ends)
	wg.Wait()
	for k := 1; k < parts; k++ {
		// Part k's block starts are bounds[k] and its block ends.
		list, i := lists[k], -1 // i indexes the starts: -1 is bounds[k], j ≥ 0 is list[j]
		for {
			for i < len(list) && startAt(bounds[k], list, i) < pos {
				i++
			}
			if i == len(list) {
				break // pos is beyond part k's blocks: try part k+1
			}
			if startAt(bounds[k], list, i) == pos {
				ends = append(ends, list[i+1:]...)
				if len(ends) > 0 {
					pos = ends[len(ends)-1]
				}
				break
			}
			var more []int
			more, pos = c.cutFrom(buf, pos, eof, pos+1, nil)
			if len(more) == 0 {
				return ends // the stream or buf ends here
			}
			ends = append(ends, more...)
		}
	}
	ends, _ = c.cutFrom(buf, pos, eof, len(buf), ends)
	return ends
}

// startAt returns the i-th block start of a part beginning at first with block ends list: first
// for i = -1, list[i] otherwise.
func startAt(first int, list []int, i int) int {
	if i < 0 {
		return first
	}
	return list[i]
}
