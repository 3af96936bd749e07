// Package local is the embedded Hub: repositories, packages, versions, tags, assets and device
// state kept under one directory (usually <project>/.otabake/hub), so that every otabake command
// works without a Nexigon Hub. Metadata lives in a bbolt database (hub.db); asset bytes live in
// a content-addressed blob store (blobs/<algorithm>/<xx>/<hex>).
//
// bbolt holds an exclusive file lock for as long as a database is open, so the store opens the
// database for each operation only: several otabake processes (and a long-running
// `otabake hub serve`) then take turns instead of starving each other.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// Options tune how a Store waits for other processes.
type Options struct {
	// LockTimeout bounds how long an operation waits for the database lock held by another
	// process. Zero means 60 s.
	LockTimeout time.Duration
	// OnWait is called (at most once per operation) when the lock is not free at once, so that a
	// command can tell its user why it is not making progress. It may be nil.
	OnWait func()
	// MaxEvents is how many events are kept per device; older ones are dropped. Zero means 10000.
	MaxEvents int
	// ReadOnly opens the store for reading only: the database is opened read-only by bbolt
	// and never created or initialised, nothing under the directory is created or removed, and
	// every write fails. A missing database is an error wrapping fs.ErrNotExist.
	ReadOnly bool
}

// Store is an embedded Hub. It implements hub.Hub and hub.BlobStore. A Store is safe for
// concurrent use by multiple goroutines, and several processes may open the same directory.
type Store struct {
	dir    string
	dbPath string
	opts   Options

	// mu serialises the goroutines of this process: flock conflicts between two opens of the
	// same file even within one process, and waiting on a mutex is cheaper than polling flock.
	mu     sync.RWMutex
	closed bool
}

var (
	_ hub.Hub       = (*Store)(nil)
	_ hub.BlobStore = (*Store)(nil)
)

// lockPoll is how often a busy database lock is retried.
const lockPoll = 25 * time.Millisecond

