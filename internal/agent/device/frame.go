package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic opens both directions of the Nexigon agent's local API handshake.
const Magic = "NXAC"

// Limits of the local API framing: the handshake JSON is at most 64 KiB; action inputs and
// outputs are at most 8 MiB (the Hub's RPC limits); action names at most 255 bytes.
const (
	MaxHandshakeLen = 64 << 10
	MaxPayloadLen   = 8 << 20
	MaxActionName   = 255
)

// ReadHandshake reads "NXAC", a u32 BE length and that much JSON.
func ReadHandshake(r io.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read handshake header: %w", err)
	}
	if string(hdr[:4]) != Magic {
		return nil, fmt.Errorf("handshake: bad magic %q, want %q", hdr[:4], Magic)
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > MaxHandshakeLen {
		return nil, fmt.Errorf("handshake: length %d exceeds %d", n, MaxHandshakeLen)
	}
	return readN(r, int(n), "handshake body")
}

// WriteHandshake writes "NXAC", a u32 BE length and body.
func WriteHandshake(w io.Writer, body []byte) error {
	if len(body) > MaxHandshakeLen {
		return fmt.Errorf("handshake: length %d exceeds %d", len(body), MaxHandshakeLen)
	}
	buf := make([]byte, 8, 8+len(body))
	copy(buf, Magic)
	binary.BigEndian.PutUint32(buf[4:], uint32(len(body)))
	_, err := w.Write(append(buf, body...))
	return err
}

// WriteRequest writes one action request: u16 BE name length, name, u32 BE input length, input.
func WriteRequest(w io.Writer, action string, input []byte) error {
	if len(action) == 0 || len(action) > MaxActionName {
		return fmt.Errorf("action name %q: want 1..%d bytes", action, MaxActionName)
	}
	if len(input) > MaxPayloadLen {
		return fmt.Errorf("action %s: input of %d bytes exceeds %d", action, len(input), MaxPayloadLen)
	}
	buf := make([]byte, 0, 6+len(action)+len(input))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(action)))
	buf = append(buf, action...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(input)))
	buf = append(buf, input...)
	_, err := w.Write(buf)
	return err
}

// ReadRequest reads one action request as WriteRequest writes it. It returns io.EOF when the
// stream ends cleanly before a request.
func ReadRequest(r io.Reader) (action string, input []byte, err error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return "", nil, io.EOF
		}
		return "", nil, fmt.Errorf("read request name length: %w", err)
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n == 0 || n > MaxActionName {
		return "", nil, fmt.Errorf("request: action name length %d, want 1..%d", n, MaxActionName)
	}
	name, err := readN(r, n, "request action name")
	if err != nil {
		return "", nil, err
	}
	input, err = ReadFrame(r)
	if err != nil {
		return "", nil, fmt.Errorf("request %s: %w", name, err)
	}
	return string(name), input, nil
}

// WriteFrame writes a u32 BE length and payload (an ActionResult response).
func WriteFrame(w io.Writer, payload []byte) error {
	if len(payload) > MaxPayloadLen {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(payload), MaxPayloadLen)
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(payload)), uint32(len(payload)))
	_, err := w.Write(append(buf, payload...))
	return err
}

// ReadFrame reads a u32 BE length and that many bytes, refusing frames over MaxPayloadLen so
// that a confused peer cannot make the agent allocate without bound.
func ReadFrame(r io.Reader) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, fmt.Errorf("read frame length: %w", err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > MaxPayloadLen {
		return nil, fmt.Errorf("frame length %d exceeds %d", n, MaxPayloadLen)
	}
	return readN(r, int(n), "frame body")
}

// readN reads exactly n bytes, growing the buffer as data arrives rather than trusting n.
func readN(r io.Reader, n int, what string) ([]byte, error) {
	const step = 64 << 10
	buf := make([]byte, 0, min(n, step))
	for len(buf) < n {
		chunk := min(n-len(buf), step)
		start := len(buf)
		buf = append(buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read %s (%d of %d bytes): %w", what, start, n, err)
		}
	}
	return buf, nil
}
