//go:build linux && guestsmoke

package main

// A manual smoke test of both guest programs in a real kernel under QEMU, without GRUB: the
// kernel is booted directly with the initramfs /init and root=PARTUUID of system-a, so it covers
// the initramfs, Rugix Ctrl's init role (bootstrap with BLKPG and mke2fs, data and /var/lib),
// and the CLI on real block devices (install, post-install mount, commit, spare reboot).
//
//	OTABAKE_SMOKE_KERNEL=/path/to/extracted/linux-image (holding boot/ and lib/modules/) \
//	  go test -tags guestsmoke -run TestQEMUSmoke -v ./internal/e2e/guest/rugixctrl/
//
// It is behind a build tag because it needs QEMU, a Debian kernel and minutes of emulation; the
// end-to-end test proper (with GRUB, the agent and the hub) lives elsewhere.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/bootenv"
	"github.com/otabake/otabake/internal/e2e/vmkit"
	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/image"
	"github.com/otabake/otabake/internal/testkit"
)

func TestQEMUSmoke(t *testing.T) {
	kroot := os.Getenv("OTABAKE_SMOKE_KERNEL")
	if kroot == "" {
		t.Skip("OTABAKE_SMOKE_KERNEL not set")
	}
	ctx := context.Background()
	dir := t.TempDir()
	mods, err := filepath.Glob(filepath.Join(kroot, "lib/modules/*"))
	if err != nil || len(mods) != 1 {
		t.Fatalf("want one module tree in %s: %v %v", kroot, mods, err)
	}
	k := &vmkit.Kernel{Version: filepath.Base(mods[0]), ModulesDir: mods[0]}
	k.Vmlinuz = filepath.Join(kroot, "boot", "vmlinuz-"+k.Version)
	if _, err := os.Stat(filepath.Join(k.ModulesDir, "modules.dep")); err != nil {
		if err := vmkit.GenerateModulesDep(k.ModulesDir); err != nil {
			t.Fatal(err)
		}
	}

	build := func(pkg, out string) {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	initBin, ctrlBin := filepath.Join(dir, "init"), filepath.Join(dir, "rugix-ctrl")
	build("../initrd", initBin)
	build(".", ctrlBin)

	closure, err := k.ModuleClosure(vmkit.GuestModules...)
	if err != nil {
		t.Fatal(err)
	}
	var initrd bytes.Buffer
	if err := vmkit.WriteInitramfs(&initrd, initBin, k, closure); err != nil {
		t.Fatal(err)
	}
	initrdPath := filepath.Join(dir, "initrd.img")
	testkit.Must(t, os.WriteFile(initrdPath, initrd.Bytes(), 0o644))

	// The update: boot and system payloads, installed from a file in the root.
	bootImg, sysImg := payloadImages(t, dir)
	bundlePath, res := makeBundle(t, dir, bootImg, sysImg)

	// Root filesystem: busybox, the stand-in and an init script that exercises it.
	root := filepath.Join(dir, "root")
	for _, d := range []string{"bin", "usr/bin", "sbin", "dev", "proc", "sys", "run", "tmp", "var/lib", "etc/rugix"} {
		testkit.Must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	bb, err := os.ReadFile(testkit.NeedFile(t, "/bin/busybox", "busybox-static"))
	testkit.Must(t, err)
	testkit.Must(t, os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755))
	// Rugix Ctrl's default layout wants 4 GiB system partitions; this 256 MiB disk gets 64 MiB ones.
	testkit.Must(t, os.WriteFile(filepath.Join(root, "etc/rugix/bootstrapping.toml"), []byte("[layout]\ntype = \"default\"\nsystem-size = \"64M\"\n"), 0o644))
	testkit.Must(t, os.Symlink("busybox", filepath.Join(root, "bin/sh")))
	ctrl, err := os.ReadFile(ctrlBin)
	testkit.Must(t, err)
	testkit.Must(t, os.WriteFile(filepath.Join(root, "usr/bin/rugix-ctrl"), ctrl, 0o755))
	b, err := os.ReadFile(bundlePath)
	testkit.Must(t, err)
	testkit.Must(t, os.WriteFile(filepath.Join(root, "update.rugixb"), b, 0o644))
	script := `#!/bin/sh
export PATH=/bin:/usr/bin
bb=/bin/busybox
echo "SMOKE: init running"
rugix-ctrl --version
rugix-ctrl system info --json; echo "SMOKE: info rc=$?"
rugix-ctrl update install --bundle-hash ` + res.Hash + ` --reboot no /update.rugixb; echo "SMOKE: install rc=$?"
rugix-ctrl system info --json; echo
echo persisted > /var/lib/smoke; echo "SMOKE: write var-lib rc=$?"
$bb grep -E ' (/run/rugix/mounts/[a-z]+|/var/lib) ' /proc/mounts
rugix-ctrl system commit; echo "SMOKE: commit rc=$?"
rugix-ctrl bogus; echo "SMOKE: bogus rc=$?"
rugix-ctrl system reboot --spare
echo "SMOKE: reboot returned $?"
$bb poweroff -f
`
	testkit.Must(t, os.WriteFile(filepath.Join(root, "sbin/init"), []byte(script), 0o755))

	// Config partition: a default of b while a boots (as after a rollback to a), so that the
	// commit in the guest has to rewrite both environments on vfat; and the bootstrap marker.
	cfg := filepath.Join(dir, "config")
	testkit.Must(t, os.MkdirAll(filepath.Join(cfg, "rugpi"), 0o755))
	testkit.Must(t, os.MkdirAll(filepath.Join(cfg, ".rugix"), 0o755))
	testkit.Must(t, os.MkdirAll(filepath.Join(cfg, "EFI"), 0o755))
	testkit.Must(t, writeBootPart(cfg, "3"))
	testkit.Must(t, writeSpareFlag(cfg, false))
	testkit.Must(t, os.WriteFile(filepath.Join(cfg, ".rugix/bootstrap"), nil, 0o644))

	tgt, err := image.TargetByName("efi-grub", "amd64")
	testkit.Must(t, err)
	const sysBytes = 64 << 20
	l, err := image.Plan(tgt, image.Sizes{Config: 32 << 20, BootA: testBootBytes, BootB: testBootBytes, System: sysBytes, Image: 256 << 20}, 0)
	testkit.Must(t, err)
	ids := image.DeriveIdentifiers("guest-smoke", "r1")
	parts := map[int]string{1: filepath.Join(dir, "p1.img"), 4: filepath.Join(dir, "p4.img")}
	testkit.Must(t, image.MakeFAT(ctx, cfg, parts[1], l.Partitions[0].Bytes(), image.FATOptions{Serial: 0x1234}))
	testkit.Must(t, image.MakeExt4(ctx, root, parts[4], sysBytes, image.Ext4Options{}))
	disk := filepath.Join(dir, "disk.img")
	f, err := os.Create(disk)
	testkit.Must(t, err)
	testkit.Must(t, f.Truncate(l.DiskBytes()))
	testkit.Must(t, image.WriteTable(f, l, ids))
	for _, p := range l.Partitions {
		if src, ok := parts[p.Number]; ok {
			data, err := os.ReadFile(src)
			testkit.Must(t, err)
			_, err = f.WriteAt(data, p.Offset())
			testkit.Must(t, err)
		}
	}
	testkit.Must(t, f.Close())
	rootDev, err := ids.RootDevice(l)
	testkit.Must(t, err)

	qctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	start := time.Now()
	q := exec.CommandContext(qctx, "qemu-system-x86_64", "-M", "q35", "-m", "512", "-nographic", "-no-reboot",
		"-kernel", k.Vmlinuz, "-initrd", initrdPath,
		"-append", "console=ttyS0 ro init=/usr/bin/rugix-ctrl root="+rootDev+" panic=-1",
		"-drive", "file="+disk+",if=virtio,format=raw")
	out, err := q.CombinedOutput()
	log := string(out)
	t.Logf("QEMU ran %s: %v", time.Since(start).Round(time.Second), err)
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "otabake-initrd") || strings.Contains(l, "rugix-ctrl") || strings.Contains(l, "SMOKE") ||
			strings.Contains(l, "{") || strings.Contains(l, "/run/rugix") || strings.Contains(l, "/var/lib") || strings.Contains(l, "Kernel panic") {
			t.Log(strings.TrimRight(l, "\r"))
		}
	}
	for _, want := range []string{
		"otabake-initrd: root " + rootDev + " is /dev/vda4 (ext4, ro); exec /usr/bin/rugix-ctrl",
		"rugix-ctrl: bootstrap: added partition 6",
		"rugix-ctrl: boot group a (root /dev/vda4), default group b",
		"rugix-ctrl: committed: default boot group is now a",
		"SMOKE: info rc=0", "SMOKE: install rc=0", "SMOKE: write var-lib rc=0", "SMOKE: commit rc=0", "SMOKE: bogus rc=2",
		"rugix-ctrl: rebooting (spare: true)",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(log, "SMOKE: reboot returned") {
		t.Error("system reboot returned instead of rebooting")
	}

	// After the VM: the table, the installed slots and the flags on the host.
	if b, err := exec.Command("sfdisk", "--verify", disk).CombinedOutput(); err != nil || !strings.Contains(string(b), "No errors detected") {
		t.Errorf("sfdisk --verify: %v\n%s", err, b)
	}
	df, err := os.Open(disk)
	testkit.Must(t, err)
	defer df.Close()
	tab, err := gpt.Read(df, l.DiskBytes())
	testkit.Must(t, err)
	sysB, ok := tab.Partition(partSystemB)
	if !ok {
		t.Fatal("no system-b after the VM ran")
	}
	want, err := os.ReadFile(sysImg)
	testkit.Must(t, err)
	got := make([]byte, len(want))
	_, err = df.ReadAt(got, sysB.Offset())
	testkit.Must(t, err)
	if !bytes.Equal(got, want) {
		t.Error("system-b differs from the payload")
	}
	bootB, _ := tab.Partition(partBootB)
	env, err := bootenv.DecodeGrubEnv(debugfsCat(t, disk, bootB.Offset(), bootEnvName))
	testkit.Must(t, err)
	if v := bootenv.VarsMap(env)[varBootArgs]; v != "ro init=/usr/bin/rugix-ctrl root=PARTUUID="+sysB.UUID.String() {
		t.Errorf("boot-b bootargs %q", v)
	}
	data, _ := tab.Partition(partData)
	if v := debugfsCat(t, disk, data.Offset(), "state/var-lib/smoke"); string(v) != "persisted\n" {
		t.Errorf("data partition state/var-lib/smoke = %q", v)
	}
	cfgOff := l.Partitions[0].Offset()
	spare, err := exec.Command("mtype", "-i", disk+"@@"+strconv.FormatInt(cfgOff, 10), "::rugpi/boot_spare.grubenv").Output()
	if err != nil || !strings.Contains(string(spare), "rugpi_boot_spare=true") {
		t.Errorf("boot_spare.grubenv after reboot --spare: %v %q", err, spare)
	}
	if _, err := exec.Command("mtype", "-i", disk+"@@"+strconv.FormatInt(cfgOff, 10), "::.rugix/bootstrap").Output(); err == nil {
		t.Error("bootstrap marker still present")
	}
	// The committed environments, copied out of the FAT, must verify and say bootpart 2.
	got2 := filepath.Join(dir, "committed")
	testkit.Must(t, os.MkdirAll(filepath.Join(got2, "rugpi"), 0o755))
	for _, name := range []string{"primary.grubenv", "primary.grubenv.sha1", "secondary.grubenv", "secondary.grubenv.sha1"} {
		out, err := exec.Command("mtype", "-i", disk+"@@"+strconv.FormatInt(cfgOff, 10), "::rugpi/"+name).Output()
		testkit.Must(t, err)
		testkit.Must(t, os.WriteFile(filepath.Join(got2, "rugpi", name), out, 0o644))
	}
	if part, notes := defaultBootPart(got2); part != "2" || len(notes) != 0 {
		t.Errorf("after the guest's commit: bootpart %s, notes %q", part, notes)
	}

	// A root that does not exist: the initramfs must report it and power off (QEMU exits).
	fctx, fcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer fcancel()
	start = time.Now()
	q = exec.CommandContext(fctx, "qemu-system-x86_64", "-M", "q35", "-m", "512", "-nographic", "-no-reboot",
		"-kernel", k.Vmlinuz, "-initrd", initrdPath,
		"-append", "console=ttyS0 ro root=PARTUUID=00000000-0000-4000-8000-000000000000 panic=-1",
		"-drive", "file="+disk+",if=virtio,format=raw")
	out, err = q.CombinedOutput()
	t.Logf("QEMU with a missing root exited after %s: %v", time.Since(start).Round(time.Second), err)
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "otabake-initrd") || strings.Contains(l, "reboot: Power down") {
			t.Log(strings.TrimRight(l, "\r"))
		}
	}
	if err != nil || !strings.Contains(string(out), "otabake-initrd: FATAL: root=PARTUUID=00000000-0000-4000-8000-000000000000") ||
		!strings.Contains(string(out), "reboot: Power down") {
		t.Error("missing root: no FATAL line and power-off")
	}
}
