package hub

import (
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	hex32 := "dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f"
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"sha256_" + hex32, "sha256_" + hex32, true},
		{"sha256:" + hex32, "sha256_" + hex32, true},
		{"sha512-256:" + hex32, "sha512_256_" + hex32, true},
		{"sha512_256_" + hex32, "sha512_256_" + hex32, true},
		{"sha256_" + hex32[:10], "", false},
		{"md5_" + hex32, "", false},
		{"sha256_" + "DFFD" + hex32[4:], "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := ParseDigest(tt.in)
		if (err == nil) != tt.ok || string(got) != tt.want {
			t.Errorf("ParseDigest(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if d := Digest("sha512_256_" + hex32); d.Algorithm() != "sha512_256" || d.Hex() != hex32 {
		t.Errorf("Algorithm/Hex = %q %q", d.Algorithm(), d.Hex())
	}
}

func TestParseVersionPath(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{{"r/p/t", true}, {"r/p", false}, {"r/p/t/x", false}, {"r//t", false}, {"/p/t", false}, {"r/p/", false}} {
		p, err := ParseVersionPath(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseVersionPath(%q) = %v, %v", tt.in, p, err)
		}
		if err == nil && p.String() != tt.in {
			t.Errorf("String() = %q", p.String())
		}
	}
}

func TestValidNames(t *testing.T) {
	if ValidName("tag", "build-2026.1_x", 128) != nil || ValidName("tag", "-x", 128) == nil || ValidName("tag", "", 128) == nil {
		t.Error("ValidName")
	}
	if ValidFilename("a/b.rugixb") != nil || ValidFilename("a//b") == nil || ValidFilename("") == nil {
		t.Error("ValidFilename")
	}
}

func TestValidFilename(t *testing.T) {
	for _, ok := range []string{"system.rugixb", "x86_64-unknown-linux-gnu/nexigon-agent", "a..b", "..a", "名前.img", strings.Repeat("x", 256)} {
		if err := ValidFilename(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "nul\x00", "nl\n", "\x1b[31m", "del\x7f", "c1\u009b", "..", ".", "../x", "a/../b", "a/./b", "/abs", "x/", "a//b", `a\b`, "bad\xffutf8", strings.Repeat("x", 257)} {
		err := ValidFilename(bad)
		if !IsKind(err, KindInvalid) {
			t.Errorf("%q: err = %v, want Invalid", bad, err)
			continue
		}
		// The message quotes the name, so it never carries raw control characters.
		if strings.ContainsAny(err.Error(), "\x00\n\x1b\x7f") {
			t.Errorf("%q: message %q is not escaped", bad, err)
		}
	}
}
