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
	"github.com/otabake/otabake/internal/nexid"
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
// never panic, errors must name the action, a non-2xx status must never be a success, and a
// success must never hand on an ID that is not a whole ID of its field's kind.
func FuzzDecodeActionResponse(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, `{"result":"Found","repositoryId":"@repo","packageId":"@pkg","versionId":"@ver","assetId":"@asset"}`},
		{200, `{"result":"NotFound"}`},
		{200, `{"result":"Created","assetId":"@asset","versionId":"@ver","packageId":"@pkg"}`},
		{200, `{"result":"AssetAlreadyExists","assetId":"@asset"}`},
		{200, `{"result":"FilenameAlreadyExists"}`},
		{200, `{"result":"VersionConflict","currentVersion":7}`},
		{200, `{"versionId":"@ver","assets":[{"filename":"a","size":1,"digest":"sha256_00","status":"Available"}],"tags":[{"tag":"t","locked":true}]}`},
		{200, `{"versionId":"@ver","repositoryId":"@repo","packageId":"@pkg","assets":[{"filename":"a","assetId":"@asset","size":1,"digest":"sha256_00","status":"Available"}],"tags":[{"tag":"t","locked":true}]}`},
		{200, `{"assetId":"@asset","size":1,"digest":"sha256_00","status":"Available","referenceCount":0}`},
		{200, `{"url":"https://x","verifiedUrl":"https://y","headers":{"if-none-match":"*"}}`},
		{200, `{"actor":{"actor":"Device","deviceId":"@dev"}}`},
		{200, `{"actor":{"actor":"Device","deviceId":"@dev","tokenId":"@deptok"}}`},
		{200, `{"actor":{"actor":"UserToken","userId":"@user","tokenId":"@usertok"}}`},
		{200, `{"actor":{"actor":"OrganizationApiToken","organizationId":"@org","tokenId":"@orgtok"}}`},
		{200, `{"actor":{"actor":"User","userId":"@user","tokenId":"@usertok"}}`},
		// Wrong kinds, wrong lengths, a token where its ID belongs, a dated ID without a date.
		{200, `{"result":"Found","repositoryId":"@pkg","packageId":"@repo","versionId":"@asset","assetId":"@ver"}`},
		{200, `{"result":"Found","repositoryId":"@repoX","packageId":"@pk","versionId":"@ver","assetId":"@asset"}`},
		{200, `{"result":"Created","assetId":"repo_@asset","versionId":"@ver ","packageId":"pkg_v_@pkg"}`},
		{200, `{"actor":{"actor":"OrganizationApiToken","organizationId":"@org","tokenId":"` + testToken + `"}}`},
		{200, `{"events":[{"eventId":"d_ev_AbCdEfGhJkLmNpQrStUvWx","severity":"Info","body":1,"attributes":{},"emittedAt":"2026-01-01T00:00:00Z"}]}`},
		{200, `{"events":[{"eventId":"@ev","severity":"Info","body":1,"attributes":{},"emittedAt":"2026-01-01T00:00:00Z"}]}`},
		{200, `{"versions":[{"versionId":"@ver","createdAt":"2026-01-01T00:00:00Z","tags":null}]}`},
		{200, `{"size":"12"}`},
		{200, ``},
		{400, `{"kind":"Invalid","message":"tag is locked"}`},
		{403, `{"kind":"Forbidden","message":"no"}`},
		{404, `<html>not found</html>`},
		{302, `{}`},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(idJSON(s.body)))
	}
	f.Fuzz(probe)
}

// gotID is an ID a call returned and the kind it must have.
type gotID struct {
	kind nexid.Kind
	id   string
}

