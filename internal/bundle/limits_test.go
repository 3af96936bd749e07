package bundle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// entryPoints are the ways a caller gets a payload decoded or described; each must refuse a
// bundle that declares too much before decoding anything.
var entryPoints = []struct {
	name string
	run  func(ctx context.Context, b *Bundle, out *os.File) error
}{
	{"inspect", func(ctx context.Context, b *Bundle, _ *os.File) error {
		t, err := b.BlockTable(0)
		if err != nil {
			return err
		}
		if _, err := t.UniqueBlocks(ctx); err != nil {
			return err
		}
		_, err = b.CheckPayloadSize(ctx, 0, 0)
		return err
	}},
	{"verify", func(ctx context.Context, b *Bundle, _ *os.File) error {
		_, err := b.Verify(ctx, VerifyOptions{})
		return err
	}},
	{"extract", func(ctx context.Context, b *Bundle, out *os.File) error {
		_, err := b.ExtractPayload(ctx, 0, out)
		return err
	}},
	{"extract to a slot", func(ctx context.Context, b *Bundle, out *os.File) error {
		_, err := b.Extract(ctx, 0, out, ExtractOptions{MaxSize: 256 << 20})
		return err
	}},
}

// TestDedupBombRefused: 15 KiB of bundle that lists one stored 32 MiB block 2 Mi times (64 TiB)
// is refused by every entry point with both figures named, and nothing is written.
func TestDedupBombRefused(t *testing.T) {
	data := dedupBomb(t)
	if len(data) > 64<<10 {
		t.Fatalf("bomb is %d bytes, want a small one", len(data))
	}
	b, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.DeclaredSize(0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Max != 64<<40 || d.Blocks != 2<<20 || d.StoredBlocks != 1 {
		t.Fatalf("declared %+v, want up to 64 TiB in 2 Mi blocks, 1 stored", d)
	}
	for _, ep := range entryPoints {
		t.Run(ep.name, func(t *testing.T) {
			out, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			// The deadline only keeps today's unbounded decoding from hanging the test run.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			err = ep.run(ctx, b, out)
			if !errors.Is(err, ErrPayloadTooLarge) {
				t.Fatalf("error %v, want ErrPayloadTooLarge", err)
			}
			limit := DefaultMaxPayloadSize
			if ep.name == "extract to a slot" {
				limit = 256 << 20
			}
			for _, want := range []string{strconv.FormatInt(64<<40, 10), "64.0 TiB", strconv.FormatInt(limit, 10)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
			if fi, _ := out.Stat(); fi.Size() != 0 {
				t.Errorf("%d bytes were written before the refusal", fi.Size())
			}
		})
	}
}

// TestHashBombBounded: a block hash array that xz expands to 64 MiB is never decompressed into
// memory, whichever entry point reads it and whatever the limit.
func TestHashBombBounded(t *testing.T) {
	data := hashBomb(t, 64<<20)
	for _, ep := range entryPoints {
		t.Run(ep.name, func(t *testing.T) {
			b, err := NewReader(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			out, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err = ep.run(context.Background(), b, out)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("hostile bundle accepted")
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("%s allocated %d MiB for a %d KiB bundle (error: %v)", ep.name, alloc>>20, len(data)>>10, err)
			}
		})
	}
}

// TestBlockTableRejects covers the bounds BlockTable puts on what the header declares.
func TestBlockTableRejects(t *testing.T) {
	comp := "xz"
	h := SHA512_256.Sum([]byte("x"))
	tests := []struct {
		name string
		be   *BlockEncodingHeader
		data []byte
		want string
	}{
		{"block larger than MaxBlockSize", &BlockEncodingHeader{Chunker: "casync-16384", HashAlgorithm: "sha512-256", BlockHashes: h, BlockSizes: ptr(sizesOf(1))}, []byte("x"), "at most"},
		{"stored block of size 0", &BlockEncodingHeader{Chunker: "casync-1", HashAlgorithm: "sha512-256", Deduplicated: true, BlockHashes: append(h, h...), BlockSizes: ptr(sizesOf(2, 0))}, []byte("xx"), "size 0"},
		{"more sizes than the data holds", &BlockEncodingHeader{Chunker: "casync-1", HashAlgorithm: "sha512-256", Compression: &comp, BlockHashes: xzOf(t, bytes.Repeat(h, 1000), 0), BlockSizes: ptr(xzOf(t, make([]byte, 4000), 0))}, make([]byte, 100), "block sizes"},
		{"fewer stored blocks than blocks without dedup", &BlockEncodingHeader{Chunker: "fixed-1", HashAlgorithm: "sha512-256", BlockHashes: append(h, h...)}, []byte("x"), "stored blocks for 2 blocks"},
		{"hash array not an xz stream", &BlockEncodingHeader{Chunker: "casync-1", HashAlgorithm: "sha512-256", Compression: &comp, BlockHashes: h, BlockSizes: ptr(xzOf(t, sizesOf(1), 0))}, []byte("x"), "block hashes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := craftBundle(t, tt.be, tt.data, nil)
			b, err := NewReader(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.BlockTable(0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if _, err := b.Verify(context.Background(), VerifyOptions{}); err == nil {
				t.Fatal("Verify accepted it")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestXZIndexSize checks the index reader against real streams.
func TestXZIndexSize(t *testing.T) {
	for _, n := range []int{0, 1, 1000, 300 << 10} {
		data := bytes.Repeat([]byte("otabake "), n/8+1)[:n]
		stream := xzOf(t, data, 0)
		got, err := xzUncompressedSize(stream)
		if err != nil || got != int64(n) {
			t.Errorf("n=%d: got %d, %v", n, got, err)
		}
		r, err := newXZStreamReader(stream, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		back, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(back, data) {
			t.Errorf("n=%d: stream reader gave %d bytes, %v", n, len(back), err)
		}
		if _, err := xzUncompressedSize(append(bytes.Clone(stream), 0, 0, 0, 0)); err == nil {
			t.Errorf("n=%d: padding after the stream accepted", n)
		}
	}
}
