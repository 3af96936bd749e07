package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
)

// blobPrefix is where presigned blob URLs point; the asset ID follows.
const blobPrefix = "/api/v1/blobs/"

// URL operations. A signature covers the operation, so an upload URL cannot download and a
// compatibility upload URL cannot be used without its headers being checked the other way.
const (
	opPut       = "put"  // verified upload: every header of IssueAssetUploadUrl is required
	opPutCompat = "putc" // legacy upload without verification headers
	opGet       = "get"
)

// Upload headers the Hub issues for verified uploads (spec §2.4).
const (
	hdrAssetID     = "x-amz-meta-nexigon-asset-id"
	hdrDigest      = "x-amz-meta-nexigon-digest"
	hdrIfNoneMatch = "if-none-match"
	hdrContentSHA  = "x-amz-content-sha256"
)

// sign returns the URL signature of an operation on an asset until exp.
func (s *server) sign(op, assetID, filename string, exp int64) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(op + "\n" + assetID + "\n" + strconv.FormatInt(exp, 10) + "\n" + filename))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// signedURL returns BaseURL/api/v1/blobs/<asset>?op=…&exp=…[&filename=…]&sig=….
func (s *server) signedURL(ctx context.Context, op, assetID, filename string) string {
	// Millisecond expiry, so that even a tiny TTL expires promptly.
	exp := s.now().Add(s.ttl).UnixMilli()
	q := url.Values{}
	q.Set("op", op)
	q.Set("exp", strconv.FormatInt(exp, 10))
	if filename != "" {
		q.Set("filename", filename)
	}
	q.Set("sig", s.sign(op, assetID, filename, exp))
	base := s.baseURL
	if b, ok := ctx.Value(baseURLKey{}).(string); ok {
		base = b
	}
	return base + blobPrefix + url.PathEscape(assetID) + "?" + q.Encode()
}

