// Package e2fs runs e2fsprogs' debugfs against ext4 images, the one way otabake changes an
// image after mkfs.ext4 -d: timestamp clamps, ownership, device nodes and xattrs.
package e2fs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/otabake/otabake/internal/tool"
)

// Debugfs runs script (one debugfs command per line) in a single "debugfs -w -f" session
// against img, with env changing the program's environment as tool.Cmd's Env does (nil:
// inherit). debugfs exits 0 even
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
	// stdout echoes every command; stderr is where the failures are, one line each, the first
	// of them kept.
	stderr := &tool.Output{Max: 1 << 20}
	if _, err := tool.Run(ctx, tool.Cmd{Path: debugfs, Args: []string{"-w", "-f", f.Name(), img}, Env: env, MaxStdout: 1 << 16, Stderr: stderr}); err != nil {
		return fmt.Errorf("debugfs -w %s: %w: %s", img, err, strings.TrimSpace(stderr.String()))
	}
	var problems []string
	sc := bufio.NewScanner(bytes.NewReader(stderr.Bytes()))
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
