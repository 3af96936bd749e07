package image

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	if in.ConfigDir != "" {
		if err := copyTree(in.ConfigDir, cfgDir); err != nil {
			return nil, fmt.Errorf("build partitions: config files: %w", err)
		}
	}
	switch in.Target.Name {
	case TargetEFIGrub:
		err = stageGrub(ctx, in, cfgDir, bootDir, root)
	case TargetRPiTryboot, TargetRPiUBoot:
		err = stageRPi(in, cfgDir, bootDir, root)
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

func stageGrub(ctx context.Context, in Input, cfgDir, bootDir, root string) error {
	efiName, format, debPkg := grubNames(in.Target.Arch)
	efiDst := filepath.Join(cfgDir, "EFI", "BOOT", efiName)
	if err := os.MkdirAll(filepath.Dir(efiDst), 0o755); err != nil {
		return err
	}
	var looked []string
	found := ""
	mods := grubModuleDir(in.RootfsDir, format)
	switch {
	case in.PreferMkimage && mods != "" && grubMkimageFound():
		// build with grub-mkimage below
	case in.Bootloader != "":
		if st, err := os.Stat(in.Bootloader); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("%w: configured GRUB EFI binary %s is not a file", ErrMissingBootFile, in.Bootloader)
		}
		found = in.Bootloader
	default:
		for _, rel := range []string{"usr/share/rugix/grub/" + efiName, "boot/efi/EFI/BOOT/" + efiName, "boot/efi/EFI/BOOT/" + strings.ToUpper(efiName)} {
			looked = append(looked, "/"+rel)
			if p, err := resolveInRoot(in.RootfsDir, rel); err == nil {
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
					found = p
					break
				}
			}
		}
	}
	switch {
	case found != "":
		if err := copyFile(found, efiDst); err != nil {
			return err
		}
	case mods == "":
		for _, dir := range []string{filepath.Join(in.RootfsDir, "usr/lib/grub", format), filepath.Join("/usr/lib/grub", format)} {
			looked = append(looked, dir+"/ (grub-mkimage modules)")
		}
		return fmt.Errorf("%w: no GRUB EFI binary %s; looked in the rootfs at %s; configure one or install the Debian package %s", ErrMissingBootFile, efiName, strings.Join(looked, ", "), debPkg)
	default:
		if err := grubMkimage(ctx, mods, format, efiDst, in.WorkDir, in.SourceDateEpoch); err != nil {
			return err
		}
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

	// Boot partition: the boot tree if given, otherwise kernel and initrd from the rootfs.
	if in.BootDir != "" {
		if err := copyTree(in.BootDir, bootDir); err != nil {
			return fmt.Errorf("boot files: %w", err)
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
		src, tried := findInRoot(in.RootfsDir, want.candidates)
		if src == "" {
			where := "the rootfs " + in.RootfsDir + " at " + strings.Join(tried, ", ")
			if in.BootDir != "" {
				where = "the boot directory " + in.BootDir + " and " + where
			}
			return fmt.Errorf("%w: no %s (kernel or initrd) in %s", ErrMissingBootFile, want.name, where)
		}
		if err := copyFile(src, filepath.Join(bootDir, want.name)); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(bootDir, "grub.cfg")); errors.Is(err, fs.ErrNotExist) {
		if err := writeFile(bootDir, "grub.cfg", []byte(GrubSecondStage)); err != nil {
			return err
		}
	}
	env, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: "rugpi_bootargs", Value: "ro init=/usr/bin/rugix-ctrl root=" + root}}, 0)
	if err != nil {
		return err
	}
	return writeFile(bootDir, "boot.grubenv", env)
}

// grubModuleDir returns the first directory with GRUB's modules for format: the rootfs's own
// (usr/lib/grub/<format>) or the build host's, or "" when neither has them.
func grubModuleDir(rootfs, format string) string {
	for _, dir := range []string{filepath.Join(rootfs, "usr/lib/grub", format), filepath.Join("/usr/lib/grub", format)} {
		if _, err := os.Stat(filepath.Join(dir, "linux.mod")); err == nil {
			return dir
		}
	}
	return ""
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
	if stderr, err := runTool(ctx, grubMkimage, args, toolEnv(clamp)); err != nil {
		return fmt.Errorf("grub-mkimage -O %s: %w: %s", format, err, tail(stderr))
	}
	return nil
}

var kernelLine = regexp.MustCompile(`(?m)^\s*kernel\s*=\s*(\S+)`)

