//go:build linux

package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/bootenv"
	"github.com/otabake/otabake/internal/gpt"
)

// Partition numbers of the efi-grub layout after bootstrapping (rugix-images.md §2.1, §2.7).
const (
	partConfig  = 1
	partBootA   = 2
	partBootB   = 3
	partSystemA = 4
	partSystemB = 5
	partData    = 6
)

// Guest paths, fixed by Rugix Ctrl.
const (
	guestDisk     = "/dev/vda"
	guestConfig   = "/run/rugix/mounts/config"
	guestData     = "/run/rugix/mounts/data"
	guestCmdline  = "/proc/cmdline"
	varBootPart   = "rugpi_bootpart"
	varBootSpare  = "rugpi_boot_spare"
	varBootArgs   = "rugpi_bootargs"
	bootEnvName   = "boot.grubenv"
	slotStateDir  = "state/.rugix-standin/slots"
	envDisk       = "RUGIX_STANDIN_DISK"
	envConfig     = "RUGIX_STANDIN_CONFIG"
	envCmdline    = "RUGIX_STANDIN_CMDLINE"
	envData       = "RUGIX_STANDIN_DATA"
	grubEnvDirRel = "rugpi"
)

// system is where this Rugix Ctrl finds the device. In the guest every path is the real one;
// host tests point disk, config, data and cmdline at files (RUGIX_STANDIN_*), which also turns
// off everything that needs a kernel: partition device nodes, mounts and rebooting.
type system struct {
	disk      string // whole disk, or a disk image
	configDir string // mounted config partition
	dataDir   string // mounted data partition; may not exist
	cmdline   string // file holding the kernel command line
	guest     bool
	stderr    io.Writer
	ctrlPath  string // /etc/rugix/ctrl.toml
	// bootstrapPath is /etc/rugix/bootstrapping.toml.
	bootstrapPath string
	ctrl          *ctrlConfig // loaded by run before any command
}

// newSystem reads the RUGIX_STANDIN_* overrides. Setting RUGIX_STANDIN_DISK selects host mode.
func newSystem(getenv func(string) string, stderr io.Writer) *system {
	s := &system{disk: guestDisk, configDir: guestConfig, dataDir: guestData, cmdline: guestCmdline, guest: true, stderr: stderr,
		ctrlPath: ctrlConfigPath, ctrl: &ctrlConfig{}, bootstrapPath: bootstrapConfigPath}
	if v := getenv(envCtrlConfig); v != "" {
		s.ctrlPath = v
	}
	if v := getenv(envBootstrapConfig); v != "" {
		s.bootstrapPath = v
	}
	if v := getenv(envDisk); v != "" {
		s.disk, s.guest = v, false
	}
	if v := getenv(envConfig); v != "" {
		s.configDir = v
	}
	if v := getenv(envData); v != "" {
		s.dataDir = v
	}
	if v := getenv(envCmdline); v != "" {
		s.cmdline = v
	}
	return s
}

func (s *system) logf(format string, args ...any) {
	fmt.Fprintf(s.stderr, "rugix-ctrl: "+format+"\n", args...)
}

// partDev is the device node of partition n of the guest disk (/dev/vda → /dev/vda4).
func (s *system) partDev(n int) string {
	if c := s.disk[len(s.disk)-1]; c >= '0' && c <= '9' {
		return fmt.Sprintf("%sp%d", s.disk, n)
	}
	return fmt.Sprintf("%s%d", s.disk, n)
}

// readTable reads the disk's GPT.
func (s *system) readTable() (*gpt.Table, error) {
	f, err := os.Open(s.disk)
	if err != nil {
		return nil, fmt.Errorf("open disk: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("size of %s: %w", s.disk, err)
	}
	t, err := gpt.Read(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.disk, err)
	}
	return t, nil
}

// groupParts returns the boot and system partition numbers of boot group g.
func groupParts(g string) (boot, system int) {
	if g == "b" {
		return partBootB, partSystemB
	}
	return partBootA, partSystemA
}

// otherGroup returns the spare group of the two.
func otherGroup(g string) string {
	if g == "a" {
		return "b"
	}
	return "a"
}