// Open opens (creating if needed) the local Hub in dir. A damaged database is a
// *DamagedError naming the file and the recovery commands. Opening read-write also removes the
// temporary blobs that killed writers left behind (see RemoveStaleTemps).
func Open(dir string, opts Options) (*Store, error) {
	s := newStore(dir, opts)
	if opts.ReadOnly {
		if _, err := os.Stat(s.dbPath); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("open local Hub %s: no database %s yet (`otabake hub init` or publishing a release creates it): %w", dir, s.dbPath, fs.ErrNotExist)
			}
			return nil, fmt.Errorf("open local Hub %s: %w", dir, err)
		}
	} else {
		if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
			return nil, fmt.Errorf("open local Hub %s: %w", dir, err)
		}
		// Best effort: a temporary blob that cannot be removed now is retried next time.
		s.RemoveStaleTemps()
	}
	ready := false
	if _, err := os.Stat(s.dbPath); err == nil {
		// Opening an initialised store must not need the write lock (nor an fsync).
		err := s.view(context.Background(), func(tx *bolt.Tx) error {
			ready = tx.Bucket(bMeta) != nil && tx.Bucket(bMeta).Get(keyOrganization) != nil
			for _, b := range allBuckets {
				ready = ready && tx.Bucket(b) != nil
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("open local Hub %s: %w", dir, err)
		}
	}
	if ready {
		return s, nil
	}
	if opts.ReadOnly {
		return nil, fmt.Errorf("open local Hub %s: %w", dir, &DamagedError{Path: s.dbPath, Err: errors.New("the database lacks the local Hub's buckets or organization")})
	}
	err := s.update(context.Background(), func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		meta := tx.Bucket(bMeta)
		if meta.Get(keyOrganization) == nil {
			if err := meta.Put(keyOrganization, []byte(nexid.OrganizationID.New())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open local Hub %s: %w", dir, err)
	}
	return s, nil
}

// newStore returns the Store for dir with the defaults of opts filled in, without touching
// the directory.
func newStore(dir string, opts Options) *Store {
	opts.LockTimeout = hub.OrDefault(opts.LockTimeout, 60*time.Second)
	opts.MaxEvents = hub.OrDefault(opts.MaxEvents, 10000)
	return &Store{dir: dir, dbPath: filepath.Join(dir, "hub.db"), opts: opts}
}

// DamagedError reports a local Hub database that cannot be used safely. Its message names the
// file and the commands that diagnose and recover it.
type DamagedError struct {
	Path string
	Err  error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("local Hub database %s is damaged (%v); run `otabake hub check` to see what is wrong and `otabake hub repair` to move it aside and rebuild what can be saved", e.Path, e.Err)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// IsDamaged reports whether err is (or wraps) a *DamagedError.
func IsDamaged(err error) bool {
	var de *DamagedError
	return errors.As(err, &de)
}

// guard turns a panic or memory fault inside bbolt (which mmaps the file and trusts what it
// reads) into a DamagedError. It must be deferred directly.
func (s *Store) guard(err *error) {
	if r := recover(); r != nil {
		*err = &DamagedError{Path: s.dbPath, Err: fmt.Errorf("reading it failed: %v", r)}
	}
}

// Dir returns the directory the store lives in.
func (s *Store) Dir() string { return s.dir }

// Close marks the store closed. The database is not held open between operations, so there is
// nothing else to release; later operations fail.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// errClosed is returned by operations on a closed Store.
var errClosed = errors.New("local Hub store is closed")

// view runs fn in a read-only transaction under a shared lock.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return s.txn(ctx, false, fn)
}

// update runs fn in a read-write transaction under the exclusive lock; fn's changes are
// committed atomically or not at all.
func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return s.txn(ctx, true, fn)
}

func (s *Store) txn(ctx context.Context, write bool, fn func(tx *bolt.Tx) error) (err error) {
	// A fault on the mapped file (it shrank, or a page points outside it) panics instead of
	// killing the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.guard(&err)
	if write {
		s.mu.Lock()
		defer s.mu.Unlock()
	} else {
		s.mu.RLock()
		defer s.mu.RUnlock()
	}
	if s.closed {
		return errClosed
	}
	if write && s.opts.ReadOnly {
		return fmt.Errorf("local Hub %s was opened read-only", s.dir)
	}
	db, err := s.openDB(ctx, !write)
	if err != nil {
		return err
	}
	defer db.Close()
	if write {
		return db.Update(fn)
	}
	return db.View(fn)
}

// openDB opens hub.db, polling the file lock until it is free, ctx ends or LockTimeout passes.
// bbolt's own timeout cannot report that it is waiting nor honour ctx, so each attempt uses a
// timeout that fails at once. Before bbolt sees an existing file, its meta pages are checked
// under a shared lock (see validateBolt): bbolt would crash the process on a truncated file.
func (s *Store) openDB(ctx context.Context, readOnly bool) (*bolt.DB, error) {
	opts := &bolt.Options{Timeout: time.Nanosecond, ReadOnly: readOnly}
	deadline := time.Now().Add(s.opts.LockTimeout)
	waited := false
	for {
		db, err := s.tryOpenDB(readOnly, opts)
		if err == nil {
			return db, nil
		}
		if !errors.Is(err, berrors.ErrTimeout) {
			return nil, err
		}
		if !waited {
			waited = true
			if s.opts.OnWait != nil {
				s.opts.OnWait()
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("local Hub database %s is locked by another otabake process; gave up after %s", s.dbPath, s.opts.LockTimeout)
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for local Hub lock on %s: %w", s.dbPath, ctx.Err())
		case <-t.C:
		}
	}
}

// emptyGrace is how long an empty database file is taken for one that bbolt is creating (it
// creates the file before it locks and initialises it) rather than for a damaged one.
const emptyGrace = 2 * time.Second

// tryOpenDB makes one attempt; berrors.ErrTimeout means the lock is busy.
func (s *Store) tryOpenDB(readOnly bool, opts *bolt.Options) (*bolt.DB, error) {
	f, err := os.Open(s.dbPath)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !readOnly:
		// bbolt creates and initialises it under its exclusive lock.
	case err != nil:
		return nil, fmt.Errorf("open local Hub database: %w", err)
	default:
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, berrors.ErrTimeout
			}
			return nil, fmt.Errorf("lock local Hub database %s: %w", s.dbPath, err)
		}
		fi, serr := f.Stat()
		_, verr := validateBoltFile(f)
		f.Close() // releases the lock
		if serr == nil && fi.Size() == 0 && time.Since(fi.ModTime()) < emptyGrace {
			return nil, berrors.ErrTimeout
		}
		if verr != nil {
			return nil, &DamagedError{Path: s.dbPath, Err: verr}
		}
	}
	db, err := bolt.Open(s.dbPath, 0o644, opts)
	if err == nil {
		return db, nil
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, err
	}
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return nil, &DamagedError{Path: s.dbPath, Err: err}
	}
	return nil, fmt.Errorf("open local Hub database %s: %w", s.dbPath, err)
}

// Bucket names. Composite keys join their parts with a NUL byte, which no name or ID contains.
var (
	bMeta         = []byte("meta")
	bRepos        = []byte("repos")        // repo ID → repoRec
	bRepoNames    = []byte("repoNames")    // name → repo ID
	bPackages     = []byte("packages")     // pkg ID → pkgRec
	bPackageNames = []byte("packageNames") // repo ID \0 name → pkg ID
	bVersions     = []byte("versions")     // version ID → versionRec
	bPkgVersions  = []byte("pkgVersions")  // pkg ID \0 version ID → nothing
	bTags         = []byte("tags")         // pkg ID \0 tag → version ID
	bAssets       = []byte("assets")       // asset ID → assetRec
	bAssetDigests = []byte("assetDigests") // repo ID \0 digest → asset ID
	bProperties   = []byte("properties")   // device ID \0 name → hub.Property
	bEvents       = []byte("events")       // device ID → bucket of seq → hub.Event

	allBuckets = [][]byte{bMeta, bRepos, bRepoNames, bPackages, bPackageNames, bVersions, bPkgVersions, bTags, bAssets, bAssetDigests, bProperties, bEvents}

	keyOrganization = []byte("organizationId")
)

func key(parts ...string) []byte {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}
