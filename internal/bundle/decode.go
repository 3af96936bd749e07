package bundle

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/otabake/otabake/internal/chunker"
	"github.com/otabake/otabake/internal/ctxio"
)

// MaxBlockSize is the largest decoded block otabake accepts (chunker.MaxBlockSize).
const MaxBlockSize = chunker.MaxBlockSize

// maxArrayDict caps the xz dictionary of the block arrays: preset 9 uses 64 MiB.
const maxArrayDict = 64 << 20

func parseChunker(name string) (chunker.Spec, error) {
	spec, err := chunker.ParseSpec(name)
	if err != nil {
		return spec, err
	}
	return spec, spec.Validate()
}

// BlockTable is a payload's block encoding as far as it can be known without decompressing the
// block hash array, which may expand far beyond its stored size: the hashes are read on demand
// (EachHash), one at a time.
type BlockTable struct {
	Chunker       chunker.Spec
	HashAlgorithm HashAlgorithm
	Deduplicated  bool
	Compressed    bool
	// Blocks is the number of blocks, duplicates included. For a compressed hash array it is
	// read from the xz index; the hash reader enforces it.
	Blocks int64
	// StoredBlocks is the number of blocks stored in the payload data.
	StoredBlocks int64
	// Sizes holds the stored size of every stored block; nil for a fixed chunker without
	// compression, whose stored blocks all have the chunker's size except the last.
	Sizes []uint32

	hashes   []byte // the array as stored (xz-compressed if Compressed)
	hashLen  int64  // its decompressed length
	dataSize int64
}

