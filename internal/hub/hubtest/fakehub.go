package hubtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// FakeHub is an in-memory Nexigon Hub for tests of the upload path: an actions API handler
// for the asset and version actions, and an S3-like object store behind presigned URLs that
// demands what a real bucket demands of a verified upload (x-amz-meta-nexigon-asset-id,
// x-amz-meta-nexigon-digest, If-None-Match: *, x-amz-content-sha256, an exact Content-Length)
// and answers like S3 (412 for an existing object, 400 for a checksum mismatch, 403 for a bad
// or expired signature). Other actions answer Invalid.
type FakeHub struct {
	// URL is the base of the actions API; Token is the bearer token it accepts.
	URL   string
	Token string
	// Repository and Package are the names of the one repository and package.
	Repository, Package string

	// LegacyOnly makes IssueAssetUploadUrl return only the unverified compatibility url, as
	// Hubs before July 2026 did. DropIntegrityHeader leaves out x-amz-content-sha256.
	LegacyOnly          bool
	DropIntegrityHeader bool

	key    []byte
	mu     sync.Mutex
	assets map[string]*fakeAsset // by ID
	digest map[hub.Digest]string // digest → asset ID
	vers   map[string]*hub.VersionDetails
	puts   int
	repoID string
	pkgID  string
}

type fakeAsset struct {
	details  hub.AssetDetails
	object   []byte
	verified bool // stored through the verified URL with matching checksum headers
	stored   bool
}

// NewFakeHub starts a FakeHub on a loopback httptest server that is closed with the test.
// wrap, if not nil, wraps the handler (for fault injection).
func NewFakeHub(t testing.TB, wrap func(http.Handler) http.Handler) *FakeHub {
	f := &FakeHub{
		Token:      nexid.OrganizationAPIToken.New(),
		Repository: "fake-repo",
		Package:    "fake-pkg",
		assets:     map[string]*fakeAsset{},
		digest:     map[hub.Digest]string{},
		vers:       map[string]*hub.VersionDetails{},
		key:        make([]byte, 32),
	}
	rand.Read(f.key)
	f.repoID, f.pkgID = f.id(nexid.RepositoryID), f.id(nexid.PackageID)
	var h http.Handler = f
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Puts returns how many PUT requests reached the object store.
func (f *FakeHub) Puts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}

// id makes a fresh ID of a kind; the caller holds mu or is the constructor.
func (f *FakeHub) id(k nexid.Kind) string {
	return k.New()
}

