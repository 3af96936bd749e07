package sign

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckDER(t *testing.T) {
	deep := []byte{0x30, 0x00}
	for i := 0; i <= maxDERDepth; i++ {
		n := len(deep)
		if n < 0x80 {
			deep = append([]byte{0x30, byte(n)}, deep...)
		} else {
			deep = append([]byte{0x30, 0x81, byte(n)}, deep...)
		}
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty sequence", []byte{0x30, 0x00}, ""},
		{"nested", []byte{0x30, 0x05, 0x04, 0x03, 'a', 'b', 'c'}, ""},
		{"long form length", append([]byte{0x04, 0x81, 0x80}, make([]byte, 0x80)...), ""},
		{"high tag number", []byte{0x9f, 0x81, 0x01, 0x00}, ""},
		{"one byte", []byte{0x30}, "offset 0: truncated tag or length"},
		{"short content", []byte{0x30, 0x03, 0x04, 0x03, 'a'}, "offset 2: length 3 runs past the end of the input (1 bytes left)"},
		{"short outer", []byte{0x30, 0x05, 0x04, 0x03, 'a'}, "offset 0: length 5 runs past the end"},
		{"indefinite", []byte{0x30, 0x80, 0x00, 0x00}, "offset 0: indefinite length"},
		{"non-minimal long form", []byte{0x04, 0x81, 0x01, 'a'}, "offset 0: non-minimal length"},
		{"leading zero length byte", []byte{0x04, 0x82, 0x00, 0x01, 'a'}, "offset 0: non-minimal length"},
		{"huge length field", []byte{0x04, 0x85, 1, 2, 3, 4, 5}, "length field of 5 bytes"},
		{"length past end", []byte{0x04, 0x84, 0x7f, 0xff, 0xff, 0xff}, "runs past the end"},
		{"trailing", []byte{0x05, 0x00, 0x00}, "offset 2: 1 trailing bytes"},
		{"truncated high tag", []byte{0x1f, 0x81}, "truncated tag"},
		{"too deep", deep, "nested deeper than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkDER(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("checkDER: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("checkDER = %v, want error containing %q", err, tc.wantErr)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v is not ErrMalformed", err)
			}
		})
	}
}
