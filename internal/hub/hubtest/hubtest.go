// Package hubtest is the conformance suite of hub.Hub implementations: the same scenarios of
// the release pipeline and the device agent run against the in-process local store, the
// Nexigon HTTP client talking to `otabake hub serve`, and a fake presigned-S3 Hub, so that the
// three cannot drift apart. It also provides FakeHub and Faults for tests elsewhere.
package hubtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
)

// Fixture is one fresh Hub with a repository and a package in it.
type Fixture struct {
	Hub hub.Hub
	// Repository and Package are names (or IDs) of an existing repository and package.
	Repository, Package string
	// DeviceID is the device the device scenarios use; empty means a fixed d_ ID.
	DeviceID string
	// Upload is passed to hub.UploadFile (its HTTP client for the PUTs, retry policy).
	Upload hub.UploadOptions
	// Uploads returns how many times bytes were sent: PUT requests for HTTP Hubs, PutBlob or
	// PutBlobFile calls in process. It proves deduplication.
	Uploads func() int
	// HTTP is set for Hubs reached over HTTP; the URL and token scenarios need it.
	HTTP *HTTPFixture
}

// HTTPFixture describes how to reach an HTTP Hub.
type HTTPFixture struct {
	// BaseURL is the Hub URL (the actions API lives under /api/v1/actions/invoke/).
	BaseURL string
	// Client fetches download URLs.
	Client *http.Client
	// WithToken returns a Hub client of the same server that authenticates with token.
	WithToken func(t *testing.T, token string) hub.Hub
	// ExpiredDownloadURL returns a correctly signed but expired download URL for an asset; nil
	// skips that check.
	ExpiredDownloadURL func(t *testing.T, assetID string) string
}

// Run runs every scenario, each against a fresh fixture from newHub.
func Run(t *testing.T, newHub func(t *testing.T) Fixture) {
	t.Run("PrepareTwiceReusesVersion", func(t *testing.T) { testPrepareTwice(t, newHub(t)) })
	t.Run("LockedTagCannotMove", func(t *testing.T) { testLockedTag(t, newHub(t)) })
	t.Run("ReassignMovesTag", func(t *testing.T) { testReassign(t, newHub(t)) })
	t.Run("NoReassignConflict", func(t *testing.T) { testNoReassign(t, newHub(t)) })
	t.Run("PackagesAndNames", func(t *testing.T) { testPackages(t, newHub(t)) })
	t.Run("VersionAssetsAndMetadata", func(t *testing.T) { testVersionAssets(t, newHub(t)) })
	t.Run("HostileNamesRefused", func(t *testing.T) { testHostileNames(t, newHub(t)) })
	t.Run("Devices", func(t *testing.T) { testDevices(t, newHub(t)) })
	RunUpload(t, newHub)
	t.Run("Auth", func(t *testing.T) { testAuth(t, newHub(t)) })
	RunStrict(t, newHub)
}