// slotPart maps a slot name of the efi-grub layout to its partition number.
func slotPart(slot string) (int, bool) {
	n, ok := map[string]int{"boot-a": partBootA, "boot-b": partBootB, "system-a": partSystemA, "system-b": partSystemB}[slot]
	return n, ok
}

// rootArg returns the root= value of a kernel command line.
func rootArg(cmdline string) string {
	root := ""
	for _, f := range strings.Fields(cmdline) {
		if f == "--" {
			break
		}
		if v, ok := strings.CutPrefix(f, "root="); ok {
			root = v
		}
	}
	return root
}

// activeGroup tells which group the running system booted from: the group whose system
// partition the kernel's root= names, by PARTUUID (as Rugix's boot.grubenv writes it) or path.
func (s *system) activeGroup(t *gpt.Table) (group string, root string, err error) {
	data, err := os.ReadFile(s.cmdline)
	if err != nil {
		return "", "", fmt.Errorf("read kernel command line: %w", err)
	}
	root = rootArg(string(data))
	if root == "" {
		return "", "", fmt.Errorf("kernel command line %s has no root=", s.cmdline)
	}
	for _, g := range []string{"a", "b"} {
		_, n := groupParts(g)
		if root == s.partDev(n) {
			return g, root, nil
		}
		if u, ok := strings.CutPrefix(root, "PARTUUID="); ok {
			if p, found := t.Partition(n); found && strings.EqualFold(u, p.UUID.String()) {
				return g, s.partDev(n), nil
			}
		}
	}
	return "", "", fmt.Errorf("root=%s is neither system partition %d nor %d of %s", root, partSystemA, partSystemB, s.disk)
}

// checkedEnv loads rugpi/<name> if its .sha1 companion lists the right path and the SHA-1 of the
// file, as GRUB's "hashsum --hash sha1 --check" does before the first stage trusts it. A missing,
// mismatching or undecodable file gives ok=false and the reason.
func checkedEnv(configDir, name string) (vars map[string]string, ok bool, why string) {
	rel := path.Join(grubEnvDirRel, name)
	sum, err := os.ReadFile(filepath.Join(configDir, rel+".sha1"))
	if err != nil {
		return nil, false, err.Error()
	}
	fields := strings.Fields(string(sum))
	if len(fields) != 2 || fields[1] != "/"+rel {
		return nil, false, fmt.Sprintf("%s.sha1: want \"<sha1>  /%s\", got %q", rel, rel, sum)
	}
	block, err := os.ReadFile(filepath.Join(configDir, rel))
	if err != nil {
		return nil, false, err.Error()
	}
	got := sha1.Sum(block)
	if !strings.EqualFold(fields[0], hex.EncodeToString(got[:])) {
		return nil, false, fmt.Sprintf("%s: SHA-1 %x does not match %s.sha1", rel, got, rel)
	}
	env, err := bootenv.DecodeGrubEnv(block)
	if err != nil {
		return nil, false, fmt.Sprintf("%s: %v", rel, err)
	}
	return bootenv.VarsMap(env), true, ""
}

// defaultBootPart is the boot partition GRUB's first stage picks when no spare boot is pending:
// "2", overridden by a verified secondary.grubenv, overridden by a verified primary.grubenv.
// notes explains every environment that was skipped.
func defaultBootPart(configDir string) (part string, notes []string) {
	part = "2"
	for _, name := range []string{"secondary.grubenv", "primary.grubenv"} {
		vars, ok, why := checkedEnv(configDir, name)
		if !ok {
			notes = append(notes, "ignoring "+name+": "+why)
			continue
		}
		if v, set := vars[varBootPart]; set {
			part = v
		}
	}
	return part, notes
}

