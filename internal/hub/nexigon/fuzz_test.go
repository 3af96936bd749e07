package nexigon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/hub"
)

// fixedResponse answers every request in process with one status and body, so the fuzzer
// exercises the client's whole response path without sockets.
type fixedResponse struct {
	status int
	body   []byte
}

func (f fixedResponse) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: f.status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(f.body)),
		Request:    r,
	}, nil
}

// FuzzDecodeActionResponse feeds untrusted Hub answers (any status, any body) to every
// decoding path of the client: tagged results, plain outputs and ActionError bodies. It must
// never panic, errors must name the action, and a non-2xx status must never be a success.
func FuzzDecodeActionResponse(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, `{"result":"Found","repositoryId":"repo_1","packageId":"pkg_1","versionId":"pkg_v_1","assetId":"repo_a_1"}`},
		{200, `{"result":"NotFound"}`},
		{200, `{"result":"Created","assetId":"repo_a_1","versionId":"pkg_v_1","packageId":"pkg_1"}`},
		{200, `{"result":"AssetAlreadyExists","assetId":"repo_a_1"}`},
		{200, `{"result":"FilenameAlreadyExists"}`},
		{200, `{"result":"VersionConflict","currentVersion":7}`},
		{200, `{"versionId":"pkg_v_1","assets":[{"filename":"a","size":1,"digest":"sha256_00","status":"Available"}],"tags":[{"tag":"t","locked":true}]}`},
		{200, `{"url":"https://x","verifiedUrl":"https://y","headers":{"if-none-match":"*"}}`},
		{200, `{"actor":{"actor":"Device","deviceId":"d_1"}}`},
		{200, `{"events":[{"eventId":"d_ev_1","severity":"Info","body":1,"attributes":{},"emittedAt":"2026-01-01T00:00:00Z"}]}`},
		{200, `{"versions":[{"versionId":"pkg_v_1","createdAt":"2026-01-01T00:00:00Z","tags":null}]}`},
		{200, `{"size":"12"}`},
		{200, ``},
		{400, `{"kind":"Invalid","message":"tag is locked"}`},
		{403, `{"kind":"Forbidden","message":"no"}`},
		{404, `<html>not found</html>`},
		{302, `{}`},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(probe)
}

func probe(t *testing.T, status int, body []byte) {
	{
		if status < 100 || status > 599 {
			return
		}
		c, err := New("http://hub.invalid", testToken,
			WithHTTPClient(&http.Client{Transport: fixedResponse{status, body}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}),
			WithRetry(hub.RetryPolicy{MaxAttempts: 1}))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		vp := hub.VersionPath{Repository: "r", Package: "p", Tag: "t"}
		calls := map[string]func() error{
			actResolveName:         func() error { _, _, err := c.ResolveRepository(ctx, "r"); return err },
			actResolveVersion:      func() error { _, _, err := c.ResolveVersion(ctx, vp); return err },
			actResolveVersionAsset: func() error { _, _, err := c.ResolveVersionAsset(ctx, vp, "f"); return err },
			actCreateAsset:         func() error { _, _, err := c.CreateAsset(ctx, "repo_1", 1, "sha256_00"); return err },
			actCreateVersion:       func() error { _, err := c.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: "pkg_1"}); return err },
			actGetVersionDetails:   func() error { _, err := c.GetVersionDetails(ctx, "pkg_v_1"); return err },
			actQueryVersions:       func() error { _, err := c.QueryVersions(ctx, "pkg_1"); return err },
			actGetAssetDetails:     func() error { _, err := c.GetAssetDetails(ctx, "repo_a_1"); return err },
			actIssueUploadURL:      func() error { _, err := c.IssueAssetUploadURL(ctx, "repo_a_1"); return err },
			actAddVersionAsset:     func() error { _, err := c.AddVersionAsset(ctx, "pkg_v_1", "repo_a_1", "f", nil); return err },
			actFinalizeUpload:      func() error { return c.FinalizeAssetUpload(ctx, "repo_a_1") },
			actGetActor:            func() error { _, err := c.GetActor(ctx); return err },
			actGetProperty:         func() error { _, _, err := c.GetProperty(ctx, "d_1", "n"); return err },
			actSetProperty:         func() error { return c.SetProperty(ctx, "d_1", "n", json.RawMessage(`1`)) },
			actRemoveProperty:      func() error { _, err := c.RemoveProperty(ctx, "d_1", "n"); return err },
			actQueryEvents:         func() error { _, err := c.QueryEvents(ctx, "d_1", 5); return err },
		}
		for action, call := range calls {
			err := call()
			if status < 200 || status > 299 {
				if err == nil {
					t.Fatalf("%s: HTTP %d accepted as success", action, status)
				}
			}
			if err == nil {
				continue
			}
			if !strings.Contains(err.Error(), action) {
				t.Fatalf("%s: error does not name the action: %v", action, err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("%s: error leaks the token", action)
			}
			var ae *hub.ActionError
			if errors.As(err, &ae) && (ae.Status != status || ae.Action != action) {
				t.Fatalf("%s: ActionError has status %d action %q", action, ae.Status, ae.Action)
			}
		}
	}
}
