// Package rootfs turns a root filesystem input (a directory, or a tar, tar.gz, tar.xz or
// tar.zst archive) into a directory that mkfs.ext4 -d can copy, plus the debugfs commands
// that restore what an ordinary user cannot create on disk: ownership, setuid/setgid/sticky
// modes, device nodes, FIFOs and extended attributes such as security.capability.
//
// Extraction never writes outside its work directory: absolute names, ".." components,
// writes through symlinks and hard links to names outside the archive are each rejected with
// an error naming the entry. Nothing that needs privileges is done on disk; it is recorded and
// expressed as debugfs commands ("sif", "mknod", "ln", "ea_set") for internal/image, which
// runs them in one "debugfs -w -f" session after mkfs.ext4 -E root_owner=0:0.
package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/e2fs"
)

// Options controls how an input becomes a tree.
type Options struct {
	// KeepOwners disables mapping files owned by the current user to root:root for a
	// directory input. The mapping exists because a rootfs staged by an ordinary user (a
	// debootstrap tree under fakeroot's absence, a Yocto ${IMAGE_ROOTFS} copy) is owned by
	// that user on disk but meant to be owned by root on the device.
	KeepOwners bool
	// Clamp, when not zero, limits the timestamps of inodes created by fixups (device nodes,
	// FIFOs), like SOURCE_DATE_EPOCH does for the rest of the image.
	Clamp time.Time
}

// Tree is a root filesystem on disk together with the fixups that make its ext4 image right.
type Tree struct {
	// Dir is the directory to pass to mkfs.ext4 -d.
	Dir string
	// Entries is the number of archive entries extracted (0 for a directory input).
	Entries int
	// Warnings lists things that were dropped, such as POSIX ACL records.
	Warnings []string
	fixups   Fixups
}

// Fixups returns the debugfs commands to run against the ext4 image built from t.Dir. Side
// files the commands name (xattr values) live in the work directory and stay valid as long
// as it exists.
func (t *Tree) Fixups() Fixups { return t.fixups }

// Fixups is a list of debugfs commands, one per line of a "debugfs -w -f" script.
type Fixups []string

// Apply runs the commands against an ext4 image in one debugfs session.
func (f Fixups) Apply(ctx context.Context, ext4Image string) error {
	return ApplyFixups(ctx, ext4Image, f)
}

// ApplyFixups runs cmds against ext4Image with one "debugfs -w -f SCRIPT" session; any
// command debugfs reports as failed is an error.
func ApplyFixups(ctx context.Context, ext4Image string, cmds []string) error {
	if len(cmds) == 0 {
		return nil
	}
	var script bytes.Buffer
	for _, c := range cmds {
		if strings.ContainsAny(c, "\n\r") {
			return fmt.Errorf("apply fixups to %s: command %q contains a newline", ext4Image, c)
		}
		script.WriteString(c)
		script.WriteByte('\n')
	}
	if err := e2fs.Debugfs(ctx, ext4Image, script.Bytes(), nil); err != nil {
		return fmt.Errorf("apply fixups: %w", err)
	}
	return nil
}

// Open prepares src: a directory is used in place (workDir only holds xattr side files, see
// fromDir); a file is detected by its magic bytes and extracted into workDir/rootfs, workDir
// not existing or being empty.
func Open(ctx context.Context, src, workDir string, opts Options) (*Tree, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	if fi.IsDir() {
		return fromDir(ctx, src, workDir, opts)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	defer f.Close()
	t, err := Extract(ctx, f, workDir, opts)
	if err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", src, err)
	}
	return t, nil
}

// quote renders a path for a debugfs script. debugfs's parser takes double-quoted words;
// names containing quotes or line breaks are rejected earlier because internal/image's
// timestamp clamp cannot address them either.
func quote(p string) string { return `"` + p + `"` }

var errUnaddressable = errors.New("name contains a double quote or line break, which debugfs cannot address")
