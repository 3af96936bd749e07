package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
)

// Blobs are written to a temporary file next to their final name, <hex>.<pid>-<n>.tmp, which
// the writer holds an exclusive flock on until it renames the file into place or removes it.
// A writer that is killed leaves the file behind but loses the lock, so the next read-write
// open of the store can tell a dead writer's temporary blob from a live one's.
const tmpBlobSuffix = ".tmp"

// tmpSeq tells apart the temporary blobs of one process.
var tmpSeq atomic.Uint64

// freshTempAge protects a temporary blob between its creation and its writer's flock (and a
// live process whose pid happens to be reused): one younger than this whose pid is alive is
// kept even when its lock is free.
const freshTempAge = time.Minute

// legacyTempAge is how old a temporary blob from an older otabake (written through
// atomicfile, ".<hex>.tmp-<random>", never locked) must be before it is taken for abandoned.
const legacyTempAge = time.Hour

// tempBlob is a blob being written.
type tempBlob struct {
	*os.File
	dst     string
	done    bool
	untrack func() // an interrupted process removes the blob before it exits (atomicfile.RemovePending)
}

// createTempBlob starts writing the blob that will live at dst.
func createTempBlob(dst string) (*tempBlob, error) {
	name := fmt.Sprintf("%s.%d-%d%s", dst, os.Getpid(), tmpSeq.Add(1), tmpBlobSuffix)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("create temporary blob: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(name)
		return nil, fmt.Errorf("lock temporary blob %s: %w", name, err)
	}
	return &tempBlob{File: f, dst: dst, untrack: atomicfile.Track(name)}, nil
}

// Commit fsyncs the blob and renames it into place, still holding the lock.
func (t *tempBlob) Commit() error {
	if t.done {
		return fmt.Errorf("commit blob %s: already closed", t.dst)
	}
	t.done = true
	defer t.untrack()
	tmp := t.Name()
	defer t.File.Close()
	if err := t.Sync(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sync blob %s: %w", t.dst, err)
	}
	if err := os.Rename(tmp, t.dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename blob into %s: %w", t.dst, err)
	}
	d, err := os.Open(filepath.Dir(t.dst))
	if err != nil {
		return fmt.Errorf("sync blob directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync blob directory %s: %w", filepath.Dir(t.dst), err)
	}
	return nil
}

// Close discards the blob unless it was committed. It is safe to defer.
func (t *tempBlob) Close() error {
	if t.done {
		return nil
	}
	t.done = true
	defer t.untrack()
	os.Remove(t.Name())
	return t.File.Close()
}

// TempBlob is a temporary blob found in the blob store.
type TempBlob struct {
	Path string `json:"path"`
	// PID is the writer's process ID, 0 for a temporary blob of an older otabake.
	PID  int   `json:"pid,omitempty"`
	Size int64 `json:"size"`
	// Live is set when a writer still holds the blob (or it is too fresh to judge).
	Live bool `json:"live"`
}

// parseTempBlob recognises a temporary blob's name: <hex>.<pid>-<n>.tmp, or an older otabake's
// .<hex>.tmp-<random>. It returns the pid (0 for the old form).
func parseTempBlob(name string) (pid int, ok bool) {
	if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
		return 0, true
	}
	rest, found := strings.CutSuffix(name, tmpBlobSuffix)
	if !found {
		return 0, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return 0, false
	}
	p, _, _ := strings.Cut(rest[i+1:], "-")
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// tempBlobs lists the temporary blobs under blobs/<alg>/<xx>/, judging whether each is live.
// With remove, the ones that are not are deleted (and left out of the result when that
// worked).
func (s *Store) tempBlobs(remove bool) ([]TempBlob, error) {
	dirs, err := filepath.Glob(filepath.Join(s.dir, "blobs", "*", "*"))
	if err != nil {
		return nil, err
	}
	var out []TempBlob
	var errs []error
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				errs = append(errs, err)
			}
			continue
		}
		for _, e := range ents {
			pid, ok := parseTempBlob(e.Name())
			if !ok || !e.Type().IsRegular() {
				continue
			}
			t, gone, err := judgeTempBlob(filepath.Join(d, e.Name()), pid, remove)
			if err != nil {
				errs = append(errs, err)
			}
			if !gone {
				out = append(out, t)
			}
		}
	}
	return out, errors.Join(errs...)
}

// judgeTempBlob decides whether a temporary blob's writer is gone, removing it if asked.
func judgeTempBlob(path string, pid int, remove bool) (t TempBlob, gone bool, err error) {
	t = TempBlob{Path: path, PID: pid}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return t, true, nil // renamed into place or removed meanwhile
		}
		return t, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return t, false, err
	}
	t.Size = fi.Size()
	age := time.Since(fi.ModTime())
	if pid == 0 {
		// Older writers did not lock; only age tells.
		t.Live = age < legacyTempAge
	} else if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Live = true // a writer holds it
	} else {
		t.Live = pidAlive(pid) && age < freshTempAge
	}
	if t.Live || !remove {
		return t, false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return t, false, fmt.Errorf("remove stale temporary blob: %w", err)
	}
	return t, true, nil
}

// RemoveStaleTemps removes the temporary blobs of writers that died (killed uploads) and
// returns the ones it removed. Temporary blobs of live writers are never touched. A read-only
// store removes nothing.
func (s *Store) RemoveStaleTemps() ([]TempBlob, error) {
	if s.opts.ReadOnly {
		return nil, nil
	}
	before, err := s.tempBlobs(false)
	if err != nil && len(before) == 0 {
		return nil, err
	}
	var removed []TempBlob
	for _, t := range before {
		if t.Live {
			continue
		}
		if _, gone, rerr := judgeTempBlob(t.Path, t.PID, true); gone {
			removed = append(removed, t)
		} else if rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return removed, err
}
