package bake

import (
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/agent"
)

// FuzzSetOSRelease feeds hostile os-release files (they come from the rootfs) and values:
// baking never panics, keeps every other line, and the device's parser (otabake-agent's)
// reads back exactly the values that were baked.
func FuzzSetOSRelease(f *testing.F) {
	f.Add([]byte("ID=debian\nVERSION_ID=\"12\"\n"), "quickstart", "build-20260101000000-abc1234")
	f.Add([]byte("IMAGE_ID=old\n# comment\nIMAGE_VERSION='x'\nNAME=\"a \\\"b\\\" c\""), "a b", `we"ird$\`+"`")
	f.Add([]byte("\x00\xff=\n=\n  IMAGE_ID =x\n"), "", "-")
	f.Fuzz(func(t *testing.T, content []byte, id, version string) {
		if strings.ContainsAny(id+version, "\n\r") || len(content) > 1<<16 {
			return
		}
		out := SetOSRelease(content, map[string]string{"IMAGE_ID": id, "IMAGE_VERSION": version})
		got := agent.ParseOSRelease(out)
		if got["IMAGE_ID"] != strings.TrimSpace(id) && got["IMAGE_ID"] != id {
			t.Fatalf("IMAGE_ID baked %q, read back %q from %q", id, got["IMAGE_ID"], out)
		}
		if got["IMAGE_VERSION"] != strings.TrimSpace(version) && got["IMAGE_VERSION"] != version {
			t.Fatalf("IMAGE_VERSION baked %q, read back %q from %q", version, got["IMAGE_VERSION"], out)
		}
	})
}
