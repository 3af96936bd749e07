package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/bootenv"
	"github.com/otabake/otabake/internal/rootfs"
	"github.com/otabake/otabake/internal/tool"
)

// Input is what BuildPartitions needs: a resolved layout, the identifiers, and the trees.
type Input struct {
	Target Target
	Layout Layout
	IDs    Identifiers
	// RootfsDir is the prepared root filesystem (already baked); it becomes system-a.
	RootfsDir string
	// BootDir optionally holds the boot partition files (Bakery's roots/boot). Without it the
	// boot files are taken from the rootfs: the kernel and initrd for efi-grub, boot/firmware
	// for the Raspberry Pi targets.
	BootDir string
	// ConfigDir optionally holds extra config partition files (Bakery's roots/config); the
	// files the target needs are written over them.
	ConfigDir string
	// Bootloader is a configured boot loader: for efi-grub the GRUB EFI binary, for rpi-uboot a
	// directory with u-boot-*.bin and boot.scr. Empty means: search the rootfs (and, for
	// efi-grub, build GRUB with grub-mkimage from the host's or rootfs's modules).
	//
	// Files are read from the rootfs, BootDir, ConfigDir and a Bootloader directory through
	// rootfs.Root, each directory the root its links resolve against: nothing outside it is
	// read, and only regular files and directories are staged.
	Bootloader string
	// PreferMkimage (efi-grub) builds GRUB with grub-mkimage when GRUB's modules are found
	// and uses Bootloader only when they are not.
	PreferMkimage bool
	// WorkDir receives the staging trees and the partition images partition-N.img (N the
	// partition number, as Bakery names them). It is emptied of earlier staging trees.
	WorkDir string
	// SourceDateEpoch clamps every timestamp written.
	SourceDateEpoch time.Time
	// SystemFixups are debugfs commands applied to the system image (see the package doc).
	SystemFixups []string
	// Progress, if set, is called when a stage starts ("config", "boot", "system").
	Progress func(stage string)
}

// Partitions are the filesystem images BuildPartitions made. Boot and System are also the
// bundle's "boot" and "system" payloads.
type Partitions struct {
	Config string
	Boot   string
	System string
}

// ByRole returns the image path for a partition role, or "" if that role has no image.
func (p *Partitions) ByRole(r Role) string {
	switch r {
	case RoleConfig:
		return p.Config
	case RoleBootA:
		return p.Boot
	case RoleSystemA:
		return p.System
	}
	return ""
}

// ErrMissingBootFile reports a rootfs or boot tree without a file the target cannot boot
// without.
var ErrMissingBootFile = errors.New("missing boot file")

