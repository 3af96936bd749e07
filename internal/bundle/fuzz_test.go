package bundle

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/bundle/stlv"
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
	// A 1.x app bundle with component metadata and an app-file mode (apps_test.go).
	f.Add(readFileF(f, appFixture))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		_ = b.Hash()
		_ = b.Warnings()
		for i := range b.Payloads() {
			_ = b.Payloads()[i].Delivery()
		}
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

// FuzzXZ feeds arbitrary bytes to the three xz readers: the index reader, the bounded one-shot
// decoder and the streaming reader. None may panic or decode past its limit, and when a stream
// decodes, all three must agree on its length.
func FuzzXZ(f *testing.F) {
	for _, n := range []int{0, 1, 5000} {
		f.Add(xzOf(f, bytes.Repeat([]byte{7}, n), 0))
	}
	f.Add(xzOf(f, make([]byte, 1<<20), 6)) // expands past the limit below
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 256 << 10
		size, ierr := xzUncompressedSize(data)
		out, derr := decompressXZ(nil, data, limit)
		if derr == nil && len(out) > limit {
			t.Fatalf("decoded %d bytes past the limit %d", len(out), limit)
		}
		r, err := newXZStreamReader(data, limit)
		if err != nil {
			return
		}
		defer r.Close()
		n, serr := io.Copy(io.Discard, io.LimitReader(r, limit+1))
		if derr == nil && serr == nil && n != int64(len(out)) {
			t.Fatalf("one-shot decoder gave %d bytes, streaming reader %d", len(out), n)
		}
		if derr == nil && ierr == nil && size != int64(len(out)) {
			t.Fatalf("xz index says %d bytes, the stream decodes to %d", size, len(out))
		}
	})
}

// FuzzParseDigest parses digest text from bundles and command lines; what parses must print
// back to a string that parses to the same digest.
func FuzzParseDigest(f *testing.F) {
	f.Add("sha512-256:" + strings.Repeat("ab", 32))
	f.Add("sha512_256_" + strings.Repeat("AB", 32))
	f.Add("sha256:00")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			return
		}
		e, err := ParseDigest(d.String())
		if err != nil || !e.Equal(d) {
			t.Fatalf("%q -> %s does not parse back: %v", s, d, err)
		}
	})
}

// FuzzCMSSigners reads signer names out of arbitrary DER, as bundle inspect does for every
// embedded signature.
func FuzzCMSSigners(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		CMSSigners(der)
	})
}

// FuzzBlockTable decodes hostile block encodings: the block table, the declared size and the
// hash stream must stay bounded and never panic.
func FuzzBlockTable(f *testing.F) {
	comp := "xz"
	h := SHA512_256.Sum([]byte("block"))
	for _, be := range []*BlockEncodingHeader{
		{Chunker: "fixed-1", HashAlgorithm: "sha512-256", Deduplicated: true, BlockHashes: bytes.Repeat(h, 3)},
		{Chunker: "casync-1", HashAlgorithm: "sha256", Compression: &comp, BlockHashes: xzOf(f, h, 0), BlockSizes: ptr(xzOf(f, sizesOf(40), 0))},
	} {
		f.Add(craftBundle(f, be, make([]byte, 40), nil))
	}
	f.Add(hashBomb(f, 1<<20))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for i := range b.Payloads() {
			tb, err := b.BlockTable(i)
			if err != nil || tb == nil {
				continue
			}
			tb.UniqueBlocks(context.Background())
			d, err := b.CheckPayloadSize(context.Background(), i, 1<<20)
			if err == nil && d.Max > 1<<20 {
				t.Fatalf("accepted a payload declaring %s over a limit of 1 MiB", d)
			}
			b.Extract(context.Background(), i, io.Discard, ExtractOptions{MaxSize: 1 << 20})
		}
	})
}

// FuzzRecognise feeds arbitrary header segments to the position-and-shape recogniser of the
// 1.x atoms without published tags (components.go): it must not panic, only ever cut bytes
// out, and what it leaves must decode or fail cleanly.
func FuzzRecognise(f *testing.F) {
	b, err := Open(appFixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b.HeaderBytes())
	b.Close()
	f.Add([]byte{0x49, 0xaf, 0x64, 0x33, 0x40, 0x49, 0xaf, 0x64, 0x33, 0x00})
	f.Fuzz(func(t *testing.T, seg []byte) {
		r := recognise(seg)
		if len(r.clean) > len(seg) {
			t.Fatalf("recognise grew the segment from %d to %d bytes", len(seg), len(r.clean))
		}
		var h Header
		if stlv.Unmarshal(r.clean, TagBundleHeader, &h) == nil {
			h.Components = r.components
			_ = checkEntries(&h)
		}
	})
}
