package bootenv

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

// Legacy uImage constants (U-Boot include/image.h) for a script image.
const (
	uImageMagic   = 0x27051956
	uImageOSLinx  = 5 // IH_OS_LINUX
	uImageArchARM = 2 // IH_ARCH_ARM
	uImageScript  = 6 // IH_TYPE_SCRIPT
	uImageNoComp  = 0 // IH_COMP_NONE
	uImageHeader  = 64
	uImageName    = 32
)

// UBootScript wraps a U-Boot shell script as a legacy uImage of type script, byte for byte
// what `mkimage -A arm -O linux -T script -C none -n NAME -d FILE` writes with
// SOURCE_DATE_EPOCH=mtime, so that `source ${loadaddr}` runs it. Rugix's rpi-uboot flow loads
// boot.scr from the config partition and second.scr from the boot partition in this form.
func UBootScript(name string, script []byte, mtime time.Time) ([]byte, error) {
	if len(name) >= uImageName {
		return nil, fmt.Errorf("u-boot script name %q: at most %d bytes", name, uImageName-1)
	}
	if int64(len(script)) > 1<<24 {
		return nil, fmt.Errorf("u-boot script %q: %d bytes is too large", name, len(script))
	}
	// A script image is a multi-file image with one file: a table of sizes ended by 0, then
	// the data.
	data := make([]byte, 8+len(script))
	binary.BigEndian.PutUint32(data[0:], uint32(len(script)))
	copy(data[8:], script)

	out := make([]byte, uImageHeader+len(data))
	h := out[:uImageHeader]
	binary.BigEndian.PutUint32(h[0:], uImageMagic)
	binary.BigEndian.PutUint32(h[8:], uint32(mtime.Unix()))
	binary.BigEndian.PutUint32(h[12:], uint32(len(data)))
	binary.BigEndian.PutUint32(h[24:], crc32.ChecksumIEEE(data))
	h[28], h[29], h[30], h[31] = uImageOSLinx, uImageArchARM, uImageScript, uImageNoComp
	copy(h[32:], name)
	binary.BigEndian.PutUint32(h[4:], crc32.ChecksumIEEE(h))
	copy(out[uImageHeader:], data)
	return out, nil
}

// RPiFirstStage is the first-stage U-Boot script of the rpi-uboot boot flow
// (rugix-images.md §3.3): pick the boot partition from bootpart.default.env, switch to the
// other one once when boot_spare.env says so (resetting the flag first, so that a failed spare
// boot falls back), then load boot.env and second.scr from the chosen boot partition.
const RPiFirstStage = `# otabake rpi-uboot first stage (Rugix boot flow)
setenv bootpart 2
setenv boot_spare 0
if load mmc 0:1 ${loadaddr} bootpart.default.env; then env import -c ${loadaddr} ${filesize}; fi
if load mmc 0:1 ${loadaddr} boot_spare.env; then env import -c ${loadaddr} ${filesize}; fi
if test "${boot_spare}" = "1"; then
  setexpr bootpart 5 - ${bootpart}
  load mmc 0:1 ${loadaddr} boot_spare.disabled.env
  save mmc 0:1 ${loadaddr} boot_spare.env ${filesize}
fi
echo "Booting from partition ${bootpart}"
load mmc 0:${bootpart} ${loadaddr} boot.env
env import -c ${loadaddr} ${filesize}
load mmc 0:${bootpart} ${loadaddr} second.scr
source ${loadaddr}
`

// RPiSecondStage returns the second-stage script for an architecture: load the kernel named
// by kernel_file (set by the U-Boot build's preboot) from the boot partition and boot it with
// the firmware's device tree; bootargs come from boot.env.
func RPiSecondStage(arch string) string {
	boot := "booti"
	if arch == "armhf" {
		boot = "bootz"
	}
	return "# otabake rpi-uboot second stage (Rugix boot flow)\n" +
		"load mmc 0:${bootpart} ${kernel_addr_r} ${kernel_file}\n" +
		boot + " ${kernel_addr_r} - ${fdt_addr}\n"
}
