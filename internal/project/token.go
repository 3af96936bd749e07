package project

import "strings"

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

// tokenRules are the secret ID kinds of nexigon/nexigon crates/libs/nexigon-ids/src/lib.rs
// (define_types!: tag, raw size, secret = true). All of them use a FlatRawId: base-58 digits only.
var tokenRules = []struct {
	tag  string
	size int
	kind TokenKind
}{
	{"u_sk", 66, TokenUser},
	{"org_sk", 66, TokenOrganization},
	{"deployment", 66, TokenDeployment},
	{"u_session_sk", 66, TokenUserSession},
	{"d_sk", 44, TokenDevice},
}

// base58 is nexigon-ids' ALPHABET_BASE58 (no 0, O, I, l).
const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// ClassifyToken tells the kind of a token the way nexigon-ids' AnyId::from_str parses it: the
// tag is everything before the last "_" and must be a known tag, and the raw part must be
// base-58 digits of exactly the tag's raw size.
func ClassifyToken(token string) TokenKind {
	i := strings.LastIndexByte(token, '_')
	if i < 0 {
		return TokenUnknown
	}
	tag, raw := token[:i], token[i+1:]
	for _, r := range tokenRules {
		if r.tag != tag {
			continue
		}
		if len(raw) != r.size {
			return TokenUnknown
		}
		for j := 0; j < len(raw); j++ {
			if strings.IndexByte(base58, raw[j]) < 0 {
				return TokenUnknown
			}
		}
		return r.kind
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
