package stlv

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// The atom-head table of specs/rugix-bundle.md §1.1, verified there with Rugix's write_atom_head.
func TestAtomHeads(t *testing.T) {
	const tag = Tag(0x42fd641a)
	tests := []struct {
		len  uint64
		want string
	}{
		{0, "42fd641a80"},
		{1, "42fd641a81"},
		{126, "42fd641afe"},
		{127, "42fd641aff00"},
		{128, "42fd641aff01"},
		{254, "42fd641aff7f"},
		{255, "42fd641aff8100"},
		{256, "42fd641aff8101"},
		{16510, "42fd641affff7f"},
		{16511, "42fd641aff818000"},
		{2097278, "42fd641affffff7f"},
		{2097279, "42fd641aff81808000"},
		{1048576, "42fd641affbfff01"},
		{1060921, "42fd641affc0df3a"},
		{4294967296, "42fd641aff8fffffff01"},
	}
	for _, tt := range tests {
		h := Head{Tag: tag, Kind: Value, Len: tt.len}
		got := hex.EncodeToString(AppendHead(nil, h))
		if got != tt.want {
			t.Errorf("len %d: head %s, want %s", tt.len, got, tt.want)
		}
		if HeadSize(h) != len(tt.want)/2 {
			t.Errorf("len %d: HeadSize %d, want %d", tt.len, HeadSize(h), len(tt.want)/2)
		}
		b, _ := hex.DecodeString(tt.want)
		back, n, err := ParseHead(b)
		if err != nil || back != h || n != len(b) {
			t.Errorf("len %d: ParseHead = %+v, %d, %v", tt.len, back, n, err)
		}
	}
	if got := hex.EncodeToString(AppendStart(nil, 0x490cafaf)); got != "490cafaf40" {
		t.Errorf("start: %s", got)
	}
	if got := hex.EncodeToString(AppendEnd(nil, 0x490cafaf)); got != "490cafaf00" {
		t.Errorf("end: %s", got)
	}
}

func TestParseHeadErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"42fd64", "truncated"},
		{"42fd641a41", "non-zero segmentation"},
		{"42fd641a01", "non-zero segmentation"},
		{"42fd641aff", "truncated"},
		{"42fd641aff80", "zero digit"},
		{"42fd641aff8180", "truncated"},
		{"42fd641affffffffffffffffffff7f", "exceeds 63 bits"},
		{"42fd641affffffffffffffffff7f", "exceeds 63 bits"},
	}
	for _, tt := range tests {
		b, _ := hex.DecodeString(tt.in)
		_, _, err := ParseHead(b)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestVarintRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 126, 127, 128, 1<<14 - 1, 1 << 14, 1<<21 + 5, 1<<35 - 1, maxVarint - lenInline} {
		h := Head{Tag: 1, Kind: Value, Len: v + lenInline}
		b := AppendHead(nil, h)
		back, n, err := ParseHead(b)
		if err != nil || back != h || n != len(b) {
			t.Errorf("%d: %+v %d %v", v, back, n, err)
		}
	}
}

type inner struct {
	Name string   `stlv:"0x00000011"`
	List []string `stlv:"0x00000012"`
}

type outer struct {
	Opt    *string  `stlv:"0x00000001"`
	Flag   bool     `stlv:"0x00000002"`
	Raw    []byte   `stlv:"0x00000003"`
	N      uint32   `stlv:"0x00000004"`
	Inner  inner    `stlv:"0x00000005"`
	Many   []inner  `stlv:"0x00000006"`
	MaybeB *[]byte  `stlv:"0x00000007"`
	Blobs  [][]byte `stlv:"0x80000008"`
	Ptr    *inner   `stlv:"0x00000009"`
}

func TestMarshalRoundTrip(t *testing.T) {
	s := "x"
	empty := []byte{}
	v := outer{Opt: &s, Flag: true, Raw: []byte{1, 2}, N: 0x01020304, Inner: inner{Name: "a", List: []string{"p", "q"}},
		Many: []inner{{Name: "b"}, {Name: "c"}}, MaybeB: &empty, Blobs: [][]byte{{9}, {}}}
	b, err := Marshal(0x70000000, &v)
	if err != nil {
		t.Fatal(err)
	}
	// Fields in declaration order, Vec elements consecutive, None omitted.
	want := "7000000040" + "0000000181" + "78" + "0000000281" + "01" + "0000000382" + "0102" + "0000000484" + "01020304" +
		"0000000540" + "0000001181" + "61" + "0000001281" + "70" + "0000001281" + "71" + "0000000500" +
		"0000000640" + "0000001181" + "62" + "0000000600" + "0000000640" + "0000001181" + "63" + "0000000600" +
		"0000000780" + "8000000881" + "09" + "8000000880" + "7000000000"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("Marshal:\n got %s\nwant %s", got, want)
	}
	var back outer
	if err := Unmarshal(b, 0x70000000, &back); err != nil {
		t.Fatal(err)
	}
	again, _ := Marshal(0x70000000, &back)
	if !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs")
	}
	if back.Ptr != nil || back.MaybeB == nil || len(*back.MaybeB) != 0 {
		t.Fatalf("optional fields: %+v", back)
	}
}