// defaultGroup is the default boot group as Rugix Ctrl reads it: rugpi_bootpart of
// rugpi/primary.grubenv alone, without checking its .sha1 and without falling back to
// secondary.grubenv (silitics/rugix v0.8.15 crates/apps/rugix-ctrl/src/system/boot_flows/mod.rs,
// GrubEfi get_default, load_grub_env; rugix-images.md §3.1 "get_default: reads
// rugpi/primary.grubenv"). After a torn write of the primary environment it can so differ from
// the group GRUB boots by default (defaultBootPart), which is logged.
func (s *system) defaultGroup() (string, error) {
	rel := path.Join(grubEnvDirRel, "primary.grubenv")
	block, err := os.ReadFile(filepath.Join(s.configDir, rel))
	if err != nil {
		return "", fmt.Errorf("unable to load Grub environment: %w", err)
	}
	env, err := bootenv.DecodeGrubEnv(block)
	if err != nil {
		return "", fmt.Errorf("unable to load Grub environment: unable to decode Grub environment: %w", err)
	}
	part, ok := bootenv.VarsMap(env)[varBootPart]
	if !ok {
		return "", errors.New("Invalid bootpart environment.")
	}
	if grub, notes := defaultBootPart(s.configDir); grub != part {
		s.logf("%s says %s=%s, GRUB boots partition %s by default (%s)", rel, varBootPart, part, grub, strings.Join(notes, "; "))
	}
	switch part {
	case "2":
		return "a", nil
	case "3":
		return "b", nil
	}
	return "", errors.New("Invalid default `bootpart`.")
}

// systemInfo is the JSON of `rugix-ctrl system info` (rugix-bundle.md §6.2).
type systemInfo struct {
	Slots map[string]slotInfo `json:"slots"`
	Boot  bootInfo            `json:"boot"`
	State stateInfo           `json:"state"`
}

type slotInfo struct {
	Active    bool   `json:"active"`
	UpdatedAt string `json:"updatedAt,omitempty"`
}

type bootInfo struct {
	BootFlow     string              `json:"bootFlow"`
	ActiveGroup  string              `json:"activeGroup"`
	DefaultGroup string              `json:"defaultGroup"`
	Groups       map[string]struct{} `json:"groups"`
}

type stateInfo struct {
	Status        string `json:"status"`
	DataPartition string `json:"dataPartition,omitempty"`
}

// info collects the system info.
func (s *system) info() (*systemInfo, error) {
	t, err := s.readTable()
	if err != nil {
		return nil, err
	}
	active, _, err := s.activeGroup(t)
	if err != nil {
		return nil, err
	}
	def, err := s.defaultGroup()
	if err != nil {
		return nil, err
	}
	info := &systemInfo{
		Slots: map[string]slotInfo{},
		Boot: bootInfo{BootFlow: "grub", ActiveGroup: active, DefaultGroup: def,
			Groups: map[string]struct{}{"a": {}, "b": {}}},
		State: stateInfo{Status: "Active"},
	}
	if _, ok := t.Partition(partData); ok {
		info.State.DataPartition = s.partDev(partData)
	}
	for _, slot := range []string{"boot-a", "boot-b", "system-a", "system-b"} {
		info.Slots[slot] = slotInfo{Active: strings.HasSuffix(slot, "-"+active), UpdatedAt: s.slotUpdatedAt(slot)}
	}
	return info, nil
}

// marshalInfo prints like Rugix Ctrl 1.x: pretty by default, compact with --json.
func marshalInfo(info *systemInfo, compact bool) ([]byte, error) {
	if compact {
		return json.Marshal(info)
	}
	return json.MarshalIndent(info, "", "  ")
}

// slotUpdatedAt reads when the stand-in last finished installing slot (its small slot database
// on the data partition), or "" if it never did.
func (s *system) slotUpdatedAt(slot string) string {
	data, err := os.ReadFile(filepath.Join(s.dataDir, slotStateDir, slot))
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(data))
	if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
		return ""
	}
	return v
}

