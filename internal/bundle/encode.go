package bundle

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"github.com/otabake/otabake/internal/chunker"
)

// encodePayload reads a payload once and returns its payload header, a file holding its
// PAYLOAD_DATA (positioned anywhere; the caller seeks) and what it found.
func encodePayload(ctx context.Context, index, count int, p *Payload, alg HashAlgorithm, opts CreateOptions) (*PayloadHeader, *os.File, PayloadResult, error) {
	var res PayloadResult
	rc, size, err := p.open()
	if err != nil {
		return nil, nil, res, fmt.Errorf("open: %w", err)
	}
	src := io.Reader(rc)
	if opts.Progress != nil {
		src = &progressReader{r: rc, fn: opts.Progress, p: Progress{Payload: index, Payloads: count, Total: size}}
	}
	fileHash := alg.New()

	if p.BlockEncoding == nil {
		if f, ok := rc.(*os.File); ok && size >= 0 {
			// The file itself is the payload data: hash it now, copy it into the bundle later.
			n, err := io.Copy(fileHash, src)
			if err != nil {
				f.Close()
				return nil, nil, res, fmt.Errorf("read: %w", err)
			}
			res.FileSize, res.DataSize, res.fileSum = n, n, fileHash.Sum(nil)
			return &PayloadHeader{}, f, res, nil
		}
		defer rc.Close()
		tmp, err := tempFile(opts.TempDir)
		if err != nil {
			return nil, nil, res, err
		}
		n, err := io.Copy(io.MultiWriter(tmp, fileHash), src)
		if err != nil {
			tmp.Close()
			return nil, nil, res, fmt.Errorf("read: %w", err)
		}
		res.FileSize, res.DataSize, res.fileSum = n, n, fileHash.Sum(nil)
		return &PayloadHeader{}, tmp, res, nil
	}

	defer rc.Close()
	tmp, err := tempFile(opts.TempDir)
	if err != nil {
		return nil, nil, res, err
	}
	be, err := encodeBlocks(ctx, p.BlockEncoding, src, tmp, fileHash, opts.Workers, &res)
	if err != nil {
		tmp.Close()
		return nil, nil, res, err
	}
	res.fileSum = fileHash.Sum(nil)
	return &PayloadHeader{BlockEncoding: be}, tmp, res, nil
}

// tempFile creates an unlinked temporary file: it disappears when closed, even if the
// process dies, so an aborted build leaves nothing behind.
func tempFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".otabake-payload-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary payload file: %w", err)
	}
	os.Remove(f.Name())
	return f, nil
}

type progressReader struct {
	r    io.Reader
	fn   func(Progress)
	p    Progress
	last int64
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.Done += int64(n)
	if r.p.Done-r.last >= 4<<20 || (err == io.EOF && r.p.Done != r.last) {
		r.last = r.p.Done
		r.fn(r.p)
	}
	return n, err
}

// blockJob is one block on its way through the encoder: read in order, hashed and compressed
// by any worker, written in order.
type blockJob struct {
	raw    []byte
	sum    []byte
	stored []byte // compressed block, or nil to store raw
	claim  *blockClaim
	err    error
	done   chan struct{}
}

// blockClaim lets a deduplicated, compressed payload compress each distinct block once: the
// first worker to hash a block claims it and compresses it; the writer takes the compressed
// bytes from the claim when it reaches the block's first occurrence in stream order (which
// may be a different job than the claimer) and then drops them, so claims hold data only for
// blocks in flight.
type blockClaim struct {
	stored []byte
	err    error
	done   chan struct{}
}

