package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

var testEpoch = time.Unix(1700000000, 0).UTC()

// fakeRootfs makes a tiny rootfs with the boot files each target looks for. It is not
// bootable: the kernel and firmware files are placeholders named as the spec expects.
func fakeRootfs(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	for _, f := range [][2]string{
		{"etc/os-release", "ID=demo\n"},
		{"usr/bin/rugix-ctrl", "#!/bin/sh\n"},
		{"etc/rugix/system-build-info.json", `{"name":"demo"}`},
		{"boot/vmlinuz-6.1.0-13-amd64", "fake kernel\n"},
		{"boot/initrd.img-6.1.0-13-amd64", "fake initrd\n"},
		{"boot/firmware/cmdline.txt", "console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/sbin/init\n"},
		{"boot/firmware/config.txt", "dtoverlay=vc4-kms-v3d\nmax_framebuffers=2\narm_64bit=1\n"},
		{"boot/firmware/kernel8.img", "fake rpi kernel\n"},
		{"boot/firmware/start4.elf", "fake firmware\n"},
		{"boot/firmware/fixup4.dat", "fake fixup\n"},
		{"boot/firmware/bcm2711-rpi-4-b.dtb", "fake dtb\n"},
		{"boot/firmware/overlays/vc4-kms-v3d.dtbo", "fake overlay\n"},
		{"boot/firmware/second.scr", "fake second stage\n"},
		{"usr/share/rugix/u-boot/u-boot-arm64.bin", "fake u-boot\n"},
		{"usr/share/rugix/u-boot/boot.scr", "fake boot.scr\n"},
		{"usr/share/rugix/grub/BOOTX64.efi", "fake grub\n"},
		{"usr/share/rugix/grub/BOOTAA64.efi", "fake grub arm64\n"},
		{"usr/share/doc/a-file-with-a-rather-long-name.txt", "long names\n"},
	} {
		testkit.WriteFile(t, filepath.Join(root, f[0]), f[1])
	}
	for _, l := range [][2]string{{"boot/vmlinuz-6.1.0-13-amd64", "vmlinuz"}, {"/boot/initrd.img-6.1.0-13-amd64", "initrd.img"}} {
		if err := os.Symlink(l[0], filepath.Join(root, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

type built struct {
	layout Layout
	ids    Identifiers
	parts  *Partitions
	img    string
}

// buildImage runs the whole pipeline for a target with small partitions so tests stay fast.
func buildImage(t *testing.T, dir, target, arch, rootfs string) built {
	t.Helper()
	tgt, err := TargetByName(target, arch)
	if err != nil {
		t.Fatal(err)
	}
	return buildTarget(t, dir, tgt, "demo-"+target, rootfs)
}

// buildTarget is buildImage for a target already chosen (and perhaps changed, as WithRAUC
// does), its identifiers derived from name.
func buildTarget(t *testing.T, dir string, tgt Target, name, rootfs string) built {
	t.Helper()
	size, err := TreeSize(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := Plan(tgt, Sizes{Config: 16 * MiB, BootA: 16 * MiB, BootB: 16 * MiB}, size)
	if err != nil {
		t.Fatal(err)
	}
	ids := DeriveIdentifiers(name, "demo@1.0.0")
	parts, err := BuildPartitions(context.Background(), Input{
		Target: tgt, Layout: layout, IDs: ids, RootfsDir: rootfs,
		WorkDir: filepath.Join(dir, "work"), SourceDateEpoch: testEpoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "system.img")
	if err := Assemble(context.Background(), layout, parts, img, ids); err != nil {
		t.Fatal(err)
	}
	return built{layout, ids, parts, img}
}