func stageRPi(in Input, cfgDir, bootDir, root string) error {
	src := in.BootDir
	if src == "" {
		p, err := resolveInRoot(in.RootfsDir, "boot/firmware")
		if err != nil {
			return fmt.Errorf("%w: no boot directory configured and %s/boot/firmware: %v", ErrMissingBootFile, in.RootfsDir, err)
		}
		src = p
	}
	if st, err := os.Stat(src); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: boot directory %s does not exist", ErrMissingBootFile, src)
	}
	if err := copyTree(src, bootDir); err != nil {
		return fmt.Errorf("boot files: %w", err)
	}
	for _, req := range []string{"cmdline.txt", "config.txt"} {
		if _, err := os.Stat(filepath.Join(bootDir, req)); err != nil {
			return fmt.Errorf("%w: no %s in the boot directory %s", ErrMissingBootFile, req, src)
		}
	}
	cmdline, err := os.ReadFile(filepath.Join(bootDir, "cmdline.txt"))
	if err != nil {
		return err
	}
	line := RewriteCmdline(string(cmdline), root)
	if err := writeFile(bootDir, "cmdline.txt", []byte(line)); err != nil {
		return err
	}
	var env []bootenv.Var
	if old, err := os.ReadFile(filepath.Join(bootDir, "boot.env")); err == nil {
		if env, err = bootenv.DecodeUBootEnv(old); err != nil {
			return fmt.Errorf("existing boot.env in %s: %w", src, err)
		}
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
		cfg, _ := os.ReadFile(filepath.Join(bootDir, "config.txt"))
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
	return stageUBoot(in, src, cfgDir, bootDir)
}

func stageUBoot(in Input, src, cfgDir, bootDir string) error {
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
	ents, err := os.ReadDir(bootDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "kernel") && strings.HasSuffix(n, ".img") || n == "cmdline.txt" || n == "config.txt" || n == "boot.env" || n == "second.scr" {
			continue
		}
		s, d := filepath.Join(bootDir, n), filepath.Join(cfgDir, n)
		if e.IsDir() {
			err = copyTree(s, d)
		} else {
			err = copyFile(s, d)
		}
		if err != nil {
			return err
		}
	}
	if !anyExists(cfgDir, []string{"start.elf", "start4.elf"}) {
		return fmt.Errorf("%w: no Raspberry Pi firmware (start.elf or start4.elf) in the boot directory %s", ErrMissingBootFile, src)
	}
	ubootDir := in.Bootloader
	if ubootDir == "" {
		ubootDir = filepath.Join(in.RootfsDir, "usr/share/rugix/u-boot")
	}
	ubootBins := []string{"u-boot-arm64.bin"}
	if in.Target.Arch == "armhf" {
		ubootBins = []string{"u-boot-armhf-zerow.bin", "u-boot-armhf-pi1.bin", "u-boot-armhf-pi2.bin", "u-boot-armhf-pi3.bin"}
	}
	for _, name := range ubootBins {
		if err := copyFile(filepath.Join(ubootDir, name), filepath.Join(cfgDir, name)); err != nil {
			return fmt.Errorf("%w: U-Boot binary %s not found in %s (build it with the Raspberry Pi defconfig, or name its directory in the system's bootloader setting): %v", ErrMissingBootFile, name, ubootDir, err)
		}
	}
	// A boot.scr next to the U-Boot binaries wins; otherwise write the first stage.
	if err := copyFile(filepath.Join(ubootDir, "boot.scr"), filepath.Join(cfgDir, "boot.scr")); err != nil {
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

// findInRoot returns the first candidate (relative to root, "*" allowed in the last element,
// highest name wins) that resolves inside root to a regular file, and the paths it tried.
func findInRoot(root string, candidates []string) (string, []string) {
	var tried []string
	for _, c := range candidates {
		tried = append(tried, "/"+c)
		rels := []string{c}
		if strings.Contains(c, "*") {
			dir, pat := path.Split(c)
			d, err := resolveInRoot(root, dir)
			if err != nil {
				continue
			}
			ents, _ := os.ReadDir(d)
			rels = nil
			for _, e := range ents {
				if ok, _ := path.Match(pat, e.Name()); ok {
					rels = append(rels, dir+e.Name())
				}
			}
			slices.SortFunc(rels, func(a, b string) int { return strings.Compare(b, a) })
		}
		for _, rel := range rels {
			p, err := resolveInRoot(root, rel)
			if err != nil {
				continue
			}
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, tried
			}
		}
	}
	return "", tried
}

// resolveInRoot resolves rel inside root as if root were "/": symbolic links, absolute or
// relative, are followed but can never lead outside root.
func resolveInRoot(root, rel string) (string, error) {
	parts := strings.Split(strings.Trim(filepath.ToSlash(rel), "/"), "/")
	var cur []string
	for hops := 0; len(parts) > 0; {
		p := parts[0]
		parts = parts[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		host := filepath.Join(root, filepath.Join(cur...), p)
		st, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, p)
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", rel)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = nil
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	return filepath.Join(root, filepath.Join(cur...)), nil
}

func writeFile(dir, rel string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return nil
}

// copyTree copies regular files and directories from src into dst. Symbolic links are
// followed (FAT has none) but only while they stay inside src: boot trees often come from an
// untrusted rootfs, and an absolute link there must not pull in files of the build host.
func copyTree(src, dst string) error {
	realSrc, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.Type()&fs.ModeSymlink != 0 {
			resolved, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if r, err := filepath.Rel(realSrc, resolved); err != nil || r == ".." || strings.HasPrefix(r, "../") {
				return fmt.Errorf("%s: symbolic link leads outside %s", p, src)
			}
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		switch {
		case st.IsDir():
			if d.Type()&fs.ModeSymlink != 0 {
				return copyTree(p, target)
			}
			return os.MkdirAll(target, 0o755)
		case st.Mode().IsRegular():
			return copyFile(p, target)
		}
		return fmt.Errorf("%s: unsupported file type %v", p, st.Mode().Type())
	})
}
