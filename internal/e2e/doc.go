// Package e2e holds the boot proof: an end-to-end test (build tag e2e, run by .ci/run as its own
// time-boxed step) that builds a small real system with otabake, boots it in QEMU through OVMF
// and GRUB, and drives a full OTA cycle across real reboots against `otabake hub serve`:
//
//	go test -tags e2e -v -timeout 20m ./internal/e2e/
//
// vmkit composes the guest on the host; guest/ holds the programs that run inside it (the
// initramfs init and a rugix-ctrl stand-in implementing Rugix Ctrl's GRUB boot flow).
//
// OTABAKE_E2E_RUGIX_CTRL=/path/to/rugix-ctrl runs the same cycle with a real Rugix Ctrl instead
// of the stand-in (vmkit/realrugix.go copies it into the guest with the host tools it runs:
// sfdisk, mkfs.ext4, fsck, openssl and their libraries). The image is flashed to a 10 GiB sparse
// disk so that Rugix Ctrl's default bootstrap layout (4 GiB system partitions) fits. With Rugix
// Ctrl 0.8.x the test creates slot block indices before the second install, as upstream's
// delta-updates docs have installers do, since 0.8.x uses range requests only with them.
package e2e
