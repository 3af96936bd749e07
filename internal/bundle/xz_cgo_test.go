//go:build cgo

package bundle

import (
	"bytes"
	"os/exec"
	"strconv"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// TestXZByteIdenticalToLiblzma compares our blocks with `xz -c -N` (liblzma's single-threaded
// easy encoder with CRC64, what rugix-bundler's xz2 uses): identical bytes mean compressed
// bundles match rugix-bundler's byte for byte, too.
func TestXZByteIdenticalToLiblzma(t *testing.T) {
	xz := testkit.NeedTool(t, "xz", "xz-utils")
	data := testData(300<<10, 9)
	for _, lvl := range []int{0, 6, 9} {
		var b bytes.Buffer
		if err := compressXZ(&b, data, lvl); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(xz, "-c", "-T1", "--check=crc64", "-"+strconv.Itoa(lvl))
		cmd.Stdin = bytes.NewReader(data)
		want, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("level %d: %d bytes differ from xz's %d bytes", lvl, b.Len(), len(want))
		}
	}
}