// BuildPartitions stages the config and boot trees for the target and makes the config, boot
// and system filesystem images in in.WorkDir, sized to their partitions.
func BuildPartitions(ctx context.Context, in Input) (*Partitions, error) {
	if st, err := os.Stat(in.RootfsDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("build partitions: root filesystem %q is not a directory", in.RootfsDir)
	}
	if in.WorkDir == "" {
		return nil, errors.New("build partitions: no work directory")
	}
	if err := os.MkdirAll(in.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("build partitions: %w", err)
	}
	progress := in.Progress
	if progress == nil {
		progress = func(string) {}
	}
	root, err := in.IDs.RootDevice(in.Layout)
	if err != nil {
		return nil, fmt.Errorf("build partitions: %w", err)
	}
	cfgP, ok1 := in.Layout.ByRole(RoleConfig)
	bootP, ok2 := in.Layout.ByRole(RoleBootA)
	sysP, ok3 := in.Layout.ByRole(RoleSystemA)
	if !ok1 || !ok2 || !ok3 {
		return nil, errors.New("build partitions: layout lacks a config, boot-a or system-a partition")
	}

	cfgDir := filepath.Join(in.WorkDir, "config-root")
	bootDir := filepath.Join(in.WorkDir, "boot-root")
	for _, d := range []string{cfgDir, bootDir} {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("build partitions: clear %s: %w", d, err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("build partitions: %w", err)
		}
	}
	rfs, err := rootfs.OpenRoot(in.RootfsDir)
	if err != nil {
		return nil, fmt.Errorf("build partitions: root filesystem: %w", err)
	}
	defer rfs.Close()
	st := &stager{in: in, rfs: rfs, cfgDir: cfgDir, bootDir: bootDir,
		cfg: newBudget("config partition", cfgP.Bytes()), boot: newBudget("boot partition", bootP.Bytes())}
	if in.ConfigDir != "" {
		if err := st.copyConfiguredDir(in.ConfigDir, cfgDir, st.cfg); err != nil {
			return nil, fmt.Errorf("build partitions: config files from %s: %w", in.ConfigDir, err)
		}
	}
	switch in.Target.Name {
	case TargetEFIGrub:
		err = st.grub(ctx, root)
	case TargetRPiTryboot, TargetRPiUBoot:
		err = st.rpi(root)
	default:
		err = fmt.Errorf("unknown target %q", in.Target.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("build partitions for %s: %w", in.Target.Name, err)
	}
	if err := writeFile(cfgDir, ".rugix/bootstrap", nil); err != nil {
		return nil, err
	}

	// Bakery's names: they say which partition number each image belongs to, and cannot clash
	// with the disk image's system.img.
	parts := &Partitions{
		Config: filepath.Join(in.WorkDir, fmt.Sprintf("partition-%d.img", cfgP.Number)),
		Boot:   filepath.Join(in.WorkDir, fmt.Sprintf("partition-%d.img", bootP.Number)),
		System: filepath.Join(in.WorkDir, fmt.Sprintf("partition-%d.img", sysP.Number)),
	}
	progress("config")
	if err := MakeFAT(ctx, cfgDir, parts.Config, cfgP.Bytes(), FATOptions{Serial: in.IDs.FATSerial(cfgP.Number), Clamp: in.SourceDateEpoch}); err != nil {
		return nil, fmt.Errorf("config partition: %w", err)
	}
	progress("boot")
	if bootP.FS == FSExt4 {
		err = MakeExt4(ctx, bootDir, parts.Boot, bootP.Bytes(), Ext4Options{
			UUID: in.IDs.Ext4UUID(bootP.Number), HashSeed: in.IDs.Ext4HashSeed(bootP.Number),
			Journal: true, Clamp: in.SourceDateEpoch, WorkDir: in.WorkDir,
		})
	} else {
		err = MakeFAT(ctx, bootDir, parts.Boot, bootP.Bytes(), FATOptions{Serial: in.IDs.FATSerial(bootP.Number), Clamp: in.SourceDateEpoch})
	}
	if err != nil {
		return nil, fmt.Errorf("boot partition: %w", err)
	}
	progress("system")
	if err := MakeExt4(ctx, in.RootfsDir, parts.System, sysP.Bytes(), Ext4Options{
		UUID: in.IDs.Ext4UUID(sysP.Number), HashSeed: in.IDs.Ext4HashSeed(sysP.Number),
		Clamp: in.SourceDateEpoch, Fixups: in.SystemFixups, WorkDir: in.WorkDir,
	}); err != nil {
		return nil, fmt.Errorf("system partition: %w", err)
	}
	return parts, nil
}

// GrubFirstStage is the config partition's rugpi/grub.cfg. It implements the protocol Rugix
// Ctrl's grub boot flow expects: the default boot partition comes from primary.grubenv (or
// secondary.grubenv) when its SHA-1 file matches, a pending boot_spare flips it once, and the
// second stage on the chosen boot partition takes over.
const GrubFirstStage = `# otabake: first-stage GRUB configuration for the Rugix Ctrl "grub" boot flow.
set rugpi_bootpart=2
set rugpi_boot_spare=false

if hashsum --hash sha1 --check ($root)/rugpi/secondary.grubenv.sha1; then
  load_env -f ($root)/rugpi/secondary.grubenv
fi
if hashsum --hash sha1 --check ($root)/rugpi/primary.grubenv.sha1; then
  load_env -f ($root)/rugpi/primary.grubenv
fi

load_env -f ($root)/rugpi/boot_spare.grubenv
if [ "$rugpi_boot_spare" = "true" ]; then
  if [ "$rugpi_bootpart" = "2" ]; then
    set rugpi_bootpart=3
  else
    set rugpi_bootpart=2
  fi
  set rugpi_boot_spare=false
  save_env -f ($root)/rugpi/boot_spare.grubenv rugpi_boot_spare
fi

regexp (.*),(.*) $root -s 1:rugpi_root_device
set root=($rugpi_root_device,$rugpi_bootpart)
source ($root)/grub.cfg

echo "otabake: no bootable second stage on partition $rugpi_bootpart; rebooting in 10 seconds"
sleep 10
reboot
`

// GrubSecondStage is the boot partition's grub.cfg when the boot tree brings none.
const GrubSecondStage = `load_env -f /boot.grubenv
linux /vmlinuz ${rugpi_bootargs}
initrd /initrd.img
boot
`

// grubEmbedded is the configuration built into a GRUB image made by grub-mkimage. GRUB runs it
// with its rescue parser, before normal mode exists, so it can hold no if/else: it searches for
// /rugpi/grub.cfg, trying the partition the binary was loaded from ($cmdpath, the config
// partition) first, points root and prefix there, and normal mode then reads $prefix/grub.cfg,
// the first stage.
const grubEmbedded = `regexp --set=1:otabake_dev '^\((.*)\)' "$cmdpath"
search --no-floppy --file --set=root --hint="$otabake_dev" /rugpi/grub.cfg
set prefix=($root)/rugpi
`

var grubModules = []string{"part_gpt", "part_msdos", "fat", "ext2", "squash4", "normal", "configfile",
	"linux", "boot", "test", "regexp", "loadenv", "hashsum", "gcry_sha1", "echo", "sleep", "reboot", "halt",
	"search", "search_fs_file", "gzio", "efi_gop", "all_video"}

func grubNames(arch string) (efiName, mkimageFormat, debPkg string) {
	if arch == "arm64" {
		return "BOOTAA64.efi", "arm64-efi", "grub-efi-arm64-bin"
	}
	return "BOOTX64.efi", "x86_64-efi", "grub-efi-amd64-bin"
}

// stager stages the config and boot trees of one build. Files come from the root filesystem
// (rfs) or from directories the project names, each read through a rootfs.Root; the staging
// trees cfgDir and bootDir are otabake's own.
type stager struct {
	in              Input
	rfs             *rootfs.Root
	cfgDir, bootDir string
	cfg, boot       *budget
}

// copyConfiguredDir copies a directory the project names (boot, config, boot loader) into
// dst. Its links are followed inside it only: it is the root they are resolved against.
func (st *stager) copyConfiguredDir(dir, dst string, b *budget) error {
	r, err := rootfs.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	return copyTree(r, ".", dst, b)
}

func (st *stager) grub(ctx context.Context, root string) error {
	in, cfgDir, bootDir := st.in, st.cfgDir, st.bootDir
	efiName, format, debPkg := grubNames(in.Target.Arch)
	efiDst := filepath.Join(cfgDir, "EFI", "BOOT", efiName)
	if err := os.MkdirAll(filepath.Dir(efiDst), 0o755); err != nil {
		return err
	}
	var looked []string
	found, configured := "", false
	mods, modsInRootfs := grubModuleDir(st.rfs, format)
	switch {
	case in.PreferMkimage && mods != "" && grubMkimageFound():
		// build with grub-mkimage below
	case in.Bootloader != "":
		found, configured = in.Bootloader, true
	default:
		found, looked = findInRoot(st.rfs, []string{"usr/share/rugix/grub/" + efiName, "boot/efi/EFI/BOOT/" + efiName, "boot/efi/EFI/BOOT/" + strings.ToUpper(efiName)})
	}
	switch {
	case configured:
		if err := copyConfigured(found, efiDst, st.cfg); err != nil {
			return fmt.Errorf("%w: configured GRUB EFI binary: %v", ErrMissingBootFile, err)
		}
	case found != "":
		if err := copyFrom(st.rfs, found, efiDst, st.cfg); err != nil {
			return fmt.Errorf("GRUB EFI binary from the rootfs: %w", err)
		}
	case mods == "":
		for _, dir := range []string{filepath.Join(in.RootfsDir, "usr/lib/grub", format), filepath.Join("/usr/lib/grub", format)} {
			looked = append(looked, dir+"/ (grub-mkimage modules)")
		}
		return fmt.Errorf("%w: no GRUB EFI binary %s; looked in the rootfs at %s; configure one or install the Debian package %s", ErrMissingBootFile, efiName, strings.Join(looked, ", "), debPkg)
	default:
		if modsInRootfs {
			// grub-mkimage reads the directory itself and would follow links out of the
			// rootfs: it gets a copy made under the rootfs rules.
			staged := filepath.Join(in.WorkDir, "grub-modules", format)
			if err := os.RemoveAll(staged); err != nil {
				return err
			}
			if err := copyTree(st.rfs, mods, staged, newBudget("GRUB module directory", maxGrubModules)); err != nil {
				return fmt.Errorf("GRUB modules from the rootfs: %w", err)
			}
			mods = staged
		}
		if err := grubMkimage(ctx, mods, format, efiDst, in.WorkDir, in.SourceDateEpoch); err != nil {
			return err
		}
	}
	if in.Target.RAUC {
		return st.raucGrub()
	}
	if err := writeFile(cfgDir, "rugpi/grub.cfg", []byte(GrubFirstStage)); err != nil {
		return err
	}
	bootpart := []bootenv.Var{{Name: "rugpi_bootpart", Value: "2"}}
	for _, name := range []string{"rugpi/primary.grubenv", "rugpi/secondary.grubenv"} {
		if err := bootenv.WriteGrubEnvWithSHA1(cfgDir, name, bootpart); err != nil {
			return err
		}
	}
	spare, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: "rugpi_boot_spare", Value: "false"}}, 0)
	if err != nil {
		return err
	}
	if err := writeFile(cfgDir, "rugpi/boot_spare.grubenv", spare); err != nil {
		return err
	}

	if err := st.bootFiles(); err != nil {
		return err
	}
	env, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: "rugpi_bootargs", Value: "ro init=/usr/bin/rugix-ctrl root=" + root}}, 0)
	if err != nil {
		return err
	}
	return writeFile(bootDir, "boot.grubenv", env)
}

