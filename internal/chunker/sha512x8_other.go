//go:build !amd64 || purego

package chunker

// haveX8 is false: without AVX-512 one SHA-512 per block (crypto/sha512) is faster than eight
// lanes emulated in Go.
const haveX8 = false

// compressX8 runs n SHA-512 block compressions on every lane in mask, lane i reading in[i].
func compressX8(state *[8][8]uint64, in *[8][]byte, mask uint64, n int) {
	compressX8Generic(state, in, mask, n)
}
