package bundle

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/otabake/otabake/internal/bundle/stlv"
)

// craftBundle assembles a one-payload bundle by hand from a block encoding and the stored
// data, the way a hostile tool could: nothing here checks that the two agree.
func craftBundle(tb testing.TB, be *BlockEncodingHeader, data, fileHash []byte) []byte {
	tb.Helper()
	ph, err := stlv.Marshal(TagPayloadHeader, &PayloadHeader{BlockEncoding: be})
	if err != nil {
		tb.Fatal(err)
	}
	if fileHash == nil {
		fileHash = make([]byte, 32)
	}
	hdr, err := stlv.Marshal(TagBundleHeader, &Header{HashAlgorithm: string(SHA512_256), Payloads: []PayloadEntry{{
		TypeSlot: &SlotType{Slot: "system"}, HeaderHash: SHA512_256.Sum(ph), FileHash: fileHash,
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	out := stlv.AppendStart(nil, TagBundle)
	out = append(out, hdr...)
	out = stlv.AppendStart(out, TagPayloads)
	out = stlv.AppendStart(out, TagPayload)
	out = append(out, ph...)
	out = stlv.AppendHead(out, stlv.Head{Tag: TagPayloadData, Kind: stlv.Value, Len: uint64(len(data))})
	out = append(out, data...)
	out = stlv.AppendEnd(out, TagPayload)
	out = stlv.AppendEnd(out, TagPayloads)
	return stlv.AppendEnd(out, TagBundle)
}

func xzOf(tb testing.TB, data []byte, level int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := compressXZ(&buf, data, level); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func sizesOf(sizes ...int) []byte {
	out := make([]byte, 0, 4*len(sizes))
	for _, s := range sizes {
		out = append(out, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
	}
	return out
}

// dedupBomb is a fixed-32768 deduplicated payload that stores one 32 MiB block of zeros
// (xz-compressed to a few KiB) and lists it 2 Mi times: 64 TiB of declared output.
func dedupBomb(tb testing.TB) []byte {
	tb.Helper()
	const blockKiB, blocks = 32768, 2 << 20
	zero := make([]byte, blockKiB<<10)
	h := SHA512_256.Sum(zero)
	block := xzOf(tb, zero, 6)
	hashes := xzOf(tb, bytes.Repeat(h, blocks), 6)
	comp := "xz"
	sizes := xzOf(tb, sizesOf(len(block)), 6)
	return craftBundle(tb, &BlockEncodingHeader{Chunker: "fixed-32768", HashAlgorithm: "sha512-256", Deduplicated: true,
		Compression: &comp, BlockHashes: hashes, BlockSizes: &sizes}, block, nil)
}

// hashBomb is a casync-64 payload whose xz-compressed block hash array expands to n bytes.
func hashBomb(tb testing.TB, n int) []byte {
	tb.Helper()
	comp := "xz"
	sizes := xzOf(tb, sizesOf(64), 6)
	return craftBundle(tb, &BlockEncodingHeader{Chunker: "casync-64", HashAlgorithm: "sha512-256", Deduplicated: true,
		Compression: &comp, BlockHashes: xzOf(tb, make([]byte, n), 6), BlockSizes: &sizes}, make([]byte, 64), nil)
}

// TestWriteBombs writes the crafted bundles to $OTABAKE_BOMB_DIR for measuring the CLI.
func TestWriteBombs(t *testing.T) {
	dir := os.Getenv("OTABAKE_BOMB_DIR")
	if dir == "" {
		t.Skip("OTABAKE_BOMB_DIR not set")
	}
	writeFileF(t, filepath.Join(dir, "dedup-64tib.rugixb"), dedupBomb(t))
	writeFileF(t, filepath.Join(dir, "hashes-512mib.rugixb"), hashBomb(t, 512<<20))
}
