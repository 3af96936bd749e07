package tool

import "bytes"

// Output captures what an external program writes, bounded: a chatty or hostile tool (debugfs
// echoing every script line, a progress bar, a device CLI answering with garbage) must not grow
// memory without limit. It keeps the first Max bytes, or with Tail the last Max bytes, where
// error messages are; Overflowed reports that bytes were dropped. The zero Max keeps nothing.
type Output struct {
	Max  int
	Tail bool

	buf        bytes.Buffer
	overflowed bool
}

// Write never fails, so that the program is never stopped by a full capture.
func (o *Output) Write(p []byte) (int, error) {
	n := len(p)
	if o.Tail {
		if len(p) > o.Max {
			o.overflowed = true
			p = p[len(p)-o.Max:]
		}
		if excess := o.buf.Len() + len(p) - o.Max; excess > 0 {
			o.overflowed = true
			keep := append([]byte(nil), o.buf.Bytes()[excess:]...)
			o.buf.Reset()
			o.buf.Write(keep)
		}
		o.buf.Write(p)
		return n, nil
	}
	room := o.Max - o.buf.Len()
	if len(p) > room {
		o.overflowed = true
		p = p[:max(room, 0)]
	}
	o.buf.Write(p)
	return n, nil
}

// Bytes returns the captured bytes.
func (o *Output) Bytes() []byte { return o.buf.Bytes() }

// String returns the captured bytes as a string.
func (o *Output) String() string { return o.buf.String() }

// Len returns the number of captured bytes.
func (o *Output) Len() int { return o.buf.Len() }

// Overflowed reports whether bytes were dropped.
func (o *Output) Overflowed() bool { return o.overflowed }
