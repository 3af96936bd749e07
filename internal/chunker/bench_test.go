package chunker

import (
	"bytes"
	"context"
	"crypto/sha512"
	"io"
	"os"
	"sync"
	"testing"
)

var benchData = sync.OnceValue(func() []byte { return randomBytes(99, 64<<20) })

// BenchmarkCasync64 measures the scan alone: casync-64 over 64 MiB of random data, read from
// memory.
func BenchmarkCasync64(b *testing.B) {
	data := benchData()
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		r.Reset(data)
		c := New(Spec{Casync, 64}, r)
		for {
			if _, err := c.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkHashBlocks measures the whole pipeline as `bundle blocks` uses it: casync-64 and
// sha512-256 on every core.
func BenchmarkHashBlocks(b *testing.B) {
	data := benchData()
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		r.Reset(data)
		if err := HashBlocks(context.Background(), Spec{Casync, 64}, r, sha512.New512_256, 0, func(BlockSum) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashBlocksSHA512_256 is BenchmarkHashBlocks with the eight-lane SHA-512/256.
func BenchmarkHashBlocksSHA512_256(b *testing.B) {
	data := benchData()
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		r.Reset(data)
		if err := HashBlocksSHA512_256(context.Background(), Spec{Casync, 64}, r, 0, func(BlockSum) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashBlocksFile runs HashBlocks over the file named by CHUNKER_BENCH_FILE, to compare
// with `casync digest` on the same file (scripts/bench/chunker.sh).
func BenchmarkHashBlocksFile(b *testing.B) {
	path := os.Getenv("CHUNKER_BENCH_FILE")
	if path == "" {
		b.Skip("set CHUNKER_BENCH_FILE to a file to hash")
	}
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(info.Size())
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		err = HashBlocksSHA512_256(context.Background(), Spec{Casync, 64}, f, 0, func(BlockSum) error { return nil })
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}
