package image

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/otabake/otabake/internal/bootenv"
)

// RAUC on efi-grub. RAUC does not repartition a device, so the RAUC layout holds every slot
// from the start: the efi-grub partitions (1 config/ESP, 2 boot-a, 3 boot-b, 4 system-a) plus
// 5 system-b (as large as system-a, left empty for RAUC to write) and 6 data (left empty:
// the device formats it on first boot). Each partition carries its role as GPT partition name,
// so /etc/rauc/system.conf names the slots by /dev/disk/by-partlabel/<role>, the same on every
// release (partition GUIDs are derived per release, see Identifiers).
//
// The boot flow is RAUC's grub backend (rauc docs/integration.rst "GRUB", contrib/grub.conf,
// v1.8): RAUC keeps ORDER, A_OK, A_TRY, B_OK and B_TRY in a GRUB environment block, here
// RaucGrubEnv on the config partition, which the device mounts at RaucESPMount.
const (
	RoleSystemB Role = "system-b"
	RoleData    Role = "data"

	// RaucGrubEnv is the GRUB environment RAUC's grub backend edits, on the config partition.
	RaucGrubEnv = "rauc/grubenv"
	// RaucESPMount is where the device mounts the config partition (fstab), so that RAUC
	// finds RaucGrubEnv at RaucESPMount/RaucGrubEnv.
	RaucESPMount = "/boot/efi"
	// DefaultDataSize is the data partition of a RAUC layout.
	DefaultDataSize = 256 * MiB
)

// RaucSlotRootfs and RaucSlotBoot are the slot classes: the A/B root filesystems ("rootfs",
// the name RAUC's docs use) and each one's boot partition (kernel, initrd, GRUB's second
// stage), a child slot RAUC writes together with its parent.
const (
	RaucSlotRootfs = "rootfs"
	RaucSlotBoot   = "boot"
)

// WithRAUC returns the target with the RAUC layout (see above). Only efi-grub has one.
func (t Target) WithRAUC() (Target, error) {
	if t.Name != TargetEFIGrub {
		return Target{}, fmt.Errorf("target %s has no RAUC layout; RAUC systems use %s", t.Name, TargetEFIGrub)
	}
	if t.RAUC {
		return t, nil
	}
	t.RAUC = true
	t.Partitions = append(slices.Clone(t.Partitions),
		PartitionSpec{Role: RoleSystemB, Type: TypeLinuxGPT},
		PartitionSpec{Role: RoleData, Type: TypeLinuxGPT, Size: DefaultDataSize})
	for i := range t.Partitions {
		t.Partitions[i].Label = string(t.Partitions[i].Role)
	}
	return t, nil
}

// RaucSystemConf is /etc/rauc/system.conf for the RAUC layout (rauc docs/reference.rst,
// "System Configuration File"): compatible, the grub bootloader with its environment on the
// config partition, the keyring bake writes, and the slots by partition name.
func RaucSystemConf(compatible, keyring string) (string, error) {
	if compatible == "" || strings.TrimSpace(compatible) != compatible || strings.ContainsFunc(compatible, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", fmt.Errorf("rauc system.conf: compatible %q: want a non-empty value without control characters or surrounding white space", compatible)
	}
	if keyring == "" {
		return "", errors.New("rauc system.conf: no keyring")
	}
	dev := func(r Role) string { return "/dev/disk/by-partlabel/" + string(r) }
	return fmt.Sprintf(`# RAUC system configuration, written by otabake for the efi-grub RAUC layout.
[system]
compatible=%s
bootloader=grub
grubenv=%s/%s

[keyring]
path=%s

[slot.%[5]s.0]
device=%[6]s
type=ext4
bootname=A

[slot.%[5]s.1]
device=%[7]s
type=ext4
bootname=B

[slot.%[8]s.0]
device=%[9]s
type=ext4
parent=%[5]s.0

[slot.%[8]s.1]
device=%[10]s
type=ext4
parent=%[5]s.1
`, compatible, RaucESPMount, RaucGrubEnv, keyring,
		RaucSlotRootfs, dev(RoleSystemA), dev(RoleSystemB),
		RaucSlotBoot, dev(RoleBootA), dev(RoleBootB)), nil
}

