package local

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

type assetRec struct {
	ID           string          `json:"id"`
	RepositoryID string          `json:"repositoryId"`
	Size         int64           `json:"size"`
	Digest       hub.Digest      `json:"digest"`
	Status       hub.AssetStatus `json:"status"`
	// Uploaded is set once bytes were received for this asset (the object exists, in S3
	// terms); a second upload is then refused like an S3 PUT with If-None-Match: *.
	Uploaded  bool      `json:"uploaded,omitempty"`
	RefCount  int       `json:"refCount"`
	CreatedAt time.Time `json:"createdAt"`
}

func assetByID(tx *bolt.Tx, assetID string) (*assetRec, error) {
	return byID[assetRec](tx, bAssets, "asset ID", nexid.RepositoryAssetID, assetID, func() error {
		return hub.Errorf(hub.KindInvalid, "asset %q not found", assetID)
	})
}

// hasBytes reports whether the asset's bytes were received: it is Available, or its object
// was uploaded.
func (a *assetRec) hasBytes() bool { return a.Uploaded || a.Status == hub.AssetAvailable }

func addRef(tx *bolt.Tx, assetID string, delta int) error {
	a, err := assetByID(tx, assetID)
	if err != nil {
		return err
	}
	a.RefCount += delta
	if a.RefCount < 0 {
		a.RefCount = 0
	}
	return put(tx, bAssets, a.ID, a)
}

func (a *assetRec) details() *hub.AssetDetails {
	return &hub.AssetDetails{AssetID: a.ID, Size: a.Size, Digest: a.Digest, Status: a.Status, ReferenceCount: a.RefCount}
}

// CreateAsset implements hub.Repositories. Assets are deduplicated by digest within a
// repository: registering known content returns the existing asset with existed set.
func (s *Store) CreateAsset(ctx context.Context, repositoryID string, size int64, digest hub.Digest) (string, bool, error) {
	d, err := hub.ParseDigest(string(digest))
	if err != nil {
		return "", false, hub.Errorf(hub.KindInvalid, "%v", err)
	}
	if size < 0 {
		return "", false, hub.Errorf(hub.KindInvalid, "asset size %d is negative", size)
	}
	var id string
	existed := false
	err = s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := s.repoByID(tx, repositoryID); err != nil {
			return err
		}
		dk := key(repositoryID, string(d))
		if old := tx.Bucket(bAssetDigests).Get(dk); old != nil {
			a, err := assetByID(tx, string(old))
			if err != nil {
				return err
			}
			if a.Size != size {
				return hub.Errorf(hub.KindInvalid, "asset %s with digest %s has size %d, not %d", a.ID, d, a.Size, size)
			}
			id, existed = a.ID, true
			return nil
		}
		a := &assetRec{ID: nexid.RepositoryAssetID.New(), RepositoryID: repositoryID, Size: size, Digest: d, Status: hub.AssetDangling, CreatedAt: now()}
		if err := put(tx, bAssets, a.ID, a); err != nil {
			return err
		}
		id = a.ID
		return tx.Bucket(bAssetDigests).Put(dk, []byte(a.ID))
	})
	if err != nil {
		return "", false, fmt.Errorf("create asset %s: %w", d, err)
	}
	return id, existed, nil
}

// GetAssetDetails implements hub.Repositories.
func (s *Store) GetAssetDetails(ctx context.Context, assetID string) (*hub.AssetDetails, error) {
	a, err := s.asset(ctx, assetID)
	if err != nil {
		return nil, err
	}
	return a.details(), nil
}

func (s *Store) asset(ctx context.Context, assetID string) (*assetRec, error) {
	var a *assetRec
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		a, err = assetByID(tx, assetID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get asset %s: %w", assetID, err)
	}
	return a, nil
}

// AssetUploaded reports whether bytes were already received for an asset, i.e. whether an
// upload with If-None-Match: * must be refused. The server uses it.
func (s *Store) AssetUploaded(ctx context.Context, assetID string) (bool, error) {
	a, err := s.asset(ctx, assetID)
	if err != nil {
		return false, err
	}
	return a.hasBytes(), nil
}

// IssueAssetUploadURL implements hub.Repositories. The in-process store has no URL to upload
// to; `otabake hub serve` issues real ones.
func (s *Store) IssueAssetUploadURL(ctx context.Context, assetID string) (*hub.UploadURL, error) {
	return nil, hub.Errorf(hub.KindInvalid, "the in-process local Hub takes asset bytes through PutBlob, not upload URLs; run `otabake hub serve` for HTTP uploads")
}

