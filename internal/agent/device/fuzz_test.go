package device

import (
	"bytes"
	"testing"
)

// FuzzSocketFrameReader feeds arbitrary bytes to the local API readers: they must return data
// or an error, never panic or allocate beyond the limits, and what they return must re-encode
// to the bytes they consumed.
func FuzzSocketFrameReader(f *testing.F) {
	f.Add([]byte("NXAC\x00\x00\x00\x1c{\"result\":\"Ok\",\"version\":1}"))
	f.Add([]byte("\x00\x0eactor_GetActor\x00\x00\x00\x02{}"))
	f.Add([]byte("\x00\x00\x00\x1b{\"result\":\"Ok\",\"value\":null}"))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if body, err := ReadHandshake(bytes.NewReader(data)); err == nil {
			var b bytes.Buffer
			_ = WriteHandshake(&b, body)
			if !bytes.HasPrefix(data, b.Bytes()) {
				t.Fatalf("handshake does not round-trip")
			}
		}
		if frame, err := ReadFrame(bytes.NewReader(data)); err == nil {
			if len(frame) > MaxPayloadLen {
				t.Fatalf("frame of %d bytes", len(frame))
			}
			var b bytes.Buffer
			_ = WriteFrame(&b, frame)
			if !bytes.HasPrefix(data, b.Bytes()) {
				t.Fatalf("frame does not round-trip")
			}
		}
		if action, input, err := ReadRequest(bytes.NewReader(data)); err == nil {
			var b bytes.Buffer
			if err := WriteRequest(&b, action, input); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.HasPrefix(data, b.Bytes()) {
				t.Fatalf("request does not round-trip")
			}
		}
	})
}
