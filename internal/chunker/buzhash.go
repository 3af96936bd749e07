package chunker

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

// table is casync's Buzhash byte table (specs/rugix-bundle.md §3.1), indexed by byte value.
var table = [256]uint32{
	0x458be752, 0xc10748cc, 0xfbbcdbb8, 0x6ded5b68, 0xb10a82b5, 0x20d75648, 0xdfc5665f, 0xa8428801,
	0x7ebf5191, 0x841135c7, 0x65cc53b3, 0x280a597c, 0x16f60255, 0xc78cbc3e, 0x294415f5, 0xb938d494,
	0xec85c4e6, 0xb7d33edc, 0xe549b544, 0xfdeda5aa, 0x882bf287, 0x3116737c, 0x05569956, 0xe8cc1f68,
	0x0806ac5e, 0x22a14443, 0x15297e10, 0x50d090e7, 0x4ba60f6f, 0xefd9f1a7, 0x5c5c885c, 0x82482f93,
	0x9bfd7c64, 0x0b3e7276, 0xf2688e77, 0x8fad8abc, 0xb0509568, 0xf1ada29f, 0xa53efdfe, 0xcb2b1d00,
	0xf2a9e986, 0x6463432b, 0x95094051, 0x5a223ad2, 0x9be8401b, 0x61e579cb, 0x1a556a14, 0x5840fdc2,
	0x9261ddf6, 0xcde002bb, 0x52432bb0, 0xbf17373e, 0x7b7c222f, 0x2955ed16, 0x9f10ca59, 0xe840c4c9,
	0xccabd806, 0x14543f34, 0x1462417a, 0x0d4a1f9c, 0x087ed925, 0xd7f8f24c, 0x7338c425, 0xcf86c8f5,
	0xb19165cd, 0x9891c393, 0x325384ac, 0x0308459d, 0x86141d7e, 0xc922116a, 0xe2ffa6b6, 0x53f52aed,
	0x2cd86197, 0xf5b9f498, 0xbf319c8f, 0xe0411fae, 0x977eb18c, 0xd8770976, 0x9833466a, 0xc674df7f,
	0x8c297d45, 0x8ca48d26, 0xc49ed8e2, 0x7344f874, 0x556f79c7, 0x6b25eaed, 0xa03e2b42, 0xf68f66a4,
	0x8e8b09a2, 0xf2e0e62a, 0x0d3a9806, 0x9729e493, 0x8c72b0fc, 0x160b94f6, 0x450e4d3d, 0x7a320e85,
	0xbef8f0e1, 0x21d73653, 0x4e3d977a, 0x1e7b3929, 0x1cc6c719, 0xbe478d53, 0x8d752809, 0xe6d8c2c6,
	0x275f0892, 0xc8acc273, 0x4cc21580, 0xecc4a617, 0xf5f7be70, 0xe795248a, 0x375a2fe9, 0x425570b6,
	0x8898dcf8, 0xdc2d97c4, 0x0106114b, 0x364dc22f, 0x1e0cad1f, 0xbe63803c, 0x5f69fac2, 0x4d5afa6f,
	0x1bc0dfb5, 0xfb273589, 0x0ea47f7b, 0x3c1c2b50, 0x21b2a932, 0x6b1223fd, 0x2fe706a8, 0xf9bd6ce2,
	0xa268e64e, 0xe987f486, 0x3eacf563, 0x1ca2018c, 0x65e18228, 0x2207360a, 0x57cf1715, 0x34c37d2b,
	0x1f8f3cde, 0x93b657cf, 0x31a019fd, 0xe69eb729, 0x8bca7b9b, 0x4c9d5bed, 0x277ebeaf, 0xe0d8f8ae,
	0xd150821c, 0x31381871, 0xafc3f1b0, 0x927db328, 0xe95effac, 0x305a47bd, 0x426ba35b, 0x1233af3f,
	0x686a5b83, 0x50e072e5, 0xd9d3bb2a, 0x8befc475, 0x487f0de6, 0xc88dff89, 0xbd664d5e, 0x971b5d18,
	0x63b14847, 0xd7d3c1ce, 0x7f583cf3, 0x72cbcb09, 0xc0d0a81c, 0x7fa3429b, 0xe9158a1b, 0x225ea19a,
	0xd8ca9ea3, 0xc763b282, 0xbb0c6341, 0x020b8293, 0xd4cd299d, 0x58cfa7f8, 0x91b4ee53, 0x37e4d140,
	0x95ec764c, 0x30f76b06, 0x5ee68d24, 0x679c8661, 0xa41979c2, 0xf2b61284, 0x4fac1475, 0x0adb49f9,
	0x19727a23, 0x15a7e374, 0xc43a18d5, 0x3fb1aa73, 0x342fc615, 0x924c0793, 0xbee2d7f0, 0x8a279de9,
	0x4aa2d70c, 0xe24dd37f, 0xbe862c0b, 0x177c22c2, 0x5388e5ee, 0xcd8a7510, 0xf901b4fd, 0xdbc13dbc,
	0x6c0bae5b, 0x64efe8c7, 0x48b02079, 0x80331a49, 0xca3d8ae6, 0xf3546190, 0xfed7108b, 0xc49b941b,
	0x32baf4a9, 0xeb833a4a, 0x88a3f1a5, 0x3a91ce0a, 0x3cc27da1, 0x7112e684, 0x4a3096b1, 0x3794574c,
	0xa3c8b6f3, 0x1d213941, 0x6e0a2e00, 0x233479f1, 0x0f4cd82f, 0x6093edd2, 0x5d7d209e, 0x464fe319,
	0xd4dcac9e, 0x0db845cb, 0xfb5e4bc3, 0xe0256ce1, 0x09fb4ed1, 0x0914be1e, 0xa5bdb2c3, 0xc6eb57bb,
	0x30320350, 0x3f397e91, 0xa67791bc, 0x86bc0e2c, 0xefa0a7e2, 0xe9ff7543, 0xe733612c, 0xd185897b,
	0x329e5388, 0x91dd236b, 0x2ecb0d93, 0xf4d82a3d, 0x35b5c03f, 0xe4e606f0, 0x05b21843, 0x37b45964,
	0x5eff22f4, 0x6027f4cc, 0x77178b3c, 0xae507131, 0x7bf7cabc, 0xf9c18d66, 0x593ade65, 0xd95ddf11,
}

