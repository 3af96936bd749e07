package bundle

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/otabake/otabake/internal/chunker"
	"github.com/otabake/otabake/internal/ctxio"
)

// maxBlockTable bounds the decompressed block hash array (8 Mi blocks of 32 bytes, half a TiB of
// casync-64 payload), so that a small hostile xz stream cannot expand without limit.
const maxBlockTable = 256 << 20

func parseChunker(name string) (chunker.Spec, error) {
	spec, err := chunker.ParseSpec(name)
	if err != nil {
		return spec, err
	}
	return spec, spec.Validate()
}

// BlockTable is a payload's decoded block encoding arrays.
type BlockTable struct {
	Chunker       chunker.Spec
	HashAlgorithm HashAlgorithm
	Deduplicated  bool
	Compressed    bool
	// Hashes holds the hash of every block, duplicates included, HashAlgorithm.Size() bytes each.
	Hashes []byte
	// Sizes holds the stored size of every stored block; nil for a fixed chunker without
	// compression, whose stored blocks all have the chunker's size except the last.
	Sizes []uint32
}

// Blocks returns the number of blocks (duplicates included).
func (t *BlockTable) Blocks() int { return len(t.Hashes) / t.HashAlgorithm.Size() }

// Hash returns the hash of block k.
func (t *BlockTable) Hash(k int) []byte {
	n := t.HashAlgorithm.Size()
	return t.Hashes[k*n : (k+1)*n]
}

// BlockTable decodes the block arrays of payload i (decompressing them if needed). It returns
// nil without error for a payload that has no block encoding.
func (b *Bundle) BlockTable(i int) (*BlockTable, error) {
	if i < 0 || i >= len(b.payloads) {
		return nil, fmt.Errorf("payload index %d out of range (bundle has %d payloads)", i, len(b.payloads))
	}
	p := &b.payloads[i]
	be := p.Header.BlockEncoding
	if be == nil {
		return nil, nil
	}
	spec, err := parseChunker(be.Chunker)
	if err != nil {
		return nil, err
	}
	alg, err := ParseHashAlgorithm(be.HashAlgorithm)
	if err != nil {
		return nil, err
	}
	t := &BlockTable{Chunker: spec, HashAlgorithm: alg, Deduplicated: be.Deduplicated, Compressed: be.Compression != nil, Hashes: be.BlockHashes}
	where := fmt.Sprintf("payload %d header at offset %d", i, p.HeaderOffset)
	if t.Compressed {
		if t.Hashes, err = decompressXZ(nil, be.BlockHashes, maxBlockTable); err != nil {
			return nil, fmt.Errorf("%s: block hashes: %w", where, err)
		}
	}
	if len(t.Hashes)%alg.Size() != 0 {
		return nil, fmt.Errorf("%s: block hashes: %d bytes is not a multiple of the %s size %d", where, len(t.Hashes), alg, alg.Size())
	}
	if be.BlockSizes == nil {
		if t.Compressed || spec.Kind != chunker.Fixed {
			return nil, fmt.Errorf("%s: block sizes missing (required for %s%s)", where, spec, map[bool]string{true: " with compression"}[t.Compressed])
		}
		return t, nil
	}
	raw := *be.BlockSizes
	if t.Compressed {
		if raw, err = decompressXZ(nil, raw, 4*t.Blocks()); err != nil {
			return nil, fmt.Errorf("%s: block sizes: %w", where, err)
		}
	}
	if len(raw)%4 != 0 || len(raw)/4 > t.Blocks() {
		return nil, fmt.Errorf("%s: block sizes: %d bytes for %d blocks", where, len(raw), t.Blocks())
	}
	t.Sizes = make([]uint32, len(raw)/4)
	var sum int64
	for k := range t.Sizes {
		t.Sizes[k] = binary.BigEndian.Uint32(raw[4*k:])
		sum += int64(t.Sizes[k])
	}
	if sum != p.DataSize {
		return nil, fmt.Errorf("%s: stored block sizes add up to %d bytes, payload data has %d", where, sum, p.DataSize)
	}
	return t, nil
}

// PayloadStats summarises a decoded payload.
type PayloadStats struct {
	FileSize     int64 // decoded bytes
	Blocks       int   // blocks, duplicates included
	StoredBlocks int   // blocks read from the bundle
}

// ExtractPayload decodes payload i (an index into Payloads) into w, checking the payload header
// hash, every block hash while streaming and the file hash at the end, as rugix-ctrl does.
// Deduplicated repeats are read back from w when it is an io.ReaderAt (an *os.File), as
// rugix-ctrl reads them back from the slot; otherwise they are decoded again from the bundle.
// w receives blocks strictly in order, so it may be a pipe.
func (b *Bundle) ExtractPayload(ctx context.Context, i int, w io.Writer) (*PayloadStats, error) {
	var back io.ReaderAt
	if ra, ok := w.(io.ReaderAt); ok {
		back = ra
	}
	st, err := b.decode(ctx, i, w, back)
	if err != nil {
		return nil, fmt.Errorf("payload %d: %w", i, err)
	}
	return st, nil
}

