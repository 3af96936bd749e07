// Package e2fs runs e2fsprogs' debugfs against ext4 images, the one way otabake changes an
// image after mkfs.ext4 -d: timestamp clamps, ownership, device nodes and xattrs.
package e2fs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/otabake/otabake/internal/tool"
)

// Debugfs runs script (one debugfs command per line) in a single "debugfs -w -f" session
// against img, with env as the program's environment (nil: inherit). debugfs exits 0 even
// when commands fail and reports them on stderr only, so any stderr line beyond its version
// banner is an error; the count and the first one are returned.
func Debugfs(ctx context.Context, img string, script []byte, env []string) error {
	debugfs, err := tool.Find("debugfs", "e2fsprogs")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(img), ".debugfs-*.script")
	if err != nil {
		return fmt.Errorf("debugfs script for %s: %w", img, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(script); err != nil {
		f.Close()
		return fmt.Errorf("write debugfs script: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write debugfs script: %w", err)
	}
	cmd := exec.CommandContext(ctx, debugfs, "-w", "-f", f.Name(), img)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debugfs -w %s: %w: %s", img, err, strings.TrimSpace(stderr.String()))
	}
	var problems []string
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "debugfs ") {
			continue
		}
		problems = append(problems, line)
	}
	if len(problems) > 0 {
		return fmt.Errorf("debugfs -w %s: %d of %d commands failed, first: %s", img, len(problems), bytes.Count(script, []byte{'\n'}), problems[0])
	}
	return nil
}
