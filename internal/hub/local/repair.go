package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/hub"
)

// RepairReport is what Repair did.
type RepairReport struct {
	Dir string `json:"hubDir"`
	// Healthy is set when the database needed no repair; nothing but stale temporary blobs
	// was touched then.
	Healthy bool `json:"healthy"`
	// Damage is why the database was replaced.
	Damage string `json:"damage,omitempty"`
	// MovedTo is where the damaged database now is.
	MovedTo string `json:"movedTo,omitempty"`
	// Salvaged counts the records copied from the damaged database, by bucket.
	Salvaged map[string]int `json:"salvaged"`
	// Lost describes what could not be saved.
	Lost []string `json:"lost"`
	// Unattached are blobs that no asset of the rebuilt database refers to: their bytes are
	// intact, but which versions they belonged to was lost with the database.
	Unattached []UnattachedBlob `json:"unattached"`
	// ResetAssets are assets whose blob is missing; they are Dangling again so that
	// publishing the release again uploads their bytes.
	ResetAssets []string `json:"resetAssets"`
	// RemovedTemps are temporary blobs of killed uploads that were removed.
	RemovedTemps []TempBlob `json:"removedTemps"`
	// Inventory is the file this report was saved to, next to the damaged database.
	Inventory string `json:"inventory,omitempty"`
}

// UnattachedBlob is a blob no asset refers to.
type UnattachedBlob struct {
	Path   string     `json:"path"`
	Digest hub.Digest `json:"digest"`
	Size   int64      `json:"size"`
}

// kv is a salvaged key with its value, or with the pairs of a nested bucket.
type kv struct {
	k, v     []byte
	children []kv
	bucket   bool
}

// Repair rebuilds a damaged local Hub in dir: the damaged hub.db is moved aside as
// hub.db.damaged-<time>, a fresh database is created, every record that can still be read
// from the old one (bbolt read-only, bucket by bucket, faults contained) is copied into it,
// assets whose blob is gone are reset to Dangling, and the blobs no asset refers to any more
// are listed. The report is also saved next to the damaged database. A healthy database is
// left alone. Other otabake processes using the Hub should be stopped first.
func Repair(ctx context.Context, dir string, opts Options, now time.Time) (*RepairReport, error) {
	opts.ReadOnly = false
	rep := &RepairReport{Dir: dir, Salvaged: map[string]int{}, Lost: []string{}, Unattached: []UnattachedBlob{}, ResetAssets: []string{}, RemovedTemps: []TempBlob{}}
	probeOpts := opts
	probeOpts.ReadOnly = true
	probe := newStore(dir, probeOpts)
	cr := &CheckReport{Database: DatabaseReport{Path: probe.dbPath}}
	probe.checkDB(ctx, cr)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(cr.Problems) == 0 {
		// Healthy (or absent, which Open creates): only clean up.
		s, err := Open(dir, opts)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		removed, _ := s.RemoveStaleTemps()
		rep.RemovedTemps = append(rep.RemovedTemps, removed...)
		rep.Healthy = true
		return rep, nil
	}
	rep.Damage = cr.Problems[0]
	if len(cr.Problems) > 1 {
		rep.Damage += fmt.Sprintf(" (and %d more problems)", len(cr.Problems)-1)
	}

	salvaged, lost := probe.salvage()
	rep.Lost = append(rep.Lost, lost...)

	rep.MovedTo = probe.dbPath + ".damaged-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(probe.dbPath, rep.MovedTo); err != nil {
		return nil, fmt.Errorf("move the damaged database aside: %w", err)
	}
	// bbolt's lock file is the database itself; nothing else to move.
	s, err := Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("create a fresh local Hub database: %w", err)
	}
	defer s.Close()
	removed, _ := s.RemoveStaleTemps()
	rep.RemovedTemps = append(rep.RemovedTemps, removed...)

	blobs, err := s.walkBlobs(func(string, string) {})
	if err != nil {
		rep.Lost = append(rep.Lost, fmt.Sprintf("listing the blob store: %v", err))
	}
	have := map[hub.Digest]blobFile{}
	for _, b := range blobs {
		have[b.Digest] = b
	}
	referenced := map[hub.Digest]bool{}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			items, ok := salvaged[string(b)]
			if !ok {
				continue
			}
			n, err := restore(tx.Bucket(b), items)
			if err != nil {
				return fmt.Errorf("restore bucket %s: %w", b, err)
			}
			rep.Salvaged[string(b)] = n
		}
		return rep.reconcile(tx, have, referenced)
	})
	if err != nil {
		return nil, fmt.Errorf("rebuild the local Hub database: %w", err)
	}
	for _, b := range blobs {
		if !referenced[b.Digest] {
			rep.Unattached = append(rep.Unattached, UnattachedBlob{Path: b.Path, Digest: b.Digest, Size: b.Size})
		}
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err == nil {
		inv := rep.MovedTo + ".repair.json"
		if atomicfile.WriteFile(inv, append(data, '\n'), 0o644) == nil {
			rep.Inventory = inv
		}
	}
	return rep, nil
}