// storedRef locates a block's first occurrence: where it was written and where it is stored.
type storedRef struct {
	out        int64 // offset in the decoded output
	size       int   // decoded size
	data       int64 // offset in the bundle
	storedSize int
}

func (b *Bundle) decode(ctx context.Context, i int, w io.Writer, back io.ReaderAt) (*PayloadStats, error) {
	if i < 0 || i >= len(b.payloads) {
		return nil, fmt.Errorf("index out of range (bundle has %d payloads)", len(b.payloads))
	}
	p := &b.payloads[i]
	if !bytes.Equal(p.headerSum, p.Entry.HeaderHash) {
		return nil, fmt.Errorf("invalid payload header hash: payload header at offset %d does not match the bundle header", p.HeaderOffset)
	}
	fh := b.alg.New()
	st := &PayloadStats{}
	t, err := b.BlockTable(i)
	if err != nil {
		return nil, err
	}
	data := io.NewSectionReader(b.r, p.DataOffset, p.DataSize)
	if t == nil {
		n, err := io.Copy(io.MultiWriter(w, fh), ctxio.Reader(ctx, data))
		if err != nil {
			return nil, fmt.Errorf("copy payload data at offset %d: %w", p.DataOffset+n, err)
		}
		st.FileSize = n
	} else if err := b.decodeBlocks(ctx, p, t, bufio.NewReaderSize(data, 256<<10), io.MultiWriter(w, fh), back, st); err != nil {
		return nil, err
	}
	if sum := fh.Sum(nil); !bytes.Equal(sum, p.Entry.FileHash) {
		return nil, fmt.Errorf("payload hash mismatch: decoded %d bytes hash to %s, the header says %s", st.FileSize, Digest{b.alg, sum}, Digest{b.alg, p.Entry.FileHash})
	}
	return st, nil
}

func (b *Bundle) decodeBlocks(ctx context.Context, p *PayloadInfo, t *BlockTable, data io.Reader, w io.Writer, back io.ReaderAt, st *PayloadStats) error {
	maxBlock := t.Chunker.MaxSize()
	fixed := int64(t.Chunker.AvgSize())
	var xd *xzDecoder
	if t.Compressed {
		var err error
		if xd, err = newXZDecoder(); err != nil {
			return err
		}
		defer xd.close()
	}
	h := t.HashAlgorithm.New()
	var first map[string]storedRef
	if t.Deduplicated {
		first = map[string]storedRef{}
	}
	var (
		pos     int64 // offset within PAYLOAD_DATA
		out     int64 // offset in the decoded output
		next    int   // next entry of Sizes
		stored  []byte
		decoded []byte
		sum     []byte
	)
	check := func(k int, blk []byte, where string) error {
		h.Reset()
		h.Write(blk)
		sum = h.Sum(sum[:0])
		if !bytes.Equal(sum, t.Hash(k)) {
			return fmt.Errorf("invalid block hash of block %d of size %d (%s, output offset %d)", k, len(blk), where, out)
		}
		return nil
	}
	for k := 0; k < t.Blocks(); k++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var blk []byte
		if ref, dup := first[string(t.Hash(k))]; dup {
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
			var size int64
			switch {
			case t.Sizes != nil:
				if next >= len(t.Sizes) {
					return fmt.Errorf("block %d: no stored size left (%d sizes)", k, len(t.Sizes))
				}
				size = int64(t.Sizes[next])
			default:
				size = fixed
			}
			next++
			size = min(size, p.DataSize-pos)
			if size > int64(maxBlock) && !t.Compressed || size > int64(maxBlock+maxBlock/2+4096) {
				return fmt.Errorf("block %d at bundle offset %d: stored size %d exceeds what %s allows", k, p.DataOffset+pos, size, t.Chunker)
			}
			stored = grow(stored, int(size))
			if _, err := io.ReadFull(data, stored); err != nil {
				return fmt.Errorf("block %d: read %d bytes at bundle offset %d: %w", k, size, p.DataOffset+pos, err)
			}
			var err error
			if blk, err = unpack(xd, stored, &decoded, maxBlock, p.DataOffset+pos); err != nil {
				return fmt.Errorf("block %d: %w", k, err)
			}
			if err := check(k, blk, fmt.Sprintf("bundle offset %d", p.DataOffset+pos)); err != nil {
				return err
			}
			if first != nil {
				first[string(t.Hash(k))] = storedRef{out: out, size: len(blk), data: p.DataOffset + pos, storedSize: int(size)}
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
