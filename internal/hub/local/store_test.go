package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

type fixture struct {
	s            *Store
	repoID, pkID string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	s, err := Open(t.TempDir(), Options{LockTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r, p, err := s.Init(context.Background(), "repo", "pkg")
	if err != nil {
		t.Fatal(err)
	}
	return fixture{s, r, p}
}

func (f fixture) version(t *testing.T, tags ...hub.TagItem) string {
	t.Helper()
	id, err := f.s.CreateVersion(context.Background(), hub.CreateVersionRequest{PackageID: f.pkID, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func digestOfBytes(b []byte) hub.Digest {
	sum := sha256.Sum256(b)
	return hub.SHA256Digest(sum[:])
}

func wantKind(t *testing.T, err error, kind hub.ErrorKind, contains string) {
	t.Helper()
	if !hub.IsKind(err, kind) {
		t.Fatalf("err = %v, want %s ActionError", err, kind)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("err = %v, want it to mention %q", err, contains)
	}
}

// TestIDs checks that the store names things with the Hub's ID kinds (the table itself is
// tested in internal/nexid).
func TestIDs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r, p, err := f.s.Init(ctx, "repo", "pkg")
	if err != nil || !nexid.RepositoryID.Is(r) || !nexid.PackageID.Is(p) {
		t.Fatalf("Init = %q %q %v", r, p, err)
	}
	if tok := RandomToken(); !nexid.OrganizationAPIToken.Is(tok) {
		t.Errorf("RandomToken() is not an organization API token")
	}
}

func TestInit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r, p, err := f.s.Init(ctx, "repo", "pkg")
	if err != nil || r != f.repoID || p != f.pkID {
		t.Fatalf("second Init = %s %s %v, want %s %s", r, p, err, f.repoID, f.pkID)
	}
	r2, p2, err := f.s.Init(ctx, f.repoID, "other")
	if err != nil || r2 != f.repoID || p2 == f.pkID {
		t.Fatalf("Init by repository ID = %s %s %v", r2, p2, err)
	}
	for _, tt := range []struct{ repo, pkg, want string }{
		{"-bad", "pkg", "invalid repository name"},
		{"repo", "a/b", "invalid package name"},
		{"", "pkg", "invalid repository name"},
		{strings.Repeat("r", 129), "pkg", "invalid repository name"},
		{"repo_123456789ABCDEFGHJKLMN", "pkg", "otabake hub init"},
	} {
		if _, _, err := f.s.Init(ctx, tt.repo, tt.pkg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Init(%q, %q) = %v, want error with %q", tt.repo, tt.pkg, err, tt.want)
		}
	}
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	vid := f.version(t, hub.TagItem{Tag: "v1", Locked: true})
	for _, tt := range []struct {
		path hub.VersionPath
		ok   bool
	}{
		{hub.VersionPath{Repository: "repo", Package: "pkg", Tag: "v1"}, true},
		{hub.VersionPath{Repository: f.repoID, Package: f.pkID, Tag: vid}, true},
		{hub.VersionPath{Repository: "repo", Package: "pkg", Tag: "v2"}, false},
		{hub.VersionPath{Repository: "other", Package: "pkg", Tag: "v1"}, false},
		{hub.VersionPath{Repository: "repo", Package: "nope", Tag: "v1"}, false},
		{hub.VersionPath{Repository: "repo_not-an-id", Package: "pkg", Tag: "v1"}, false},
	} {
		ref, ok, err := f.s.ResolveVersion(ctx, tt.path)
		if err != nil || ok != tt.ok || (ok && ref != (hub.VersionRef{RepositoryID: f.repoID, PackageID: f.pkID, VersionID: vid})) {
			t.Errorf("ResolveVersion(%v) = %+v %v %v, want ok=%v", tt.path, ref, ok, err, tt.ok)
		}
	}
	if id, ok, err := f.s.ResolveRepository(ctx, "repo"); err != nil || !ok || id != f.repoID {
		t.Errorf("ResolveRepository = %s %v %v", id, ok, err)
	}
	if ref, ok, err := f.s.ResolvePackage(ctx, f.repoID, "pkg"); err != nil || !ok || ref.PackageID != f.pkID {
		t.Errorf("ResolvePackage = %+v %v %v", ref, ok, err)
	}
}

func TestTagRules(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		setup    []hub.TagItem // on version A
		add      []hub.TagItem // on version B
		wantErr  string
		wantA    []hub.VersionTag
		wantB    []hub.VersionTag
		sameAsA  bool // add to A instead of B
		untagB   []string
		untagErr string
	}{
		{name: "new tag", add: []hub.TagItem{{Tag: "x"}}, wantA: []hub.VersionTag{}, wantB: []hub.VersionTag{{Tag: "x"}}},
		{name: "reassign floating", setup: []hub.TagItem{{Tag: "latest"}}, add: []hub.TagItem{{Tag: "latest", Reassign: true}},
			wantA: []hub.VersionTag{}, wantB: []hub.VersionTag{{Tag: "latest"}}},
		{name: "no reassign", setup: []hub.TagItem{{Tag: "latest"}}, add: []hub.TagItem{{Tag: "latest"}},
			wantErr: `tag "latest" already points to version`, wantA: []hub.VersionTag{{Tag: "latest"}}, wantB: []hub.VersionTag{}},
		{name: "locked never moves", setup: []hub.TagItem{{Tag: "build-1", Locked: true}}, add: []hub.TagItem{{Tag: "build-1", Reassign: true}},
			wantErr: `tag "build-1" is locked to version`, wantA: []hub.VersionTag{{Tag: "build-1", Locked: true}}, wantB: []hub.VersionTag{}},
		{name: "conflict is atomic", setup: []hub.TagItem{{Tag: "a", Locked: true}}, add: []hub.TagItem{{Tag: "fresh"}, {Tag: "a", Reassign: true}},
			wantErr: "locked", wantA: []hub.VersionTag{{Tag: "a", Locked: true}}, wantB: []hub.VersionTag{}},
		{name: "same version is a no-op", setup: []hub.TagItem{{Tag: "t"}}, sameAsA: true, add: []hub.TagItem{{Tag: "t"}, {Tag: "t"}},
			wantA: []hub.VersionTag{{Tag: "t"}}, wantB: []hub.VersionTag{}},
		{name: "reassign takes requested lock", setup: []hub.TagItem{{Tag: "stable"}}, add: []hub.TagItem{{Tag: "stable", Locked: true, Reassign: true}},
			wantA: []hub.VersionTag{}, wantB: []hub.VersionTag{{Tag: "stable", Locked: true}}},
		{name: "invalid tag", add: []hub.TagItem{{Tag: "bad tag"}}, wantErr: "invalid tag", wantA: []hub.VersionTag{}, wantB: []hub.VersionTag{}},
		{name: "untag floating", add: []hub.TagItem{{Tag: "f"}}, untagB: []string{"f", "absent"}, wantA: []hub.VersionTag{}, wantB: []hub.VersionTag{}},
		{name: "untag locked", add: []hub.TagItem{{Tag: "l", Locked: true}}, untagB: []string{"l"}, untagErr: "cannot be removed",
			wantA: []hub.VersionTag{}, wantB: []hub.VersionTag{{Tag: "l", Locked: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			a := f.version(t, tt.setup...)
			b := f.version(t)
			target := b
			if tt.sameAsA {
				target = a
			}
			err := f.s.TagVersion(ctx, target, tt.add)
			if tt.wantErr != "" {
				wantKind(t, err, hub.KindInvalid, tt.wantErr)
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.untagB != nil {
				err := f.s.UntagVersion(ctx, b, tt.untagB)
				if tt.untagErr != "" {
					wantKind(t, err, hub.KindInvalid, tt.untagErr)
				} else if err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct {
				id   string
				want []hub.VersionTag
			}{{a, tt.wantA}, {b, tt.wantB}} {
				d, err := f.s.GetVersionDetails(ctx, c.id)
				if err != nil {
					t.Fatal(err)
				}
				if !equalTags(d.Tags, c.want) {
					t.Errorf("tags of %s = %+v, want %+v", c.id, d.Tags, c.want)
				}
				// Every tag a version lists must resolve back to it.
				for _, tg := range d.Tags {
					ref, ok, err := f.s.ResolveVersion(ctx, hub.VersionPath{Repository: "repo", Package: "pkg", Tag: tg.Tag})
					if err != nil || !ok || ref.VersionID != c.id {
						t.Errorf("tag %s resolves to %+v %v %v, want %s", tg.Tag, ref, ok, err, c.id)
					}
				}
			}
		})
	}
}

func equalTags(a, b []hub.VersionTag) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCreateVersionConflictLeavesNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.version(t, hub.TagItem{Tag: "build-1", Locked: true})
	_, err := f.s.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: f.pkID, Tags: []hub.TagItem{{Tag: "latest"}, {Tag: "build-1", Reassign: true}}})
	wantKind(t, err, hub.KindInvalid, "locked")
	vs, err := f.s.QueryVersions(ctx, f.pkID)
	if err != nil || len(vs) != 1 {
		t.Fatalf("QueryVersions = %+v %v, want the one first version", vs, err)
	}
	if _, ok, _ := f.s.ResolveVersion(ctx, hub.VersionPath{Repository: "repo", Package: "pkg", Tag: "latest"}); ok {
		t.Error("tag latest of the failed CreateVersion exists")
	}
	_, err = f.s.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: "pkg_123456789ABCDEFGHJKLMN"})
	wantKind(t, err, hub.KindInvalid, "not found")
	_, err = f.s.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: f.pkID, Metadata: json.RawMessage(`{bad`)})
	wantKind(t, err, hub.KindInvalid, "not valid JSON")
}

