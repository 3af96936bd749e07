package image

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// TestRaucLayout builds an efi-grub image with the RAUC layout and checks it with the field
// tools: sfdisk sees six GPT partitions named by role (the names system.conf uses), system-b as
// large as system-a; the config partition holds the RAUC first stage, which grub-script-check
// parses, and RAUC's environment, which grub-editenv reads and edits as RAUC's grub backend
// does; the boot partition's environment is empty so that the first stage's kernel arguments
// stand.
func TestRaucLayout(t *testing.T) {
	sfdisk := testkit.NeedTool(t, "sfdisk", "fdisk")
	testkit.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	dir := t.TempDir()
	rootfs := fakeRootfs(t, dir)
	tgt, err := TargetByName(TargetEFIGrub, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if tgt, err = tgt.WithRAUC(); err != nil {
		t.Fatal(err)
	}
	b := buildTarget(t, dir, tgt, "demo-rauc", rootfs)
	layout, ids, parts, img := b.layout, b.ids, b.parts, b.img

	var table struct {
		PartitionTable struct {
			Partitions []struct {
				Node, Name, UUID string
				Size             int64
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(testkit.Run(t, sfdisk, "--json", img)), &table); err != nil {
		t.Fatal(err)
	}
	var names []string
	sizes := map[string]int64{}
	for _, p := range table.PartitionTable.Partitions {
		names = append(names, p.Name)
		sizes[p.Name] = p.Size
	}
	if got := strings.Join(names, ","); got != "config,boot-a,boot-b,system-a,system-b,data" {
		t.Fatalf("partition names %s", got)
	}
	if sizes["system-b"] != sizes["system-a"] || sizes["data"] != DefaultDataSize/512 {
		t.Errorf("sizes %v", sizes)
	}

	cfg := extractFAT(t, parts.Config, dir)
	first := testkit.ReadFile(t, filepath.Join(cfg, "rugpi", "grub.cfg"))
	rootA, rootB, _ := raucRoots(layout, ids)
	for _, want := range []string{"root=" + rootA + " rauc.slot=A", "root=" + rootB + " rauc.slot=B", "load_env -f ($root)/rauc/grubenv", "save_env -f ($root)/rauc/grubenv A_TRY A_OK B_TRY B_OK ORDER"} {
		if !strings.Contains(first, want) {
			t.Errorf("first stage lacks %q", want)
		}
	}
	for i, p := range table.PartitionTable.Partitions[3:5] {
		if want := []string{rootA, rootB}[i]; "PARTUUID="+strings.ToLower(p.UUID) != want {
			t.Errorf("%s: PARTUUID %s, first stage says %s", p.Name, p.UUID, want)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg, "rugpi", "primary.grubenv")); err == nil {
		t.Error("the RAUC layout has Rugix's primary.grubenv")
	}
	check := testkit.NeedTool(t, "grub-script-check", "grub-common")
	testkit.Run(t, check, filepath.Join(cfg, "rugpi", "grub.cfg"))

	env := filepath.Join(cfg, RaucGrubEnv)
	want := map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}
	if got := grubList(t, env); !maps.Equal(got, want) {
		t.Errorf("rauc/grubenv = %v, want %v", got, want)
	}
	// What RAUC 1.8's grub backend runs after installing into B (rauc src/bootchooser.c
	// grub_set_primary through grub_env_set: grub-editenv <grubenv> set B_OK=1 B_TRY=0
	// "ORDER=B A"; marking a slot good, grub_set_state, sets the same _OK and _TRY).
	editenv := testkit.NeedTool(t, "grub-editenv", "grub-common")
	testkit.Run(t, editenv, env, "set", "B_OK=1", "B_TRY=0", "ORDER=B A")
	want["ORDER"], want["B_OK"] = "B A", "1"
	if got := grubList(t, env); !maps.Equal(got, want) {
		t.Errorf("after rauc's edit: %v, want %v", got, want)
	}
	if st, _ := os.Stat(env); st.Size() != 1024 {
		t.Errorf("rauc/grubenv is %d bytes, want 1024", st.Size())
	}

	debugfs := testkit.NeedTool(t, "debugfs", "e2fsprogs")
	out := filepath.Join(t.TempDir(), "boot.grubenv")
	testkit.Run(t, debugfs, "-R", "dump /boot.grubenv "+out, parts.Boot)
	if got := grubList(t, out); len(got) != 0 && !(len(got) == 1 && got[""] == "") {
		t.Errorf("boot.grubenv of a RAUC image = %v, want empty", got)
	}
}

func TestRaucOnlyEFIGrub(t *testing.T) {
	tgt, err := TargetByName(TargetRPiTryboot, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.WithRAUC(); err == nil {
		t.Fatal("rpi-tryboot got a RAUC layout")
	}
}

func TestRaucSystemConf(t *testing.T) {
	conf, err := RaucSystemConf("acme-gadget", "/etc/rauc/keyring.pem")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"compatible=acme-gadget\n", "bootloader=grub\n", "grubenv=/boot/efi/rauc/grubenv\n", "path=/etc/rauc/keyring.pem\n",
		"[slot.rootfs.0]\ndevice=/dev/disk/by-partlabel/system-a\ntype=ext4\nbootname=A\n",
		"[slot.rootfs.1]\ndevice=/dev/disk/by-partlabel/system-b\ntype=ext4\nbootname=B\n",
		"[slot.boot.0]\ndevice=/dev/disk/by-partlabel/boot-a\ntype=ext4\nparent=rootfs.0\n",
		"[slot.boot.1]\ndevice=/dev/disk/by-partlabel/boot-b\ntype=ext4\nparent=rootfs.1\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("system.conf lacks %q:\n%s", want, conf)
		}
	}
	for _, bad := range []string{"", " x", "a\nb"} {
		if _, err := RaucSystemConf(bad, "/k"); err == nil {
			t.Errorf("compatible %q accepted", bad)
		}
	}
}
