// Package e2e holds the boot proof: an end-to-end test (build tag e2e, run by .ci/run as its own
// time-boxed step) that builds a small real system with otabake, boots it in QEMU through OVMF
// and GRUB, and drives a full OTA cycle across real reboots against `otabake hub serve`:
//
//	go test -tags e2e -v -timeout 20m ./internal/e2e/
//
// vmkit composes the guest on the host; guest/ holds the programs that run inside it (the
// initramfs init and a rugix-ctrl stand-in implementing Rugix Ctrl's GRUB boot flow).
package e2e