func TestUnknownRepository(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	bogus := "repo_123456789ABCDEFGHJKLMN"
	_, _, err := f.s.CreateAsset(ctx, bogus, 1, digestOfBytes([]byte("x")))
	wantKind(t, err, hub.KindInvalid, "otabake hub init --repository R --package P")
	_, _, err = f.s.CreatePackage(ctx, bogus, "p")
	wantKind(t, err, hub.KindInvalid, "otabake hub init --repository R --package P")
	if _, err := f.s.Tree(ctx, "missing"); err == nil || !strings.Contains(err.Error(), "otabake hub init") {
		t.Errorf("Tree(missing) = %v", err)
	}
}

func TestAssets(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	data := []byte("bundle bytes")
	d := digestOfBytes(data)
	id, existed, err := f.s.CreateAsset(ctx, f.repoID, int64(len(data)), d)
	if err != nil || existed {
		t.Fatalf("CreateAsset = %s %v %v", id, existed, err)
	}
	id2, existed, err := f.s.CreateAsset(ctx, f.repoID, int64(len(data)), hub.Digest(strings.Replace(string(d), "_", ":", 1)))
	if err != nil || !existed || id2 != id {
		t.Fatalf("CreateAsset again = %s %v %v, want %s existed", id2, existed, err, id)
	}
	if _, _, err := f.s.CreateAsset(ctx, f.repoID, 99, d); !hub.IsKind(err, hub.KindInvalid) {
		t.Errorf("CreateAsset with other size = %v, want Invalid", err)
	}
	if _, _, err := f.s.CreateAsset(ctx, f.repoID, 1, "md5_00"); !hub.IsKind(err, hub.KindInvalid) {
		t.Errorf("CreateAsset with bad digest = %v, want Invalid", err)
	}
	if _, err := f.s.IssueAssetUploadURL(ctx, id); err == nil || !strings.Contains(err.Error(), "PutBlob") {
		t.Errorf("IssueAssetUploadURL = %v, want an error pointing at PutBlob", err)
	}
	if err := f.s.FinalizeAssetUpload(ctx, id); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Finalize before upload = %v, want missing", err)
	}
	if _, err := f.s.IssueAssetDownloadURL(ctx, id, ""); !hub.IsKind(err, hub.KindInvalid) {
		t.Errorf("download URL of a dangling asset = %v, want Invalid", err)
	}

	// Wrong bytes, wrong size: rejected, the asset stays Dangling and nothing is stored.
	for _, bad := range []struct {
		body []byte
		size int64
		want string
	}{
		{[]byte("bundle bytez"), int64(len(data)), "does not match"},
		{[]byte("short"), int64(len(data)), "want 12"},
		{append(data, 'x'), int64(len(data)), "or more"},
		{data, 5, "got 5 bytes"},
	} {
		err := f.s.PutBlob(ctx, id, bytes.NewReader(bad.body), bad.size)
		wantKind(t, err, hub.KindInvalid, bad.want)
	}
	if a, _ := f.s.GetAssetDetails(ctx, id); a.Status != hub.AssetDangling {
		t.Fatalf("status after bad uploads = %s", a.Status)
	}
	if ents, _ := os.ReadDir(filepath.Join(f.s.Dir(), "blobs", "sha256", d.Hex()[:2])); len(ents) != 0 {
		t.Fatalf("bad uploads left files: %v", ents)
	}

	if err := f.s.PutBlob(ctx, id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	a, err := f.s.GetAssetDetails(ctx, id)
	if err != nil || a.Status != hub.AssetAvailable || a.Size != int64(len(data)) || a.Digest != d {
		t.Fatalf("GetAssetDetails = %+v %v", a, err)
	}
	if err := f.s.FinalizeAssetUpload(ctx, id); err != nil {
		t.Errorf("Finalize of an Available asset = %v, want success", err)
	}
	rc, n, err := f.s.OpenBlob(ctx, id)
	if err != nil || n != int64(len(data)) {
		t.Fatal(n, err)
	}
	got := new(bytes.Buffer)
	got.ReadFrom(rc)
	rc.Close()
	if !bytes.Equal(got.Bytes(), data) {
		t.Errorf("OpenBlob = %q", got)
	}
	u, err := f.s.IssueAssetDownloadURL(ctx, id, "")
	if err != nil || !strings.HasPrefix(u, "file://") || !strings.HasSuffix(u, d.Hex()) {
		t.Errorf("IssueAssetDownloadURL = %q %v", u, err)
	}

	// Attach: filenames are unique per version; metadata is replaced; refcount follows.
	v := f.version(t, hub.TagItem{Tag: "v1"})
	for i, tt := range []struct {
		filename string
		added    bool
		kind     hub.ErrorKind
	}{
		{"system.rugixb", true, ""},
		{"system.rugixb", false, ""},
		{"x86_64/agent", true, ""},
		{"a//b", false, hub.KindInvalid},
		{"", false, hub.KindInvalid},
	} {
		added, err := f.s.AddVersionAsset(ctx, v, id, tt.filename, json.RawMessage(`{"rugix":{"bundleHash":"h"}}`))
		if tt.kind != "" {
			if !hub.IsKind(err, tt.kind) {
				t.Errorf("%d: AddVersionAsset(%q) = %v, want %s", i, tt.filename, err, tt.kind)
			}
			continue
		}
		if err != nil || added != tt.added {
			t.Errorf("%d: AddVersionAsset(%q) = %v %v, want added=%v", i, tt.filename, added, err, tt.added)
		}
	}
	if a, _ := f.s.GetAssetDetails(ctx, id); a.ReferenceCount != 2 {
		t.Errorf("referenceCount = %d, want 2", a.ReferenceCount)
	}
	if err := f.s.SetVersionAssetMetadata(ctx, v, "system.rugixb", json.RawMessage(`{"version":"1"}`)); err != nil {
		t.Fatal(err)
	}
	ref, ok, err := f.s.ResolveVersionAsset(ctx, hub.VersionPath{Repository: "repo", Package: "pkg", Tag: "v1"}, "system.rugixb")
	if err != nil || !ok || ref.AssetID != id || ref.VersionID != v {
		t.Errorf("ResolveVersionAsset = %+v %v %v", ref, ok, err)
	}
	det, err := f.s.GetVersionDetails(ctx, v)
	if err != nil || len(det.Assets) != 2 || string(det.Assets[0].Metadata) != `{"version":"1"}` || det.Assets[0].Status != hub.AssetAvailable {
		t.Fatalf("GetVersionDetails = %+v %v", det, err)
	}
	if err := f.s.RemoveVersionAsset(ctx, v, "x86_64/agent"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, f.s.RemoveVersionAsset(ctx, v, "x86_64/agent"), hub.KindInvalid, "has no asset")
	if err := f.s.DeleteVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	if a, _ := f.s.GetAssetDetails(ctx, id); a.ReferenceCount != 0 {
		t.Errorf("referenceCount after delete = %d, want 0", a.ReferenceCount)
	}
	if _, ok, _ := f.s.ResolveVersion(ctx, hub.VersionPath{Repository: "repo", Package: "pkg", Tag: "v1"}); ok {
		t.Error("tag of a deleted version still resolves")
	}

	// Another repository with the same content: a new asset, finalizable from the shared blob.
	r2, _, err := f.s.Init(ctx, "repo2", "pkg")
	if err != nil {
		t.Fatal(err)
	}
	id3, existed, err := f.s.CreateAsset(ctx, r2, int64(len(data)), d)
	if err != nil || existed || id3 == id {
		t.Fatalf("CreateAsset in repo2 = %s %v %v", id3, existed, err)
	}
	if err := f.s.FinalizeAssetUpload(ctx, id3); err != nil {
		t.Errorf("Finalize with the content already stored = %v", err)
	}
	v2 := f.version(t)
	if _, err := f.s.AddVersionAsset(ctx, v2, id3, "f", nil); !hub.IsKind(err, hub.KindInvalid) {
		t.Errorf("attaching an asset of another repository = %v, want Invalid", err)
	}
}

