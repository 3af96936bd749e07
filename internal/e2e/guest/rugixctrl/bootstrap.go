//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/gpt"
)

const (
	alignSectors = 2048
	minDataBytes = 1 << 20
)

// typeESP is the GPT type of the config partition.
var typeESP = gpt.MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")

func alignUp(lba uint64) uint64 { return (lba + alignSectors - 1) / alignSectors * alignSectors }

// repartition adds system-b (partition 5, the size of system-a) and data (partition 6, the rest
// of the disk) after the last partition, 2048-aligned, like Rugix Ctrl's default GPT
// bootstrapping (rugix-images.md §2.7) minus growing system-a. Existing entries and the disk
// GUID stay. It returns the partitions it added: none if both exist already (a bootstrap that
// was cut short after writing the table), an error if the table does not match the schema.
func repartition(t *gpt.Table, diskSize int64) ([]gpt.Partition, error) {
	if err := t.Fit(diskSize); err != nil {
		return nil, err
	}
	want := map[int]gpt.GUID{partConfig: typeESP, partBootA: gpt.TypeLinux, partBootB: gpt.TypeLinux, partSystemA: gpt.TypeLinux}
	for n := partConfig; n <= partSystemA; n++ {
		p, ok := t.Partition(n)
		if !ok {
			return nil, fmt.Errorf("bootstrap: partition %d missing", n)
		}
		if p.Type != want[n] {
			return nil, fmt.Errorf("bootstrap: partition %d has type %s, the layout wants %s", n, p.Type, want[n])
		}
	}
	b, hasB := t.Partition(partSystemB)
	d, hasD := t.Partition(partData)
	if hasB && hasD && b.Type == gpt.TypeLinux && d.Type == gpt.TypeLinux {
		return nil, nil
	}
	var last uint64
	for _, p := range t.Partitions() {
		if p.Number > partSystemA {
			return nil, fmt.Errorf("bootstrap: partition %d exists already (type %s) but the layout is incomplete", p.Number, p.Type)
		}
		last = max(last, p.Last)
	}
	sysA, _ := t.Partition(partSystemA)
	bStart := alignUp(last + 1)
	bLast := bStart + sysA.Sectors() - 1
	dStart := alignUp(bLast + 1)
	if dStart > t.LastUsable || (t.LastUsable-dStart+1)*gpt.SectorSize < minDataBytes {
		need := int64(dStart)*gpt.SectorSize + minDataBytes + int64(t.NumEntries*t.EntrySize) + 2*gpt.SectorSize
		return nil, fmt.Errorf("bootstrap: disk of %d bytes too small for system-b (%d sectors) and data: need at least %d bytes", diskSize, sysA.Sectors(), need)
	}
	added := []gpt.Partition{
		{Number: partSystemB, Type: gpt.TypeLinux, First: bStart, Last: bLast},
		{Number: partData, Type: gpt.TypeLinux, First: dStart, Last: t.LastUsable},
	}
	for i := range added {
		u, err := gpt.NewRandomGUID()
		if err != nil {
			return nil, err
		}
		added[i].UUID = u
		if err := t.SetPartition(added[i]); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	return added, nil
}

// bootstrapMarkers are the files that ask for bootstrapping; Ctrl 1.3 also accepts the second
// because wic's mcopy skips dotfiles.
var bootstrapMarkers = []string{".rugix/bootstrap", "rugix/bootstrap"}

func (s *system) bootstrapPending() bool {
	for _, m := range bootstrapMarkers {
		if _, err := os.Stat(filepath.Join(s.configDir, m)); err == nil {
			return true
		}
	}
	return false
}

// bootstrap repartitions the disk, tells the kernel about the new partitions, formats data and
// deletes the marker. Run only in the guest, as init, with system-a mounted as root.
func (s *system) bootstrap() error {
	f, err := os.OpenFile(s.disk, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("bootstrap: open disk: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("bootstrap: size of %s: %w", s.disk, err)
	}
	t, err := gpt.Read(f, size)
	if err != nil {
		return fmt.Errorf("bootstrap: %s: %w", s.disk, err)
	}
	added, err := repartition(t, size)
	if err != nil {
		return err
	}
	if len(added) > 0 {
		if err := t.Write(f, size); err != nil {
			return fmt.Errorf("bootstrap: %s: %w", s.disk, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("bootstrap: fsync %s: %w", s.disk, err)
		}
		for _, p := range added {
			s.logf("bootstrap: added partition %d (%d MiB, PARTUUID %s)", p.Number, p.Bytes()>>20, p.UUID)
		}
	}
	// The root filesystem is mounted from this disk, so BLKRRPART would fail with EBUSY: add
	// the partitions one by one. After an interrupted bootstrap they may be known already.
	for _, n := range []int{partSystemB, partData} {
		p, _ := t.Partition(n)
		if err := blkpgAdd(f, p); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("bootstrap: tell the kernel about partition %d: %w", n, err)
		}
	}
	data := s.partDev(partData)
	if err := waitNode(data, 10*time.Second); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if ok, err := hasExtFS(data); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	} else if !ok || len(added) > 0 {
		if err := mkfsData(data, s.stderr); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	return s.withConfigRW(func() error {
		for _, m := range bootstrapMarkers {
			if err := os.Remove(filepath.Join(s.configDir, m)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("bootstrap: remove marker: %w", err)
			}
		}
		return nil
	})
}

// blkpgAdd registers partition p of the open disk with the kernel (BLKPG_ADD_PARTITION).
func blkpgAdd(disk *os.File, p gpt.Partition) error {
	part := unix.BlkpgPartition{Start: p.Offset(), Length: p.Bytes(), Pno: int32(p.Number)}
	arg := unix.BlkpgIoctlArg{
		Op:      unix.BLKPG_ADD_PARTITION,
		Datalen: int32(unsafe.Sizeof(part)),
		Data:    (*byte)(unsafe.Pointer(&part)),
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		return errno
	}
	return nil
}

// waitNode waits for devtmpfs to create a device node.
func waitNode(dev string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		_, err := os.Stat(dev)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device %s did not appear within %s: %w", dev, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hasExtFS reports whether dev starts with an ext2/3/4 superblock (magic 0xEF53 at byte 1080).
func hasExtFS(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1024+56); err != nil {
		return false, fmt.Errorf("read superblock of %s: %w", dev, err)
	}
	return binary.LittleEndian.Uint16(magic[:]) == 0xef53, nil
}

// mkfsData formats the data partition with mkfs.ext4 when the root has it, else with busybox's
// mke2fs (ext2, which the ext4 driver mounts).
func mkfsData(dev string, log io.Writer) error {
	var cmd *exec.Cmd
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		cmd = exec.Command(p, "-F", "-L", "data", dev)
	} else if _, err := os.Stat("/bin/busybox"); err == nil {
		cmd = exec.Command("/bin/busybox", "mke2fs", "-L", "data", dev)
	} else {
		return fmt.Errorf("format %s: neither mkfs.ext4 nor /bin/busybox in the root filesystem", dev)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("format %s: %s: %w", dev, cmd.Args, err)
	}
	return nil
}