// ServeHTTP implements http.Handler.
func (f *FakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if action, ok := strings.CutPrefix(r.URL.Path, "/api/v1/actions/invoke/"); ok {
		f.serveAction(w, r, action)
		return
	}
	if assetID, ok := strings.CutPrefix(r.URL.Path, "/bucket/"); ok {
		f.serveObject(w, r, assetID)
		return
	}
	http.NotFound(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *FakeHub) serveAction(w http.ResponseWriter, r *http.Request, action string) {
	if r.Method != http.MethodPost {
		writeJSON(w, 405, hub.Errorf(hub.KindInvalid, "POST only"))
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.Token {
		writeJSON(w, 403, hub.Errorf(hub.KindForbidden, "invalid token"))
		return
	}
	var in struct {
		Repository   string          `json:"repository"`
		Package      string          `json:"package"`
		RepositoryID string          `json:"repositoryId"`
		PackageID    string          `json:"packageId"`
		VersionID    string          `json:"versionId"`
		AssetID      string          `json:"assetId"`
		Filename     string          `json:"filename"`
		Size         int64           `json:"size"`
		Digest       hub.Digest      `json:"digest"`
		Name         string          `json:"name"`
		Metadata     json.RawMessage `json:"metadata"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&in); err != nil {
		writeJSON(w, 400, hub.Errorf(hub.KindInvalid, "%s: bad input: %v", action, err))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out, err := f.act(action, in.Repository, in.Package, in.RepositoryID, in.PackageID, in.VersionID, in.AssetID, in.Filename, in.Name, in.Size, in.Digest, in.Metadata)
	if err != nil {
		writeJSON(w, 400, err)
		return
	}
	writeJSON(w, 200, out)
}

type obj = map[string]any

func (f *FakeHub) act(action, repo, pkg, repoID, pkgID, versionID, assetID, filename, name string, size int64, digest hub.Digest, metadata json.RawMessage) (any, *hub.ActionError) {
	switch action {
	case "repositories_ResolveName":
		if repo == f.Repository || repo == f.repoID {
			return obj{"result": "Found", "repositoryId": f.repoID}, nil
		}
		return obj{"result": "NotFound"}, nil
	case "repositories_ResolvePackageByPath":
		if (repo == f.Repository || repo == f.repoID) && (pkg == f.Package || pkg == f.pkgID) {
			return obj{"result": "Found", "repositoryId": f.repoID, "packageId": f.pkgID}, nil
		}
		return obj{"result": "NotFound"}, nil
	case "repositories_CreateVersion":
		if pkgID != f.pkgID {
			return nil, hub.Errorf(hub.KindInvalid, "package %q not found", pkgID)
		}
		id := f.id(nexid.PackageVersionID)
		f.vers[id] = &hub.VersionDetails{VersionID: id, RepositoryID: f.repoID, PackageID: f.pkgID, Name: name,
			Assets: []hub.VersionAsset{}, Tags: []hub.VersionTag{}, Metadata: metadata}
		return obj{"result": "Created", "versionId": id}, nil
	case "repositories_GetVersionDetails":
		v, ok := f.vers[versionID]
		if !ok {
			return nil, hub.Errorf(hub.KindInvalid, "version %q not found", versionID)
		}
		return v, nil
	case "repositories_AddVersionAsset":
		v, ok := f.vers[versionID]
		a, aok := f.assets[assetID]
		if !ok || !aok {
			return nil, hub.Errorf(hub.KindInvalid, "version %q or asset %q not found", versionID, assetID)
		}
		if err := hub.ValidFilename(filename); err != nil {
			if ae, ok := err.(*hub.ActionError); ok {
				return nil, ae
			}
			return nil, hub.Errorf(hub.KindInvalid, "%v", err)
		}
		if _, taken := v.Asset(filename); taken {
			return obj{"result": "FilenameAlreadyExists"}, nil
		}
		v.Assets = append(v.Assets, hub.VersionAsset{Filename: filename, AssetID: assetID, Size: a.details.Size,
			Digest: a.details.Digest, Status: a.details.Status, Metadata: metadata})
		return obj{"result": "Added"}, nil
	case "repositories_CreateAsset":
		if repoID != f.repoID {
			return nil, hub.Errorf(hub.KindInvalid, "repository %q not found", repoID)
		}
		d, err := hub.ParseDigest(string(digest))
		if err != nil || size < 0 {
			return nil, hub.Errorf(hub.KindInvalid, "bad size or digest")
		}
		if id, ok := f.digest[d]; ok {
			return obj{"result": "AssetAlreadyExists", "assetId": id}, nil
		}
		id := f.id(nexid.RepositoryAssetID)
		f.assets[id] = &fakeAsset{details: hub.AssetDetails{AssetID: id, Size: size, Digest: d, Status: hub.AssetDangling}}
		f.digest[d] = id
		return obj{"result": "Created", "assetId": id}, nil
	case "repositories_GetAssetDetails":
		a, ok := f.assets[assetID]
		if !ok {
			return nil, hub.Errorf(hub.KindInvalid, "asset %q not found", assetID)
		}
		return a.details, nil
	case "repositories_IssueAssetUploadUrl":
		a, ok := f.assets[assetID]
		if !ok {
			return nil, hub.Errorf(hub.KindInvalid, "asset %q not found", assetID)
		}
		out := obj{"url": f.presign("PUT-COMPAT", assetID, time.Hour)}
		if !f.LegacyOnly {
			out["verifiedUrl"] = f.presign("PUT", assetID, time.Hour)
			h := map[string]string{
				"x-amz-meta-nexigon-asset-id": assetID,
				"x-amz-meta-nexigon-digest":   string(a.details.Digest),
				"if-none-match":               "*",
			}
			if !f.DropIntegrityHeader {
				h["x-amz-content-sha256"] = a.details.Digest.Hex()
			}
			out["headers"] = h
		}
		return out, nil
	case "repositories_FinalizeAssetUpload":
		a, ok := f.assets[assetID]
		if !ok {
			return nil, hub.Errorf(hub.KindInvalid, "asset %q not found", assetID)
		}
		if a.details.Status == hub.AssetAvailable {
			return obj{}, nil
		}
		if !a.stored {
			return nil, hub.Errorf(hub.KindInvalid, "uploaded object is missing")
		}
		if !a.verified {
			return nil, hub.Errorf(hub.KindInvalid, "uploaded object has no verifiable checksum")
		}
		a.details.Status = hub.AssetAvailable
		for _, v := range f.vers {
			for i := range v.Assets {
				if v.Assets[i].AssetID == assetID {
					v.Assets[i].Status = hub.AssetAvailable
				}
			}
		}
		return obj{}, nil
	case "repositories_IssueAssetDownloadUrl":
		a, ok := f.assets[assetID]
		if !ok || !a.stored {
			return nil, hub.Errorf(hub.KindInvalid, "asset %q has no object", assetID)
		}
		return obj{"url": f.presign("GET", assetID, time.Hour)}, nil
	}
	return nil, hub.Errorf(hub.KindInvalid, "unknown action %q", action)
}

func (f *FakeHub) signature(op, assetID string, expires int64) string {
	m := hmac.New(sha256.New, f.key)
	fmt.Fprintf(m, "%s\n%s\n%d", op, assetID, expires)
	return hex.EncodeToString(m.Sum(nil))
}

// presign returns an S3-style presigned URL for op on an asset, valid for ttl.
func (f *FakeHub) presign(op, assetID string, ttl time.Duration) string {
	exp := time.Now().Add(ttl).Unix()
	q := url.Values{"X-Amz-Op": {op}, "X-Amz-Expires": {strconv.FormatInt(exp, 10)}, "X-Amz-Signature": {f.signature(op, assetID, exp)}}
	return f.URL + "/bucket/" + assetID + "?" + q.Encode()
}

// PresignExpired returns a correctly signed download URL that expired a minute ago.
func (f *FakeHub) PresignExpired(assetID string) string {
	return f.presign("GET", assetID, -time.Minute)
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}

func (f *FakeHub) serveObject(w http.ResponseWriter, r *http.Request, assetID string) {
	q := r.URL.Query()
	op := q.Get("X-Amz-Op")
	exp, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || !hmac.Equal([]byte(q.Get("X-Amz-Signature")), []byte(f.signature(op, assetID, exp))) {
		s3Error(w, 403, "SignatureDoesNotMatch", "bad signature")
		return
	}
	if time.Now().Unix() > exp {
		s3Error(w, 403, "AccessDenied", "Request has expired")
		return
	}
	switch {
	case r.Method == http.MethodPut && (op == "PUT" || op == "PUT-COMPAT"):
		f.mu.Lock()
		f.puts++
		f.mu.Unlock()
		f.put(w, r, assetID, op == "PUT")
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && op == "GET":
		f.mu.Lock()
		a := f.assets[assetID]
		var data []byte
		if a != nil && a.stored {
			data = a.object
		}
		f.mu.Unlock()
		if data == nil {
			s3Error(w, 404, "NoSuchKey", "no object")
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	default:
		s3Error(w, 403, "AccessDenied", "method does not match the signature")
	}
}

func (f *FakeHub) put(w http.ResponseWriter, r *http.Request, assetID string, verified bool) {
	f.mu.Lock()
	a, ok := f.assets[assetID]
	var want hub.AssetDetails
	var exists bool
	if ok {
		want, exists = a.details, a.stored
	}
	f.mu.Unlock()
	if !ok {
		s3Error(w, 403, "AccessDenied", "unknown asset")
		return
	}
	if verified {
		for k, v := range map[string]string{
			"x-amz-meta-nexigon-asset-id": assetID,
			"x-amz-meta-nexigon-digest":   string(want.Digest),
			"if-none-match":               "*",
			"x-amz-content-sha256":        want.Digest.Hex(),
		} {
			if got := r.Header.Get(k); got != v && !(k == "x-amz-content-sha256" && f.DropIntegrityHeader) {
				s3Error(w, 403, "SignatureDoesNotMatch", fmt.Sprintf("signed header %s is %q", k, got))
				return
			}
		}
	}
	if r.ContentLength != want.Size {
		s3Error(w, 400, "IncompleteBody", fmt.Sprintf("Content-Length %d, want %d", r.ContentLength, want.Size))
		return
	}
	if exists && r.Header.Get("If-None-Match") == "*" {
		s3Error(w, 412, "PreconditionFailed", "object exists")
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, want.Size+1))
	if err != nil || int64(len(data)) != want.Size {
		s3Error(w, 400, "IncompleteBody", "short body")
		return
	}
	sum := sha256.Sum256(data)
	if c := r.Header.Get("x-amz-content-sha256"); verified && c != "" && c != hex.EncodeToString(sum[:]) {
		s3Error(w, 400, "XAmzContentSHA256Mismatch", "checksum mismatch")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.stored && r.Header.Get("If-None-Match") == "*" {
		s3Error(w, 412, "PreconditionFailed", "object exists")
		return
	}
	a.object, a.stored = data, true
	a.verified = verified && hub.SHA256Digest(sum[:]) == want.Digest
	w.WriteHeader(http.StatusOK)
}
