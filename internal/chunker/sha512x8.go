package chunker

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// sha512x8 computes SHA-512/256 digests of up to eight messages at once, one per lane of the
// AVX-512 registers: SHA-512 is a chain of dependent 64-bit operations, so one message keeps a
// core's vector units mostly idle, while eight independent blocks fill them. Messages of unequal
// length share the lanes: a lane that finishes takes the next message while the others go on.
type sha512x8 struct {
	state [8][8]uint64 // state[word][lane]
	msg   [8][]byte    // the message of each lane, nil when the lane is idle
	phase [8]uint8     // 0 idle, 1 hashing the message's whole blocks, 2 hashing the padded tail
	pos   [8]int       // bytes of the current phase already hashed
	tail  [8][256]byte // the last partial block with the padding, one or two blocks
	tailN [8]int       // length of tail in use: 128 or 256
}

// sha512_256IV is the initial state of SHA-512/256 (FIPS 180-4 §5.3.6.2).
var sha512_256IV = [8]uint64{
	0x22312194fc2bf72c, 0x9f555fa3c84c64c2, 0x2393b86b6f53b151, 0x963877195940eabd,
	0x96283ee2a88effe3, 0xbe5e1e2553863992, 0x2b0199fc2c85b8aa, 0x0eb72ddc81c52ca2,
}

// idle reports whether lane i has no message.
func (x *sha512x8) idle(i int) bool { return x.phase[i] == 0 }

// active reports whether any lane has a message.
func (x *sha512x8) active() bool { return x.phase != [8]uint8{} }

// start puts msg into the idle lane i.
func (x *sha512x8) start(i int, msg []byte) {
	for w := range x.state {
		x.state[w][i] = sha512_256IV[w]
	}
	body := len(msg) &^ 127
	t := &x.tail[i]
	n := copy(t[:], msg[body:])
	t[n] = 0x80
	x.tailN[i] = 128
	if n+1+16 > 128 {
		x.tailN[i] = 256
	}
	clear(t[n+1 : x.tailN[i]-8])
	binary.BigEndian.PutUint64(t[x.tailN[i]-8:], uint64(len(msg))<<3)
	// Messages are below 2⁶¹ bytes, so the high half of the 128-bit length is zero (cleared).
	x.msg[i], x.pos[i], x.phase[i] = msg, 0, 1
	if body == 0 {
		x.phase[i] = 2
	}
}

// current returns the bytes lane i hashes in its current phase.
func (x *sha512x8) current(i int) []byte {
	if x.phase[i] == 1 {
		return x.msg[i][:len(x.msg[i])&^127]
	}
	return x.tail[i][:x.tailN[i]]
}

// step hashes as many blocks as the shortest phase among the busy lanes has left and calls done
// for every lane whose message is finished, with its digest; the lane is idle again when done is
// called. It must only be called while some lane is busy.
func (x *sha512x8) step(done func(lane int, sum []byte)) {
	n := math.MaxInt
	var mask uint64
	for i := range x.phase {
		if x.phase[i] != 0 {
			mask |= 1 << i
			n = min(n, (len(x.current(i))-x.pos[i])>>7)
		}
	}
	var in [8][]byte
	for i := range x.phase {
		if x.phase[i] != 0 {
			in[i] = x.current(i)[x.pos[i]:]
		}
	}
	compressX8(&x.state, &in, mask, n)
	for i := range x.phase {
		if x.phase[i] == 0 {
			continue
		}
		x.pos[i] += n << 7
		if x.pos[i] < len(x.current(i)) {
			continue
		}
		if x.phase[i] == 1 {
			x.phase[i], x.pos[i] = 2, 0
			continue
		}
		sum := make([]byte, 32)
		for w := range 4 {
			binary.BigEndian.PutUint64(sum[8*w:], x.state[w][i])
		}
		x.phase[i], x.msg[i] = 0, nil
		done(i, sum)
	}
}

// compressX8Generic is compressX8 in plain Go, one lane after the other: the reference the
// assembly is tested against, and the implementation where there is no assembly.
func compressX8Generic(state *[8][8]uint64, in *[8][]byte, mask uint64, n int) {
	for i := range 8 {
		if mask&(1<<i) == 0 {
			continue
		}
		var h [8]uint64
		for w := range h {
			h[w] = state[w][i]
		}
		p := in[i][:n*128]
		for len(p) >= 128 {
			sha512Block(&h, p[:128])
			p = p[128:]
		}
		for w := range h {
			state[w][i] = h[w]
		}
	}
}

// sha512K holds the SHA-512 round constants (FIPS 180-4 §4.2.3).
var sha512K = [80]uint64{
	0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
	0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
	0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
	0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
	0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
	0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
	0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
	0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
	0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
	0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
	0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
	0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
	0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
	0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
	0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
	0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
	0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
	0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
	0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
	0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
}

// sha512Block is the SHA-512 compression function (FIPS 180-4 §6.4.2) on one 128-byte block.
func sha512Block(h *[8]uint64, p []byte) {
	var w [80]uint64
	for t := range 16 {
		w[t] = binary.BigEndian.Uint64(p[8*t:])
	}
	for t := 16; t < 80; t++ {
		s0 := bits.RotateLeft64(w[t-15], -1) ^ bits.RotateLeft64(w[t-15], -8) ^ w[t-15]>>7
		s1 := bits.RotateLeft64(w[t-2], -19) ^ bits.RotateLeft64(w[t-2], -61) ^ w[t-2]>>6
		w[t] = w[t-16] + s0 + w[t-7] + s1
	}
	a, b, c, d, e, f, g, hh := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
	for t := range 80 {
		s1 := bits.RotateLeft64(e, -14) ^ bits.RotateLeft64(e, -18) ^ bits.RotateLeft64(e, -41)
		ch := e&f ^ ^e&g
		t1 := hh + s1 + ch + sha512K[t] + w[t]
		s0 := bits.RotateLeft64(a, -28) ^ bits.RotateLeft64(a, -34) ^ bits.RotateLeft64(a, -39)
		maj := a&b ^ a&c ^ b&c
		t2 := s0 + maj
		hh, g, f, e, d, c, b, a = g, f, e, d+t1, c, b, a, t1+t2
	}
	h[0] += a
	h[1] += b
	h[2] += c
	h[3] += d
	h[4] += e
	h[5] += f
	h[6] += g
	h[7] += hh
}