// encodeBlocks splits src into blocks, hashes and (optionally) compresses them on workers
// goroutines and writes the stored blocks to out in block order, so the output does not depend
// on scheduling. fileHash receives the decoded bytes in order.
func encodeBlocks(ctx context.Context, enc *BlockEncoding, src io.Reader, out io.Writer, fileHash hash.Hash, workers int, res *PayloadResult) (*BlockEncodingHeader, error) {
	spec, err := chunker.ParseSpec(enc.Chunker)
	if err != nil {
		return nil, err
	}
	if err := spec.CheckBlockSize(); err != nil {
		return nil, err
	}
	balg := enc.HashAlgorithm
	if balg == "" {
		balg = SHA512_256
	}
	compress := enc.Compression != nil
	level := enc.Compression.level()
	maxBlock := spec.MaxSize()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pool := sync.Pool{New: func() any { return make([]byte, 0, maxBlock) }}
	jobs := make(chan *blockJob, 2*workers+2)
	order := make(chan *blockJob, 2*workers+2)

	var claims sync.Map // string(sum) -> *blockClaim, only when deduplicating compressed blocks
	dedupFirst := compress && enc.Deduplicate
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := balg.New()
			var xe *xzEncoder
			var xerr error
			if compress {
				if xe, xerr = newXZEncoder(level); xerr == nil {
					defer xe.close()
				}
			}
			for j := range jobs {
				if ctx.Err() == nil {
					h.Reset()
					h.Write(j.raw)
					j.sum = h.Sum(nil)
					switch {
					case compress && xerr != nil:
						j.err = xerr
					case dedupFirst:
						c := &blockClaim{done: make(chan struct{})}
						if prev, loaded := claims.LoadOrStore(string(j.sum), c); loaded {
							j.claim = prev.(*blockClaim)
							break
						}
						j.claim = c
						var b bytes.Buffer
						c.err = xe.encode(&b, j.raw)
						c.stored = b.Bytes()
						close(c.done)
					case compress:
						var b bytes.Buffer
						j.err = xe.encode(&b, j.raw)
						j.stored = b.Bytes()
					}
				}
				close(j.done)
			}
		}()
	}

	var hashes, sizes []byte
	seen := map[string]struct{}{}
	var dataSize int64
	consumed := make(chan error, 1)
	go func() {
		var err error
		for j := range order {
			<-j.done
			if err == nil {
				err = ctx.Err()
			}
			if err == nil && j.err != nil {
				err = fmt.Errorf("block %d: %w", res.Blocks, j.err)
			}
			if err == nil {
				fileHash.Write(j.raw)
				hashes = append(hashes, j.sum...)
				_, dup := seen[string(j.sum)]
				if enc.Deduplicate && !dup {
					seen[string(j.sum)] = struct{}{}
				}
				if !enc.Deduplicate || !dup {
					stored := j.raw
					switch {
					case dedupFirst:
						<-j.claim.done
						stored, j.claim.stored = j.claim.stored, nil
						if j.claim.err != nil {
							err = fmt.Errorf("block %d: %w", res.Blocks, j.claim.err)
						}
					case compress:
						stored = j.stored
					}
					if _, werr := out.Write(stored); werr != nil {
						err = fmt.Errorf("write encoded data: %w", werr)
					}
					sizes = binary.BigEndian.AppendUint32(sizes, uint32(len(stored)))
					dataSize += int64(len(stored))
					res.StoredBlocks++
				}
				res.FileSize += int64(len(j.raw))
				res.Blocks++
			}
			if err != nil {
				cancel()
			}
			pool.Put(j.raw[:0])
		}
		consumed <- err
	}()

	ch := chunker.New(spec, src)
	var readErr error
	for ctx.Err() == nil {
		blk, err := ch.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read: %w", err)
			break
		}
		j := &blockJob{raw: append(pool.Get().([]byte)[:0], blk.Data...), done: make(chan struct{})}
		jobs <- j
		order <- j
	}
	close(jobs)
	close(order)
	wg.Wait()
	consErr := <-consumed
	if readErr != nil {
		return nil, readErr
	}
	if consErr != nil {
		return nil, consErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.DataSize = dataSize

	be := &BlockEncodingHeader{
		Chunker:       spec.String(),
		HashAlgorithm: string(balg),
		Deduplicated:  enc.Deduplicate,
		BlockHashes:   hashes,
	}
	includeSizes := spec.Kind != chunker.Fixed || compress
	if compress {
		xzName := "xz"
		be.Compression = &xzName
		var b bytes.Buffer
		if err := compressXZ(&b, hashes, level); err != nil {
			return nil, fmt.Errorf("compress block hashes: %w", err)
		}
		be.BlockHashes = b.Bytes()
		var s bytes.Buffer
		if err := compressXZ(&s, sizes, level); err != nil {
			return nil, fmt.Errorf("compress block sizes: %w", err)
		}
		sizes = s.Bytes()
	}
	if includeSizes {
		if sizes == nil {
			sizes = []byte{}
		}
		be.BlockSizes = &sizes
	}
	return be, nil
}