// RunUpload runs the asset scenarios only: content-addressed upload, attach, download.
func RunUpload(t *testing.T, newHub func(t *testing.T) Fixture) {
	t.Run("UploadOnce", func(t *testing.T) { testUploadOnce(t, newHub(t)) })
	t.Run("AttachIdempotent", func(t *testing.T) { testAttach(t, newHub(t)) })
	t.Run("DownloadURLs", func(t *testing.T) { testDownloadURLs(t, newHub(t)) })
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func packageID(t *testing.T, f Fixture) hub.PackageRef {
	t.Helper()
	ref, found, err := f.Hub.ResolvePackage(context.Background(), f.Repository, f.Package)
	if err != nil || !found {
		t.Fatalf("resolve %s/%s: found=%v err=%v", f.Repository, f.Package, found, err)
	}
	return ref
}

// prepare is what prepare-release does: resolve the locked build tag, create if absent.
func prepare(t *testing.T, f Fixture, pkgID, buildTag string) (string, bool) {
	t.Helper()
	ctx := context.Background()
	ref, found, err := f.Hub.ResolveVersion(ctx, hub.VersionPath{Repository: f.Repository, Package: f.Package, Tag: buildTag})
	if err != nil {
		t.Fatalf("resolve %s: %v", buildTag, err)
	}
	if found {
		return ref.VersionID, false
	}
	id, err := f.Hub.CreateVersion(ctx, hub.CreateVersionRequest{
		PackageID: pkgID,
		Tags:      []hub.TagItem{{Tag: buildTag, Locked: true}, {Tag: "latest-build-main", Reassign: true}},
		Metadata:  json.RawMessage(fmt.Sprintf(`{"imageVersion":%q}`, buildTag)),
	})
	if err != nil {
		t.Fatalf("create version %s: %v", buildTag, err)
	}
	return id, true
}

func tagsOf(t *testing.T, f Fixture, versionID string) []string {
	t.Helper()
	d := must[*hub.VersionDetails](t, "version details")(f.Hub.GetVersionDetails(context.Background(), versionID))
	var tags []string
	for _, tg := range d.Tags {
		tags = append(tags, tg.Tag)
	}
	slices.Sort(tags)
	return tags
}

func resolveTag(t *testing.T, f Fixture, tag string) string {
	t.Helper()
	ref, found, err := f.Hub.ResolveVersion(context.Background(), hub.VersionPath{Repository: f.Repository, Package: f.Package, Tag: tag})
	if err != nil || !found {
		t.Fatalf("resolve tag %s: found=%v err=%v", tag, found, err)
	}
	return ref.VersionID
}

func testPrepareTwice(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	const build = "build-20260401120000-abc1234"
	v1, created := prepare(t, f, pkg.PackageID, build)
	if !created {
		t.Fatal("first prepare found an existing version")
	}
	v2, created := prepare(t, f, pkg.PackageID, build)
	if created || v2 != v1 {
		t.Fatalf("second prepare: version %s created=%v, want reuse of %s", v2, created, v1)
	}
	vs := must[[]hub.VersionSummary](t, "query versions")(f.Hub.QueryVersions(ctx, pkg.PackageID))
	if len(vs) != 1 {
		t.Fatalf("package has %d versions after preparing twice, want 1", len(vs))
	}
	d := must[*hub.VersionDetails](t, "version details")(f.Hub.GetVersionDetails(ctx, v1))
	var md struct {
		ImageVersion string `json:"imageVersion"`
	}
	if err := json.Unmarshal(d.Metadata, &md); err != nil || md.ImageVersion != build {
		t.Errorf("metadata %s, want imageVersion %s", d.Metadata, build)
	}
	locked := map[string]bool{}
	for _, tg := range d.Tags {
		locked[tg.Tag] = tg.Locked
	}
	if l, ok := locked[build]; !ok || !l {
		t.Errorf("tags %v: want %s locked", d.Tags, build)
	}
	if l, ok := locked["latest-build-main"]; !ok || l {
		t.Errorf("tags %v: want latest-build-main floating", d.Tags)
	}
}

func testLockedTag(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	v1, _ := prepare(t, f, pkg.PackageID, "build-1")
	v2, _ := prepare(t, f, pkg.PackageID, "build-2")
	err := f.Hub.TagVersion(ctx, v2, []hub.TagItem{{Tag: "build-1", Locked: true, Reassign: true}})
	if err == nil {
		t.Fatal("moving a locked tag with reassign=true succeeded")
	}
	if !hub.IsKind(err, hub.KindInvalid) {
		t.Errorf("moving a locked tag: %v, want an Invalid ActionError", err)
	}
	if got := resolveTag(t, f, "build-1"); got != v1 {
		t.Errorf("build-1 points to %s after the refused move, want %s", got, v1)
	}
	_, err = f.Hub.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: pkg.PackageID,
		Tags: []hub.TagItem{{Tag: "build-1", Locked: true, Reassign: true}}})
	if !hub.IsKind(err, hub.KindInvalid) {
		t.Errorf("creating a version with another version's locked tag: %v, want an Invalid ActionError", err)
	}
	// Re-adding a tag to the version that has it is a no-op.
	if err := f.Hub.TagVersion(ctx, v1, []hub.TagItem{{Tag: "build-1", Locked: true}}); err != nil {
		t.Errorf("re-adding build-1 to its own version: %v", err)
	}
}

