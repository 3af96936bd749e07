package bundle

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// TestXZStreamsAcceptedByXZ checks that every stream we write is a standard .xz stream with a
// CRC64 check, as `xz -t` (liblzma, the decoder rugix-ctrl uses) sees it.
func TestXZStreamsAcceptedByXZ(t *testing.T) {
	xz := testkit.NeedTool(t, "xz", "xz-utils")
	data := testData(200<<10, 5)
	for _, lvl := range []int{0, 6} {
		var b bytes.Buffer
		if err := compressXZ(&b, data, lvl); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "b.xz")
		os.WriteFile(p, b.Bytes(), 0o644)
		if out, err := exec.Command(xz, "-t", p).CombinedOutput(); err != nil {
			t.Fatalf("level %d: xz -t rejects our stream: %v %s", lvl, err, out)
		}
		out, err := exec.Command(xz, "--robot", "--list", p).Output()
		if err != nil || !strings.Contains(string(out), "CRC64") {
			t.Fatalf("level %d: xz --list: %v %s", lvl, err, out)
		}
		back, err := decompressXZ(nil, b.Bytes(), len(data))
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("level %d: round trip: %v", lvl, err)
		}
		if _, err := decompressXZ(nil, b.Bytes(), len(data)-1); err == nil {
			t.Fatalf("level %d: limit not enforced", lvl)
		}
	}
}

func TestXZRejectsCorruptStreams(t *testing.T) {
	var b bytes.Buffer
	if err := compressXZ(&b, []byte(strings.Repeat("rugix ", 1000)), 1); err != nil {
		t.Fatal(err)
	}
	good := b.Bytes()
	tests := map[string][]byte{
		"empty":     {},
		"magic":     append([]byte("XX"), good[2:]...),
		"truncated": good[:len(good)-10],
		"trailing":  append(bytes.Clone(good), 0, 0, 0, 0),
		"flipped":   flip(good, len(good)/2),
		"header":    flip(good, 14),
	}
	for name, in := range tests {
		if _, err := decompressXZ(nil, in, 1<<20); err == nil {
			t.Errorf("%s: corrupt stream accepted", name)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x55
	return c
}
