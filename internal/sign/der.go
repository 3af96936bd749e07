package sign

import "fmt"

// maxDERDepth bounds the nesting checkDER follows. CMS with certificates
// nests about 12 levels; the bound keeps hostile input from growing the stack.
const maxDERDepth = 64

// checkDER walks every TLV of b and reports the first structural error with
// its byte offset: truncation, indefinite or non-minimal lengths, trailing
// bytes. encoding/asn1 reports such faults without a position; running this
// first turns "asn1: syntax error" into something a person can look at with
// `openssl asn1parse`.
func checkDER(b []byte) error {
	n, err := checkTLV(b, 0, 0)
	if err != nil {
		return err
	}
	if n != len(b) {
		return &MalformedError{Offset: n, Reason: fmt.Sprintf("%d trailing bytes after the ContentInfo", len(b)-n)}
	}
	return nil
}

// checkTLV checks the TLV that starts at b[0] (absolute position base) and
// returns its total length.
func checkTLV(b []byte, base, depth int) (int, error) {
	if depth > maxDERDepth {
		return 0, &MalformedError{Offset: base, Reason: fmt.Sprintf("nested deeper than %d levels", maxDERDepth)}
	}
	if len(b) < 2 {
		return 0, &MalformedError{Offset: base, Reason: "truncated tag or length"}
	}
	constructed := b[0]&0x20 != 0
	i := 1
	if b[0]&0x1f == 0x1f { // high tag number form
		for {
			if i >= len(b) {
				return 0, &MalformedError{Offset: base, Reason: "truncated tag"}
			}
			if i > 4 {
				return 0, &MalformedError{Offset: base, Reason: "tag number too large"}
			}
			c := b[i]
			i++
			if c&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return 0, &MalformedError{Offset: base, Reason: "truncated length"}
	}
	l := int(b[i])
	i++
	if l == 0x80 {
		return 0, &MalformedError{Offset: base, Reason: "indefinite length (BER, not DER)"}
	}
	if l > 0x80 {
		nb := l & 0x7f
		if nb > 4 {
			return 0, &MalformedError{Offset: base, Reason: fmt.Sprintf("length field of %d bytes is too large", nb)}
		}
		if len(b)-i < nb {
			return 0, &MalformedError{Offset: base, Reason: "truncated length"}
		}
		if b[i] == 0 {
			return 0, &MalformedError{Offset: base, Reason: "non-minimal length encoding"}
		}
		l = 0
		for _, c := range b[i : i+nb] {
			l = l<<8 | int(c)
		}
		i += nb
		if l < 0x80 {
			return 0, &MalformedError{Offset: base, Reason: "non-minimal length encoding"}
		}
	}
	if l > len(b)-i {
		return 0, &MalformedError{Offset: base, Reason: fmt.Sprintf("length %d runs past the end of the input (%d bytes left)", l, len(b)-i)}
	}
	if constructed {
		content := b[i : i+l]
		for off := 0; off < len(content); {
			n, err := checkTLV(content[off:], base+i+off, depth+1)
			if err != nil {
				return 0, err
			}
			off += n
		}
	}
	return i + l, nil
}
