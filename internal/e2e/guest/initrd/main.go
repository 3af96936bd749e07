//go:build linux

// Command initrd is the /init of the initramfs that the QEMU end-to-end test boots: it loads
// the kernel modules the disk and filesystems need, finds the root partition named on the
// kernel command line (root=PARTUUID=… from Rugix's boot.grubenv), mounts it and hands over to
// its init (Rugix Ctrl's stand-in). Any failure is printed to the console and the machine is
// powered off, so that the host test sees QEMU exit instead of a hang or a reboot loop.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/gpt"
)

const (
	prefix      = "otabake-initrd: "
	newRoot     = "/newroot"
	modulesDir  = "/lib/modules"
	modulesList = "/etc/modules.order"
	rootWait    = 20 * time.Second
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, prefix+format+"\n", args...)
}

func main() {
	if err := run(); err != nil {
		fatal(err)
	}
}

// fatal reports err, shows what /dev holds (the usual reason is a missing driver) and powers
// the machine off.
func fatal(err error) {
	logf("FATAL: %v", err)
	if ents, derr := os.ReadDir("/dev"); derr == nil {
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			names = append(names, e.Name())
		}
		logf("/dev: %s", strings.Join(names, " "))
	}
	if os.Getpid() != 1 {
		os.Exit(1)
	}
	logf("powering off in 10 s")
	time.Sleep(10 * time.Second)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		logf("power off: %v", err)
	}
	select {}
}

func run() error {
	for _, d := range []string{"/dev", "/proc", "/sys", newRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := mountAPI("devtmpfs", "/dev", unix.MS_NOSUID, "mode=0755"); err != nil {
		return err
	}
	attachConsole()
	if err := mountAPI("proc", "/proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := mountAPI("sysfs", "/sys", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	loadModules()

	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read kernel command line: %w", err)
	}
	args, err := parseCmdline(string(cmdline))
	if err != nil {
		return fmt.Errorf("kernel command line %q: %w", strings.TrimSpace(string(cmdline)), err)
	}
	dev, err := waitRoot(args.Root)
	if err != nil {
		return err
	}
	var flags uintptr
	mode := "rw"
	if !args.RW {
		flags |= unix.MS_RDONLY
		mode = "ro"
	}
	if err := mount(dev, newRoot, args.FSType, flags, args.Flags); err != nil {
		return err
	}
	if _, err := os.Lstat(filepath.Join(newRoot, args.Init)); err != nil {
		return fmt.Errorf("init %s on root %s: %w", args.Init, dev, err)
	}
	logf("root %s is %s (%s, %s); exec %s", args.Root, dev, args.FSType, mode, args.Init)
	if err := switchRoot(); err != nil {
		return err
	}
	if err := unix.Exec(args.Init, []string{args.Init}, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", args.Init, err)
	}
	return nil
}

// mount wraps mount(2) with an error that names the mount.
func mount(src, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", src, fstype, target, err)
	}
	return nil
}

// mountAPI mounts a kernel filesystem (devtmpfs, proc, sysfs); one the kernel mounted already
// (EBUSY, as with CONFIG_DEVTMPFS_MOUNT) is fine.
func mountAPI(fstype, target string, flags uintptr, data string) error {
	err := unix.Mount(fstype, target, fstype, flags, data)
	if err == nil || errors.Is(err, unix.EBUSY) {
		return nil
	}
	return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
}

// attachConsole makes /dev/console the standard streams: an initramfs without a console node
// starts init with none, and both this program's messages and the next init need them.
func attachConsole() {
	// A raw descriptor, not an *os.File, whose finalizer would close it if it landed on 0–2.
	c, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for fd := 0; fd < 3; fd++ {
		if fd != c {
			_ = unix.Dup3(c, fd, 0)
		}
	}
	if c > 2 {
		unix.Close(c)
	}
}

// loadModules loads every module of /etc/modules.order in order. The list is already in
// dependency order; a module that is built in or loaded already (EEXIST) is fine, and other
// failures are reported but do not stop the boot, since the module may not be needed.
func loadModules() {
	f, err := os.Open(modulesList)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		logf("modules: %v", err)
		return
	}
	mods, err := readModuleList(f)
	f.Close()
	if err != nil {
		logf("modules: %s: %v", modulesList, err)
		return
	}
	failed := 0
	for _, m := range mods {
		if err := loadModule(filepath.Join(modulesDir, m)); err != nil {
			logf("module %s: %v", m, err)
			failed++
		}
	}
	logf("loaded %d of %d modules from %s", len(mods)-failed, len(mods), modulesList)
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module: %w", err)
	}
	return nil
}

// waitRoot resolves root= to a device node, waiting up to rootWait for drivers to probe.
func waitRoot(root string) (string, error) {
	deadline := time.Now().Add(rootWait)
	for {
		dev, err := resolveRoot(root)
		if err == nil {
			if _, serr := os.Stat(dev); serr == nil {
				return dev, nil
			}
			err = fmt.Errorf("%w: %s has no device node yet", errNotFound, dev)
		}
		if !errors.Is(err, errNotFound) || time.Now().After(deadline) {
			return "", fmt.Errorf("root=%s after %s: %w", root, rootWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func resolveRoot(root string) (string, error) {
	if u, ok := strings.CutPrefix(root, "PARTUUID="); ok {
		g, err := gpt.ParseGUID(u)
		if err != nil {
			return "", err
		}
		return findPartUUID("/sys/class/block", "/dev", g)
	}
	return root, nil
}

// switchRoot moves the API filesystems into the new root and makes it "/", like switch_root:
// the initramfs stays behind in memory, which is fine for a test VM.
func switchRoot() error {
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		target := filepath.Join(newRoot, d)
		if st, err := os.Stat(target); err == nil && st.IsDir() {
			if err := unix.Mount(d, target, "", unix.MS_MOVE, ""); err != nil {
				return fmt.Errorf("move %s to %s: %w", d, target, err)
			}
			continue
		}
		logf("root has no %s; unmounting it", d)
		if err := unix.Unmount(d, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", d, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("chdir %s: %w", newRoot, err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", newRoot, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir / in the new root: %w", err)
	}
	return nil
}
