package local

import (
	"bytes"
	"encoding/json"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// RandomToken returns a fresh organization API token (org_sk_ + 66 base58), the form the Hub's
// CLI accepts, for `otabake hub serve` when the user gives none.
func RandomToken() string { return nexid.OrganizationAPIToken.New() }

// checkID refuses what is not a whole ID of kind k, as the Hub refuses an action whose input
// does not deserialize: every ID field of the actions is a typed nexigon-ids ID
// (nexigon/nexigon crates/libs/nexigon-api/schemas/repositories.sidex, devices.sidex).
func checkID(what string, k nexid.Kind, s string) error {
	if err := k.Check(s); err != nil {
		return hub.Errorf(hub.KindInvalid, "%s %q: %v", what, s, err)
	}
	return nil
}

// objectJSON is normJSON for metadata, which the Hub types as [string: JsonValue]: a JSON
// object (nexigon/nexigon crates/libs/nexigon-api/schemas/repositories.sidex,
// CreatePackageVersionAction.metadata and the other metadata fields). required is false for the
// optional fields (metadata?), where absent and null mean none.
func objectJSON(what string, raw json.RawMessage, required bool) (json.RawMessage, error) {
	md, err := normJSON(what, raw)
	if err != nil {
		return nil, err
	}
	if md == nil {
		if required {
			return nil, hub.Errorf(hub.KindInvalid, "%s is missing: want a JSON object", what)
		}
		return nil, nil
	}
	if md[0] != '{' || !bytes.HasSuffix(md, []byte("}")) {
		return nil, hub.Errorf(hub.KindInvalid, "%s is not a JSON object", what)
	}
	return md, nil
}