// raucGrub writes the RAUC boot flow's files: the first stage and RAUC's environment on the
// config partition, and a boot partition without a root device of its own (the first stage
// sets rugpi_bootargs per slot, so the same boot image serves boot-a and boot-b).
func (st *stager) raucGrub() error {
	rootA, rootB, err := raucRoots(st.in.Layout, st.in.IDs)
	if err != nil {
		return err
	}
	if err := writeFile(st.cfgDir, "rugpi/grub.cfg", []byte(RaucGrubFirstStage(rootA, rootB))); err != nil {
		return err
	}
	env, err := RaucGrubEnvInitial()
	if err != nil {
		return err
	}
	if err := writeFile(st.cfgDir, RaucGrubEnv, env); err != nil {
		return err
	}
	if err := st.bootFiles(); err != nil {
		return err
	}
	// An empty boot.grubenv: the second stage's load_env keeps the first stage's values.
	empty, err := bootenv.EncodeGrubEnv(nil, 0)
	if err != nil {
		return err
	}
	return writeFile(st.bootDir, "boot.grubenv", empty)
}

// bootFiles stages the efi-grub boot partition: the boot tree if given, otherwise kernel and
// initrd from the rootfs, and GrubSecondStage unless the tree brings a grub.cfg.
func (st *stager) bootFiles() error {
	in, bootDir := st.in, st.bootDir
	if in.BootDir != "" {
		if err := st.copyConfiguredDir(in.BootDir, bootDir, st.boot); err != nil {
			return fmt.Errorf("boot files from %s: %w", in.BootDir, err)
		}
	}
	for _, want := range []struct {
		name       string
		candidates []string
	}{
		{"vmlinuz", []string{"vmlinuz", "boot/vmlinuz", "boot/vmlinuz-*", "boot/vmlinuz-lts", "boot/bzImage", "boot/Image"}},
		{"initrd.img", []string{"initrd.img", "boot/initrd.img", "boot/initrd.img-*", "boot/initramfs-lts", "boot/initramfs-*"}},
	} {
		if _, err := os.Stat(filepath.Join(bootDir, want.name)); err == nil {
			continue
		}
		src, tried := findInRoot(st.rfs, want.candidates)
		if src == "" {
			where := "the rootfs " + in.RootfsDir + " at " + strings.Join(tried, ", ")
			if in.BootDir != "" {
				where = "the boot directory " + in.BootDir + " and " + where
			}
			return fmt.Errorf("%w: no %s (kernel or initrd) in %s", ErrMissingBootFile, want.name, where)
		}
		if err := copyFrom(st.rfs, src, filepath.Join(bootDir, want.name), st.boot); err != nil {
			return fmt.Errorf("%s from the rootfs: %w", want.name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(bootDir, "grub.cfg")); errors.Is(err, fs.ErrNotExist) {
		if err := writeFile(bootDir, "grub.cfg", []byte(GrubSecondStage)); err != nil {
			return err
		}
	}
	return nil
}

// maxGrubModules bounds the copy of a rootfs's GRUB module directory (about 4 MiB in Debian).
const maxGrubModules = 256 << 20

// grubModuleDir returns the first directory with GRUB's modules for format: the rootfs's own
// (usr/lib/grub/<format>, inRootfs true, relative to the rootfs) or the build host's, or ""
// when neither has them.
func grubModuleDir(rfs *rootfs.Root, format string) (dir string, inRootfs bool) {
	rel := "usr/lib/grub/" + format
	if fi, err := rfs.Stat(rel + "/linux.mod"); err == nil && fi.Mode().IsRegular() {
		return rel, true
	}
	host := filepath.Join("/usr/lib/grub", format)
	if _, err := os.Stat(filepath.Join(host, "linux.mod")); err == nil {
		return host, false
	}
	return "", false
}

func grubMkimageFound() bool {
	_, err := tool.Find("grub-mkimage", "grub-common")
	return err == nil
}

func grubMkimage(ctx context.Context, modDir, format, out, workDir string, clamp time.Time) error {
	grubMkimage, err := tool.Find("grub-mkimage", "grub-common")
	if err != nil {
		return err
	}
	cfg := filepath.Join(workDir, "grub-embedded.cfg")
	if err := os.WriteFile(cfg, []byte(grubEmbedded), 0o644); err != nil {
		return err
	}
	args := append([]string{"-d", modDir, "-O", format, "-p", "/rugpi", "-c", cfg, "-o", out}, grubModules...)
	if err := runImageTool(ctx, grubMkimage, args, toolEnv(clamp)); err != nil {
		return fmt.Errorf("grub-mkimage -O %s: %w", format, err)
	}
	return nil
}

var kernelLine = regexp.MustCompile(`(?m)^\s*kernel\s*=\s*(\S+)`)

func (st *stager) rpi(root string) error {
	in, cfgDir, bootDir := st.in, st.cfgDir, st.bootDir
	src := in.BootDir
	if src == "" {
		src = filepath.Join(in.RootfsDir, "boot/firmware")
		if fi, err := st.rfs.Stat("boot/firmware"); err != nil || !fi.IsDir() {
			if err == nil {
				err = fmt.Errorf("boot/firmware is %s", rootfs.TypeName(fi.Mode()))
			}
			return fmt.Errorf("%w: no boot directory configured and none in the rootfs: %v", ErrMissingBootFile, err)
		}
		if err := copyTree(st.rfs, "boot/firmware", bootDir, st.boot); err != nil {
			return fmt.Errorf("boot files from the rootfs: %w", err)
		}
	} else if err := st.copyConfiguredDir(src, bootDir, st.boot); err != nil {
		return fmt.Errorf("boot files from %s: %w", src, err)
	}
	for _, req := range []string{"cmdline.txt", "config.txt"} {
		if _, err := os.Stat(filepath.Join(bootDir, req)); err != nil {
			return fmt.Errorf("%w: no %s in the boot directory %s", ErrMissingBootFile, req, src)
		}
	}
	// The staged tree holds regular files only; the limits keep files that are small by
	// nature small.
	cmdline, err := rootfs.ReadFile(bootDir, "cmdline.txt", maxSmallFile)
	if err != nil {
		return fmt.Errorf("boot directory %s: %w", src, err)
	}
	line := RewriteCmdline(string(cmdline), root)
	if err := writeFile(bootDir, "cmdline.txt", []byte(line)); err != nil {
		return err
	}
	var env []bootenv.Var
	if old, err := rootfs.ReadFile(bootDir, "boot.env", maxSmallFile); err == nil {
		if env, err = bootenv.DecodeUBootEnv(old); err != nil {
			return fmt.Errorf("existing boot.env in %s: %w", src, err)
		}
	} else if !isNotExist(err) {
		return fmt.Errorf("boot directory %s: %w", src, err)
	}
	env = setVar(env, "bootargs", line)
	benv, err := bootenv.EncodeUBootEnv(env, 0)
	if err != nil {
		return err
	}
	if err := writeFile(bootDir, "boot.env", benv); err != nil {
		return err
	}

	if in.Target.Name == TargetRPiTryboot {
		cfg, err := rootfs.ReadFile(bootDir, "config.txt", maxSmallFile)
		if err != nil {
			return fmt.Errorf("boot directory %s: %w", src, err)
		}
		kernels := []string{"kernel8.img", "kernel_2712.img", "kernel7l.img", "kernel7.img", "kernel.img"}
		if m := kernelLine.FindSubmatch(cfg); m != nil {
			kernels = []string{string(m[1])}
		}
		if !anyExists(bootDir, kernels) {
			return fmt.Errorf("%w: no kernel (%s) in the boot directory %s", ErrMissingBootFile, strings.Join(kernels, ", "), src)
		}
		a := bootenv.Autoboot(2, 3)
		for name, data := range map[string][]byte{"autoboot.txt": a, "autoboot.a.txt": a, "autoboot.b.txt": bootenv.Autoboot(3, 2)} {
			if err := writeFile(cfgDir, name, data); err != nil {
				return err
			}
		}
		return nil
	}
	return st.uboot(src)
}

func (st *stager) uboot(src string) error {
	in, cfgDir, bootDir := st.in, st.cfgDir, st.bootDir
	if !anyExists(bootDir, []string{"second.scr"}) {
		// Rugix's rpi-uboot-setup recipe puts second.scr into the boot tree; without it, write
		// the equivalent script.
		scr, err := bootenv.UBootScript("second stage", []byte(bootenv.RPiSecondStage(in.Target.Arch)), in.SourceDateEpoch)
		if err != nil {
			return err
		}
		if err := writeFile(bootDir, "second.scr", scr); err != nil {
			return err
		}
	}
	kernel := "kernel8.img"
	if in.Target.Arch == "armhf" {
		kernel = "kernel7l.img"
	}
	if !anyExists(bootDir, []string{kernel}) {
		return fmt.Errorf("%w: no kernel %s in the boot directory %s", ErrMissingBootFile, kernel, src)
	}
	// The firmware lives on the config partition; the kernels stay on the boot partitions.
	staged, err := rootfs.OpenRoot(bootDir)
	if err != nil {
		return err
	}
	defer staged.Close()
	ents, err := staged.ReadDir(".")
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "kernel") && strings.HasSuffix(n, ".img") || n == "cmdline.txt" || n == "config.txt" || n == "boot.env" || n == "second.scr" {
			continue
		}
		d := filepath.Join(cfgDir, n)
		if e.IsDir() {
			err = copyTree(staged, n, d, st.cfg)
		} else {
			err = copyFrom(staged, n, d, st.cfg)
		}
		if err != nil {
			return fmt.Errorf("firmware for the config partition: %w", err)
		}
	}
	if !anyExists(cfgDir, []string{"start.elf", "start4.elf"}) {
		return fmt.Errorf("%w: no Raspberry Pi firmware (start.elf or start4.elf) in the boot directory %s", ErrMissingBootFile, src)
	}
	// The U-Boot binaries and boot.scr come from the configured boot loader directory (its
	// links resolved inside it) or from the rootfs.
	ubootRoot, ubootRel, ubootDir := st.rfs, "usr/share/rugix/u-boot", filepath.Join(in.RootfsDir, "usr/share/rugix/u-boot")
	if in.Bootloader != "" {
		r, err := rootfs.OpenRoot(in.Bootloader)
		if err != nil {
			return fmt.Errorf("%w: U-Boot directory: %v", ErrMissingBootFile, err)
		}
		defer r.Close()
		ubootRoot, ubootRel, ubootDir = r, ".", in.Bootloader
	}
	ubootBins := []string{"u-boot-arm64.bin"}
	if in.Target.Arch == "armhf" {
		ubootBins = []string{"u-boot-armhf-zerow.bin", "u-boot-armhf-pi1.bin", "u-boot-armhf-pi2.bin", "u-boot-armhf-pi3.bin"}
	}
	for _, name := range ubootBins {
		err := copyFrom(ubootRoot, path.Join(ubootRel, name), filepath.Join(cfgDir, name), st.cfg)
		if isNotExist(err) {
			return fmt.Errorf("%w: U-Boot binary %s not found in %s (build it with the Raspberry Pi defconfig, or name its directory in the system's bootloader setting): %v", ErrMissingBootFile, name, ubootDir, err)
		}
		if err != nil {
			return fmt.Errorf("U-Boot binary %s in %s: %w", name, ubootDir, err)
		}
	}
	// A boot.scr next to the U-Boot binaries wins; otherwise write the first stage.
	if err := copyFrom(ubootRoot, path.Join(ubootRel, "boot.scr"), filepath.Join(cfgDir, "boot.scr"), st.cfg); err != nil && !isNotExist(err) {
		return fmt.Errorf("U-Boot script boot.scr in %s: %w", ubootDir, err)
	} else if err != nil {
		scr, err := bootenv.UBootScript("Rugpi First Stage", []byte(bootenv.RPiFirstStage), in.SourceDateEpoch)
		if err != nil {
			return err
		}
		if err := writeFile(cfgDir, "boot.scr", scr); err != nil {
			return err
		}
	}
	cfg := "dtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\ndtoverlay=vc4-kms-v3d\nmax_framebuffers=2\narm_64bit=1\ndisable_overscan=1\nenable_uart=1\nkernel=u-boot-arm64.bin\n"
	if in.Target.Arch == "armhf" {
		cfg = "dtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\ndtoverlay=vc4-kms-v3d\nmax_framebuffers=2\ndisable_overscan=1\nenable_uart=1\n" +
			"[pi0w]\nkernel=u-boot-armhf-zerow.bin\n[pi1]\nkernel=u-boot-armhf-pi1.bin\n[pi2]\nkernel=u-boot-armhf-pi2.bin\n[pi3]\nkernel=u-boot-armhf-pi3.bin\n"
	}
	files := []struct {
		name string
		vars []bootenv.Var
	}{
		{"bootpart.default.env", []bootenv.Var{{Name: "bootpart", Value: "2"}}},
		{"boot_spare.env", []bootenv.Var{{Name: "boot_spare", Value: "0"}}},
		{"boot_spare.disabled.env", []bootenv.Var{{Name: "boot_spare", Value: "0"}}},
		{"boot_spare.enabled.env", []bootenv.Var{{Name: "boot_spare", Value: "1"}}},
	}
	for _, f := range files {
		data, err := bootenv.EncodeUBootEnv(f.vars, 0)
		if err != nil {
			return err
		}
		if err := writeFile(cfgDir, f.name, data); err != nil {
			return err
		}
	}
	if err := writeFile(cfgDir, "config.txt", []byte(cfg)); err != nil {
		return err
	}
	return writeFile(cfgDir, "cmdline.txt", nil)
}

