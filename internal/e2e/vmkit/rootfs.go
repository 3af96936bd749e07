//go:build linux

package vmkit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultBusybox is where Debian's busybox-static package installs its statically linked busybox.
const DefaultBusybox = "/bin/busybox"

// Guest network under QEMU user networking: the guest address and the host, which is also the
// gateway. The Hub the test starts on the host is reached as http://10.0.2.2:<port>.
const (
	GuestAddr = "10.0.2.15/24"
	HostAddr  = "10.0.2.2"
)

// ReadyMarker is the line rcS prints on the console once networking is up; the test waits for
// it before driving the serial shell.
const ReadyMarker = "otabake-e2e: ready"

// HubTokenFile is where the guest's device token lives, named by agent.toml.
const HubTokenFile = "/etc/otabake/hub-token"

// RootfsOptions says what goes into the guest root filesystem.
type RootfsOptions struct {
	// Kernel provides /boot/vmlinuz.
	Kernel *Kernel
	// Initramfs is the path of the archive WriteInitramfs wrote; it becomes /boot/initrd.img.
	Initramfs string
	// Agent and RugixCtrl are static binaries, installed as /usr/bin/otabake-agent and
	// /usr/bin/rugix-ctrl.
	Agent, RugixCtrl string
	// RealRugixCtrl says RugixCtrl is a real Rugix Ctrl build rather than the static stand-in:
	// its shared libraries (ldd), the host tools it runs by absolute path (mkfs.ext4, fsck) with
	// theirs, and busybox links at the paths it expects (/usr/bin/mount, …) are installed too.
	RealRugixCtrl bool
	// Busybox is a static busybox; empty means DefaultBusybox (apt-get install busybox-static).
	Busybox string
	// HubURL, HubToken and DeviceID configure the agent's hub transport.
	HubURL, HubToken, DeviceID string
	// Hostname goes to /etc/hostname; empty means "otabake-e2e".
	Hostname string
	// ImageID and ImageVersion, when set, become IMAGE_ID and IMAGE_VERSION in /etc/os-release,
	// the agent's fallback identity when the image carries no Rugix build info.
	ImageID, ImageVersion string
	// Extra adds or replaces files: rootfs path → content, written 0644 after everything else.
	Extra map[string][]byte
}

// ComposeRootfs writes a bootable busybox root filesystem into dir (created if missing): busybox
// with every applet as a symlink and /sbin/init pointing at it, the agent and the rugix-ctrl
// stand-in, /boot/vmlinuz and /boot/initrd.img (otabake's native builder makes the boot
// partition from these), init scripts that bring up the QEMU user network on a read-only root
// and give a root shell on ttyS0, the agent configuration for the hub transport, and the empty
// directories that serve as mount points.
func ComposeRootfs(dir string, opt RootfsOptions) error {
	if opt.Kernel == nil {
		return errors.New("compose rootfs: no kernel")
	}
	for what, p := range map[string]string{"initramfs": opt.Initramfs, "agent": opt.Agent, "rugix-ctrl": opt.RugixCtrl} {
		if p == "" {
			return fmt.Errorf("compose rootfs: no %s binary given", what)
		}
	}
	if opt.HubURL == "" || opt.HubToken == "" || opt.DeviceID == "" {
		return errors.New("compose rootfs: HubURL, HubToken and DeviceID are all required")
	}
	busybox := opt.Busybox
	if busybox == "" {
		busybox = DefaultBusybox
	}
	if _, err := os.Stat(busybox); err != nil {
		return fmt.Errorf("compose rootfs: no busybox at %s (apt-get install busybox-static): %w", busybox, err)
	}
	hostname := opt.Hostname
	if hostname == "" {
		hostname = "otabake-e2e"
	}
	r := &rootfs{dir: dir}

	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "boot", "etc/init.d", "etc/otabake",
		"var/lib", "run", "tmp", "proc", "sys", "dev", "mnt", "root"} {
		r.mkdir(d, 0o755)
	}
	r.chmod("tmp", 0o777|fs.ModeSticky)
	r.chmod("root", 0o700)

	r.copy("bin/busybox", busybox, 0o755)
	if r.err == nil {
		applets, err := busyboxApplets(busybox)
		if err != nil {
			return err
		}
		for _, a := range applets {
			r.busyboxLink(a)
		}
		r.busyboxLink("sbin/init")
	}
	r.copy("usr/bin/rugix-ctrl", opt.RugixCtrl, 0o755)
	if opt.RealRugixCtrl && r.err == nil {
		files, err := realRugixCtrlFiles(opt.RugixCtrl)
		if err != nil {
			return fmt.Errorf("compose rootfs: %w", err)
		}
		r.installHostFiles(files)
		for _, l := range realRugixCtrlBusybox {
			r.busyboxLink(l)
		}
	}
	r.copy("usr/bin/otabake-agent", opt.Agent, 0o755)
	r.copy("boot/vmlinuz", opt.Kernel.Vmlinuz, 0o644)
	r.copy("boot/initrd.img", opt.Initramfs, 0o644)

	r.write("etc/inittab", []byte(inittab), 0o644)
	r.write("etc/init.d/rcS", []byte(rcS), 0o755)
	r.write("etc/profile", []byte(profile), 0o644)
	r.write("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	r.write("etc/group", []byte("root:x:0:\n"), 0o644)
	r.write("etc/hostname", []byte(hostname+"\n"), 0o644)
	r.write("etc/os-release", osRelease(opt.ImageID, opt.ImageVersion), 0o644)
	agentTOML, err := agentSettings(opt)
	if err != nil {
		return err
	}
	r.write("etc/otabake/agent.toml", agentTOML, 0o644)
	r.write(strings.TrimPrefix(HubTokenFile, "/"), []byte(opt.HubToken+"\n"), 0o600)

	for p, data := range opt.Extra {
		rel := path.Clean("/" + filepath.ToSlash(p))[1:]
		if rel == "" {
			return fmt.Errorf("compose rootfs: extra file %q has no name", p)
		}
		r.mkdir(path.Dir(rel), 0o755)
		r.write(rel, data, 0o644)
	}
	if r.err != nil {
		return fmt.Errorf("compose rootfs in %s: %w", dir, r.err)
	}
	return nil
}

