package local

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/otabake/otabake/internal/ctxio"
	"github.com/otabake/otabake/internal/hub"
)

// CheckReport is what Check found. Problems lists the damage; an empty list means healthy.
type CheckReport struct {
	Dir      string         `json:"hubDir"`
	Database DatabaseReport `json:"database"`
	Blobs    BlobsReport    `json:"blobs"`
	// TempBlobs are temporary blobs of uploads in progress (Live) or of killed ones, which the
	// next read-write open removes. They are not damage.
	TempBlobs []TempBlob `json:"tempBlobs"`
	Problems  []string   `json:"problems"`
}

// OK reports whether nothing is damaged.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// DatabaseReport describes hub.db.
type DatabaseReport struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	Size   int64  `json:"size"`
	// Meta0 and Meta1 are "ok" or why bbolt's meta page is unusable.
	Meta0 string `json:"meta0,omitempty"`
	Meta1 string `json:"meta1,omitempty"`
	TxID  uint64 `json:"txid,omitempty"`
	// Records counts the keys of each bucket that could be read.
	Records map[string]int `json:"records,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// BlobsReport describes the blob store.
type BlobsReport struct {
	Count int   `json:"count"`
	Bytes int64 `json:"bytes"`
	// Bad are blobs whose content does not match their name, or files that are not blobs.
	Bad []BadBlob `json:"bad"`
	// Missing are assets whose bytes were received but whose blob is gone or has the wrong size.
	Missing []MissingBlob `json:"missing"`
	// Unreferenced are blobs no asset record refers to (not damage by itself).
	Unreferenced []string `json:"unreferenced"`
}

// BadBlob is a file in the blob store whose content or name is wrong.
type BadBlob struct {
	Path    string `json:"path"`
	Problem string `json:"problem"`
}

// MissingBlob is an asset without its bytes.
type MissingBlob struct {
	AssetID string     `json:"assetId"`
	Digest  hub.Digest `json:"digest"`
	Size    int64      `json:"size"`
	Status  string     `json:"status"`
}

// Check examines the local Hub in dir without changing anything: bbolt's meta pages and its
// own consistency check of every page, that every record decodes, that every blob's content
// matches the digest it is named by, and that every uploaded asset has its blob. It never
// panics or crashes on damage; the error is only for failures to check at all (ctx ended).
func Check(ctx context.Context, dir string, opts Options) (*CheckReport, error) {
	opts.ReadOnly = true
	s := newStore(dir, opts)
	r := &CheckReport{Dir: dir, Database: DatabaseReport{Path: s.dbPath}, TempBlobs: []TempBlob{}, Problems: []string{}}
	r.Blobs = BlobsReport{Bad: []BadBlob{}, Missing: []MissingBlob{}, Unreferenced: []string{}}
	assets := s.checkDB(ctx, r)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.checkBlobs(ctx, r, assets); err != nil {
		return nil, err
	}
	temps, err := s.tempBlobs(false)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("listing temporary blobs: %v", err))
	}
	r.TempBlobs = append(r.TempBlobs, temps...)
	return r, nil
}

// checkDB fills r.Database and returns the asset records it could read (nil when the
// database could not be read at all).
func (s *Store) checkDB(ctx context.Context, r *CheckReport) map[string]*assetRec {
	d := &r.Database
	f, err := os.Open(s.dbPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		d.Error = err.Error()
		r.Problems = append(r.Problems, fmt.Sprintf("database %s: %v", s.dbPath, err))
		return nil
	}
	d.Exists = true
	fc, verr := validateBoltFile(f)
	f.Close()
	if fc != nil {
		d.Size = fc.Size
		for i, e := range fc.Metas {
			msg := "ok"
			if e != nil {
				msg = e.Error()
			}
			if i == 0 {
				d.Meta0 = msg
			} else {
				d.Meta1 = msg
			}
		}
		if fc.Meta != nil {
			d.TxID = fc.Meta.Txid
		}
	}
	if verr != nil {
		d.Error = verr.Error()
		r.Problems = append(r.Problems, fmt.Sprintf("database %s: %v", s.dbPath, verr))
		return nil
	}
	assets := map[string]*assetRec{}
	var problems []string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			problems = append(problems, "bbolt consistency check: "+e.Error())
			if len(problems) > 50 {
				problems = append(problems, "bbolt consistency check: more errors left out")
				break
			}
		}
		d.Records = map[string]int{}
		for _, name := range allBuckets {
			b := tx.Bucket(name)
			if b == nil {
				problems = append(problems, fmt.Sprintf("bucket %s is missing", name))
				continue
			}
			n := 0
			err := b.ForEach(func(k, v []byte) error {
				n++
				if string(name) == string(bAssets) {
					a := new(assetRec)
					if err := json.Unmarshal(v, a); err != nil {
						problems = append(problems, fmt.Sprintf("asset record %q does not decode: %v", k, err))
						return nil
					}
					assets[a.ID] = a
				} else if v != nil && isRecordBucket(name) && !json.Valid(v) {
					problems = append(problems, fmt.Sprintf("%s record %q is not valid JSON", name, k))
				}
				return nil
			})
			if err != nil {
				problems = append(problems, fmt.Sprintf("bucket %s: %v", name, err))
			}
			d.Records[string(name)] = n
		}
		if m := tx.Bucket(bMeta); m != nil && m.Get(keyOrganization) == nil {
			problems = append(problems, "the organization ID is missing")
		}
		return nil
	})
	if err != nil {
		d.Error = err.Error()
		var de *DamagedError
		if errors.As(err, &de) {
			err = de.Err
		}
		problems = append(problems, err.Error())
	}
	for _, p := range problems {
		r.Problems = append(r.Problems, fmt.Sprintf("database %s: %s", s.dbPath, p))
	}
	if err != nil {
		return nil
	}
	return assets
}

// blobMissing reports whether the asset has its bytes (see hasBytes) but have, the blob store's
// blobs by digest, lacks them or has them at another size.
func (a *assetRec) blobMissing(have map[hub.Digest]blobFile) bool {
	b, ok := have[a.Digest]
	return a.hasBytes() && (!ok || b.Size != a.Size)
}

// isRecordBucket reports whether a bucket maps keys to JSON records (rather than to IDs).
func isRecordBucket(name []byte) bool {
	switch string(name) {
	case string(bRepos), string(bPackages), string(bVersions), string(bProperties):
		return true
	}
	return false
}

// blobFile is a blob found in the blob store.
type blobFile struct {
	Path   string
	Digest hub.Digest
	Size   int64
}

// walkBlobs lists blobs/<alg>/<xx>/<hex>, leaving temporary blobs out; files that cannot be
// blobs are reported through bad.
func (s *Store) walkBlobs(bad func(path, problem string)) ([]blobFile, error) {
	root := filepath.Join(s.dir, "blobs")
	var out []blobFile
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == root {
				return fs.SkipAll
			}
			bad(path, err.Error())
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		parts := splitPath(rel)
		if e.IsDir() {
			if len(parts) > 2 {
				bad(path, "unexpected directory in the blob store")
				return fs.SkipDir
			}
			return nil
		}
		if _, ok := parseTempBlob(e.Name()); ok {
			return nil
		}
		if len(parts) != 3 {
			bad(path, "unexpected file in the blob store")
			return nil
		}
		d, err := hub.ParseDigest(parts[0] + "_" + parts[2])
		if err != nil || parts[1] != parts[2][:min(2, len(parts[2]))] {
			bad(path, "the name is not <algorithm>/<xx>/<hex digest>")
			return nil
		}
		if _, err := hex.DecodeString(parts[2]); err != nil {
			bad(path, "the name is not a hex digest")
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			bad(path, err.Error())
			return nil
		}
		if !fi.Mode().IsRegular() {
			bad(path, "not a regular file")
			return nil
		}
		out = append(out, blobFile{Path: path, Digest: d, Size: fi.Size()})
		return nil
	})
	return out, err
}

func splitPath(p string) []string {
	var parts []string
	for p != "" && p != "." {
		dir, file := filepath.Split(p)
		parts = append([]string{file}, parts...)
		p = filepath.Clean(dir)
		if p == "." || p == string(filepath.Separator) {
			break
		}
	}
	return parts
}

// checkBlobs hashes every blob and matches blobs with asset records.
func (s *Store) checkBlobs(ctx context.Context, r *CheckReport, assets map[string]*assetRec) error {
	bad := func(path, problem string) {
		r.Blobs.Bad = append(r.Blobs.Bad, BadBlob{Path: path, Problem: problem})
	}
	blobs, err := s.walkBlobs(bad)
	if err != nil {
		bad(filepath.Join(s.dir, "blobs"), err.Error())
	}
	have := map[hub.Digest]blobFile{}
	buf := make([]byte, copyBufSize)
	for _, b := range blobs {
		r.Blobs.Count++
		r.Blobs.Bytes += b.Size
		ok, err := blobMatches(ctx, b, buf)
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case err != nil:
			bad(b.Path, err.Error())
		case !ok:
			bad(b.Path, "content does not match the digest it is named by")
		default:
			have[b.Digest] = b
		}
	}
	referenced := map[hub.Digest]bool{}
	for _, id := range slices.Sorted(maps.Keys(assets)) {
		a := assets[id]
		referenced[a.Digest] = true
		if a.blobMissing(have) {
			r.Blobs.Missing = append(r.Blobs.Missing, MissingBlob{AssetID: a.ID, Digest: a.Digest, Size: a.Size, Status: string(a.Status)})
		}
	}
	if assets != nil {
		for _, b := range blobs {
			if !referenced[b.Digest] {
				r.Blobs.Unreferenced = append(r.Blobs.Unreferenced, b.Path)
			}
		}
	}
	for _, b := range r.Blobs.Bad {
		r.Problems = append(r.Problems, fmt.Sprintf("blob %s: %s", b.Path, b.Problem))
	}
	for _, m := range r.Blobs.Missing {
		r.Problems = append(r.Problems, fmt.Sprintf("asset %s (%s, %d bytes) is %s but its blob is missing or has the wrong size", m.AssetID, m.Digest, m.Size, m.Status))
	}
	return nil
}

// blobMatches hashes a blob and compares it with its name.
func blobMatches(ctx context.Context, b blobFile, buf []byte) (bool, error) {
	h, err := newHash(b.Digest)
	if err != nil {
		return false, err
	}
	f, err := os.Open(b.Path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	// Blobs are read with read(2), not mapped, but a fault-free read can still fail with EIO.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if _, err := io.CopyBuffer(h, ctxio.Reader(ctx, f), buf); err != nil {
		return false, err
	}
	return digestOf(b.Digest, h) == b.Digest, nil
}
