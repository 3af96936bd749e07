package release

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
)

// failingAttach is the local Hub with attaching refused for one system's files: an upload
// that dies halfway, as a killed CI job leaves it.
type failingAttach struct {
	*local.Store
	system string
}

func (f failingAttach) AddVersionAsset(ctx context.Context, versionID, assetID, filename string, metadata json.RawMessage) (bool, error) {
	if strings.HasPrefix(filename, f.system+".") && !strings.HasSuffix(filename, ".spdx.json") {
		return false, errors.New("connection reset")
	}
	return f.Store.AddVersionAsset(ctx, versionID, assetID, filename, metadata)
}

func TestPromoteRefusesIncompleteVersion(t *testing.T) {
	p := newPipeline(t, "efi", "pi")
	p.build("efi")
	p.build("pi")
	if err := p.upload(p.store, "efi"); err != nil {
		t.Fatal(err)
	}

	// Half uploaded: pi has nothing in the version; devices of pi must not follow stable.
	_, err := Promote(p.ctx, p.store, p.cfg, "stable", testVersion, PromoteOptions{})
	var inc *IncompleteError
	if !errors.As(err, &inc) {
		t.Fatalf("promote of a half-uploaded version: %v, want an IncompleteError", err)
	}
	for _, want := range []string{"is incomplete", "pi: no bundle (pi.rugixb or pi.raucb)", "--partial efi"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "efi:") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error blames efi or spans lines: %q", err)
	}
	if _, ok, _ := p.store.ResolveVersion(p.ctx, hub.VersionPath{Repository: "demo", Package: "os", Tag: "stable"}); ok {
		t.Fatal("stable was moved by a refused promote")
	}

	// Going ahead anyway names the systems that go out.
	res, err := Promote(p.ctx, p.store, p.cfg, "beta", testVersion, PromoteOptions{Partial: []string{"efi"}})
	if err != nil || !res.Moved || !res.Partial || !slices.Equal(res.Excluded, []string{"pi"}) || !slices.Equal(res.Systems, []string{"efi"}) {
		t.Fatalf("partial promote = %+v, %v", res, err)
	}
	if _, err := Promote(p.ctx, p.store, p.cfg, "beta", testVersion, PromoteOptions{Partial: []string{"pi"}}); err == nil || !strings.Contains(err.Error(), "pi: no bundle") {
		t.Fatalf("--partial naming the missing system: %v", err)
	}

	// The upload of pi dies after the SBOM: the version records pi's files, so promote names
	// what did not arrive, also from a checkout that configures no systems at all.
	err = p.upload(failingAttach{p.store, "pi"}, "pi")
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("failing upload: %v", err)
	}
	bare := *p.cfg
	bare.Systems = nil
	_, err = Promote(p.ctx, p.store, &bare, "stable", testVersion, PromoteOptions{})
	for _, want := range []string{"pi: no bundle", "pi.rugixb not attached", "pi.rugixb-hash not attached", "pi.img.xz not attached", "pi.build-info.json not attached"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("promote after a died upload: %v, want %q", err, want)
		}
	}

	// Once pi is uploaded too, the version goes out whole.
	if err := p.upload(p.store, "pi"); err != nil {
		t.Fatal(err)
	}
	res, err = Promote(p.ctx, p.store, p.cfg, "stable", testVersion, PromoteOptions{})
	if err != nil || !res.Moved || res.Partial || !slices.Equal(res.Systems, []string{"efi", "pi"}) {
		t.Fatalf("promote of the complete version = %+v, %v", res, err)
	}
}

