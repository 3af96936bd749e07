package bake

import (
	"fmt"
	"strings"
)

// SystemConfig returns an explicit /etc/rugix/system.toml equal to the defaults Rugix Ctrl
// uses without one for target (rugix-images.md §6.1). Writing it pins the layout so that a
// future change of Ctrl's defaults or of its boot-flow detection cannot move the slots.
func SystemConfig(target string) ([]byte, error) {
	var flow string
	gpt := false
	switch target {
	case "efi-grub", "generic-grub-efi":
		flow, gpt = "grub", true
	case "rpi-tryboot", "rpi-uboot":
		flow = target
	default:
		return nil, fmt.Errorf("bake: unknown target %q: want efi-grub, rpi-tryboot or rpi-uboot", target)
	}
	data, sysA, sysB := 7, 5, 6
	if gpt {
		data, sysA, sysB = 6, 4, 5
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[config-partition]
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
`, data, flow, sysA, sysB)
	return []byte(b.String()), nil
}
