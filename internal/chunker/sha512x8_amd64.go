//go:build !purego

package chunker

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate sh -c "python3 gen_sha512x8.py > sha512x8_amd64.s"

// haveX8 reports whether blocksX8 runs in hardware: AVX-512 F for the 64-bit lanes, rotates,
// ternary logic and gathers, BW for the byte shuffle that swaps the words to big-endian.
var haveX8 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

// blocksX8 runs n SHA-512 block compressions on each lane whose bit is set in mask: lane i reads
// n consecutive 128-byte blocks at ptrs[i] and updates state[0..7][i]. Lanes outside mask are
// neither read nor meaningful afterwards. ptrs is overwritten.
//
//go:noescape
func blocksX8(state *[8][8]uint64, ptrs *[8]uintptr, mask uint64, n int)

// compressX8 runs n SHA-512 block compressions on every lane in mask, lane i reading in[i],
// which must hold at least n blocks.
func compressX8(state *[8][8]uint64, in *[8][]byte, mask uint64, n int) {
	if !haveX8 {
		compressX8Generic(state, in, mask, n)
		return
	}
	// The pointers are taken right before the call, with no function call in between that could
	// move a goroutine stack, and the slices in stay referenced by the caller during the call.
	var ptrs [8]uintptr
	for i := range ptrs {
		if mask&(1<<i) != 0 {
			_ = in[i][n*128-1] // the assembly reads this far
			ptrs[i] = uintptr(unsafe.Pointer(unsafe.SliceData(in[i])))
		}
	}
	blocksX8(state, &ptrs, mask, n)
}
