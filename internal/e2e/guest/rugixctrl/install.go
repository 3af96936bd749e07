//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/e2fs"
	"github.com/otabake/otabake/internal/gpt"
)

// installOptions are the flags of `rugix-ctrl update install` the stand-in implements (rugix/rugix
// crates/apps/rugix-ctrl/src/cli.rs, UpdateCommand::Install).
type installOptions struct {
	Source string
	// BundleHash is --bundle-hash: a matching header hash verifies the bundle without a
	// signature. (0.8's --verify-bundle does not exist in 1.x.)
	BundleHash string
	// RootCert is --root-cert: it replaces the roots configured in /etc/rugix/ctrl.toml.
	RootCert string
	// SkipVerification is --insecure-skip-bundle-verification: without it 1.x refuses a bundle
	// that neither matches --bundle-hash nor carries a signature chaining to a root.
	SkipVerification bool
	// AllowMissingBlockIndex is --insecure-allow-missing-block-index (1.2): without it a payload
	// without a block index is refused.
	AllowMissingBlockIndex bool
	// SkipCompatibilityCheck is --skip-compatibility-check; the stand-in has no component
	// checks, so it changes nothing.
	SkipCompatibilityCheck bool
	// Reboot is yes, no or set; empty means yes for full and no for incremental bundles.
	Reboot string
}

// target is where one payload goes.
type target struct {
	index int
	slot  string // as the bundle names it
	dest  string // resolved slot, e.g. system-b
	part  gpt.Partition
}

// planTargets resolves every payload's slot in the spare group, refusing what 1.x refuses:
// unknown slots, active slots, two payloads into one slot, and (in the stand-in) execute payloads.
func planTargets(payloads []bundle.PayloadInfo, spare string, t *gpt.Table) ([]target, error) {
	var out []target
	seen := map[string]int{}
	for _, p := range payloads {
		slot := p.Slot()
		if slot == "" {
			return nil, fmt.Errorf("payload %d: execute payloads are not supported by the stand-in", p.Index)
		}
		dest := slot
		if slot == "boot" || slot == "system" {
			dest = slot + "-" + spare
		}
		n, ok := slotPart(dest)
		if !ok {
			return nil, fmt.Errorf("payload %d: unknown slot %q (known: boot, system, boot-a, boot-b, system-a, system-b)", p.Index, slot)
		}
		if !strings.HasSuffix(dest, "-"+spare) {
			return nil, fmt.Errorf("payload %d: refusing to install into slot %s of the active group", p.Index, dest)
		}
		if prev, dup := seen[dest]; dup {
			return nil, fmt.Errorf("payloads %d and %d both go to slot %s", prev, p.Index, dest)
		}
		seen[dest] = p.Index
		part, ok := t.Partition(n)
		if !ok {
			return nil, fmt.Errorf("payload %d: slot %s is partition %d, which does not exist (not bootstrapped?)", p.Index, dest, n)
		}
		out = append(out, target{index: p.Index, slot: slot, dest: dest, part: part})
	}
	return out, nil
}

// checkBundleHash compares the hash of the bundle header with want, in want's algorithm, as
// rugix-ctrl's bundle reader does before it reads anything else (rugix/rugix
// crates/libs/rugix-bundle/src/reader.rs, BundleReader::start: "invalid header hash").
func checkBundleHash(b *bundle.Bundle, want string) error {
	d, err := bundle.ParseDigest(want)
	if err != nil {
		return fmt.Errorf("--bundle-hash: %w", err)
	}
	got := bundle.Digest{Algorithm: d.Algorithm, Sum: d.Algorithm.Sum(b.HeaderBytes())}
	if !bytes.Equal(got.Sum, d.Sum) {
		return fmt.Errorf("%s: the bundle header hashes to %s, --bundle-hash is %s", msgInvalidHeaderHash, got, d)
	}
	return nil
}

// openSource opens a bundle given as a path or an http(s) URL.
func openSource(ctx context.Context, src string) (io.ReaderAt, int64, func(), error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		r, err := newHTTPReaderAt(ctx, src)
		if err != nil {
			return nil, 0, nil, err
		}
		return r, r.Size(), func() {}, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, 0, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return f, st.Size(), func() { f.Close() }, nil
}