// setSlotUpdated records (at non-zero t) or forgets (zero t) a slot's install time. Forgetting
// before writing makes an interrupted install never look finished.
func (s *system) setSlotUpdated(slot string, t time.Time) error {
	dir := filepath.Join(s.dataDir, slotStateDir)
	if _, err := os.Stat(s.dataDir); err != nil {
		return nil // no data partition: no slot database, like Ctrl without state
	}
	p := filepath.Join(dir, slot)
	if t.IsZero() {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("slot database: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("slot database: %w", err)
	}
	return writeReplace(p, []byte(t.UTC().Format(time.RFC3339Nano)+"\n"))
}

// writeReplace writes data to path via path.new, fsync and rename, as Rugix Ctrl writes its
// boot files, so that a power cut leaves either the old or the new file.
func writeReplace(p string, data []byte) error {
	tmp := p + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		// vfat cannot fsync directories (EINVAL); the remount read-only that follows flushes it.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// writeBootPart makes part ("2" or "3") the default: secondary first, then primary, each with
// its .sha1, so that an interrupted write leaves at least one verified environment.
func writeBootPart(configDir, part string) error {
	block, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: varBootPart, Value: part}}, 0)
	if err != nil {
		return err
	}
	for _, name := range []string{"secondary.grubenv", "primary.grubenv"} {
		rel := path.Join(grubEnvDirRel, name)
		p := filepath.Join(configDir, rel)
		if err := writeReplace(p, block); err != nil {
			return err
		}
		if err := writeReplace(p+".sha1", bootenv.GrubEnvSHA1(block, "/"+rel)); err != nil {
			return err
		}
	}
	return nil
}

// writeSpareFlag sets rugpi_boot_spare, which GRUB's first stage consumes once (no .sha1).
func writeSpareFlag(configDir string, spare bool) error {
	block, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: varBootSpare, Value: fmt.Sprint(spare)}}, 0)
	if err != nil {
		return err
	}
	return writeReplace(filepath.Join(configDir, grubEnvDirRel, "boot_spare.grubenv"), block)
}

// withConfigRW runs fn with the config partition mounted read-write, as Ctrl does for every
// write, and remounts it read-only afterwards even if fn failed.
func (s *system) withConfigRW(fn func() error) error {
	if !s.guest {
		return fn()
	}
	if err := unix.Mount("", s.configDir, "", unix.MS_REMOUNT, ""); err != nil {
		return fmt.Errorf("remount %s read-write: %w", s.configDir, err)
	}
	ferr := fn()
	unix.Sync()
	if err := unix.Mount("", s.configDir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil && ferr == nil {
		ferr = fmt.Errorf("remount %s read-only: %w", s.configDir, err)
	}
	return ferr
}

// commit makes the active group the default (rugix-bundle.md §6.3).
func (s *system) commit() error {
	t, err := s.readTable()
	if err != nil {
		return err
	}
	active, _, err := s.activeGroup(t)
	if err != nil {
		return err
	}
	def, err := s.defaultGroup()
	if err != nil {
		return err
	}
	if active == def {
		s.logf("active boot group is already the default")
		return nil
	}
	boot, _ := groupParts(active)
	if err := s.withConfigRW(func() error { return writeBootPart(s.configDir, fmt.Sprint(boot)) }); err != nil {
		return fmt.Errorf("commit group %s: %w", active, err)
	}
	s.logf("committed: default boot group is now %s", active)
	return nil
}

// reboot restarts the machine, first arming a one-shot boot of the spare group if asked.
func (s *system) reboot(spare bool) error {
	if spare {
		if err := s.withConfigRW(func() error { return writeSpareFlag(s.configDir, true) }); err != nil {
			return fmt.Errorf("set spare boot: %w", err)
		}
	}
	if !s.guest {
		return fmt.Errorf("not rebooting: %s=%s is a disk image (spare flag written: %v)", envDisk, s.disk, spare)
	}
	s.logf("rebooting (spare: %v)", spare)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

// patchBootArgs returns the boot.grubenv block with rugpi_bootargs set to args and every other
// variable kept; the block keeps its size (at least GRUB's 1024) so GRUB can save_env into it.
func patchBootArgs(old []byte, args string) ([]byte, error) {
	var vars []bootenv.Var
	if len(old) > 0 {
		v, err := bootenv.DecodeGrubEnv(old)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", bootEnvName, err)
		}
		vars = v
	}
	found := false
	for i := range vars {
		if vars[i].Name == varBootArgs {
			vars[i].Value, found = args, true
		}
	}
	if !found {
		vars = append(vars, bootenv.Var{Name: varBootArgs, Value: args})
	}
	size := max(len(old), bootenv.GrubEnvSize)
	block, err := bootenv.EncodeGrubEnv(vars, size)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", bootEnvName, err)
	}
	if bytes.Equal(block, old) {
		return old, nil
	}
	return block, nil
}
