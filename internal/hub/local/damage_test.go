package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
)

// populated returns a store directory with one version carrying one available asset.
func populated(t *testing.T) (dir string, assetID string, d hub.Digest) {
	t.Helper()
	f := newFixture(t)
	ctx := context.Background()
	v := f.version(t, hub.TagItem{Tag: "stable"})
	data := bytes.Repeat([]byte("otabake"), 5000)
	d = digestOfBytes(data)
	id, _, err := f.s.CreateAsset(ctx, f.repoID, int64(len(data)), d)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.PutBlob(ctx, id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.AddVersionAsset(ctx, v, id, "system.rugixb", nil); err != nil {
		t.Fatal(err)
	}
	return f.s.Dir(), id, d
}

func wantDamaged(t *testing.T, err error, dbPath string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error for a damaged database")
	}
	if !IsDamaged(err) {
		t.Fatalf("err = %v, want a DamagedError", err)
	}
	for _, want := range []string{dbPath, "otabake hub check", "otabake hub repair"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestTruncatedDatabase: bbolt mmaps a truncated file and dies of SIGBUS reading past its end;
// that would kill this test binary, so passing proves it is caught before bbolt sees the file.
func TestTruncatedDatabase(t *testing.T) {
	dir, _, _ := populated(t)
	db := filepath.Join(dir, "hub.db")
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{fi.Size() / 2, 3 * 4096, 5000, 100} {
		if err := os.Truncate(db, size); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			_, err := Open(dir, Options{LockTimeout: time.Second, ReadOnly: ro})
			wantDamaged(t, err, db)
		}
	}
}

func TestEmptyDatabase(t *testing.T) {
	dir, _, _ := populated(t)
	db := filepath.Join(dir, "hub.db")
	if err := os.Truncate(db, 0); err != nil {
		t.Fatal(err)
	}
	// An empty file younger than emptyGrace may be one bbolt is creating; age it.
	old := time.Now().Add(-time.Minute)
	os.Chtimes(db, old, old)
	for _, ro := range []bool{false, true} {
		_, err := Open(dir, Options{LockTimeout: 5 * time.Second, ReadOnly: ro})
		wantDamaged(t, err, db)
	}
}

func TestGarbageDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hub.db")
	if err := os.WriteFile(db, bytes.Repeat([]byte{0xAB}, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{LockTimeout: time.Second})
	wantDamaged(t, err, db)
}

func TestReadOnlyOpenWritesNothing(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, Options{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open of an empty directory: %v, want ErrNotExist", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("read-only open created %v", ents)
	}
	dir, _, _ = populated(t)
	db := filepath.Join(dir, "hub.db")
	before, _ := os.ReadFile(db)
	s, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tree(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Init(context.Background(), "r2", "p2"); err == nil {
		t.Fatal("a read-only store wrote")
	}
	after, _ := os.ReadFile(db)
	if !bytes.Equal(before, after) {
		t.Fatal("the database changed under a read-only store")
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	return cmd.Process.Pid
}

func TestStaleTempBlobsRemoved(t *testing.T) {
	dir, _, d := populated(t)
	blobDir := filepath.Dir((&Store{dir: dir}).blobPath(d))
	// A killed upload: its writer's pid is dead and nobody holds the lock.
	dead := filepath.Join(blobDir, fmt.Sprintf("%s.%d-1.tmp", d.Hex(), deadPID(t)))
	if err := os.WriteFile(dead, []byte("half"), 0o444); err != nil {
		t.Fatal(err)
	}
	// An older otabake's abandoned temporary file.
	legacy := filepath.Join(blobDir, "."+d.Hex()+".tmp-123456")
	os.WriteFile(legacy, []byte("half"), 0o444)
	old := time.Now().Add(-2 * legacyTempAge)
	os.Chtimes(legacy, old, old)
	// A live writer in this process: its lock is held.
	live, err := createTempBlob(filepath.Join(blobDir, "feedface"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	// Read-only opens and Check remove nothing, but report.
	r, err := Check(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.TempBlobs) != 3 || !r.OK() {
		t.Fatalf("check: temps %+v, problems %v", r.TempBlobs, r.Problems)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, p := range []string{dead, legacy} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale temporary blob %s survived the next open: %v", filepath.Base(p), err)
		}
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Errorf("a live writer's temporary blob was removed: %v", err)
	}
}

func TestCheckFindsBadBlob(t *testing.T) {
	dir, _, d := populated(t)
	r, err := Check(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Blobs.Count != 1 || r.Database.Records["assets"] != 1 {
		t.Fatalf("healthy hub: %+v", r)
	}
	p := (&Store{dir: dir}).blobPath(d)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("bit rot"), 0o444); err != nil {
		t.Fatal(err)
	}
	r, err = Check(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || len(r.Blobs.Bad) != 1 || len(r.Blobs.Missing) != 1 {
		t.Fatalf("bit rot not found: %+v", r)
	}
}

func TestRepairTruncated(t *testing.T) {
	dir, assetID, d := populated(t)
	db := filepath.Join(dir, "hub.db")
	fi, _ := os.Stat(db)
	if err := os.Truncate(db, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	r, err := Check(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() {
		t.Fatal("check found a truncated database healthy")
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	rep, err := Repair(context.Background(), dir, Options{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Healthy || rep.MovedTo != db+".damaged-20250102T030405Z" {
		t.Fatalf("report %+v", rep)
	}
	if _, err := os.Stat(rep.MovedTo); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rep.Inventory); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open after repair: %v", err)
	}
	defer s.Close()
	// Either the asset record was saved with its blob, or the blob is listed as unattached.
	if _, err := s.GetAssetDetails(context.Background(), assetID); err != nil {
		if len(rep.Unattached) != 1 || rep.Unattached[0].Digest != d {
			t.Fatalf("asset lost and its blob not listed: %+v", rep)
		}
	}
	if r, err := Check(context.Background(), dir, Options{}); err != nil || !r.OK() {
		t.Fatalf("check after repair: %v %+v", err, r)
	}
	// A second repair finds nothing to do.
	rep, err = Repair(context.Background(), dir, Options{}, now)
	if err != nil || !rep.Healthy {
		t.Fatalf("second repair: %v %+v", err, rep)
	}
}

func TestRepairEmptyKeepsBlobsAsInventory(t *testing.T) {
	dir, _, d := populated(t)
	db := filepath.Join(dir, "hub.db")
	os.Truncate(db, 0)
	rep, err := Repair(context.Background(), dir, Options{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unattached) != 1 || rep.Unattached[0].Digest != d || len(rep.Lost) == 0 {
		t.Fatalf("report %+v", rep)
	}
	if _, err := Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestRepairNoValidMeta: with both meta pages broken nothing can be read; Repair still gives a
// working Hub and says what was lost.
func TestRepairNoValidMeta(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		f.version(t, hub.TagItem{Tag: fmt.Sprintf("v%d", i)})
	}
	dir := f.s.Dir()
	rep, err := Repair(ctx, dir, Options{}, time.Now())
	if err != nil || !rep.Healthy {
		t.Fatalf("healthy repair: %v %+v", err, rep)
	}
	db := filepath.Join(dir, "hub.db")
	data, _ := os.ReadFile(db)
	data[boltPageHeaderSize+20] ^= 0xFF
	data[4096+boltPageHeaderSize+20] ^= 0xFF
	os.WriteFile(db, data, 0o644)
	_, err = Open(dir, Options{LockTimeout: time.Second})
	wantDamaged(t, err, db)
	rep, err = Repair(ctx, dir, Options{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Lost) == 0 {
		t.Fatalf("nothing reported lost: %+v", rep)
	}
}

// TestRepairOneBadMeta: bbolt falls back to the other meta page, so nothing is lost.
func TestRepairOneBadMeta(t *testing.T) {
	dir, assetID, _ := populated(t)
	db := filepath.Join(dir, "hub.db")
	data, _ := os.ReadFile(db)
	data[boltPageHeaderSize+20] ^= 0xFF
	os.WriteFile(db, data, 0o644)
	s, err := Open(dir, Options{LockTimeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("one valid meta page is enough: %v", err)
	}
	if _, err := s.GetAssetDetails(context.Background(), assetID); err != nil {
		t.Fatal(err)
	}
}
