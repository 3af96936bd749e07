package bundle

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/otabake/otabake/internal/bundle/stlv"
	"github.com/otabake/otabake/internal/chunker"
)

// BlockIndex lists the blocks of a slot's data, as rugix-ctrl stores it in
// <slot db>/<slot>/<chunker>_<alg>.rugix-block-index: devices look blocks up by hash to reuse
// local data instead of downloading it.
type BlockIndex struct {
	Chunker       chunker.Spec
	HashAlgorithm HashAlgorithm
	// Hashes holds HashAlgorithm.Size() bytes per block.
	Hashes []byte
	// Sizes holds every block's size.
	Sizes []uint32
}

// MaxBlockIndexSize bounds the index files ParseBlockIndex accepts (8 Mi blocks with 32-byte
// hashes, over 500 GiB of casync-64 data).
const MaxBlockIndexSize = 320 << 20

// Blocks returns the number of blocks.
func (x *BlockIndex) Blocks() int { return len(x.Sizes) }

// FileName is the name rugix-ctrl gives the index file, e.g.
// "casync-64_sha512-256.rugix-block-index".
func (x *BlockIndex) FileName() string {
	return x.Chunker.String() + "_" + string(x.HashAlgorithm) + ".rugix-block-index"
}

// MarshalBinary encodes the index file (a BLOCK_INDEX segment).
func (x *BlockIndex) MarshalBinary() ([]byte, error) {
	w := blockIndexWire{Chunker: x.Chunker.String(), HashAlgorithm: string(x.HashAlgorithm), BlockHashes: x.Hashes}
	w.BlockSizes = make([]byte, 4*len(x.Sizes))
	for i, s := range x.Sizes {
		binary.BigEndian.PutUint32(w.BlockSizes[4*i:], s)
	}
	return stlv.Marshal(TagBlockIndex, &w)
}

// ParseBlockIndex decodes an index file. It checks that both arrays describe the same number
// of blocks.
func ParseBlockIndex(data []byte) (*BlockIndex, error) {
	if len(data) > MaxBlockIndexSize {
		return nil, fmt.Errorf("block index of %d bytes exceeds the limit of %d bytes", len(data), MaxBlockIndexSize)
	}
	var w blockIndexWire
	if err := stlv.Unmarshal(data, TagBlockIndex, &w); err != nil {
		return nil, fmt.Errorf("block index: %w", err)
	}
	spec, err := parseChunker(w.Chunker)
	if err != nil {
		return nil, fmt.Errorf("block index: %w", err)
	}
	alg, err := ParseHashAlgorithm(w.HashAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("block index: %w", err)
	}
	if len(w.BlockHashes)%alg.Size() != 0 || len(w.BlockSizes)%4 != 0 || len(w.BlockHashes)/alg.Size() != len(w.BlockSizes)/4 {
		return nil, fmt.Errorf("block index: %d bytes of %s hashes and %d bytes of sizes do not describe the same number of blocks", len(w.BlockHashes), alg, len(w.BlockSizes))
	}
	x := &BlockIndex{Chunker: spec, HashAlgorithm: alg, Hashes: w.BlockHashes, Sizes: make([]uint32, len(w.BlockSizes)/4)}
	for i := range x.Sizes {
		x.Sizes[i] = binary.BigEndian.Uint32(w.BlockSizes[4*i:])
	}
	return x, nil
}

// ReadBlockIndex reads an index file from r, refusing files over MaxBlockIndexSize.
func ReadBlockIndex(r io.Reader) (*BlockIndex, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBlockIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("read block index: %w", err)
	}
	return ParseBlockIndex(data)
}

// ComputeBlockIndex chunks and hashes everything read from r (a slot image or device), as
// `rugix-ctrl slots create-index` does. Hashing runs on workers goroutines (0: GOMAXPROCS).
func ComputeBlockIndex(ctx context.Context, r io.Reader, spec chunker.Spec, alg HashAlgorithm, workers int) (*BlockIndex, error) {
	x := &BlockIndex{Chunker: spec, HashAlgorithm: alg}
	err := HashBlocks(ctx, spec, r, alg, workers, func(b chunker.BlockSum) error {
		x.Hashes = append(x.Hashes, b.Sum...)
		x.Sizes = append(x.Sizes, uint32(b.Size))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// PayloadDelta is what a device holding some block indices would download for one payload.
type PayloadDelta struct {
	Index int
	// Blocks and Bytes count what the full payload stores (after deduplication).
	Blocks int
	Bytes  int64
	// DownloadBlocks and DownloadBytes count the stored blocks not found in any index.
	DownloadBlocks int
	DownloadBytes  int64
	// Reusable is false when the payload has no block encoding or no index has its chunker
	// and block hash algorithm: then everything is downloaded.
	Reusable bool
}

// Delta estimates per payload what a device holding the data described by indices would
// download, as rugix-ctrl's block provider decides it: a stored block is skipped when its hash
// is in an index with the payload's chunker and hash algorithm.
func (b *Bundle) Delta(indices []*BlockIndex) ([]PayloadDelta, error) {
	var out []PayloadDelta
	for i := range b.payloads {
		p := &b.payloads[i]
		d := PayloadDelta{Index: i, Bytes: p.DataSize, DownloadBytes: p.DataSize}
		t, err := b.BlockTable(i)
		if err != nil {
			return nil, err
		}
		if t == nil {
			out = append(out, d)
			continue
		}
		known := map[string]struct{}{}
		for _, x := range indices {
			if x.Chunker != t.Chunker || x.HashAlgorithm != t.HashAlgorithm {
				continue
			}
			d.Reusable = true
			n := x.HashAlgorithm.Size()
			for k := 0; k+n <= len(x.Hashes); k += n {
				known[string(x.Hashes[k:k+n])] = struct{}{}
			}
		}
		seen := map[string]struct{}{}
		var pos int64
		next := 0
		d.DownloadBytes = 0
		err = t.EachHash(context.Background(), func(k int64, hash []byte) error {
			h := string(hash)
			if _, dup := seen[h]; dup && t.Deduplicated {
				return nil
			}
			if t.Deduplicated {
				seen[h] = struct{}{}
			}
			size := int64(t.Chunker.AvgSize())
			if t.Sizes != nil {
				if next >= len(t.Sizes) {
					return fmt.Errorf("payload %d: block %d has no stored size", i, k)
				}
				size = int64(t.Sizes[next])
			}
			next++
			size = min(size, p.DataSize-pos)
			pos += size
			d.Blocks++
			if _, ok := known[h]; !ok {
				d.DownloadBlocks++
				d.DownloadBytes += size
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
