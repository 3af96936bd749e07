package bundle

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
)

// FuzzBundleReader opens arbitrary bytes as a bundle and, if that works, verifies and extracts
// every payload: nothing may panic or allocate without bound.
func FuzzBundleReader(f *testing.F) {
	dir := f.TempDir()
	for i, enc := range []*BlockEncoding{nil, {Chunker: "fixed-1", Deduplicate: true}, {Chunker: "casync-1", Compression: &Compression{Level: level(0)}}} {
		p := filepath.Join(dir, "p")
		writeFileF(f, p, bytes.Repeat([]byte("rugix bundle fuzz seed "), 300))
		out := filepath.Join(dir, "b"+string(rune('0'+i)))
		if _, err := Create(context.Background(), out, Spec{Payloads: []Payload{{Slot: "system", Path: p, BlockEncoding: enc}}, OmitManifest: i == 1}, CreateOptions{Workers: 1}); err != nil {
			f.Fatal(err)
		}
		f.Add(readFileF(f, out))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		_ = b.Hash()
		b.Verify(context.Background(), VerifyOptions{})
		for i := range b.Payloads() {
			b.ExtractPayload(context.Background(), i, io.Discard)
		}
	})
}

// FuzzBlockIndexReader parses arbitrary bytes as a block index file; whatever parses must
// re-encode to the same bytes (the encoding is canonical).
func FuzzBlockIndexReader(f *testing.F) {
	x, err := ComputeBlockIndex(context.Background(), bytes.NewReader(bytes.Repeat([]byte("index seed "), 2000)), mustChunker(f, "casync-1"), SHA512_256, 1)
	if err != nil {
		f.Fatal(err)
	}
	seed, _ := x.MarshalBinary()
	f.Add(seed)
	empty, _ := (&BlockIndex{Chunker: mustChunker(f, "fixed-64"), HashAlgorithm: SHA256}).MarshalBinary()
	f.Add(empty)
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := ReadBlockIndex(bytes.NewReader(data))
		if err != nil {
			return
		}
		again, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		y, err := ParseBlockIndex(again)
		if err != nil || y.Blocks() != x.Blocks() || !bytes.Equal(y.Hashes, x.Hashes) {
			t.Fatalf("re-encoded index does not parse back: %v", err)
		}
	})
}
