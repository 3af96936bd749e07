package stlv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Reader reads atoms from a stream and tracks the byte offset of each, so that errors can say
// where a bundle is broken. Values are not read by Next: after a value head, the caller reads
// exactly Len bytes with ReadValue, CopyValue or SkipValue before calling Next again.
type Reader struct {
	r       *bufio.Reader
	off     int64
	pending uint64 // unread bytes of the current value
	head    [MaxHeadSize]byte
}

// NewReader returns a Reader over r, whose first byte is at offset base in the bundle.
func NewReader(r io.Reader, base int64) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Reader{r: br, off: base}
}

// Offset returns the offset of the next unread byte.
func (r *Reader) Offset() int64 { return r.off }

// Next reads the next atom head. It returns io.EOF if the stream ends exactly at an atom
// boundary. A value left unread by the caller is skipped first.
func (r *Reader) Next() (Head, error) {
	if r.pending > 0 {
		if err := r.SkipValue(); err != nil {
			return Head{}, err
		}
	}
	start := r.off
	b, err := r.r.Peek(5)
	if len(b) == 0 && err == io.EOF {
		return Head{}, io.EOF
	}
	if len(b) < 5 {
		return Head{}, fmt.Errorf("offset %d: atom head: %w", start, ErrTruncated)
	}
	n := 5
	if b[4] == 0xff {
		// Peek the varint too; it ends at the first byte without the continuation bit.
		for n = 6; n <= MaxHeadSize; n++ {
			b, _ = r.r.Peek(n)
			if len(b) < n || b[n-1]&0x80 == 0 {
				break
			}
		}
		if n > MaxHeadSize {
			n = MaxHeadSize
		}
		b, _ = r.r.Peek(n)
	}
	h, used, err := ParseHead(b)
	if err != nil {
		return Head{}, fmt.Errorf("offset %d: %w", start, err)
	}
	r.r.Discard(used)
	r.off += int64(used)
	if h.Kind == Value {
		r.pending = h.Len
	}
	return h, nil
}

// ReadValue reads the whole current value into a new slice. It refuses values longer than
// limit before allocating, so hostile lengths cannot exhaust memory.
func (r *Reader) ReadValue(limit uint64) ([]byte, error) {
	if r.pending > limit {
		return nil, fmt.Errorf("offset %d: value of %d bytes exceeds the limit of %d bytes", r.off, r.pending, limit)
	}
	buf := make([]byte, r.pending)
	if err := r.readFull(buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Read reads from the current value; it returns io.EOF at the end of the value.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pending == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > r.pending {
		p = p[:r.pending]
	}
	n, err := r.r.Read(p)
	r.off += int64(n)
	r.pending -= uint64(n)
	if err == io.EOF {
		err = fmt.Errorf("offset %d: value: %w", r.off, ErrTruncated)
	}
	return n, err
}

func (r *Reader) readFull(buf []byte) error {
	_, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("offset %d: value: %w", r.off, ErrTruncated)
	}
	return err
}

// SkipValue discards the rest of the current value.
func (r *Reader) SkipValue() error {
	for r.pending > 0 {
		n := r.pending
		if n > 1<<30 {
			n = 1 << 30
		}
		d, err := r.r.Discard(int(n))
		r.off += int64(d)
		r.pending -= uint64(d)
		if err != nil {
			return fmt.Errorf("offset %d: skip value: %w", r.off, ErrTruncated)
		}
	}
	return nil
}

// Pending returns the number of unread bytes of the current value.
func (r *Reader) Pending() uint64 { return r.pending }

// ReadSegment reads the rest of a segment whose start atom (tag) was just returned by Next and
// returns the segment's canonical bytes from its start atom through its end atom. Nested
// segments must be balanced and the total must stay below limit bytes.
func (r *Reader) ReadSegment(tag Tag, limit int) ([]byte, error) {
	start := r.off - 5
	buf := AppendStart(make([]byte, 0, 512), tag)
	stack := []Tag{tag}
	for len(stack) > 0 {
		at := r.off
		h, err := r.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("offset %d: segment %s starting at offset %d: %w", at, tag, start, ErrTruncated)
		}
		if err != nil {
			return nil, err
		}
		if uint64(len(buf)+HeadSize(h))+h.Len >= uint64(limit) {
			return nil, fmt.Errorf("offset %d: segment %s starting at offset %d exceeds the size limit of %d bytes", at, tag, start, limit)
		}
		buf = AppendHead(buf, h)
		switch h.Kind {
		case Start:
			if len(stack) >= MaxDepth {
				return nil, fmt.Errorf("offset %d: segments nested deeper than %d", at, MaxDepth)
			}
			stack = append(stack, h.Tag)
		case End:
			if top := stack[len(stack)-1]; h.Tag != top {
				return nil, fmt.Errorf("offset %d: end of segment %s where segment %s is open", at, h.Tag, top)
			}
			stack = stack[:len(stack)-1]
		case Value:
			n := len(buf)
			buf = append(buf, make([]byte, h.Len)...)
			if err := r.readFull(buf[n:]); err != nil {
				return nil, err
			}
		}
	}
	return buf, nil
}
