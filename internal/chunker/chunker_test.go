package chunker

import (
	"bytes"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// refLengths is a deliberately naive transcription of casync's streaming chunker (ca_chunker_scan
// in casync's chunker.c, Rugix's CasyncChunker): a ring buffer window, an explicit rotate of the
// leaving byte and a real modulo. The fast path must agree with it byte for byte.
func refLengths(data []byte, spec Spec) []int {
	var lens []int
	if spec.Kind == Fixed {
		for len(data) > 0 {
			n := min(len(data), spec.KiB*1024)
			lens = append(lens, n)
			data = data[n:]
		}
		return lens
	}
	lo, hi := spec.MinSize(), spec.MaxSize()
	d := discriminator(lo, spec.AvgSize(), hi)
	var window [windowSize]byte
	var h uint32
	size := 0
	for _, b := range data {
		if size < windowSize {
			window[size] = b
			size++
			if size < windowSize {
				continue
			}
			h = 0
			for j, w := range window {
				h ^= bits.RotateLeft32(table[w], windowSize-1-j)
			}
		} else {
			idx := size % windowSize
			h = bits.RotateLeft32(h, 1) ^ bits.RotateLeft32(table[window[idx]], windowSize) ^ table[b]
			window[idx] = b
			size++
		}
		if size >= hi || (size >= lo && h%d == d-1) {
			lens = append(lens, size)
			size = 0
		}
	}
	if size > 0 {
		lens = append(lens, size)
	}
	return lens
}

// chunkLengths runs the streaming chunker and checks that the blocks tile the input.
func chunkLengths(t testing.TB, spec Spec, r io.Reader, want []byte) []int {
	t.Helper()
	c := New(spec, r)
	var lens []int
	var off int64
	for {
		b, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: Next after %d blocks: %v", spec, len(lens), err)
		}
		if b.Offset != off {
			t.Fatalf("%s: block %d at offset %d, want %d", spec, len(lens), b.Offset, off)
		}
		if len(b.Data) == 0 {
			t.Fatalf("%s: block %d is empty", spec, len(lens))
		}
		if !bytes.Equal(b.Data, want[off:off+int64(len(b.Data))]) {
			t.Fatalf("%s: block %d at offset %d does not match the input", spec, len(lens), off)
		}
		off += int64(len(b.Data))
		lens = append(lens, len(b.Data))
	}
	if off != int64(len(want)) {
		t.Fatalf("%s: blocks cover %d bytes, want %d", spec, off, len(want))
	}
	if _, err := c.Next(); err != io.EOF {
		t.Fatalf("%s: Next after EOF = %v, want io.EOF again", spec, err)
	}
	return lens
}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// sparseBytes is mostly zeros: runs of random lengths (up to twice a casync-64 minimum block)
// separated by single random bytes or short random stretches.
func sparseBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i < n; {
		i += rng.IntN(32 << 10)
		for k := rng.IntN(3) * rng.IntN(200); k >= 0 && i < n; k-- {
			b[i] = byte(1 + rng.IntN(255))
			i++
		}
	}
	return b
}

// textBytes is low-entropy, repetitive input, the opposite of random data.
func textBytes(seed uint64, n int) []byte {
	words := strings.Fields("the quick brown fox jumps over lazy dog update bundle block slot rugix casync chunk hash " +
		"system boot partition image kernel device firmware release signature\n")
	rng := rand.New(rand.NewPCG(seed, 7))
	var buf bytes.Buffer
	for buf.Len() < n {
		buf.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(12) == 0 {
			buf.WriteByte('\n')
		} else {
			buf.WriteByte(' ')
		}
	}
	return buf.Bytes()[:n]
}

// randomReads returns each Read with a random length in 1..limit, to prove cuts do not depend on
// how the input arrives.
type randomReads struct {
	r     io.Reader
	rng   *rand.Rand
	limit int
}

func (r *randomReads) Read(p []byte) (int, error) {
	if n := 1 + r.rng.IntN(r.limit); n < len(p) {
		p = p[:n]
	}
	return r.r.Read(p)
}

func TestChunkerMatchesReference(t *testing.T) {
	inputs := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{42}},
		{"window", randomBytes(1, windowSize)},
		{"zeros", make([]byte, 300_000)},
		{"random", randomBytes(2, 700_000)},
		{"text", textBytes(3, 500_000)},
		// Runs of zeros of every length around the window and the minimum size, which
		// casyncCut skips, broken by single bytes and by random data.
		{"sparse", sparseBytes(4, 2_000_000)},
	}
	specs := []Spec{{Casync, 1}, {Casync, 4}, {Casync, 16}, {Casync, 64}, {Fixed, 1}, {Fixed, 7}, {Fixed, 64}}
	for _, in := range inputs {
		for _, spec := range specs {
			t.Run(in.name+"/"+spec.String(), func(t *testing.T) {
				want := refLengths(in.data, spec)
				if got := chunkLengths(t, spec, bytes.NewReader(in.data), in.data); !slices.Equal(got, want) {
					t.Fatalf("lengths = %v, want %v", got, want)
				}
			})
		}
	}
}