// install implements `rugix-ctrl update install` into the spare group. It returns whether
// a reboot into the spare group was requested.
func (s *system) install(ctx context.Context, o installOptions) (reboot string, err error) {
	switch o.Reboot {
	case "", "yes", "no", "set":
	case "deferred":
		return "", errors.New("--reboot deferred is not implemented by the stand-in")
	default:
		// clap's ValueEnum UpdateRebootType (rugix/rugix crates/apps/rugix-ctrl/src/cli.rs).
		return "", fmt.Errorf("--reboot %s: want yes, no, set or deferred", o.Reboot)
	}
	if o.BundleHash != "" {
		// clap parses --bundle-hash into a HashDigest before anything runs.
		if _, err := bundle.ParseDigest(o.BundleHash); err != nil {
			return "", fmt.Errorf("--bundle-hash: %w", err)
		}
	}
	t, err := s.readTable()
	if err != nil {
		return "", err
	}
	active, _, err := s.activeGroup(t)
	if err != nil {
		return "", err
	}
	// An uncommitted system takes no update (rugix/rugix
	// crates/apps/rugix-ctrl/src/operations/install/mod.rs, InstallBundle::execute).
	dflt, err := s.defaultGroup()
	if err != nil {
		return "", err
	}
	if dflt != active {
		return "", errors.New(msgNeedsCommit)
	}
	spare := otherGroup(active)

	ra, size, closeSrc, err := openSource(ctx, o.Source)
	if err != nil {
		return "", fmt.Errorf("open bundle %s: %w", o.Source, err)
	}
	defer closeSrc()
	b, err := bundle.NewReader(ra, size)
	if err != nil {
		return "", fmt.Errorf("read bundle %s: %w", o.Source, err)
	}
	if err := verifyBundle(b, o, s.ctrl, s.logf); err != nil {
		return "", err
	}
	targets, err := planTargets(b.Payloads(), spare, t)
	if err != nil {
		return "", err
	}
	incremental := b.Header().IsIncremental
	if o.Reboot == "" {
		o.Reboot = "yes"
		if incremental {
			o.Reboot = "no"
		}
	}
	s.logf("installing %s (%d bytes, %s) into boot group %s", o.Source, size, b.Hash(), spare)

	payloads := b.Payloads()
	var newBoot *target
	for i := range targets {
		tg := &targets[i]
		if err := checkBlockIndex(&payloads[tg.index], o); err != nil {
			return "", err
		}
		if err := s.setSlotUpdated(tg.dest, time.Time{}); err != nil {
			return "", err
		}
		if err := s.writePayload(ctx, b, tg); err != nil {
			return "", err
		}
		if strings.HasPrefix(tg.dest, "boot-") {
			newBoot = tg
		}
	}
	if newBoot != nil && !incremental {
		_, sysN := groupParts(spare)
		sysPart, ok := t.Partition(sysN)
		if !ok {
			return "", fmt.Errorf("post-install: system partition %d of group %s missing", sysN, spare)
		}
		args := "ro init=/usr/bin/rugix-ctrl root=PARTUUID=" + sysPart.UUID.String()
		if err := s.rewriteBootEnv(ctx, newBoot, args); err != nil {
			return "", fmt.Errorf("post-install: %w", err)
		}
		s.logf("post-install: %s %s: %s=%s", newBoot.dest, bootEnvName, varBootArgs, args)
	}
	now := time.Now()
	for _, tg := range targets {
		if err := s.setSlotUpdated(tg.dest, now); err != nil {
			return "", err
		}
	}
	s.logf("installed into boot group %s", spare)
	return o.Reboot, nil
}

// partWriter writes a payload into a partition, starting at base in f and refusing to run past
// limit. Its ReadAt lets the bundle decoder read deduplicated blocks back from the slot.
type partWriter struct {
	f           *os.File
	base, limit int64
	pos         int64
	name        string
	log         func(format string, args ...any)
	nextReport  int64
}

const reportEvery = 64 << 20

