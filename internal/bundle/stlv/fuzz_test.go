package stlv

import (
	"bytes"
	"testing"
)

type fuzzHeader struct {
	S    *string  `stlv:"0x161aa242"`
	B    bool     `stlv:"0x20f3d16b"`
	Raw  []byte   `stlv:"0x5f6a60b1"`
	List []fuzzEl `stlv:"0x13737992"`
}

type fuzzEl struct {
	Args []string `stlv:"0x4b3836a2"`
	N    *uint32  `stlv:"0x0c8d1fd0"`
}

// FuzzSTLVDecode feeds arbitrary bytes to the decoder and the streaming reader: they must not
// panic, and whatever decodes must re-encode to a stream that decodes to the same value.
func FuzzSTLVDecode(f *testing.F) {
	s := "m"
	n := uint32(7)
	seed, _ := Marshal(0x49af6433, &fuzzHeader{S: &s, B: true, Raw: []byte{1, 2, 3}, List: []fuzzEl{{Args: []string{"a", "b"}, N: &n}}})
	f.Add(seed)
	f.Add([]byte{0x49, 0xaf, 0x64, 0x33, 0x40, 0x20, 0xf3, 0xd1, 0x6b, 0x81, 0x00, 0x49, 0xaf, 0x64, 0x33, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var v fuzzHeader
		if err := Unmarshal(data, 0x49af6433, &v); err == nil {
			b, err := Marshal(0x49af6433, &v)
			if err != nil {
				t.Fatal(err)
			}
			var w fuzzHeader
			if err := Unmarshal(b, 0x49af6433, &w); err != nil {
				t.Fatalf("re-encoded value does not decode: %v", err)
			}
			c, _ := Marshal(0x49af6433, &w)
			if !bytes.Equal(b, c) {
				t.Fatal("encoding is not stable")
			}
		}
		r := NewReader(bytes.NewReader(data), 0)
		if h, err := r.Next(); err == nil && h.Kind == Start {
			r.ReadSegment(h.Tag, 4096)
		}
	})
}
