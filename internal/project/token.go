package project

import "github.com/otabake/otabake/internal/nexid"

// TokenKind is what a Hub credential is, recognised from its ID form.
type TokenKind string

// Token kinds. Only TokenUser and TokenOrganization may authenticate the build side: they are
// the two kinds nexigon-cli accepts (nexigon/nexigon crates/apps/nexigon-cli/src/config/mod.rs,
// AuthenticationToken::from_str).
const (
	TokenUser         TokenKind = "user"         // u_sk_…
	TokenOrganization TokenKind = "organization" // org_sk_…
	TokenDeployment   TokenKind = "deployment"   // deployment_…, a device credential
	TokenUserSession  TokenKind = "user-session" // u_session_sk_…, a web-session secret
	TokenDevice       TokenKind = "device"       // d_sk_…, a device fingerprint
	// TokenUnknown is anything that is not one of the secret kinds above with the right length
	// and alphabet: a typo, a truncated paste, a public ID or a token of another service.
	TokenUnknown TokenKind = "unknown"
)

// tokenKinds maps the secret ID kinds of nexid's table (nexigon/nexigon
// crates/libs/nexigon-ids/src/lib.rs, define_types! with secret = true) to TokenKind.
var tokenKinds = map[string]TokenKind{
	nexid.UserToken.Name:            TokenUser,
	nexid.OrganizationAPIToken.Name: TokenOrganization,
	nexid.DeploymentToken.Name:      TokenDeployment,
	nexid.UserSessionToken.Name:     TokenUserSession,
	nexid.DeviceFingerprint.Name:    TokenDevice,
}

// ClassifyToken tells the kind of a token the way nexigon-ids' AnyId::from_str parses it
// (nexid.Parse, the one ID table): the tag is everything before the last "_" and must be a
// known tag, and the raw part must be base-58 digits of exactly the tag's raw size. A
// well-formed ID that is not a secret (a token's public ID, say) is TokenUnknown.
func ClassifyToken(token string) TokenKind {
	k, err := nexid.Parse(token)
	if err != nil {
		return TokenUnknown
	}
	if tk, ok := tokenKinds[k.Name]; ok {
		return tk
	}
	return TokenUnknown
}

// BuildSideUsable reports whether the build side may send a token of this kind.
func (k TokenKind) BuildSideUsable() bool { return k == TokenUser || k == TokenOrganization }

// Describe names the kind for messages ("a user token (u_sk_…)").
func (k TokenKind) Describe() string {
	switch k {
	case TokenUser:
		return "a user token (u_sk_…)"
	case TokenOrganization:
		return "an organization API token (org_sk_…)"
	case TokenDeployment:
		return "a device deployment token (deployment_…)"
	case TokenUserSession:
		return "a web session token (u_session_sk_…)"
	case TokenDevice:
		return "a device fingerprint (d_sk_…)"
	}
	return "not a Nexigon user or organization API token"
}
