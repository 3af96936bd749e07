package nexigon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// Valid IDs of every kind the answers carry, derived so that runs are reproducible.
var (
	idRepo    = nexid.RepositoryID.Derive([]byte("repository"))
	idPkg     = nexid.PackageID.Derive([]byte("package"))
	idVer     = nexid.PackageVersionID.Derive([]byte("version 1"))
	idVer2    = nexid.PackageVersionID.Derive([]byte("version 2"))
	idAsset   = nexid.RepositoryAssetID.Derive([]byte("asset 1"))
	idAsset2  = nexid.RepositoryAssetID.Derive([]byte("asset 2"))
	idDev     = nexid.DeviceID.Derive([]byte("device"))
	idEv      = nexid.DeviceEventID.NewAt(time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC))
	idEv2     = nexid.DeviceEventID.NewAt(time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC))
	idDepTok  = nexid.DeploymentTokenID.Derive([]byte("deployment token"))
	idUser    = nexid.UserID.Derive([]byte("user"))
	idUserTok = nexid.UserTokenID.Derive([]byte("user token"))
	idOrg     = nexid.OrganizationID.Derive([]byte("organization"))
	idOrgTok  = nexid.OrganizationAPITokenID.Derive([]byte("organization token"))
)

// idReplacer turns the @-placeholders of test JSON into the IDs above (longer placeholders
// first, where one is a prefix of another).
var idReplacer = strings.NewReplacer(
	"@repo", idRepo, "@pkg", idPkg, "@ver2", idVer2, "@ver", idVer, "@asset2", idAsset2, "@asset", idAsset,
	"@dev", idDev, "@ev2", idEv2, "@ev", idEv, "@deptok", idDepTok, "@usertok", idUserTok, "@user", idUser,
	"@orgtok", idOrgTok, "@org", idOrg,
)

// idJSON replaces the ID placeholders of test JSON.
func idJSON(s string) string { return idReplacer.Replace(s) }

// validOf returns a valid ID of kind k (dated kinds need a date, which Derive does not give).
func validOf(k nexid.Kind) string {
	if k.Dated {
		return k.NewAt(time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC))
	}
	return k.Derive([]byte(k.Name))
}