// RaucGrubFirstStage is the config partition's rugpi/grub.cfg for the RAUC layout (the GRUB
// binary's embedded configuration looks for that path): contrib/grub.conf's slot selection
// (defaults, load_env, the first slot of ORDER with OK=1 and TRY=0 gets TRY=1, save_env),
// then the chosen slot's boot partition's second stage with the kernel arguments in
// rugpi_bootargs (root= the slot's system partition, rauc.slot= its bootname, which RAUC
// reads to know the booted slot) and rugpi_bootpart, the contract GrubSecondStage and
// Rugix's second stages already follow. rootA and rootB are the root= values of system-a and
// system-b. Where contrib boots a rescue slot when no slot qualifies, this resets the TRY
// flags of the good slots as contrib does, saves, and reboots, so the next boot tries again.
func RaucGrubFirstStage(rootA, rootB string) string {
	return fmt.Sprintf(`# otabake: first-stage GRUB configuration for RAUC's grub boot flow (RAUC edits
# ($root)/%[1]s with grub-editenv; rauc contrib/grub.conf).
set ORDER="A B"
set A_OK=0
set B_OK=0
set A_TRY=0
set B_TRY=0
load_env -f ($root)/%[1]s

set otabake_slot=""
for SLOT in $ORDER; do
  if [ "$SLOT" = "A" ]; then
    OK=$A_OK
    TRY=$A_TRY
    A_TRY=1
  fi
  if [ "$SLOT" = "B" ]; then
    OK=$B_OK
    TRY=$B_TRY
    B_TRY=1
  fi
  if [ "$OK" -eq 1 -a "$TRY" -eq 0 ]; then
    otabake_slot=$SLOT
    break
  fi
done

if [ -z "$otabake_slot" ]; then
  if [ "$A_OK" -eq 1 -a "$A_TRY" -eq 1 ]; then
    A_TRY=0
  fi
  if [ "$B_OK" -eq 1 -a "$B_TRY" -eq 1 ]; then
    B_TRY=0
  fi
  save_env -f ($root)/%[1]s A_TRY A_OK B_TRY B_OK ORDER
  echo "otabake: no bootable RAUC slot (ORDER=$ORDER A_OK=$A_OK A_TRY=$A_TRY B_OK=$B_OK B_TRY=$B_TRY); rebooting in 10 seconds"
  sleep 10
  reboot
fi
save_env -f ($root)/%[1]s A_TRY A_OK B_TRY B_OK ORDER

if [ "$otabake_slot" = "A" ]; then
  set rugpi_bootpart=2
  set rugpi_bootargs="ro root=%[2]s rauc.slot=A"
else
  set rugpi_bootpart=3
  set rugpi_bootargs="ro root=%[3]s rauc.slot=B"
fi

regexp (.*),(.*) $root -s 1:rugpi_root_device
set root=($rugpi_root_device,$rugpi_bootpart)
source ($root)/grub.cfg

echo "otabake: no bootable second stage on partition $rugpi_bootpart; rebooting in 10 seconds"
sleep 10
reboot
`, RaucGrubEnv, rootA, rootB)
}

// RaucGrubEnvInitial is the environment of a fresh RAUC image: slot A good and first, B not
// yet written.
func RaucGrubEnvInitial() ([]byte, error) {
	return bootenv.EncodeGrubEnv([]bootenv.Var{
		{Name: "ORDER", Value: "A B"}, {Name: "A_OK", Value: "1"}, {Name: "A_TRY", Value: "0"},
		{Name: "B_OK", Value: "0"}, {Name: "B_TRY", Value: "0"},
	}, 0)
}

// raucRoots returns the root= values of system-a and system-b: their PARTUUIDs, which the
// first stage on the config partition can hold because it is written with the partition
// table and neither changes on an update.
func raucRoots(l Layout, ids Identifiers) (string, string, error) {
	a, okA := l.ByRole(RoleSystemA)
	b, okB := l.ByRole(RoleSystemB)
	if !okA || !okB || l.Table != GPT {
		return "", "", errors.New("the RAUC layout needs GPT system-a and system-b partitions")
	}
	return "PARTUUID=" + ids.PartitionGUID(a.Number).String(), "PARTUUID=" + ids.PartitionGUID(b.Number).String(), nil
}
