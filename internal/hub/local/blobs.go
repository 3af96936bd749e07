package local

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/ctxio"
	"github.com/otabake/otabake/internal/hub"
)

// ErrObjectExists is returned by WriteBlob when the asset already received its bytes; an HTTP
// upload with If-None-Match: * answers it with 412 Precondition Failed.
var ErrObjectExists = errors.New("the asset's object already exists")

// copyBufSize is large enough that per-call overhead vanishes next to hashing.
const copyBufSize = 1 << 20

// blobPath is where the content with digest d lives: blobs/<alg>/<xx>/<hex>.
func (s *Store) blobPath(d hub.Digest) string {
	hx := d.Hex()
	return filepath.Join(s.dir, "blobs", d.Algorithm(), hx[:2], hx)
}

// haveBlob reports whether the blob store holds content with digest d and the given size.
func (s *Store) haveBlob(d hub.Digest, size int64) (bool, error) {
	fi, err := os.Stat(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blob store: %w", err)
	}
	return fi.Mode().IsRegular() && fi.Size() == size, nil
}

func newHash(d hub.Digest) (hash.Hash, error) {
	switch d.Algorithm() {
	case "sha256":
		return sha256.New(), nil
	case "sha512_256":
		return sha512.New512_256(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("digest %s: unsupported algorithm", d)
}

// digestOf formats a finished hash in the same algorithm as want.
func digestOf(want hub.Digest, h hash.Hash) hub.Digest {
	return hub.Digest(fmt.Sprintf("%s_%x", want.Algorithm(), h.Sum(nil)))
}

// createBlob creates the temporary file that becomes the blob of d when committed.
func (s *Store) createBlob(d hub.Digest) (*tempBlob, error) {
	dst := s.blobPath(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	f, err := createTempBlob(dst)
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return f, nil
}

// WriteBlob receives the bytes of a Dangling asset: it streams them to a temporary file in the
// blob store while hashing, checks size and digest, and only then moves them into place and
// records the asset as uploaded. The asset stays Dangling until FinalizeAssetUpload, as with
// the Hub's verified upload URLs. It returns ErrObjectExists when the asset already has its
// bytes.
func (s *Store) WriteBlob(ctx context.Context, assetID string, r io.Reader, size int64) error {
	a, err := s.asset(ctx, assetID)
	if err != nil {
		return err
	}
	if a.hasBytes() {
		return fmt.Errorf("upload asset %s: %w", a.ID, ErrObjectExists)
	}
	if err := s.receive(ctx, a, r, size); err != nil {
		return err
	}
	return s.markAsset(ctx, a.ID, false)
}

// receive stores verified content for a, unless the blob store already holds it, in which
// case r is still read and checked so that a bad upload is always refused.
func (s *Store) receive(ctx context.Context, a *assetRec, r io.Reader, size int64) error {
	if size != a.Size {
		return hub.Errorf(hub.KindInvalid, "upload asset %s: got %d bytes, want %d", a.ID, size, a.Size)
	}
	h, err := newHash(a.Digest)
	if err != nil {
		return err
	}
	have, err := s.haveBlob(a.Digest, a.Size)
	if err != nil {
		return err
	}
	src := io.LimitReader(ctxio.Reader(ctx, r), size+1)
	buf := make([]byte, copyBufSize)
	if have {
		n, err := io.CopyBuffer(h, src, buf)
		if err != nil {
			return fmt.Errorf("upload asset %s: read: %w", a.ID, err)
		}
		return verify(a, n, h)
	}
	f, err := s.createBlob(a.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), src, buf)
	if err != nil {
		return fmt.Errorf("upload asset %s: after %d bytes: %w", a.ID, n, err)
	}
	if err := verify(a, n, h); err != nil {
		return err
	}
	return f.Commit()
}

func verify(a *assetRec, n int64, h hash.Hash) error {
	if n != a.Size {
		return hub.Errorf(hub.KindInvalid, "upload asset %s: got %d bytes or more, want %d", a.ID, n, a.Size)
	}
	if got := digestOf(a.Digest, h); got != a.Digest {
		return hub.Errorf(hub.KindInvalid, "upload asset %s: content digest %s does not match the asset's %s", a.ID, got, a.Digest)
	}
	return nil
}

// markAsset records that the asset's bytes are stored, and makes it Available if finalize.
func (s *Store) markAsset(ctx context.Context, assetID string, finalize bool) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		a, err := assetByID(tx, assetID)
		if err != nil {
			return err
		}
		a.Uploaded = true
		if finalize {
			a.Status = hub.AssetAvailable
		}
		return put(tx, bAssets, a.ID, a)
	})
}

// PutBlob implements hub.BlobStore: it stores and verifies the bytes of an asset and makes it
// Available. An asset that is already Available is left alone (r is not read).
func (s *Store) PutBlob(ctx context.Context, assetID string, r io.Reader, size int64) error {
	a, err := s.asset(ctx, assetID)
	if err != nil {
		return err
	}
	if a.Status == hub.AssetAvailable {
		return nil
	}
	if err := s.receive(ctx, a, r, size); err != nil {
		return err
	}
	return s.markAsset(ctx, a.ID, true)
}

// PutBlobFile implements hub.BlobStore. It clones the file into the blob store when the file
// system supports reflinks and otherwise copies it in one pass; either way the stored bytes are
// hashed and checked before the asset becomes Available. Content the blob store already holds
// (it was verified when stored) is not copied or hashed again.
func (s *Store) PutBlobFile(ctx context.Context, assetID, path string) error {
	a, err := s.asset(ctx, assetID)
	if err != nil {
		return err
	}
	if a.Status == hub.AssetAvailable {
		return nil
	}
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("upload asset %s: %w", a.ID, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("upload asset %s: %w", a.ID, err)
	}
	if fi.Size() != a.Size {
		return hub.Errorf(hub.KindInvalid, "upload asset %s from %s: file has %d bytes, want %d", a.ID, path, fi.Size(), a.Size)
	}
	have, err := s.haveBlob(a.Digest, a.Size)
	if err != nil {
		return err
	}
	if !have {
		if err := s.cloneOrCopy(ctx, a, src, path); err != nil {
			return err
		}
	}
	return s.markAsset(ctx, a.ID, true)
}

func (s *Store) cloneOrCopy(ctx context.Context, a *assetRec, src *os.File, path string) error {
	h, err := newHash(a.Digest)
	if err != nil {
		return err
	}
	f, err := s.createBlob(a.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, copyBufSize)
	var n int64
	if unix.IoctlFileClone(int(f.Fd()), int(src.Fd())) == nil {
		// Hash the clone, not the source: it is what the store will serve.
		n, err = io.CopyBuffer(h, ctxio.Reader(ctx, f.File), buf)
	} else {
		n, err = io.CopyBuffer(io.MultiWriter(f, h), ctxio.Reader(ctx, io.LimitReader(src, a.Size+1)), buf)
	}
	if err != nil {
		return fmt.Errorf("upload asset %s from %s: %w", a.ID, path, err)
	}
	if err := verify(a, n, h); err != nil {
		return fmt.Errorf("%s changed after it was hashed: %w", path, err)
	}
	return f.Commit()
}

// OpenBlob implements hub.BlobStore.
func (s *Store) OpenBlob(ctx context.Context, assetID string) (io.ReadSeekCloser, int64, error) {
	a, err := s.availableAsset(ctx, assetID)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.blobPath(a.Digest))
	if err != nil {
		return nil, 0, fmt.Errorf("open asset %s: %w", a.ID, err)
	}
	return f, a.Size, nil
}
