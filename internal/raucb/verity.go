package raucb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/otabake/otabake/internal/ctxio"
)

// The dm-verity hash tree of a verity bundle, as RAUC writes it (rauc src/verity_hash.c, a copy
// of cryptsetup's lib/verity/verity_hash.c reduced to what bundles use): format version 1,
// SHA-256, 4096-byte data and hash blocks, a 32-byte salt hashed before each block, no
// superblock, the tree appended right after the data (hash offset = data size). That is what
// `veritysetup format --no-superblock --hash-offset=<data size> --salt=<hex>` writes with the
// same file as data and hash device, which the tests check byte for byte.
const (
	verityBlockSize = 4096
	verityDigest    = sha256.Size
	verityHashBits  = 7 // 4096/32 = 128 = 1<<7 digests per hash block
	verityMaxLevels = 63
)

// verityLevels returns, for dataBlocks data blocks, the block position (counted from the start
// of the file) and the size in blocks of each hash level, level 0 (the digests of the data
// blocks) first, and the total number of data and hash blocks (rauc src/verity_hash.c
// hash_levels: the top level comes first after the data, level 0 last).
func verityLevels(dataBlocks uint64) (pos, size []uint64, total uint64, err error) {
	if dataBlocks == 0 {
		return nil, nil, 0, errors.New("verity: no data blocks")
	}
	levels := 0
	for verityHashBits*levels < 64 && (dataBlocks-1)>>(verityHashBits*levels) != 0 {
		levels++
	}
	if levels > verityMaxLevels {
		return nil, nil, 0, errors.New("verity: too many hash levels")
	}
	pos = make([]uint64, levels)
	size = make([]uint64, levels)
	total = dataBlocks
	for i := levels - 1; i >= 0; i-- {
		shift := uint((i + 1) * verityHashBits)
		if shift > 63 {
			return nil, nil, 0, errors.New("verity: hash area overflow")
		}
		pos[i] = total
		size[i] = (dataBlocks + (1 << shift) - 1) >> shift
		if total+size[i] < total {
			return nil, nil, 0, errors.New("verity: hash area overflow")
		}
		total += size[i]
	}
	return pos, size, total, nil
}

// blockFile is what the hash tree is computed in: the bundle file, read for the data and the
// lower levels, written for the hash blocks.
type blockFile interface {
	io.ReaderAt
	io.WriterAt
}

// appendHashTree computes the hash tree over the first dataBlocks 4096-byte blocks of f and
// writes it right after them. It returns the root hash and the tree's size in bytes (the
// manifest's verity-size). Memory stays at a few blocks whatever the size of the data: each
// level is read back from f to hash the next one.
func appendHashTree(ctx context.Context, f blockFile, dataBlocks uint64, salt []byte) (root [verityDigest]byte, treeSize uint64, err error) {
	if len(salt) != 32 {
		return root, 0, fmt.Errorf("verity: salt has %d bytes, want 32", len(salt))
	}
	pos, size, total, err := verityLevels(dataBlocks)
	if err != nil {
		return root, 0, err
	}
	// Level i hashes the blocks of level i-1 (level 0 the data) into its own blocks.
	srcPos, srcBlocks := uint64(0), dataBlocks
	for i := range pos {
		if err := hashLevel(ctx, f, srcPos, srcBlocks, pos[i], size[i], salt); err != nil {
			return root, 0, err
		}
		srcPos, srcBlocks = pos[i], size[i]
	}
	// The root hash is the digest of the single top block (of the one data block when there is
	// no level: a bundle always has more than one, rauc src/bundle.c sign_bundle).
	block := make([]byte, verityBlockSize)
	if _, err := f.ReadAt(block, int64(srcPos)*verityBlockSize); err != nil {
		return root, 0, fmt.Errorf("verity: read top block: %w", err)
	}
	copy(root[:], saltedDigest(salt, block))
	return root, (total - dataBlocks) * verityBlockSize, nil
}

// hashLevel reads blocks [src, src+n) of f and writes their digests, 128 to a block, each zero
// padded to its 32 bytes and each block's spare area zeroed, into blocks [dst, dst+dstBlocks).
func hashLevel(ctx context.Context, f blockFile, src, n, dst, dstBlocks uint64, salt []byte) error {
	r := bufio.NewReaderSize(ctxio.Reader(ctx, io.NewSectionReader(f, int64(src)*verityBlockSize, int64(n)*verityBlockSize)), 1<<20)
	w := bufio.NewWriterSize(io.NewOffsetWriter(f, int64(dst)*verityBlockSize), 1<<16)
	in := make([]byte, verityBlockSize)
	out := make([]byte, verityBlockSize)
	written := uint64(0)
	for left := n; left > 0; {
		clear(out)
		for k := 0; k < verityBlockSize/verityDigest && left > 0; k++ {
			if _, err := io.ReadFull(r, in); err != nil {
				return fmt.Errorf("verity: read block: %w", err)
			}
			copy(out[k*verityDigest:], saltedDigest(salt, in))
			left--
		}
		if _, err := w.Write(out); err != nil {
			return fmt.Errorf("verity: write hash block: %w", err)
		}
		written++
	}
	if written != dstBlocks {
		return fmt.Errorf("verity: wrote %d hash blocks, want %d", written, dstBlocks)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("verity: write hash block: %w", err)
	}
	return nil
}

// saltedDigest is SHA-256(salt || block), dm-verity format version 1 (rauc src/verity_hash.c
// verify_hash_block).
func saltedDigest(salt, block []byte) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write(block)
	return h.Sum(nil)
}
