//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
	"unsafe"

	"github.com/BurntSushi/toml"
	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/project"
)

const alignSectors = 2048

// typeESP is the GPT type of the config partition.
var typeESP = gpt.MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")

func alignUp(lba uint64) uint64 { return (lba + alignSectors - 1) / alignSectors * alignSectors }

// bootstrapConfigPath is the bootstrapping configuration (silitics/rugix v0.8.15
// crates/apps/rugix-ctrl/src/init.rs, BOOTSTRAP_CONFIG_PATH); RUGIX_STANDIN_BOOTSTRAP_CONFIG
// replaces it in host tests.
const (
	bootstrapConfigPath = "/etc/rugix/bootstrapping.toml"
	envBootstrapConfig  = "RUGIX_STANDIN_BOOTSTRAP_CONFIG"
)

// defaultSystemSize is the system partition size of the default layout when
// bootstrapping.toml sets none (init.rs, bootstrap: DefaultLayoutConfig::new(
// NumBytes::gibibytes(4)); rugix-images.md §2.7).
const defaultSystemSize = 4 << 30

// bootstrapConfig is /etc/rugix/bootstrapping.toml (silitics/rugix v0.8.15
// crates/apps/rugix-ctrl/schemas/bootstrapping.sidex, BootstrappingConfig; kebab-case keys,
// sizes as Rugix's byte-calc parses them, which project.Size mirrors).
type bootstrapConfig struct {
	Disabled *bool `toml:"disabled"`
	Layout   *struct {
		Type       string        `toml:"type"`
		SystemSize *project.Size `toml:"system-size"`
		Partitions []struct {
			Name       string        `toml:"name"`
			Size       *project.Size `toml:"size"`
			Type       string        `toml:"type"`
			Filesystem *struct {
				Type  string `toml:"type"`
				Label string `toml:"label"`
			} `toml:"filesystem"`
		} `toml:"partitions"`
	} `toml:"layout"`
}

// schemaPartition is one partition of a bootstrapping layout (repart.rs, SchemaPartition).
type schemaPartition struct {
	size  int64 // bytes; 0: all the space available
	typ   gpt.GUID
	ext4  bool // format it with ext4 when bootstrapping creates it
	label string
}

// defaultEFISchema is Rugix Ctrl's default layout of a GPT disk (silitics/rugix v0.8.15
// crates/libs/rugix-common/src/disk/repart.rs, generic_efi_partition_schema): config, boot-a
// and boot-b of 256M, system-a and system-b of systemSize, data on the rest, which bootstrapping
// formats with ext4 labelled "data" (init.rs, bootstrap, SystemLayoutConfig::Default).
func defaultEFISchema(systemSize int64) []schemaPartition {
	return []schemaPartition{
		{size: 256 << 20, typ: typeESP},
		{size: 256 << 20, typ: gpt.TypeLinux},
		{size: 256 << 20, typ: gpt.TypeLinux},
		{size: systemSize, typ: gpt.TypeLinux},
		{size: systemSize, typ: gpt.TypeLinux},
		{typ: gpt.TypeLinux, ext4: true, label: "data"},
	}
}