func TestUploadRecordsSystemsKeepingMetadata(t *testing.T) {
	p := newPipeline(t, "efi", "pi")
	p.build("efi")
	p.build("pi")
	ref, _, err := p.store.ResolveVersion(p.ctx, hub.VersionPath{Repository: "demo", Package: "os", Tag: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	// Someone else's key must survive.
	if err := p.store.SetVersionMetadata(p.ctx, ref.VersionID, json.RawMessage(`{"imageVersion":"`+testVersion+`","changelog":"x","otabake":{"note":1}}`)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"pi", "efi", "pi"} {
		if err := p.upload(p.store, s); err != nil {
			t.Fatal(err)
		}
	}
	d, err := p.store.GetVersionDetails(p.ctx, ref.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ImageVersion string `json:"imageVersion"`
		Changelog    string `json:"changelog"`
		Otabake      struct {
			Note    int                 `json:"note"`
			Systems []string            `json:"systems"`
			Assets  map[string][]string `json:"assets"`
		} `json:"otabake"`
	}
	if err := json.Unmarshal(d.Metadata, &m); err != nil {
		t.Fatal(err)
	}
	if m.ImageVersion != testVersion || m.Changelog != "x" || m.Otabake.Note != 1 || !slices.Equal(m.Otabake.Systems, []string{"efi", "pi"}) {
		t.Fatalf("metadata after uploads: %s", d.Metadata)
	}
	want := []string{"pi.build-info.json", "pi.img.xz", "pi.rugixb", "pi.rugixb-hash", "pi.spdx.json"}
	if !slices.Equal(m.Otabake.Assets["pi"], want) {
		t.Errorf("recorded pi files %v, want %v", m.Otabake.Assets["pi"], want)
	}
}

func TestCheckComplete(t *testing.T) {
	const hash = "sha512-256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	bundleMeta := func(h string) json.RawMessage {
		return json.RawMessage(`{"rugix":{"bundleHash":"` + h + `"},"version":"v"}`)
	}
	ok := func(name string, meta json.RawMessage) hub.VersionAsset {
		return hub.VersionAsset{Filename: name, Status: hub.AssetAvailable, Metadata: meta}
	}
	record := json.RawMessage(`{"imageVersion":"v","otabake":{"systems":["a","b"],"assets":{"a":["a.rugixb","a.img.xz"],"b":["b.rugixb","b.img.xz"]}}}`)
	for _, tc := range []struct {
		name     string
		meta     json.RawMessage
		assets   []hub.VersionAsset
		project  []string
		only     []string
		problems string // "" means complete
	}{
		{name: "complete", meta: record,
			assets: []hub.VersionAsset{ok("a.rugixb", bundleMeta(hash)), ok("a.img.xz", nil), ok("b.rugixb", bundleMeta(hash)), ok("b.img.xz", nil)}},
		{name: "rauc bundle", project: []string{"r"}, assets: []hub.VersionAsset{ok("r.raucb", nil)}},
		{name: "configured system missing", project: []string{"a", "c"},
			assets:   []hub.VersionAsset{ok("a.rugixb", bundleMeta(hash))},
			problems: "c: no bundle (c.rugixb or c.raucb)"},
		{name: "upload in flight", meta: record,
			assets:   []hub.VersionAsset{ok("a.rugixb", bundleMeta(hash)), ok("a.img.xz", nil), ok("b.img.xz", nil)},
			problems: "b: no bundle (b.rugixb or b.raucb), b.rugixb not attached"},
		{name: "image only, no record", assets: []hub.VersionAsset{ok("a.img.xz", nil)},
			problems: "a: no bundle (a.rugixb or a.raucb)"},
		{name: "no bundle hash", assets: []hub.VersionAsset{ok("a.rugixb", json.RawMessage(`{"version":"v"}`))},
			problems: "a: a.rugixb has no rugix.bundleHash metadata"},
		{name: "short hash", assets: []hub.VersionAsset{ok("a.rugixb", bundleMeta(hash[:len(hash)-2]))},
			problems: "a: a.rugixb has a malformed rugix.bundleHash"},
		{name: "hash not hex", assets: []hub.VersionAsset{ok("a.rugixb", bundleMeta(strings.Replace(hash, "0", "g", 1)))},
			problems: "a: a.rugixb has a malformed rugix.bundleHash"},
		{name: "unknown algorithm", assets: []hub.VersionAsset{ok("a.rugixb", bundleMeta("md5:"+hash[11:]))},
			problems: "a: a.rugixb has a malformed rugix.bundleHash"},
		{name: "dangling asset", assets: []hub.VersionAsset{ok("a.rugixb", bundleMeta(hash)), {Filename: "a.img.xz", Status: hub.AssetDangling}},
			problems: "a: a.img.xz is Dangling, not Available"},
		{name: "dangling file of no system", assets: []hub.VersionAsset{ok("a.rugixb", bundleMeta(hash)), {Filename: "notes.txt", Status: hub.AssetDeleting}},
			problems: "other files: notes.txt is Deleting, not Available"},
		{name: "partial skips the others", meta: record, only: []string{"a"},
			assets: []hub.VersionAsset{ok("a.rugixb", bundleMeta(hash)), ok("a.img.xz", nil), {Filename: "b.img.xz", Status: hub.AssetDangling}}},
		{name: "partial still checks its systems", meta: record, only: []string{"b"},
			assets:   []hub.VersionAsset{ok("a.rugixb", bundleMeta(hash)), ok("a.img.xz", nil)},
			problems: "b: no bundle (b.rugixb or b.raucb), b.rugixb not attached, b.img.xz not attached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := CheckComplete(&hub.VersionDetails{Metadata: tc.meta, Assets: tc.assets}, tc.project, tc.only)
			got := c.String()
			if tc.problems == "" && !c.Complete() || tc.problems != "" && !strings.HasPrefix(got, tc.problems) {
				t.Errorf("problems %q, want %q", got, tc.problems)
			}
		})
	}
}

func TestMergeRecord(t *testing.T) {
	for _, tc := range []struct {
		name, meta string
		assets     map[string][]string
		want       string
		changed    bool
		err        string
	}{
		{name: "empty", meta: ``, assets: map[string][]string{"a": {"a.rugixb"}}, changed: true,
			want: `{"otabake":{"assets":{"a":["a.rugixb"]},"systems":["a"]}}`},
		{name: "keeps other keys", meta: `{"imageVersion":"v","x":[1],"otabake":{"y":true,"systems":["b"],"assets":{"b":["b.raucb"]}}}`,
			assets: map[string][]string{"a": {"a.rugixb", "a.img.xz"}}, changed: true,
			want: `{"imageVersion":"v","otabake":{"assets":{"a":["a.img.xz","a.rugixb"],"b":["b.raucb"]},"systems":["a","b"],"y":true},"x":[1]}`},
		{name: "unchanged", meta: `{"otabake":{"systems":["a"],"assets":{"a":["a.rugixb"]}}}`,
			assets: map[string][]string{"a": {"a.rugixb"}},
			want:   `{"otabake":{"systems":["a"],"assets":{"a":["a.rugixb"]}}}`},
		{name: "not an object", meta: `[1]`, assets: map[string][]string{"a": nil}, err: "not a JSON object"},
		{name: "bad systems", meta: `{"otabake":{"systems":"a"}}`, assets: map[string][]string{"a": nil}, err: "otabake.systems"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, changed, err := mergeRecord(json.RawMessage(tc.meta), tc.assets)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || string(out) != tc.want || changed != tc.changed {
				t.Fatalf("mergeRecord = %s, %v, %v; want %s, %v", out, changed, err, tc.want, tc.changed)
			}
		})
	}
}