// tableOut is table rotated by the window size, the contribution of the byte leaving the window.
// Pre-rotating saves a rotate per byte in the hot loop.
var tableOut [256]uint32

func init() {
	for i, v := range table {
		tableOut[i] = bits.RotateLeft32(v, windowSize)
	}
}

// divisor tests h % d == d-1 without a division: h % d == d-1 ⟺ d | h+1, and for n = h+1 ≤ 2³²
// and d < 2³¹, d | n ⟺ n·m mod 2⁶⁴ < m with m = ⌈2⁶⁴/d⌉ (Lemire, Kaser, Kurz 2019). Write
// m·d = 2⁶⁴+e with 0 ≤ e < d and n = qd+r: n·m ≡ qe + rm. For r = 0, qe < 2³² < m; for r ≥ 1,
// m ≤ qe + rm < 2⁶⁴+e-m+2³² < 2⁶⁴ because m > 2³³. Spec.Validate keeps max, hence d, below 2³¹.
// Finally (h+1)·m = h·m + m is below m modulo 2⁶⁴ exactly when the addition wraps, that is when
// h·m mod 2⁶⁴ ≥ 2⁶⁴-m, which saves the increment in the hot loop.
type divisor struct {
	m   uint64
	neg uint64 // 2⁶⁴ - m
	// skipZeros is set when the hash of a window of zeros is not a cut, so runs of zeros can be
	// skipped without hashing.
	skipZeros bool
}