func TestUnmarshalRules(t *testing.T) {
	type small struct {
		A bool    `stlv:"0x00000001"`
		B *string `stlv:"0x00000002"`
	}
	seg := func(body string) []byte {
		b, _ := hex.DecodeString("7000000040" + body + "7000000000")
		return b
	}
	tests := []struct {
		name, body, want string
	}{
		{"any order", "0000000281" + "78" + "0000000181" + "01", ""},
		{"unknown optional value skipped", "8012345682abcd" + "0000000181" + "00", ""},
		{"unknown optional segment skipped", "8012345640" + "0012345681" + "00" + "8012345600" + "0000000181" + "00", ""},
		{"unknown required", "0012345681" + "00" + "0000000181" + "00", "unknown tag 0x00123456"},
		{"duplicate", "0000000181" + "01" + "0000000181" + "01", "appears twice"},
		{"missing required", "0000000281" + "78", "missing value for field A"},
		{"bad bool", "0000000181" + "02", "invalid boolean"},
		{"bool too long", "0000000182" + "0100", "invalid boolean"},
		{"bad utf8", "0000000181" + "01" + "0000000281" + "ff", "invalid UTF-8"},
		{"segment for value", "0000000140" + "0000000100", "unexpected start"},
		{"mismatched end", "0000000181" + "01" + "8012345640" + "8012345700", "end of segment"},
		{"value past end", "0000000190" + "01", "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v small
			err := Unmarshal(seg(tt.body), 0x70000000, &v)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	var v small
	b := append(seg("0000000181"+"01"), 0)
	if err := Unmarshal(b, 0x70000000, &v); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Fatalf("trailing bytes: %v", err)
	}
}

func TestDepthLimit(t *testing.T) {
	type node struct {
		A bool `stlv:"0x00000001"`
	}
	var b []byte
	b = AppendStart(b, 0x70000000)
	for i := 0; i < 40; i++ {
		b = AppendStart(b, 0x80000001)
	}
	for i := 0; i < 40; i++ {
		b = AppendEnd(b, 0x80000001)
	}
	b = AppendEnd(b, 0x70000000)
	var v node
	if err := Unmarshal(b, 0x70000000, &v); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("depth: %v", err)
	}
	r := NewReader(bytes.NewReader(b), 0)
	r.Next()
	if _, err := r.ReadSegment(0x70000000, 1<<20); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("ReadSegment depth: %v", err)
	}
}

func TestReader(t *testing.T) {
	var b []byte
	b = AppendStart(b, 1)
	b = AppendValue(b, 2, bytes.Repeat([]byte{7}, 300))
	b = AppendStart(b, 3)
	b = AppendValue(b, 4, []byte("hi"))
	b = AppendEnd(b, 3)
	b = AppendEnd(b, 1)
	r := NewReader(bytes.NewReader(b), 100)
	if h, err := r.Next(); err != nil || h.Kind != Start || h.Tag != 1 {
		t.Fatal(h, err)
	}
	h, err := r.Next()
	if err != nil || h.Len != 300 || r.Offset() != 100+5+7 {
		t.Fatal(h, err, r.Offset())
	}
	if _, err := r.ReadValue(299); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatal("limit not enforced", err)
	}
	if h, err := r.Next(); err != nil || h.Tag != 3 { // skips the unread value
		t.Fatal(h, err)
	}
	seg, err := r.ReadSegment(3, 1000)
	if err != nil || !bytes.Equal(seg, b[5+7+300:len(b)-5]) {
		t.Fatalf("ReadSegment = %x, %v", seg, err)
	}
	if h, err := r.Next(); err != nil || h.Kind != End {
		t.Fatal(h, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatal("want EOF", err)
	}
	// Limit and truncation.
	r = NewReader(bytes.NewReader(b), 0)
	r.Next()
	if _, err := r.ReadSegment(1, 100); err == nil || !strings.Contains(err.Error(), "size limit") {
		t.Fatal(err)
	}
	r = NewReader(bytes.NewReader(b[:50]), 0)
	r.Next()
	if _, err := r.ReadSegment(1, 1000); !errors.Is(err, ErrTruncated) {
		t.Fatal(err)
	}
}
