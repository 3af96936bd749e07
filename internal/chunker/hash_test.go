package chunker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// sequentialSums is the obvious single-threaded equivalent of HashBlocks.
func sequentialSums(t testing.TB, spec Spec, data []byte, newHash func() hash.Hash) []BlockSum {
	t.Helper()
	c := New(spec, bytes.NewReader(data))
	var sums []BlockSum
	for {
		b, err := c.Next()
		if err == io.EOF {
			return sums
		}
		if err != nil {
			t.Fatal(err)
		}
		h := newHash()
		h.Write(b.Data)
		sums = append(sums, BlockSum{Index: len(sums), Offset: b.Offset, Size: int64(len(b.Data)), Sum: h.Sum(nil)})
	}
}

func collect(ctx context.Context, spec Spec, r io.Reader, newHash func() hash.Hash, workers int) ([]BlockSum, error) {
	var sums []BlockSum
	err := HashBlocks(ctx, spec, r, newHash, workers, func(b BlockSum) error {
		sums = append(sums, b)
		return nil
	})
	return sums, err
}

func TestHashBlocksMatchesSequential(t *testing.T) {
	// Longer than several segments, so blocks straddle segment ends and segments are recycled;
	// segments of 5 MiB are still cut in two parallel parts.
	defer func(n int) { segmentBody = n }(segmentBody)
	segmentBody = 5 << 20
	// Zeros with one byte set make blocks of the maximum size that are almost all zeros, which
	// the zero-block shortcut must not take for zeros.
	almostZero := make([]byte, 3<<20)
	almostZero[1<<20+12345] = 1
	data := slices.Concat(randomBytes(20, 9<<20), make([]byte, 3<<20), textBytes(21, 2<<20), almostZero, randomBytes(22, 12345))
	tests := []struct {
		spec    Spec
		workers int
		hash    func() hash.Hash
		reader  func() io.Reader
		x8      bool // HashBlocksSHA512_256
	}{
		{Spec{Casync, 64}, 0, sha512.New512_256, nil, false},
		{Spec{Casync, 64}, 1, sha512.New512_256, nil, false},
		{Spec{Casync, 16}, 3, sha256.New, nil, false},
		{Spec{Casync, 256}, 2, sha512.New, nil, false},
		{Spec{Fixed, 64}, 2, sha512.New512_256, nil, false},
		{Spec{Fixed, 1000}, 2, sha512.New512_256, nil, false},
		{Spec{Casync, 64}, 2, sha512.New512_256, func() io.Reader {
			return &randomReads{bytes.NewReader(data), rand.New(rand.NewPCG(5, 5)), 300_000}
		}, false},
		// A file, as the commands read it.
		{Spec{Casync, 64}, 2, sha512.New512_256, func() io.Reader { return tempFile(t, data) }, false},
		{Spec{Casync, 64}, 0, sha512.New512_256, nil, true},
		{Spec{Casync, 16}, 3, sha512.New512_256, func() io.Reader { return tempFile(t, data) }, true},
		{Spec{Fixed, 64}, 1, sha512.New512_256, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.spec.String(), func(t *testing.T) {
			want := sequentialSums(t, tt.spec, data, tt.hash)
			r := io.Reader(bytes.NewReader(data))
			if tt.reader != nil {
				r = tt.reader()
			}
			var got []BlockSum
			var err error
			if tt.x8 {
				err = HashBlocksSHA512_256(context.Background(), tt.spec, r, tt.workers, func(b BlockSum) error {
					got = append(got, b)
					return nil
				})
			} else {
				got, err = collect(context.Background(), tt.spec, r, tt.hash, tt.workers)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d blocks, want %d", len(got), len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				if g.Index != w.Index || g.Offset != w.Offset || g.Size != w.Size || !bytes.Equal(g.Sum, w.Sum) {
					t.Fatalf("block %d = {%d %d %d %x}, want {%d %d %d %x}", i, g.Index, g.Offset, g.Size, g.Sum, w.Index, w.Offset, w.Size, w.Sum)
				}
			}
		})
	}
}

