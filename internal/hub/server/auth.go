package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// checkServerToken accepts only the tokens the Hub's actions API takes from outside a device:
// a user token (u_sk_ + 66) or an organization API token (org_sk_ + 66), the two nexigon-cli
// accepts (nexigon/nexigon crates/apps/nexigon-cli/src/config/mod.rs, AuthenticationToken).
func checkServerToken(token string) (nexid.Kind, error) {
	k, err := nexid.CheckAPIToken(token)
	if err != nil {
		return k, fmt.Errorf("hub server: the token must be a user token (u_sk_ and 66 base-58 characters) or an organization API token (org_sk_ and 66), as on Nexigon Hub: %w", err)
	}
	return k, nil
}

// authenticate checks the bearer token of an action request. The scheme is case-insensitive
// (RFC 9110) and the comparison takes constant time. Every refusal is Forbidden, the only
// ActionErrorKind for a refused actor (nexigon/nexigon crates/libs/nexigon-api/schemas/
// errors.sidex). A deployment token is refused with a message of its own: it authenticates a
// device only together with its fingerprint and a client certificate checked through mutual
// TLS (nexigon/nexigon crates/libs/nexigon-client/src/lib.rs, connect: X-Deployment-Token and
// X-Device-Fingerprint; the removed AuthenticateDeviceAction, git show 572704a -- crates/libs/
// nexigon-api/schemas/devices.sidex), never as a plain bearer token.
func (s *server) authenticate(r *http.Request) *hub.ActionError {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return hub.Errorf(hub.KindForbidden, "missing or invalid bearer token")
	}
	tok = strings.TrimSpace(tok)
	if nexid.DeploymentToken.Is(tok) {
		return hub.Errorf(hub.KindForbidden, "a deployment token (deployment_…) authenticates devices through nexigon-agent, not the actions API; use a user token (u_sk_…) or an organization API token (org_sk_…)")
	}
	if subtle.ConstantTimeCompare([]byte(tok), s.token) != 1 {
		return hub.Errorf(hub.KindForbidden, "missing or invalid bearer token")
	}
	return nil
}

// actor is what actor_GetActor answers for the server's token: the kind follows the token
// (UserToken or OrganizationApiToken, nexigon/nexigon crates/libs/nexigon-api/schemas/
// actor.sidex) and tokenId is the token's public ID, its first 22 raw characters
// (nexigon-ids UserToken::token_id, OrganizationApiToken::token_id).
func (s *server) actor(a hub.Actor) hub.Actor {
	tok := string(s.token)
	a.TokenID, _ = nexid.TokenID(tok)
	if nexid.UserToken.Is(tok) {
		sum := sha256.Sum256(s.token)
		a.Kind, a.OrganizationID, a.UserID = "UserToken", "", nexid.UserID.Derive(sum[:])
	}
	return a
}
