package bootenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

// TestUBootScriptMatchesMkimage compares our script images with u-boot-tools' mkimage, and
// checks that mkimage -l accepts them (it verifies both CRCs).
func TestUBootScriptMatchesMkimage(t *testing.T) {
	mkimage := testkit.NeedTool(t, "mkimage", "u-boot-tools")
	mtime := time.Unix(1767225600, 0)
	for _, tt := range []struct{ name, script string }{
		{"Rugpi First Stage", RPiFirstStage},
		{"second", RPiSecondStage("arm64")},
		{"odd", "echo x\n"},
	} {
		dir := t.TempDir()
		src := filepath.Join(dir, "script.txt")
		os.WriteFile(src, []byte(tt.script), 0o644)
		out := filepath.Join(dir, "want.scr")
		cmd := exec.Command(mkimage, "-A", "arm", "-O", "linux", "-T", "script", "-C", "none", "-n", tt.name, "-d", src, out)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1767225600")
		testkit.RunCmd(t, cmd)
		want, _ := os.ReadFile(out)
		got, err := UBootScript(tt.name, []byte(tt.script), mtime)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from mkimage's %d bytes", tt.name, len(got), len(want))
		}
		ours := filepath.Join(dir, "got.scr")
		os.WriteFile(ours, got, 0o644)
		l, err := exec.Command(mkimage, "-l", ours).CombinedOutput()
		if err != nil || !strings.Contains(string(l), "Script") {
			t.Errorf("mkimage -l: %v\n%s", err, l)
		}
	}
	if _, err := UBootScript(strings.Repeat("n", 40), nil, mtime); err == nil {
		t.Error("a 40-byte name was accepted")
	}
}
