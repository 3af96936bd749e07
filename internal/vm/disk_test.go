package vm

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
	"github.com/otabake/otabake/internal/image"
	"github.com/otabake/otabake/internal/testkit"
)

// efiDisk writes a GPT disk whose config partition holds a real boot_spare.grubenv.
func efiDisk(t *testing.T, dir string) (string, image.Layout) {
	t.Helper()
	tg, err := image.TargetByName(image.TargetEFIGrub, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	l, err := image.Plan(tg, image.Sizes{Config: 32 * image.MiB, BootA: 8 * image.MiB, BootB: 8 * image.MiB}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config", "rugpi")
	os.MkdirAll(cfg, 0o755)
	env, _ := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: "rugpi_boot_spare", Value: "false"}}, 0)
	os.WriteFile(filepath.Join(cfg, "boot_spare.grubenv"), env, 0o644)
	fat := filepath.Join(dir, "config.img")
	if err := image.MakeFAT(context.Background(), filepath.Dir(cfg), fat, l.Partitions[0].Bytes(), image.FATOptions{Serial: 1, Clamp: time.Unix(1e9, 0)}); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "system.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(l.DiskBytes())
	if err := image.WriteTable(f, l, image.DeriveIdentifiers("vm", "vm@1")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(fat)
	f.WriteAt(data, l.Partitions[0].Offset())
	return disk, l
}

func TestArmSpareBoot(t *testing.T) {
	mtype := testkit.NeedTool(t, "mtype", "mtools")
	grubEditenv := testkit.NeedTool(t, "grub-editenv", "grub-common")
	dir := t.TempDir()
	disk, l := efiDisk(t, dir)
	copyPath := filepath.Join(dir, "copy.img")
	if err := CopySparse(disk, copyPath); err != nil {
		t.Fatal(err)
	}
	if err := ArmSpareBoot(copyPath); err != nil {
		t.Fatal(err)
	}
	read := func(img string) string {
		out, err := exec.Command(mtype, "-i", img+"@@"+strconv.FormatInt(l.Partitions[0].Offset(), 10), "::rugpi/boot_spare.grubenv").Output()
		if err != nil {
			t.Fatal(err)
		}
		env := filepath.Join(dir, "env")
		os.WriteFile(env, out, 0o644)
		list, err := exec.Command(grubEditenv, env, "list").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(list))
	}
	if got := read(copyPath); got != "rugpi_boot_spare=true" {
		t.Errorf("armed copy: %q", got)
	}
	if got := read(disk); got != "rugpi_boot_spare=false" {
		t.Errorf("original changed: %q", got)
	}
	a, _ := os.ReadFile(disk)
	b, _ := os.ReadFile(copyPath)
	if len(a) != len(b) || bytes.Equal(a, b) {
		t.Errorf("copy: %d vs %d bytes, equal=%v (want same size, only the flag differs)", len(a), len(b), bytes.Equal(a, b))
	}
	if err := CopySparse(disk, copyPath); err == nil {
		t.Error("CopySparse overwrote an existing file")
	}
	if err := ArmSpareBoot(filepath.Join(dir, "config.img")); err == nil || !strings.Contains(err.Error(), "no GPT") {
		t.Errorf("not a disk: %v", err)
	}
}