// loadBootstrapSchema reads the bootstrapping configuration as init.rs's load_bootstrap_config
// and bootstrap do: a missing file is the default layout with 4 GiB system partitions. It
// returns nil for a layout of type "none" or disabled bootstrapping.
func loadBootstrapSchema(path string) ([]schemaPartition, error) {
	var c bootstrapConfig
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return defaultEFISchema(defaultSystemSize), nil
	}
	if err != nil {
		return nil, fmt.Errorf("unable to read system configuration file %s: %w", path, err)
	}
	if _, err := toml.Decode(string(data), &c); err != nil {
		return nil, fmt.Errorf("unable to parse system configuration file %s: %w", path, err)
	}
	if c.Disabled != nil && *c.Disabled {
		return nil, nil
	}
	if c.Layout == nil {
		return defaultEFISchema(defaultSystemSize), nil
	}
	switch c.Layout.Type {
	case "default":
		if c.Layout.SystemSize == nil {
			return nil, fmt.Errorf("unable to parse system configuration file %s: missing field `system-size`", path)
		}
		return defaultEFISchema(int64(*c.Layout.SystemSize)), nil
	case "none":
		return nil, nil
	case "gpt":
		var schema []schemaPartition
		for i, p := range c.Layout.Partitions {
			sp := schemaPartition{typ: gpt.TypeLinux}
			if p.Size != nil {
				sp.size = int64(*p.Size)
			}
			if p.Type != "" {
				u, err := gpt.ParseGUID(p.Type)
				if err != nil {
					return nil, fmt.Errorf("unable to parse system configuration file %s: partition %d: %w", path, i+1, err)
				}
				sp.typ = u
			}
			if fsys := p.Filesystem; fsys != nil {
				if fsys.Type != "ext4" {
					return nil, fmt.Errorf("unable to parse system configuration file %s: partition %d: unknown filesystem %q", path, i+1, fsys.Type)
				}
				sp.ext4, sp.label = true, fsys.Label
			}
			schema = append(schema, sp)
		}
		return schema, nil
	case "mbr":
		// repart.rs, repart: the disk otabake's efi-grub images have is GPT.
		return nil, errors.New("unable to compute new partition table: partition table types do not match (gpt != mbr)")
	default:
		return nil, fmt.Errorf("unable to parse system configuration file %s: unknown layout type %q", path, c.Layout.Type)
	}
}

