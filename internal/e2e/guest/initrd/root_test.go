//go:build linux

package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/image"
)

func TestParseCmdline(t *testing.T) {
	const u = "0a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
	tests := []struct {
		in      string
		want    bootArgs
		wantErr string
	}{
		{
			in:   "BOOT_IMAGE=/vmlinuz ro init=/usr/bin/rugix-ctrl root=PARTUUID=" + u + " console=ttyS0\n",
			want: bootArgs{Root: "PARTUUID=" + u, FSType: "ext4", Init: "/usr/bin/rugix-ctrl"},
		},
		{
			in:   `root=/dev/vda4 rootfstype=ext2 rootflags="errors=remount-ro" rw`,
			want: bootArgs{Root: "/dev/vda4", FSType: "ext2", Flags: "errors=remount-ro", RW: true, Init: "/sbin/init"},
		},
		{
			in:   "rw root=/dev/vda4 ro -- init=/bin/sh",
			want: bootArgs{Root: "/dev/vda4", FSType: "ext4", Init: "/sbin/init"},
		},
		{in: "console=ttyS0 ro", wantErr: "no root="},
		{in: "root=PARTUUID=1234abcd-02", wantErr: "only GPT"},
		{in: "root=LABEL=system", wantErr: "want PARTUUID"},
		{in: "root=/dev/vda4 init=sbin/init", wantErr: "not an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCmdline(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPartitionName(t *testing.T) {
	tests := []struct {
		disk string
		n    int
		want string
	}{
		{"vda", 4, "vda4"},
		{"sda", 12, "sda12"},
		{"nvme0n1", 2, "nvme0n1p2"},
		{"mmcblk0", 1, "mmcblk0p1"},
	}
	for _, tt := range tests {
		if got := partitionName(tt.disk, tt.n); got != tt.want {
			t.Errorf("partitionName(%q, %d) = %q, want %q", tt.disk, tt.n, got, tt.want)
		}
	}
}

func TestReadModuleList(t *testing.T) {
	got, err := readModuleList(strings.NewReader("kernel/drivers/virtio/virtio.ko\n\n# comment\n  kernel/fs/ext4/ext4.ko  \n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/drivers/virtio/virtio.ko", "kernel/fs/ext4/ext4.ko"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestFindPartUUID builds a fake /sys/class/block and /dev with a GPT disk image written by
// internal/image, a disk without a GPT and a partition entry, and looks up each partition.
func TestFindPartUUID(t *testing.T) {
	dir := t.TempDir()
	sys, dev := filepath.Join(dir, "sys"), filepath.Join(dir, "dev")
	for _, d := range []string{"vda", "vda1", "vdb", "sr0"} {
		if err := os.MkdirAll(filepath.Join(sys, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(sys, "vda1", "partition"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	// vdb: blank disk; sr0: no device node at all.
	if err := os.WriteFile(filepath.Join(dev, "vdb"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	tgt, err := image.TargetByName("efi-grub", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	l, err := image.Plan(tgt, image.Sizes{Config: 2 << 20, BootA: 2 << 20, BootB: 2 << 20, System: 4 << 20}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := image.DeriveIdentifiers("initrd-test", "r1")
	f, err := os.Create(filepath.Join(dev, "vda"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(l.DiskBytes()); err != nil {
		t.Fatal(err)
	}
	if err := image.WriteTable(f, l, ids); err != nil {
		t.Fatal(err)
	}
	f.Close()

	for _, p := range l.Partitions {
		u := gpt.MustParseGUID(ids.PartitionGUID(p.Number).String())
		got, err := findPartUUID(sys, dev, u)
		if err != nil {
			t.Fatalf("partition %d: %v", p.Number, err)
		}
		if want := filepath.Join(dev, partitionName("vda", p.Number)); got != want {
			t.Errorf("partition %d: got %s, want %s", p.Number, got, want)
		}
	}
	root, err := ids.RootDevice(l)
	if err != nil {
		t.Fatal(err)
	}
	a, err := parseCmdline("root=" + root)
	if err != nil {
		t.Fatal(err)
	}
	_, err = findPartUUID(sys, dev, gpt.MustParseGUID(strings.TrimPrefix(a.Root, "PARTUUID=")))
	if err != nil {
		t.Fatalf("root=%s from image.RootDevice: %v", root, err)
	}
	_, err = findPartUUID(sys, dev, gpt.MustParseGUID("00000000-0000-4000-8000-000000000001"))
	if !errors.Is(err, errNotFound) || !strings.Contains(err.Error(), "vdb") {
		t.Fatalf("unknown UUID: err = %v, want errNotFound naming vdb", err)
	}
}
