package hubtest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/hubtest"
	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/hub/nexigon"
	"github.com/otabake/otabake/internal/hub/server"
	"github.com/otabake/otabake/internal/nexid"
)

// token is an organization API token of the right form (org_sk_ + 66 base-58).
const token = "org_sk_5T1ov9DETXZALSvCGepZX42bhvDTMJQST4pAEwWxTBRXGEmPDr21P7DBxAWAPRZhhw"

// countingStore counts how often bytes are handed to the in-process store.
type countingStore struct {
	*local.Store
	puts *atomic.Int64
}

func (c countingStore) PutBlob(ctx context.Context, assetID string, r io.Reader, size int64) error {
	c.puts.Add(1)
	return c.Store.PutBlob(ctx, assetID, r, size)
}

func (c countingStore) PutBlobFile(ctx context.Context, assetID, path string) error {
	c.puts.Add(1)
	return c.Store.PutBlobFile(ctx, assetID, path)
}

// countingTransport counts PUT requests on their way out.
type countingTransport struct {
	next http.RoundTripper
	puts atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut {
		c.puts.Add(1)
	}
	return c.next.RoundTrip(r)
}

// delays records requested retry delays and sleeps at most a few milliseconds, so that
// Retry-After is checked without slowing the tests.
type delays struct {
	mu sync.Mutex
	d  []time.Duration
}

func (d *delays) policy() hub.RetryPolicy {
	return hub.RetryPolicy{MaxAttempts: 6, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond,
		Sleep: func(ctx context.Context, x time.Duration) error {
			d.mu.Lock()
			d.d = append(d.d, x)
			d.mu.Unlock()
			return hub.SleepContext(ctx, min(x, 5*time.Millisecond))
		}}
}

func (d *delays) list() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Duration(nil), d.d...)
}

