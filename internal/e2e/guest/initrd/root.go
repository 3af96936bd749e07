//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/otabake/otabake/internal/gpt"
)

// bootArgs is what the initramfs takes from the kernel command line.
type bootArgs struct {
	// Root is the root= value: PARTUUID=<guid> or a /dev path.
	Root string
	// FSType is rootfstype=, ext4 when absent.
	FSType string
	// Flags is rootflags=, passed to mount as data.
	Flags string
	// RW is true for "rw"; the default, like the kernel's, is read-only.
	RW bool
	// Init is init=, /sbin/init when absent.
	Init string
}

// splitCmdline splits a command line into parameters the way the kernel does: at spaces,
// except inside double quotes, which are removed.
func splitCmdline(s string) []string {
	var (
		out     []string
		cur     strings.Builder
		quote   bool
		started bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			quote = !quote
			started = true
		case !quote && (r == ' ' || r == '\t' || r == '\n'):
			if started {
				out = append(out, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	if started {
		out = append(out, cur.String())
	}
	return out
}

// parseCmdline extracts the boot arguments from /proc/cmdline. Parameters after "--" belong to
// init and are ignored; later duplicates win, as in the kernel.
func parseCmdline(s string) (bootArgs, error) {
	a := bootArgs{FSType: "ext4", Init: "/sbin/init"}
	for _, p := range splitCmdline(s) {
		if p == "--" {
			break
		}
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "root":
			a.Root = v
		case "rootfstype":
			a.FSType = v
		case "rootflags":
			a.Flags = v
		case "init":
			a.Init = v
		case "ro":
			a.RW = false
		case "rw":
			a.RW = true
		}
	}
	switch {
	case a.Root == "":
		return a, errors.New("kernel command line has no root=")
	case strings.HasPrefix(a.Root, "PARTUUID="):
		if _, err := gpt.ParseGUID(strings.TrimPrefix(a.Root, "PARTUUID=")); err != nil {
			return a, fmt.Errorf("root=%s: only GPT partition UUIDs are supported: %w", a.Root, err)
		}
	case strings.HasPrefix(a.Root, "/dev/"):
	default:
		return a, fmt.Errorf("root=%s: want PARTUUID=<guid> or /dev/<name>", a.Root)
	}
	if !strings.HasPrefix(a.Init, "/") {
		return a, fmt.Errorf("init=%s: not an absolute path", a.Init)
	}
	return a, nil
}

// partitionName returns the kernel name of partition n of disk: vda → vda3, nvme0n1 → nvme0n1p3
// (a "p" separates numbers when the disk name ends in a digit).
func partitionName(disk string, n int) string {
	if disk != "" && disk[len(disk)-1] >= '0' && disk[len(disk)-1] <= '9' {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}

// wholeDisks lists the block devices in sysBlock (/sys/class/block) that are not partitions.
func wholeDisks(sysBlock string) ([]string, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("list block devices in %s: %w", sysBlock, err)
	}
	var disks []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(sysBlock, e.Name(), "partition")); err == nil {
			continue
		}
		disks = append(disks, e.Name())
	}
	return disks, nil
}

// errNotFound says the root device is not (yet) there; the caller retries until its deadline.
var errNotFound = errors.New("root device not found")

// findPartUUID looks through the GPT of every whole disk in sysBlock (opened from devDir) for the
// partition with unique GUID u and returns its device path. Disks without a GPT, or that cannot
// be opened yet, are skipped; their reasons are returned with errNotFound for the final report.
func findPartUUID(sysBlock, devDir string, u gpt.GUID) (string, error) {
	disks, err := wholeDisks(sysBlock)
	if err != nil {
		return "", err
	}
	var reasons []string
	for _, d := range disks {
		n, err := findInDisk(filepath.Join(devDir, d), u)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		if n > 0 {
			return filepath.Join(devDir, partitionName(d, n)), nil
		}
		reasons = append(reasons, fmt.Sprintf("%s: no partition %s", d, u))
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "no disks in "+sysBlock)
	}
	return "", fmt.Errorf("%w: %s", errNotFound, strings.Join(reasons, "; "))
}

// findInDisk returns the number of the partition with unique GUID u on the disk at path, or 0.
func findInDisk(path string, u gpt.GUID) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", path, err)
	}
	t, err := gpt.Read(f, size)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if p, ok := t.FindUUID(u); ok {
		return p.Number, nil
	}
	return 0, nil
}

// readModuleList returns the module paths of a modules.order-style list: one path per line,
// blank lines and # comments skipped.
func readModuleList(r io.Reader) ([]string, error) {
	var mods []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		mods = append(mods, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read module list: %w", err)
	}
	return mods, nil
}
