//go:build linux

package vmkit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// VMSystem is the name of the efi-grub system WriteProject defines.
const VMSystem = "vm"

// GrubSecondStage is the boot partition's grub.cfg of the VM system: Bakery's second stage with
// the serial console added, so that kernel and init messages reach the QEMU console.
const GrubSecondStage = `load_env -f /boot.grubenv
linux /vmlinuz ${rugpi_bootargs} console=ttyS0 panic=10
initrd /initrd.img
boot
`

// ProjectOptions says how WriteProject builds the guest and where its Hub is.
type ProjectOptions struct {
	// ModuleDir is otabake's source tree (for the guest programs); empty asks `go list -m`.
	ModuleDir string
	// CacheDir keeps the downloaded kernel between runs (<repo>/.otabake/cache/kernel).
	CacheDir string
	// HubPort is the port `otabake hub serve` listens on, on the host's loopback; the guest
	// reaches it as http://10.0.2.2:HubPort.
	HubPort int
	// HubToken is the bearer token of `hub serve`, installed in the guest for the agent.
	HubToken string
	// DeviceID names the guest in the Hub.
	DeviceID string
	// Repository and Package go to the project's .env.
	Repository, Package string
	// SigningCA, when set, names a test CA (WriteTestCA) made in the project's keys/: every
	// bundle is signed by its signer and the image trusts its root ([systems.vm.signing] key,
	// cert and roots), so that devices verify updates as Rugix Ctrl 1.x requires.
	SigningCA string
	// RugixCtrl, when set, is a real rugix-ctrl binary installed instead of the stand-in, with
	// its shared libraries and the tools it runs (RootfsOptions.RealRugixCtrl).
	RugixCtrl string
}

// Project is what WriteProject made.
type Project struct {
	Dir    string
	Kernel *Kernel
	// Modules are the kernel modules in the initramfs, in load order.
	Modules []string
	// CA is the signing PKI of ProjectOptions.SigningCA, nil without it.
	CA *TestCA
}

// WriteProject writes an otabake project into dir (which must not exist yet or be empty) with
// one efi-grub amd64 system, VMSystem, whose rootfs is a small real guest: Debian's kernel, an
// initramfs, busybox, otabake-agent (hub transport) and the rugix-ctrl stand-in. Sizes are
// fixed so that every release fits the A/B slots the stand-in's bootstrapping creates. The
// end-to-end test and the README's "Try an update in a VM" both start from it.
func WriteProject(ctx context.Context, dir string, opt ProjectOptions) (*Project, error) {
	if opt.HubPort <= 0 || opt.HubToken == "" || opt.DeviceID == "" || opt.Repository == "" || opt.Package == "" {
		return nil, fmt.Errorf("write VM project: hub port, token, device ID, repository and package are required")
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("write VM project: %s is not empty", dir)
	}
	kernel, err := FetchKernel(ctx, opt.CacheDir)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "otabake-vmproject-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	agent, initrd, ctrl, err := BuildGuestBinaries(ctx, opt.ModuleDir, filepath.Join(work, "bin"))
	if err != nil {
		return nil, err
	}
	if opt.RugixCtrl != "" {
		ctrl = opt.RugixCtrl
	}
	want := GuestModules
	if opt.RugixCtrl != "" {
		want = append(append([]string(nil), GuestModules...), RealRugixCtrlModules...)
	}
	mods, err := kernel.ModuleClosure(want...)
	if err != nil {
		return nil, err
	}
	initramfs := filepath.Join(work, "initrd.img")
	f, err := os.Create(initramfs)
	if err != nil {
		return nil, err
	}
	err = WriteInitramfs(f, initrd, kernel, mods)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	var ca *TestCA
	signing := ""
	if opt.SigningCA != "" {
		if ca, err = WriteTestCA(filepath.Join(dir, "keys"), opt.SigningCA); err != nil {
			return nil, err
		}
		rel := func(p string) string { r, _ := filepath.Rel(dir, p); return filepath.ToSlash(r) }
		signing = "\n# A development-only test CA, made by the end-to-end test.\n[systems." + VMSystem + ".signing]\n" +
			"key = \"" + rel(ca.Key) + "\"\ncert = \"" + rel(ca.Cert) + "\"\nroots = [\"" + rel(ca.Root) + "\"]\n"
	}
	files := map[string]string{
		"otabake.toml": `# A small real system for trying updates in QEMU (otabake run ` + VMSystem + `).
[hub]
default_tag = "stable"

[systems.` + VMSystem + `]
target = "efi-grub"
architecture = "amd64"
rootfs = "rootfs"
boot = "bootfiles"

[systems.` + VMSystem + `.sizes]
config = "32M"
boot = "32M"
system = "96M"
total = "400M"
` + signing,
		".env":               "NEXIGON_REPOSITORY=" + opt.Repository + "\nNEXIGON_PACKAGE=" + opt.Package + "\n",
		".gitignore":         "/build/\n/.otabake/\n/.release-env\n",
		"bootfiles/grub.cfg": GrubSecondStage,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	if err := ComposeRootfs(filepath.Join(dir, "rootfs"), RootfsOptions{
		Kernel: kernel, Initramfs: initramfs, Agent: agent, RugixCtrl: ctrl, RealRugixCtrl: opt.RugixCtrl != "",
		HubURL: "http://" + HostAddr + ":" + strconv.Itoa(opt.HubPort), HubToken: opt.HubToken, DeviceID: opt.DeviceID,
	}); err != nil {
		return nil, err
	}
	return &Project{Dir: dir, Kernel: kernel, Modules: mods, CA: ca}, nil
}
