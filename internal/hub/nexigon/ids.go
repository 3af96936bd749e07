package nexigon

import (
	"fmt"
	"strconv"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// idField is one ID in a Hub answer: where it is (its JSON path, such as "versions[2].versionId"),
// the kind nexigon-api types it with, and what the answer holds.
type idField struct {
	path     string
	kind     nexid.Kind
	value    string
	optional bool // absent ("") is allowed; anything present is still checked
}

// absent is a field the answer must not have: the zero kind admits no ID.
func absent(path, value string) idField { return idField{path: path, value: value, optional: true} }

// wantID is a required ID field of an answer.
func wantID(path string, k nexid.Kind, value string) idField { return idField{path, k, value, false} }

// mayID is an ID field an answer may leave out.
func mayID(path string, k nexid.Kind, value string) idField { return idField{path, k, value, true} }

// checkIDs is the one place the client checks the IDs of a Hub answer against nexid's kind
// table (prefix, raw form and raw length, nexigon/nexigon crates/libs/nexigon-ids/src/lib.rs):
// every output field typed as an ID in nexigon-api's schemas is one, and the Hub never answers
// with anything else. A malformed, truncated or wrong-kind ID (from a broken Hub or a man in
// the middle) is refused before the caller uses it as a path or a key. The error names the
// action, the field and the kind wanted, and never the value, which may be a secret.
func checkIDs(action string, fields ...idField) error {
	for _, f := range fields {
		if f.value == "" {
			if f.optional {
				continue
			}
			return fmt.Errorf("%s: answer field %s: %w", action, f.path, &nexid.Error{Kind: f.kind, Reason: "missing"})
		}
		if f.kind.Name == "" {
			return fmt.Errorf("%s: answer field %s: not expected in this answer", action, f.path)
		}
		if err := f.kind.Check(f.value); err != nil {
			return fmt.Errorf("%s: answer field %s: %w", action, f.path, err)
		}
	}
	return nil
}

// at returns the JSON path of field in the i-th element of list.
func at(list string, i int, field string) string {
	return list + "[" + strconv.Itoa(i) + "]." + field
}

// actorIDs are the ID fields of actor_GetActor's actor (nexigon/nexigon
// crates/libs/nexigon-api/schemas/actor.sidex): DeviceActor has device_id and token_id
// (DeploymentTokenId), UserTokenActor user_id and token_id (UserTokenId),
// OrganizationApiTokenActor organization_id and token_id (OrganizationApiTokenId), UserActor
// user_id. Those are required; an ID field a variant does not define is checked when present,
// and a tokenId of a variant without one must be absent.
func actorIDs(a hub.Actor) []idField {
	dev := mayID("actor.deviceId", nexid.DeviceID, a.DeviceID)
	user := mayID("actor.userId", nexid.UserID, a.UserID)
	org := mayID("actor.organizationId", nexid.OrganizationID, a.OrganizationID)
	tok := absent("actor.tokenId", a.TokenID)
	switch a.Kind {
	case "Device":
		dev.optional = false
		tok = wantID("actor.tokenId", nexid.DeploymentTokenID, a.TokenID)
	case "UserToken":
		user.optional = false
		tok = wantID("actor.tokenId", nexid.UserTokenID, a.TokenID)
	case "OrganizationApiToken":
		org.optional = false
		tok = wantID("actor.tokenId", nexid.OrganizationAPITokenID, a.TokenID)
	case "User":
		user.optional = false
	}
	return []idField{dev, user, org, tok}
}
