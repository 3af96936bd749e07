package cli

import (
	"errors"
	"fmt"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/image"
	"github.com/otabake/otabake/internal/release"
	"github.com/otabake/otabake/internal/vm"
)

func init() { register(runCommand) }

func runCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "run",
		Usage:     "boot a built efi-grub image in QEMU with the serial console on this terminal",
		ArgsUsage: "SYSTEM",
		Description: "Boots build/SYSTEM/system.img (made by build-release) in QEMU: q35 with OVMF for amd64, virt\n" +
			"with AAVMF for arm64, the image on a virtio disk, the serial console on this terminal (Ctrl-A X\n" +
			"quits, Ctrl-A C opens the QEMU monitor) and the guest's SSH port on 127.0.0.1:--ssh-port,\n" +
			"as `rugix-bakery run` does. KVM is used when /dev/kvm is usable, software emulation otherwise;\n" +
			"with --accel auto, a KVM start that QEMU gives up at once (a /dev/kvm that opens but cannot\n" +
			"run the guest, as on some cloud VMs) is retried with software emulation, saying why.\n" +
			"The guest writes to the image, so updates and commits persist from run to run; --snapshot\n" +
			"boots a throwaway sparse copy instead. --spare arms the GRUB boot-spare flag first, so the\n" +
			"first boot takes the other boot group once, like `rugix-ctrl system reboot --spare`.\n" +
			"Needs the Debian packages qemu-system-x86 (or qemu-system-arm) and ovmf (or qemu-efi-aarch64).",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "snapshot", Usage: "boot a throwaway copy; the image file stays unchanged"},
			&ucli.BoolFlag{Name: "spare", Usage: "boot the spare boot group once (sets rugpi_boot_spare=true in the config partition)"},
			&ucli.IntFlag{Name: "ssh-port", Value: 2222, Usage: "forward 127.0.0.1:`PORT` to the guest's port 22 (0: no forward)"},
			&ucli.IntFlag{Name: "memory", Value: 1024, Usage: "guest memory in `MiB`"},
			&ucli.IntFlag{Name: "cpus", Value: 2, Usage: "virtual CPUs"},
			&ucli.StringFlag{Name: "accel", Value: "auto", Usage: "auto (KVM, falling back to software emulation when QEMU cannot use it), kvm or tcg (software emulation)"},
			&ucli.StringFlag{Name: "image", Usage: "boot this disk image `FILE` instead of build/SYSTEM/system.img (a device's own copy that later builds do not overwrite)"},
			&ucli.BoolFlag{Name: "print-command", Usage: "print the QEMU command line and exit (with --json: as a JSON document)"},
		},
	}, func(c *ucli.Context, args []string) error {
		if len(args) != 1 {
			return usageError(c, "run takes one SYSTEM, got %d arguments", len(args))
		}
		g := globals(c)
		cfg, err := loadProject(c)
		if err != nil {
			return err
		}
		sys, err := cfg.System(args[0])
		if err != nil {
			return err
		}
		if t, err := image.TargetByName(sys.Target, sys.Arch); err != nil || t.Name != image.TargetEFIGrub {
			return fmt.Errorf("[systems.%s] target %q: otabake run boots efi-grub images only (Raspberry Pi firmware is not emulated)", sys.Name, sys.Target)
		}
		accel, err := vm.ParseAccel(c.String("accel"))
		if err != nil {
			return usageError(c, "--accel %v", err)
		}
		o := vm.SessionOptions{
			Image: filepath.Join(release.BuildDir(cfg.Dir, sys.Name), "system.img"), Arch: sys.Arch,
			MemoryMiB: c.Int("memory"), CPUs: c.Int("cpus"), SSHPort: c.Int("ssh-port"), Accel: accel,
			Interactive: isTerminal(g.Stdin), Snapshot: c.Bool("snapshot"), Spare: c.Bool("spare"),
		}
		if c.String("image") != "" {
			o.Image = c.String("image")
		}
		if c.Bool("print-command") {
			cl, err := o.CommandLine()
			if err != nil {
				return runError(err, sys.Name)
			}
			if g.JSON {
				return printJSON(g.Stdout, cl)
			}
			_, err = fmt.Fprintln(g.Stdout, cl)
			return err
		}
		s, err := vm.NewSession(o)
		if err != nil {
			return runError(err, sys.Name)
		}
		defer s.Close()
		how := "software emulation (slow; no usable /dev/kvm)"
		if s.KVM() {
			how = "KVM"
		}
		fmt.Fprintf(g.Stderr, "otabake: booting %s with %s\n", o.Image, how)
		if o.SSHPort > 0 {
			fmt.Fprintf(g.Stderr, "otabake: guest SSH on 127.0.0.1:%d (ssh -p %d root@127.0.0.1)\n", o.SSHPort, o.SSHPort)
		}
		if o.Interactive {
			fmt.Fprintln(g.Stderr, "otabake: serial console follows; Ctrl-A X quits QEMU")
		}
		return s.Run(c.Context, vm.StartOptions{
			Stdio: vm.Stdio{Stdin: g.Stdin, Stdout: g.Stdout, Stderr: g.Stderr},
			OnFallback: func(reason string) {
				fmt.Fprintf(g.Stderr, "otabake: KVM is not usable on this host (%s); booting with software emulation instead (slow)\n", reason)
			},
		})
	})
}

// runError says which flag or step a session error concerns.
func runError(err error, system string) error {
	var disk *vm.DiskError
	switch {
	case errors.Is(err, vm.ErrNoKVM):
		return fmt.Errorf("--accel kvm: %w", err)
	case errors.As(err, &disk):
		return fmt.Errorf("%w (build it first: otabake build-release %s)", err, system)
	}
	return err
}
