// Package vm boots otabake's disk images in QEMU: UEFI firmware (OVMF for x86_64, AAVMF for
// arm64), the image on a virtio disk, the serial console on a pipe or the terminal and SSH
// forwarded to a local port, the way `rugix-bakery run` does. KVM is used when /dev/kvm can be
// opened; otherwise QEMU emulates in software (TCG), which is slower but needs nothing.
// NewSession prepares the interactive boot of `otabake run` (a snapshot copy, the spare boot
// armed) and Session.Run boots it.
package vm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/otabake/otabake/internal/tool"
)

// Firmware is a UEFI code image and the template of its writable variable store.
type Firmware struct {
	Code, Vars string
}

// firmwareCandidates are where Debian puts UEFI firmware: ovmf for x86_64, qemu-efi-aarch64
// for arm64. The 4M builds come first because current QEMU machine types expect them.
var firmwareCandidates = map[string]struct {
	pkg   string
	pairs []Firmware
}{
	"amd64": {"ovmf", []Firmware{
		{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
		{"/usr/share/qemu/OVMF_CODE.fd", "/usr/share/qemu/OVMF_VARS.fd"},
	}},
	"arm64": {"qemu-efi-aarch64", []Firmware{
		{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
	}},
}

// FindFirmware returns the UEFI firmware for arch (amd64 or arm64); the error names the Debian
// package that provides it.
func FindFirmware(arch string) (Firmware, error) {
	c, ok := firmwareCandidates[arch]
	if !ok {
		return Firmware{}, fmt.Errorf("no UEFI firmware known for architecture %q (amd64 or arm64)", arch)
	}
	for _, fw := range c.pairs {
		if fileExists(fw.Code) && fileExists(fw.Vars) {
			return fw, nil
		}
	}
	return Firmware{}, fmt.Errorf("no UEFI firmware for %s (looked for %s): install the Debian package %s", arch, c.pairs[0].Code, c.pkg)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// KVMUsable reports whether /dev/kvm can be opened for reading and writing, which is what
// QEMU needs for hardware virtualization.
func KVMUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Accel says how QEMU runs the guest.
type Accel string

// Accelerators: KVM when the host allows it, TCG (software emulation) otherwise.
const (
	AccelAuto Accel = ""
	AccelKVM  Accel = "kvm"
	AccelTCG  Accel = "tcg"
)

// Config describes one QEMU machine.
type Config struct {
	// Disk is the raw disk image; QEMU writes to it unless Snapshot is set.
	Disk string
	// Arch is amd64 or arm64 (the guest architecture).
	Arch string
	// Snapshot makes QEMU discard every write at exit (qemu -snapshot).
	Snapshot bool
	// MemoryMiB is the guest RAM (default 512).
	MemoryMiB int
	// CPUs is the number of virtual CPUs (default 2).
	CPUs int
	// SSHPort forwards 127.0.0.1:SSHPort on the host to port 22 of the guest; 0 disables it.
	SSHPort int
	// Accel picks KVM or TCG; AccelAuto uses KVM when KVMUsable.
	Accel Accel
	// VarsFile is the writable UEFI variable store; it is created from the firmware's template
	// when missing, so that boot entries persist across runs of the same machine.
	VarsFile string
	// Interactive puts the QEMU monitor on the console too (Ctrl-A X quits, Ctrl-A C switches
	// to the monitor), for a terminal; otherwise the console is only the guest's serial line.
	Interactive bool
	// Extra arguments appended to the QEMU command line.
	Extra []string
}

// qemuBinary returns the QEMU system emulator for arch and its Debian package.
func qemuBinary(arch string) (name, pkg string, err error) {
	switch arch {
	case "amd64":
		return "qemu-system-x86_64", "qemu-system-x86", nil
	case "arm64":
		return "qemu-system-aarch64", "qemu-system-arm", nil
	}
	return "", "", fmt.Errorf("cannot run %q images in QEMU (amd64 or arm64)", arch)
}

// Command returns the QEMU command for c, with the console on the command's stdin and stdout.
// It creates c.VarsFile from the firmware template when it does not exist.
func (c Config) Command() (*exec.Cmd, error) {
	args, bin, err := c.Args()
	if err != nil {
		return nil, err
	}
	if err := c.prepareVars(); err != nil {
		return nil, err
	}
	return exec.Command(bin, args...), nil
}

// Args returns QEMU's path and arguments without touching the file system beyond lookups.
// AccelAuto becomes KVM when KVMUsable, TCG otherwise.
func (c Config) Args() (args []string, qemu string, err error) {
	return c.argsFor(c.resolveAccel())
}

// resolveAccel turns AccelAuto into what the host offers.
func (c Config) resolveAccel() Accel {
	if c.Accel != AccelAuto {
		return c.Accel
	}
	if kvmUsable() {
		return AccelKVM
	}
	return AccelTCG
}

// kvmUsable is KVMUsable; tests replace it.
var kvmUsable = KVMUsable

// argsFor is Args with the accelerator decided.
func (c Config) argsFor(accel Accel) (args []string, qemu string, err error) {
	if c.Disk == "" {
		return nil, "", errors.New("no disk image")
	}
	if st, err := os.Stat(c.Disk); err != nil {
		return nil, "", fmt.Errorf("disk image: %w", err)
	} else if !st.Mode().IsRegular() {
		return nil, "", fmt.Errorf("disk image %s is not a file", c.Disk)
	}
	name, pkg, err := qemuBinary(c.Arch)
	if err != nil {
		return nil, "", err
	}
	qemu, err = tool.Find(name, pkg)
	if err != nil {
		return nil, "", err
	}
	fw, err := FindFirmware(c.Arch)
	if err != nil {
		return nil, "", err
	}
	if c.VarsFile == "" {
		return nil, "", errors.New("no UEFI variable store file (Config.VarsFile)")
	}
	mem, cpus := c.MemoryMiB, c.CPUs
	if mem <= 0 {
		mem = 512
	}
	if cpus <= 0 {
		cpus = 2
	}
	disk, err := filepath.Abs(c.Disk)
	if err != nil {
		return nil, "", err
	}
	vars, err := filepath.Abs(c.VarsFile)
	if err != nil {
		return nil, "", err
	}
	switch c.Arch {
	case "amd64":
		args = []string{"-machine", "q35"}
	case "arm64":
		args = []string{"-machine", "virt"}
	}
	if accel == AccelKVM {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	args = append(args,
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+fw.Code,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars,
		"-drive", "if=virtio,format=raw,file="+disk,
		"-device", "virtio-rng-pci",
		"-display", "none",
	)
	netdev := "user,id=net0"
	if c.SSHPort > 0 {
		netdev += ",hostfwd=tcp:127.0.0.1:" + strconv.Itoa(c.SSHPort) + "-:22"
	}
	args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0")
	if c.Snapshot {
		args = append(args, "-snapshot")
	}
	if c.Interactive {
		args = append(args, "-serial", "mon:stdio")
	} else {
		args = append(args, "-serial", "stdio", "-monitor", "none")
	}
	return append(args, c.Extra...), qemu, nil
}

func (c Config) prepareVars() error {
	if fileExists(c.VarsFile) {
		return nil
	}
	fw, err := FindFirmware(c.Arch)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(fw.Vars)
	if err != nil {
		return fmt.Errorf("UEFI variable template: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.VarsFile), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(c.VarsFile, data, 0o644); err != nil {
		return fmt.Errorf("UEFI variable store: %w", err)
	}
	return nil
}
