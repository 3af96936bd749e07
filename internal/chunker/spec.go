// Package chunker splits a byte stream into blocks exactly as Rugix and casync do, so that block
// hashes computed here match the block indices that rugix-ctrl builds on devices and the chunk
// ids casync writes. Two chunkers exist: casync-N, content-defined with a Buzhash rolling hash
// (average N KiB), and fixed-N, blocks of exactly N KiB.
//
// The byte-level contract is in specs/rugix-bundle.md §3.1.
package chunker

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kind selects the chunking algorithm. The zero Kind is invalid so that an unset Spec is caught
// instead of silently chunking with some default.
type Kind int

const (
	// Casync is content-defined chunking with casync's Buzhash: insertions shift only nearby
	// block boundaries, so unchanged data keeps its block hashes across versions.
	Casync Kind = iota + 1
	// Fixed cuts blocks of a fixed size; cheap, but an insertion changes every later block.
	Fixed
)

// String returns the name used in chunker specs ("casync", "fixed").
func (k Kind) String() string {
	switch k {
	case Casync:
		return "casync"
	case Fixed:
		return "fixed"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MaxKiB is the largest N in "casync-N" and "fixed-N": Rugix parses N as a u16, so bundles and
// block indices can never name a larger chunker.
const MaxKiB = math.MaxUint16

// windowSize is the number of trailing bytes the Buzhash depends on (casync's
// CA_CHUNKER_WINDOW_SIZE).
const windowSize = 48

// Spec names a chunker as Rugix does ("casync-64", "fixed-256"). KiB is N: the average block size
// for Casync, the exact block size for Fixed.
type Spec struct {
	Kind Kind
	KiB  int
}

// ParseSpec parses "casync-N" or "fixed-N" with N in KiB (1..65535). It accepts what Rugix
// accepts, except a leading '+', so that a spec read from a bundle header or manifest means the
// same chunker here as on the device.
func ParseSpec(s string) (Spec, error) {
	name, num, ok := strings.Cut(s, "-")
	if !ok {
		return Spec{}, fmt.Errorf("chunker %q: want casync-N or fixed-N (N in KiB)", s)
	}
	var spec Spec
	switch name {
	case "casync":
		spec.Kind = Casync
	case "fixed":
		spec.Kind = Fixed
	default:
		return Spec{}, fmt.Errorf("chunker %q: unknown kind %q, want casync or fixed", s, name)
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return Spec{}, fmt.Errorf("chunker %q: size %q is not a decimal number of KiB", s, num)
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil {
		return Spec{}, fmt.Errorf("chunker %q: size %q is out of range 1..%d KiB", s, num, MaxKiB)
	}
	spec.KiB = int(n)
	if err := spec.Validate(); err != nil {
		return Spec{}, fmt.Errorf("chunker %q: %w", s, err)
	}
	return spec, nil
}

// Validate reports whether the spec names a chunker Rugix can use.
func (s Spec) Validate() error {
	if s.Kind != Casync && s.Kind != Fixed {
		return fmt.Errorf("unknown chunker kind %d", int(s.Kind))
	}
	if s.KiB < 1 || s.KiB > MaxKiB {
		return fmt.Errorf("%s size %d KiB is out of range 1..%d", s.Kind, s.KiB, MaxKiB)
	}
	return nil
}

// MaxBlockSize is the largest block otabake decodes or writes: a chunker whose blocks may be
// larger (casync above casync-8192, fixed above fixed-32768; Rugix allows up to 256 MiB) is
// refused, so that decoding one block (stored copy, decoded copy and xz dictionary) stays
// within a bounded amount of memory whatever a bundle says, and otabake never writes a bundle
// it would refuse to read.
const MaxBlockSize = 32 << 20

// CheckBlockSize refuses a chunker whose blocks may exceed MaxBlockSize.
func (s Spec) CheckBlockSize() error {
	if s.MaxSize() > MaxBlockSize {
		return fmt.Errorf("chunker %s allows blocks of %d bytes; otabake handles blocks of at most %d bytes (casync-8192, fixed-32768)", s, s.MaxSize(), MaxBlockSize)
	}
	return nil
}

// String returns the canonical name ("casync-64"), as written into bundle headers and block
// index file names.
func (s Spec) String() string { return s.Kind.String() + "-" + strconv.Itoa(s.KiB) }

// AvgSize is the target block size in bytes: N KiB for both kinds.
func (s Spec) AvgSize() int { return s.KiB * 1024 }

// MinSize is the smallest block size in bytes, except for the last block of a stream, which may be
// shorter. Casync uses avg/4 (integer division), as Rugix's CasyncChunkerOptions::avg does.
func (s Spec) MinSize() int {
	if s.Kind == Casync {
		return s.AvgSize() / 4
	}
	return s.AvgSize()
}

// MaxSize is the largest block size in bytes: 4×avg for casync, N KiB for fixed. Buffers must
// hold at least one block of this size.
func (s Spec) MaxSize() int {
	if s.Kind == Casync {
		return s.AvgSize() * 4
	}
	return s.AvgSize()
}

// discriminator computes casync's Buzhash divisor for the given sizes exactly as Rugix's
// CasyncChunker::discriminator does, including Rust's saturating float-to-u32 conversion, which Go
// leaves implementation-defined and must therefore be spelled out.
func discriminator(min, avg, max int) uint32 {
	a := float64(avg)
	// The explicit float64 conversion forbids fusing into an FMA, which would change the result.
	f := a / (float64(-1.42888852e-7*a) + 1.33237515)
	var d uint32
	switch {
	case !(f > 0): // negative, zero or NaN
		d = 0
	case f >= math.MaxUint32:
		d = math.MaxUint32
	default:
		d = uint32(f)
	}
	if d < uint32(min) {
		d = uint32(min)
	}
	if d > uint32(max) {
		d = uint32(max)
	}
	return d
}