// repartition computes the new partition table as Rugix Ctrl does (silitics/rugix v0.8.15
// crates/libs/rugix-common/src/disk/repart.rs, repart): the schema's partitions are matched to
// the disk's by position; an existing partition keeps its start and grows to the schema's size
// (never shrinks) as far as the next existing partition or the end of the disk allows; a missing
// one starts 2048-aligned after the previous one and takes the schema's size or what is left;
// "insufficient space, cannot add partition N" when none is. Existing entries, their GUIDs and
// the disk GUID stay. It returns the partitions it grew and those it added: none if the table
// matches the schema already (a bootstrap cut short after writing the table).
func repartition(t *gpt.Table, diskSize int64, schema []schemaPartition) (grown, added []gpt.Partition, err error) {
	if err := t.Fit(diskSize); err != nil {
		return nil, nil, err
	}
	old := t.Partitions()
	sort.Slice(old, func(i, j int) bool { return old[i].First < old[j].First })
	next := alignUp(t.FirstUsable)
	for idx, sp := range schema {
		n := idx + 1
		start := next
		size := (uint64(sp.size) + gpt.SectorSize - 1) / gpt.SectorSize
		var available uint64
		if idx < len(old) {
			o := old[idx]
			if o.Number != n {
				return nil, nil, fmt.Errorf("unable to compute new partition table: partition %d is entry %d of the table", o.Number, n)
			}
			start = o.First
			if o.Type != sp.typ {
				return nil, nil, fmt.Errorf("unable to compute new partition table: partition types of partition %d do not match (%s != %s)", n, o.Type, sp.typ)
			}
			if sp.size > 0 {
				size = max(size, o.Sectors())
			}
		} else {
			start = alignUp(start)
		}
		if idx+1 < len(old) {
			available = old[idx+1].First - start
		} else {
			if start >= t.LastUsable {
				return nil, nil, fmt.Errorf("unable to compute new partition table: insufficient space, cannot add partition %d", n)
			}
			available = t.LastUsable - start + 1
		}
		if sp.size == 0 || size > available {
			size = available
		}
		if idx < len(old) {
			p := old[idx]
			size = max(size, p.Sectors())
			if size != p.Sectors() {
				p.Last = p.First + size - 1
				if err := t.SetPartition(p); err != nil {
					return nil, nil, fmt.Errorf("bootstrap: %w", err)
				}
				grown = append(grown, p)
			}
		} else {
			u, err := gpt.NewRandomGUID()
			if err != nil {
				return nil, nil, err
			}
			p := gpt.Partition{Number: n, Type: sp.typ, UUID: u, First: start, Last: start + size - 1}
			if err := t.SetPartition(p); err != nil {
				return nil, nil, fmt.Errorf("bootstrap: %w", err)
			}
			added = append(added, p)
		}
		next = start + size
	}
	return grown, added, nil
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

// bootstrap repartitions the disk after the layout of /etc/rugix/bootstrapping.toml (by default
// Rugix Ctrl's, with 4 GiB system partitions), tells the kernel about the grown and new
// partitions, formats the new ones the layout gives a filesystem (data) and deletes the marker,
// as silitics/rugix v0.8.15 crates/apps/rugix-ctrl/src/init.rs bootstrap and
// bootstrap_partitions do. Run only in the guest, as init, with system-a mounted as root.
func (s *system) bootstrap() error {
	schema, err := loadBootstrapSchema(s.bootstrapPath)
	if err != nil {
		return err
	}
	if schema != nil {
		if err := s.bootstrapLayout(schema); err != nil {
			return err
		}
	} else {
		s.logf("bootstrap: no partition layout (bootstrapping disabled or layout type none)")
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

func (s *system) bootstrapLayout(schema []schemaPartition) error {
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
	grown, added, err := repartition(t, size, schema)
	if err != nil {
		return err
	}
	if len(grown)+len(added) == 0 {
		return nil
	}
	if err := t.Write(f, size); err != nil {
		return fmt.Errorf("bootstrap: %s: %w", s.disk, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("bootstrap: fsync %s: %w", s.disk, err)
	}
	for _, p := range grown {
		s.logf("bootstrap: grew partition %d to %d MiB", p.Number, p.Bytes()>>20)
	}
	for _, p := range added {
		s.logf("bootstrap: added partition %d (%d MiB, PARTUUID %s)", p.Number, p.Bytes()>>20, p.UUID)
	}
	// The root filesystem is mounted from this disk, so BLKRRPART would fail with EBUSY: resize
	// and add the partitions one by one (blkpg.rs, update_kernel_partitions).
	for _, p := range grown {
		if err := blkpg(f, unix.BLKPG_RESIZE_PARTITION, p); err != nil {
			return fmt.Errorf("bootstrap: tell the kernel partition %d grew: %w", p.Number, err)
		}
	}
	for _, p := range added {
		if err := blkpg(f, unix.BLKPG_ADD_PARTITION, p); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("bootstrap: tell the kernel about partition %d: %w", p.Number, err)
		}
	}
	// Only partitions bootstrapping created get a filesystem (init.rs, bootstrap).
	for _, p := range added {
		sp := schema[p.Number-1]
		if !sp.ext4 {
			continue
		}
		dev := s.partDev(p.Number)
		if err := waitNode(dev, 10*time.Second); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		if err := mkfsExt4(dev, sp.label, s.stderr); err != nil {
			return fmt.Errorf("bootstrap: unable to create filesystem on data partition: %w", err)
		}
	}
	return nil
}

// blkpg adds (BLKPG_ADD_PARTITION) or resizes (BLKPG_RESIZE_PARTITION) partition p of the open
// disk in the kernel.
func blkpg(disk *os.File, op int32, p gpt.Partition) error {
	part := unix.BlkpgPartition{Start: p.Offset(), Length: p.Bytes(), Pno: int32(p.Number)}
	arg := unix.BlkpgIoctlArg{
		Op:      op,
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

// mkfsExt4 formats a partition with mkfs.ext4 when the root has it, else with busybox's mke2fs
// (ext2, which the ext4 driver mounts).
func mkfsExt4(dev, label string, log io.Writer) error {
	var cmd *exec.Cmd
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		cmd = exec.Command(p, "-F", "-L", label, dev)
	} else if _, err := os.Stat("/bin/busybox"); err == nil {
		cmd = exec.Command("/bin/busybox", "mke2fs", "-L", label, dev)
	} else {
		return fmt.Errorf("format %s: neither mkfs.ext4 nor /bin/busybox in the root filesystem", dev)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("format %s: %s: %w", dev, cmd.Args, err)
	}
	return nil
}
