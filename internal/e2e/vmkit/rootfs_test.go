//go:build linux

package vmkit

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/testkit"
)

// testRootfsOptions fakes the binaries and the kernel with small files.
func testRootfsOptions(t *testing.T) RootfsOptions {
	t.Helper()
	src := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(src, name)
		testkit.Must(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	return RootfsOptions{
		Kernel:       &Kernel{Version: "test", Vmlinuz: file("vmlinuz", "kernel image"), ModulesDir: src},
		Initramfs:    file("initrd.img", "initramfs"),
		Agent:        file("agent", "agent binary"),
		RugixCtrl:    file("rugixctrl", "rugix-ctrl binary"),
		Busybox:      testkit.NeedFile(t, DefaultBusybox, "busybox-static", "the guest rootfs needs a static busybox"),
		HubURL:       "http://10.0.2.2:41234",
		HubToken:     `tok"en\with quotes`,
		DeviceID:     "d_e2e",
		ImageID:      "e2e",
		ImageVersion: "1.0.0",
		Extra:        map[string][]byte{"/etc/rugix/extra.txt": []byte("extra"), "etc/hostname": []byte("overridden\n")},
	}
}

func TestComposeRootfs(t *testing.T) {
	opt := testRootfsOptions(t)
	dir := filepath.Join(t.TempDir(), "rootfs")
	testkit.Must(t, ComposeRootfs(dir, opt))

	files := []struct {
		path     string
		perm     fs.FileMode
		contains string
	}{
		{"usr/bin/rugix-ctrl", 0o755, "rugix-ctrl binary"},
		{"usr/bin/otabake-agent", 0o755, "agent binary"},
		{"boot/vmlinuz", 0o644, "kernel image"},
		{"boot/initrd.img", 0o644, "initramfs"},
		{"etc/inittab", 0o644, "::sysinit:/etc/init.d/rcS\n"},
		{"etc/inittab", 0o644, "\nttyS0::respawn:/bin/sh -l\n"},
		{"etc/inittab", 0o644, "\n::ctrlaltdel:/sbin/reboot\n"},
		{"etc/inittab", 0o644, "\n::shutdown:/bin/sync\n::shutdown:/bin/umount -a -r\n"},
		{"etc/init.d/rcS", 0o755, "#!/bin/sh\n"},
		{"etc/init.d/rcS", 0o755, "\nhostname -F /etc/hostname "},
		{"etc/init.d/rcS", 0o755, "\nip addr add 10.0.2.15/24 dev eth0 "},
		{"etc/init.d/rcS", 0o755, "\nip route add default via 10.0.2.2 "},
		{"etc/init.d/rcS", 0o755, "\necho \"otabake-e2e: ready\"\n"},
		{"etc/profile", 0o644, "PS1='# '"},
		{"etc/profile", 0o644, "stty -echo"},
		{"etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"},
		{"etc/group", 0o644, "root:x:0:\n"},
		{"etc/hostname", 0o644, "overridden\n"},
		{"etc/os-release", 0o644, "\nIMAGE_ID='e2e'\nIMAGE_VERSION='1.0.0'\n"},
		{"etc/otabake/hub-token", 0o600, opt.HubToken + "\n"},
		{"etc/rugix/extra.txt", 0o644, "extra"},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != f.perm {
			t.Errorf("%s: mode %v, want a regular file %v", f.path, fi.Mode(), f.perm)
		}
		data, err := os.ReadFile(p)
		testkit.Must(t, err)
		if !strings.Contains(string(data), f.contains) {
			t.Errorf("%s does not contain %q:\n%s", f.path, f.contains, data)
		}
	}

	for d, perm := range map[string]fs.FileMode{"var/lib": 0o755, "run": 0o755, "tmp": 0o777 | fs.ModeSticky, "proc": 0o755,
		"sys": 0o755, "dev": 0o755, "mnt": 0o755, "root": 0o700} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() {
			t.Errorf("/%s: %v, want a directory", d, err)
			continue
		}
		if got := fi.Mode() & (fs.ModePerm | fs.ModeSticky); got != perm {
			t.Errorf("/%s: mode %v, want %v", d, got, perm)
		}
		if d != "tmp" && d != "root" {
			if ents, _ := os.ReadDir(filepath.Join(dir, d)); len(ents) != 0 {
				t.Errorf("/%s is not empty", d)
			}
		}
	}

	// Every applet is a symlink that resolves to the installed busybox inside the tree.
	out, err := exec.Command(opt.Busybox, "--list-full").Output()
	testkit.Must(t, err)
	applets := strings.Fields(string(out))
	if len(applets) < 50 {
		t.Fatalf("busybox lists only %d applets", len(applets))
	}
	for _, a := range append(applets, "sbin/init", "bin/sh", "sbin/ip", "bin/mount") {
		if a == "bin/busybox" {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, a))
		if err != nil {
			t.Errorf("applet %s: %v", a, err)
			continue
		}
		if filepath.IsAbs(target) || filepath.Clean(filepath.Join(filepath.Dir(a), target)) != "bin/busybox" {
			t.Errorf("applet %s → %s, want a relative link to bin/busybox", a, target)
		}
	}
	fi, err := os.Lstat(filepath.Join(dir, "bin/busybox"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/busybox: %v %v, want a 0755 file", fi, err)
	}

	// agent.toml decodes strictly into the keys the agent knows, with the values given.
	var settings struct {
		Engine    string `toml:"engine"`
		Transport string `toml:"transport"`
		Hub       struct {
			URL       string `toml:"url"`
			TokenFile string `toml:"token-file"`
			DeviceID  string `toml:"device-id"`
		} `toml:"hub"`
	}
	md, err := toml.DecodeFile(filepath.Join(dir, "etc/otabake/agent.toml"), &settings)
	if err != nil {
		t.Fatalf("agent.toml: %v", err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		t.Errorf("agent.toml has unexpected keys %v", un)
	}
	if settings.Engine != "rugix" || settings.Transport != "hub" || settings.Hub.URL != opt.HubURL ||
		settings.Hub.TokenFile != "/etc/otabake/hub-token" || settings.Hub.DeviceID != opt.DeviceID {
		t.Errorf("agent.toml = %+v", settings)
	}

	// A second run over the same directory replaces everything in place.
	testkit.Must(t, ComposeRootfs(dir, opt))
}

// TestRcSSyntax has busybox's shell parse rcS without running it.
func TestRcSSyntax(t *testing.T) {
	bb := testkit.NeedFile(t, DefaultBusybox, "busybox-static", "the guest rootfs needs a static busybox")
	if out, err := exec.Command(bb, "sh", "-n", "-c", rcS).CombinedOutput(); err != nil {
		t.Fatalf("rcS does not parse: %v: %s", err, out)
	}
}

func TestComposeRootfsErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*RootfsOptions)
		wantErr string
	}{
		{"no kernel", func(o *RootfsOptions) { o.Kernel = nil }, "no kernel"},
		{"no agent", func(o *RootfsOptions) { o.Agent = "" }, "no agent"},
		{"no token", func(o *RootfsOptions) { o.HubToken = "" }, "required"},
		{"missing busybox", func(o *RootfsOptions) { o.Busybox = "/nonexistent/busybox" }, "busybox-static"},
		{"missing rugix-ctrl", func(o *RootfsOptions) { o.RugixCtrl = "/nonexistent/rugixctrl" }, "/usr/bin/rugix-ctrl"},
		{"empty extra name", func(o *RootfsOptions) { o.Extra = map[string][]byte{"/": nil} }, "no name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opt := testRootfsOptions(t)
			tc.edit(&opt)
			err := ComposeRootfs(t.TempDir(), opt)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ComposeRootfs: %v; want error containing %q", err, tc.wantErr)
			}
		})
	}
}