// Casync cuts must not depend on read sizes: short reads of random lengths, one byte at a time,
// half reads, and data arriving together with io.EOF all give the same blocks.
func TestChunkerShortReads(t *testing.T) {
	data := slices.Concat(randomBytes(10, 400_000), make([]byte, 100_000), textBytes(11, 200_000))
	readers := []struct {
		name string
		make func() io.Reader
	}{
		{"random 1..100", func() io.Reader {
			return &randomReads{bytes.NewReader(data), rand.New(rand.NewPCG(1, 1)), 100}
		}},
		{"random 1..70000", func() io.Reader {
			return &randomReads{bytes.NewReader(data), rand.New(rand.NewPCG(2, 2)), 70000}
		}},
		{"one byte", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) }},
		{"half", func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
	}
	for _, spec := range []Spec{{Casync, 4}, {Casync, 16}, {Fixed, 3}} {
		want := refLengths(data, spec)
		for _, rd := range readers {
			t.Run(spec.String()+"/"+rd.name, func(t *testing.T) {
				if got := chunkLengths(t, spec, rd.make(), data); !slices.Equal(got, want) {
					t.Fatalf("lengths = %v, want %v", got, want)
				}
			})
		}
	}
}

func TestFixedEdges(t *testing.T) {
	const kib = 1024
	tests := []struct {
		n    int
		want []int
	}{
		{0, nil},
		{1, []int{1}},
		{kib - 1, []int{kib - 1}},
		{kib, []int{kib}},
		{kib + 1, []int{kib, 1}},
		{3 * kib, []int{kib, kib, kib}},
		{3*kib + 5, []int{kib, kib, kib, 5}},
	}
	for _, tt := range tests {
		data := randomBytes(uint64(tt.n), tt.n)
		if got := chunkLengths(t, Spec{Fixed, 1}, bytes.NewReader(data), data); !slices.Equal(got, tt.want) {
			t.Errorf("fixed-1 over %d bytes: lengths %v, want %v", tt.n, got, tt.want)
		}
	}
}

// Every casync block but the last lies within [min, max]; zeros never satisfy the cut condition
// (for these sizes), so they come out as maximum-size blocks, and tiny inputs are one block.
func TestCasyncMinMax(t *testing.T) {
	for _, spec := range []Spec{{Casync, 1}, {Casync, 8}, {Casync, 64}} {
		t.Run(spec.String(), func(t *testing.T) {
			data := randomBytes(uint64(spec.KiB), 40*spec.AvgSize())
			lens := chunkLengths(t, spec, bytes.NewReader(data), data)
			if len(lens) < 10 {
				t.Fatalf("only %d blocks over %d bytes", len(lens), len(data))
			}
			sawSmall := false
			for i, n := range lens[:len(lens)-1] {
				if n < spec.MinSize() || n > spec.MaxSize() {
					t.Fatalf("block %d has %d bytes, outside [%d, %d]", i, n, spec.MinSize(), spec.MaxSize())
				}
				sawSmall = sawSmall || n < spec.AvgSize()
			}
			if !sawSmall {
				t.Errorf("no block below the average size: content-defined cuts are not happening")
			}

			zeros := make([]byte, 3*spec.MaxSize()+17)
			lens = chunkLengths(t, spec, bytes.NewReader(zeros), zeros)
			if want := []int{spec.MaxSize(), spec.MaxSize(), spec.MaxSize(), 17}; !slices.Equal(lens, want) {
				t.Errorf("zeros: lengths %v, want %v", lens, want)
			}

			for _, n := range []int{1, spec.MinSize() - 1, spec.MinSize(), spec.MinSize() + 1} {
				small := randomBytes(uint64(n), n)
				if lens := chunkLengths(t, spec, bytes.NewReader(small), small); !slices.Equal(lens, []int{n}) {
					t.Errorf("%d bytes: lengths %v, want one block", n, lens)
				}
			}
		})
	}
}

// A block cut at exactly min bytes is the earliest the hash may fire; find such an input by
// planting windows until the reference chunker cuts at min, then require the same of ours.
func TestCasyncCutAtMin(t *testing.T) {
	spec := Spec{Casync, 1}
	for seed := uint64(0); seed < 100_000; seed++ {
		data := randomBytes(seed, 2*spec.MaxSize())
		if want := refLengths(data, spec); want[0] == spec.MinSize() {
			if got := chunkLengths(t, spec, bytes.NewReader(data), data); !slices.Equal(got, want) {
				t.Fatalf("seed %d: lengths %v, want %v", seed, got, want)
			}
			return
		}
	}
	t.Fatal("no input with a cut at min found")
}