func newDivisor(d uint32) divisor {
	m := math.MaxUint64/uint64(d) + 1
	v := divisor{m: m, neg: -m}
	var h uint32
	for range windowSize {
		h = bits.RotateLeft32(h, 1) ^ table[0]
	}
	v.skipZeros = !v.isCut(h)
	return v
}

// zeroPage is compared against to find runs of zeros at memory speed.
var zeroPage [4096]byte

// zeroPrefix returns the number of leading zero bytes of p.
func zeroPrefix(p []byte) int {
	i := 0
	for len(p)-i >= len(zeroPage) && bytes.Equal(p[i:i+len(zeroPage)], zeroPage[:]) {
		i += len(zeroPage)
	}
	for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:]) == 0 {
		i += 8
	}
	for i < len(p) && p[i] == 0 {
		i++
	}
	return i
}

// isCut reports whether h % d == d-1.
func (v divisor) isCut(h uint32) bool { return uint64(h)*v.m >= v.neg }

// casyncCut returns the length of the first casync block of p. p must hold at least max bytes
// unless it is the end of the stream; the window hash depends only on the last 48 bytes, so
// scanning starts min-48 bytes into the block and nothing carries over between blocks. A run of
// zeros there is skipped (see divisor.skipZeros).
//
// The loop is unrolled four times: the table lookups of four bytes are independent of the hash,
// so the CPU overlaps them, and the slices shrink in step so the compiler drops bounds checks.
func casyncCut(p []byte, min, max int, div divisor) int {
	n := len(p)
	if n > max {
		n = max
	}
	if n <= min {
		return n
	}
	e := min // end of the first window to test
	if div.skipZeros && p[min-windowSize] == 0 {
		// Every window inside a run of zeros has the same hash, which is not a cut: jump to the
		// first window that holds a nonzero byte. Unused space in file system images makes such
		// runs common, and there each block is cut at max.
		z := min - windowSize + zeroPrefix(p[min-windowSize:n])
		if z >= n {
			return n
		}
		if z >= e {
			e = z + 1
		}
	}
	var h uint32
	for _, b := range p[e-windowSize : e] {
		h = bits.RotateLeft32(h, 1) ^ table[b]
	}
	if div.isCut(h) {
		return e
	}
	min = e
	in := p[min:n]                          // bytes entering the window
	out := p[min-windowSize : n-windowSize] // bytes leaving it, same length
	m, neg := div.m, div.neg
	for len(in) >= 4 && len(out) >= 4 {
		// Only the rotate and one XOR per byte are on the dependency chain through h.
		x1 := tableOut[out[0]] ^ table[in[0]]
		x2 := tableOut[out[1]] ^ table[in[1]]
		x3 := tableOut[out[2]] ^ table[in[2]]
		x4 := tableOut[out[3]] ^ table[in[3]]
		h1 := bits.RotateLeft32(h, 1) ^ x1
		h2 := bits.RotateLeft32(h1, 1) ^ x2
		h3 := bits.RotateLeft32(h2, 1) ^ x3
		h = bits.RotateLeft32(h3, 1) ^ x4
		switch {
		case uint64(h1)*m >= neg:
			return n - len(in) + 1
		case uint64(h2)*m >= neg:
			return n - len(in) + 2
		case uint64(h3)*m >= neg:
			return n - len(in) + 3
		case uint64(h)*m >= neg:
			return n - len(in) + 4
		}
		in, out = in[4:], out[4:]
	}
	for len(in) >= 1 && len(out) >= 1 {
		h = bits.RotateLeft32(h, 1) ^ (tableOut[out[0]] ^ table[in[0]])
		if uint64(h)*m >= neg {
			return n - len(in) + 1
		}
		in, out = in[1:], out[1:]
	}
	return n
}
