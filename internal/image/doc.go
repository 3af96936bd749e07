// Package image turns a prepared root filesystem directory into the partition images and the
// bootable disk image of a Rugix target, reproducibly.
//
// The pipeline, as build-release drives it:
//
//	t, _ := image.TargetByName("efi-grub", "amd64")           // targets.go
//	size, _ := image.TreeSize(rootfsDir)                       // Σ lstat sizes, as Bakery counts
//	layout, _ := image.Plan(t, sizes, size)                    // layout.go: §2 of rugix-images.md
//	ids := image.DeriveIdentifiers(system, releaseID)          // ids.go: GUIDs, serials, seeds
//	parts, _ := image.BuildPartitions(ctx, image.Input{…})     // partitions.go: config/boot/system
//	_ = image.Assemble(ctx, layout, parts, "system.img", ids)  // assemble.go: table + images
//	_ = image.CompressXZ(ctx, "system.img", "system.img.xz", 0) // compress.go (or CompressZstd)
//	_ = image.WriteBmap("system.img", "system.img.bmap")        // bmap.go
//
// Partitions.Boot and Partitions.System are the exact bytes placed at the boot-a and
// system-a offsets; the bundle writer makes the "boot" and "system" payloads from these files.
//
// Reproducibility: every identifier that mkfs, sfdisk and Bakery would randomise (disk GUID,
// partition GUIDs, MBR disk id, FAT serials, ext4 UUIDs and hash seeds) comes from
// DeriveIdentifiers, every timestamp is clamped to Input.SourceDateEpoch, and directory
// contents are written in sorted order. The same rootfs, system name, release id and source
// date give byte-identical partition and disk images.
//
// Filesystems: FAT partitions are written by this package's own FAT16/FAT32 writer (fat.go):
// the go-diskfs version in go.mod can format a FAT32 volume but has no API to add files, and
// owning the writer keeps serials, timestamps and entry order deterministic. ext4 partitions
// are made by "mkfs.ext4 -d DIR" (ext4.go, Debian package e2fsprogs) and post-processed with
// "debugfs -w" to clamp timestamps, which e2fsprogs before 1.47.1 copies from the source tree.
//
// Ownership hand-off: a rootfs extracted by an ordinary user cannot carry root ownership,
// device nodes or security.capability xattrs on disk. The rootfs package expresses those as
// debugfs commands ("sif /usr/bin/su uid 0", "mknod /dev/console c 5 1",
// "ea_set /usr/bin/ping security.capability -f FILE", …) and passes them in
// Input.SystemFixups; they run in one "debugfs -w -f" session against the system image after
// mkfs.ext4 and the timestamp clamp. mkfs.ext4 is run with "-E root_owner=0:0", so everything
// not fixed up is owned by root.
//
// The partition table (GPT with protective MBR, or MBR with an extended partition and EBR) is
// written by this package's own code (parttable.go) with the identifiers above; the disk image
// is sparse: only the table and the data blocks of the partition images are written.
//
// Compression: CompressXZ cuts the image into 24 MiB chunks and compresses them as independent
// xz streams in parallel, one xz-utils process per chunk (the pure-Go LZMA encoders run at
// well under 1 MB/s on real data); CompressZstd uses klauspost/compress. WriteBmap writes
// bmaptool's XML format from SEEK_DATA/SEEK_HOLE.
//
// External tools, each found on PATH or in /usr/sbin and /sbin, with the Debian package named
// when missing: mkfs.ext4 and debugfs (e2fsprogs), xz (xz-utils), and grub-mkimage
// (grub-common, with the modules of grub-efi-amd64-bin or grub-efi-arm64-bin) only when no
// GRUB EFI binary is configured or found in the rootfs.
package image
