// Package nexid is otabake's one definition of Nexigon IDs: every ID otabake parses or
// generates (repository, package, version, asset, device and event IDs, and the tokens that are
// IDs too) is checked here against the kind table of the Hub.
//
// An ID is "<prefix>_<raw>". A flat raw part is base-58 digits; a dated raw part is
// "YYYYMMDD-HHMM-" followed by base-58 digits. Each kind fixes the length of the whole raw
// part. The table, the alphabet and both parsers follow nexigon/nexigon
// crates/libs/nexigon-ids/src/lib.rs (define_types!, FlatRawId::from_str, DatedRawId::from_str,
// DatedRawId::generate).
package nexid

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Alphabet is the base-58 alphabet of raw IDs (no 0, O, I or l): ALPHABET_BASE58 in
// nexigon-ids.
const Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// Kind is one row of the Hub's ID table.
type Kind struct {
	// Name is the type's name in nexigon-ids (UserToken, DeviceEventId, ...).
	Name string
	// Prefix is the tag before the '_' that separates it from the raw part.
	Prefix string
	// RawLen is the length of the raw part in bytes.
	RawLen int
	// Dated is true for DatedRawId kinds ("YYYYMMDD-HHMM-" + base-58 digits).
	Dated bool
	// Secret is true for tokens: they are never printed.
	Secret bool
}

// The kinds of nexigon-ids' define_types!, in its order.
var (
	ClusterNodeID              = Kind{"ClusterNodeId", "cluster_node", 22, false, false}
	UserID                     = Kind{"UserId", "u", 22, false, false}
	UserToken                  = Kind{"UserToken", "u_sk", 66, false, true}
	UserTokenID                = Kind{"UserTokenId", "u_pk", 22, false, false}
	UserSessionToken           = Kind{"UserSessionToken", "u_session_sk", 66, false, true}
	UserSessionID              = Kind{"UserSessionId", "u_session_pk", 22, false, false}
	ProjectID                  = Kind{"ProjectId", "p", 22, false, false}
	DeploymentToken            = Kind{"DeploymentToken", "deployment", 66, false, true}
	DeploymentTokenID          = Kind{"DeploymentTokenId", "deployment_id", 22, false, false}
	DevicePairingKeyID         = Kind{"DevicePairingKeyId", "d_pairing", 22, false, false}
	DeviceID                   = Kind{"DeviceId", "d", 22, false, false}
	DeviceFingerprint          = Kind{"DeviceFingerprint", "d_sk", 44, false, true}
	DeviceFingerprintID        = Kind{"DeviceFingerprintId", "d_pk", 22, false, false}
	DeviceCertificateID        = Kind{"DeviceCertificateId", "d_c", 22, false, false}
	DeviceConnectionID         = Kind{"DeviceConnectionId", "d_conn", 22, false, false}
	DeviceEventID              = Kind{"DeviceEventId", "d_ev", 22, true, false}
	RepositoryID               = Kind{"RepositoryId", "repo", 22, false, false}
	RepositoryAssetID          = Kind{"RepositoryAssetId", "repo_a", 22, false, false}
	PackageID                  = Kind{"PackageId", "pkg", 22, false, false}
	PackageVersionID           = Kind{"PackageVersionId", "pkg_v", 22, false, false}
	FleetOperationID           = Kind{"FleetOperationId", "flt_op", 22, false, false}
	DeviceOperationID          = Kind{"DeviceOperationId", "d_op", 22, false, false}
	DeviceOperationWorkClaimID = Kind{"DeviceOperationWorkClaimId", "d_op_claim", 22, false, false}
	JobID                      = Kind{"JobId", "job", 22, true, false}
	AuditLogActionID           = Kind{"AuditLogActionId", "audit_act", 22, true, false}
	AuditLogEventID            = Kind{"AuditLogEventId", "audit_ev", 22, true, false}
	OrganizationID             = Kind{"OrganizationId", "org", 22, false, false}
	OrganizationInvitationID   = Kind{"OrganizationInvitationId", "org_invite", 22, false, false}
	OrganizationAPIToken       = Kind{"OrganizationApiToken", "org_sk", 66, false, true}
	OrganizationAPITokenID     = Kind{"OrganizationApiTokenId", "org_pk", 22, false, false}
	SubscriptionID             = Kind{"SubscriptionId", "subscription", 22, false, false}
	BillingPeriodID            = Kind{"BillingPeriodId", "billing_period", 22, false, false}
)