func newStore(t *testing.T) (*local.Store, string, string) {
	t.Helper()
	st, err := local.Open(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	repoID, pkgID, err := st.Init(context.Background(), "otabake-test", "system")
	if err != nil {
		t.Fatal(err)
	}
	return st, repoID, pkgID
}

func TestLocalInProcess(t *testing.T) {
	hubtest.Run(t, func(t *testing.T) hubtest.Fixture {
		st, _, _ := newStore(t)
		var puts atomic.Int64
		return hubtest.Fixture{
			Hub:        countingStore{st, &puts},
			Repository: "otabake-test",
			Package:    "system",
			Uploads:    func() int { return int(puts.Load()) },
		}
	})
}

// served is a local store behind server.New, behind fault injection, on loopback.
type served struct {
	store  *local.Store
	url    string
	key    []byte
	faults *hubtest.Faults
	puts   *countingTransport
	delays *delays
	client *nexigon.Client
	upload hub.UploadOptions
}

func serve(t *testing.T) *served {
	t.Helper()
	st, _, _ := newStore(t)
	s := &served{store: st, key: make([]byte, 32), puts: &countingTransport{next: http.DefaultTransport}, delays: &delays{}}
	rand.Read(s.key)
	var h atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	inner, err := server.New(server.Config{Store: st, Token: token, BaseURL: srv.URL, URLKey: s.key})
	if err != nil {
		t.Fatal(err)
	}
	s.faults = hubtest.NewFaults(inner)
	h.Store(http.Handler(s.faults))
	s.client, err = nexigon.New(srv.URL, token, nexigon.WithRetry(s.delays.policy()), nexigon.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s.upload = hub.UploadOptions{HTTPClient: &http.Client{Transport: s.puts}, Retry: s.delays.policy()}
	return s
}

// expiredURL issues a download URL valid for a nanosecond from a second server with the same
// key and waits until it has expired.
func (s *served) expiredURL(t *testing.T, assetID string) string {
	short, err := server.New(server.Config{Store: s.store, Token: token, BaseURL: s.url, URLKey: s.key, URLTTL: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(short)
	defer srv.Close()
	c, err := nexigon.New(srv.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.IssueAssetDownloadURL(context.Background(), assetID, "")
	if err != nil {
		t.Fatal(err)
	}
	// URL expiry has one-second resolution.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	return u
}

func TestNexigonClientAgainstServer(t *testing.T) {
	hubtest.Run(t, func(t *testing.T) hubtest.Fixture {
		s := serve(t)
		return hubtest.Fixture{
			Hub:        s.client,
			Repository: "otabake-test",
			Package:    "system",
			Upload:     s.upload,
			Uploads:    func() int { return int(s.puts.puts.Load()) },
			HTTP: &hubtest.HTTPFixture{
				BaseURL: s.url,
				Client:  http.DefaultClient,
				WithToken: func(t *testing.T, tok string) hub.Hub {
					c, err := nexigon.New(s.url, tok, nexigon.WithRetry(hub.RetryPolicy{MaxAttempts: 1}))
					if err != nil {
						t.Fatal(err)
					}
					return c
				},
				ExpiredDownloadURL: s.expiredURL,
			},
		}
	})
}

func TestNexigonClientAgainstPresignedS3(t *testing.T) {
	hubtest.RunUpload(t, func(t *testing.T) hubtest.Fixture {
		f := hubtest.NewFakeHub(t, nil)
		c, err := nexigon.New(f.URL, f.Token, nexigon.WithRetry(hub.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		return hubtest.Fixture{
			Hub:        c,
			Repository: f.Repository,
			Package:    f.Package,
			Uploads:    f.Puts,
			HTTP: &hubtest.HTTPFixture{
				BaseURL:            f.URL,
				Client:             http.DefaultClient,
				ExpiredDownloadURL: func(_ *testing.T, assetID string) string { return f.PresignExpired(assetID) },
			},
		}
	})
}

// TestFaultInjection is the acceptance test of the retrying upload path: transient faults in
// front of `otabake hub serve` end in a complete, finalized, digest-verified asset, and a
// permanent fault fails at once with the action and the Hub's message.
func TestFaultInjection(t *testing.T) {
	const putPath = "/api/v1/blobs/"
	const actions = "/api/v1/actions/invoke/"
	tests := []struct {
		name   string
		faults []hubtest.Fault
		// wantPuts is the number of PUT requests the server must see.
		wantPuts  int
		wantDelay time.Duration // a retry delay that must have been requested
	}{
		{"two 503s on the PUT", []hubtest.Fault{
			{Method: "PUT", PathPrefix: putPath, Status: 503, Body: `<Error><Code>SlowDown</Code></Error>`},
			{Method: "PUT", PathPrefix: putPath, Status: 503, Body: `<Error><Code>SlowDown</Code></Error>`},
		}, 3, 0},
		{"two 503s on actions", []hubtest.Fault{
			{PathPrefix: actions + "repositories_CreateAsset", Status: 503, Body: `{"kind":"Internal","message":"busy"}`},
			{PathPrefix: actions + "repositories_CreateAsset", Status: 503, Body: "upstream unavailable"},
		}, 1, 0},
		{"connection dropped mid-upload", []hubtest.Fault{
			{Method: "PUT", PathPrefix: putPath, Drop: true, DropAfter: 64 << 10},
		}, 2, 0},
		{"429 with Retry-After on the PUT", []hubtest.Fault{
			{Method: "PUT", PathPrefix: putPath, Status: 429, RetryAfter: "1", Body: "slow down"},
		}, 2, time.Second},
		{"429 with Retry-After on finalize", []hubtest.Fault{
			{PathPrefix: actions + "repositories_FinalizeAssetUpload", Status: 429, RetryAfter: "1", Body: `{"kind":"RateLimited","message":"slow down"}`},
		}, 1, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serve(t)
			ctx := context.Background()
			repoID, _, err := s.client.ResolveRepository(ctx, "otabake-test")
			if err != nil {
				t.Fatal(err)
			}
			path, data := artifact(t, 256<<10)
			s.faults.Add(tt.faults...)
			res, err := hub.UploadFile(ctx, s.client, repoID, path, s.upload)
			if err != nil {
				t.Fatalf("upload: %v", err)
			}
			if s.faults.Pending() != 0 {
				t.Fatalf("%d faults never fired", s.faults.Pending())
			}
			if n := s.faults.Requests("PUT", putPath); n != tt.wantPuts {
				t.Errorf("%d PUTs reached the server, want %d", n, tt.wantPuts)
			}
			if tt.wantDelay > 0 {
				found := false
				for _, d := range s.delays.list() {
					found = found || d == tt.wantDelay
				}
				if !found {
					t.Errorf("retry delays %v, want one of %v (Retry-After)", s.delays.list(), tt.wantDelay)
				}
			}
			verifyAsset(t, s, res, data)
		})
	}

	t.Run("400 fails at once", func(t *testing.T) {
		s := serve(t)
		ctx := context.Background()
		repoID, _, err := s.client.ResolveRepository(ctx, "otabake-test")
		if err != nil {
			t.Fatal(err)
		}
		path, _ := artifact(t, 1000)
		s.faults.Add(hubtest.Fault{PathPrefix: actions + "repositories_CreateAsset", Status: 400,
			Body: `{"kind":"Invalid","message":"repository quota exceeded"}`})
		_, err = hub.UploadFile(ctx, s.client, repoID, path, s.upload)
		if err == nil {
			t.Fatal("upload succeeded through a 400")
		}
		for _, want := range []string{"repositories_CreateAsset", "repository quota exceeded"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
		if n := s.faults.Requests("", actions+"repositories_CreateAsset"); n != 1 {
			t.Errorf("CreateAsset sent %d times, want exactly 1", n)
		}
		if n := s.faults.Requests("PUT", ""); n != 0 {
			t.Errorf("%d PUTs after a failed CreateAsset", n)
		}
		if d := s.delays.list(); len(d) != 0 {
			t.Errorf("retried a 400: delays %v", d)
		}
	})

	t.Run("400 on the PUT fails at once", func(t *testing.T) {
		s := serve(t)
		ctx := context.Background()
		repoID, _, _ := s.client.ResolveRepository(ctx, "otabake-test")
		path, _ := artifact(t, 1000)
		s.faults.Add(hubtest.Fault{Method: "PUT", PathPrefix: putPath, Status: 400, Body: "<Error><Code>BadDigest</Code></Error>"})
		_, err := hub.UploadFile(ctx, s.client, repoID, path, s.upload)
		if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "BadDigest") {
			t.Fatalf("err = %v, want the 400 and the store's message", err)
		}
		if strings.Contains(err.Error(), "sig=") {
			t.Errorf("error leaks the URL signature: %v", err)
		}
		if n := s.faults.Requests("PUT", ""); n != 1 {
			t.Errorf("%d PUTs, want exactly 1", n)
		}
	})
}

func artifact(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "system.rugixb")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// verifyAsset checks that the asset is Available and serves exactly data.
func verifyAsset(t *testing.T, s *served, res hub.UploadResult, data []byte) {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256(data)
	if res.Digest != hub.SHA256Digest(sum[:]) || res.Size != int64(len(data)) || !res.Uploaded {
		t.Fatalf("result %+v", res)
	}
	d, err := s.client.GetAssetDetails(ctx, res.AssetID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != hub.AssetAvailable || d.Digest != res.Digest || d.Size != res.Size {
		t.Fatalf("asset %+v, want Available with %s", d, res.Digest)
	}
	var buf bytes.Buffer
	if _, err := hub.Download(ctx, s.client, res.AssetID, &buf, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("stored bytes differ from the file")
	}
}

// TestCreateVersionOutcomeUnknown shows the documented handling of a non-idempotent action
// whose answer was lost: the client does not repeat it, reports ErrOutcomeUnknown, and
// resolving the locked build tag finds the version the Hub did create.
func TestCreateVersionOutcomeUnknown(t *testing.T) {
	s := serve(t)
	ctx := context.Background()
	pkg, found, err := s.client.ResolvePackage(ctx, "otabake-test", "system")
	if err != nil || !found {
		t.Fatalf("resolve package: %v %v", found, err)
	}
	const create = "/api/v1/actions/invoke/repositories_CreateVersion"
	s.faults.Add(hubtest.Fault{PathPrefix: create, DropResponse: true})
	_, err = s.client.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: pkg.PackageID,
		Tags: []hub.TagItem{{Tag: "build-20260401120000-abc1234", Locked: true}}})
	if !errors.Is(err, nexigon.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	if n := s.faults.Requests("", create); n != 1 {
		t.Fatalf("CreateVersion sent %d times, want 1", n)
	}
	ref, found, err := s.client.ResolveVersion(ctx, hub.VersionPath{Repository: "otabake-test", Package: "system", Tag: "build-20260401120000-abc1234"})
	if err != nil || !found || ref.VersionID == "" {
		t.Fatalf("resolve after the lost answer: %+v %v %v, want the created version", ref, found, err)
	}
	vs, err := s.client.QueryVersions(ctx, pkg.PackageID)
	if err != nil || len(vs) != 1 {
		t.Fatalf("%d versions (%v), want exactly the one created", len(vs), err)
	}
}

// TestIdempotentActionResponseLost shows that an idempotent action whose answer was lost is
// simply repeated.
func TestIdempotentActionResponseLost(t *testing.T) {
	s := serve(t)
	ctx := context.Background()
	const resolve = "/api/v1/actions/invoke/repositories_ResolveName"
	s.faults.Add(hubtest.Fault{PathPrefix: resolve, DropResponse: true})
	if _, found, err := s.client.ResolveRepository(ctx, "otabake-test"); err != nil || !found {
		t.Fatalf("resolve: %v %v", found, err)
	}
	if n := s.faults.Requests("", resolve); n != 2 {
		t.Fatalf("ResolveName sent %d times, want 2", n)
	}
}

// TestServerTokenKinds: `hub serve` takes a user or an organization API token and refuses to
// start with anything else (a deployment token, a token of the wrong length, a hex string),
// as nexigon-cli refuses them (nexigon/nexigon crates/apps/nexigon-cli/src/config/mod.rs).
// A server holding a user token answers actor_GetActor as UserToken.
func TestServerTokenKinds(t *testing.T) {
	st, _, _ := newStore(t)
	for _, bad := range []string{nexid.DeploymentToken.New(), "org_sk_short", "0123456789abcdef0123456789abcdef", nexid.DeviceFingerprint.New()} {
		if _, err := server.New(server.Config{Store: st, Token: bad}); err == nil || strings.Contains(err.Error(), bad) {
			t.Errorf("server with token %s: err = %v, want a refusal that does not repeat it", nexid.Redact(bad), err)
		}
	}
	user := nexid.UserToken.New()
	h, err := server.New(server.Config{Store: st, Token: user})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := nexigon.New(srv.URL, user)
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.GetActor(context.Background())
	if err != nil || a.Kind != "UserToken" || !nexid.UserID.Is(a.UserID) || a.TokenID != "u_pk_"+user[5:27] {
		t.Errorf("actor = %+v %v, want UserToken with u_ and u_pk_ IDs", a, err)
	}
	if _, found, err := c.ResolveRepository(context.Background(), "otabake-test"); err != nil || !found {
		t.Errorf("user token: found=%v err=%v", found, err)
	}
}
