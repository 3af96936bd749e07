package nexid

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// eventIDRE is the form of a DeviceEventId: "d_ev_" + DatedRawId of 22 characters.
var eventIDRE = regexp.MustCompile(`^d_ev_[0-9]{8}-[0-9]{4}-[1-9A-HJ-NP-Za-km-z]{8}$`)

func TestTable(t *testing.T) {
	// Rows checked against nexigon/nexigon crates/libs/nexigon-ids/src/lib.rs define_types!.
	want := map[string]struct {
		prefix string
		n      int
		dated  bool
		secret bool
	}{
		"UserToken": {"u_sk", 66, false, true}, "OrganizationApiToken": {"org_sk", 66, false, true},
		"DeploymentToken": {"deployment", 66, false, true}, "DeviceFingerprint": {"d_sk", 44, false, true},
		"DeviceEventId": {"d_ev", 22, true, false}, "JobId": {"job", 22, true, false},
		"RepositoryAssetId": {"repo_a", 22, false, false}, "PackageVersionId": {"pkg_v", 22, false, false},
		"DeviceId": {"d", 22, false, false}, "DeploymentTokenId": {"deployment_id", 22, false, false},
	}
	seen := map[string]bool{}
	for _, k := range Kinds {
		if seen[k.Prefix] {
			t.Errorf("prefix %s twice", k.Prefix)
		}
		seen[k.Prefix] = true
		if w, ok := want[k.Name]; ok && (w.prefix != k.Prefix || w.n != k.RawLen || w.dated != k.Dated || w.secret != k.Secret) {
			t.Errorf("%s = %+v, want %+v", k.Name, k, w)
		}
	}
	if len(Kinds) != 32 {
		t.Errorf("%d kinds, want the 32 of nexigon-ids", len(Kinds))
	}
}

func TestNewMatchesKind(t *testing.T) {
	at := time.Date(2026, 4, 1, 23, 59, 0, 0, time.FixedZone("X", 3600*5))
	for _, k := range Kinds {
		for range 20 {
			id := k.NewAt(at)
			if len(id) != k.Len() {
				t.Fatalf("%s: %q has %d characters, want %d", k.Name, id, len(id), k.Len())
			}
			if got, err := Parse(id); err != nil || got != k {
				t.Fatalf("%s: Parse(%q) = %v, %v", k.Name, id, got, err)
			}
		}
	}
	id := DeviceEventID.NewAt(at)
	if !eventIDRE.MatchString(id) || !strings.HasPrefix(id, "d_ev_20260401-1859-") {
		t.Errorf("event ID %q: want d_ev_20260401-1859-<8 base58> (UTC)", id)
	}
	if !eventIDRE.MatchString(DeviceEventID.New()) {
		t.Error("New event ID does not match")
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		k    Kind
		s    string
		want bool
	}{
		{RepositoryID, "repo_123456789ABCDEFGHJKLMN", true},
		{RepositoryID, "repo_not-an-id", false},
		{RepositoryID, "repo_023456789ABCDEFGHJKLMN", false},  // 0 is not base-58
		{RepositoryID, "repo_123456789ABCDEFGHJKLM", false},   // 21 characters
		{RepositoryID, "repo_123456789ABCDEFGHJKLMNP", false}, // 23
		{PackageID, "pkg_v_123456789ABCDEFGHJKLMN", false},    // a version ID is not a package ID
		{PackageVersionID, "pkg_v_123456789ABCDEFGHJKLMN", true},
		{DeviceID, "d_123456789ABCDEFGHJKLMN", true},
		{DeviceID, "vm-1", false},
		{DeviceEventID, "d_ev_20250721-1133-ArDVfyQp", true}, // nexigon-ids test_id_parsing
		{AuditLogEventID, "audit_ev_20250721-1133-ArDVfyQp", true},
		{DeviceEventID, "d_ev_20250721-1133-ArDVfyQpAAAA", false}, // the 26 characters otabake once made
		{DeviceEventID, "d_ev_20250721-1133-ArDVfyQ0", false},
		{DeviceEventID, "d_ev_2025072-11333-ArDVfyQp", false},
		{DeviceEventID, "d_ev_20250721-113x-ArDVfyQp", false},
		{DeviceEventID, "d_ev_2025-0721-1133-ArDVfyQ", false},
		{DeviceEventID, "d_ev_20250721_1133_ArDVfyQp", false},
		{DeviceEventID, "d_ev_abc", false},
		{UserID, "u_ZjRcffdyfXutC6XUAkswBx", true},
	} {
		if got := c.k.Is(c.s); got != c.want {
			t.Errorf("%s.Is(%q) = %v, want %v (%v)", c.k.Name, c.s, got, c.want, c.k.Check(c.s))
		}
	}
}

func TestParse(t *testing.T) {
	if k, err := Parse("d_ev_20250721-1133-ArDVfyQp"); err != nil || k != DeviceEventID {
		t.Errorf("event: %v %v", k, err)
	}
	if k, err := Parse("deployment_id_123456789ABCDEFGHJKLMN"); err != nil || k != DeploymentTokenID {
		t.Errorf("deployment_id: %v %v", k, err)
	}
	for _, s := range []string{"", "nounderscore", "zz_123456789ABCDEFGHJKLMN", "repo_", "repo_a_b_c"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

func TestTokens(t *testing.T) {
	u, org, dep := UserToken.New(), OrganizationAPIToken.New(), DeploymentToken.New()
	if k, err := CheckAPIToken(u); err != nil || k != UserToken {
		t.Errorf("user token: %v %v", k, err)
	}
	if k, err := CheckAPIToken(org); err != nil || k != OrganizationAPIToken {
		t.Errorf("org token: %v %v", k, err)
	}
	k, err := CheckAPIToken(dep)
	if k != DeploymentToken || !errors.Is(err, ErrNotAPIToken) || !strings.Contains(err.Error(), "devices") {
		t.Errorf("deployment token: %v %v", k, err)
	}
	for _, bad := range []string{"", "0123abcdef", "org_sk_short", "u_123456789ABCDEFGHJKLMN"} {
		if _, err := CheckAPIToken(bad); err == nil {
			t.Errorf("CheckAPIToken(%q) accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error repeats the token: %v", err)
		}
	}
	if id, ok := TokenID(org); !ok || id != "org_pk_"+org[7:29] || !OrganizationAPITokenID.Is(id) {
		t.Errorf("TokenID(org) = %q %v", id, ok)
	}
	if id, ok := TokenID(dep); !ok || !DeploymentTokenID.Is(id) {
		t.Errorf("TokenID(deployment) = %q %v", id, ok)
	}
	if r := Redact(u); r != "u_sk_<redacted>" {
		t.Errorf("Redact = %q", r)
	}
	if r := Redact("secret"); strings.Contains(r, "secret") {
		t.Errorf("Redact = %q", r)
	}
	if a, b := UserID.Derive([]byte("x")), UserID.Derive([]byte("x")); a != b || !UserID.Is(a) {
		t.Errorf("Derive: %q %q", a, b)
	}
}