func testReassign(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	v1, _ := prepare(t, f, pkg.PackageID, "build-1")
	v2, _ := prepare(t, f, pkg.PackageID, "build-2")
	// latest-build-main moved to v2 when v2 was created.
	if got := resolveTag(t, f, "latest-build-main"); got != v2 {
		t.Errorf("latest-build-main points to %s, want the newest version %s", got, v2)
	}
	if err := f.Hub.TagVersion(ctx, v1, []hub.TagItem{{Tag: "stable", Reassign: true}}); err != nil {
		t.Fatalf("tag v1 stable: %v", err)
	}
	if err := f.Hub.TagVersion(ctx, v2, []hub.TagItem{{Tag: "stable", Reassign: true}}); err != nil {
		t.Fatalf("promote v2 to stable: %v", err)
	}
	if got := resolveTag(t, f, "stable"); got != v2 {
		t.Errorf("stable points to %s, want %s", got, v2)
	}
	if tags := tagsOf(t, f, v1); slices.Contains(tags, "stable") || slices.Contains(tags, "latest-build-main") {
		t.Errorf("v1 still has moved tags: %v", tags)
	}
	if tags := tagsOf(t, f, v2); !reflect.DeepEqual(tags, []string{"build-2", "latest-build-main", "stable"}) {
		t.Errorf("v2 tags %v", tags)
	}
	if err := f.Hub.UntagVersion(ctx, v2, []string{"stable"}); err != nil {
		t.Fatalf("untag: %v", err)
	}
	if _, found, err := f.Hub.ResolveVersion(ctx, hub.VersionPath{Repository: f.Repository, Package: f.Package, Tag: "stable"}); err != nil || found {
		t.Errorf("stable after untag: found=%v err=%v", found, err)
	}
}

func testNoReassign(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	v1, _ := prepare(t, f, pkg.PackageID, "build-1")
	v2, _ := prepare(t, f, pkg.PackageID, "build-2")
	if err := f.Hub.TagVersion(ctx, v1, []hub.TagItem{{Tag: "stable", Reassign: true}}); err != nil {
		t.Fatal(err)
	}
	err := f.Hub.TagVersion(ctx, v2, []hub.TagItem{{Tag: "stable", Reassign: false}})
	if !hub.IsKind(err, hub.KindInvalid) {
		t.Fatalf("reassign=false onto a taken tag: %v, want an Invalid ActionError", err)
	}
	if got := resolveTag(t, f, "stable"); got != v1 {
		t.Errorf("stable moved to %s despite reassign=false", got)
	}
}