// BlockTable reads the block encoding of payload i. It returns nil without error for a payload
// that has no block encoding. Only the stored-size array is decompressed, bounded by what the
// payload data can hold; the hash array is not.
func (b *Bundle) BlockTable(i int) (*BlockTable, error) {
	if i < 0 || i >= len(b.payloads) {
		return nil, fmt.Errorf("payload index %d out of range (bundle has %d payloads)", i, len(b.payloads))
	}
	p := &b.payloads[i]
	be := p.Header.BlockEncoding
	if be == nil {
		return nil, nil
	}
	where := fmt.Sprintf("payload %d header at offset %d", i, p.HeaderOffset)
	spec, err := parseChunker(be.Chunker)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := spec.CheckBlockSize(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	alg, err := ParseHashAlgorithm(be.HashAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	t := &BlockTable{Chunker: spec, HashAlgorithm: alg, Deduplicated: be.Deduplicated, Compressed: be.Compression != nil,
		hashes: be.BlockHashes, hashLen: int64(len(be.BlockHashes)), dataSize: p.DataSize}
	if t.Compressed {
		if t.hashLen, err = xzUncompressedSize(be.BlockHashes); err != nil {
			return nil, fmt.Errorf("%s: block hashes: %w", where, err)
		}
	}
	hs := int64(alg.Size())
	if t.hashLen%hs != 0 {
		return nil, fmt.Errorf("%s: block hashes: %d bytes is not a multiple of the %s size %d", where, t.hashLen, alg, hs)
	}
	t.Blocks = t.hashLen / hs
	if be.BlockSizes == nil {
		if t.Compressed || spec.Kind != chunker.Fixed {
			return nil, fmt.Errorf("%s: block sizes missing (required for %s%s)", where, spec, map[bool]string{true: " with compression"}[t.Compressed])
		}
		fixed := int64(spec.AvgSize())
		t.StoredBlocks = p.DataSize / fixed
		if p.DataSize%fixed != 0 {
			t.StoredBlocks++
		}
	} else {
		// Every stored block takes at least one byte (a complete xz stream when compressed), and
		// there are no more stored blocks than blocks: that bounds the array before it is decoded.
		minStored := int64(1)
		if t.Compressed {
			minStored = xzMinStream
		}
		maxStored := min(t.Blocks, p.DataSize/minStored, math.MaxInt32/4)
		raw := *be.BlockSizes
		if t.Compressed {
			if raw, err = decompressXZ(nil, raw, int(4*maxStored)); err != nil {
				return nil, fmt.Errorf("%s: block sizes (at most %d for %d bytes of data): %w", where, maxStored, p.DataSize, err)
			}
		}
		if len(raw)%4 != 0 || int64(len(raw)/4) > maxStored {
			return nil, fmt.Errorf("%s: block sizes: %d bytes for %d blocks and %d bytes of data", where, len(raw), t.Blocks, p.DataSize)
		}
		t.Sizes = make([]uint32, len(raw)/4)
		var sum int64
		for k := range t.Sizes {
			t.Sizes[k] = binary.BigEndian.Uint32(raw[4*k:])
			if t.Sizes[k] == 0 {
				return nil, fmt.Errorf("%s: stored block %d has size 0", where, k)
			}
			sum += int64(t.Sizes[k])
		}
		if sum != p.DataSize {
			return nil, fmt.Errorf("%s: stored block sizes add up to %d bytes, payload data has %d", where, sum, p.DataSize)
		}
		t.StoredBlocks = int64(len(t.Sizes))
	}
	if t.StoredBlocks > t.Blocks || !t.Deduplicated && t.StoredBlocks != t.Blocks {
		return nil, fmt.Errorf("%s: %d stored blocks for %d blocks (deduplicated=%t)", where, t.StoredBlocks, t.Blocks, t.Deduplicated)
	}
	return t, nil
}

// hashReader yields a block table's hashes one by one, decompressing the array as it goes and
// holding it to exactly Blocks hashes.
type hashReader struct {
	r     *bufio.Reader
	c     io.Closer
	cur   []byte
	k, n  int64
	total int64
}

func (t *BlockTable) hashReader() (*hashReader, error) {
	var src io.Reader = bytes.NewReader(t.hashes)
	var c io.Closer
	if t.Compressed {
		xr, err := newXZStreamReader(t.hashes, int(min(max(t.hashLen, 4096), maxArrayDict)))
		if err != nil {
			return nil, fmt.Errorf("block hashes: %w", err)
		}
		src, c = xr, xr
	}
	return &hashReader{r: bufio.NewReaderSize(src, 64<<10), c: c, cur: make([]byte, t.HashAlgorithm.Size()), n: t.Blocks, total: t.hashLen}, nil
}

// next returns the next hash (valid until the following call), or io.EOF after the last one
// once it has checked that the array holds nothing more.
func (h *hashReader) next() ([]byte, error) {
	if h.k == h.n {
		if n, err := h.r.Read(h.cur[:1]); n > 0 {
			return nil, fmt.Errorf("block hashes: the array decodes to more than the %d bytes its xz index records", h.total)
		} else if err != io.EOF {
			return nil, fmt.Errorf("block hashes: %w", err)
		}
		return nil, io.EOF
	}
	if _, err := io.ReadFull(h.r, h.cur); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("block hashes: the array ends after %d of %d blocks", h.k, h.n)
		}
		return nil, fmt.Errorf("block hashes: block %d: %w", h.k, err)
	}
	h.k++
	return h.cur, nil
}

func (h *hashReader) close() {
	if h.c != nil {
		h.c.Close()
	}
}

// EachHash calls fn with every block's hash in order (h is valid only during the call). It
// decompresses the hash array incrementally and fails if it does not hold exactly Blocks hashes.
func (t *BlockTable) EachHash(ctx context.Context, fn func(k int64, h []byte) error) error {
	hr, err := t.hashReader()
	if err != nil {
		return err
	}
	defer hr.close()
	for k := int64(0); ; k++ {
		if k&0xfff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		h, err := hr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(k, h); err != nil {
			return err
		}
	}
}

// UniqueBlocks counts the distinct block hashes. For a deduplicated payload that is the number
// of stored blocks; otherwise every block is stored, so the set built here is bounded by the
// payload data's size.
func (t *BlockTable) UniqueBlocks(ctx context.Context) (int64, error) {
	if t.Deduplicated {
		return t.StoredBlocks, nil
	}
	seen := make(map[string]struct{})
	err := t.EachHash(ctx, func(_ int64, h []byte) error {
		seen[string(h)] = struct{}{}
		return nil
	})
	return int64(len(seen)), err
}

// PayloadStats summarises a decoded payload.
type PayloadStats struct {
	FileSize     int64 // decoded bytes
	Blocks       int   // blocks, duplicates included
	StoredBlocks int   // blocks read from the bundle
}

// ExtractOptions bound what Extract may write.
type ExtractOptions struct {
	// MaxSize is the most decoded bytes the payload may have: the free space of the target file
	// system or the size of the target slot. A payload that declares more is refused before
	// anything is decoded. Zero means DefaultMaxPayloadSize.
	MaxSize int64
}