// FinalizeAssetUpload implements hub.Repositories: an asset becomes Available when the blob
// store holds its content. Blobs are only ever stored after their size and digest were
// verified, so finding the blob is the verification. Finalizing an Available asset succeeds.
func (s *Store) FinalizeAssetUpload(ctx context.Context, assetID string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		a, err := assetByID(tx, assetID)
		if err != nil {
			return err
		}
		if a.Status == hub.AssetAvailable {
			return nil
		}
		ok, err := s.haveBlob(a.Digest, a.Size)
		if err != nil {
			return err
		}
		if !ok {
			return hub.Errorf(hub.KindInvalid, "uploaded object for asset %s is missing", a.ID)
		}
		a.Status = hub.AssetAvailable
		a.Uploaded = true
		return put(tx, bAssets, a.ID, a)
	})
	if err != nil {
		return fmt.Errorf("finalize asset %s: %w", assetID, err)
	}
	return nil
}

// AddVersionAsset implements hub.Repositories. added is false when the version already has an
// asset with that filename (whatever its content).
func (s *Store) AddVersionAsset(ctx context.Context, versionID, assetID, filename string, metadata json.RawMessage) (bool, error) {
	if err := hub.ValidFilename(filename); err != nil {
		return false, err
	}
	md, err := objectJSON("asset metadata", metadata, false)
	if err != nil {
		return false, err
	}
	added := false
	err = s.updateVersion(ctx, versionID, func(tx *bolt.Tx, v *versionRec) error {
		a, err := assetByID(tx, assetID)
		if err != nil {
			return err
		}
		if a.RepositoryID != v.RepositoryID {
			return hub.Errorf(hub.KindInvalid, "asset %s belongs to repository %s, not to the version's repository %s", a.ID, a.RepositoryID, v.RepositoryID)
		}
		for _, at := range v.Assets {
			if at.Filename == filename {
				return nil
			}
		}
		v.Assets = append(v.Assets, attachRec{Filename: filename, AssetID: a.ID, Metadata: md})
		a.RefCount++
		if err := put(tx, bAssets, a.ID, a); err != nil {
			return err
		}
		added = true
		return put(tx, bVersions, v.ID, v)
	})
	if err != nil {
		return false, fmt.Errorf("add asset %q to version %s: %w", filename, versionID, err)
	}
	return added, nil
}

// RemoveVersionAsset implements hub.Repositories.
func (s *Store) RemoveVersionAsset(ctx context.Context, versionID, filename string) error {
	err := s.updateVersion(ctx, versionID, func(tx *bolt.Tx, v *versionRec) error {
		for i, at := range v.Assets {
			if at.Filename == filename {
				v.Assets = append(v.Assets[:i], v.Assets[i+1:]...)
				if err := addRef(tx, at.AssetID, -1); err != nil {
					return err
				}
				return put(tx, bVersions, v.ID, v)
			}
		}
		return hub.Errorf(hub.KindInvalid, "version %s has no asset %q", v.ID, filename)
	})
	if err != nil {
		return fmt.Errorf("remove asset %q from version %s: %w", filename, versionID, err)
	}
	return nil
}

// SetVersionAssetMetadata implements hub.Repositories; the metadata is replaced.
func (s *Store) SetVersionAssetMetadata(ctx context.Context, versionID, filename string, metadata json.RawMessage) error {
	md, err := objectJSON("asset metadata", metadata, true)
	if err != nil {
		return err
	}
	err = s.updateVersion(ctx, versionID, func(tx *bolt.Tx, v *versionRec) error {
		for i := range v.Assets {
			if v.Assets[i].Filename == filename {
				v.Assets[i].Metadata = md
				return put(tx, bVersions, v.ID, v)
			}
		}
		return hub.Errorf(hub.KindInvalid, "version %s has no asset %q", v.ID, filename)
	})
	if err != nil {
		return fmt.Errorf("set metadata of asset %q on version %s: %w", filename, versionID, err)
	}
	return nil
}

// IssueAssetDownloadURL implements hub.Repositories. In process, the URL is a file:// URL of
// the blob; `otabake hub serve` issues signed HTTP URLs instead.
func (s *Store) IssueAssetDownloadURL(ctx context.Context, assetID, filename string) (string, error) {
	a, err := s.availableAsset(ctx, assetID)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: s.blobPath(a.Digest)}
	return u.String(), nil
}

// availableAsset returns an asset whose bytes can be served: an Available one, or a Dangling
// one whose object was uploaded through the compatibility URL. The Hub serves those: legacy
// clients (nexigon-cli before verified uploads, nexigon/meta-nexigon tests/conftest.py
// publish_v2) PUT to `url` and never finalize, and devices then download what they uploaded
// ("Objects uploaded through this URL remain dangling": nexigon/nexigon
// crates/libs/nexigon-api/schemas/repositories.sidex IssueAssetUploadUrlOutput). An asset
// with no object yet has nothing to serve.
func (s *Store) availableAsset(ctx context.Context, assetID string) (*assetRec, error) {
	a, err := s.asset(ctx, assetID)
	if err != nil {
		return nil, err
	}
	if a.Status != hub.AssetAvailable && !(a.Status == hub.AssetDangling && a.Uploaded) {
		return nil, hub.Errorf(hub.KindInvalid, "asset %s is %s and its object was never uploaded: upload it first", a.ID, a.Status)
	}
	return a, nil
}