func testDevices(t *testing.T, f Fixture) {
	ctx := context.Background()
	dev := f.DeviceID
	if dev == "" {
		dev = "d_3bD6kJ8nR2mQ5vW9xY1zA7"
	}
	const name = "dev.nexigon.ota.config"
	if _, found, err := f.Hub.GetProperty(ctx, dev, name); err != nil || found {
		t.Fatalf("unset property: found=%v err=%v", found, err)
	}
	for i, v := range []string{`{"path":"repo/pkg/stable"}`, `{"path":"repo/pkg/beta","n":[1,2.5,null]}`} {
		if err := f.Hub.SetProperty(ctx, dev, name, json.RawMessage(v)); err != nil {
			t.Fatalf("set property: %v", err)
		}
		p, found, err := f.Hub.GetProperty(ctx, dev, name)
		if err != nil || !found {
			t.Fatalf("get property: found=%v err=%v", found, err)
		}
		if !jsonEqual(p.Value, json.RawMessage(v)) || p.Name != name {
			t.Errorf("property %s = %s, want %s", p.Name, p.Value, v)
		}
		if i == 1 && p.Version < 2 {
			t.Errorf("property version %d after two writes", p.Version)
		}
	}
	if removed, err := f.Hub.RemoveProperty(ctx, dev, name); err != nil || !removed {
		t.Fatalf("remove: %v %v", removed, err)
	}
	if removed, err := f.Hub.RemoveProperty(ctx, dev, name); err != nil || removed {
		t.Fatalf("remove again: %v %v", removed, err)
	}
	if _, found, err := f.Hub.GetProperty(ctx, dev, name); err != nil || found {
		t.Fatalf("removed property: found=%v err=%v", found, err)
	}

	at := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	events := []hub.Event{
		{EventID: "d_ev_20260401-1200-AAAAAAAA", Category: "ota", Severity: hub.SeverityInfo, Body: json.RawMessage(`"installing"`),
			Attributes: map[string]json.RawMessage{"targetVersion": json.RawMessage(`"build-2"`)}, EmittedAt: at},
		{EventID: "d_ev_20260401-1201-BBBBBBBB", Category: "ota", Severity: hub.SeverityWarning, Body: json.RawMessage(`{"why":"watchdog"}`),
			Attributes: map[string]json.RawMessage{}, EmittedAt: at.Add(time.Minute)},
	}
	if err := f.Hub.PublishEvents(ctx, dev, events); err != nil {
		t.Fatalf("publish events: %v", err)
	}
	got := must[[]hub.Event](t, "query events")(f.Hub.QueryEvents(ctx, dev, 10))
	if len(got) != 2 {
		t.Fatalf("%d events, want 2", len(got))
	}
	for i, e := range got {
		w := events[i]
		if e.EventID != w.EventID || e.Category != w.Category || e.Severity != w.Severity || !jsonEqual(e.Body, w.Body) ||
			!e.EmittedAt.Equal(w.EmittedAt) || len(e.Attributes) != len(w.Attributes) {
			t.Errorf("event %d = %+v, want %+v (oldest first)", i, e, w)
		}
	}
	if !jsonEqual(got[0].Attributes["targetVersion"], json.RawMessage(`"build-2"`)) {
		t.Errorf("attributes %v", got[0].Attributes)
	}
	if last := must[[]hub.Event](t, "query 1 event")(f.Hub.QueryEvents(ctx, dev, 1)); len(last) != 1 || last[0].EventID != events[1].EventID {
		t.Errorf("limit 1 gave %+v, want the newest event", last)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// writeFile writes a test artifact of n pseudo-random bytes seeded by seed.
func writeFile(t *testing.T, name string, n int, seed byte) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	x := uint32(seed) + 1
	for i := range data {
		x = x*1664525 + 1013904223
		data[i] = byte(x >> 24)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// uploadFile uploads a test artifact (see writeFile) to pkg's repository.
func uploadFile(t *testing.T, f Fixture, pkg hub.PackageRef, name string, n int, seed byte) hub.UploadResult {
	t.Helper()
	path, _ := writeFile(t, name, n, seed)
	return must[hub.UploadResult](t, "upload")(hub.UploadFile(context.Background(), f.Hub, pkg.RepositoryID, path, f.Upload))
}

func testUploadOnce(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	path, data := writeFile(t, "system.rugixb", 300<<10, 1)
	sum := sha256.Sum256(data)
	want := hub.SHA256Digest(sum[:])
	var progressed atomic.Int64
	opts := f.Upload
	opts.Progress = func(done, total int64) {
		if total != int64(len(data)) || done > total {
			t.Errorf("progress %d/%d, want total %d", done, total, len(data))
		}
		progressed.Store(done)
	}
	r1, err := hub.UploadFile(ctx, f.Hub, pkg.RepositoryID, path, opts)
	if err != nil {
		t.Fatalf("first upload: %v", err)
	}
	if !r1.Created || !r1.Uploaded || r1.Digest != want || r1.Size != int64(len(data)) || r1.AssetID == "" {
		t.Fatalf("first upload = %+v, want created and uploaded %s", r1, want)
	}
	if progressed.Load() != int64(len(data)) {
		t.Errorf("progress ended at %d of %d", progressed.Load(), len(data))
	}
	r2, err := hub.UploadFile(ctx, f.Hub, pkg.RepositoryID, path, f.Upload)
	if err != nil {
		t.Fatalf("second upload: %v", err)
	}
	if r2.Created || r2.Uploaded || r2.AssetID != r1.AssetID {
		t.Fatalf("second upload = %+v, want the existing asset %s without sending bytes", r2, r1.AssetID)
	}
	if n := f.Uploads(); n != 1 {
		t.Errorf("bytes sent %d times for two uploads of the same file, want 1", n)
	}
	d := must[*hub.AssetDetails](t, "asset details")(f.Hub.GetAssetDetails(ctx, r1.AssetID))
	if d.Status != hub.AssetAvailable || d.Digest != want || d.Size != int64(len(data)) {
		t.Errorf("asset %+v, want Available %s", d, want)
	}
	var buf bytes.Buffer
	if _, err := hub.Download(ctx, f.Hub, r1.AssetID, &buf, httpClient(f)); err != nil {
		t.Fatalf("download: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Error("downloaded bytes differ from the uploaded file")
	}
}

func httpClient(f Fixture) *http.Client {
	if f.HTTP != nil && f.HTTP.Client != nil {
		return f.HTTP.Client
	}
	return f.Upload.HTTPClient
}

func testAttach(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	v := must[string](t, "create version")(f.Hub.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: pkg.PackageID}))
	p1, _ := writeFile(t, "a.img", 4096, 2)
	p2, _ := writeFile(t, "b.img", 4096, 3)
	a1 := must[hub.UploadResult](t, "upload a")(hub.UploadFile(ctx, f.Hub, pkg.RepositoryID, p1, f.Upload))
	a2 := must[hub.UploadResult](t, "upload b")(hub.UploadFile(ctx, f.Hub, pkg.RepositoryID, p2, f.Upload))
	md := json.RawMessage(`{"rugix":{"bundleHash":"sha512-256:00"},"version":"build-1"}`)
	if added, err := hub.AttachAsset(ctx, f.Hub, v, a1.AssetID, a1.Digest, "system.img", md); err != nil || !added {
		t.Fatalf("first attach: added=%v err=%v", added, err)
	}
	if added, err := hub.AttachAsset(ctx, f.Hub, v, a1.AssetID, a1.Digest, "system.img", md); err != nil || added {
		t.Fatalf("attach again with the same digest: added=%v err=%v, want success without adding", added, err)
	}
	_, err := hub.AttachAsset(ctx, f.Hub, v, a2.AssetID, a2.Digest, "system.img", md)
	if err == nil {
		t.Fatal("attaching different bytes under a taken filename succeeded")
	}
	for _, s := range []string{"system.img", string(a1.Digest), string(a2.Digest)} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("conflict error %q does not name %s", err, s)
		}
	}
	d := must[*hub.VersionDetails](t, "version details")(f.Hub.GetVersionDetails(ctx, v))
	a, ok := d.Asset("system.img")
	if !ok || a.AssetID != a1.AssetID || a.Digest != a1.Digest || !jsonEqual(a.Metadata, md) {
		t.Errorf("attached %+v, want asset %s with metadata %s", a, a1.AssetID, md)
	}
}

