//go:build linux

package vmkit

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

// offline reports whether a FetchKernel error means "no network or no package lists" rather
// than a bug, so that the test skips instead of failing on an offline machine.
func offline(err error) bool {
	for _, s := range []string{"Failed to fetch", "Could not resolve", "Temporary failure resolving",
		"Unable to connect", "Unable to locate package", "No packages found", "run apt-get update"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

func TestIntegrationRealKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: the real-kernel test downloads ~70 MB with apt-get")
	}
	testkit.NeedTool(t, "apt-get", "apt", "the real Debian kernel cannot be fetched on this host; FetchKernel is untested here !!!")
	ctx := t.Context()
	cache := t.TempDir()

	start := time.Now()
	k, err := FetchKernel(ctx, cache)
	if err != nil {
		if offline(err) {
			t.Skipf("SKIP !!! network or apt package lists unavailable, FetchKernel is untested here !!!: %v", err)
		}
		t.Fatalf("FetchKernel: %v", err)
	}
	t.Logf("fetched and extracted kernel %s in %v", k.Version, time.Since(start).Round(time.Millisecond))

	vmlinuz, err := os.ReadFile(k.Vmlinuz)
	testkit.Must(t, err)
	if len(vmlinuz) < 1<<20 || string(vmlinuz[0x202:0x206]) != "HdrS" {
		t.Errorf("%s (%d bytes) is not an x86 bzImage", k.Vmlinuz, len(vmlinuz))
	}

	t.Run("cached without apt", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir()) // apt-get, apt-cache and dpkg-deb cannot run from here
		start := time.Now()
		again, err := FetchKernel(ctx, cache)
		if err != nil {
			t.Fatalf("FetchKernel from cache: %v", err)
		}
		if *again != *k {
			t.Errorf("cached kernel %+v differs from the fetched %+v", again, k)
		}
		t.Logf("cache hit in %v", time.Since(start).Round(time.Microsecond))
	})

	closure, err := k.ModuleClosure(GuestModules...)
	if err != nil {
		t.Fatalf("ModuleClosure: %v", err)
	}
	t.Logf("closure of %d names: %d modules: %q", len(GuestModules), len(closure), closure)
	deps, _, err := readModulesDep(filepath.Join(k.ModulesDir, "modules.dep"))
	testkit.Must(t, err)
	pos := map[string]int{}
	for i, p := range closure {
		if _, err := os.Stat(filepath.Join(k.ModulesDir, p)); err != nil {
			t.Errorf("closure module %s: %v", p, err)
		}
		pos[p] = i
	}
	names := map[string]bool{}
	for i, p := range closure {
		n, _ := moduleName(p)
		names[n] = true
		for _, d := range deps[p] {
			if j, ok := pos[d]; !ok || j > i {
				t.Errorf("%s needs %s, which is not loaded before it", p, d)
			}
		}
	}
	for _, want := range []string{"virtio_blk", "ext4", "virtio_net", "vfat"} {
		if !names[want] {
			t.Errorf("closure lacks %s (it is built in or missing in %s)", want, k.Version)
		}
	}

	// The guest's own /init if its package exists yet, otherwise busybox stands in, so that the
	// initramfs is built from the real modules either way.
	out := t.TempDir()
	initBin, agentBin, rugixBin := DefaultBusybox, DefaultBusybox, DefaultBusybox
	if guestPackagesExist(t) {
		start := time.Now()
		agentBin, initBin, rugixBin, err = BuildGuestBinaries(ctx, "", out)
		if err != nil {
			t.Fatalf("BuildGuestBinaries: %v", err)
		}
		t.Logf("built guest binaries in %v", time.Since(start).Round(time.Millisecond))
	} else {
		t.Log("NOTE !!! internal/e2e/guest/{initrd,rugixctrl} do not exist yet: BuildGuestBinaries is untested, busybox stands in for /init !!!")
	}
	if _, err := os.Stat(initBin); err != nil {
		t.Skipf("SKIP: no /init stand-in: %v", err)
	}

	initrd := filepath.Join(out, "initrd.img")
	f, err := os.Create(initrd)
	testkit.Must(t, err)
	start = time.Now()
	if err := WriteInitramfs(f, initBin, k, closure); err != nil {
		t.Fatalf("WriteInitramfs: %v", err)
	}
	testkit.Must(t, f.Close())
	data, err := os.ReadFile(initrd)
	testkit.Must(t, err)
	t.Logf("initramfs: %d bytes in %v", len(data), time.Since(start).Round(time.Millisecond))
	if _, err := exec.LookPath("cpio"); err == nil {
		listed, _ := cpioList(t, gunzip(t, data))
		for _, p := range closure {
			if !slices.Contains(listed, "lib/modules/"+uncompressedPath(p)) {
				t.Errorf("initramfs lacks %s", p)
			}
		}
	}

	rootfs := filepath.Join(out, "rootfs")
	err = ComposeRootfs(rootfs, RootfsOptions{
		Kernel: k, Initramfs: initrd, Agent: agentBin, RugixCtrl: rugixBin,
		HubURL: "http://10.0.2.2:8080", HubToken: "token", DeviceID: "d_e2e",
	})
	if err != nil {
		t.Fatalf("ComposeRootfs: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(rootfs, "boot/vmlinuz"))
	testkit.Must(t, err)
	if !bytes.Equal(got, vmlinuz) {
		t.Error("rootfs /boot/vmlinuz differs from the fetched kernel")
	}
}

// guestPackagesExist reports whether the guest programs another change adds are in the tree.
func guestPackagesExist(t *testing.T) bool {
	t.Helper()
	root := testkit.RepoRoot(t)
	for _, pkg := range []string{InitrdPackage, RugixCtrlPackage, AgentPackage} {
		if m, _ := filepath.Glob(filepath.Join(root, pkg, "*.go")); len(m) == 0 {
			return false
		}
	}
	return true
}
