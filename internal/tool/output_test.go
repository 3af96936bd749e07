package tool

import (
	"strings"
	"testing"
)

func TestOutput(t *testing.T) {
	for _, tc := range []struct {
		name       string
		max        int
		tail       bool
		writes     []string
		want       string
		overflowed bool
	}{
		{"head fits", 10, false, []string{"abc", "def"}, "abcdef", false},
		{"head cut", 4, false, []string{"abc", "def", "ghi"}, "abcd", true},
		{"tail fits", 10, true, []string{"abc", "def"}, "abcdef", false},
		{"tail cut across writes", 4, true, []string{"abc", "def", "gh"}, "efgh", true},
		{"tail one big write", 3, true, []string{"abcdefg"}, "efg", true},
		{"zero max", 0, false, []string{"abc"}, "", true},
		{"tail keeps the newest", 8, true, []string{"0123", "4567", "89", "abcdefghijkl"}, "efghijkl", true},
		{"tail shifts", 8, true, []string{"01234", "5678"}, "12345678", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &Output{Max: tc.max, Tail: tc.tail}
			for _, w := range tc.writes {
				if n, err := o.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if o.String() != tc.want || o.Overflowed() != tc.overflowed || o.Len() != len(tc.want) {
				t.Errorf("got %q overflowed %v, want %q %v", o.String(), o.Overflowed(), tc.want, tc.overflowed)
			}
		})
	}
	// A long stream stays bounded.
	o := &Output{Max: 64, Tail: true}
	for i := 0; i < 10000; i++ {
		o.Write([]byte(strings.Repeat("x", 100)))
	}
	if o.Len() != 64 {
		t.Errorf("tail capture grew to %d bytes", o.Len())
	}
}