func TestZeroBlocks(t *testing.T) {
	const size = 1000
	z := newZeroBlocks(size, sha512.New512_256)
	want := sha512.Sum512_256(make([]byte, size))
	if got := z.digest(make([]byte, size)); !bytes.Equal(got, want[:]) {
		t.Fatalf("digest of %d zeros = %x, want %x", size, got, want)
	}
	for name, b := range map[string][]byte{
		"shorter":     make([]byte, size-1),
		"longer":      make([]byte, size+1),
		"first byte":  append([]byte{1}, make([]byte, size-1)...),
		"last byte":   append(make([]byte, size-1), 1),
		"middle byte": slices.Concat(make([]byte, 500), []byte{1}, make([]byte, size-501)),
	} {
		if got := z.digest(b); got != nil {
			t.Errorf("%s: digest = %x, want nil (not %d zeros)", name, got, size)
		}
	}
	// The caller owns each digest.
	a := z.digest(make([]byte, size))
	a[0] ^= 0xff
	if got := z.digest(make([]byte, size)); !bytes.Equal(got, want[:]) {
		t.Fatalf("digest changed after a caller modified an earlier one: %x", got)
	}
}

// tempFile writes data to a file and returns it opened for reading.
func tempFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestHashBlocksEmpty(t *testing.T) {
	sums, err := collect(context.Background(), Spec{Casync, 64}, strings.NewReader(""), sha512.New512_256, 2)
	if err != nil || len(sums) != 0 {
		t.Fatalf("empty input: %d blocks, %v; want none", len(sums), err)
	}
}

func TestHashBlocksErrors(t *testing.T) {
	data := randomBytes(30, 6<<20)
	boom := errors.New("boom")
	t.Run("invalid spec", func(t *testing.T) {
		if _, err := collect(context.Background(), Spec{Fixed, 0}, bytes.NewReader(data), sha256.New, 2); err == nil {
			t.Fatal("no error for fixed-0")
		}
	})
	t.Run("read error", func(t *testing.T) {
		r := io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom))
		sums, err := collect(context.Background(), Spec{Casync, 16}, r, sha256.New, 2)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "offset 6291456") {
			t.Fatalf("err = %v, want boom at offset 6291456", err)
		}
		var n int64
		for _, s := range sums {
			n += s.Size
		}
		if n > int64(len(data)) {
			t.Fatalf("delivered %d bytes of blocks, more than the %d read", n, len(data))
		}
	})
	t.Run("callback error stops early", func(t *testing.T) {
		calls := 0
		err := HashBlocks(context.Background(), Spec{Casync, 4}, bytes.NewReader(data), sha256.New, 2, func(b BlockSum) error {
			calls++
			if b.Index == 3 {
				return boom
			}
			return nil
		})
		if err != boom || calls != 4 {
			t.Fatalf("err = %v after %d calls, want boom after 4", err, calls)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := HashBlocks(ctx, Spec{Casync, 4}, bytes.NewReader(data), sha256.New, 2, func(b BlockSum) error {
			if calls++; calls == 2 {
				cancel()
			}
			if b.Sum == nil {
				t.Errorf("block %d delivered without a sum", b.Index)
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls != 2 {
			t.Fatalf("err = %v after %d calls, want context.Canceled after 2", err, calls)
		}
	})
}

// HashBlocks must not leave goroutines behind, whichever way it ends.
func TestHashBlocksNoLeak(t *testing.T) {
	data := randomBytes(31, 5<<20)
	before := runtime.NumGoroutine()
	for range 5 {
		collect(context.Background(), Spec{Casync, 64}, bytes.NewReader(data), sha256.New, 4)
		HashBlocks(context.Background(), Spec{Casync, 64}, bytes.NewReader(data), sha256.New, 4, func(BlockSum) error { return io.ErrUnexpectedEOF })
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after, %d before", n, before)
	}
}
