package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(append([]string{"otabake"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestHubInitAndLs(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ { // init is idempotent
		code, out, errs := runCLI(t, "-C", dir, "hub", "init", "--repository", "fleet", "--package", "system")
		if code != 0 || !strings.Contains(out, "repository fleet (repo_") {
			t.Fatalf("hub init = %d %q %q", code, out, errs)
		}
	}
	code, out, errs := runCLI(t, "-C", dir, "--json", "hub", "ls")
	if code != 0 {
		t.Fatalf("hub ls --json = %d %q", code, errs)
	}
	var ls struct {
		HubDir       string `json:"hubDir"`
		Repositories []struct {
			ID       string `json:"repositoryId"`
			Name     string `json:"name"`
			Packages []struct {
				ID       string            `json:"packageId"`
				Name     string            `json:"name"`
				Versions []json.RawMessage `json:"versions"`
			} `json:"packages"`
		} `json:"repositories"`
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("hub ls --json output %q: %v", out, err)
	}
	if ls.HubDir != filepath.Join(dir, ".otabake", "hub") || len(ls.Repositories) != 1 || ls.Repositories[0].Name != "fleet" ||
		len(ls.Repositories[0].Packages) != 1 || ls.Repositories[0].Packages[0].Name != "system" || ls.Repositories[0].Packages[0].Versions == nil {
		t.Errorf("hub ls --json = %s", out)
	}

	// A version with an asset, put there through the store as upload-release would.
	ctx := context.Background()
	st, err := local.Open(filepath.Join(dir, ".otabake", "hub"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vid, err := st.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: ls.Repositories[0].Packages[0].ID,
		Tags: []hub.TagItem{{Tag: "build-1", Locked: true}, {Tag: "stable"}}, Metadata: json.RawMessage(`{"imageVersion":"build-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello")
	d, _, _ := hub.DigestReader(bytes.NewReader(data))
	aid, _, err := st.CreateAsset(ctx, ls.Repositories[0].ID, int64(len(data)), d)
	if err == nil {
		err = st.PutBlob(ctx, aid, bytes.NewReader(data), int64(len(data)))
	}
	if err == nil {
		_, err = st.AddVersionAsset(ctx, vid, aid, "system.rugixb", json.RawMessage(`{"rugix":{"bundleHash":"h"}}`))
	}
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, _ = runCLI(t, "-C", dir, "hub", "ls", "fleet/system")
	for _, want := range []string{"fleet (repo_", "\n  system (pkg_", vid + "  [build-1 (locked), stable]", `metadata {"imageVersion":"build-1"}`,
		"system.rugixb  5 bytes  " + string(d) + "  Available", `metadata {"rugix":{"bundleHash":"h"}}`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("hub ls fleet/system = %d %q, want %q in it", code, out, want)
		}
	}
	code, out, _ = runCLI(t, "-C", dir, "--json", "hub", "ls", "fleet/system/stable")
	if code != 0 || !strings.Contains(out, `"filename": "system.rugixb"`) || !strings.Contains(out, `"status": "Available"`) {
		t.Errorf("hub ls --json fleet/system/stable = %d %s", code, out)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"hub", "ls", "nope"}, "otabake hub init --repository R --package P"},
		{[]string{"hub", "init", "--repository", "bad name", "--package", "p"}, "invalid repository name"},
		{[]string{"hub", "init", "--repository", "r"}, "package"},
		{[]string{"hub", "serve", "--listen", "0.0.0.0:0"}, "--allow-remote"},
	} {
		code, _, errs := runCLI(t, append([]string{"-C", dir}, tt.args...)...)
		if code == 0 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v = %d %q, want an error with %q", tt.args, code, errs, tt.want)
		}
	}

	// --hub-dir and $OTABAKE_HUB_DIR point elsewhere: that Hub is empty.
	other := t.TempDir()
	code, out, _ = runCLI(t, "-C", dir, "hub", "ls", "--hub-dir", other)
	if code != 0 || !strings.Contains(out, "is empty") {
		t.Errorf("hub ls --hub-dir = %d %q", code, out)
	}
	t.Setenv("OTABAKE_HUB_DIR", other)
	code, out, _ = runCLI(t, "-C", dir, "hub", "ls")
	if code != 0 || !strings.Contains(out, "is empty") {
		t.Errorf("OTABAKE_HUB_DIR hub ls = %d %q", code, out)
	}
}

func TestCheckListen(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:8470", false, true},
		{"[::1]:0", false, true},
		{"localhost:80", false, true},
		{"0.0.0.0:8470", false, false},
		{":8470", false, false},
		{"192.168.1.2:8470", false, false},
		{"192.168.1.2:8470", true, true},
		{"127.0.0.1", false, false},
	} {
		if err := checkListen(tt.addr, tt.remote); (err == nil) != tt.ok {
			t.Errorf("checkListen(%q, %v) = %v, want ok=%v", tt.addr, tt.remote, err, tt.ok)
		}
	}
}

func TestHubServe(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := runCLI(t, "-C", dir, "hub", "init", "--repository", "r", "--package", "p"); code != 0 {
		t.Fatal(errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		app := NewApp(strings.NewReader(""), pw, io.Discard)
		done <- app.RunContext(ctx, []string{"otabake", "-C", dir, "--json", "hub", "serve", "--listen", "127.0.0.1:0"})
		pw.Close()
	}()
	var info struct{ URL, Token string }
	dec := json.NewDecoder(bufio.NewReader(pr))
	if err := dec.Decode(&info); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(info.URL, "http://127.0.0.1:") || !strings.HasPrefix(info.Token, "org_sk_") {
		t.Fatalf("serve printed %+v", info)
	}
	req, _ := http.NewRequest(http.MethodPost, info.URL+"/api/v1/actions/invoke/repositories_ResolveName", strings.NewReader(`{"repository":"r"}`))
	req.Header.Set("Authorization", "Bearer "+info.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"result":"Found"`) {
		t.Errorf("ResolveName via hub serve = %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

// TestHubDamagedDatabase: a truncated or empty hub.db gives every command a clear error naming
// the file and `hub check`/`hub repair` (run in-process: a SIGBUS would kill the test binary);
// check reports it and exits non-zero, repair rebuilds, and check is clean afterwards.
func TestHubDamagedDatabase(t *testing.T) {
	for _, size := range []int64{0, 5000} {
		dir := t.TempDir()
		if code, _, errs := runCLI(t, "-C", dir, "hub", "init", "--repository", "fleet", "--package", "system"); code != 0 {
			t.Fatalf("init: %d %s", code, errs)
		}
		db := filepath.Join(dir, ".otabake", "hub", "hub.db")
		if err := os.Truncate(db, size); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Minute)
		os.Chtimes(db, old, old)
		for _, args := range [][]string{{"hub", "ls"}, {"hub", "init", "--repository", "fleet", "--package", "system"}} {
			code, _, errs := runCLI(t, append([]string{"-C", dir}, args...)...)
			if code != 1 || !strings.Contains(errs, db) || !strings.Contains(errs, "otabake hub check") || !strings.Contains(errs, "otabake hub repair") {
				t.Errorf("size %d: %v = %d %q, want the recovery message", size, args, code, errs)
			}
		}
		code, out, _ := runCLI(t, "-C", dir, "--json", "hub", "check")
		var rep struct {
			OK bool `json:"ok"`
		}
		if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || rep.OK {
			t.Errorf("size %d: hub check --json = %d %s", size, code, out)
		}
		code, out, errs := runCLI(t, "-C", dir, "hub", "repair")
		if code != 0 || !strings.Contains(out, "moved the damaged database to "+db+".damaged-") {
			t.Errorf("size %d: hub repair = %d %q %q", size, code, out, errs)
		}
		if code, out, errs := runCLI(t, "-C", dir, "hub", "check"); code != 0 || !strings.Contains(out, "ok") {
			t.Errorf("size %d: hub check after repair = %d %q %q", size, code, out, errs)
		}
	}
}

// TestHubLsEscapes: names from the Hub are printed escaped, never as terminal escapes or
// forged lines, and listing writes nothing.
func TestHubLsEscapes(t *testing.T) {
	var b bytes.Buffer
	tree := []local.TreeRepository{{ID: "repo_x", Name: "fleet", Packages: []local.TreePackage{{ID: "pkg_y", Name: "system",
		Versions: []local.TreeVersion{{ID: "pkg_v_z", Name: "evil\x1b[2J", Tags: []hub.VersionTag{{Tag: "t\nforged"}},
			Assets: []hub.VersionAsset{{Filename: "a\x00b\x1b]0;title\x07\nfake line", Size: 1, Digest: "sha256_00", Status: hub.AssetAvailable}}}}}}}}
	if err := printTree(&b, "/hub", tree); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x00\x1b\x07") || strings.Count(out, "\n") != 4 {
		t.Fatalf("hub ls printed raw control characters:\n%q", out)
	}
	for _, want := range []string{`"a\x00b\x1b]0;title\a\nfake line"`, `"t\nforged"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %s", out, want)
		}
	}

	dir := t.TempDir()
	if code, out, _ := runCLI(t, "-C", dir, "hub", "ls"); code != 0 || !strings.Contains(out, "is empty") {
		t.Fatalf("hub ls of nothing = %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, ".otabake")); !os.IsNotExist(err) {
		t.Errorf("hub ls created the local Hub: %v", err)
	}
}