// TestAnswerIDsChecked answers every action that returns IDs with each of its ID fields in turn
// replaced by an ID of another kind, one character short, one too long and nothing, and wants
// each refused with an error naming the action, the field and the kind wanted, never the value.
func TestAnswerIDsChecked(t *testing.T) {
	ctx := context.Background()
	vp := hub.VersionPath{Repository: "r", Package: "p", Tag: "t"}
	type field struct {
		path, placeholder string
		kind, wrong       nexid.Kind // the kind wanted; a kind a confused Hub might send instead
	}
	repoF := field{"repositoryId", "@repo", nexid.RepositoryID, nexid.RepositoryAssetID}
	pkgF := field{"packageId", "@pkg", nexid.PackageID, nexid.PackageVersionID}
	verF := field{"versionId", "@ver", nexid.PackageVersionID, nexid.PackageID}
	assetF := field{"assetId", "@asset", nexid.RepositoryAssetID, nexid.RepositoryID}
	tests := []struct {
		name   string
		action string
		answer string
		call   func(c *Client) error
		fields []field
	}{
		{"resolve repository", actResolveName, `{"result":"Found","repositoryId":"@repo"}`,
			func(c *Client) error { _, _, err := c.ResolveRepository(ctx, "r"); return err },
			[]field{repoF}},
		{"resolve package", actResolvePackage, `{"result":"Found","repositoryId":"@repo","packageId":"@pkg"}`,
			func(c *Client) error { _, _, err := c.ResolvePackage(ctx, "r", "p"); return err },
			[]field{repoF, pkgF}},
		{"resolve version", actResolveVersion, `{"result":"Found","repositoryId":"@repo","packageId":"@pkg","versionId":"@ver"}`,
			func(c *Client) error { _, _, err := c.ResolveVersion(ctx, vp); return err },
			[]field{repoF, pkgF, verF}},
		{"resolve version asset", actResolveVersionAsset, `{"result":"Found","repositoryId":"@repo","packageId":"@pkg","versionId":"@ver","assetId":"@asset"}`,
			func(c *Client) error { _, _, err := c.ResolveVersionAsset(ctx, vp, "f"); return err },
			[]field{repoF, pkgF, verF, assetF}},
		{"create package", actCreatePackage, `{"result":"Created","packageId":"@pkg"}`,
			func(c *Client) error { _, _, err := c.CreatePackage(ctx, idRepo, "p"); return err },
			[]field{pkgF}},
		{"create version", actCreateVersion, `{"result":"Created","versionId":"@ver"}`,
			func(c *Client) error {
				_, err := c.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: idPkg})
				return err
			},
			[]field{verF}},
		{"version details", actGetVersionDetails,
			`{"versionId":"@ver","repositoryId":"@repo","packageId":"@pkg","assets":[` +
				`{"filename":"a","assetId":"@asset","size":1,"digest":"sha256_00","status":"Available"},` +
				`{"filename":"b","assetId":"@asset2","size":1,"digest":"sha256_00","status":"Available"}],"tags":[]}`,
			func(c *Client) error { _, err := c.GetVersionDetails(ctx, idVer); return err },
			[]field{verF, repoF, pkgF,
				{"assets[0].assetId", "@asset", nexid.RepositoryAssetID, nexid.RepositoryID},
				{"assets[1].assetId", "@asset2", nexid.RepositoryAssetID, nexid.PackageVersionID}}},
		{"query versions", actQueryVersions,
			`{"versions":[{"versionId":"@ver","createdAt":"2026-01-01T00:00:00Z","tags":[]},{"versionId":"@ver2","createdAt":"2026-01-01T00:00:00Z","tags":[]}]}`,
			func(c *Client) error { _, err := c.QueryVersions(ctx, idPkg); return err },
			[]field{{"versions[0].versionId", "@ver", nexid.PackageVersionID, nexid.PackageID},
				{"versions[1].versionId", "@ver2", nexid.PackageVersionID, nexid.RepositoryAssetID}}},
		{"create asset", actCreateAsset, `{"result":"Created","assetId":"@asset"}`,
			func(c *Client) error { _, _, err := c.CreateAsset(ctx, idRepo, 1, "sha256_00"); return err },
			[]field{assetF}},
		{"create asset exists", actCreateAsset, `{"result":"AssetAlreadyExists","assetId":"@asset"}`,
			func(c *Client) error { _, _, err := c.CreateAsset(ctx, idRepo, 1, "sha256_00"); return err },
			[]field{assetF}},
		{"asset details", actGetAssetDetails, `{"assetId":"@asset","size":5,"digest":"sha256_00","status":"Available","referenceCount":1}`,
			func(c *Client) error { _, err := c.GetAssetDetails(ctx, idAsset); return err },
			[]field{assetF}},
		// A token where its public ID belongs is the case that must never be echoed.
		{"device actor", actGetActor, `{"actor":{"actor":"Device","deviceId":"@dev","tokenId":"@deptok"}}`,
			func(c *Client) error { _, err := c.GetActor(ctx); return err },
			[]field{{"actor.deviceId", "@dev", nexid.DeviceID, nexid.DeviceFingerprint},
				{"actor.tokenId", "@deptok", nexid.DeploymentTokenID, nexid.DeploymentToken}}},
		{"user token actor", actGetActor, `{"actor":{"actor":"UserToken","userId":"@user","tokenId":"@usertok"}}`,
			func(c *Client) error { _, err := c.GetActor(ctx); return err },
			[]field{{"actor.userId", "@user", nexid.UserID, nexid.UserTokenID},
				{"actor.tokenId", "@usertok", nexid.UserTokenID, nexid.UserToken}}},
		{"organization token actor", actGetActor, `{"actor":{"actor":"OrganizationApiToken","organizationId":"@org","tokenId":"@orgtok"}}`,
			func(c *Client) error { _, err := c.GetActor(ctx); return err },
			[]field{{"actor.organizationId", "@org", nexid.OrganizationID, nexid.OrganizationAPITokenID},
				{"actor.tokenId", "@orgtok", nexid.OrganizationAPITokenID, nexid.OrganizationAPIToken}}},
		{"query events", actQueryEvents,
			`{"events":[{"eventId":"@ev","severity":"Info","body":1,"attributes":{},"emittedAt":"2026-01-01T00:00:00Z"},` +
				`{"eventId":"@ev2","severity":"Info","body":2,"attributes":{},"emittedAt":"2026-01-01T00:00:00Z"}]}`,
			func(c *Client) error { _, err := c.QueryEvents(ctx, idDev, 2); return err },
			[]field{{"events[0].eventId", "@ev", nexid.DeviceEventID, nexid.JobID},
				{"events[1].eventId", "@ev2", nexid.DeviceEventID, nexid.DeviceID}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newTestClient(t, ok(tt.answer))
			if err := tt.call(c); err != nil {
				t.Fatalf("valid answer refused: %v", err)
			}
			for _, f := range tt.fields {
				good := idJSON(f.placeholder)
				if err := f.kind.Check(good); err != nil || f.wrong.Check(good) == nil {
					t.Fatalf("%s: bad test: %q is not a %s only", f.path, good, f.kind)
				}
				for _, bad := range []struct{ what, value string }{
					{"wrong kind " + f.wrong.Name, validOf(f.wrong)},
					{"one short", good[:len(good)-1]},
					{"one too long", good + "x"},
					{"missing", ""},
				} {
					answer := strings.Replace(tt.answer, `"`+f.placeholder+`"`, `"`+bad.value+`"`, 1)
					c, _, _ := newTestClient(t, ok(answer))
					err := tt.call(c)
					if err == nil {
						t.Errorf("%s %s: accepted", f.path, bad.what)
						continue
					}
					msg := err.Error()
					if !strings.Contains(msg, tt.action+": answer field "+f.path+": ") || !strings.Contains(msg, f.kind.Name) {
						t.Errorf("%s %s: error does not name the action, field and kind wanted: %v", f.path, bad.what, err)
					}
					if bad.value != "" && strings.Contains(msg, bad.value) {
						t.Errorf("%s %s: error echoes the value: %v", f.path, bad.what, err)
					}
					var ne *nexid.Error
					if !errors.As(err, &ne) || ne.Kind != f.kind {
						t.Errorf("%s %s: error is not a *nexid.Error for %s: %#v", f.path, bad.what, f.kind, err)
					}
				}
			}
		})
	}
}

