package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
)

// DefaultMaxPayloadSize is the decoded size a payload may declare when the caller sets no limit.
const DefaultMaxPayloadSize int64 = 64 << 30

// ErrPayloadTooLarge is wrapped by the errors that refuse a payload for the size it declares.
var ErrPayloadTooLarge = errors.New("payload too large")

// limitOrDefault also caps the limit at 2^62, so that sums of block sizes checked against it
// cannot overflow.
func limitOrDefault(limit int64) int64 {
	if limit <= 0 {
		return DefaultMaxPayloadSize
	}
	return min(limit, 1<<62)
}

// DeclaredSize is what a payload's block encoding says about its decoded size, before anything is
// decoded: Min and Max bound it and are equal when the size is known exactly.
type DeclaredSize struct {
	Min, Max int64
	// Blocks counts the blocks (duplicates included), StoredBlocks the blocks in the payload data;
	// both are zero for a payload without block encoding.
	Blocks, StoredBlocks int64
}

// String gives the size as "N bytes (X GiB)" or, when only bounded, "N to M bytes (up to X)".
func (d DeclaredSize) String() string {
	if d.Min == d.Max {
		return fmt.Sprintf("%d bytes (%s)", d.Max, iec(d.Max))
	}
	return fmt.Sprintf("%d to %d bytes (up to %s)", d.Min, d.Max, iec(d.Max))
}

func iec(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), 0
	for v >= 1024 && u < 6 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, " KMGTPE"[u])
}

// mulSat multiplies non-negative a and b, saturating at math.MaxInt64: block counts times block
// sizes come from the bundle and may be chosen to overflow.
func mulSat(a, b int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}

// declared computes the bounds that follow from the block counts and the chunker alone.
func declared(p *PayloadInfo, t *BlockTable) DeclaredSize {
	if t == nil {
		return DeclaredSize{Min: p.DataSize, Max: p.DataSize}
	}
	d := DeclaredSize{Blocks: t.Blocks, StoredBlocks: t.StoredBlocks}
	if t.Blocks == 0 {
		return d
	}
	if !t.Compressed && !t.Deduplicated {
		d.Min, d.Max = p.DataSize, p.DataSize // the stored blocks are the output
		return d
	}
	// Every block but the last has at least the chunker's minimum size, none more than its
	// maximum (decodeBlocks enforces both).
	d.Min = mulSat(t.Blocks-1, int64(t.Chunker.MinSize()))
	if d.Min < math.MaxInt64 {
		d.Min++
	}
	d.Max = mulSat(t.Blocks, int64(t.Chunker.MaxSize()))
	return d
}

// DeclaredSize returns the bounds of payload i's decoded size that its block encoding gives,
// without decompressing anything but the stored-size array.
func (b *Bundle) DeclaredSize(i int) (DeclaredSize, error) {
	t, err := b.BlockTable(i)
	if err != nil {
		return DeclaredSize{}, err
	}
	return declared(&b.payloads[i], t), nil
}

// CheckPayloadSize refuses payload i, wrapping ErrPayloadTooLarge, if it declares more than limit
// decoded bytes (zero: DefaultMaxPayloadSize), after checking its payload header hash. When the bounds straddle the limit, the exact size
// is worked out by walking the hash array and reading the xz index of every stored block, still
// without decoding any data.
func (b *Bundle) CheckPayloadSize(ctx context.Context, i int, limit int64) (DeclaredSize, error) {
	if i < 0 || i >= len(b.payloads) {
		return DeclaredSize{}, fmt.Errorf("payload index %d out of range (bundle has %d payloads)", i, len(b.payloads))
	}
	// The payload header is checked against the bundle header first, so that a tampered one is
	// reported as such rather than by whatever it now declares.
	if err := b.payloads[i].checkHeaderHash(); err != nil {
		return DeclaredSize{}, fmt.Errorf("payload %d: %w", i, err)
	}
	t, err := b.BlockTable(i)
	if err != nil {
		return DeclaredSize{}, fmt.Errorf("payload %d: %w", i, err)
	}
	d, err := b.checkSize(ctx, i, t, limitOrDefault(limit))
	if err != nil {
		return d, fmt.Errorf("payload %d: %w", i, err)
	}
	return d, nil
}

func (b *Bundle) checkSize(ctx context.Context, i int, t *BlockTable, limit int64) (DeclaredSize, error) {
	p := &b.payloads[i]
	d := declared(p, t)
	tooLarge := func() error {
		what := ""
		if t != nil {
			what = fmt.Sprintf(" in %d blocks of %s, %d stored", d.Blocks, t.Chunker, d.StoredBlocks)
		}
		return fmt.Errorf("%w: declares %s of decoded data%s, over the limit of %d bytes (%s)", ErrPayloadTooLarge, d, what, limit, iec(limit))
	}
	if d.Min > limit {
		return d, tooLarge()
	}
	if d.Max <= limit {
		return d, nil
	}
	n, err := b.exactSize(ctx, p, t, limit)
	if err != nil {
		return d, err
	}
	if n > limit {
		d.Min = n // counting stopped past the limit: a lower bound
		return d, tooLarge()
	}
	d.Min, d.Max = n, n
	return d, nil
}

// exactSize adds up the decoded size of every block: a stored block's from its stored size
// (uncompressed) or its xz index (compressed), a repeat's from its first occurrence. It stops
// as soon as the sum passes limit. Memory is bounded by the number of stored blocks.
func (b *Bundle) exactSize(ctx context.Context, p *PayloadInfo, t *BlockTable, limit int64) (int64, error) {
	var (
		total, pos, next int64
		first            = map[string]int64{}
		errStop          = errors.New("stop")
	)
	err := t.EachHash(ctx, func(k int64, h []byte) error {
		if n, dup := first[string(h)]; dup && t.Deduplicated {
			total += n
		} else {
			size, err := t.storedSize(k, next, p.DataSize-pos)
			if err != nil {
				return err
			}
			next++
			n := size
			if t.Compressed {
				var err error
				if n, err = xzIndexSize(io.NewSectionReader(b.r, p.DataOffset+pos, size), size); err != nil {
					return fmt.Errorf("block %d: stored block at bundle offset %d: %w", k, p.DataOffset+pos, err)
				}
			}
			n = min(n, int64(t.Chunker.MaxSize())) // decoding enforces the maximum
			pos += size
			if t.Deduplicated {
				first[string(h)] = n
			}
			total += n
		}
		if total > limit {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return 0, err
	}
	return total, nil
}

// storedSize is the stored size of stored block next (block k of the payload), with left bytes
// of payload data remaining: from the block-size array, or the fixed chunker's block size, cut
// to what is left.
func (t *BlockTable) storedSize(k, next, left int64) (int64, error) {
	if next >= t.StoredBlocks {
		return 0, fmt.Errorf("block %d: no stored block left (%d stored blocks)", k, t.StoredBlocks)
	}
	size := int64(t.Chunker.AvgSize())
	if t.Sizes != nil {
		size = int64(t.Sizes[next])
	}
	return min(size, left), nil
}