// salvage reads every bucket it can from the (damaged) database, bucket by bucket, so that a
// fault in one loses only that bucket.
func (s *Store) salvage() (map[string][]kv, []string) {
	out := map[string][]kv{}
	var lost []string
	f, err := os.Open(s.dbPath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			lost = append(lost, fmt.Sprintf("the whole database (%v)", err))
		}
		return out, lost
	}
	fc, _ := validateBoltFile(f)
	f.Close()
	if fc == nil || fc.Meta == nil && fc.Metas[0] != nil && fc.Metas[1] != nil {
		lost = append(lost, "the whole database: it has no valid meta page to start reading from")
		return out, lost
	}
	db, err := s.openSalvage()
	if err != nil {
		lost = append(lost, fmt.Sprintf("the whole database: %v", err))
		return out, lost
	}
	defer db.Close()
	for _, name := range allBuckets {
		items, err := salvageBucket(db, name)
		if err != nil {
			lost = append(lost, fmt.Sprintf("bucket %s: %v", name, err))
			continue
		}
		if items != nil {
			out[string(name)] = items
		}
	}
	return out, lost
}

// openSalvage opens a database that may be truncated read-only with bbolt; a fault while
// bbolt reads its meta pages is an error.
func (s *Store) openSalvage() (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("bbolt cannot open it: %v", r)
		}
	}()
	return bolt.Open(s.dbPath, 0o444, &bolt.Options{ReadOnly: true, Timeout: s.opts.LockTimeout})
}

// salvageBucket copies a root bucket's pairs into memory; nil means the bucket is absent.
func salvageBucket(db *bolt.DB, name []byte) (items []kv, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			items, err = nil, fmt.Errorf("unreadable: %v", r)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		items = copyBucket(b)
		if items == nil {
			items = []kv{}
		}
		return nil
	})
	return items, err
}

func copyBucket(b *bolt.Bucket) []kv {
	var out []kv
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e := kv{k: append([]byte(nil), k...)}
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				e.bucket = true
				e.children = copyBucket(nb)
			}
		} else {
			e.v = append([]byte(nil), v...)
		}
		out = append(out, e)
	}
	return out
}

// restore writes salvaged pairs into b and returns how many it wrote.
func restore(b *bolt.Bucket, items []kv) (int, error) {
	n := 0
	for _, e := range items {
		if e.bucket {
			nb, err := b.CreateBucketIfNotExists(e.k)
			if err != nil {
				return n, err
			}
			m, err := restore(nb, e.children)
			if err != nil {
				return n, err
			}
			n += m
			continue
		}
		if err := b.Put(e.k, e.v); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// reconcile makes the rebuilt database agree with itself and with the blob store: assets
// without bytes become Dangling, the digest index is rebuilt, attachments of vanished assets
// are dropped and reference counts recounted. It records what was lost.
func (rep *RepairReport) reconcile(tx *bolt.Tx, have map[hub.Digest]blobFile, referenced map[hub.Digest]bool) error {
	assets := decodeRecords(tx, bAssets, "asset", func(a *assetRec) string { return a.ID }, &rep.Lost)
	versions := decodeRecords(tx, bVersions, "version", func(v *versionRec) string { return v.ID }, &rep.Lost)
	// Undecodable records would fail every later read; drop them.
	for _, pair := range []struct {
		bucket []byte
		keep   func(string) bool
	}{
		{bAssets, func(k string) bool { return assets[k] != nil }},
		{bVersions, func(k string) bool { return versions[k] != nil }},
	} {
		var drop [][]byte
		tx.Bucket(pair.bucket).ForEach(func(k, _ []byte) error {
			if !pair.keep(string(k)) {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range drop {
			if err := tx.Bucket(pair.bucket).Delete(k); err != nil {
				return err
			}
		}
	}
	refs := map[string]int{}
	for _, id := range slices.Sorted(maps.Keys(versions)) {
		v := versions[id]
		kept := v.Assets[:0]
		for _, at := range v.Assets {
			if assets[at.AssetID] == nil {
				rep.Lost = append(rep.Lost, fmt.Sprintf("version %s: asset %q (%s), whose record was lost", v.ID, at.Filename, at.AssetID))
				continue
			}
			refs[at.AssetID]++
			kept = append(kept, at)
		}
		if len(kept) != len(v.Assets) {
			v.Assets = kept
			if err := put(tx, bVersions, v.ID, v); err != nil {
				return err
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(assets)) {
		a := assets[id]
		referenced[a.Digest] = true
		changed := false
		if a.blobMissing(have) {
			a.Uploaded, a.Status, changed = false, hub.AssetDangling, true
			rep.ResetAssets = append(rep.ResetAssets, a.ID)
		}
		if refs[a.ID] != a.RefCount {
			a.RefCount, changed = refs[a.ID], true
		}
		if changed {
			if err := put(tx, bAssets, a.ID, a); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bAssetDigests).Put(key(a.RepositoryID, string(a.Digest)), []byte(a.ID)); err != nil {
			return err
		}
	}
	return nil
}

// decodeRecords reads every record of bucket that decodes and is stored under its own ID (id
// returns it); each other one is added to lost, as a what record.
func decodeRecords[T any](tx *bolt.Tx, bucket []byte, what string, id func(*T) string, lost *[]string) map[string]*T {
	out := map[string]*T{}
	tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		r := new(T)
		if err := json.Unmarshal(v, r); err != nil || id(r) != string(k) {
			*lost = append(*lost, fmt.Sprintf("%s record %q (it does not decode)", what, k))
			return nil
		}
		out[id(r)] = r
		return nil
	})
	return out
}