func TestChunkerErrors(t *testing.T) {
	boom := errors.New("boom")
	t.Run("invalid spec", func(t *testing.T) {
		_, err := New(Spec{Casync, 0}, strings.NewReader("x")).Next()
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Fatalf("Next = %v, want an out-of-range error", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		data := randomBytes(5, 100_000)
		c := New(Spec{Casync, 4}, io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)))
		var err error
		var n int
		for err == nil {
			var b Block
			b, err = c.Next()
			n += len(b.Data)
		}
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "offset 100000") {
			t.Fatalf("err = %v, want boom at offset 100000", err)
		}
		if n > len(data) {
			t.Fatalf("returned %d bytes, more than the %d read", n, len(data))
		}
		if _, again := c.Next(); again != err {
			t.Fatalf("Next after error = %v, want the same error", again)
		}
	})
	t.Run("no progress", func(t *testing.T) {
		_, err := New(Spec{Fixed, 1}, zeroReader{}).Next()
		if !errors.Is(err, io.ErrNoProgress) {
			t.Fatalf("Next = %v, want io.ErrNoProgress", err)
		}
	})
}

// zeroReader returns (0, nil) forever.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// Next must not allocate: it runs once per block over whole disk images.
func TestNextDoesNotAllocate(t *testing.T) {
	data := randomBytes(9, 2<<20)
	r := bytes.NewReader(data)
	c := New(Spec{Casync, 16}, r)
	allocs := testing.AllocsPerRun(1, func() {
		r.Reset(data)
		c.r, c.start, c.end, c.off, c.eof, c.err = r, 0, 0, 0, false, nil
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("chunking 2 MiB allocated %v times", allocs)
	}
}

// FuzzChunker checks the fast chunker against the reference on arbitrary input fed in arbitrary
// read sizes.
func FuzzChunker(f *testing.F) {
	f.Add([]byte("hello"), uint64(1), uint16(5000))
	f.Add(make([]byte, 9000), uint64(2), uint16(1))
	f.Add(randomBytes(3, 20000), uint64(3), uint16(4097))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, limit uint16) {
		if len(data) > 64<<10 {
			return
		}
		for _, spec := range []Spec{{Casync, 1}, {Fixed, 1}} {
			r := &randomReads{bytes.NewReader(data), rand.New(rand.NewPCG(seed, seed)), int(limit) + 1}
			if got, want := chunkLengths(t, spec, r, data), refLengths(data, spec); !slices.Equal(got, want) {
				t.Fatalf("%s: lengths %v, want %v", spec, got, want)
			}
		}
	})
}

// TestCutParallel checks that cutting in parallel parts gives exactly the sequential boundaries,
// both where the parts resynchronise (random data, text) and where they never do (zeros: every
// block has the maximum size, and the parts start off that grid).
func TestCutParallel(t *testing.T) {
	inputs := []struct {
		name string
		data []byte
	}{
		{"random", randomBytes(60, 9<<20+777)},
		{"zeros", make([]byte, 9<<20+333)},
		{"text", textBytes(61, 7<<20)},
		{"mixed", slices.Concat(randomBytes(62, 3<<20), make([]byte, 3<<20+5), textBytes(63, 3<<20))},
		{"sparse", sparseBytes(64, 9<<20)},
	}
	for _, in := range inputs {
		for _, spec := range []Spec{{Casync, 16}, {Casync, 64}, {Casync, 256}} {
			for _, parts := range []int{2, 3, 4} {
				for _, eof := range []bool{true, false} {
					c, err := newCutter(spec)
					if err != nil {
						t.Fatal(err)
					}
					const start = 1000
					want := c.cutAll(in.data, start, eof, 1, nil)
					got := c.cutParallel(in.data, start, eof, parts, nil)
					if !slices.Equal(got, want) {
						t.Errorf("%s %s parts=%d eof=%t: %d blocks, want %d (first difference at %d)", in.name, spec, parts, eof, len(got), len(want), firstDiff(got, want))
					}
				}
			}
		}
	}
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestZeroRunEdges puts every byte value right after a run of zeros of lengths around where
// casyncCut starts scanning, so the first window holding a nonzero byte, which the zero skip
// jumps to, is tested for a cut with every possible content.
func TestZeroRunEdges(t *testing.T) {
	for _, spec := range []Spec{{Casync, 1}} {
		min := spec.MinSize()
		cuts := 0
		for _, zeros := range []int{min - windowSize - 1, min - windowSize, min - windowSize + 1, min - 1, min, min + 1, 3*spec.MaxSize() + 5} {
			for b := 1; b < 256; b++ {
				data := slices.Concat(make([]byte, zeros), []byte{byte(b)}, randomBytes(uint64(b), spec.MaxSize()))
				want := refLengths(data, spec)
				if got := chunkLengths(t, spec, bytes.NewReader(data), data); !slices.Equal(got, want) {
					t.Fatalf("%s, %d zeros then %#x: lengths = %v, want %v", spec, zeros, b, got, want)
				}
				end := 0
				for _, n := range want {
					if end += n; end == zeros+1 {
						cuts++
					}
				}
			}
		}
		t.Logf("%s: %d cases cut right after the zeros", spec, cuts)
	}
}
