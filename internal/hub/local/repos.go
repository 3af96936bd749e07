package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

type repoRec struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

type pkgRec struct {
	ID           string    `json:"id"`
	RepositoryID string    `json:"repositoryId"`
	Name         string    `json:"name"`
	CreatedAt    time.Time `json:"createdAt"`
}

type versionRec struct {
	ID           string           `json:"id"`
	RepositoryID string           `json:"repositoryId"`
	PackageID    string           `json:"packageId"`
	Name         string           `json:"name,omitempty"`
	CreatedAt    time.Time        `json:"createdAt"`
	Metadata     json.RawMessage  `json:"metadata,omitempty"`
	Tags         []hub.VersionTag `json:"tags"`
	Assets       []attachRec      `json:"assets"`
}

type attachRec struct {
	Filename string          `json:"filename"`
	AssetID  string          `json:"assetId"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

func get[T any](tx *bolt.Tx, bucket []byte, id string) (*T, error) {
	data := tx.Bucket(bucket).Get([]byte(id))
	if data == nil {
		return nil, nil
	}
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("local Hub database: corrupt %s record %s: %w", bucket, id, err)
	}
	return v, nil
}

func put(tx *bolt.Tx, bucket []byte, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record %s: %w", bucket, id, err)
	}
	return tx.Bucket(bucket).Put([]byte(id), data)
}

// normJSON returns raw in compact form, as the Hub returns stored JSON, or nil when it is empty
// or JSON null (both mean "no metadata"). Invalid JSON is an Invalid ActionError.
func normJSON(what string, raw json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, t); err != nil {
		return nil, hub.Errorf(hub.KindInvalid, "%s is not valid JSON: %v", what, err)
	}
	return buf.Bytes(), nil
}

// lookupRepo resolves a repository name or repo_ ID inside tx; nil means not found.
func lookupRepo(tx *bolt.Tx, repository string) (*repoRec, error) {
	return lookup[repoRec](tx, bRepos, nexid.RepositoryID, repository, bRepoNames, []byte(repository))
}

// lookupPackage resolves a package name or pkg_ ID within a repository; nil means not found.
func lookupPackage(tx *bolt.Tx, repoID, pkg string) (*pkgRec, error) {
	p, err := lookup[pkgRec](tx, bPackages, nexid.PackageID, pkg, bPackageNames, key(repoID, pkg))
	if err != nil || p == nil || p.RepositoryID != repoID {
		return nil, err
	}
	return p, nil
}

// lookupVersion resolves a tag or pkg_v_ ID within a package; nil means not found.
func lookupVersion(tx *bolt.Tx, pkgID, tag string) (*versionRec, error) {
	v, err := lookup[versionRec](tx, bVersions, nexid.PackageVersionID, tag, bTags, key(pkgID, tag))
	if err != nil || v == nil || v.PackageID != pkgID {
		return nil, err
	}
	return v, nil
}

// lookup resolves ref, an ID of kind k or else a name that the index bucket names maps
// (under nameKey) to an ID, to its record in bucket; nil means not found.
func lookup[T any](tx *bolt.Tx, bucket []byte, k nexid.Kind, ref string, names, nameKey []byte) (*T, error) {
	id := ref
	if !k.Is(ref) {
		v := tx.Bucket(names).Get(nameKey)
		if v == nil {
			return nil, nil
		}
		id = string(v)
	}
	return get[T](tx, bucket, id)
}

// byID loads the record of bucket for id, which an action gave as the ID of kind k (what
// names it in the error when it is not one); a missing record is notFound's error.
func byID[T any](tx *bolt.Tx, bucket []byte, what string, k nexid.Kind, id string, notFound func() error) (*T, error) {
	if err := checkID(what, k, id); err != nil {
		return nil, err
	}
	r, err := get[T](tx, bucket, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notFound()
	}
	return r, nil
}

// repoByID loads a repository by ID for actions that take one, with the error every command
// shows when the local Hub has not been initialised for it.
func (s *Store) repoByID(tx *bolt.Tx, repositoryID string) (*repoRec, error) {
	return byID[repoRec](tx, bRepos, "repository ID", nexid.RepositoryID, repositoryID, func() error {
		return s.unknownRepository(repositoryID)
	})
}

func (s *Store) unknownRepository(repository string) error {
	return hub.Errorf(hub.KindInvalid, "repository %q does not exist in the local Hub at %s; create it with `otabake hub init --repository R --package P`", repository, s.dir)
}

func packageByID(tx *bolt.Tx, packageID string) (*pkgRec, error) {
	return byID[pkgRec](tx, bPackages, "package ID", nexid.PackageID, packageID, func() error {
		return hub.Errorf(hub.KindInvalid, "package %q not found", packageID)
	})
}

func versionByID(tx *bolt.Tx, versionID string) (*versionRec, error) {
	return byID[versionRec](tx, bVersions, "version ID", nexid.PackageVersionID, versionID, func() error {
		return hub.Errorf(hub.KindInvalid, "version %q not found", versionID)
	})
}

// updateVersion runs fn on the version with versionID in a read-write transaction; fn stores
// what it changes.
func (s *Store) updateVersion(ctx context.Context, versionID string, fn func(tx *bolt.Tx, v *versionRec) error) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		v, err := versionByID(tx, versionID)
		if err != nil {
			return err
		}
		return fn(tx, v)
	})
}

// Init creates the repository and the package in it unless they exist, and returns their IDs.
// It is what `otabake hub init` runs, and it is idempotent.
func (s *Store) Init(ctx context.Context, repository, pkg string) (repositoryID, packageID string, err error) {
	if !nexid.RepositoryID.Is(repository) {
		if err := hub.ValidName("repository name", repository, 128); err != nil {
			return "", "", err
		}
	}
	if !nexid.PackageID.Is(pkg) {
		if err := hub.ValidName("package name", pkg, 128); err != nil {
			return "", "", err
		}
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		r, err := lookupRepo(tx, repository)
		if err != nil {
			return err
		}
		if r == nil {
			if nexid.RepositoryID.Is(repository) {
				return s.unknownRepository(repository)
			}
			r = &repoRec{ID: nexid.RepositoryID.New(), Name: repository, CreatedAt: now()}
			if err := put(tx, bRepos, r.ID, r); err != nil {
				return err
			}
			if err := tx.Bucket(bRepoNames).Put([]byte(r.Name), []byte(r.ID)); err != nil {
				return err
			}
		}
		repositoryID = r.ID
		p, err := lookupPackage(tx, r.ID, pkg)
		if err != nil {
			return err
		}
		if p == nil {
			if nexid.PackageID.Is(pkg) {
				return hub.Errorf(hub.KindInvalid, "package %q not found in repository %q", pkg, r.Name)
			}
			p, err = createPackage(tx, r.ID, pkg)
			if err != nil {
				return err
			}
		}
		packageID = p.ID
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("init %s/%s: %w", repository, pkg, err)
	}
	return repositoryID, packageID, nil
}

func createPackage(tx *bolt.Tx, repoID, name string) (*pkgRec, error) {
	p := &pkgRec{ID: nexid.PackageID.New(), RepositoryID: repoID, Name: name, CreatedAt: now()}
	if err := put(tx, bPackages, p.ID, p); err != nil {
		return nil, err
	}
	if err := tx.Bucket(bPackageNames).Put(key(repoID, name), []byte(p.ID)); err != nil {
		return nil, err
	}
	return p, nil
}

// now is the store's clock: UTC with millisecond precision, as the Hub reports timestamps.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// ResolveRepository implements hub.Repositories.
func (s *Store) ResolveRepository(ctx context.Context, repository string) (string, bool, error) {
	if err := validPath(hub.VersionPath{Repository: repository}); err != nil {
		return "", false, err
	}
	var id string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		r, err := lookupRepo(tx, repository)
		if r != nil {
			id = r.ID
		}
		return err
	})
	return id, id != "", err
}

// ResolvePackage implements hub.Repositories.
func (s *Store) ResolvePackage(ctx context.Context, repository, pkg string) (hub.PackageRef, bool, error) {
	if err := validPath(hub.VersionPath{Repository: repository, Package: pkg}); err != nil {
		return hub.PackageRef{}, false, err
	}
	var ref hub.PackageRef
	err := s.view(ctx, func(tx *bolt.Tx) error {
		r, err := lookupRepo(tx, repository)
		if err != nil || r == nil {
			return err
		}
		p, err := lookupPackage(tx, r.ID, pkg)
		if err != nil || p == nil {
			return err
		}
		ref = hub.PackageRef{RepositoryID: r.ID, PackageID: p.ID}
		return nil
	})
	return ref, ref.PackageID != "", err
}

// ResolveVersion implements hub.Repositories.
func (s *Store) ResolveVersion(ctx context.Context, p hub.VersionPath) (hub.VersionRef, bool, error) {
	if err := validPath(p); err != nil {
		return hub.VersionRef{}, false, err
	}
	var ref hub.VersionRef
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v, err := resolveVersionPath(tx, p)
		if err != nil || v == nil {
			return err
		}
		ref = hub.VersionRef{RepositoryID: v.RepositoryID, PackageID: v.PackageID, VersionID: v.ID}
		return nil
	})
	return ref, ref.VersionID != "", err
}

// validPath checks the parts of a resolve path that are set: name or ID of the repository and
// the package, tag or version ID, each 1..128 of ^[a-zA-Z0-9][a-zA-Z0-9._-]*$
// (nexigon/nexigon crates/libs/nexigon-api/schemas/repositories.sidex,
// ResolvePackageVersionByPathAction and its siblings).
func validPath(p hub.VersionPath) error {
	for _, part := range []struct{ what, s string }{{"repository name", p.Repository}, {"package name", p.Package}, {"tag", p.Tag}} {
		if part.s == "" && part.what != "repository name" {
			continue
		}
		if err := hub.ValidName(part.what, part.s, 128); err != nil {
			return err
		}
	}
	return nil
}

func resolveVersionPath(tx *bolt.Tx, p hub.VersionPath) (*versionRec, error) {
	r, err := lookupRepo(tx, p.Repository)
	if err != nil || r == nil {
		return nil, err
	}
	pk, err := lookupPackage(tx, r.ID, p.Package)
	if err != nil || pk == nil {
		return nil, err
	}
	return lookupVersion(tx, pk.ID, p.Tag)
}

// ResolveVersionAsset implements hub.Repositories. filename may also be an asset ID.
func (s *Store) ResolveVersionAsset(ctx context.Context, p hub.VersionPath, filename string) (hub.VersionAssetRef, bool, error) {
	if err := validPath(p); err != nil {
		return hub.VersionAssetRef{}, false, err
	}
	if len(filename) < 1 || len(filename) > 256 {
		return hub.VersionAssetRef{}, false, hub.Errorf(hub.KindInvalid, "invalid filename %q: want 1..256 characters", filename)
	}
	var ref hub.VersionAssetRef
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v, err := resolveVersionPath(tx, p)
		if err != nil || v == nil {
			return err
		}
		for _, a := range v.Assets {
			if a.Filename == filename || (nexid.RepositoryAssetID.Is(filename) && a.AssetID == filename) {
				ref = hub.VersionAssetRef{RepositoryID: v.RepositoryID, PackageID: v.PackageID, VersionID: v.ID, AssetID: a.AssetID}
				return nil
			}
		}
		return nil
	})
	return ref, ref.AssetID != "", err
}

// CreatePackage implements hub.Repositories.
func (s *Store) CreatePackage(ctx context.Context, repositoryID, name string) (string, bool, error) {
	if err := hub.ValidName("package name", name, 128); err != nil {
		return "", false, err
	}
	var id string
	existed := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := s.repoByID(tx, repositoryID); err != nil {
			return err
		}
		if tx.Bucket(bPackageNames).Get(key(repositoryID, name)) != nil {
			existed = true
			return nil
		}
		p, err := createPackage(tx, repositoryID, name)
		if err != nil {
			return err
		}
		id = p.ID
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("create package %q: %w", name, err)
	}
	return id, existed, nil
}

// CreateVersion implements hub.Repositories. The version and all its tags are created in one
// transaction: a tag conflict leaves nothing behind.
func (s *Store) CreateVersion(ctx context.Context, req hub.CreateVersionRequest) (string, error) {
	if req.Name != "" && len(req.Name) > 128 {
		return "", hub.Errorf(hub.KindInvalid, "version name is %d characters long; the limit is 128", len(req.Name))
	}
	if err := checkID("package ID", nexid.PackageID, req.PackageID); err != nil {
		return "", err
	}
	md, err := objectJSON("version metadata", req.Metadata, false)
	if err != nil {
		return "", err
	}
	if err := validTags(req.Tags); err != nil {
		return "", err
	}
	v := &versionRec{ID: nexid.PackageVersionID.New(), PackageID: req.PackageID, Name: req.Name, CreatedAt: now(), Metadata: md, Tags: []hub.VersionTag{}, Assets: []attachRec{}}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		p, err := get[pkgRec](tx, bPackages, req.PackageID)
		if err != nil {
			return err
		}
		if p == nil {
			return hub.Errorf(hub.KindInvalid, "package %q not found", req.PackageID)
		}
		v.RepositoryID = p.RepositoryID
		if err := applyTags(tx, v, req.Tags); err != nil {
			return err
		}
		if err := tx.Bucket(bPkgVersions).Put(key(p.ID, v.ID), nil); err != nil {
			return err
		}
		return put(tx, bVersions, v.ID, v)
	})
	if err != nil {
		return "", fmt.Errorf("create version: %w", err)
	}
	return v.ID, nil
}

func validTags(tags []hub.TagItem) error {
	for _, t := range tags {
		if err := hub.ValidName("tag", t.Tag, 128); err != nil {
			return err
		}
	}
	return nil
}

// applyTags adds tags to v (spec §5): a tag held by another version moves only with reassign
// and never when it is locked there; re-adding a tag to the same version changes nothing except
// that it may become locked. The caller stores v; other versions are stored here.
func applyTags(tx *bolt.Tx, v *versionRec, tags []hub.TagItem) error {
	tb := tx.Bucket(bTags)
	for _, t := range tags {
		k := key(v.PackageID, t.Tag)
		holder := string(tb.Get(k))
		switch {
		case holder == v.ID:
			for i := range v.Tags {
				if v.Tags[i].Tag == t.Tag {
					v.Tags[i].Locked = v.Tags[i].Locked || t.Locked
				}
			}
			continue
		case holder != "":
			other, err := versionByID(tx, holder)
			if err != nil {
				return fmt.Errorf("tag %q: %w", t.Tag, err)
			}
			idx := -1
			for i, ot := range other.Tags {
				if ot.Tag == t.Tag {
					idx = i
				}
			}
			if idx >= 0 && other.Tags[idx].Locked {
				return hub.Errorf(hub.KindInvalid, "tag %q is locked to version %s and cannot move", t.Tag, holder)
			}
			if !t.Reassign {
				return hub.Errorf(hub.KindInvalid, "tag %q already points to version %s; reassign it to move it", t.Tag, holder)
			}
			if idx >= 0 {
				other.Tags = append(other.Tags[:idx], other.Tags[idx+1:]...)
			}
			if err := put(tx, bVersions, other.ID, other); err != nil {
				return err
			}
		}
		if err := tb.Put(k, []byte(v.ID)); err != nil {
			return err
		}
		v.Tags = append(v.Tags, hub.VersionTag{Tag: t.Tag, Locked: t.Locked})
	}
	return nil
}

// TagVersion implements hub.Repositories; all tags are applied atomically or none.
func (s *Store) TagVersion(ctx context.Context, versionID string, tags []hub.TagItem) error {
	if err := validTags(tags); err != nil {
		return err
	}
	err := s.updateVersion(ctx, versionID, func(tx *bolt.Tx, v *versionRec) error {
		if err := applyTags(tx, v, tags); err != nil {
			return err
		}
		return put(tx, bVersions, v.ID, v)
	})
	if err != nil {
		return fmt.Errorf("tag version %s: %w", versionID, err)
	}
	return nil
}

// UntagVersion implements hub.Repositories. Tags the version does not carry are ignored, so
// that re-running a cleanup succeeds; a locked tag cannot be removed, because locked tags
// always point to their version.
func (s *Store) UntagVersion(ctx context.Context, versionID string, tags []string) error {
	err := s.updateVersion(ctx, versionID, func(tx *bolt.Tx, v *versionRec) error {
		for _, tag := range tags {
			for i, t := range v.Tags {
				if t.Tag != tag {
					continue
				}
				if t.Locked {
					return hub.Errorf(hub.KindInvalid, "tag %q is locked to version %s and cannot be removed", tag, v.ID)
				}
				v.Tags = append(v.Tags[:i], v.Tags[i+1:]...)
				if err := tx.Bucket(bTags).Delete(key(v.PackageID, tag)); err != nil {
					return err
				}
				break
			}
		}
		return put(tx, bVersions, v.ID, v)
	})
	if err != nil {
		return fmt.Errorf("untag version %s: %w", versionID, err)
	}
	return nil
}

// GetVersionDetails implements hub.Repositories.
func (s *Store) GetVersionDetails(ctx context.Context, versionID string) (*hub.VersionDetails, error) {
	var d *hub.VersionDetails
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v, err := versionByID(tx, versionID)
		if err != nil {
			return err
		}
		d, err = versionDetails(tx, v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get version %s: %w", versionID, err)
	}
	return d, nil
}

func versionDetails(tx *bolt.Tx, v *versionRec) (*hub.VersionDetails, error) {
	d := &hub.VersionDetails{
		VersionID: v.ID, RepositoryID: v.RepositoryID, PackageID: v.PackageID, Name: v.Name,
		Assets: make([]hub.VersionAsset, 0, len(v.Assets)), Tags: append([]hub.VersionTag{}, v.Tags...), Metadata: v.Metadata,
	}
	for _, at := range v.Assets {
		a, err := assetByID(tx, at.AssetID)
		if err != nil {
			return nil, fmt.Errorf("asset %q: %w", at.Filename, err)
		}
		d.Assets = append(d.Assets, hub.VersionAsset{Filename: at.Filename, AssetID: a.ID, Size: a.Size, Digest: a.Digest, Status: a.Status, Metadata: at.Metadata})
	}
	return d, nil
}

// QueryVersions implements hub.Repositories; versions come oldest first.
func (s *Store) QueryVersions(ctx context.Context, packageID string) ([]hub.VersionSummary, error) {
	if err := checkID("package ID", nexid.PackageID, packageID); err != nil {
		return nil, err
	}
	var out []hub.VersionSummary
	err := s.view(ctx, func(tx *bolt.Tx) error {
		p, err := packageByID(tx, packageID)
		if err != nil {
			return err
		}
		vs, err := packageVersions(tx, p.ID)
		if err != nil {
			return err
		}
		out = make([]hub.VersionSummary, 0, len(vs))
		for _, v := range vs {
			out = append(out, hub.VersionSummary{VersionID: v.ID, Name: v.Name, CreatedAt: v.CreatedAt, Tags: append([]hub.VersionTag{}, v.Tags...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query versions of %s: %w", packageID, err)
	}
	return out, nil
}

func packageVersions(tx *bolt.Tx, pkgID string) ([]*versionRec, error) {
	prefix := key(pkgID, "")
	var vs []*versionRec
	c := tx.Bucket(bPkgVersions).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		v, err := versionByID(tx, string(k[len(prefix):]))
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].CreatedAt.Before(vs[j].CreatedAt) })
	return vs, nil
}

// SetVersionMetadata implements hub.Repositories; the metadata is replaced, not merged.
func (s *Store) SetVersionMetadata(ctx context.Context, versionID string, metadata json.RawMessage) error {
	md, err := objectJSON("version metadata", metadata, true)
	if err != nil {
		return err
	}
	err = s.updateVersion(ctx, versionID, func(tx *bolt.Tx, v *versionRec) error {
		v.Metadata = md
		return put(tx, bVersions, v.ID, v)
	})
	if err != nil {
		return fmt.Errorf("set metadata of version %s: %w", versionID, err)
	}
	return nil
}

// DeleteVersion removes a version with its tags and attachments (repositories_DeleteVersion).
// The assets stay in the repository.
func (s *Store) DeleteVersion(ctx context.Context, versionID string) error {
	err := s.updateVersion(ctx, versionID, func(tx *bolt.Tx, v *versionRec) error {
		for _, t := range v.Tags {
			if err := tx.Bucket(bTags).Delete(key(v.PackageID, t.Tag)); err != nil {
				return err
			}
		}
		for _, at := range v.Assets {
			if err := addRef(tx, at.AssetID, -1); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bPkgVersions).Delete(key(v.PackageID, v.ID)); err != nil {
			return err
		}
		return tx.Bucket(bVersions).Delete([]byte(v.ID))
	})
	if err != nil {
		return fmt.Errorf("delete version %s: %w", versionID, err)
	}
	return nil
}