// RewriteCmdline applies Rugix's cmdline.txt patch: drop root=, init=, panic… and quiet, then
// append panic=60, the root device and Rugix Ctrl as init, single-space separated without a
// trailing newline.
func RewriteCmdline(cmdline, root string) string {
	var out []string
	for _, tok := range strings.Fields(cmdline) {
		if strings.HasPrefix(tok, "root=") || strings.HasPrefix(tok, "init=") || strings.HasPrefix(tok, "panic") || tok == "quiet" {
			continue
		}
		out = append(out, tok)
	}
	out = append(out, "panic=60", "root="+root, "init=/usr/bin/rugix-ctrl")
	return strings.Join(out, " ")
}

func setVar(vars []bootenv.Var, name, value string) []bootenv.Var {
	for i := range vars {
		if vars[i].Name == name {
			vars[i].Value = value
			return vars
		}
	}
	return append(vars, bootenv.Var{Name: name, Value: value})
}

func anyExists(dir string, names []string) bool {
	for _, n := range names {
		if st, err := os.Stat(filepath.Join(dir, n)); err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// findInRoot returns the first candidate (relative to the rootfs, "*" allowed in the last
// element, highest name wins) that resolves inside the rootfs to a regular file, and the paths
// it tried, each with the reason it was refused when it exists but is not usable.
func findInRoot(rfs *rootfs.Root, candidates []string) (string, []string) {
	var tried []string
	for _, c := range candidates {
		rels := []string{c}
		if strings.Contains(c, "*") {
			dir, pat := path.Split(c)
			ents, err := rfs.ReadDir(dir)
			if err != nil {
				tried = append(tried, "/"+c)
				continue
			}
			rels = nil
			for _, e := range ents {
				if ok, _ := path.Match(pat, e.Name()); ok {
					rels = append(rels, dir+e.Name())
				}
			}
			slices.SortFunc(rels, func(a, b string) int { return strings.Compare(b, a) })
		}
		why := ""
		for _, rel := range rels {
			fi, err := rfs.Stat(rel)
			switch {
			case err == nil && fi.Mode().IsRegular():
				return rel, append(tried, "/"+c)
			case err == nil:
				why = " (" + rel + " is " + rootfs.TypeName(fi.Mode()) + ")"
			case !isNotExist(err):
				why = " (" + err.Error() + ")"
			}
		}
		tried = append(tried, "/"+c+why)
	}
	return "", tried
}

func writeFile(dir, rel string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o644)
}