// Kinds is the whole table.
var Kinds = []Kind{
	ClusterNodeID, UserID, UserToken, UserTokenID, UserSessionToken, UserSessionID, ProjectID,
	DeploymentToken, DeploymentTokenID, DevicePairingKeyID, DeviceID, DeviceFingerprint,
	DeviceFingerprintID, DeviceCertificateID, DeviceConnectionID, DeviceEventID, RepositoryID,
	RepositoryAssetID, PackageID, PackageVersionID, FleetOperationID, DeviceOperationID,
	DeviceOperationWorkClaimID, JobID, AuditLogActionID, AuditLogEventID, OrganizationID,
	OrganizationInvitationID, OrganizationAPIToken, OrganizationAPITokenID, SubscriptionID,
	BillingPeriodID,
}

var byPrefix = func() map[string]Kind {
	m := make(map[string]Kind, len(Kinds))
	for _, k := range Kinds {
		m[k.Prefix] = k
	}
	return m
}()

// Lookup returns the kind with prefix.
func Lookup(prefix string) (Kind, bool) {
	k, ok := byPrefix[prefix]
	return k, ok
}

// Len is the length of a whole ID of the kind.
func (k Kind) Len() int { return len(k.Prefix) + 1 + k.RawLen }

// String is the kind's name in nexigon-ids.
func (k Kind) String() string { return k.Name }

// Error is why a string is not an ID of a kind. It never contains the string itself, which may
// be a secret.
type Error struct {
	Kind   Kind // zero when no kind could be told
	Reason string
}

func (e *Error) Error() string {
	if e.Kind.Name == "" {
		return "invalid ID: " + e.Reason
	}
	return fmt.Sprintf("invalid %s (want %s_ and %d characters): %s", e.Kind.Name, e.Kind.Prefix, e.Kind.RawLen, e.Reason)
}

// Check returns nil when s is a whole ID of kind k: the prefix, '_', and a raw part of the
// kind's form and exact length.
func (k Kind) Check(s string) error {
	raw, ok := strings.CutPrefix(s, k.Prefix+"_")
	if !ok {
		return &Error{k, "invalid prefix"}
	}
	if reason := checkRaw(raw, k.Dated); reason != "" {
		return &Error{k, reason}
	}
	if len(raw) != k.RawLen {
		return &Error{k, fmt.Sprintf("raw part has %d characters", len(raw))}
	}
	return nil
}

// Is reports whether s is a whole ID of kind k. Like the Hub's CLI (parse_complete_id), a path
// component that is not a whole ID, such as "repo_not-an-id", is a name.
func (k Kind) Is(s string) bool { return k.Check(s) == nil }

// Parse returns the kind of s, as nexigon-ids' AnyId::from_str: the prefix is everything before
// the last '_' (no raw part contains one).
func Parse(s string) (Kind, error) {
	i := strings.LastIndexByte(s, '_')
	if i < 0 {
		return Kind{}, &Error{Reason: "id does not start with a tag"}
	}
	k, ok := byPrefix[s[:i]]
	if !ok {
		return Kind{}, &Error{Reason: "unknown tag"}
	}
	if err := k.Check(s); err != nil {
		return Kind{}, err
	}
	return k, nil
}

// checkRaw returns why raw is not a raw ID of the form, or "".
func checkRaw(raw string, dated bool) string {
	if !dated {
		if !isBase58(raw) {
			return "invalid digit in raw id"
		}
		return ""
	}
	// DatedRawId::from_str: rsplit_once('-'), then split_once('-') of the date-time.
	dt, suffix, ok := cutLast(raw, '-')
	if !ok {
		return "missing '-' separator in dated raw id"
	}
	date, tm, ok := strings.Cut(dt, "-")
	switch {
	case !ok:
		return "missing '-' separator in dated raw id"
	case len(date) != 8:
		return "invalid date length"
	case len(tm) != 4:
		return "invalid time length"
	case !isDigits(date):
		return "invalid character in date"
	case !isDigits(tm):
		return "invalid character in time"
	case !isBase58(suffix):
		return "invalid digit in raw id"
	}
	return ""
}