func (w *partWriter) Write(p []byte) (int, error) {
	if w.pos+int64(len(p)) > w.limit {
		return 0, fmt.Errorf("payload larger than the partition's %d bytes", w.limit)
	}
	n, err := w.f.WriteAt(p, w.base+w.pos)
	w.pos += int64(n)
	if w.pos >= w.nextReport {
		w.log("%s: %d MiB written", w.name, w.pos>>20)
		w.nextReport += reportEvery
	}
	return n, err
}

func (w *partWriter) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > w.pos {
		return 0, fmt.Errorf("read back %d bytes at %d: only %d bytes written", len(p), off, w.pos)
	}
	return w.f.ReadAt(p, w.base+off)
}

// writePayload decodes payload tg.index into its partition, checking every block hash and the
// file hash, and flushes it to the disk.
func (s *system) writePayload(ctx context.Context, b *bundle.Bundle, tg *target) error {
	dev, base := s.disk, tg.part.Offset()
	if s.guest {
		// Through the partition node, so that a later mount of it sees the data in its cache.
		dev, base = s.partDev(tg.part.Number), 0
	}
	where := fmt.Sprintf("payload %d (slot %s → %s, %s)", tg.index, tg.slot, tg.dest, dev)
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	defer f.Close()
	w := &partWriter{f: f, base: base, limit: tg.part.Bytes(), name: tg.dest, log: s.logf, nextReport: reportEvery}
	start := time.Now()
	// A payload that declares more than the slot holds is refused before anything is written.
	st, err := b.Extract(ctx, tg.index, w, bundle.ExtractOptions{MaxSize: tg.part.Bytes()})
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", where, err)
	}
	s.logf("%s: %d bytes, %d blocks (%d stored) in %s", where, st.FileSize, st.Blocks, st.StoredBlocks, time.Since(start).Round(time.Millisecond))
	return nil
}

// rewriteBootEnv sets rugpi_bootargs in boot.grubenv of the freshly written boot partition,
// Rugix's GRUB post-install (rugix-images.md §4.1): the new kernel must mount the new system.
func (s *system) rewriteBootEnv(ctx context.Context, tg *target, args string) error {
	if !s.guest {
		return rewriteBootEnvDebugfs(ctx, fmt.Sprintf("%s?offset=%d", s.disk, tg.part.Offset()), args)
	}
	dir, err := os.MkdirTemp("/run", "rugix-boot-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	dev := s.partDev(tg.part.Number)
	if err := unix.Mount(dev, dir, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s (ext4) on %s: %w", dev, dir, err)
	}
	p := filepath.Join(dir, bootEnvName)
	werr := func() error {
		old, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read %s: %w", bootEnvName, err)
		}
		block, err := patchBootArgs(old, args)
		if err != nil {
			return err
		}
		return writeReplace(p, block)
	}()
	if err := unix.Unmount(dir, 0); err != nil && werr == nil {
		werr = fmt.Errorf("unmount %s: %w", dir, err)
	}
	return werr
}

// rewriteBootEnvDebugfs does the same on a disk image on the host, where nothing is mounted:
// debugfs opens the boot filesystem at its offset ("img?offset=N").
func rewriteBootEnvDebugfs(ctx context.Context, fsSpec, args string) error {
	tmp, err := os.MkdirTemp("", "rugix-bootenv-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	oldPath, newPath := filepath.Join(tmp, "old"), filepath.Join(tmp, "new")
	if err := e2fs.Debugfs(ctx, fsSpec, []byte("dump /"+bootEnvName+" "+oldPath+"\n"), nil); err != nil {
		return fmt.Errorf("read %s from %s: %w", bootEnvName, fsSpec, err)
	}
	old, err := os.ReadFile(oldPath)
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", bootEnvName, fsSpec, err)
	}
	block, err := patchBootArgs(old, args)
	if err != nil {
		return err
	}
	if err := os.WriteFile(newPath, block, 0o644); err != nil {
		return err
	}
	script := "rm /" + bootEnvName + "\nwrite " + newPath + " /" + bootEnvName + "\n"
	if err := e2fs.Debugfs(ctx, fsSpec, []byte(script), nil); err != nil {
		return fmt.Errorf("write %s into %s: %w", bootEnvName, fsSpec, err)
	}
	return nil
}