func TestPutBlobFile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 100000) // 1.6 MB: several copy buffers
	path := filepath.Join(t.TempDir(), "system.img")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	id, _, err := f.s.CreateAsset(ctx, f.repoID, int64(len(data)), digestOfBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	// A file that changed since it was hashed is refused.
	other := filepath.Join(t.TempDir(), "changed")
	os.WriteFile(other, append(bytes.Clone(data[:len(data)-1]), 'X'), 0o644)
	wantKind(t, f.s.PutBlobFile(ctx, id, other), hub.KindInvalid, "changed after it was hashed")
	os.WriteFile(other, data[1:], 0o644)
	wantKind(t, f.s.PutBlobFile(ctx, id, other), hub.KindInvalid, "file has")
	if a, _ := f.s.GetAssetDetails(ctx, id); a.Status != hub.AssetDangling {
		t.Fatalf("status after a bad file = %s", a.Status)
	}

	if err := f.s.PutBlobFile(ctx, id, path); err != nil {
		t.Fatal(err)
	}
	rc, _, err := f.s.OpenBlob(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	got.ReadFrom(rc)
	if !bytes.Equal(got.Bytes(), data) {
		t.Error("stored blob differs from the file")
	}
	if err := f.s.PutBlobFile(ctx, id, path); err != nil {
		t.Errorf("PutBlobFile of an Available asset = %v", err)
	}
}

func TestProperties(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev := "d_123456789ABCDEFGHJKLMN"
	if _, ok, err := f.s.GetProperty(ctx, dev, "dev.nexigon.ota.status"); ok || err != nil {
		t.Fatalf("GetProperty before set = %v %v", ok, err)
	}
	for i := 1; i <= 3; i++ {
		if err := f.s.SetProperty(ctx, dev, "dev.nexigon.ota.status", json.RawMessage(`{"state":"idle"}`)); err != nil {
			t.Fatal(err)
		}
		p, ok, err := f.s.GetProperty(ctx, dev, "dev.nexigon.ota.status")
		if err != nil || !ok || p.Version != uint64(i) || p.LastUpdated.IsZero() || string(p.Value) != `{"state":"idle"}` {
			t.Fatalf("GetProperty = %+v %v %v, want version %d", p, ok, err, i)
		}
	}
	v := uint64(1)
	if res, cur, err := f.s.SetPropertyIf(ctx, dev, "dev.nexigon.ota.status", json.RawMessage(`1`), false, &v); err != nil || res != PropertyVersionConflict || cur != 3 {
		t.Errorf("SetPropertyIf stale = %s %d %v", res, cur, err)
	}
	if res, _, err := f.s.SetPropertyIf(ctx, dev, "absent", json.RawMessage(`1`), false, &v); err != nil || res != PropertyDeleted {
		t.Errorf("SetPropertyIf absent = %s %v", res, err)
	}
	for _, tt := range []struct {
		name, value string
	}{{"bad name!", `1`}, {"ok", `{not json`}, {"ok", ``}} {
		if err := f.s.SetProperty(ctx, dev, tt.name, json.RawMessage(tt.value)); !hub.IsKind(err, hub.KindInvalid) {
			t.Errorf("SetProperty(%q, %q) = %v, want Invalid", tt.name, tt.value, err)
		}
	}
	props, err := f.s.QueryProperties(ctx, dev)
	if err != nil || len(props) != 1 {
		t.Errorf("QueryProperties = %v %v", props, err)
	}
	if removed, err := f.s.RemoveProperty(ctx, dev, "dev.nexigon.ota.status"); !removed || err != nil {
		t.Errorf("RemoveProperty = %v %v", removed, err)
	}
	if removed, err := f.s.RemoveProperty(ctx, dev, "dev.nexigon.ota.status"); removed || err != nil {
		t.Errorf("RemoveProperty again = %v %v", removed, err)
	}
	a, err := f.s.GetActor(ctx)
	if err != nil || a.Kind != "OrganizationApiToken" || !nexid.OrganizationID.Is(a.OrganizationID) {
		t.Errorf("GetActor = %+v %v", a, err)
	}
}

func TestEventsBounded(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{MaxEvents: 5})
	if err != nil {
		t.Fatal(err)
	}
	dev := "d_123456789ABCDEFGHJKLMN"
	for i := 0; i < 8; i++ {
		ev := hub.Event{EventID: fmt.Sprintf("d_ev_20260401-1200-AAAAAAA%c", 'a'+i), Severity: hub.SeverityInfo, Body: json.RawMessage(`"x"`), EmittedAt: time.Now()}
		if err := s.PublishEvents(ctx, dev, []hub.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.QueryEvents(ctx, dev, 1000)
	if err != nil || len(evs) != 5 || evs[0].EventID != "d_ev_20260401-1200-AAAAAAAd" || evs[4].EventID != "d_ev_20260401-1200-AAAAAAAh" || evs[4].ReceivedAt == nil || evs[4].Attributes == nil {
		t.Fatalf("QueryEvents = %+v %v, want the newest 5 oldest first", evs, err)
	}
	if evs, _ := s.QueryEvents(ctx, dev, 2); len(evs) != 2 || evs[1].EventID != "d_ev_20260401-1200-AAAAAAAh" {
		t.Errorf("QueryEvents(2) = %+v", evs)
	}
	for _, tt := range []struct {
		ev   hub.Event
		want string
	}{
		{hub.Event{Severity: "info"}, "invalid severity"},
		{hub.Event{Severity: hub.SeverityInfo, Category: strings.Repeat("c", 129)}, "category"},
		{hub.Event{EventID: "d_ev_20260401-1200-AAAAAAAa", Severity: hub.SeverityInfo, Attributes: map[string]json.RawMessage{"k": json.RawMessage("{")}}, "attribute"},
		{hub.Event{Severity: hub.SeverityInfo}, "event ID"},
		{hub.Event{EventID: "d_ev_20260401-1200-AAAAAAAAAAAA", Severity: hub.SeverityInfo}, "DeviceEventId"},
	} {
		wantKind(t, s.PublishEvents(ctx, dev, []hub.Event{tt.ev}), hub.KindInvalid, tt.want)
	}
	if _, err := s.QueryEvents(ctx, dev, 1001); !hub.IsKind(err, hub.KindInvalid) {
		t.Errorf("QueryEvents(1001) = %v", err)
	}
}

// TestLockContention holds the database lock as another process would and checks that an
// operation reports the wait, succeeds once the lock is released, and times out clearly.
func TestLockContention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var waits atomic.Int32
	s, err := Open(dir, Options{LockTimeout: 300 * time.Millisecond, OnWait: func() { waits.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Init(ctx, "repo", "pkg"); err != nil {
		t.Fatal(err)
	}

	// Another process holds the lock for longer than the timeout.
	held, err := bolt.Open(filepath.Join(dir, "hub.db"), 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = s.ResolveRepository(ctx, "repo")
	if err == nil || !strings.Contains(err.Error(), "locked by another otabake process") || waits.Load() != 1 {
		t.Fatalf("ResolveRepository under a held lock = %v (waits %d)", err, waits.Load())
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %s, want about 300ms", d)
	}

	// The holder releases it while we wait.
	time.AfterFunc(100*time.Millisecond, func() { held.Close() })
	id, ok, err := s.ResolveRepository(ctx, "repo")
	if err != nil || !ok || id == "" || waits.Load() != 2 {
		t.Fatalf("ResolveRepository after release = %s %v %v (waits %d)", id, ok, err, waits.Load())
	}

	// A cancelled context stops the wait.
	held, err = bolt.Open(filepath.Join(dir, "hub.db"), 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := s.Init(cctx, "repo", "pkg"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Init with an expiring context = %v", err)
	}
}

// TestConcurrentHandles runs writers through two Store handles on one directory at once;
// every write must land.
func TestConcurrentHandles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, pkg, err := a.Init(ctx, "repo", "pkg")
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	errc := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		for _, s := range []*Store{a, b} {
			go func() {
				_, err := s.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: pkg, Tags: []hub.TagItem{{Tag: "latest", Reassign: true}}})
				errc <- err
			}()
		}
	}
	for i := 0; i < 2*n; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	vs, err := b.QueryVersions(ctx, pkg)
	if err != nil || len(vs) != 2*n {
		t.Fatalf("QueryVersions = %d versions, %v; want %d", len(vs), err, 2*n)
	}
	tagged := 0
	for _, v := range vs {
		tagged += len(v.Tags)
	}
	if tagged != 1 {
		t.Errorf("%d versions carry latest, want exactly 1", tagged)
	}
}

func TestTree(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v := f.version(t, hub.TagItem{Tag: "build-1", Locked: true}, hub.TagItem{Tag: "latest"})
	if err := f.s.SetVersionMetadata(ctx, v, json.RawMessage(`{"imageVersion":"build-1"}`)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path     string
		repos    int
		versions int
		ok       bool
	}{
		{"", 1, 1, true},
		{"repo", 1, 1, true},
		{"repo/pkg", 1, 1, true},
		{"repo/pkg/latest", 1, 1, true},
		{"repo/pkg/nope", 0, 0, false},
		{"repo/nope", 0, 0, false},
		{"a/b/c/d", 0, 0, false},
	} {
		tree, err := f.s.Tree(ctx, tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("Tree(%q) err = %v, want ok=%v", tt.path, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		if len(tree) != tt.repos || len(tree[0].Packages) != 1 || len(tree[0].Packages[0].Versions) != tt.versions {
			t.Errorf("Tree(%q) = %+v", tt.path, tree)
			continue
		}
		tv := tree[0].Packages[0].Versions[0]
		if tv.ID != v || len(tv.Tags) != 2 || string(tv.Metadata) != `{"imageVersion":"build-1"}` {
			t.Errorf("Tree(%q) version = %+v", tt.path, tv)
		}
	}
}

// BenchmarkPutBlobFile measures storing a file into the blob store (copy or clone, plus the
// verifying hash). OTABAKE_BENCH_FILE names an existing file to use instead of 64 MiB of
// generated data; compare with `sha256sum f && cp f dest`.
func BenchmarkPutBlobFile(b *testing.B) {
	ctx := context.Background()
	path := os.Getenv("OTABAKE_BENCH_FILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "data")
		data := bytes.Repeat([]byte("otabake local hub benchmark data"), 2<<20)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fd, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	d, size, err := hub.DigestReader(fd)
	fd.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		repo, _, err := s.Init(ctx, "r", "p")
		if err != nil {
			b.Fatal(err)
		}
		id, _, err := s.CreateAsset(ctx, repo, size, d)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.PutBlobFile(ctx, id, path); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

// TestTwoProcesses writes from this process and a child process at the same time; the file
// lock must serialise them without losing a write.
func TestTwoProcesses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, pkg, err := s.Init(ctx, "repo", "pkg")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "OTABAKE_LOCAL_HELPER="+dir+"\n"+pkg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := createVersions(ctx, s, pkg); err != nil {
		t.Error(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.Bytes())
	}
	vs, err := s.QueryVersions(ctx, pkg)
	if err != nil || len(vs) != 2*helperVersions {
		t.Fatalf("QueryVersions = %d versions, %v; want %d", len(vs), err, 2*helperVersions)
	}
	tagged := 0
	for _, v := range vs {
		tagged += len(v.Tags)
	}
	if tagged != 1 {
		t.Errorf("%d versions carry latest, want exactly 1", tagged)
	}
}

const helperVersions = 15

func createVersions(ctx context.Context, s *Store, pkg string) error {
	for i := 0; i < helperVersions; i++ {
		if _, err := s.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: pkg, Tags: []hub.TagItem{{Tag: "latest", Reassign: true}}}); err != nil {
			return err
		}
	}
	return nil
}

// TestHelperProcess is the child of TestTwoProcesses.
func TestHelperProcess(t *testing.T) {
	env := os.Getenv("OTABAKE_LOCAL_HELPER")
	if env == "" {
		t.Skip("helper process for TestTwoProcesses")
	}
	dir, pkg, _ := strings.Cut(env, "\n")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := createVersions(context.Background(), s, pkg); err != nil {
		t.Fatal(err)
	}
}
