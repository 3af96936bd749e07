package hubtest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// RunStrict runs the scenarios that hold otabake's Hubs to the real Hub's input rules, one
// scenario per rule, each naming its upstream source, so that the next drift fails here.
func RunStrict(t *testing.T, newHub func(t *testing.T) Fixture) {
	t.Run("StrictIDKinds", func(t *testing.T) { testStrictIDKinds(t, newHub(t)) })
	t.Run("StrictEventIDs", func(t *testing.T) { testStrictEventIDs(t, newHub(t)) })
	t.Run("StrictDeviceIDs", func(t *testing.T) { testStrictDeviceIDs(t, newHub(t)) })
	t.Run("StrictNameLengths", func(t *testing.T) { testStrictNames(t, newHub(t)) })
	t.Run("StrictDigests", func(t *testing.T) { testStrictDigests(t, newHub(t)) })
	t.Run("StrictMetadataObjects", func(t *testing.T) { testStrictMetadata(t, newHub(t)) })
	t.Run("StrictTokenKinds", func(t *testing.T) { testStrictTokens(t, newHub(t)) })
}

func wantInvalid(t *testing.T, what string, err error) {
	t.Helper()
	if !hub.IsKind(err, hub.KindInvalid) {
		t.Errorf("%s: err = %v, want an Invalid ActionError", what, err)
	}
}

// Rule: every ID field of an action is a typed nexigon-ids ID, so an ID of another kind or
// of the wrong raw length does not deserialize. Sources: nexigon/nexigon
// crates/libs/nexigon-ids/src/lib.rs (define_types!: prefix and raw size per kind;
// TryFrom checks the size) and crates/libs/nexigon-api/schemas/repositories.sidex (repository_id:
// RepositoryId, package_id: PackageId, version_id: PackageVersionId, asset_id: RepositoryAssetId).
func testStrictIDKinds(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	v, _ := prepare(t, f, pkg.PackageID, "build-strict-ids")
	up := uploadFile(t, f, pkg, "a.bin", 64, 3)
	short := func(id string) string { return id[:len(id)-1] }
	long := func(id string) string { return id + "A" }

	_, _, err := f.Hub.CreatePackage(ctx, short(pkg.RepositoryID), "x")
	wantInvalid(t, "CreatePackage with a 21-character repository ID", err)
	_, _, err = f.Hub.CreatePackage(ctx, pkg.PackageID, "x")
	wantInvalid(t, "CreatePackage with a package ID as repository ID", err)
	_, err = f.Hub.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: v})
	wantInvalid(t, "CreateVersion with a version ID as package ID", err)
	_, err = f.Hub.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: long(pkg.PackageID)})
	wantInvalid(t, "CreateVersion with a 23-character package ID", err)
	_, err = f.Hub.QueryVersions(ctx, "pkg_not-an-id")
	wantInvalid(t, "QueryVersions with pkg_not-an-id", err)
	_, err = f.Hub.GetVersionDetails(ctx, pkg.PackageID)
	wantInvalid(t, "GetVersionDetails with a package ID", err)
	_, err = f.Hub.GetVersionDetails(ctx, strings.Replace(v, v[len(v)-1:], "0", 1))
	if err == nil {
		t.Error("GetVersionDetails with a '0' (not base-58) in the ID succeeded")
	}
	_, _, err = f.Hub.CreateAsset(ctx, short(pkg.RepositoryID), 1, up.Digest)
	wantInvalid(t, "CreateAsset with a 21-character repository ID", err)
	_, err = f.Hub.GetAssetDetails(ctx, "repo_a_x")
	wantInvalid(t, "GetAssetDetails with repo_a_x", err)
	_, err = f.Hub.AddVersionAsset(ctx, v, pkg.RepositoryID, "a.bin", nil)
	wantInvalid(t, "AddVersionAsset with a repository ID as asset ID", err)
	err = f.Hub.TagVersion(ctx, long(v), []hub.TagItem{{Tag: "x", Reassign: true}})
	wantInvalid(t, "TagVersion with a 23-character version ID", err)
	// Well-formed IDs that name nothing are not format errors.
	if _, err := f.Hub.GetAssetDetails(ctx, nexid.RepositoryAssetID.New()); err == nil {
		t.Error("GetAssetDetails of an unknown asset succeeded")
	}
	// What the Hub makes has the Hub's form.
	for _, c := range []struct {
		k  nexid.Kind
		id string
	}{{nexid.RepositoryID, pkg.RepositoryID}, {nexid.PackageID, pkg.PackageID}, {nexid.PackageVersionID, v}, {nexid.RepositoryAssetID, up.AssetID}} {
		if err := c.k.Check(c.id); err != nil {
			t.Errorf("the Hub made %q: %v", c.id, err)
		}
	}
}