// when returns ids if the result carries them (found, created), else none.
func when(carries bool, ids ...gotID) []gotID {
	if !carries {
		return nil
	}
	return ids
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
		// Each call returns the IDs it hands to its caller, with the kind each must have.
		calls := map[string]func() ([]gotID, error){
			actResolveName: func() ([]gotID, error) {
				id, found, err := c.ResolveRepository(ctx, "r")
				return when(found, gotID{nexid.RepositoryID, id}), err
			},
			actResolvePackage: func() ([]gotID, error) {
				r, found, err := c.ResolvePackage(ctx, "r", "p")
				return when(found, gotID{nexid.RepositoryID, r.RepositoryID}, gotID{nexid.PackageID, r.PackageID}), err
			},
			actResolveVersion: func() ([]gotID, error) {
				r, found, err := c.ResolveVersion(ctx, vp)
				return when(found, gotID{nexid.RepositoryID, r.RepositoryID}, gotID{nexid.PackageID, r.PackageID}, gotID{nexid.PackageVersionID, r.VersionID}), err
			},
			actResolveVersionAsset: func() ([]gotID, error) {
				r, found, err := c.ResolveVersionAsset(ctx, vp, "f")
				return when(found, gotID{nexid.RepositoryID, r.RepositoryID}, gotID{nexid.PackageID, r.PackageID},
					gotID{nexid.PackageVersionID, r.VersionID}, gotID{nexid.RepositoryAssetID, r.AssetID}), err
			},
			actCreatePackage: func() ([]gotID, error) {
				id, existed, err := c.CreatePackage(ctx, idRepo, "p")
				return when(!existed, gotID{nexid.PackageID, id}), err
			},
			actCreateAsset: func() ([]gotID, error) {
				id, _, err := c.CreateAsset(ctx, idRepo, 1, "sha256_00")
				return when(true, gotID{nexid.RepositoryAssetID, id}), err
			},
			actCreateVersion: func() ([]gotID, error) {
				id, err := c.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: idPkg})
				return when(true, gotID{nexid.PackageVersionID, id}), err
			},
			actGetVersionDetails: func() ([]gotID, error) {
				d, err := c.GetVersionDetails(ctx, idVer)
				if err != nil {
					return nil, err
				}
				ids := []gotID{{nexid.PackageVersionID, d.VersionID}, {nexid.RepositoryID, d.RepositoryID}, {nexid.PackageID, d.PackageID}}
				for _, a := range d.Assets {
					ids = append(ids, gotID{nexid.RepositoryAssetID, a.AssetID})
				}
				return ids, nil
			},
			actQueryVersions: func() ([]gotID, error) {
				vs, err := c.QueryVersions(ctx, idPkg)
				var ids []gotID
				for _, v := range vs {
					ids = append(ids, gotID{nexid.PackageVersionID, v.VersionID})
				}
				return ids, err
			},
			actGetAssetDetails: func() ([]gotID, error) {
				d, err := c.GetAssetDetails(ctx, idAsset)
				if err != nil {
					return nil, err
				}
				return []gotID{{nexid.RepositoryAssetID, d.AssetID}}, nil
			},
			actIssueUploadURL: func() ([]gotID, error) { _, err := c.IssueAssetUploadURL(ctx, idAsset); return nil, err },
			actAddVersionAsset: func() ([]gotID, error) {
				_, err := c.AddVersionAsset(ctx, idVer, idAsset, "f", nil)
				return nil, err
			},
			actFinalizeUpload: func() ([]gotID, error) { return nil, c.FinalizeAssetUpload(ctx, idAsset) },
			actGetActor: func() ([]gotID, error) {
				a, err := c.GetActor(ctx)
				var ids []gotID
				for _, f := range []gotID{{nexid.DeviceID, a.DeviceID}, {nexid.UserID, a.UserID}, {nexid.OrganizationID, a.OrganizationID}} {
					if f.id != "" {
						ids = append(ids, f)
					}
				}
				switch a.Kind {
				case "Device":
					ids = append(ids, gotID{nexid.DeploymentTokenID, a.TokenID})
				case "UserToken":
					ids = append(ids, gotID{nexid.UserTokenID, a.TokenID})
				case "OrganizationApiToken":
					ids = append(ids, gotID{nexid.OrganizationAPITokenID, a.TokenID})
				default:
					if err == nil && a.TokenID != "" {
						t.Fatalf("%s: a %q actor with a token ID accepted", actGetActor, a.Kind)
					}
				}
				return ids, err
			},
			actGetProperty: func() ([]gotID, error) { _, _, err := c.GetProperty(ctx, idDev, "n"); return nil, err },
			actSetProperty: func() ([]gotID, error) { return nil, c.SetProperty(ctx, idDev, "n", json.RawMessage(`1`)) },
			actRemoveProperty: func() ([]gotID, error) {
				_, err := c.RemoveProperty(ctx, idDev, "n")
				return nil, err
			},
			actQueryEvents: func() ([]gotID, error) {
				evs, err := c.QueryEvents(ctx, idDev, 5)
				var ids []gotID
				for _, e := range evs {
					ids = append(ids, gotID{nexid.DeviceEventID, e.EventID})
				}
				return ids, err
			},
		}
		for action, call := range calls {
			ids, err := call()
			if status < 200 || status > 299 {
				if err == nil {
					t.Fatalf("%s: HTTP %d accepted as success", action, status)
				}
			}
			if err == nil {
				for _, id := range ids {
					if err := id.kind.Check(id.id); err != nil {
						t.Fatalf("%s: success hands on a malformed ID: %v", action, err)
					}
				}
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
