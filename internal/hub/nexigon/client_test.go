package nexigon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
)

const testToken = "org_sk_TopSecretTokenValue1234567890abcdefghijkmnopqrstuvwxyzABCDEFGH"

// reply is one scripted answer of the test server.
type reply struct {
	status     int
	body       string
	retryAfter string
	drop       bool // hijack and close the connection without answering
}

// recorded is one request the test server saw.
type recorded struct {
	path, auth, contentType string
	body                    map[string]any
}

// script serves replies in order (the last one repeats) and records requests.
type script struct {
	mu      sync.Mutex
	replies []reply
	seen    []recorded
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(data, &body)
	s.mu.Lock()
	s.seen = append(s.seen, recorded{r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
	rep := s.replies[min(len(s.seen), len(s.replies))-1]
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		http.Error(w, "want POST", http.StatusMethodNotAllowed)
		return
	}
	if rep.drop {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (s *script) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.seen...)
}

// newTestClient starts a scripted server and a client whose retries do not really sleep.
func newTestClient(t *testing.T, replies ...reply) (*Client, *script, *[]time.Duration) {
	t.Helper()
	s := &script{replies: replies}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	slept := new([]time.Duration)
	c, err := New(srv.URL+"/", testToken, WithRetry(hub.RetryPolicy{
		MaxAttempts: 4,
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			*slept = append(*slept, d)
			mu.Unlock()
			return ctx.Err()
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c, s, slept
}

// ok is a 200 answer; @-placeholders in body become the test IDs (see idJSON).
func ok(body string) reply { return reply{status: 200, body: idJSON(body)} }

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		url, token string
		ok         bool
	}{
		{"https://eu.nexigon.cloud", "t", true},
		{"http://127.0.0.1:8080/prefix/", "t", true},
		{"ftp://x", "t", false},
		{"https://user:pw@hub", "t", false},
		{"https://hub/?token=x", "t", false},
		{"https://hub", "", false},
		{"https://hub", "a\nb", false},
		{"://", "t", false},
	} {
		_, err := New(tt.url, tt.token)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q) err = %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("New(%q) error leaks the password: %v", tt.url, err)
		}
	}
}

