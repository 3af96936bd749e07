package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testData returns n bytes that chunk interestingly: random runs, text and repeated blocks.
func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n)
	rep := make([]byte, 70000)
	for i := range rep {
		rep[i] = byte(r.IntN(256))
	}
	for len(b) < n {
		switch r.IntN(4) {
		case 0:
			b = append(b, rep...)
		case 1:
			b = append(b, make([]byte, 100000)...)
		case 2:
			b = append(b, bytes.Repeat([]byte("otabake writes rugix bundles\n"), 3000)...)
		default:
			chunk := make([]byte, 50000+r.IntN(100000))
			for i := range chunk {
				chunk[i] = byte(r.Uint32())
			}
			b = append(b, chunk...)
		}
	}
	return b[:n]
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func level(n int) *int { return &n }

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	data := testData(3<<20, 1)
	small := []byte("#!/bin/sh\necho hello\n")
	path := writeFile(t, dir, "system.img", data)
	encodings := map[string]*BlockEncoding{
		"raw":              nil,
		"casync":           {Chunker: "casync-16"},
		"casync-dedup":     {Chunker: "casync-16", Deduplicate: true},
		"casync-dedup-xz":  {Chunker: "casync-16", Deduplicate: true, Compression: &Compression{Level: level(0)}},
		"fixed":            {Chunker: "fixed-64"},
		"fixed-dedup-xz":   {Chunker: "fixed-64", Deduplicate: true, HashAlgorithm: SHA256, Compression: &Compression{Level: level(1)}},
		"fixed-sha512":     {Chunker: "fixed-4", HashAlgorithm: SHA512},
		"casync-xz-sha512": {Chunker: "casync-64", HashAlgorithm: SHA512, Compression: &Compression{Level: level(0)}},
	}
	for name, enc := range encodings {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "b.rugixb")
			spec := Spec{Payloads: []Payload{
				{Slot: "system", Path: path, BlockEncoding: enc},
				{Filename: "script.sh", Handler: []string{"/bin/sh", "-"}, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(small)), nil }},
			}}
			res, err := Create(context.Background(), out, spec, CreateOptions{Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			b, err := Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Hash() != res.Hash || !strings.HasPrefix(res.Hash, "sha512-256:") {
				t.Fatalf("hash %s, Create said %s", b.Hash(), res.Hash)
			}
			if h, err := HashFile(out); err != nil || h != res.Hash {
				t.Fatalf("HashFile = %s, %v", h, err)
			}
			fi, _ := os.Stat(out)
			if fi.Size() != res.Size {
				t.Fatalf("size %d, Create said %d", fi.Size(), res.Size)
			}
			if _, err := b.Verify(context.Background(), VerifyOptions{BundleHash: res.Hash}); err != nil {
				t.Fatal(err)
			}
			for i, want := range [][]byte{data, small} {
				f, err := os.Create(filepath.Join(t.TempDir(), "out"))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.ExtractPayload(context.Background(), i, f); err != nil {
					t.Fatal(err)
				}
				f.Close()
				got, _ := os.ReadFile(f.Name())
				if sha256.Sum256(got) != sha256.Sum256(want) {
					t.Fatalf("payload %d: extracted %d bytes differ from %d input bytes", i, len(got), len(want))
				}
				var buf bytes.Buffer // not an io.ReaderAt: repeats come from the bundle
				if _, err := b.ExtractPayload(context.Background(), i, &buf); err != nil || !bytes.Equal(buf.Bytes(), want) {
					t.Fatalf("payload %d into a buffer: %v", i, err)
				}
			}
			if enc != nil && enc.Deduplicate {
				if res.Payloads[0].StoredBlocks >= res.Payloads[0].Blocks {
					t.Fatalf("dedup stored %d of %d blocks", res.Payloads[0].StoredBlocks, res.Payloads[0].Blocks)
				}
			}
		})
	}
}

// TestDeterministic checks that the number of workers never changes the bytes written.
func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "p.img", testData(2<<20, 11))
	var first []byte
	for _, workers := range []int{1, 2, 5} {
		out := filepath.Join(dir, "b.rugixb")
		spec := Spec{Payloads: []Payload{{Slot: "system", Path: path, BlockEncoding: &BlockEncoding{Chunker: "casync-4", Deduplicate: true, Compression: &Compression{Level: level(0)}}}}}
		if _, err := Create(context.Background(), out, spec, CreateOptions{Workers: workers}); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(out)
		if first == nil {
			first = got
		} else if !bytes.Equal(got, first) {
			t.Fatalf("%d workers wrote different bytes", workers)
		}
	}
}