func testDownloadURLs(t *testing.T, f Fixture) {
	if f.HTTP == nil {
		t.Skip("in-process Hub: no HTTP URLs")
	}
	ctx := context.Background()
	pkg := packageID(t, f)
	path, data := writeFile(t, "system.img", 10000, 4)
	up := must[hub.UploadResult](t, "upload")(hub.UploadFile(ctx, f.Hub, pkg.RepositoryID, path, f.Upload))
	u := must[string](t, "download URL")(f.Hub.IssueAssetDownloadURL(ctx, up.AssetID, ""))
	client := httpClient(f)
	if client == nil {
		client = http.DefaultClient
	}
	get := func(u, rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, tt := range []struct {
		rng        string
		status     int
		first, end int
	}{
		{"", 200, 0, len(data)},
		{"bytes=0-0", 206, 0, 1},
		{"bytes=5000-5099", 206, 5000, 5100},
		{"bytes=9990-", 206, 9990, len(data)},
	} {
		resp, body := get(u, tt.rng)
		if resp.StatusCode != tt.status || !bytes.Equal(body, data[tt.first:tt.end]) {
			t.Errorf("GET Range %q: %d with %d bytes, want %d with bytes %d..%d", tt.rng, resp.StatusCode, len(body), tt.status, tt.first, tt.end)
		}
		if tt.status == 206 {
			if want := fmt.Sprintf("bytes %d-%d/%d", tt.first, tt.end-1, len(data)); resp.Header.Get("Content-Range") != want {
				t.Errorf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
			}
		}
	}
	if resp, _ := get(forge(t, u), ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged URL: HTTP %d, want 403", resp.StatusCode)
	}
	if f.HTTP.ExpiredDownloadURL != nil {
		if resp, _ := get(f.HTTP.ExpiredDownloadURL(t, up.AssetID), ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("expired URL: HTTP %d, want 403", resp.StatusCode)
		}
	}
}

// forge changes one character of the longest query value (the signature of every presigned
// URL scheme in use) without changing its length or alphabet.
func forge(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("download URL %q: %v", raw, err)
	}
	q := u.Query()
	key := ""
	for k, v := range q {
		if key == "" || len(v[0]) > len(q.Get(key)) {
			key = k
		}
	}
	if key == "" {
		t.Fatalf("download URL has no query to forge")
	}
	v := []byte(q.Get(key))
	if v[0] == 'A' {
		v[0] = 'B'
	} else {
		v[0] = 'A'
	}
	q.Set(key, string(v))
	u.RawQuery = q.Encode()
	return u.String()
}