// TestRequests checks every method's action name and request body (camelCase, unset
// optionals omitted) and its decoding of each result variant.
func TestRequests(t *testing.T) {
	ctx := context.Background()
	vp := hub.VersionPath{Repository: "r", Package: "p", Tag: "t"}
	tests := []struct {
		name     string
		reply    string
		call     func(c *Client) (any, error)
		action   string
		wantBody string // JSON the request body must equal
		want     string // JSON of the call's result
	}{
		{"resolve repository found", `{"result":"Found","repositoryId":"@repo"}`,
			func(c *Client) (any, error) { id, f, err := c.ResolveRepository(ctx, "r"); return []any{id, f}, err },
			"repositories_ResolveName", `{"repository":"r"}`, `["@repo",true]`},
		{"resolve repository not found", `{"result":"NotFound"}`,
			func(c *Client) (any, error) { id, f, err := c.ResolveRepository(ctx, "r"); return []any{id, f}, err },
			"repositories_ResolveName", `{"repository":"r"}`, `["",false]`},
		{"resolve package", `{"result":"Found","repositoryId":"@repo","packageId":"@pkg"}`,
			func(c *Client) (any, error) { r, f, err := c.ResolvePackage(ctx, "r", "p"); return []any{r, f}, err },
			"repositories_ResolvePackageByPath", `{"repository":"r","package":"p"}`,
			`[{"repositoryId":"@repo","packageId":"@pkg"},true]`},
		{"resolve version", `{"result":"Found","repositoryId":"@repo","packageId":"@pkg","versionId":"@ver"}`,
			func(c *Client) (any, error) { r, f, err := c.ResolveVersion(ctx, vp); return []any{r, f}, err },
			"repositories_ResolveVersionByPath", `{"repository":"r","package":"p","tag":"t"}`,
			`[{"repositoryId":"@repo","packageId":"@pkg","versionId":"@ver"},true]`},
		{"resolve version not found", `{"result":"NotFound"}`,
			func(c *Client) (any, error) { _, f, err := c.ResolveVersion(ctx, vp); return f, err },
			"repositories_ResolveVersionByPath", `{"repository":"r","package":"p","tag":"t"}`, `false`},
		{"resolve version asset", `{"result":"Found","repositoryId":"@repo","packageId":"@pkg","versionId":"@ver","assetId":"@asset"}`,
			func(c *Client) (any, error) {
				r, f, err := c.ResolveVersionAsset(ctx, vp, "a/b.rugixb")
				return []any{r.AssetID, f}, err
			},
			"repositories_ResolveVersionAssetByPath", `{"repository":"r","package":"p","tag":"t","filename":"a/b.rugixb"}`, `["@asset",true]`},
		{"create package", `{"result":"Created","packageId":"@pkg"}`,
			func(c *Client) (any, error) {
				id, e, err := c.CreatePackage(ctx, idRepo, "os")
				return []any{id, e}, err
			},
			"repositories_CreatePackage", `{"repositoryId":"@repo","name":"os"}`, `["@pkg",false]`},
		{"create package exists", `{"result":"NameAlreadyExists"}`,
			func(c *Client) (any, error) {
				id, e, err := c.CreatePackage(ctx, idRepo, "os")
				return []any{id, e}, err
			},
			"repositories_CreatePackage", `{"repositoryId":"@repo","name":"os"}`, `["",true]`},
		{"create version minimal", `{"result":"Created","versionId":"@ver"}`,
			func(c *Client) (any, error) {
				return c.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: idPkg})
			},
			"repositories_CreateVersion", `{"packageId":"@pkg"}`, `"@ver"`},
		{"create version full", `{"result":"Created","versionId":"@ver"}`,
			func(c *Client) (any, error) {
				return c.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: idPkg, Name: "n",
					Tags:     []hub.TagItem{{Tag: "build-1", Locked: true}, {Tag: "latest", Reassign: true}},
					Metadata: json.RawMessage(`{"imageVersion":"build-1"}`)})
			},
			"repositories_CreateVersion",
			`{"packageId":"@pkg","name":"n","tags":[{"tag":"build-1","locked":true,"reassign":false},{"tag":"latest","locked":false,"reassign":true}],"metadata":{"imageVersion":"build-1"}}`,
			`"@ver"`},
		{"tag version", `{}`,
			func(c *Client) (any, error) {
				return nil, c.TagVersion(ctx, idVer, []hub.TagItem{{Tag: "stable", Reassign: true}})
			},
			"repositories_TagVersion", `{"versionId":"@ver","tags":[{"tag":"stable","locked":false,"reassign":true}]}`, `null`},
		{"untag version", `{}`,
			func(c *Client) (any, error) { return nil, c.UntagVersion(ctx, idVer, []string{"a", "b"}) },
			"repositories_UntagVersion", `{"versionId":"@ver","tags":[{"tag":"a"},{"tag":"b"}]}`, `null`},
		{"version details", `{"versionId":"@ver","repositoryId":"@repo","packageId":"@pkg","assets":[{"filename":"x.rugixb","assetId":"@asset","size":3,"digest":"sha256_00","status":"Available","storage":{"status":"Verified"},"metadata":{"k":1}}],"tags":[{"tag":"stable","locked":false}],"metadata":{"imageVersion":"v"},"unknownField":true}`,
			func(c *Client) (any, error) {
				d, err := c.GetVersionDetails(ctx, idVer)
				if err != nil {
					return nil, err
				}
				a, _ := d.Asset("x.rugixb")
				return []any{a.AssetID, a.Size, a.Status, d.Tags[0].Tag, d.Metadata}, nil
			},
			"repositories_GetVersionDetails", `{"versionId":"@ver"}`, `["@asset",3,"Available","stable",{"imageVersion":"v"}]`},
		{"query versions", `{"versions":[{"versionId":"@ver","createdAt":"2026-05-15T07:07:18.123Z","tags":[]}]}`,
			func(c *Client) (any, error) {
				v, err := c.QueryVersions(ctx, idPkg)
				if err != nil {
					return nil, err
				}
				return []any{len(v), v[0].VersionID, v[0].CreatedAt.UTC().Format(time.RFC3339Nano)}, nil
			},
			"repositories_QueryPackageVersions", `{"packageId":"@pkg"}`, `[1,"@ver","2026-05-15T07:07:18.123Z"]`},
		{"set version metadata", `{}`,
			func(c *Client) (any, error) { return nil, c.SetVersionMetadata(ctx, idVer, nil) },
			"repositories_SetVersionMetadata", `{"versionId":"@ver","metadata":{}}`, `null`},
		{"create asset", `{"result":"Created","assetId":"@asset"}`,
			func(c *Client) (any, error) {
				id, e, err := c.CreateAsset(ctx, idRepo, 12345, "sha256_ab")
				return []any{id, e}, err
			},
			"repositories_CreateAsset", `{"repositoryId":"@repo","size":12345,"digest":"sha256_ab"}`, `["@asset",false]`},
		{"create asset exists", `{"result":"AssetAlreadyExists","assetId":"@asset2"}`,
			func(c *Client) (any, error) {
				id, e, err := c.CreateAsset(ctx, idRepo, 1, "sha256_ab")
				return []any{id, e}, err
			},
			"repositories_CreateAsset", `{"repositoryId":"@repo","size":1,"digest":"sha256_ab"}`, `["@asset2",true]`},
		{"asset details", `{"assetId":"@asset","size":5,"digest":"sha256_ab","status":"Dangling","referenceCount":2}`,
			func(c *Client) (any, error) { return c.GetAssetDetails(ctx, idAsset) },
			"repositories_GetAssetDetails", `{"assetId":"@asset"}`,
			`{"assetId":"@asset","size":5,"digest":"sha256_ab","status":"Dangling","referenceCount":2}`},
		{"issue upload url", `{"url":"https://s3/compat","verifiedUrl":"https://s3/v","headers":{"if-none-match":"*"}}`,
			func(c *Client) (any, error) { return c.IssueAssetUploadURL(ctx, idAsset) },
			"repositories_IssueAssetUploadUrl", `{"assetId":"@asset"}`,
			`{"url":"https://s3/compat","verifiedUrl":"https://s3/v","headers":{"if-none-match":"*"}}`},
		{"finalize", `{}`,
			func(c *Client) (any, error) { return nil, c.FinalizeAssetUpload(ctx, idAsset) },
			"repositories_FinalizeAssetUpload", `{"assetId":"@asset"}`, `null`},
		{"add version asset", `{"result":"Added"}`,
			func(c *Client) (any, error) { return c.AddVersionAsset(ctx, idVer, idAsset, "x.img", nil) },
			"repositories_AddVersionAsset", `{"versionId":"@ver","assetId":"@asset","filename":"x.img"}`, `true`},
		{"add version asset exists", `{"result":"FilenameAlreadyExists"}`,
			func(c *Client) (any, error) {
				return c.AddVersionAsset(ctx, idVer, idAsset, "x.img", json.RawMessage(`{"version":"v"}`))
			},
			"repositories_AddVersionAsset", `{"versionId":"@ver","assetId":"@asset","filename":"x.img","metadata":{"version":"v"}}`, `false`},
		{"remove version asset", `{}`,
			func(c *Client) (any, error) { return nil, c.RemoveVersionAsset(ctx, idVer, "x.img") },
			"repositories_RemoveVersionAsset", `{"versionId":"@ver","filename":"x.img"}`, `null`},
		{"set version asset metadata", `{}`,
			func(c *Client) (any, error) {
				return nil, c.SetVersionAssetMetadata(ctx, idVer, "x.img", json.RawMessage(`{"a":1}`))
			},
			"repositories_SetVersionAssetMetadata", `{"versionId":"@ver","filename":"x.img","metadata":{"a":1}}`, `null`},
		{"issue download url", `{"url":"https://dl/x"}`,
			func(c *Client) (any, error) { return c.IssueAssetDownloadURL(ctx, idAsset, "") },
			"repositories_IssueAssetDownloadUrl", `{"assetId":"@asset"}`, `"https://dl/x"`},
		{"get actor", `{"actor":{"actor":"Device","deviceId":"@dev","tokenId":"@deptok"}}`,
			func(c *Client) (any, error) { return c.GetActor(ctx) },
			"actor_GetActor", `{}`, `{"actor":"Device","deviceId":"@dev","tokenId":"@deptok"}`},
		{"get property", `{"result":"Found","name":"dev.nexigon.ota.config","value":{"path":"r/p/t"},"protected":false,"version":3,"lastUpdated":"2026-05-15T07:07:18Z"}`,
			func(c *Client) (any, error) {
				p, f, err := c.GetProperty(ctx, idDev, "dev.nexigon.ota.config")
				return []any{p.Name, p.Value, p.Version, f}, err
			},
			"devices_GetProperty", `{"deviceId":"@dev","name":"dev.nexigon.ota.config"}`, `["dev.nexigon.ota.config",{"path":"r/p/t"},3,true]`},
		{"get property not found", `{"result":"NotFound"}`,
			func(c *Client) (any, error) { _, f, err := c.GetProperty(ctx, idDev, "x"); return f, err },
			"devices_GetProperty", `{"deviceId":"@dev","name":"x"}`, `false`},
		{"set property", `{"result":"Set"}`,
			func(c *Client) (any, error) { return nil, c.SetProperty(ctx, idDev, "x", json.RawMessage(`"v"`)) },
			"devices_SetProperty", `{"deviceId":"@dev","name":"x","value":"v"}`, `null`},
		{"remove property", `{"result":"Removed"}`,
			func(c *Client) (any, error) { return c.RemoveProperty(ctx, idDev, "x") },
			"devices_RemoveProperty", `{"deviceId":"@dev","name":"x"}`, `true`},
		{"remove property not found", `{"result":"NotFound"}`,
			func(c *Client) (any, error) { return c.RemoveProperty(ctx, idDev, "x") },
			"devices_RemoveProperty", `{"deviceId":"@dev","name":"x"}`, `false`},
		{"publish events", `{}`,
			func(c *Client) (any, error) {
				return nil, c.PublishEvents(ctx, idDev, []hub.Event{{EventID: idEv, Severity: hub.SeverityInfo,
					Body: json.RawMessage(`"hi"`), Attributes: map[string]json.RawMessage{}, EmittedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}})
			},
			"devices_PublishEvents",
			`{"deviceId":"@dev","events":[{"eventId":"@ev","severity":"Info","body":"hi","attributes":{},"emittedAt":"2026-01-02T03:04:05Z"}]}`, `null`},
		{"query events", `{"events":[{"eventId":"@ev","severity":"Warning","body":{},"attributes":{"a":"b"},"emittedAt":"2026-01-02T03:04:05Z"}]}`,
			func(c *Client) (any, error) {
				ev, err := c.QueryEvents(ctx, idDev, 10)
				if err != nil {
					return nil, err
				}
				return []any{len(ev), ev[0].Severity, ev[0].Attributes}, nil
			},
			"devices_QueryEvents", `{"deviceId":"@dev","limit":10}`, `[1,"Warning",{"a":"b"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s, _ := newTestClient(t, ok(tt.reply))
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := s.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.path != "/api/v1/actions/invoke/"+tt.action {
				t.Errorf("path = %q, want action %s", r.path, tt.action)
			}
			if r.auth != "Bearer "+testToken || r.contentType != "application/json" {
				t.Errorf("headers: Authorization %q, Content-Type %q", r.auth, r.contentType)
			}
			assertJSON(t, "request body", r.body, idJSON(tt.wantBody))
			gotJSON, _ := json.Marshal(got)
			var gotAny any
			_ = json.Unmarshal(gotJSON, &gotAny)
			assertJSON(t, "result", gotAny, idJSON(tt.want))
		})
	}
}

func assertJSON(t *testing.T, what string, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %s: %v", want, err)
	}
	g, _ := json.Marshal(got)
	wj, _ := json.Marshal(w)
	if !bytes.Equal(g, wj) {
		t.Errorf("%s = %s, want %s", what, g, wj)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		replies   []reply
		wantCalls int
		check     func(t *testing.T, err error)
	}{
		{"action error 400 not retried", []reply{{status: 400, body: `{"kind":"Invalid","message":"tag build-1 is locked"}`}}, 1,
			func(t *testing.T, err error) {
				var ae *hub.ActionError
				if !errors.As(err, &ae) || ae.Kind != hub.KindInvalid || ae.Status != 400 || ae.Action != "repositories_TagVersion" {
					t.Fatalf("err = %#v", err)
				}
				if !strings.Contains(err.Error(), "tag build-1 is locked") || !strings.Contains(err.Error(), "repositories_TagVersion") {
					t.Errorf("message %q lacks action or Hub message", err)
				}
			}},
		{"forbidden 403", []reply{{status: 403, body: `{"kind":"Forbidden","message":"no"}`}}, 1,
			func(t *testing.T, err error) {
				if !hub.IsKind(err, hub.KindForbidden) {
					t.Fatalf("err = %v, want Forbidden", err)
				}
			}},
		{"undecodable error body", []reply{{status: 404, body: "<html>nginx says no</html>"}}, 1,
			func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "nginx says no") {
					t.Fatalf("err = %v, want status and body prefix", err)
				}
			}},
		{"503 twice then ok", []reply{{status: 503, body: `{"kind":"Internal","message":"busy"}`}, {status: 503, body: "x"}, ok(`{}`)}, 3,
			func(t *testing.T, err error) {
				if err != nil {
					t.Fatal(err)
				}
			}},
		{"dropped connection then ok", []reply{{drop: true}, ok(`{}`)}, 2,
			func(t *testing.T, err error) {
				if err != nil {
					t.Fatal(err)
				}
			}},
		{"500 until exhausted", []reply{{status: 500, body: `{"kind":"Internal","message":"db down"}`}}, 4,
			func(t *testing.T, err error) {
				if !hub.IsKind(err, hub.KindInternal) || !strings.Contains(err.Error(), "4 attempts") {
					t.Fatalf("err = %v", err)
				}
			}},
		{"action error echoes the token", []reply{{status: 400, body: `{"kind":"Invalid","message":"bad token ` + testToken + `"}`}}, 1,
			func(t *testing.T, err error) {
				if !hub.IsKind(err, hub.KindInvalid) || !strings.Contains(err.Error(), "bad token [REDACTED]") {
					t.Fatalf("err = %v", err)
				}
			}},
		{"action error echoes the token JSON-escaped", []reply{{status: 403, body: `{"kind":"Forbidden","message":"\u006f` + testToken[1:] + `"}`}}, 1,
			func(t *testing.T, err error) {
				if !hub.IsKind(err, hub.KindForbidden) {
					t.Fatalf("err = %v", err)
				}
			}},
		{"action error kind is the token", []reply{{status: 400, body: `{"kind":"` + testToken + `","message":"m"}`}}, 1,
			func(t *testing.T, err error) {
				if err == nil {
					t.Fatal("accepted")
				}
			}},
		{"error page echoes the token", []reply{{status: 404, body: "<html>" + testToken + "</html>"}}, 1,
			func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "<html>[REDACTED]</html>") {
					t.Fatalf("err = %v", err)
				}
			}},
		{"bad success body", []reply{ok(`{"result":`)}, 1,
			func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "not JSON") {
					t.Fatalf("err = %v", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s, _ := newTestClient(t, tt.replies...)
			err := c.TagVersion(ctx, idVer, []hub.TagItem{{Tag: "x"}})
			if n := len(s.requests()); n != tt.wantCalls {
				t.Errorf("%d requests, want %d", n, tt.wantCalls)
			}
			tt.check(t, err)
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestUnexpectedResult(t *testing.T) {
	c, _, _ := newTestClient(t, ok(`{"result":"Maybe"}`))
	_, _, err := c.ResolveVersion(context.Background(), hub.VersionPath{Repository: "r", Package: "p", Tag: "t"})
	if err == nil || !strings.Contains(err.Error(), `"Maybe"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestUnexpectedResultNotEchoed checks that a result tag that is not a variant name (here the
// token, echoed by a Hub or a man in the middle) is not quoted.
func TestUnexpectedResultNotEchoed(t *testing.T) {
	c, _, _ := newTestClient(t, ok(`{"result":"`+testToken+`"}`))
	_, _, err := c.ResolveRepository(context.Background(), "r")
	if err == nil || strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "not a result name") {
		t.Fatalf("err = %v", err)
	}
	c, _, _ = newTestClient(t, ok(`{"result":"`+testToken+` garbage"}`))
	if _, _, err := c.ResolveRepository(context.Background(), "r"); err == nil || strings.Contains(err.Error(), testToken) {
		t.Fatalf("err = %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	c, s, slept := newTestClient(t, reply{status: 429, retryAfter: "1", body: `{"kind":"RateLimited","message":"slow down"}`}, ok(`{"result":"NotFound"}`))
	if _, _, err := c.ResolveRepository(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	if len(s.requests()) != 2 || len(*slept) != 1 || (*slept)[0] != time.Second {
		t.Fatalf("requests %d, slept %v; want 2 and [1s]", len(s.requests()), *slept)
	}
}

// TestCreateVersionNotRepeated checks that a CreateVersion whose request reached the Hub is
// not sent again, while one the Hub refused with 503 is.
func TestCreateVersionNotRepeated(t *testing.T) {
	ctx := context.Background()
	req := hub.CreateVersionRequest{PackageID: idPkg}

	c, s, _ := newTestClient(t, reply{drop: true}, ok(`{"result":"Created","versionId":"@ver2"}`))
	_, err := c.CreateVersion(ctx, req)
	if !errors.Is(err, ErrOutcomeUnknown) || len(s.requests()) != 1 {
		t.Fatalf("dropped: err = %v after %d requests; want ErrOutcomeUnknown after 1", err, len(s.requests()))
	}

	c, s, _ = newTestClient(t, reply{status: 502, body: "bad gateway"}, ok(`{"result":"Created","versionId":"@ver2"}`))
	if _, err = c.CreateVersion(ctx, req); !errors.Is(err, ErrOutcomeUnknown) || len(s.requests()) != 1 {
		t.Fatalf("502: err = %v after %d requests", err, len(s.requests()))
	}

	c, s, _ = newTestClient(t, reply{status: 503, body: "busy"}, ok(`{"result":"Created","versionId":"@ver2"}`))
	if id, err := c.CreateVersion(ctx, req); err != nil || id != idVer2 || len(s.requests()) != 2 {
		t.Fatalf("503: id %q err %v after %d requests", id, err, len(s.requests()))
	}
}

func TestTokenNeverLogged(t *testing.T) {
	var logs bytes.Buffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer srv.Close()
	c, err := New(srv.URL, testToken,
		WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		WithRetry(hub.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.ResolveRepository(context.Background(), "r")
	if err == nil {
		t.Fatal("want an error from a server that drops connections")
	}
	if logs.Len() == 0 {
		t.Error("retries were not logged")
	}
	for what, s := range map[string]string{"error": err.Error(), "log": logs.String()} {
		if strings.Contains(s, testToken) || strings.Contains(s, "TopSecret") {
			t.Errorf("%s leaks the token: %s", what, s)
		}
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(srv.URL, testToken, WithTimeout(30*time.Millisecond), WithRetry(hub.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := c.ResolveRepository(context.Background(), "r"); err == nil || !strings.Contains(err.Error(), "2 attempts") {
		t.Fatalf("per-call timeout: err = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c2, _ := New(srv.URL, testToken)
	if _, _, err := c2.ResolveRepository(ctx, "r"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled: err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

func TestResponseTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"result":"NotFound","pad":"`))
		w.Write(bytes.Repeat([]byte("a"), MaxResponseSize))
		w.Write([]byte(`"}`))
	}))
	defer srv.Close()
	c, _ := New(srv.URL, testToken)
	if _, _, err := c.ResolveRepository(context.Background(), "r"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}
