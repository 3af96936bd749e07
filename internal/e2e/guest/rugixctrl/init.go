//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

const (
	nextInit = "/sbin/init"
	varLib   = "/var/lib"
)

// initMain is Rugix Ctrl's init role (rugix-images.md §2.7): prepare /run, the config and data
// partitions and persistent state, then hand over to the system's init. Every failure powers
// the machine off after 5 s, so that the host test sees QEMU exit.
func initMain() {
	s := newSystem(func(string) string { return "" }, os.Stderr)
	if err := s.boot(); err != nil {
		s.logf("FATAL: %v", err)
		s.logf("powering off in 5 s")
		time.Sleep(5 * time.Second)
		unix.Sync()
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
			s.logf("power off: %v", err)
		}
		select {}
	}
}

func mountFS(src, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil && !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", src, fstype, target, err)
	}
	return nil
}

// mountAPI mounts a kernel filesystem unless it is mounted already (the initramfs moves its
// /dev, /proc and /sys into the root).
func mountAPI(fstype, target string, flags uintptr, data string) error {
	if err := unix.Mount(fstype, target, fstype, flags, data); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	return nil
}

func (s *system) boot() error {
	const nosuid = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if _, err := os.Stat("/proc/self"); err != nil {
		if err := mountAPI("proc", "/proc", nosuid, ""); err != nil {
			return err
		}
	}
	if _, err := os.Stat("/sys/class"); err != nil {
		if err := mountAPI("sysfs", "/sys", nosuid, ""); err != nil {
			return err
		}
	}
	if _, err := os.Stat("/dev/null"); err != nil {
		if err := mountAPI("devtmpfs", "/dev", unix.MS_NOSUID, "mode=0755"); err != nil {
			return err
		}
	}
	if err := mountFS("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return err
	}
	if err := mountFS("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return err
	}
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		return fmt.Errorf("create /run/lock: %w", err)
	}
	if err := waitNode(s.partDev(partConfig), 10*time.Second); err != nil {
		return err
	}
	if err := mountFS(s.partDev(partConfig), s.configDir, "vfat", unix.MS_RDONLY, ""); err != nil {
		return err
	}
	if s.bootstrapPending() {
		s.logf("bootstrapping: layout of %s (Rugix Ctrl's default with 4 GiB systems when absent)", s.bootstrapPath)
		if err := s.bootstrap(); err != nil {
			return err
		}
	}
	data := s.partDev(partData)
	if err := waitNode(data, 10*time.Second); err != nil {
		return fmt.Errorf("data partition (was the disk bootstrapped?): %w", err)
	}
	if err := mountFS(data, s.dataDir, "ext4", unix.MS_NOATIME, ""); err != nil {
		return err
	}
	state := filepath.Join(s.dataDir, "state", "var-lib")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", state, err)
	}
	if err := unix.Mount(state, varLib, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s (does the root have %s?): %w", state, varLib, varLib, err)
	}
	t, err := s.readTable()
	if err != nil {
		return err
	}
	active, root, err := s.activeGroup(t)
	if err != nil {
		return err
	}
	def, err := s.defaultGroup()
	if err != nil {
		return err
	}
	s.logf("boot group %s (root %s), default group %s", active, root, def)
	if err := unix.Exec(nextInit, []string{nextInit}, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", nextInit, err)
	}
	return nil
}
