package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestMuxFrameRoundTrip(t *testing.T) {
	frames := []muxFrame{
		{Tag: muxHello, Data: []byte("info")},
		{Tag: muxHello},
		{Tag: muxClose, Data: []byte("bye")},
		{Tag: muxChannelRequest, Channel: 7, Frames: 128, Bytes: 16 << 10, Data: []byte("executor")},
		{Tag: muxChannelAccept, Channel: 7, Sender: 1 << 40, Frames: 128, Bytes: 16 << 10},
		{Tag: muxChannelReject, Channel: 9, Data: []byte("no")},
		{Tag: muxChannelData, Channel: 1, Data: []byte{0, 1, 2, 255}},
		{Tag: muxChannelData, Channel: ^uint64(0)},
		{Tag: muxChannelAdjust, Channel: 3, Frames: 1, Bytes: ^uint32(0)},
		{Tag: muxChannelClose, Channel: 4, Data: []byte("r")},
		{Tag: muxChannelClosed, Channel: 5},
		{Tag: muxPing},
		{Tag: muxPong},
	}
	for _, f := range frames {
		b := appendMuxFrame(nil, f)
		g, err := parseMuxFrame(b, 1<<20)
		if err != nil {
			t.Fatalf("%#02x: %v", f.Tag, err)
		}
		if len(g.Data) == 0 {
			g.Data = nil
		}
		if len(f.Data) == 0 {
			f.Data = nil
		}
		if g.Tag != f.Tag || g.Channel != f.Channel || g.Sender != f.Sender || g.Frames != f.Frames || g.Bytes != f.Bytes || !bytes.Equal(g.Data, f.Data) {
			t.Errorf("%#02x: round trip %+v, want %+v", f.Tag, g, f)
		}
		if !bytes.Equal(appendMuxFrame(nil, g), b) {
			t.Errorf("%#02x: re-encoding differs", f.Tag)
		}
	}
}

// TestMuxFrameLayout pins the byte layout against upstream's frames.rs (tags, big-endian
// fields in declaration order, the magic).
func TestMuxFrameLayout(t *testing.T) {
	got := appendMuxFrame(nil, muxFrame{Tag: muxChannelRequest, Channel: 1, Frames: 128, Bytes: 16384, Data: []byte("executor")})
	want := append([]byte{0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 128, 0, 0, 0x40, 0}, "executor"...)
	if !bytes.Equal(got, want) {
		t.Errorf("ChannelRequest = % x, want % x", got, want)
	}
	got = appendMuxFrame(nil, muxFrame{Tag: muxChannelAccept, Channel: 1, Sender: 2, Frames: 128, Bytes: 16384})
	want = []byte{0x11, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 128, 0, 0, 0x40, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("ChannelAccept = % x, want % x", got, want)
	}
	got = appendMuxFrame(nil, muxFrame{Tag: muxHello})
	want = []byte{0, 27, 27, 46, 134, 44, 205, 244, 157, 82, 109, 227, 13, 167, 171, 225, 140}
	if !bytes.Equal(got, want) {
		t.Errorf("Hello = % x, want % x", got, want)
	}
}

func TestMuxFrameRefused(t *testing.T) {
	hello := appendMuxFrame(nil, muxFrame{Tag: muxHello})
	badMagic := bytes.Clone(hello)
	badMagic[5] ^= 1
	cases := map[string][]byte{
		"empty":               {},
		"unknown tag":         {0x16, 0, 0, 0, 0, 0, 0, 0, 1},
		"unknown tag 0x30":    {0x30},
		"short hello":         hello[:16],
		"bad magic":           badMagic,
		"short request":       {0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0},
		"short accept":        make([]byte, 24),
		"short data":          {0x13, 0, 0, 0, 0, 0, 0, 0},
		"short adjust":        {0x14, 0, 0, 0, 0, 0, 0, 0, 1},
		"short channel close": {0x15, 1},
		"oversized":           append([]byte{0x13, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 100)...),
	}
	cases["short accept"][0] = muxChannelAccept
	for name, b := range cases {
		if _, err := parseMuxFrame(b, 64); !errors.Is(err, errMuxFrame) {
			t.Errorf("%s: err = %v, want an invalid frame", name, err)
		}
	}
	// Like upstream, bytes after a fixed-size frame are ignored.
	if f, err := parseMuxFrame([]byte{muxPing, 1, 2}, 64); err != nil || f.Tag != muxPing {
		t.Errorf("ping with trailing bytes: %+v, %v", f, err)
	}
}