// Rule: DeviceEvent.event_id is a DeviceEventId, required and made by the client: "d_ev_" and a
// DatedRawId of 22 characters, YYYYMMDD-HHMM- and 8 base-58 digits. Sources: nexigon/nexigon
// crates/libs/nexigon-api/schemas/devices.sidex (DeviceEvent) and
// crates/libs/nexigon-ids/src/lib.rs (DeviceEventId => (DatedRawId, "d_ev", 22);
// DatedRawId::from_str).
func testStrictEventIDs(t *testing.T, f Fixture) {
	ctx := context.Background()
	dev := deviceOf(f)
	at := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	ev := func(id string) []hub.Event {
		return []hub.Event{{EventID: id, Severity: hub.SeverityInfo, Body: json.RawMessage(`"x"`), Attributes: map[string]json.RawMessage{}, EmittedAt: at}}
	}
	for _, id := range []string{
		"",                                // required
		"d_ev_20260401-1200-AbCdEfGhJkLm", // 26 characters: what otabake's agent once made
		"d_ev_20260401-1200-AbCdEfG",      // 21
		"d_ev_20260401-1200-AbCdEfG0",     // 0 is not base-58
		"d_ev_2026041-12000-AbCdEfGh",     // date of 7 digits
		"d_ev_AbCdEfGhJkLmNpQrStUvWx",     // flat, not dated
		"ev_20260401-1200-AbCdEfGh",       // prefix
		"d_20260401-1200-AbCdEfGh",
	} {
		wantInvalid(t, "event ID "+id, f.Hub.PublishEvents(ctx, dev, ev(id)))
	}
	good := nexid.DeviceEventID.NewAt(at)
	if err := f.Hub.PublishEvents(ctx, dev, ev(good)); err != nil {
		t.Fatalf("event ID %s: %v", good, err)
	}
	got := must[[]hub.Event](t, "query events")(f.Hub.QueryEvents(ctx, dev, 10))
	if len(got) != 1 || got[0].EventID != good {
		t.Errorf("events %+v, want only %s", got, good)
	}
}

func deviceOf(f Fixture) string {
	if f.DeviceID != "" {
		return f.DeviceID
	}
	return "d_3bD6kJ8nR2mQ5vW9xY1zA7"
}

// Rule: device_id of every device action is a DeviceId, "d_" and 22 base-58 digits; a name is
// not a device ID. Sources: nexigon/nexigon crates/libs/nexigon-api/schemas/devices.sidex
// (device_id: DeviceId) and crates/libs/nexigon-ids/src/lib.rs (DeviceId => (FlatRawId, "d", 22)).
func testStrictDeviceIDs(t *testing.T, f Fixture) {
	ctx := context.Background()
	for _, dev := range []string{"vm-1", "d_lab1", "d_ev_20260401-1200-AbCdEfGh", "d_3bD6kJ8nR2mQ5vW9xY1zA"} {
		_, _, err := f.Hub.GetProperty(ctx, dev, "dev.nexigon.ota.status")
		wantInvalid(t, "GetProperty of device "+dev, err)
		wantInvalid(t, "SetProperty of device "+dev, f.Hub.SetProperty(ctx, dev, "p", json.RawMessage(`1`)))
		_, err = f.Hub.QueryEvents(ctx, dev, 1)
		wantInvalid(t, "QueryEvents of device "+dev, err)
	}
}

