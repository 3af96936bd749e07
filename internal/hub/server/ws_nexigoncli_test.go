package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
)

// TestRealNexigonCLI drives the real nexigon-cli (built from nexigon/nexigon, never part of
// this repository; see DEVELOPERS.md, "Real references") against the server on a loopback
// listener through its repository commands, and checks the results through the store.
//
//	OTABAKE_NEXIGON_CLI=/path/to/nexigon-cli go test -run RealNexigonCLI -v ./internal/hub/server/
func TestRealNexigonCLI(t *testing.T) {
	cli := os.Getenv("OTABAKE_NEXIGON_CLI")
	if cli == "" {
		t.Skip("SKIPPED: set OTABAKE_NEXIGON_CLI=/path/to/nexigon-cli to run the real nexigon-cli against the WebSocket API")
	}
	e := newWSEnv(t, Limits{})
	dir := t.TempDir()
	// nexigon-cli's config (crates/apps/nexigon-cli/schemas/config.sidex: kebab-case hub-url
	// and token). An http:// URL gives ws://; newer CLIs also want dangerous-allow-plaintext,
	// which older ones ignore (sidex skips unknown fields).
	cfg := filepath.Join(dir, "cli.toml")
	os.WriteFile(cfg, []byte("hub-url = \""+e.url+"\"\ntoken = \""+wsToken+"\"\ndangerous-allow-plaintext = true\n"), 0o600)
	payload := bytes.Repeat([]byte("otabake real-client asset\n"), 40000) // ~1 MiB
	file := filepath.Join(dir, "system.rugixb")
	os.WriteFile(file, payload, 0o644)

	try := func(args ...string) ([]byte, string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, append([]string{"--config", cfg}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		t.Logf("$ nexigon-cli %s\n%s", strings.Join(args, " "), stdout.Bytes())
		return stdout.Bytes(), stderr.String(), err
	}
	run := func(args ...string) []byte {
		t.Helper()
		out, stderr, err := try(args...)
		if err != nil {
			t.Fatalf("nexigon-cli %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	decode := func(b []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("output %q: %v", b, err)
		}
	}

	var created struct{ VersionID string }
	decode(run("repositories", "versions", "create", "repo/pkg", "--tag", "1.0.0,locked", "--tag", "latest,reassign", "--metadata", `{"build":"real-cli"}`), &created)

	var resolved struct{ Result, VersionID string }
	decode(run("repositories", "versions", "resolve", "repo/pkg/1.0.0"), &resolved)
	if resolved.Result != "Found" || resolved.VersionID != created.VersionID {
		t.Fatalf("resolve = %+v, want version %s", resolved, created.VersionID)
	}
	run("repositories", "versions", "tag", "repo/pkg/1.0.0", "--tag", "stable,reassign")

	var uploaded struct{ Result, AssetID string }
	decode(run("repositories", "assets", "upload", "repo", file), &uploaded)
	if uploaded.Result != "Created" || uploaded.AssetID == "" {
		t.Fatalf("upload = %+v", uploaded)
	}
	run("repositories", "versions", "assets", "add", "repo/pkg/1.0.0", uploaded.AssetID, "system.rugixb", "--metadata", `{"rugix":{"bundleHash":"x"}}`)

	// This nexigon-cli (33fb37c, April 2026) predates verified uploads: it PUTs to the
	// compatibility url and never finalizes (its API has no FinalizeAssetUpload). Like the Hub
	// (repositories.sidex IssueAssetUploadUrlOutput.url: "Objects uploaded through this URL
	// remain dangling"), the local Hub keeps such an asset Dangling, and serves it all the same,
	// as the Hub serves what meta-nexigon's tests upload this way.
	var details struct{ Status string }
	decode(e.httpCall(t, "repositories_GetAssetDetails", map[string]string{"assetId": uploaded.AssetID}), &details)
	if details.Status != "Dangling" {
		t.Errorf("status after the legacy upload = %s, want Dangling", details.Status)
	}
	var issued struct{ URL string }
	decode(run("repositories", "issue-url", "repo/pkg/stable/system.rugixb"), &issued)
	resp, err := http.Get(issued.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, payload) {
		t.Fatalf("download of the issued URL: %d, %d bytes", resp.StatusCode, len(got))
	}

	// What otabake's own side sees.
	ctx := context.Background()
	ref, ok, err := e.store.ResolveVersion(ctx, hub.VersionPath{Repository: "repo", Package: "pkg", Tag: "stable"})
	if err != nil || !ok || ref.VersionID != created.VersionID {
		t.Fatalf("store: stable = %+v %v %v", ref, ok, err)
	}
	d, err := e.store.GetVersionDetails(ctx, created.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]bool{}
	for _, tg := range d.Tags {
		tags[tg.Tag] = tg.Locked
	}
	if locked, ok := tags["1.0.0"]; !ok || !locked || len(tags) != 3 {
		t.Errorf("tags = %v, want 1.0.0 (locked), latest, stable", tags)
	}
	var meta map[string]any
	json.Unmarshal(d.Metadata, &meta)
	if meta["build"] != "real-cli" {
		t.Errorf("metadata = %s", d.Metadata)
	}
	a, ok := d.Asset("system.rugixb")
	sum := sha256.Sum256(payload)
	if !ok || a.AssetID != uploaded.AssetID || a.Size != int64(len(payload)) || a.Status != hub.AssetDangling || a.Digest.Hex() != hex.EncodeToString(sum[:]) {
		t.Errorf("asset = %+v", a)
	}
	t.Logf("store: version %s tags %v asset %s %s %s", d.VersionID, tags, a.AssetID, a.Status, a.Digest)
}