func rpcBytes(name string, input []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(input)))
	return append(b, input...)
}

func TestReadRPCAction(t *testing.T) {
	r := bytes.NewReader(append(rpcBytes("actor_GetActor", []byte("{}")), rpcBytes("x", nil)...))
	started := 0
	a, err := readRPCAction(r, 100, func() { started++ })
	if err != nil || a.Name != "actor_GetActor" || string(a.Input) != "{}" || a.Err != nil || started != 1 {
		t.Fatalf("first = %+v, %v (started %d)", a, err, started)
	}
	if a, err = readRPCAction(r, 100, nil); err != nil || a.Name != "x" || len(a.Input) != 0 {
		t.Fatalf("second = %+v, %v", a, err)
	}
	if _, err = readRPCAction(r, 100, nil); err != io.EOF {
		t.Fatalf("end = %v, want io.EOF", err)
	}

	// Too large: answered, and the stream ends (it cannot be resynchronised).
	a, err = readRPCAction(bytes.NewReader(rpcBytes("a", make([]byte, 101))), 100, nil)
	if err != nil || a.Err == nil || !a.Fatal || !strings.Contains(a.Err.Message, "larger than 100") {
		t.Errorf("large input = %+v, %v", a, err)
	}
	a, err = readRPCAction(bytes.NewReader(rpcBytes(strings.Repeat("n", 256), nil)), 100, nil)
	if err != nil || a.Err == nil || !a.Fatal {
		t.Errorf("long name = %+v, %v", a, err)
	}
	// Invalid UTF-8: answered, the stream goes on.
	a, err = readRPCAction(bytes.NewReader(rpcBytes("\xff", nil)), 100, nil)
	if err != nil || a.Err == nil || a.Fatal {
		t.Errorf("bad name = %+v, %v", a, err)
	}
	// Truncated: an error, not a clean end.
	full := rpcBytes("actor_GetActor", []byte("{}"))
	for n := 1; n < len(full); n++ {
		if _, err := readRPCAction(bytes.NewReader(full[:n]), 100, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated at %d: %v", n, err)
		}
	}
}

func FuzzMuxFrame(f *testing.F) {
	for _, fr := range []muxFrame{
		{Tag: muxHello, Data: []byte("x")},
		{Tag: muxClose, Data: []byte("bye")},
		{Tag: muxChannelRequest, Channel: 1, Frames: 128, Bytes: 16 << 10, Data: []byte("executor")},
		{Tag: muxChannelAccept, Channel: 1, Sender: 2, Frames: 128, Bytes: 16 << 10},
		{Tag: muxChannelReject, Channel: 1, Data: []byte("no")},
		{Tag: muxChannelData, Channel: 1, Data: rpcBytes("actor_GetActor", []byte("{}"))},
		{Tag: muxChannelAdjust, Channel: 1, Frames: 64, Bytes: 8192},
		{Tag: muxChannelClose, Channel: 1},
		{Tag: muxChannelClosed, Channel: 1},
		{Tag: muxPing},
		{Tag: muxPong},
	} {
		f.Add(appendMuxFrame(nil, fr))
	}
	f.Add([]byte{})
	f.Add([]byte{0x16})
	f.Add([]byte{0x10, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseMuxFrame(b, 4096)
		if err != nil {
			if !errors.Is(err, errMuxFrame) {
				t.Fatalf("error %v is not an invalid frame", err)
			}
			return
		}
		size, variable, _ := muxFixed(fr.Tag)
		want := b
		if !variable {
			want = b[:size]
		}
		if got := appendMuxFrame(nil, fr); !bytes.Equal(got, want) {
			t.Fatalf("re-encoding % x, want % x", got, want)
		}
	})
}

func FuzzRPCAction(f *testing.F) {
	f.Add(rpcBytes("actor_GetActor", []byte("{}")))
	f.Add(rpcBytes("", nil))
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0, 1, 'a', 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := readRPCAction(bytes.NewReader(b), 1024, nil)
		if err == nil && a.Err == nil && int64(len(a.Input)) > 1024 {
			t.Fatalf("input of %d bytes accepted", len(a.Input))
		}
	})
}