// Rule: names and their lengths. Repository, package and tag names (and the path parts that
// resolve them) are 1..128 of ^[a-zA-Z0-9][a-zA-Z0-9._-]*$; a version name 1..128; a filename
// 1..256; a property name 1..256 of the same pattern; an event category 1..128. Sources:
// nexigon/nexigon crates/libs/nexigon-api/schemas/repositories.sidex (CreatePackageAction.name,
// AddTagItem.tag, ResolvePackageVersionByPathAction, CreatePackageVersionAction.name,
// AddPackageVersionAssetAction.filename) and devices.sidex (SetDevicePropertyAction.name,
// DeviceEvent.category).
func testStrictNames(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	n128, n129 := strings.Repeat("n", 128), strings.Repeat("n", 129)
	if _, existed, err := f.Hub.CreatePackage(ctx, pkg.RepositoryID, n128); err != nil || existed {
		t.Errorf("package name of 128 characters: existed=%v err=%v", existed, err)
	}
	_, _, err := f.Hub.CreatePackage(ctx, pkg.RepositoryID, n129)
	wantInvalid(t, "package name of 129 characters", err)
	if _, found, err := f.Hub.ResolvePackage(ctx, f.Repository, n128); err != nil || !found {
		t.Errorf("resolve package of 128 characters: found=%v err=%v", found, err)
	}
	_, _, err = f.Hub.ResolvePackage(ctx, f.Repository, n129)
	wantInvalid(t, "resolve a package name of 129 characters", err)
	_, _, err = f.Hub.ResolveVersion(ctx, hub.VersionPath{Repository: f.Repository, Package: f.Package, Tag: "-x"})
	wantInvalid(t, "resolve tag -x", err)
	v, _ := prepare(t, f, pkg.PackageID, "build-strict-names")
	if err := f.Hub.TagVersion(ctx, v, []hub.TagItem{{Tag: "t" + n128[1:], Reassign: true}}); err != nil {
		t.Errorf("tag of 128 characters: %v", err)
	}
	wantInvalid(t, "tag of 129 characters", f.Hub.TagVersion(ctx, v, []hub.TagItem{{Tag: n129, Reassign: true}}))
	if _, err := f.Hub.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: pkg.PackageID, Name: n128}); err != nil {
		t.Errorf("version name of 128 characters: %v", err)
	}
	_, err = f.Hub.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: pkg.PackageID, Name: n129})
	wantInvalid(t, "version name of 129 characters", err)
	up := uploadFile(t, f, pkg, "a.bin", 64, 4)
	if _, err := f.Hub.AddVersionAsset(ctx, v, up.AssetID, strings.Repeat("f", 256), nil); err != nil {
		t.Errorf("filename of 256 characters: %v", err)
	}
	_, err = f.Hub.AddVersionAsset(ctx, v, up.AssetID, strings.Repeat("f", 257), nil)
	wantInvalid(t, "filename of 257 characters", err)
	dev := deviceOf(f)
	if err := f.Hub.SetProperty(ctx, dev, "p"+strings.Repeat("x", 255), json.RawMessage(`1`)); err != nil {
		t.Errorf("property name of 256 characters: %v", err)
	}
	wantInvalid(t, "property name of 257 characters", f.Hub.SetProperty(ctx, dev, strings.Repeat("x", 257), json.RawMessage(`1`)))
	wantInvalid(t, "property name .x", f.Hub.SetProperty(ctx, dev, ".x", json.RawMessage(`1`)))
	ev := hub.Event{EventID: nexid.DeviceEventID.New(), Severity: hub.SeverityInfo, Body: json.RawMessage(`1`), Attributes: map[string]json.RawMessage{}, EmittedAt: time.Now()}
	ev.Category = strings.Repeat("c", 128)
	if err := f.Hub.PublishEvents(ctx, dev, []hub.Event{ev}); err != nil {
		t.Errorf("event category of 128 characters: %v", err)
	}
	ev.EventID, ev.Category = nexid.DeviceEventID.New(), strings.Repeat("c", 129)
	wantInvalid(t, "event category of 129 characters", f.Hub.PublishEvents(ctx, dev, []hub.Event{ev}))
}

// Rule: a digest is "<algorithm>:<hex>" (the Hub also reads '_', which nexigon-cli writes),
// with a known algorithm (sha256, sha512_256, sha512) and exactly the algorithm's size. Sources:
// nexigon/nexigon crates/libs/nexigon-api/schemas/digest.sidex (si_crypto_hashes::HashDigest,
// whose FromStr splits the algorithm, hex-decodes and checks the size) and
// crates/libs/nexigon-common/src/repository_upload.rs (sha256_ digests).
func testStrictDigests(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	hex64 := strings.Repeat("ab", 32)
	for _, d := range []string{
		"", hex64, "sha256" + hex64, "md5_" + strings.Repeat("ab", 16), "blake3_" + hex64,
		"sha256_" + hex64[:62], "sha256_" + hex64 + "ab", "sha256_" + strings.Repeat("zz", 32),
		"sha512_" + hex64, // 32 bytes for a 64-byte algorithm
	} {
		_, _, err := f.Hub.CreateAsset(ctx, pkg.RepositoryID, 1, hub.Digest(d))
		wantInvalid(t, "digest "+d, err)
	}
	for _, d := range []string{"sha256_" + hex64, "sha256:" + strings.Repeat("cd", 32), "sha512-256:" + strings.Repeat("ef", 32), "sha512_" + strings.Repeat("12", 64)} {
		if _, _, err := f.Hub.CreateAsset(ctx, pkg.RepositoryID, 1, hub.Digest(d)); err != nil {
			t.Errorf("digest %s: %v", d, err)
		}
	}
}

