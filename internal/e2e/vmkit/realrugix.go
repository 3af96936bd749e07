//go:build linux

package vmkit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// RealRugixCtrlModules are the kernel modules a real rugix-ctrl needs as init beyond
// GuestModules: its root filesystem overlay (silitics/rugix v0.8.15
// crates/apps/rugix-ctrl/src/init.rs, setup_root_overlay: mount -t overlay).
var RealRugixCtrlModules = []string{"overlay"}

// realRugixCtrlTools are the host programs a real rugix-ctrl runs by absolute path that busybox
// does not provide: sfdisk to read and rewrite the partition table (silitics/rugix v0.8.15
// crates/libs/rugix-common/src/disk/sfdisk.rs, /usr/sbin/sfdisk --dump --json; without it
// bootstrapping panics at crates/apps/rugix-ctrl/src/init.rs:289), mkfs.ext4 for the data
// partition (crates/libs/rugix-common/src/partitions.rs, MKFS_ETX4 = /usr/sbin/mkfs.ext4) and
// fsck before mounting it (crates/apps/rugix-ctrl/src/init.rs, FSCK = /usr/sbin/fsck, which runs
// fsck.ext4), and openssl, which checks bundle signatures for --verify-signature (0.8.x runs
// `openssl cms -verify … -CAfile <root>` from PATH, crates/apps/rugix-ctrl/src/cli.rs,
// install_update_bundle; without it every signed bundle fails with "no valid signature found").
// Each is copied to the same path in the guest with its shared libraries.
var realRugixCtrlTools = []string{"/usr/sbin/sfdisk", "/usr/sbin/mkfs.ext4", "/usr/sbin/fsck", "/usr/sbin/fsck.ext4", "/usr/bin/openssl"}

// realRugixCtrlBusybox are the busybox applets a real rugix-ctrl runs by absolute paths other
// than busybox's own (silitics/rugix v0.8.15 crates/apps/rugix-ctrl/src/init.rs: CP, MOUNT, SYNC).
var realRugixCtrlBusybox = []string{"usr/bin/cp", "usr/bin/mount", "usr/bin/sync", "usr/bin/umount"}

// SharedLibraries lists the shared libraries (and the dynamic loader) a host binary needs, with
// their host paths, from ldd. A static binary needs none.
func SharedLibraries(bin string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ldd", bin).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) || bytes.Contains(out, []byte("statically linked")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, bytes.TrimSpace(out))
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "=> not found") {
			return nil, fmt.Errorf("ldd %s: %s", bin, line)
		}
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
		if _, after, ok := strings.Cut(line, "=> "); ok {
			line = after
		}
		p, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(p, "/") {
			libs = append(libs, p)
		}
	}
	return libs, nil
}

// realRugixCtrlFiles returns the host files (guest path = host path) the real rugix-ctrl bin
// needs in the guest: its shared libraries and those of the host tools it runs, and the tools.
func realRugixCtrlFiles(bin string) ([]string, error) {
	seen := map[string]bool{}
	var files []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	for _, b := range append([]string{bin}, realRugixCtrlTools...) {
		if b != bin {
			if _, err := os.Stat(b); err != nil {
				return nil, fmt.Errorf("real rugix-ctrl needs %s in the guest (apt-get install e2fsprogs util-linux fdisk openssl): %w", b, err)
			}
			add(b)
		}
		libs, err := SharedLibraries(b)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			add(l)
		}
	}
	return files, nil
}

// installHostFiles copies each host file to the same path in the rootfs, following symlinks
// (the guest gets the file's content under the name the loader looks for).
func (r *rootfs) installHostFiles(files []string) {
	for _, f := range files {
		real, err := filepath.EvalSymlinks(f)
		if err != nil {
			r.err = fmt.Errorf("install %s: %w", f, err)
			return
		}
		st, err := os.Stat(real)
		if err != nil {
			r.err = fmt.Errorf("install %s: %w", f, err)
			return
		}
		rel := strings.TrimPrefix(filepath.Clean(f), "/")
		r.mkdir(filepath.Dir(rel), 0o755)
		r.copy(rel, real, st.Mode().Perm())
	}
}
