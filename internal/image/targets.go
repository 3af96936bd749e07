package image

import (
	"fmt"
	"slices"
	"strings"
)

// TableType is the partition table kind of a disk image.
type TableType string

// Partition table kinds. Rugix Ctrl's bootstrapping matches partitions by index and type, so
// each target keeps the table kind Bakery uses for it.
const (
	GPT TableType = "gpt"
	MBR TableType = "mbr"
)

// FSType is the filesystem placed in a partition; FSNone leaves it zeroed (boot-b, extended).
type FSType string

// Filesystems the targets use.
const (
	FSNone FSType = ""
	FSFAT  FSType = "fat"
	FSExt4 FSType = "ext4"
)

// Role says what a partition is for; the image builder fills partitions by role, and Ctrl's
// default slots are defined by the same roles (config, boot-a/b, system-a/b, data).
type Role string

// Partition roles present in a freshly built image. system-b and data are added by Rugix Ctrl
// on first boot.
const (
	RoleConfig   Role = "config"
	RoleBootA    Role = "boot-a"
	RoleBootB    Role = "boot-b"
	RoleExtended Role = "extended"
	RoleSystemA  Role = "system-a"
)

// Partition type identifiers, written as sfdisk reports them: upper-case GUIDs for GPT,
// two lower-case hex digits for MBR.
const (
	TypeESP         = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeLinuxGPT    = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	TypeFAT32LBA    = "0c"
	TypeExtendedMBR = "05"
	TypeLinuxMBR    = "83"
)

// MiB is one mebibyte, the unit of every default size and of partition alignment.
const MiB = 1 << 20

// Target names. "generic-grub-efi" (Bakery's name) is accepted as an alias of TargetEFIGrub.
const (
	TargetEFIGrub    = "efi-grub"
	TargetRPiTryboot = "rpi-tryboot"
	TargetRPiUBoot   = "rpi-uboot"
)

// PartitionSpec is one entry of a target's default layout. A zero Size means "computed from
// the content" (only the system partition).
type PartitionSpec struct {
	Role Role
	Type string
	Size int64
	FS   FSType
	// Label is the GPT partition name ("" for none; the RAUC layout names each by its role).
	Label string
}

// Target is a boot architecture Rugix Ctrl knows how to update: which table, which partitions
// and which boot files. Values come from TargetByName; the zero value is not a target.
type Target struct {
	// Name is the canonical name (efi-grub, rpi-tryboot, rpi-uboot).
	Name string
	// Arch is the Debian-style architecture (amd64, arm64, armhf).
	Arch string
	// Table is the partition table kind.
	Table TableType
	// Partitions is the default layout in table order, before sizes are resolved by Plan.
	Partitions []PartitionSpec
	// RAUC marks the RAUC layout and boot flow (WithRAUC) instead of Rugix Ctrl's.
	RAUC bool
}

// BootCtrlFlow returns the boot-flow type Rugix Ctrl uses for this target ("grub",
// "rpi-tryboot", "rpi-uboot"), which bake writes into system.toml.
func (t Target) BootCtrlFlow() string {
	if t.Name == TargetEFIGrub {
		return "grub"
	}
	return t.Name
}

var targetArches = map[string][]string{
	TargetEFIGrub:    {"amd64", "arm64"},
	TargetRPiTryboot: {"arm64", "armhf"},
	TargetRPiUBoot:   {"arm64", "armhf"},
}

// TargetNames lists the canonical target names, for help texts and error messages.
func TargetNames() []string { return []string{TargetEFIGrub, TargetRPiTryboot, TargetRPiUBoot} }

// TargetByName returns the target with its default layout (§2 of rugix-images.md). An unknown
// name or an architecture the target does not boot is an error naming the valid choices.
func TargetByName(name, arch string) (Target, error) {
	if name == "generic-grub-efi" {
		name = TargetEFIGrub
	}
	arches, ok := targetArches[name]
	if !ok {
		return Target{}, fmt.Errorf("unknown image target %q (known: %s)", name, strings.Join(TargetNames(), ", "))
	}
	if !slices.Contains(arches, arch) {
		return Target{}, fmt.Errorf("target %s does not support architecture %q (supported: %s)", name, arch, strings.Join(arches, ", "))
	}
	t := Target{Name: name, Arch: arch}
	switch name {
	case TargetEFIGrub:
		t.Table = GPT
		t.Partitions = []PartitionSpec{
			{Role: RoleConfig, Type: TypeESP, Size: 256 * MiB, FS: FSFAT},
			{Role: RoleBootA, Type: TypeLinuxGPT, Size: 256 * MiB, FS: FSExt4},
			{Role: RoleBootB, Type: TypeLinuxGPT, Size: 256 * MiB},
			{Role: RoleSystemA, Type: TypeLinuxGPT, FS: FSExt4},
		}
	default:
		t.Table = MBR
		t.Partitions = []PartitionSpec{
			{Role: RoleConfig, Type: TypeFAT32LBA, Size: 256 * MiB, FS: FSFAT},
			{Role: RoleBootA, Type: TypeFAT32LBA, Size: 128 * MiB, FS: FSFAT},
			{Role: RoleBootB, Type: TypeFAT32LBA, Size: 128 * MiB},
			{Role: RoleExtended, Type: TypeExtendedMBR},
			{Role: RoleSystemA, Type: TypeLinuxMBR, FS: FSExt4},
		}
	}
	return t, nil
}

// CtrlSystemTOML returns an /etc/rugix/system.toml equal to Rugix Ctrl's built-in defaults for
// this target (§6.1 of rugix-images.md): config partition 1, boot slots 2 and 3, system and
// data partitions after the boot slots (logical partitions on MBR), and the target's boot
// flow. Writing it pins what Ctrl would otherwise auto-detect.
func (t Target) CtrlSystemTOML() string {
	return ctrlSystemTOML(t)
}

// CtrlSystemTOMLFor is CtrlSystemTOML for a target name: the slot layout and boot flow do not
// depend on the architecture, so callers that know only the target (otabake bake) need none.
func CtrlSystemTOMLFor(name string) (string, error) {
	if name == "generic-grub-efi" {
		name = TargetEFIGrub
	}
	arches, ok := targetArches[name]
	if !ok {
		return "", fmt.Errorf("unknown image target %q (known: %s)", name, strings.Join(TargetNames(), ", "))
	}
	t, err := TargetByName(name, arches[0])
	if err != nil {
		return "", err
	}
	return t.CtrlSystemTOML(), nil
}

func ctrlSystemTOML(t Target) string {
	sysA, sysB, data := 4, 5, 6
	if t.Table == MBR {
		sysA, sysB, data = 5, 6, 7
	}
	return fmt.Sprintf(`[config-partition]
partition = 1

[data-partition]
partition = %d

[boot-flow]
type = %q

[slots.boot-a]
type = "block"
partition = 2

[slots.boot-b]
type = "block"
partition = 3

[slots.system-a]
type = "block"
partition = %d
immutable = true

[slots.system-b]
type = "block"
partition = %d
immutable = true

[boot-groups.a]
slots = { boot = "boot-a", system = "system-a" }

[boot-groups.b]
slots = { boot = "boot-b", system = "system-b" }
`, data, t.BootCtrlFlow(), sysA, sysB)
}
