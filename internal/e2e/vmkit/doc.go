//go:build linux

// Package vmkit composes the pieces of a small, real, bootable amd64 guest on the host for the
// end-to-end tests: a Debian kernel (fetched once through apt and cached), an initramfs with the
// kernel modules the guest needs under QEMU (virtio, ext4, vfat), and a busybox root filesystem
// directory that otabake's native builder turns into an image.
//
// Everything here uses only ordinary Debian host tools (apt-get, apt-cache, dpkg-deb, the
// busybox-static binary) and the Go toolchain, so the tests run on any Debian-like CI machine
// without root, loop devices or a cross toolchain.
package vmkit