// checkSignature reports whether r carries a valid, unexpired signature for op on assetID.
func (s *server) checkSignature(r *http.Request, assetID string, ops ...string) (op string, ok bool) {
	q := r.URL.Query()
	op = q.Get("op")
	allowed := false
	for _, o := range ops {
		allowed = allowed || o == op
	}
	exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if !allowed || err != nil || s.now().UnixMilli() >= exp {
		return op, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(q.Get("sig"))
	if err != nil {
		return op, false
	}
	want, _ := base64.RawURLEncoding.DecodeString(s.sign(op, assetID, q.Get("filename"), exp))
	return op, hmac.Equal(sig, want)
}

func (s *server) issueUploadURL(ctx context.Context, assetID string) (*hub.UploadURL, error) {
	a, err := s.store.GetAssetDetails(ctx, assetID)
	if err != nil {
		return nil, err
	}
	h := map[string]string{
		hdrAssetID:     a.AssetID,
		hdrDigest:      string(a.Digest),
		hdrIfNoneMatch: "*",
		hdrContentSHA:  "UNSIGNED-PAYLOAD",
	}
	if a.Digest.Algorithm() == "sha256" {
		h[hdrContentSHA] = a.Digest.Hex()
	}
	return &hub.UploadURL{
		URL:         s.signedURL(ctx, opPutCompat, a.AssetID, ""),
		VerifiedURL: s.signedURL(ctx, opPut, a.AssetID, ""),
		Headers:     h,
	}, nil
}

func (s *server) issueDownloadURL(ctx context.Context, assetID, filename string) (string, error) {
	if filename != "" {
		if err := hub.ValidFilename(filename); err != nil {
			return "", err
		}
	}
	// Served when its object exists, finalized or not, as the Hub serves legacy uploads
	// (see local.Store.availableAsset).
	up, err := s.store.AssetUploaded(ctx, assetID)
	if err != nil {
		return "", err
	}
	if !up {
		return "", hub.Errorf(hub.KindInvalid, "asset %s has no uploaded object yet: upload it first", assetID)
	}
	return s.signedURL(ctx, opGet, assetID, filename), nil
}

var errForbiddenURL = hub.Errorf(hub.KindForbidden, "invalid or expired URL signature")

func (s *server) handleBlob(w http.ResponseWriter, r *http.Request) {
	assetID := r.PathValue("asset")
	switch r.Method {
	case http.MethodPut:
		op, ok := s.checkSignature(r, assetID, opPut, opPutCompat)
		if !ok {
			writeError(w, http.StatusForbidden, errForbiddenURL)
			return
		}
		s.handlePut(w, r, assetID, op == opPut)
	case http.MethodGet, http.MethodHead:
		if _, ok := s.checkSignature(r, assetID, opGet); !ok {
			writeError(w, http.StatusForbidden, errForbiddenURL)
			return
		}
		s.handleGet(w, r, assetID)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeError(w, http.StatusMethodNotAllowed, hub.Errorf(hub.KindInvalid, "blob URLs take GET, HEAD or PUT, not %s", r.Method))
	}
}

// handlePut receives an upload like a presigned S3 PUT would: the length and (for verified
// URLs) every issued header must match, an existing object is never overwritten, and the bytes
// are hashed while they stream to a temporary blob before anything is kept.
func (s *server) handlePut(w http.ResponseWriter, r *http.Request, assetID string, verified bool) {
	ctx := r.Context()
	a, err := s.store.GetAssetDetails(ctx, assetID)
	if err != nil {
		s.writeActionError(w, "upload", err)
		return
	}
	if r.ContentLength < 0 {
		writeError(w, http.StatusLengthRequired, hub.Errorf(hub.KindInvalid, "upload of asset %s needs a Content-Length", assetID))
		return
	}
	if r.ContentLength != a.Size {
		writeError(w, http.StatusBadRequest, hub.Errorf(hub.KindInvalid, "upload of asset %s: Content-Length is %d, the asset has %d bytes", assetID, r.ContentLength, a.Size))
		return
	}
	if verified {
		want := map[string]string{hdrAssetID: a.AssetID, hdrDigest: string(a.Digest), hdrIfNoneMatch: "*"}
		if a.Digest.Algorithm() == "sha256" {
			want[hdrContentSHA] = a.Digest.Hex()
		}
		for k, v := range want {
			if got := r.Header.Get(k); got != v {
				writeError(w, http.StatusBadRequest, hub.Errorf(hub.KindInvalid, "upload of asset %s: header %s is %q, want %q", assetID, k, got, v))
				return
			}
		}
	}
	if r.Header.Get(hdrIfNoneMatch) == "*" {
		exists, err := s.store.AssetUploaded(ctx, assetID)
		if err != nil {
			s.writeActionError(w, "upload", err)
			return
		}
		if exists {
			writeError(w, http.StatusPreconditionFailed, hub.Errorf(hub.KindInvalid, "asset %s already has its object; it is not overwritten", assetID))
			return
		}
	}
	err = s.store.WriteBlob(ctx, assetID, r.Body, r.ContentLength)
	switch {
	case errors.Is(err, local.ErrObjectExists):
		if r.Header.Get(hdrIfNoneMatch) == "*" {
			writeError(w, http.StatusPreconditionFailed, hub.Errorf(hub.KindInvalid, "asset %s already has its object; it is not overwritten", assetID))
			return
		}
		// Without If-None-Match, S3 would overwrite; the content is content-addressed and
		// already verified, so accepting it unchanged is the same result.
		w.WriteHeader(http.StatusOK)
	case err != nil:
		s.writeActionError(w, "upload", err)
	default:
		w.Header().Set("ETag", `"`+a.Digest.Hex()+`"`)
		w.WriteHeader(http.StatusOK)
	}
}

// handleGet serves an asset's bytes with Range support (rugix-ctrl probes with bytes=0-0).
func (s *server) handleGet(w http.ResponseWriter, r *http.Request, assetID string) {
	f, _, err := s.store.OpenBlob(r.Context(), assetID)
	if err != nil {
		var ae *hub.ActionError
		if errors.As(err, &ae) {
			writeError(w, http.StatusNotFound, &hub.ActionError{Kind: ae.Kind, Message: ae.Message})
			return
		}
		s.writeActionError(w, "download", err)
		return
	}
	defer f.Close()
	a, err := s.store.GetAssetDetails(r.Context(), assetID)
	if err != nil {
		s.writeActionError(w, "download", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+a.Digest.Hex()+`"`)
	h.Set("Cache-Control", "private, max-age=0")
	if fn := r.URL.Query().Get("filename"); fn != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(fn)}))
	}
	http.ServeContent(w, r, "", time.Time{}, f)
}