// Rule: metadata is [string: JsonValue], a JSON object: optional (absent or null) on
// CreateVersion and AddVersionAsset, required on SetVersionMetadata and SetVersionAssetMetadata.
// Source: nexigon/nexigon crates/libs/nexigon-api/schemas/repositories.sidex
// (CreatePackageVersionAction.metadata?, SetPackageVersionMetadataAction.metadata,
// AddPackageVersionAssetAction.metadata?, SetPackageVersionAssetMetadataAction.metadata).
func testStrictMetadata(t *testing.T, f Fixture) {
	ctx := context.Background()
	pkg := packageID(t, f)
	notObjects := []string{`[1,2]`, `"x"`, `7`, `true`}
	for _, md := range notObjects {
		_, err := f.Hub.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: pkg.PackageID, Metadata: json.RawMessage(md)})
		wantInvalid(t, "CreateVersion metadata "+md, err)
	}
	v, _ := prepare(t, f, pkg.PackageID, "build-strict-md")
	up := uploadFile(t, f, pkg, "a.bin", 64, 5)
	for _, md := range notObjects {
		wantInvalid(t, "SetVersionMetadata "+md, f.Hub.SetVersionMetadata(ctx, v, json.RawMessage(md)))
		_, err := f.Hub.AddVersionAsset(ctx, v, up.AssetID, "a.bin", json.RawMessage(md))
		wantInvalid(t, "AddVersionAsset metadata "+md, err)
	}
	wantInvalid(t, "SetVersionMetadata null", f.Hub.SetVersionMetadata(ctx, v, json.RawMessage(`null`)))
	if _, err := f.Hub.AddVersionAsset(ctx, v, up.AssetID, "a.bin", json.RawMessage(`null`)); err != nil {
		t.Fatalf("AddVersionAsset without metadata: %v", err)
	}
	wantInvalid(t, "SetVersionAssetMetadata []", f.Hub.SetVersionAssetMetadata(ctx, v, "a.bin", json.RawMessage(`[]`)))
	wantInvalid(t, "SetVersionAssetMetadata null", f.Hub.SetVersionAssetMetadata(ctx, v, "a.bin", json.RawMessage(`null`)))
	if err := f.Hub.SetVersionAssetMetadata(ctx, v, "a.bin", json.RawMessage(`{}`)); err != nil {
		t.Errorf("SetVersionAssetMetadata {}: %v", err)
	}
}

// Rule: the actions API takes a user token (u_sk_ + 66) or an organization API token (org_sk_
// + 66); a device's deployment token is refused as Forbidden, the ActionErrorKind of a refused
// actor, and never echoed. Sources: nexigon/nexigon crates/apps/nexigon-cli/src/config/mod.rs
// (AuthenticationToken: OrganizationApiToken or UserToken only),
// crates/libs/nexigon-client/src/lib.rs (a DeploymentToken goes with X-Deployment-Token and a
// device fingerprint), crates/libs/nexigon-api/schemas/errors.sidex (ActionErrorKind) and
// crates/libs/nexigon-ids/src/lib.rs (u_sk, org_sk, deployment: 66).
func testStrictTokens(t *testing.T, f Fixture) {
	if f.HTTP == nil || f.HTTP.WithToken == nil {
		t.Skip("in-process Hub: no token")
	}
	ctx := context.Background()
	dep := nexid.DeploymentToken.New()
	_, _, err := f.HTTP.WithToken(t, dep).ResolveRepository(ctx, f.Repository)
	if !hub.IsKind(err, hub.KindForbidden) || !strings.Contains(err.Error(), "deployment") {
		t.Errorf("deployment token: %v, want Forbidden naming deployment tokens", err)
	}
	if err != nil && strings.Contains(err.Error(), dep[len("deployment_"):]) {
		t.Errorf("error leaks the token: %v", err)
	}
	for _, tok := range []string{nexid.UserToken.New(), nexid.OrganizationAPIToken.New()} {
		if _, _, err := f.HTTP.WithToken(t, tok).ResolveRepository(ctx, f.Repository); !hub.IsKind(err, hub.KindForbidden) {
			t.Errorf("another well-formed token: %v, want Forbidden", err)
		}
	}
	a := must[hub.Actor](t, "actor")(f.Hub.GetActor(ctx))
	switch a.Kind {
	case "OrganizationApiToken":
		if !nexid.OrganizationID.Is(a.OrganizationID) || !nexid.OrganizationAPITokenID.Is(a.TokenID) {
			t.Errorf("actor %+v: want org_ and org_pk_ IDs", a)
		}
	case "UserToken":
		if !nexid.UserID.Is(a.UserID) || !nexid.UserTokenID.Is(a.TokenID) {
			t.Errorf("actor %+v: want u_ and u_pk_ IDs", a)
		}
	default:
		t.Errorf("actor %+v: want UserToken or OrganizationApiToken", a)
	}
}
