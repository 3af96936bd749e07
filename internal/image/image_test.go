package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/bootenv"
	"github.com/otabake/otabake/internal/testkit"
)

func TestPlanWorkedExample(t *testing.T) {
	// §2.4 of rugix-images.md: a rootfs of 1 000 000 000 bytes.
	type part struct{ n, start, size int64 }
	tests := []struct {
		target string
		want   []part
		disk   int64
	}{
		{TargetEFIGrub, []part{{1, 2048, 524288}, {2, 526336, 524288}, {3, 1050624, 524288}, {4, 1574912, 2343750}}, 3921920},
		{TargetRPiTryboot, []part{{1, 2048, 524288}, {2, 526336, 262144}, {3, 788480, 262144}, {4, 1050624, 2349056}, {5, 1052672, 2343750}}, 3399680},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			tgt, err := TargetByName(tt.target, "arm64")
			if err != nil {
				t.Fatal(err)
			}
			l, err := Plan(tgt, Sizes{}, 1_000_000_000)
			if err != nil {
				t.Fatal(err)
			}
			if l.DiskSectors != tt.disk {
				t.Errorf("disk = %d sectors, want %d", l.DiskSectors, tt.disk)
			}
			var got []part
			for _, p := range l.Partitions {
				got = append(got, part{int64(p.Number), p.Start, p.Sectors})
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("partitions = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanRules(t *testing.T) {
	tgt, _ := TargetByName(TargetEFIGrub, "amd64")
	tests := []struct {
		name    string
		sizes   Sizes
		rootfs  int64
		system  int64 // sectors, 0 = do not check
		disk    int64
		wantErr error
	}{
		{"small rootfs gets 64 MiB + 20%", Sizes{}, 1000, (64*MiB + (64*MiB+4)/5 + 511) / 512, 0, nil},
		{"fixed system size", Sizes{System: 100 * MiB}, 50 * MiB, 100 * MiB / 512, 0, nil},
		{"rootfs larger than fixed size", Sizes{System: 10 * MiB}, 50 * MiB, 0, 0, ErrTooLarge},
		{"image size enlarges disk", Sizes{Image: 2048 * MiB}, 1000, 0, 2048 * MiB / 512, nil},
		{"image size too small", Sizes{Image: 100 * MiB}, 1000, 0, 0, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Plan(tgt, tt.sizes, tt.rootfs)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sys, _ := l.ByRole(RoleSystemA)
			if tt.system != 0 && sys.Sectors != tt.system {
				t.Errorf("system = %d sectors, want %d", sys.Sectors, tt.system)
			}
			if tt.disk != 0 && l.DiskSectors != tt.disk {
				t.Errorf("disk = %d sectors, want %d", l.DiskSectors, tt.disk)
			}
		})
	}
}

func TestTargetByNameErrors(t *testing.T) {
	for _, tt := range []struct{ name, arch, want string }{
		{"bogus", "amd64", "unknown image target"},
		{"efi-grub", "armhf", "does not support architecture"},
	} {
		if _, err := TargetByName(tt.name, tt.arch); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("TargetByName(%q, %q) = %v, want %q", tt.name, tt.arch, err, tt.want)
		}
	}
	if tg, err := TargetByName("generic-grub-efi", "arm64"); err != nil || tg.Name != TargetEFIGrub {
		t.Errorf("alias: %v %v", tg.Name, err)
	}
}

type sfdiskDump struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		FirstLBA   int64  `json:"firstlba"`
		Partitions []struct {
			Node  string `json:"node"`
			Start int64  `json:"start"`
			Size  int64  `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// TestImagesWithFieldTools is the per-target acceptance test: sfdisk, fsck.vfat, e2fsck,
// grub-editenv, fw_printenv and mtools read what otabake wrote.
func TestImagesWithFieldTools(t *testing.T) {
	sfdisk := testkit.NeedTool(t, "sfdisk", "fdisk")
	for _, tc := range []struct{ target, arch string }{
		{TargetEFIGrub, "amd64"}, {TargetEFIGrub, "arm64"}, {TargetRPiTryboot, "arm64"}, {TargetRPiUBoot, "arm64"},
	} {
		t.Run(tc.target+"-"+tc.arch, func(t *testing.T) {
			dir := t.TempDir()
			b := buildImage(t, dir, tc.target, tc.arch, fakeRootfs(t, dir))

			var d sfdiskDump
			if err := json.Unmarshal([]byte(testkit.Run(t, sfdisk, "--json", b.img)), &d); err != nil {
				t.Fatal(err)
			}
			pt := d.PartitionTable
			wantLabel, wantID := "gpt", b.ids.DiskGUID.Upper()
			if b.layout.Table == MBR {
				wantLabel, wantID = "dos", fmt.Sprintf("0x%08x", b.ids.MBRDiskID)
			}
			if pt.Label != wantLabel || pt.ID != wantID {
				t.Errorf("label/id = %s/%s, want %s/%s", pt.Label, pt.ID, wantLabel, wantID)
			}
			if len(pt.Partitions) != len(b.layout.Partitions) {
				t.Fatalf("sfdisk sees %d partitions, want %d", len(pt.Partitions), len(b.layout.Partitions))
			}
			for i, p := range b.layout.Partitions {
				g := pt.Partitions[i]
				wantType := p.Type
				if b.layout.Table == MBR {
					wantType = strings.TrimLeft(p.Type, "0")
				}
				if !strings.HasSuffix(g.Node, fmt.Sprint(p.Number)) || g.Start != p.Start || g.Size != p.Sectors || !strings.EqualFold(g.Type, wantType) {
					t.Errorf("partition %d: sfdisk %+v, want start %d size %d type %s", p.Number, g, p.Start, p.Sectors, wantType)
				}
				if b.layout.Table == GPT && g.UUID != b.ids.PartitionGUID(p.Number).Upper() {
					t.Errorf("partition %d uuid = %s, want %s", p.Number, g.UUID, b.ids.PartitionGUID(p.Number).Upper())
				}
			}
			if b.layout.Table == MBR {
				ext, _ := b.layout.ByRole(RoleExtended)
				if ext.Start+ext.Sectors != b.layout.DiskSectors {
					t.Errorf("extended partition ends at %d, disk has %d sectors", ext.Start+ext.Sectors, b.layout.DiskSectors)
				}
			}

			checkFS(t, b)
			checkPartitionBytes(t, b)
			cfg := extractFAT(t, b.parts.Config, dir)
			if _, err := os.Stat(filepath.Join(cfg, ".rugix", "bootstrap")); err != nil {
				t.Errorf("config partition lacks .rugix/bootstrap: %v", err)
			}
			switch tc.target {
			case TargetEFIGrub:
				checkGrub(t, b, cfg, tc.arch)
			case TargetRPiTryboot:
				checkTryboot(t, b, cfg, dir)
			case TargetRPiUBoot:
				checkUBoot(t, b, cfg, dir)
			}
		})
	}
}

func checkFS(t *testing.T, b built) {
	fsck := testkit.NeedTool(t, "fsck.vfat", "dosfstools")
	e2fsck := testkit.NeedTool(t, "e2fsck", "e2fsprogs")
	testkit.Run(t, fsck, "-n", b.parts.Config)
	testkit.Run(t, e2fsck, "-fn", b.parts.System)
	if bp, _ := b.layout.ByRole(RoleBootA); bp.FS == FSExt4 {
		testkit.Run(t, e2fsck, "-fn", b.parts.Boot)
	} else {
		testkit.Run(t, fsck, "-n", b.parts.Boot)
	}
}

// extractFAT copies the whole FAT image out with mtools, an independent reader.
func extractFAT(t *testing.T, img, dir string) string {
	mcopy := testkit.NeedTool(t, "mcopy", "mtools")
	out, err := os.MkdirTemp(dir, "fat-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(mcopy, "-s", "-n", "-i", img, "::/", out)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, o)
	}
	return out
}

func grubList(t *testing.T, path string) map[string]string {
	editenv := testkit.NeedTool(t, "grub-editenv", "grub-common")
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(testkit.Run(t, editenv, path, "list")), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

func checkGrub(t *testing.T, b built, cfg, arch string) {
	efi := "BOOTX64.efi"
	if arch == "arm64" {
		efi = "BOOTAA64.efi"
	}
	if _, err := os.Stat(filepath.Join(cfg, "EFI", "BOOT", efi)); err != nil {
		t.Errorf("no %s on the ESP: %v", efi, err)
	}
	for _, name := range []string{"primary.grubenv", "secondary.grubenv"} {
		p := filepath.Join(cfg, "rugpi", name)
		if got := grubList(t, p); got["rugpi_bootpart"] != "2" || len(got) != 1 {
			t.Errorf("%s = %v", name, got)
		}
		block, _ := os.ReadFile(p)
		sha, _ := os.ReadFile(p + ".sha1")
		if len(block) != 1024 || !bytes.Equal(sha, bootenv.GrubEnvSHA1(block, "/rugpi/"+name)) {
			t.Errorf("%s: size %d, sha1 file %q", name, len(block), sha)
		}
		if out := testkit.Run(t, "sha1sum", p); !strings.HasPrefix(string(sha), out[:40]+"  /rugpi/"+name) {
			t.Errorf("sha1sum %s = %s, .sha1 has %q", name, out[:40], sha)
		}
	}
	if got := grubList(t, filepath.Join(cfg, "rugpi", "boot_spare.grubenv")); got["rugpi_boot_spare"] != "false" {
		t.Errorf("boot_spare.grubenv = %v", got)
	}
	// boot.grubenv lives on the ext4 boot partition.
	debugfs := testkit.NeedTool(t, "debugfs", "e2fsprogs")
	out := filepath.Join(t.TempDir(), "boot.grubenv")
	testkit.Run(t, debugfs, "-R", "dump /boot.grubenv "+out, b.parts.Boot)
	root, _ := b.ids.RootDevice(b.layout)
	if got := grubList(t, out); got["rugpi_bootargs"] != "ro init=/usr/bin/rugix-ctrl root="+root {
		t.Errorf("boot.grubenv = %v", got)
	}
	if !strings.HasPrefix(root, "PARTUUID="+b.ids.PartitionGUID(4).String()) {
		t.Errorf("root = %s", root)
	}
	for _, f := range []string{"vmlinuz", "initrd.img", "grub.cfg"} {
		if o := testkit.Run(t, debugfs, "-R", "stat /"+f, b.parts.Boot); !strings.Contains(o, "Type: regular") {
			t.Errorf("boot partition: %s missing:\n%s", f, o)
		}
	}
}

func checkTryboot(t *testing.T, b built, cfg, dir string) {
	for name, want := range map[string]string{
		"autoboot.txt":   "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3",
		"autoboot.a.txt": "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3",
		"autoboot.b.txt": "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2",
	} {
		got, err := os.ReadFile(filepath.Join(cfg, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v", name, got, err)
		}
	}
	checkRPiBoot(t, b, dir)
}

func checkRPiBoot(t *testing.T, b built, dir string) {
	boot := extractFAT(t, b.parts.Boot, dir)
	cmdline, _ := os.ReadFile(filepath.Join(boot, "cmdline.txt"))
	want := fmt.Sprintf("console=serial0,115200 console=tty1 rootfstype=ext4 fsck.repair=yes rootwait panic=60 root=PARTUUID=%08X-05 init=/usr/bin/rugix-ctrl", b.ids.MBRDiskID)
	if string(cmdline) != want {
		t.Errorf("cmdline.txt = %q\nwant          %q", cmdline, want)
	}
	env := readUBootEnv(t, filepath.Join(boot, "boot.env"))
	if env["bootargs"] != want {
		t.Errorf("boot.env bootargs = %q", env["bootargs"])
	}
	for _, f := range []string{"kernel8.img", "config.txt", "overlays/vc4-kms-v3d.dtbo", "bcm2711-rpi-4-b.dtb"} {
		if _, err := os.Stat(filepath.Join(boot, f)); err != nil {
			t.Errorf("boot partition lacks %s", f)
		}
	}
}

func checkUBoot(t *testing.T, b built, cfg, dir string) {
	for name, want := range map[string]string{
		"bootpart.default.env": "bootpart=2", "boot_spare.env": "boot_spare=0",
		"boot_spare.disabled.env": "boot_spare=0", "boot_spare.enabled.env": "boot_spare=1",
	} {
		env := readUBootEnv(t, filepath.Join(cfg, name))
		k, v, _ := strings.Cut(want, "=")
		if len(env) != 1 || env[k] != v {
			t.Errorf("%s = %v, want %s", name, env, want)
		}
	}
	for _, f := range []string{"u-boot-arm64.bin", "boot.scr", "start4.elf", "bcm2711-rpi-4-b.dtb", "overlays/vc4-kms-v3d.dtbo"} {
		if _, err := os.Stat(filepath.Join(cfg, f)); err != nil {
			t.Errorf("config partition lacks %s", f)
		}
	}
	if c, _ := os.ReadFile(filepath.Join(cfg, "config.txt")); !strings.Contains(string(c), "kernel=u-boot-arm64.bin") {
		t.Errorf("config.txt = %q", c)
	}
	if c, err := os.ReadFile(filepath.Join(cfg, "cmdline.txt")); err != nil || len(c) != 0 {
		t.Errorf("cmdline.txt = %q, %v", c, err)
	}
	checkRPiBoot(t, b, dir)
}

// readUBootEnv reads an env file with fw_printenv (libubootenv) and checks our decoder agrees.
func readUBootEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vars, err := bootenv.DecodeUBootEnv(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	ours := bootenv.VarsMap(vars)
	fw := testkit.NeedTool(t, "fw_printenv", "libubootenv-tool")
	conf := filepath.Join(t.TempDir(), "fw_env.config")
	os.WriteFile(conf, fmt.Appendf(nil, "%s 0x0000 0x%x\n", path, len(data)), 0o644)
	out := testkit.Run(t, fw, "-c", conf)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	if fmt.Sprint(got) != fmt.Sprint(ours) {
		t.Errorf("%s: fw_printenv %v, our decoder %v", path, got, ours)
	}
	return got
}

func TestReproducible(t *testing.T) {
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	for _, target := range []string{TargetEFIGrub, TargetRPiTryboot} {
		t.Run(target, func(t *testing.T) {
			rootDir := t.TempDir()
			rootfs := fakeRootfs(t, rootDir)
			a := buildImage(t, t.TempDir(), target, "arm64", rootfs)
			// Touch the tree so that ctimes differ, as a second extraction would.
			os.Chtimes(filepath.Join(rootfs, "etc/os-release"), testEpoch.Add(1e9), testEpoch.Add(1e9))
			b := buildImage(t, t.TempDir(), target, "arm64", rootfs)
			for _, pair := range [][2]string{{a.img, b.img}, {a.parts.Boot, b.parts.Boot}, {a.parts.System, b.parts.System}, {a.parts.Config, b.parts.Config}} {
				if x, y := testkit.SHA256File(t, pair[0]), testkit.SHA256File(t, pair[1]); x != y {
					t.Errorf("%s differs between builds: %s vs %s", filepath.Base(pair[0]), x, y)
				}
			}
		})
	}
}

func TestMissingBootFiles(t *testing.T) {
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	tests := []struct {
		target string
		remove []string
		want   string
	}{
		{TargetEFIGrub, []string{"vmlinuz", "boot/vmlinuz-6.1.0-13-amd64"}, "no vmlinuz"},
		{TargetEFIGrub, []string{"initrd.img", "boot/initrd.img-6.1.0-13-amd64"}, "no initrd.img"},
		{TargetRPiTryboot, []string{"boot/firmware/cmdline.txt"}, "no cmdline.txt"},
		{TargetRPiTryboot, []string{"boot/firmware/kernel8.img"}, "no kernel"},
		{TargetRPiUBoot, []string{"usr/share/rugix/u-boot/u-boot-arm64.bin"}, "u-boot-arm64.bin"},
	}
	for _, tt := range tests {
		t.Run(tt.target+"/"+tt.want, func(t *testing.T) {
			dir := t.TempDir()
			rootfs := fakeRootfs(t, dir)
			for _, r := range tt.remove {
				if err := os.Remove(filepath.Join(rootfs, r)); err != nil {
					t.Fatal(err)
				}
			}
			tgt, _ := TargetByName(tt.target, "arm64")
			l, _ := Plan(tgt, Sizes{Config: 16 * MiB, BootA: 16 * MiB, BootB: 16 * MiB}, 1000)
			_, err := BuildPartitions(context.Background(), Input{Target: tgt, Layout: l, IDs: DeriveIdentifiers("x", "y"), RootfsDir: rootfs, WorkDir: filepath.Join(dir, "w"), SourceDateEpoch: testEpoch})
			if !errors.Is(err, ErrMissingBootFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrMissingBootFile mentioning %q", err, tt.want)
			}
		})
	}
}

func TestSystemTooLargeForFixedSize(t *testing.T) {
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	dir := t.TempDir()
	rootfs := fakeRootfs(t, dir)
	testkit.WriteFile(t, filepath.Join(rootfs, "big"), strings.Repeat("x", 3*MiB))
	// The plan accepts it (the content is below the size), but mkfs cannot fit it.
	err := MakeExt4(context.Background(), rootfs, filepath.Join(dir, "s.img"), 2*MiB, Ext4Options{Clamp: testEpoch})
	if err == nil || !strings.Contains(err.Error(), "mkfs.ext4") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "s.img")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial image left behind: %v", err)
	}
}

func TestSystemFixups(t *testing.T) {
	debugfs := testkit.NeedTool(t, "debugfs", "e2fsprogs")
	dir := t.TempDir()
	rootfs := fakeRootfs(t, dir)
	img := filepath.Join(dir, "s.img")
	err := MakeExt4(context.Background(), rootfs, img, 32*MiB, Ext4Options{Clamp: testEpoch, Fixups: []string{
		"sif /usr/bin/rugix-ctrl uid 1000", "sif /usr/bin/rugix-ctrl mode 0104755",
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := testkit.Run(t, debugfs, "-R", "stat /usr/bin/rugix-ctrl", img)
	for _, want := range []string{"User:  1000", "Mode:  04755", fmt.Sprintf("mtime: 0x%x", testEpoch.Unix())} {
		if !strings.Contains(out, want) {
			t.Errorf("stat lacks %q:\n%s", want, out)
		}
	}
	err = MakeExt4(context.Background(), rootfs, img, 32*MiB, Ext4Options{Fixups: []string{"sif /does/not/exist uid 0"}})
	if err == nil || !strings.Contains(err.Error(), "debugfs") {
		t.Fatalf("failing fixup: err = %v", err)
	}
}

func TestCtrlSystemTOML(t *testing.T) {
	for _, tt := range []struct{ target, want string }{
		{TargetEFIGrub, "[data-partition]\npartition = 6\n\n[boot-flow]\ntype = \"grub\""},
		{TargetRPiTryboot, "[data-partition]\npartition = 7\n\n[boot-flow]\ntype = \"rpi-tryboot\""},
		{TargetRPiUBoot, "[slots.system-b]\ntype = \"block\"\npartition = 6\nimmutable = true"},
	} {
		tg, _ := TargetByName(tt.target, "arm64")
		if got := tg.CtrlSystemTOML(); !strings.Contains(got, tt.want) {
			t.Errorf("%s: system.toml lacks %q:\n%s", tt.target, tt.want, got)
		}
	}
}

// checkPartitionBytes verifies that each partition image (the bundle payloads) is exactly what
// the disk image holds at the partition's offset.
func checkPartitionBytes(t *testing.T, b built) {
	disk, err := os.ReadFile(b.img)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range b.layout.Partitions {
		src := b.parts.ByRole(p.Role)
		if src == "" {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != p.Bytes() {
			t.Errorf("partition %d image is %d bytes, partition %d", p.Number, len(data), p.Bytes())
		}
		if !bytes.Equal(disk[p.Offset():p.Offset()+int64(len(data))], data) {
			t.Errorf("partition %d: disk bytes differ from %s", p.Number, src)
		}
	}
}

func TestCtrlSystemTOMLParses(t *testing.T) {
	for _, name := range TargetNames() {
		tg, _ := TargetByName(name, "arm64")
		var v map[string]any
		if _, err := toml.Decode(tg.CtrlSystemTOML(), &v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestGrubBuiltWithMkimage(t *testing.T) {
	testkit.NeedTool(t, "grub-mkimage", "grub-common")
	testkit.NeedFile(t, "/usr/lib/grub/x86_64-efi/linux.mod", "grub-efi-amd64-bin")
	dir := t.TempDir()
	rootfs := fakeRootfs(t, dir)
	os.Remove(filepath.Join(rootfs, "usr/share/rugix/grub/BOOTX64.efi"))
	b := buildImage(t, dir, TargetEFIGrub, "amd64", rootfs)
	cfg := extractFAT(t, b.parts.Config, dir)
	efi, err := os.ReadFile(filepath.Join(cfg, "EFI", "BOOT", "BOOTX64.efi"))
	if err != nil || len(efi) < 1024 || string(efi[:2]) != "MZ" {
		t.Fatalf("BOOTX64.efi is not a PE image (%d bytes, %v)", len(efi), err)
	}
}

// TestUBootScriptsGenerated checks that an rpi-uboot rootfs without boot.scr and second.scr
// gets otabake's scripts, as valid uImage scripts on the config and boot partitions.
func TestUBootScriptsGenerated(t *testing.T) {
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	dir := t.TempDir()
	rootfs := fakeRootfs(t, dir)
	for _, r := range []string{"usr/share/rugix/u-boot/boot.scr", "boot/firmware/second.scr"} {
		if err := os.Remove(filepath.Join(rootfs, r)); err != nil {
			t.Fatal(err)
		}
	}
	tgt, _ := TargetByName(TargetRPiUBoot, "arm64")
	l, _ := Plan(tgt, Sizes{Config: 16 * MiB, BootA: 16 * MiB, BootB: 16 * MiB}, 1000)
	work := filepath.Join(dir, "w")
	if _, err := BuildPartitions(context.Background(), Input{Target: tgt, Layout: l, IDs: DeriveIdentifiers("x", "y"), RootfsDir: rootfs, WorkDir: work, SourceDateEpoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ path, want string }{{"config-root/boot.scr", "bootpart.default.env"}, {"boot-root/second.scr", "booti"}} {
		data, err := os.ReadFile(filepath.Join(work, f.path))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 72 || data[0] != 0x27 || data[1] != 0x05 || !strings.Contains(string(data), f.want) {
			t.Errorf("%s is not a uImage script containing %q", f.path, f.want)
		}
	}
}

// TestBootFilesStayInRootfs builds rpi-uboot images whose U-Boot binary, boot.scr or boot
// firmware are links pointing at the build host, FIFOs or devices: the host's bytes must never
// reach a partition, links must resolve inside the rootfs as on the device, and special files
// must be refused instead of blocking the build or being read without end.
func TestBootFilesStayInRootfs(t *testing.T) {
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	const marker = "OTABAKE-HOST-SECRET-7f3a"
	t.Setenv("OTABAKE_TEST_SECRET", marker)
	host := t.TempDir()
	testkit.WriteFile(t, filepath.Join(host, "u-boot/u-boot-arm64.bin"), marker)
	testkit.WriteFile(t, filepath.Join(host, "u-boot/boot.scr"), marker)
	testkit.WriteFile(t, filepath.Join(host, "secret.dtb"), marker)
	const ubootDir = "usr/share/rugix/u-boot"
	tests := []struct {
		name  string
		root  bool // needs root (mknod)
		setup func(t *testing.T, rootfs string)
		want  string // error text; "" when the image builds
	}{
		{"absolute U-Boot link resolves inside the rootfs", false, func(t *testing.T, rootfs string) {
			testkit.WriteFile(t, filepath.Join(rootfs, host+"/u-boot/u-boot-arm64.bin"), "ROOTFS U-BOOT")
			relink(t, rootfs, ubootDir+"/u-boot-arm64.bin", host+"/u-boot/u-boot-arm64.bin")
		}, ""},
		{"U-Boot link to /proc/self/environ", false, func(t *testing.T, rootfs string) {
			relink(t, rootfs, ubootDir+"/u-boot-arm64.bin", "/proc/self/environ")
		}, "not found"},
		{"U-Boot link to a host file", false, func(t *testing.T, rootfs string) {
			relink(t, rootfs, ubootDir+"/u-boot-arm64.bin", host+"/u-boot/u-boot-arm64.bin")
		}, "not found"},
		{"U-Boot relative link climbing out", false, func(t *testing.T, rootfs string) {
			relink(t, rootfs, ubootDir+"/u-boot-arm64.bin", "../../../../../../../../../.."+host+"/u-boot/u-boot-arm64.bin")
		}, "climbs above the root"},
		{"U-Boot directory linked to the host", false, func(t *testing.T, rootfs string) {
			if err := os.RemoveAll(filepath.Join(rootfs, "usr/share/rugix")); err != nil {
				t.Fatal(err)
			}
			relink(t, rootfs, "usr/share/rugix", host)
		}, "not found"},
		{"boot.scr linked to a host file", false, func(t *testing.T, rootfs string) {
			relink(t, rootfs, ubootDir+"/boot.scr", "../../../../../../../../../.."+host+"/u-boot/boot.scr")
		}, "climbs above the root"},
		{"boot.scr is a FIFO", false, func(t *testing.T, rootfs string) {
			os.Remove(filepath.Join(rootfs, ubootDir, "boot.scr"))
			if err := syscall.Mkfifo(filepath.Join(rootfs, ubootDir, "boot.scr"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "named pipe (FIFO)"},
		{"U-Boot binary is a character device", true, func(t *testing.T, rootfs string) {
			os.Remove(filepath.Join(rootfs, ubootDir, "u-boot-arm64.bin"))
			if err := syscall.Mknod(filepath.Join(rootfs, ubootDir, "u-boot-arm64.bin"), syscall.S_IFCHR|0o666, 1<<8|5); err != nil {
				t.Fatal(err)
			}
		}, "character device"},
		{"U-Boot binary linked to /dev/zero", true, func(t *testing.T, rootfs string) {
			if err := syscall.Mknod(filepath.Join(rootfs, "dev-zero"), syscall.S_IFCHR|0o666, 1<<8|5); err != nil {
				t.Fatal(err)
			}
			relink(t, rootfs, ubootDir+"/u-boot-arm64.bin", "/dev-zero")
		}, "character device"},
		{"firmware linked to a host file", false, func(t *testing.T, rootfs string) {
			relink(t, rootfs, "boot/firmware/bcm2711-rpi-4-b.dtb", host+"/secret.dtb")
		}, "does not exist"},
		{"firmware directory linked out", false, func(t *testing.T, rootfs string) {
			os.RemoveAll(filepath.Join(rootfs, "boot/firmware/overlays"))
			relink(t, rootfs, "boot/firmware/overlays", "../../../../../../../../.."+host)
		}, "climbs above the root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testkit.NeedRoot(t, "creating device nodes", "this check did not run")
			}
			dir := t.TempDir()
			rootfs := fakeRootfs(t, dir)
			tt.setup(t, rootfs)
			var img string
			if tt.want == "" {
				b := buildImage(t, dir, TargetRPiUBoot, "arm64", rootfs)
				img = b.img
				if data, _ := os.ReadFile(img); !strings.Contains(string(data), "ROOTFS U-BOOT") {
					t.Error("the image lacks the rootfs's U-Boot binary")
				}
			} else {
				tgt, _ := TargetByName(TargetRPiUBoot, "arm64")
				l, _ := Plan(tgt, Sizes{Config: 16 * MiB, BootA: 16 * MiB, BootB: 16 * MiB}, 1000)
				var err error
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, err = BuildPartitions(context.Background(), Input{Target: tgt, Layout: l, IDs: DeriveIdentifiers("x", "y"), RootfsDir: rootfs, WorkDir: filepath.Join(dir, "work"), SourceDateEpoch: testEpoch})
				}()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("BuildPartitions did not return within 5 s")
				}
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
			}
			// Nothing staged or built holds the host's bytes.
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() || strings.HasPrefix(p, rootfs+"/") {
					return nil
				}
				if data, _ := os.ReadFile(p); strings.Contains(string(data), marker) {
					t.Errorf("%s holds the build host's secret", p)
				}
				return nil
			})
		})
	}
}

// relink replaces rel in the rootfs by a symlink to target.
func relink(t *testing.T, rootfs, rel, target string) {
	t.Helper()
	p := filepath.Join(rootfs, rel)
	os.Remove(p)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