// TestActorIDs checks the actor's ID fields beyond the ones its variant requires: an ID the
// variant does not define is still checked when present, and a tokenId of a variant that has
// none is refused.
func TestActorIDs(t *testing.T) {
	tests := []struct {
		name, answer, wantErr string
	}{
		{"device actor with a user ID", `{"actor":{"actor":"Device","deviceId":"@dev","tokenId":"@deptok","userId":"@user"}}`, ""},
		{"device actor with a bad organization ID", `{"actor":{"actor":"Device","deviceId":"@dev","tokenId":"@deptok","organizationId":"@orgtok"}}`,
			"actor_GetActor: answer field actor.organizationId: invalid OrganizationId"},
		{"user actor", `{"actor":{"actor":"User","userId":"@user"}}`, ""},
		{"user actor without user", `{"actor":{"actor":"User"}}`, "actor_GetActor: answer field actor.userId: invalid UserId (want u_ and 22 characters): missing"},
		{"user actor with a token ID", `{"actor":{"actor":"User","userId":"@user","tokenId":"@usertok"}}`,
			"actor_GetActor: answer field actor.tokenId: not expected in this answer"},
		{"cluster node actor", `{"actor":{"actor":"ClusterNode","nodeId":"cluster_node_x"}}`, ""},
		{"anonymous actor with a token", `{"actor":{"actor":"Anonymous","tokenId":"` + testToken + `"}}`,
			"actor_GetActor: answer field actor.tokenId: not expected in this answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newTestClient(t, ok(tt.answer))
			_, err := c.GetActor(context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			case err != nil && (strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), idOrgTok)):
				t.Fatalf("error echoes the value: %v", err)
			}
		})
	}
}