// ExtractPayload decodes payload i into w with the default size limit; see Extract.
func (b *Bundle) ExtractPayload(ctx context.Context, i int, w io.Writer) (*PayloadStats, error) {
	return b.Extract(ctx, i, w, ExtractOptions{})
}

// Extract decodes payload i (an index into Payloads) into w, checking the payload header hash,
// every block hash while streaming and the file hash at the end, as rugix-ctrl does. The size
// the payload declares is checked against opts.MaxSize first, and the output is held to it.
// Deduplicated repeats are read back from w when it is an io.ReaderAt (an *os.File), as
// rugix-ctrl reads them back from the slot; otherwise they are decoded again from the bundle.
// w receives blocks strictly in order, so it may be a pipe.
func (b *Bundle) Extract(ctx context.Context, i int, w io.Writer, opts ExtractOptions) (*PayloadStats, error) {
	var back io.ReaderAt
	if ra, ok := w.(io.ReaderAt); ok {
		back = ra
	}
	st, err := b.decode(ctx, i, w, back, limitOrDefault(opts.MaxSize))
	if err != nil {
		return nil, fmt.Errorf("payload %d: %w", i, err)
	}
	return st, nil
}

func (p *PayloadInfo) checkHeaderHash() error {
	if !bytes.Equal(p.headerSum, p.Entry.HeaderHash) {
		return fmt.Errorf("invalid payload header hash: payload header at offset %d does not match the bundle header", p.HeaderOffset)
	}
	return nil
}

// storedRef locates a block's first occurrence: where it was written and where it is stored.
type storedRef struct {
	out        int64 // offset in the decoded output
	size       int   // decoded size
	data       int64 // offset in the bundle
	storedSize int
}

func (b *Bundle) decode(ctx context.Context, i int, w io.Writer, back io.ReaderAt, limit int64) (*PayloadStats, error) {
	if i < 0 || i >= len(b.payloads) {
		return nil, fmt.Errorf("index out of range (bundle has %d payloads)", len(b.payloads))
	}
	p := &b.payloads[i]
	if err := p.checkHeaderHash(); err != nil {
		return nil, err
	}
	t, err := b.BlockTable(i)
	if err != nil {
		return nil, err
	}
	if _, err := b.checkSize(ctx, i, t, limit); err != nil {
		return nil, err
	}
	fh := b.alg.New()
	st := &PayloadStats{}
	data := io.NewSectionReader(b.r, p.DataOffset, p.DataSize)
	if t == nil {
		n, err := io.Copy(io.MultiWriter(w, fh), ctxio.Reader(ctx, data))
		if err != nil {
			return nil, fmt.Errorf("copy payload data at offset %d: %w", p.DataOffset+n, err)
		}
		st.FileSize = n
	} else if err := b.decodeBlocks(ctx, p, t, bufio.NewReaderSize(data, 256<<10), io.MultiWriter(w, fh), back, limit, st); err != nil {
		return nil, err
	}
	if sum := fh.Sum(nil); !bytes.Equal(sum, p.Entry.FileHash) {
		return nil, fmt.Errorf("payload hash mismatch: decoded %d bytes hash to %s, the header says %s", st.FileSize, Digest{b.alg, sum}, Digest{b.alg, p.Entry.FileHash})
	}
	return st, nil
}