// rootfs collects the first error so that ComposeRootfs reads as the list of what it installs.
type rootfs struct {
	dir string
	err error
}

func (r *rootfs) path(rel string) string { return filepath.Join(r.dir, filepath.FromSlash(rel)) }

func (r *rootfs) mkdir(rel string, perm fs.FileMode) {
	if r.err == nil {
		if err := os.MkdirAll(r.path(rel), perm); err != nil {
			r.err = fmt.Errorf("create /%s: %w", rel, err)
		}
	}
}

// chmod sets modes that the umask would otherwise strip (sticky /tmp, private /root).
func (r *rootfs) chmod(rel string, perm fs.FileMode) {
	if r.err == nil {
		if err := os.Chmod(r.path(rel), perm); err != nil {
			r.err = fmt.Errorf("chmod /%s: %w", rel, err)
		}
	}
}

func (r *rootfs) write(rel string, data []byte, perm fs.FileMode) {
	if r.err != nil {
		return
	}
	p := r.path(rel)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.err = fmt.Errorf("replace /%s: %w", rel, err)
		return
	}
	if err := os.WriteFile(p, data, perm); err != nil {
		r.err = fmt.Errorf("write /%s: %w", rel, err)
		return
	}
	r.chmod(rel, perm)
}

func (r *rootfs) copy(rel, src string, perm fs.FileMode) {
	if r.err != nil {
		return
	}
	in, err := os.Open(src)
	if err != nil {
		r.err = fmt.Errorf("install /%s: %w", rel, err)
		return
	}
	defer in.Close()
	p := r.path(rel)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.err = fmt.Errorf("replace /%s: %w", rel, err)
		return
	}
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		r.err = fmt.Errorf("install /%s: %w", rel, err)
		return
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		r.err = fmt.Errorf("install /%s from %s: %w", rel, src, err)
		return
	}
	if err := out.Close(); err != nil {
		r.err = fmt.Errorf("install /%s: %w", rel, err)
		return
	}
	r.chmod(rel, perm)
}

// busyboxLink makes rel a relative symlink to /bin/busybox, so that it resolves the same in the
// guest and when the tree is inspected on the host.
func (r *rootfs) busyboxLink(rel string) {
	if r.err != nil || rel == "bin/busybox" {
		return
	}
	r.mkdir(path.Dir(rel), 0o755)
	target, err := filepath.Rel(path.Dir(rel), "bin/busybox")
	if err != nil {
		r.err = fmt.Errorf("link /%s: %w", rel, err)
		return
	}
	p := r.path(rel)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.err = fmt.Errorf("replace /%s: %w", rel, err)
		return
	}
	if err := os.Symlink(target, p); err != nil {
		r.err = fmt.Errorf("link /%s: %w", rel, err)
	}
}

