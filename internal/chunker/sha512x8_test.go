package chunker

import (
	"bytes"
	"crypto/sha512"
	"fmt"
	"testing"
)

// x8Sums hashes msgs through sha512x8, starting each message in the first idle lane as soon as
// one is free, the way the block workers do, and returns the digests in order.
func x8Sums(t *testing.T, msgs [][]byte) [][]byte {
	t.Helper()
	sums := make([][]byte, len(msgs))
	var x sha512x8
	var lane [8]int
	next := 0
	for {
		for i := 0; i < 8 && next < len(msgs); i++ {
			if x.idle(i) {
				x.start(i, msgs[next])
				lane[i] = next
				next++
			}
		}
		if !x.active() {
			return sums
		}
		x.step(func(i int, sum []byte) { sums[lane[i]] = sum })
	}
}

// TestSHA512x8 checks the eight-lane SHA-512/256 against crypto/sha512 on lengths around every
// padding edge (111, 112, 127, 128 …) and on messages of mixed lengths sharing the lanes.
func TestSHA512x8(t *testing.T) {
	data := randomBytes(7, 1<<20)
	edges := []int{0, 1, 55, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 257, 1000, 16384, 65536 + 17}
	tests := []struct {
		name string
		lens []int
	}{
		{"edges", edges},
		{"one", []int{300}},
		{"mixed", []int{16384, 262144, 70000, 16385, 99999, 128, 0, 250000, 12345, 65536, 17, 200000, 33, 16384 * 3}},
		{"many", func() []int {
			l := make([]int, 100)
			for i := range l {
				l[i] = (i*7919 + 13) % 20000
			}
			return l
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := make([][]byte, len(tt.lens))
			off := 0
			for i, n := range tt.lens {
				off = (off + 4099) % (len(data) - n)
				msgs[i] = data[off : off+n]
			}
			for i, got := range x8Sums(t, msgs) {
				want := sha512.Sum512_256(msgs[i])
				if !bytes.Equal(got, want[:]) {
					t.Errorf("message %d (%d bytes): got %x, want %x", i, len(msgs[i]), got, want)
				}
			}
		})
	}
}

// TestCompressX8 checks the assembly against the portable compression, including lane masking.
func TestCompressX8(t *testing.T) {
	if !haveX8 {
		t.Skip("no AVX-512: compressX8 is the portable code")
	}
	data := randomBytes(8, 8*128*3)
	for _, mask := range []uint64{0xff, 0x01, 0x80, 0x5a} {
		t.Run(fmt.Sprintf("mask=%#x", mask), func(t *testing.T) {
			var a [8][8]uint64
			for w := range a {
				for i := range a[w] {
					a[w][i] = sha512_256IV[w] + uint64(i)
				}
			}
			b := a
			var in [8][]byte
			for i := range 8 {
				if mask&(1<<i) != 0 {
					in[i] = data[i*384 : (i+1)*384]
				}
			}
			compressX8(&a, &in, mask, 3)
			compressX8Generic(&b, &in, mask, 3)
			for i := range 8 {
				if mask&(1<<i) == 0 {
					continue
				}
				for w := range 8 {
					if a[w][i] != b[w][i] {
						t.Fatalf("lane %d word %d: %#x, want %#x", i, w, a[w][i], b[w][i])
					}
				}
			}
		})
	}
}

func BenchmarkSHA512x8(b *testing.B) {
	data := benchData()[:8<<20]
	msgs := make([][]byte, 0, 128)
	for off := 0; off+65536 <= len(data); off += 65536 {
		msgs = append(msgs, data[off:off+65536])
	}
	b.SetBytes(int64(len(msgs) * 65536))
	for b.Loop() {
		var x sha512x8
		next := 0
		for {
			for i := 0; i < 8 && next < len(msgs); i++ {
				if x.idle(i) {
					x.start(i, msgs[next])
					next++
				}
			}
			if !x.active() {
				break
			}
			x.step(func(int, []byte) {})
		}
	}
}
