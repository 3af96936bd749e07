package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
)

// testToken is an organization API token of the right form (org_sk_ + 66 base-58).
const testToken = "org_sk_Z1pR6bpzQvH6Kauo4TLcBK8PGgUKbXW6jEKsrCLLPNYKqXGCLrE7P3xtYAX9rT7bfT"

type env struct {
	t      *testing.T
	srv    *server
	ts     *httptest.Server
	store  *local.Store
	repoID string
	pkgID  string
	clock  time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store, err := local.Open(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	repoID, pkgID, err := store.Init(context.Background(), "repo", "pkg")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Start()
	t.Cleanup(ts.Close)
	srv, err := newServer(Config{Store: store, Token: testToken, BaseURL: ts.URL, URLTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, ts: ts, store: store, repoID: repoID, pkgID: pkgID, clock: time.Now()}
	srv.now = func() time.Time { return e.clock }
	ts.Config.Handler = srv.routes()
	return e
}

// call invokes an action with the test token and returns the status and the raw body.
func (e *env) call(action string, in any) (int, []byte) {
	e.t.Helper()
	var body io.Reader
	switch v := in.(type) {
	case string:
		body = strings.NewReader(v)
	default:
		b, err := json.Marshal(in)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/api/v1/actions/invoke/"+action, body)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, []byte) {
	e.t.Helper()
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// ok invokes an action that must succeed and decodes its output into a map.
func (e *env) ok(action string, in any) map[string]any {
	e.t.Helper()
	status, b := e.call(action, in)
	if status != http.StatusOK {
		e.t.Fatalf("%s: status %d: %s", action, status, b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		e.t.Fatalf("%s: output %s: %v", action, b, err)
	}
	return out
}

// fails invokes an action that must fail with kind and a message containing want.
func (e *env) fails(action string, in any, status int, kind hub.ErrorKind, want string) {
	e.t.Helper()
	got, b := e.call(action, in)
	checkError(e.t, got, b, status, kind, want)
}

func checkError(t *testing.T, status int, body []byte, wantStatus int, kind hub.ErrorKind, want string) {
	t.Helper()
	var ae hub.ActionError
	if err := json.Unmarshal(body, &ae); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if status != wantStatus || ae.Kind != kind || !strings.Contains(ae.Message, want) {
		t.Fatalf("got %d %+v, want %d %s containing %q", status, ae, wantStatus, kind, want)
	}
}

func TestNewConfig(t *testing.T) {
	store, err := local.Open(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{Token: "t", BaseURL: "http://127.0.0.1:1"},
		{Store: store, BaseURL: "http://127.0.0.1:1"},
		{Store: store, Token: "t", BaseURL: "127.0.0.1:1"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestAuthAndRouting(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name   string
		method string
		path   string
		auth   string
		status int
		kind   hub.ErrorKind
		want   string
	}{
		{"no token", "POST", "/api/v1/actions/invoke/actor_GetActor", "", 403, hub.KindForbidden, "bearer token"},
		{"wrong token", "POST", "/api/v1/actions/invoke/actor_GetActor", "Bearer org_sk_wrong", 403, hub.KindForbidden, "bearer token"},
		{"token without Bearer", "POST", "/api/v1/actions/invoke/actor_GetActor", testToken, 403, hub.KindForbidden, "bearer token"},
		{"token prefix", "POST", "/api/v1/actions/invoke/actor_GetActor", "Bearer " + testToken[:len(testToken)-1], 403, hub.KindForbidden, "bearer token"},
		{"unknown action", "POST", "/api/v1/actions/invoke/repositories_Nope", "Bearer " + testToken, 404, hub.KindInvalid, `unknown action "repositories_Nope"`},
		{"GET", "GET", "/api/v1/actions/invoke/actor_GetActor", "Bearer " + testToken, 405, hub.KindInvalid, "POST"},
		{"other path", "GET", "/nope", "", 404, hub.KindInvalid, "no such endpoint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.ts.URL+tt.path, strings.NewReader("{}"))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			status, body := e.do(req)
			checkError(t, status, body, tt.status, tt.kind, tt.want)
		})
	}
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/api/v1/actions/invoke/actor_GetActor", nil)
	req.Header.Set("Authorization", "bearer "+testToken)
	if status, b := e.do(req); status != 200 {
		t.Errorf("lowercase bearer scheme = %d %s", status, b)
	}
	out := e.ok("actor_GetActor", "")
	if a, _ := out["actor"].(map[string]any); a["actor"] != "OrganizationApiToken" || !strings.HasPrefix(fmt.Sprint(a["organizationId"]), "org_") {
		t.Errorf("actor_GetActor = %v", out)
	}
}

func TestInputHandling(t *testing.T) {
	e := newEnv(t)
	e.fails("repositories_CreateVersion", `{"packageId":`, 400, hub.KindInvalid, "invalid input")
	e.fails("repositories_CreateVersion", `{"packageId":5}`, 400, hub.KindInvalid, "invalid input")
	e.fails("repositories_CreateVersion", `{}`, 400, hub.KindInvalid, `missing field "packageId"`)
	e.fails("repositories_CreateAsset", map[string]any{"repositoryId": e.repoID, "digest": "sha256_00"}, 400, hub.KindInvalid, `"size"`)
	big := `{"packageId":"` + strings.Repeat("x", maxInput) + `"}`
	e.fails("repositories_CreateVersion", big, 413, hub.KindInvalid, "larger than")

	// Absent and null optionals, unknown fields, and reassign defaulting to true.
	out := e.ok("repositories_CreateVersion", `{"packageId":"`+e.pkgID+`","name":null,"tags":[{"tag":"latest","locked":null}],"metadata":null,"futureField":{"a":1}}`)
	v1, _ := out["versionId"].(string)
	if out["result"] != "Created" || !strings.HasPrefix(v1, "pkg_v_") {
		t.Fatalf("CreateVersion = %v", out)
	}
	v2 := e.ok("repositories_CreateVersion", map[string]any{"packageId": e.pkgID})["versionId"].(string)
	e.ok("repositories_TagVersion", `{"versionId":"`+v2+`","tags":[{"tag":"latest"}]}`)
	res := e.ok("repositories_ResolveVersionByPath", map[string]string{"repository": "repo", "package": "pkg", "tag": "latest"})
	if res["result"] != "Found" || res["versionId"] != v2 || res["repositoryId"] != e.repoID || res["packageId"] != e.pkgID {
		t.Errorf("ResolveVersionByPath after default reassign = %v", res)
	}
	e.fails("repositories_TagVersion", `{"versionId":"`+v1+`","tags":[{"tag":"latest","reassign":false}]}`, 400, hub.KindInvalid, "already points")
}

func TestRepositoryActions(t *testing.T) {
	e := newEnv(t)
	if out := e.ok("repositories_ResolveName", map[string]string{"repository": "repo"}); out["result"] != "Found" || out["repositoryId"] != e.repoID {
		t.Errorf("ResolveName = %v", out)
	}
	if out := e.ok("repositories_ResolveName", map[string]string{"repository": "nope"}); len(out) != 1 || out["result"] != "NotFound" {
		t.Errorf("ResolveName(nope) = %v", out)
	}
	if out := e.ok("repositories_ResolvePackageByPath", map[string]string{"repository": e.repoID, "package": "pkg"}); out["result"] != "Found" || out["packageId"] != e.pkgID {
		t.Errorf("ResolvePackageByPath = %v", out)
	}
	if out := e.ok("repositories_CreatePackage", map[string]string{"repositoryId": e.repoID, "name": "pkg"}); len(out) != 1 || out["result"] != "NameAlreadyExists" {
		t.Errorf("CreatePackage existing = %v", out)
	}
	if out := e.ok("repositories_CreatePackage", map[string]any{"repositoryId": e.repoID, "name": "tools", "kind": nil}); out["result"] != "Created" {
		t.Errorf("CreatePackage = %v", out)
	}
	e.fails("repositories_CreatePackage", map[string]string{"repositoryId": "repo_123456789ABCDEFGHJKLMN", "name": "x"}, 400, hub.KindInvalid, "otabake hub init --repository R --package P")

	vid := e.ok("repositories_CreateVersion", map[string]any{
		"packageId": e.pkgID,
		"tags":      []map[string]any{{"tag": "build-1", "locked": true, "reassign": false}, {"tag": "latest-build-main", "locked": false, "reassign": true}},
		"metadata":  map[string]string{"imageVersion": "build-1"},
	})["versionId"].(string)
	e.fails("repositories_TagVersion", map[string]any{"versionId": e.ok("repositories_CreateVersion", map[string]any{"packageId": e.pkgID})["versionId"], "tags": []map[string]any{{"tag": "build-1", "reassign": true}}}, 400, hub.KindInvalid, `tag "build-1" is locked to version `+vid)

	var det hub.VersionDetails
	status, b := e.call("repositories_GetVersionDetails", map[string]string{"versionId": vid})
	if status != 200 || json.Unmarshal(b, &det) != nil || len(det.Tags) != 2 || string(det.Metadata) != `{"imageVersion":"build-1"}` || det.Assets == nil {
		t.Fatalf("GetVersionDetails = %d %s", status, b)
	}
	if !bytes.Contains(b, []byte(`"assets":[]`)) {
		t.Errorf("GetVersionDetails without assets = %s, want \"assets\":[]", b)
	}
	e.ok("repositories_SetVersionMetadata", map[string]any{"versionId": vid, "metadata": map[string]string{"imageVersion": "b"}})
	e.ok("repositories_UntagVersion", map[string]any{"versionId": vid, "tags": []map[string]string{{"tag": "latest-build-main"}}})
	vs := e.ok("repositories_QueryPackageVersions", map[string]string{"packageId": e.pkgID})["versions"].([]any)
	// Both versions were created at the same instant of the test's clock: their order is
	// not defined, so look the first one up instead of expecting it first.
	found := false
	for _, v := range vs {
		m := v.(map[string]any)
		found = found || m["versionId"] == vid && m["createdAt"] != nil
	}
	if len(vs) != 2 || !found {
		t.Errorf("QueryPackageVersions = %v", vs)
	}
	e.ok("repositories_DeleteVersion", map[string]string{"versionId": vid})
	e.fails("repositories_GetVersionDetails", map[string]string{"versionId": vid}, 400, hub.KindInvalid, "not found")
}

// upload runs the verified upload flow of spec §2.4 against the server and returns the asset ID.
func (e *env) upload(data []byte) (assetID string, put *http.Request) {
	e.t.Helper()
	sum := sha256.Sum256(data)
	d := hub.SHA256Digest(sum[:])
	out := e.ok("repositories_CreateAsset", map[string]any{"repositoryId": e.repoID, "size": len(data), "digest": d})
	assetID = out["assetId"].(string)
	var u hub.UploadURL
	status, b := e.call("repositories_IssueAssetUploadUrl", map[string]string{"assetId": assetID})
	if status != 200 || json.Unmarshal(b, &u) != nil {
		e.t.Fatalf("IssueAssetUploadUrl = %d %s", status, b)
	}
	for k, v := range map[string]string{hdrAssetID: assetID, hdrDigest: string(d), hdrIfNoneMatch: "*", hdrContentSHA: d.Hex()} {
		if u.Headers[k] != v {
			e.t.Fatalf("upload header %s = %q, want %q", k, u.Headers[k], v)
		}
	}
	if u.URL == "" || !strings.HasPrefix(u.VerifiedURL, e.ts.URL+blobPrefix) {
		e.t.Fatalf("upload URLs = %+v", u)
	}
	req, _ := http.NewRequest(http.MethodPut, u.VerifiedURL, bytes.NewReader(data))
	for k, v := range u.Headers {
		req.Header.Set(k, v)
	}
	return assetID, req
}

func (e *env) status(assetID string) string {
	return e.ok("repositories_GetAssetDetails", map[string]string{"assetId": assetID})["status"].(string)
}

func TestUploadFlow(t *testing.T) {
	e := newEnv(t)
	data := []byte("rugix bundle content")
	assetID, req := e.upload(data)
	if out := e.ok("repositories_CreateAsset", map[string]any{"repositoryId": e.repoID, "size": len(data), "digest": req.Header.Get(hdrDigest)}); out["result"] != "AssetAlreadyExists" || out["assetId"] != assetID {
		t.Errorf("CreateAsset again = %v", out)
	}
	e.fails("repositories_FinalizeAssetUpload", map[string]string{"assetId": assetID}, 400, hub.KindInvalid, "missing")

	// Requests that must be refused before anything is stored.
	u := req.URL.String()
	for _, tt := range []struct {
		name   string
		mutate func(r *http.Request)
		status int
	}{
		{"missing header", func(r *http.Request) { r.Header.Del(hdrContentSHA) }, 400},
		{"wrong asset header", func(r *http.Request) { r.Header.Set(hdrAssetID, "repo_a_x") }, 400},
		{"short body", func(r *http.Request) {
			r.Body = io.NopCloser(bytes.NewReader(data[1:]))
			r.ContentLength = int64(len(data) - 1)
		}, 400},
		{"forged signature", func(r *http.Request) { r.URL, _ = url.Parse(strings.Replace(u, "sig=", "sig=A", 1)) }, 403},
		{"other asset", func(r *http.Request) {
			r.URL, _ = url.Parse(strings.Replace(u, assetID, "repo_a_123456789ABCDEFGHJKLMN", 1))
		}, 403},
		{"download URL op", func(r *http.Request) { r.URL, _ = url.Parse(strings.Replace(u, "op=put", "op=get", 1)) }, 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := req.Clone(context.Background())
			r.Body = io.NopCloser(bytes.NewReader(data))
			r.ContentLength = int64(len(data))
			tt.mutate(r)
			status, b := e.do(r)
			if status != tt.status {
				t.Errorf("status %d (%s), want %d", status, b, tt.status)
			}
		})
	}

	// Wrong content with the right length: rejected, the asset stays Dangling.
	bad := req.Clone(context.Background())
	wrong := bytes.ToUpper(data)
	bad.Body, bad.ContentLength = io.NopCloser(bytes.NewReader(wrong)), int64(len(wrong))
	status, b := e.do(bad)
	checkError(t, status, b, 400, hub.KindInvalid, "does not match")
	if s := e.status(assetID); s != "Dangling" {
		t.Fatalf("status after a bad upload = %s", s)
	}
	e.fails("repositories_FinalizeAssetUpload", map[string]string{"assetId": assetID}, 400, hub.KindInvalid, "missing")

	// The good upload, then Finalize makes it Available.
	good := req.Clone(context.Background())
	good.Body, good.ContentLength = io.NopCloser(bytes.NewReader(data)), int64(len(data))
	if status, b := e.do(good); status != 200 {
		t.Fatalf("PUT = %d %s", status, b)
	}
	if s := e.status(assetID); s != "Dangling" {
		t.Errorf("status after PUT before Finalize = %s, want Dangling", s)
	}
	e.ok("repositories_FinalizeAssetUpload", map[string]string{"assetId": assetID})
	e.ok("repositories_FinalizeAssetUpload", map[string]string{"assetId": assetID})
	if s := e.status(assetID); s != "Available" {
		t.Errorf("status after Finalize = %s", s)
	}
	again := req.Clone(context.Background())
	again.Body, again.ContentLength = io.NopCloser(bytes.NewReader(data)), int64(len(data))
	if status, _ := e.do(again); status != http.StatusPreconditionFailed {
		t.Errorf("second PUT with If-None-Match = %d, want 412", status)
	}

	// An expired upload URL.
	id2, req2 := e.upload([]byte("other"))
	e.clock = e.clock.Add(2 * time.Minute)
	if status, _ := e.do(req2); status != 403 {
		t.Errorf("expired upload URL = %d, want 403", status)
	}
	if s := e.status(id2); s != "Dangling" {
		t.Errorf("status after expired upload = %s", s)
	}
}

func TestDownload(t *testing.T) {
	e := newEnv(t)
	data := []byte("0123456789 system image")
	assetID, req := e.upload(data)
	e.fails("repositories_IssueAssetDownloadUrl", map[string]string{"assetId": assetID}, 400, hub.KindInvalid, "no uploaded object")
	if status, b := e.do(req); status != 200 {
		t.Fatalf("PUT = %d %s", status, b)
	}
	e.ok("repositories_FinalizeAssetUpload", map[string]string{"assetId": assetID})

	// A legacy upload through the compatibility URL stays Dangling, and the Hub still serves
	// it: nexigon-cli before verified uploads never finalizes, and devices download what it
	// uploaded (nexigon/meta-nexigon tests/conftest.py publish_v2, then tests/test_ota.py).
	legacy := []byte("uploaded by an old nexigon-cli")
	legacyID, _ := e.upload(legacy)
	up := e.ok("repositories_IssueAssetUploadUrl", map[string]string{"assetId": legacyID})
	put, _ := http.NewRequest(http.MethodPut, up["url"].(string), bytes.NewReader(legacy))
	if status, b := e.do(put); status != 200 {
		t.Fatalf("compat PUT = %d %s", status, b)
	}
	if s := e.status(legacyID); s != "Dangling" {
		t.Errorf("status after a compat PUT = %s, want Dangling", s)
	}
	e.ok("repositories_IssueAssetDownloadUrl", map[string]string{"assetId": legacyID})

	vid := e.ok("repositories_CreateVersion", map[string]any{"packageId": e.pkgID, "tags": []map[string]any{{"tag": "stable"}}})["versionId"].(string)
	add := map[string]any{"versionId": vid, "assetId": assetID, "filename": "system.rugixb", "metadata": map[string]any{"rugix": map[string]string{"bundleHash": "sha512-256:ab"}}}
	if out := e.ok("repositories_AddVersionAsset", add); out["result"] != "Added" {
		t.Errorf("AddVersionAsset = %v", out)
	}
	if out := e.ok("repositories_AddVersionAsset", add); out["result"] != "FilenameAlreadyExists" {
		t.Errorf("AddVersionAsset again = %v", out)
	}
	e.ok("repositories_SetVersionAssetMetadata", map[string]any{"versionId": vid, "filename": "system.rugixb", "metadata": map[string]string{"version": "1"}})
	res := e.ok("repositories_ResolveVersionAssetByPath", map[string]string{"repository": "repo", "package": "pkg", "tag": "stable", "filename": "system.rugixb"})
	if res["result"] != "Found" || res["assetId"] != assetID || res["versionId"] != vid {
		t.Fatalf("ResolveVersionAssetByPath = %v", res)
	}
	u := e.ok("repositories_IssueAssetDownloadUrl", map[string]any{"assetId": assetID, "filename": nil})["url"].(string)

	get := func(u, rng string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := get(u, "bytes=0-0")
	if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-0/%d", len(data)) || string(b) != "0" {
		t.Errorf("Range probe = %d %q %q", resp.StatusCode, resp.Header.Get("Content-Range"), b)
	}
	resp, b = get(u, "bytes=11-")
	if resp.StatusCode != 206 || string(b) != "system image" {
		t.Errorf("Range bytes=11- = %d %q", resp.StatusCode, b)
	}
	resp, b = get(u, "")
	if resp.StatusCode != 200 || !bytes.Equal(b, data) || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("full GET = %d %q", resp.StatusCode, b)
	}
	named := e.ok("repositories_IssueAssetDownloadUrl", map[string]any{"assetId": assetID, "filename": "dir/system.rugixb"})["url"].(string)
	if resp, _ := get(named, ""); !strings.Contains(resp.Header.Get("Content-Disposition"), `filename=system.rugixb`) {
		t.Errorf("Content-Disposition = %q", resp.Header.Get("Content-Disposition"))
	}
	for name, bad := range map[string]string{
		"forged":         strings.Replace(u, "sig=", "sig=x", 1),
		"other filename": named + "x",
		"no signature":   strings.Split(u, "?")[0],
	} {
		if resp, _ := get(bad, ""); resp.StatusCode != 403 {
			t.Errorf("%s URL = %d, want 403", name, resp.StatusCode)
		}
	}
	e.clock = e.clock.Add(2 * time.Minute)
	if resp, _ := get(u, "bytes=0-0"); resp.StatusCode != 403 {
		t.Errorf("expired URL = %d, want 403", resp.StatusCode)
	}
}

func TestDeviceActions(t *testing.T) {
	e := newEnv(t)
	dev := "d_123456789ABCDEFGHJKLMN"
	get := map[string]string{"deviceId": dev, "name": "dev.nexigon.ota.config"}
	if out := e.ok("devices_GetProperty", get); len(out) != 1 || out["result"] != "NotFound" {
		t.Errorf("GetProperty before set = %v", out)
	}
	if out := e.ok("devices_SetProperty", map[string]any{"deviceId": dev, "name": "dev.nexigon.ota.config", "value": map[string]string{"path": "repo/pkg/stable"}, "protected": nil}); out["result"] != "Set" {
		t.Errorf("SetProperty = %v", out)
	}
	out := e.ok("devices_GetProperty", get)
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "lastUpdated,name,protected,result,value,version" || out["result"] != "Found" || out["version"] != 1.0 {
		t.Errorf("GetProperty = %v", out)
	}
	if out := e.ok("devices_SetProperty", map[string]any{"deviceId": dev, "name": "dev.nexigon.ota.config", "value": 1, "expectedVersion": 7}); out["result"] != "VersionConflict" || out["currentVersion"] != 1.0 {
		t.Errorf("SetProperty with a stale version = %v", out)
	}
	e.fails("devices_SetProperty", map[string]any{"deviceId": dev, "name": "x"}, 400, hub.KindInvalid, `"value"`)
	if props := e.ok("devices_QueryProperties", map[string]string{"deviceId": dev})["properties"].(map[string]any); len(props) != 1 {
		t.Errorf("QueryProperties = %v", props)
	}
	if out := e.ok("devices_RemoveProperty", get); out["result"] != "Removed" {
		t.Errorf("RemoveProperty = %v", out)
	}
	if out := e.ok("devices_RemoveProperty", get); out["result"] != "NotFound" {
		t.Errorf("RemoveProperty again = %v", out)
	}
	e.ok("devices_PublishEvents", `{"deviceId":"`+dev+`","events":[{"eventId":"d_ev_20260101-0000-abcABC12","category":"ota","severity":"Warning","body":"watchdog","attributes":{"system":"a"},"emittedAt":"2026-01-01T00:00:00Z"}]}`)
	e.fails("devices_PublishEvents", `{"deviceId":"`+dev+`","events":[{"eventId":"d_ev_20260101-0000-abcABC13","severity":"warning","body":1,"attributes":{},"emittedAt":"2026-01-01T00:00:00Z"}]}`, 400, hub.KindInvalid, "severity")
	evs := e.ok("devices_QueryEvents", map[string]any{"deviceId": dev, "limit": nil})["events"].([]any)
	if len(evs) != 1 || evs[0].(map[string]any)["category"] != "ota" || evs[0].(map[string]any)["receivedAt"] == nil {
		t.Errorf("QueryEvents = %v", evs)
	}
}

func TestErrorStatus(t *testing.T) {
	for kind, want := range map[hub.ErrorKind]int{hub.KindInvalid: 400, hub.KindForbidden: 403, hub.KindRateLimited: 429, hub.KindInternal: 500} {
		if got := statusOf(kind); got != want {
			t.Errorf("statusOf(%s) = %d, want %d", kind, got, want)
		}
	}
}

// TestBaseURLFromRequest: without a configured base URL, issued URLs use the address the client
// used, so a VM that reaches the host as 10.0.2.2 can follow them.
func TestBaseURLFromRequest(t *testing.T) {
	e := newEnv(t)
	e.srv.baseURL = ""
	in := `{"repositoryId":"` + e.repoID + `","size":3,"digest":"sha256_ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}`
	status, body := e.call("repositories_CreateAsset", in)
	var created struct{ AssetID string }
	if err := json.Unmarshal(body, &created); status != 200 || err != nil {
		t.Fatalf("CreateAsset: %d %s", status, body)
	}
	for _, host := range []string{"10.0.2.2:8470", "127.0.0.1:9"} {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/api/v1/actions/invoke/repositories_IssueAssetUploadUrl", strings.NewReader(`{"assetId":"`+created.AssetID+`"}`))
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+testToken)
		status, body := e.do(req)
		if status != 200 || !strings.Contains(string(body), `"http://`+host+`/api/v1/blobs/`) {
			t.Errorf("Host %s: %d %s", host, status, body)
		}
	}
}