func (b *Bundle) decodeBlocks(ctx context.Context, p *PayloadInfo, t *BlockTable, data io.Reader, w io.Writer, back io.ReaderAt, limit int64, st *PayloadStats) error {
	maxBlock := t.Chunker.MaxSize()
	minBlock := t.Chunker.MinSize()
	var xd *xzDecoder
	if t.Compressed {
		var err error
		if xd, err = newXZDecoder(); err != nil {
			return err
		}
		defer xd.close()
	}
	hr, err := t.hashReader()
	if err != nil {
		return err
	}
	defer hr.close()
	h := t.HashAlgorithm.New()
	var first map[string]storedRef
	if t.Deduplicated {
		first = map[string]storedRef{}
	}
	var (
		pos     int64 // offset within PAYLOAD_DATA
		out     int64 // offset in the decoded output
		next    int64 // next stored block
		stored  []byte
		decoded []byte
		sum     []byte
		want    []byte
	)
	check := func(k int64, blk []byte, where string) error {
		// Rugix's chunkers cut every block but the last to at least the minimum size (exactly
		// the size for fixed), and never produce an empty one.
		if len(blk) == 0 || len(blk) > maxBlock || k < t.Blocks-1 && len(blk) < minBlock {
			return fmt.Errorf("block %d (%s, output offset %d) decodes to %d bytes, which %s does not produce", k, where, out, len(blk), t.Chunker)
		}
		if int64(len(blk)) > limit-out {
			return fmt.Errorf("%w: block %d (%s) takes the output past the limit of %d bytes", ErrPayloadTooLarge, k, where, limit)
		}
		h.Reset()
		h.Write(blk)
		sum = h.Sum(sum[:0])
		if !bytes.Equal(sum, want) {
			return fmt.Errorf("invalid block hash of block %d of size %d (%s, output offset %d)", k, len(blk), where, out)
		}
		return nil
	}
	for k := int64(0); k < t.Blocks; k++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if want, err = hr.next(); err != nil {
			return err
		}
		var blk []byte
		if ref, dup := first[string(want)]; dup {
			if back != nil {
				decoded = grow(decoded, ref.size)
				if _, err := back.ReadAt(decoded, ref.out); err != nil {
					return fmt.Errorf("block %d: read back %d bytes at output offset %d: %w", k, ref.size, ref.out, err)
				}
				if err := check(k, decoded, fmt.Sprintf("read back from output offset %d", ref.out)); err != nil {
					return err
				}
				blk = decoded
			} else {
				stored = grow(stored, ref.storedSize)
				if _, err := b.r.ReadAt(stored, ref.data); err != nil {
					return fmt.Errorf("block %d: re-read stored block at bundle offset %d: %w", k, ref.data, err)
				}
				var err error
				if blk, err = unpack(xd, stored, &decoded, maxBlock, ref.data); err != nil {
					return fmt.Errorf("block %d: %w", k, err)
				}
				if err := check(k, blk, fmt.Sprintf("bundle offset %d", ref.data)); err != nil {
					return err
				}
			}
		} else {
			size, err := t.storedSize(k, next, p.DataSize-pos)
			if err != nil {
				return err
			}
			next++
			if size <= 0 || size > int64(maxBlock) && !t.Compressed || size > int64(maxBlock+maxBlock/2+4096) {
				return fmt.Errorf("block %d at bundle offset %d: stored size %d is not what %s allows", k, p.DataOffset+pos, size, t.Chunker)
			}
			stored = grow(stored, int(size))
			if _, err := io.ReadFull(data, stored); err != nil {
				return fmt.Errorf("block %d: read %d bytes at bundle offset %d: %w", k, size, p.DataOffset+pos, err)
			}
			if blk, err = unpack(xd, stored, &decoded, maxBlock, p.DataOffset+pos); err != nil {
				return fmt.Errorf("block %d: %w", k, err)
			}
			if err := check(k, blk, fmt.Sprintf("bundle offset %d", p.DataOffset+pos)); err != nil {
				return err
			}
			if first != nil {
				first[string(want)] = storedRef{out: out, size: len(blk), data: p.DataOffset + pos, storedSize: int(size)}
			}
			pos += size
			st.StoredBlocks++
		}
		if _, err := w.Write(blk); err != nil {
			return fmt.Errorf("block %d: write at output offset %d: %w", k, out, err)
		}
		out += int64(len(blk))
		st.Blocks++
	}
	if _, err := hr.next(); err != io.EOF {
		return err
	}
	st.FileSize = out
	if pos != p.DataSize {
		return fmt.Errorf("payload contains %d trailing encoded bytes at bundle offset %d", p.DataSize-pos, p.DataOffset+pos)
	}
	return nil
}

// unpack returns the decoded bytes of a stored block; xd is nil for uncompressed blocks.
func unpack(xd *xzDecoder, stored []byte, buf *[]byte, maxBlock int, at int64) ([]byte, error) {
	if xd == nil {
		return stored, nil
	}
	out, err := xd.decode((*buf)[:0], stored, maxBlock)
	if err != nil {
		return nil, fmt.Errorf("stored block at bundle offset %d: %w", at, err)
	}
	*buf = out
	return out, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
