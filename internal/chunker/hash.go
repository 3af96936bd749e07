package chunker

import (
	"context"
	"hash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// BlockSum is the digest of one block of a stream.
type BlockSum struct {
	// Index counts blocks from 0 in stream order.
	Index int
	// Offset and Size locate the block in the stream.
	Offset, Size int64
	// Sum is the block's digest. It belongs to the caller, who may keep it.
	Sum []byte
}

// segmentBody is the smallest amount of data read into one segment of HashBlocks. Reading runs in
// its own goroutine, so the read copy overlaps the scan; blocks are hashed in place.
const segmentBody = 4 << 20

// numSegments bounds the memory HashBlocks reads into: one being read, one queued, one being
// scanned and one still referenced by blocks in flight.
const numSegments = 4

// segment is a read buffer shared by the blocks cut from it. Data is read into buf[gap:]; the
// unscanned tail of the previous segment (shorter than a maximum block) is copied into the gap
// just before it, so that every block is contiguous. A segment returns to its pool when the
// scanner has moved on and every block in it has been hashed.
type segment struct {
	buf  []byte
	refs atomic.Int32
	pool chan *segment
}

func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.pool <- s
	}
}

// filled is a segment handed from the reader to the scanner: n bytes at buf[gap:], and whether
// the stream ended there (or failed with err).
type filled struct {
	seg *segment
	n   int
	eof bool
	err error
}

// job is one block in flight. Jobs are recycled through a free list, which bounds how many blocks
// are in flight at once.
type job struct {
	index int
	off   int64
	size  int
	data  []byte
	seg   *segment
	sum   []byte
	done  chan struct{}
}

// HashBlocks chunks r according to spec and calls fn with the digest of every block, strictly in
// stream order and always from the calling goroutine, so fn needs no locking. Reading, scanning
// for boundaries and hashing (in workers goroutines, GOMAXPROCS if workers ≤ 0) run concurrently,
// so on a multi-core machine the single-threaded scan is the only serial step. Memory is bounded by
// a few segments of max(4 MiB, 4×max block size) plus a fixed number of blocks in flight,
// independent of the stream length.
//
// HashBlocks stops at the first error: from reading r (wrapped with the stream offset), from fn
// (returned unchanged), or from ctx. When it returns, no goroutine it started still runs and r is
// no longer read.
func HashBlocks(ctx context.Context, spec Spec, r io.Reader, newHash func() hash.Hash, workers int, fn func(b BlockSum) error) error {
	cut, err := newCutter(spec)
	if err != nil {
		return err
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Enough jobs to keep every worker busy while the collector waits on the oldest one.
	numJobs := 4*workers + 4
	free := make(chan *job, numJobs)
	for range numJobs {
		free <- &job{done: make(chan struct{}, 1)}
	}
	// Both channels hold every job at most once, so sends on them never block.
	jobs := make(chan *job, numJobs)
	pending := make(chan *job, numJobs)

	pool := make(chan *segment, numSegments)
	for range numSegments {
		pool <- &segment{pool: pool}
	}
	gap := cut.max
	segSize := gap + max(segmentBody, 4*cut.max)
	segs := make(chan filled, 1)

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHash()
			for j := range jobs {
				if ctx.Err() == nil {
					h.Reset()
					h.Write(j.data)
					j.sum = h.Sum(nil)
				}
				j.data = nil
				j.seg.release()
				j.seg = nil
				j.done <- struct{}{}
			}
		}()
	}

	wg.Add(2)
	go func() {
		defer wg.Done()
		readSegments(ctx, r, pool, segSize, gap, segs)
	}()
	var readErr error
	go func() {
		defer wg.Done()
		defer close(pending)
		defer close(jobs)
		readErr = scan(ctx, cut, gap, segs, free, jobs, pending)
	}()

	var fnErr, ctxErr error
	for j := range pending {
		<-j.done
		switch {
		case fnErr != nil:
		case ctx.Err() != nil:
			// The block may not have been hashed; never deliver a missing sum.
			ctxErr = ctx.Err()
		default:
			fnErr = fn(BlockSum{Index: j.index, Offset: j.off, Size: int64(j.size), Sum: j.sum})
			if fnErr != nil {
				cancel()
			}
		}
		j.sum = nil
		free <- j
	}
	wg.Wait()
	switch {
	case fnErr != nil:
		return fnErr
	case readErr != nil:
		return readErr
	}
	return ctxErr
}

// readSegments reads r into segments and queues them for the scanner until the stream ends, a read
// fails (the last segment carries the error) or ctx is done.
func readSegments(ctx context.Context, r io.Reader, pool chan *segment, segSize, gap int, segs chan<- filled) {
	var off int64
	for {
		seg, err := takeSegment(ctx, pool, segSize)
		if err != nil {
			return
		}
		end, eof, err := fill(r, seg.buf, gap, gap, segSize-gap, off)
		f := filled{seg: seg, n: end - gap, eof: eof, err: err}
		select {
		case segs <- f:
		case <-ctx.Done():
			seg.release()
			return
		}
		if eof || err != nil {
			return
		}
		off += int64(f.n)
	}
}

// scan cuts blocks out of the segments and queues them for the workers (jobs) and, in the same
// order, for the collector (pending).
func scan(ctx context.Context, cut cutter, gap int, segs <-chan filled, free <-chan *job, jobs, pending chan<- *job) error {
	var seg *segment
	defer func() {
		if seg != nil {
			seg.release()
		}
	}()
	start, end := 0, 0
	var off int64
	eof := false
	for index := 0; ; index++ {
		for !eof && end-start < cut.max {
			var f filled
			select {
			case f = <-segs:
			case <-ctx.Done():
				return ctx.Err()
			}
			tail := end - start
			if seg != nil {
				copy(f.seg.buf[gap-tail:gap], seg.buf[start:end])
				seg.release()
			}
			seg = f.seg
			start, end, eof = gap-tail, gap+f.n, f.eof
			if f.err != nil {
				return f.err
			}
		}
		if start == end {
			return nil
		}
		n := cut.cut(seg.buf[start:end])
		var j *job
		select {
		case j = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		j.index, j.off, j.size, j.data, j.seg = index, off, n, seg.buf[start:start+n], seg
		seg.refs.Add(1)
		jobs <- j
		pending <- j
		start += n
		off += int64(n)
	}
}

func takeSegment(ctx context.Context, pool <-chan *segment, size int) (*segment, error) {
	select {
	case s := <-pool:
		if s.buf == nil {
			s.buf = make([]byte, size)
		}
		s.refs.Store(1)
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
