package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

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
		accel := vm.Accel(c.String("accel"))
		switch accel {
		case "auto":
			accel = vm.AccelAuto
		case vm.AccelKVM, vm.AccelTCG:
		default:
			return usageError(c, "--accel %q: want auto, kvm or tcg", c.String("accel"))
		}
		if accel == vm.AccelKVM && !vm.KVMUsable() {
			return errors.New("--accel kvm: /dev/kvm is missing or not writable (load kvm_intel/kvm_amd, or add yourself to the kvm group)")
		}
		img := filepath.Join(release.BuildDir(cfg.Dir, sys.Name), "system.img")
		if c.String("image") != "" {
			img = c.String("image")
		}
		if _, err := os.Stat(img); err != nil {
			return fmt.Errorf("%s: %w (build it first: otabake build-release %s)", img, errors.Unwrap(err), sys.Name)
		}
		mc := vm.Config{
			Disk: img, Arch: sys.Arch, MemoryMiB: c.Int("memory"), CPUs: c.Int("cpus"),
			SSHPort: c.Int("ssh-port"), Accel: accel, VarsFile: filepath.Join(vm.RunDir(img), "OVMF_VARS.fd"),
			Interactive: isTerminal(g.Stdin),
		}
		if c.Bool("print-command") {
			args, qemu, err := mc.Args()
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, map[string]any{"qemu": qemu, "args": args, "kvm": vm.KVMUsable() && accel != vm.AccelTCG})
			}
			fmt.Fprintln(g.Stdout, qemu+" "+strings.Join(args, " "))
			return nil
		}
		if c.Bool("snapshot") {
			if err := os.MkdirAll(vm.RunDir(img), 0o755); err != nil {
				return err
			}
			tmp, err := os.MkdirTemp(vm.RunDir(img), "snapshot-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			mc.Disk = filepath.Join(tmp, "system.img")
			mc.VarsFile = filepath.Join(tmp, "OVMF_VARS.fd")
			if err := vm.CopySparse(img, mc.Disk); err != nil {
				return fmt.Errorf("snapshot copy: %w", err)
			}
		}
		if c.Bool("spare") {
			if err := vm.ArmSpareBoot(mc.Disk); err != nil {
				return err
			}
		}
		how := "software emulation (slow; no usable /dev/kvm)"
		if accel == vm.AccelKVM || (accel == vm.AccelAuto && vm.KVMUsable()) {
			how = "KVM"
		}
		fmt.Fprintf(g.Stderr, "otabake: booting %s with %s\n", img, how)
		if mc.SSHPort > 0 {
			fmt.Fprintf(g.Stderr, "otabake: guest SSH on 127.0.0.1:%d (ssh -p %d root@127.0.0.1)\n", mc.SSHPort, mc.SSHPort)
		}
		if mc.Interactive {
			fmt.Fprintln(g.Stderr, "otabake: serial console follows; Ctrl-A X quits QEMU")
		}
		p, err := mc.Start(c.Context, vm.StartOptions{
			Stdio: vm.Stdio{Stdin: g.Stdin, Stdout: g.Stdout, Stderr: g.Stderr},
			OnFallback: func(reason string) {
				fmt.Fprintf(g.Stderr, "otabake: KVM is not usable on this host (%s); booting with software emulation instead (slow)\n", reason)
			},
		})
		if err != nil {
			return err
		}
		if err := p.Wait(); err != nil {
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return fmt.Errorf("QEMU exited with status %d", exit.ExitCode())
			}
			return fmt.Errorf("QEMU: %w", err)
		}
		return nil
	})
}