// busyboxApplets lists the applets with their install paths (bin/sh, usr/bin/[, …) by running
// the binary, which is fine on an amd64 host for the amd64 guest.
func busyboxApplets(busybox string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, busybox, "--list-full").Output()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("compose rootfs: no busybox at %s (apt-get install busybox-static)", busybox)
		}
		return nil, fmt.Errorf("compose rootfs: %s --list-full: %w", busybox, err)
	}
	var applets []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		a := path.Clean(strings.TrimSpace(sc.Text()))
		if a == "." || strings.HasPrefix(a, "/") || strings.HasPrefix(a, "..") {
			continue
		}
		applets = append(applets, a)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("compose rootfs: %s --list-full listed no applets; is it busybox?", busybox)
	}
	return applets, nil
}

// agentSettings renders /etc/otabake/agent.toml; the TOML encoder does the quoting.
func agentSettings(opt RootfsOptions) ([]byte, error) {
	type hub struct {
		URL       string `toml:"url"`
		TokenFile string `toml:"token-file"`
		DeviceID  string `toml:"device-id"`
	}
	settings := struct {
		Engine    string `toml:"engine"`
		Transport string `toml:"transport"`
		Hub       hub    `toml:"hub"`
	}{"rugix", "hub", hub{opt.HubURL, HubTokenFile, opt.DeviceID}}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(settings); err != nil {
		return nil, fmt.Errorf("compose rootfs: encode agent.toml: %w", err)
	}
	return buf.Bytes(), nil
}

func osRelease(imageID, imageVersion string) []byte {
	var b strings.Builder
	b.WriteString("NAME=\"otabake e2e guest\"\nID=otabake-e2e\nPRETTY_NAME=\"otabake e2e guest (busybox)\"\n")
	if imageID != "" {
		fmt.Fprintf(&b, "IMAGE_ID=%s\n", shellQuote(imageID))
	}
	if imageVersion != "" {
		fmt.Fprintf(&b, "IMAGE_VERSION=%s\n", shellQuote(imageVersion))
	}
	return []byte(b.String())
}

// shellQuote quotes a value for os-release, which uses shell syntax.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// inittab: busybox init runs rcS once, then keeps a root shell on the serial console. The
// shell is on ttyS0 itself (busybox init makes it the controlling terminal), without getty or
// login, so the test can type commands and read marker lines.
const inittab = `::sysinit:/etc/init.d/rcS
ttyS0::respawn:/bin/sh -l
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
`

// profile gives the serial shell a fixed, plain prompt. Turning off terminal echo also makes
// busybox ash read plain lines instead of running its line editor, which would otherwise send
// cursor-position queries (ESC [6n) and rewrap long commands on the serial line; the test then
// reads only what its commands print, each line after the prompt "# ".
const profile = `export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PS1='# '
[ -t 0 ] && stty -echo
`

// rcS brings the guest up on a read-only root: /proc, /sys, /dev and /run are normally mounted
// by rugix-ctrl before it execs init, and are only mounted here when missing. Nothing writes to
// /. Each failing step says so on the console, but boot continues so that the shell is usable
// for diagnosis; the ready marker comes last.
const rcS = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "otabake-e2e: rcS: $* failed"; }
mounted() { grep -q " $1 " /proc/mounts 2>/dev/null; }

mounted /proc || mount -t proc proc /proc || fail "mount /proc"
mounted /sys || mount -t sysfs sysfs /sys || fail "mount /sys"
mounted /dev || mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
mounted /run || mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || fail "mount /run"
if [ ! -d /run/lock ]; then
	mkdir -p /run/lock && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /run/lock || fail "mount /run/lock"
fi
mounted /tmp || mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp || fail "mount /tmp"

# Keep kernel messages off the serial console so they cannot split the test's marker lines.
dmesg -n 1 || fail "dmesg -n 1"

hostname -F /etc/hostname || fail "hostname"
ip link set lo up || fail "ip link set lo up"
ip addr add ` + GuestAddr + ` dev eth0 || fail "ip addr add ` + GuestAddr + `"
ip link set eth0 up || fail "ip link set eth0 up"
ip route add default via ` + HostAddr + ` || fail "ip route add default"

echo "` + ReadyMarker + `"
`