func testAuth(t *testing.T, f Fixture) {
	if f.HTTP == nil {
		t.Skip("in-process Hub: no token")
	}
	ctx := context.Background()
	bad := f.HTTP.WithToken(t, "org_sk_wrongtoken")
	_, _, err := bad.ResolveRepository(ctx, f.Repository)
	var ae *hub.ActionError
	if !hub.IsKind(err, hub.KindForbidden) {
		t.Errorf("wrong token: %v, want a Forbidden ActionError", err)
	} else if errors.As(err, &ae) && ae.Action != "repositories_ResolveName" {
		t.Errorf("ActionError names action %q", ae.Action)
	}
	if err != nil && strings.Contains(err.Error(), "wrongtoken") {
		t.Errorf("error leaks the token: %v", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(f.HTTP.BaseURL, "/")+"/api/v1/actions/invoke/repositories_ResolveName",
		strings.NewReader(`{"repository":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body hub.ActionError
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Kind != hub.KindForbidden || (resp.StatusCode != 401 && resp.StatusCode != 403) {
		t.Errorf("missing token: HTTP %d, body %+v (%v), want 401/403 Forbidden", resp.StatusCode, body, err)
	}
}

func testPackages(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	byName, found, err := f.Hub.ResolveRepository(ctx, f.Repository)
	if err != nil || !found || byName != pkg.RepositoryID {
		t.Fatalf("resolve repository %s: %s %v %v, want %s", f.Repository, byName, found, err, pkg.RepositoryID)
	}
	if byID, found, err := f.Hub.ResolveRepository(ctx, pkg.RepositoryID); err != nil || !found || byID != pkg.RepositoryID {
		t.Errorf("resolve repository by ID: %s %v %v", byID, found, err)
	}
	if _, found, err := f.Hub.ResolveRepository(ctx, "no-such-repository"); err != nil || found {
		t.Errorf("unknown repository: found=%v err=%v", found, err)
	}
	id, existed, err := f.Hub.CreatePackage(ctx, pkg.RepositoryID, "second-package")
	if err != nil || existed || id == "" {
		t.Fatalf("create package: %q existed=%v err=%v", id, existed, err)
	}
	again, existed, err := f.Hub.CreatePackage(ctx, pkg.RepositoryID, "second-package")
	if err != nil || !existed || again != "" {
		t.Errorf("create package twice: %q existed=%v err=%v, want NameAlreadyExists", again, existed, err)
	}
	ref, found, err := f.Hub.ResolvePackage(ctx, f.Repository, "second-package")
	if err != nil || !found || ref.PackageID != id {
		t.Errorf("resolve new package: %+v %v %v, want %s", ref, found, err, id)
	}
	if _, found, err := f.Hub.ResolvePackage(ctx, f.Repository, "no-such-package"); err != nil || found {
		t.Errorf("unknown package: found=%v err=%v", found, err)
	}
}

func testVersionAssets(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	v, _ := prepare(t, f, pkg.PackageID, "build-7")
	up := uploadFile(t, f, pkg, "system.rugixb", 2048, 7)
	const name = "efi/system.rugixb"
	if _, err := hub.AttachAsset(ctx, f.Hub, v, up.AssetID, up.Digest, name, json.RawMessage(`{"version":"build-7"}`)); err != nil {
		t.Fatal(err)
	}
	vp := hub.VersionPath{Repository: f.Repository, Package: f.Package, Tag: "build-7"}
	ref, found, err := f.Hub.ResolveVersionAsset(ctx, vp, name)
	if err != nil || !found || ref.AssetID != up.AssetID || ref.VersionID != v || ref.PackageID != pkg.PackageID || ref.RepositoryID != pkg.RepositoryID {
		t.Fatalf("resolve %s/%s: %+v %v %v", vp, name, ref, found, err)
	}
	// A version ID works in place of a tag.
	if r, found, err := f.Hub.ResolveVersion(ctx, hub.VersionPath{Repository: f.Repository, Package: f.Package, Tag: v}); err != nil || !found || r.VersionID != v {
		t.Errorf("resolve by version ID: %+v %v %v", r, found, err)
	}
	if u, err := f.Hub.IssueAssetDownloadURL(ctx, up.AssetID, "named.rugixb"); err != nil || u == "" {
		t.Errorf("download URL with filename: %q %v", u, err)
	}
	md := json.RawMessage(`{"rugix":{"bundleHash":"sha512-256:ab"}}`)
	if err := f.Hub.SetVersionAssetMetadata(ctx, v, name, md); err != nil {
		t.Fatal(err)
	}
	vmd := json.RawMessage(`{"imageVersion":"build-7","notes":"replaced"}`)
	if err := f.Hub.SetVersionMetadata(ctx, v, vmd); err != nil {
		t.Fatal(err)
	}
	d := must[*hub.VersionDetails](t, "version details")(f.Hub.GetVersionDetails(ctx, v))
	if a, ok := d.Asset(name); !ok || !jsonEqual(a.Metadata, md) || a.Status != hub.AssetAvailable || a.Size != 2048 {
		t.Errorf("asset after set-metadata: %+v, want metadata replaced by %s", a, md)
	}
	if !jsonEqual(d.Metadata, vmd) {
		t.Errorf("version metadata %s, want %s", d.Metadata, vmd)
	}
	if err := f.Hub.RemoveVersionAsset(ctx, v, name); err != nil {
		t.Fatal(err)
	}
	if _, found, err := f.Hub.ResolveVersionAsset(ctx, vp, name); err != nil || found {
		t.Errorf("removed asset still resolves: found=%v err=%v", found, err)
	}
	if d := must[*hub.AssetDetails](t, "asset details")(f.Hub.GetAssetDetails(ctx, up.AssetID)); d.Status != hub.AssetAvailable {
		t.Errorf("detaching removed the asset itself: %+v", d)
	}
}

// hostileFilenames are asset filenames no Hub implementation may store: they would forge
// terminal output or escape a directory wherever a client saves assets by filename.
var hostileFilenames = []string{
	"", "nul\x00byte", "new\nline", "carriage\rreturn", "\x1b[2J\x1b[31mred", "del\x7f", "c1\u009bcsi",
	"..", ".", "../etc/passwd", "a/../../b", "a/./b", "/abs", "trailing/", "a//b", "back\\slash",
	strings.Repeat("x", 257),
}

// hostileTags are tags the Hub's regex ^[a-zA-Z0-9][a-zA-Z0-9._-]*$ (1..128) refuses.
var hostileTags = []string{"", "..", "../x", "a/b", "nul\x00", "new\nline", "\x1b[31m", ".hidden", strings.Repeat("t", 129)}

func testHostileNames(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	v, _ := prepare(t, f, pkg.PackageID, "build-hostile")
	up := uploadFile(t, f, pkg, "system.rugixb", 512, 9)
	for _, name := range hostileFilenames {
		_, err := f.Hub.AddVersionAsset(ctx, v, up.AssetID, name, nil)
		if !hub.IsKind(err, hub.KindInvalid) {
			t.Errorf("filename %q: err = %v, want an Invalid ActionError", name, err)
		}
	}
	// Slashes between non-empty components are legitimate (the Hub serves
	// x86_64-unknown-linux-gnu/nexigon-agent).
	if _, err := f.Hub.AddVersionAsset(ctx, v, up.AssetID, "x86_64-unknown-linux-gnu/nexigon-agent", nil); err != nil {
		t.Errorf("nested filename refused: %v", err)
	}
	d := must[*hub.VersionDetails](t, "version details")(f.Hub.GetVersionDetails(ctx, v))
	if len(d.Assets) != 1 {
		t.Errorf("version has %d assets after hostile attaches, want 1: %+v", len(d.Assets), d.Assets)
	}
	for _, tag := range hostileTags {
		err := f.Hub.TagVersion(ctx, v, []hub.TagItem{{Tag: tag, Reassign: true}})
		if !hub.IsKind(err, hub.KindInvalid) {
			t.Errorf("tag %q: err = %v, want an Invalid ActionError", tag, err)
		}
	}
}