func cutLast(s string, sep byte) (string, string, bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// base58 maps a byte to whether it is a base-58 digit.
var base58 = func() (t [256]bool) {
	for i := 0; i < len(Alphabet); i++ {
		t[Alphabet[i]] = true
	}
	return t
}()

func isBase58(s string) bool {
	for i := 0; i < len(s); i++ {
		if !base58[s[i]] {
			return false
		}
	}
	return true
}

// New returns a fresh random ID of the kind. Dated kinds take the current UTC time.
func (k Kind) New() string { return k.NewAt(time.Now()) }

// NewAt returns a fresh random ID of the kind; dated kinds carry t (in UTC, to the minute) as
// DatedRawId::generate does.
func (k Kind) NewAt(t time.Time) string {
	var b strings.Builder
	b.Grow(k.Len())
	b.WriteString(k.Prefix)
	b.WriteByte('_')
	n := k.RawLen
	if k.Dated {
		b.WriteString(t.UTC().Format("20060102-1504-"))
		n -= len("20060102-1504-")
	}
	b.WriteString(randomDigits(n))
	return b.String()
}

// randomDigits returns n uniformly random base-58 digits by rejection sampling, as
// fill_random_base58_digits does (6 bits per byte, values 58..63 dropped).
func randomDigits(n int) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		rand.Read(buf[:]) // never fails: crypto/rand panics on an unusable source
		for _, c := range buf {
			if d := c & 63; d < 58 && len(out) < n {
				out = append(out, Alphabet[d])
			}
		}
	}
	return string(out)
}

// Derive returns an ID of a flat kind whose raw part is derived from seed, so that the
// same seed always gives the same ID. It is for stand-ins that must name something the Hub
// would name (a token's user), not for secrets.
func (k Kind) Derive(seed []byte) string {
	var b strings.Builder
	b.WriteString(k.Prefix)
	b.WriteByte('_')
	for i := 0; i < k.RawLen; i++ {
		var c byte
		if len(seed) > 0 {
			c = seed[i%len(seed)] + byte(i/len(seed))
		}
		b.WriteByte(Alphabet[int(c)%len(Alphabet)])
	}
	return b.String()
}

// TokenID returns the public ID of a token: the first 22 raw characters under the public
// prefix (UserToken::token_id, OrganizationApiToken::token_id, DeploymentToken::token_id).
// ok is false for anything that is not a whole token of those kinds.
func TokenID(token string) (string, bool) {
	k, err := Parse(token)
	if err != nil {
		return "", false
	}
	var pub Kind
	switch k {
	case UserToken:
		pub = UserTokenID
	case OrganizationAPIToken:
		pub = OrganizationAPITokenID
	case DeploymentToken:
		pub = DeploymentTokenID
	case UserSessionToken:
		pub = UserSessionID
	default:
		return "", false
	}
	raw := token[len(k.Prefix)+1:]
	return pub.Prefix + "_" + raw[:pub.RawLen], true
}

// ErrNotAPIToken is returned by CheckAPIToken for anything but a user or organization token.
var ErrNotAPIToken = errors.New("not a Nexigon user token (u_sk_…) or organization API token (org_sk_…)")

// CheckAPIToken returns the kind of a token that may call the Hub's actions API from outside a
// device: a user token or an organization API token, the only two nexigon-cli accepts
// (nexigon/nexigon crates/apps/nexigon-cli/src/config/mod.rs, AuthenticationToken::from_str).
// A deployment token is an error that says it belongs to devices. The token is never part of an
// error.
func CheckAPIToken(token string) (Kind, error) {
	k, err := Parse(token)
	switch {
	case err != nil:
		return Kind{}, fmt.Errorf("%w: %v", ErrNotAPIToken, err)
	case k == UserToken || k == OrganizationAPIToken:
		return k, nil
	case k == DeploymentToken:
		return k, fmt.Errorf("%w: a deployment token (deployment_…) authenticates devices through nexigon-agent", ErrNotAPIToken)
	}
	return k, fmt.Errorf("%w: a %s", ErrNotAPIToken, k.Name)
}

// Redact returns an ID fit to print: a token keeps only its prefix, as nexigon-ids' Display
// does for secret kinds ("u_sk_<redacted>"); anything that is not an ID is shown as its length.
func Redact(s string) string {
	if k, err := Parse(s); err == nil {
		if k.Secret {
			return k.Prefix + "_<redacted>"
		}
		return s
	}
	return fmt.Sprintf("<%d characters>", len(s))
}
