// Package stlv implements STLV ("structured tag-length-value"), the container encoding of Rugix
// update bundles and block index files. An STLV stream is a sequence of atoms: segment starts,
// segment ends and values, each introduced by a 4-byte tag. Every length has exactly one valid
// encoding, so re-encoding a decoded stream reproduces its bytes, which is what makes the
// bundle hash (a hash over encoded bytes) well defined.
//
// The package has two layers: atom heads (AppendHead, ParseHead, Reader) for streaming over
// bundles that do not fit in memory, and Marshal/Unmarshal, which map Go structs to segments
// through `stlv:"0x…"` field tags, for the small structures (headers, indices).
package stlv

import (
	"errors"
	"fmt"
	"math"
)

// Tag identifies an atom. It is stored as 4 big-endian bytes.
type Tag uint32

// Optional reports whether a reader that does not know the tag may skip it; a reader must fail
// on an unknown required tag. The first bit of the tag carries this flag.
func (t Tag) Optional() bool { return t&0x8000_0000 != 0 }

// String formats the tag the way Rugix prints it, as 8 hex digits.
func (t Tag) String() string { return fmt.Sprintf("0x%08x", uint32(t)) }

// Kind is the kind of an atom.
type Kind uint8

// The three atom kinds.
const (
	Value Kind = iota
	Start
	End
)

func (k Kind) String() string {
	switch k {
	case Value:
		return "value"
	case Start:
		return "start"
	case End:
		return "end"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Head is the head of an atom. Len is the value length and is zero for segment atoms.
type Head struct {
	Tag  Tag
	Kind Kind
	Len  uint64
}

const (
	isValueMask = 0x80
	isStartMask = 0x40
	// lenInline is the largest value length stored in the indicator byte; 127 itself means
	// "127 plus a varint".
	lenInline = 127
	// maxVarint is the largest varint Rugix accepts (63 bits).
	maxVarint = math.MaxUint64 / 2
	// MaxHeadSize is the largest encoded atom head: tag, indicator and a 9-byte varint.
	MaxHeadSize = 4 + 1 + 9
)

// ErrTruncated is returned (wrapped) when the input ends inside an atom.
var ErrTruncated = errors.New("truncated atom")

// varintSize returns the number of bytes of the canonical varint encoding of v.
func varintSize(v uint64) int {
	n := 1
	for v >>= 7; v != 0; v >>= 7 {
		n++
	}
	return n
}

// appendVarint appends v as a big-endian base-128 varint, most significant digit first.
func appendVarint(dst []byte, v uint64) []byte {
	n := varintSize(v)
	for i := n - 1; i >= 0; i-- {
		b := byte(v>>(7*uint(i))) & 0x7f
		if i != 0 {
			b |= 0x80
		}
		dst = append(dst, b)
	}
	return dst
}

// HeadSize returns the encoded size of h.
func HeadSize(h Head) int {
	if h.Kind != Value || h.Len < lenInline {
		return 5
	}
	return 5 + varintSize(h.Len-lenInline)
}

// AppendHead appends the canonical encoding of h.
func AppendHead(dst []byte, h Head) []byte {
	dst = append(dst, byte(h.Tag>>24), byte(h.Tag>>16), byte(h.Tag>>8), byte(h.Tag))
	switch h.Kind {
	case Start:
		return append(dst, isStartMask)
	case End:
		return append(dst, 0)
	}
	if h.Len < lenInline {
		return append(dst, isValueMask|byte(h.Len))
	}
	return appendVarint(append(dst, 0xff), h.Len-lenInline)
}

// AppendStart appends the start atom of segment tag.
func AppendStart(dst []byte, tag Tag) []byte { return AppendHead(dst, Head{Tag: tag, Kind: Start}) }

// AppendEnd appends the end atom of segment tag.
func AppendEnd(dst []byte, tag Tag) []byte { return AppendHead(dst, Head{Tag: tag, Kind: End}) }

// AppendValue appends a value atom holding v.
func AppendValue(dst []byte, tag Tag, v []byte) []byte {
	dst = AppendHead(dst, Head{Tag: tag, Kind: Value, Len: uint64(len(v))})
	return append(dst, v...)
}

// ParseHead decodes the atom head at the start of b and returns it with its encoded size.
// It returns an error wrapping ErrTruncated if b ends inside the head.
func ParseHead(b []byte) (Head, int, error) {
	if len(b) < 5 {
		return Head{}, 0, fmt.Errorf("atom head: %w", ErrTruncated)
	}
	h := Head{Tag: Tag(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))}
	ind := b[4]
	if ind&isValueMask == 0 {
		switch ind {
		case isStartMask:
			h.Kind = Start
		case 0:
			h.Kind = End
		default:
			return Head{}, 0, fmt.Errorf("atom %s: non-zero segmentation atom indicator bits (%#02x)", h.Tag, ind)
		}
		return h, 5, nil
	}
	h.Kind = Value
	if l := ind &^ isValueMask; l < lenInline {
		h.Len = uint64(l)
		return h, 5, nil
	}
	v, n, err := parseVarint(b[5:])
	if err != nil {
		return Head{}, 0, fmt.Errorf("atom %s length: %w", h.Tag, err)
	}
	if v > maxVarint-lenInline {
		return Head{}, 0, fmt.Errorf("atom %s length: value length exceeds 63 bits", h.Tag)
	}
	h.Len = v + lenInline
	return h, 5 + n, nil
}

// parseVarint decodes a canonical varint. Unlike Rugix it rejects over-long encodings instead
// of silently dropping high bits, so that a decoded length always re-encodes to its input.
func parseVarint(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, ErrTruncated
	}
	if b[0] == 0x80 {
		return 0, 0, errors.New("invalid zero digit in variable-length integer")
	}
	var v uint64
	for i, c := range b {
		if i == 9 {
			return 0, 0, errors.New("variable-length integer exceeds 63 bits")
		}
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 == 0 {
			if v > maxVarint {
				return 0, 0, errors.New("variable-length integer exceeds 63 bits")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, ErrTruncated
}
