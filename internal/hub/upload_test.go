package hub_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/hubtest"
	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/hub/nexigon"
)

// fake starts a FakeHub (optionally behind faults) and a client for it.
func fake(t *testing.T, withFaults bool) (*hubtest.FakeHub, *hubtest.Faults, *nexigon.Client, string) {
	t.Helper()
	var faults *hubtest.Faults
	var wrap func(http.Handler) http.Handler
	if withFaults {
		wrap = func(h http.Handler) http.Handler { faults = hubtest.NewFaults(h); return faults }
	}
	f := hubtest.NewFakeHub(t, wrap)
	c, err := nexigon.New(f.URL, f.Token, nexigon.WithRetry(hub.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	repoID, found, err := c.ResolveRepository(context.Background(), f.Repository)
	if err != nil || !found {
		t.Fatalf("resolve: %v %v", found, err)
	}
	return f, faults, c, repoID
}

func file(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "artifact.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var fastRetry = hub.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond}

// TestUploadRefusesLegacyOnlyHub: a Hub that answers IssueAssetUploadUrl with only the legacy
// url is too old; nothing is sent to the unverified URL.
func TestUploadRefusesLegacyOnlyHub(t *testing.T) {
	f, _, c, repoID := fake(t, false)
	f.LegacyOnly = true
	_, err := hub.UploadFile(context.Background(), c, repoID, file(t, []byte("legacy bytes")), hub.UploadOptions{Retry: fastRetry})
	if !errors.Is(err, hub.ErrNoVerifiedUpload) || !strings.Contains(err.Error(), "older") {
		t.Fatalf("err = %v, want ErrNoVerifiedUpload saying the Hub is too old", err)
	}
	if f.Puts() != 0 {
		t.Errorf("%d PUTs to the legacy URL", f.Puts())
	}
}

func TestUploadRefusesUnverifiableURL(t *testing.T) {
	f, _, c, repoID := fake(t, false)
	f.DropIntegrityHeader = true
	_, err := hub.UploadFile(context.Background(), c, repoID, file(t, []byte("x")), hub.UploadOptions{Retry: fastRetry})
	if err == nil || !strings.Contains(err.Error(), "integrity header") {
		t.Fatalf("err = %v, want a missing integrity header error", err)
	}
	if f.Puts() != 0 {
		t.Errorf("%d PUTs to an unverifiable URL", f.Puts())
	}
}

func TestUploadFinalizesStoredDanglingAsset(t *testing.T) {
	f, _, c, repoID := fake(t, false)
	ctx := context.Background()
	data := []byte("stored before a crash")
	path := file(t, data)
	// A previous run stored the object and died before FinalizeAssetUpload.
	d, _, err := hub.DigestReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := c.CreateAsset(ctx, repoID, int64(len(data)), d)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.IssueAssetUploadURL(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, u.VerifiedURL, bytes.NewReader(data))
	for k, v := range u.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("manual PUT: %v %v", resp, err)
	}
	resp.Body.Close()

	res, err := hub.UploadFile(ctx, c, repoID, path, hub.UploadOptions{Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.Uploaded || res.AssetID != id || f.Puts() != 1 {
		t.Fatalf("result %+v after %d PUTs, want finalize only", res, f.Puts())
	}
	if d, _ := c.GetAssetDetails(ctx, id); d.Status != hub.AssetAvailable {
		t.Fatalf("asset %+v, want Available", d)
	}
}

func TestUploadDetectsChangedFile(t *testing.T) {
	_, _, c, repoID := fake(t, false)
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB: several progress calls
	path := file(t, data)
	changed := false
	opts := hub.UploadOptions{Retry: fastRetry, Progress: func(done, total int64) {
		if !changed {
			changed = true
			fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			fh.WriteString("appended while uploading")
			fh.Close()
		}
	}}
	_, err := hub.UploadFile(context.Background(), c, repoID, path, opts)
	if err == nil || !strings.Contains(err.Error(), "changed") || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want a changed-file error naming the file", err)
	}
}

func TestUploadErrors(t *testing.T) {
	ctx := context.Background()
	_, _, c, repoID := fake(t, false)
	if _, err := hub.UploadFile(ctx, c, repoID, t.TempDir(), hub.UploadOptions{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := hub.UploadFile(ctx, c, repoID, filepath.Join(t.TempDir(), "missing"), hub.UploadOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := hub.UploadFile(cctx, c, repoID, file(t, []byte("x")), hub.UploadOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := hub.UploadFile(ctx, c, "repo_unknown", file(t, []byte("x")), hub.UploadOptions{}); !hub.IsKind(err, hub.KindInvalid) {
		t.Errorf("unknown repository: %v", err)
	}
}

func TestUploadPutErrorHidesSignature(t *testing.T) {
	f, faults, c, repoID := fake(t, true)
	faults.Add(hubtest.Fault{Method: "PUT", Status: 403, Body: "<Error><Code>AccessDenied</Code></Error>"})
	_, err := hub.UploadFile(context.Background(), c, repoID, file(t, []byte("data")), hub.UploadOptions{Retry: fastRetry})
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("err = %v, want the 403 with the store's message", err)
	}
	if strings.Contains(err.Error(), "X-Amz") || strings.Contains(err.Error(), "?") {
		t.Errorf("error leaks the presigned query: %v", err)
	}
	if n := faults.Requests("PUT", ""); n != 1 || f.Puts() != 0 {
		t.Errorf("%d PUTs for a 403, want 1 (not retried)", n)
	}
}

func TestUploadEmptyFile(t *testing.T) {
	_, _, c, repoID := fake(t, false)
	res, err := hub.UploadFile(context.Background(), c, repoID, file(t, nil), hub.UploadOptions{Retry: fastRetry})
	if err != nil || res.Size != 0 || !res.Uploaded {
		t.Fatalf("empty file: %+v %v", res, err)
	}
}

// noBlobs hides the BlobStore of an in-process store, so that downloads go through its
// file:// URLs; wrongDigest lies about the asset's digest.
type noBlobs struct {
	hub.Hub
	wrongDigest bool
}

func (n noBlobs) GetAssetDetails(ctx context.Context, assetID string) (*hub.AssetDetails, error) {
	d, err := n.Hub.GetAssetDetails(ctx, assetID)
	if err == nil && n.wrongDigest {
		d.Digest = hub.Digest("sha256_" + strings.Repeat("0", 64))
	}
	return d, err
}

func TestDownload(t *testing.T) {
	ctx := context.Background()
	st, err := local.Open(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	repoID, _, err := st.Init(ctx, "r", "p")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("bytes served from a file URL")
	res, err := hub.UploadFile(ctx, st, repoID, file(t, data), hub.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		h       hub.Hub
		wantErr string
	}{
		{"blob store", st, ""},
		{"file URL", noBlobs{Hub: st}, ""},
		{"digest mismatch", noBlobs{Hub: st, wrongDigest: true}, "digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			n, err := hub.Download(ctx, tt.h, res.AssetID, &buf, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("n=%d err=%v body %q", n, err, buf.Bytes())
			}
		})
	}
	if _, err := hub.Download(ctx, st, "repo_a_missing", io.Discard, nil); err == nil || !strings.Contains(err.Error(), "repo_a_missing") {
		t.Errorf("missing asset: %v", err)
	}
}
