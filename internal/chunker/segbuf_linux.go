package chunker

import "golang.org/x/sys/unix"

// hugePage is the size of a transparent huge page on the architectures otabake runs on.
const hugePage = 2 << 20

// allocSegment returns a read buffer of at least size bytes and the function that frees it. On
// Linux the buffer is an anonymous mapping advised to use transparent huge pages: the first
// touch of a 4 KiB page costs a page fault, and a few segments of 8 MiB are thousands of them
// (about 50 ms of system time on the benchmark VM, a twentieth of hashing 1 GiB), while huge
// pages make it a handful and spare the kernel's copy and the hashers TLB misses. Where the
// mapping or the advice fails, an ordinary slice does the same job.
func allocSegment(size int) ([]byte, func()) {
	n := (size + hugePage - 1) &^ (hugePage - 1)
	buf, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, size), func() {}
	}
	_ = unix.Madvise(buf, unix.MADV_HUGEPAGE) // advice only: without it the buffer still works
	return buf[:size:size], func() { _ = unix.Munmap(buf) }
}
