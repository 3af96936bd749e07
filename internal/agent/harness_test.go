package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/agent"
	"github.com/otabake/otabake/internal/agent/internal/sim"
	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/hub/server"
	"github.com/otabake/otabake/internal/testkit"
)

// binDir holds otabake-agent and the simulators (rugix-ctrl, rauc, reboot), built once.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "otabake-agent-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		// crashtest compiles in the crash hook (crash_hook.go) that crash_test.go drives.
		cmd := exec.Command("go", "build", "-tags", "crashtest", "-o", dir,
			"github.com/otabake/otabake/cmd/otabake-agent",
			"github.com/otabake/otabake/internal/agent/internal/sim/rugixctrl",
			"github.com/otabake/otabake/internal/agent/internal/sim/rauc")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build agent and simulators:", err)
			return 1
		}
		if err := os.Rename(filepath.Join(dir, "rugixctrl"), filepath.Join(dir, "rugix-ctrl")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.Symlink("rauc", filepath.Join(dir, "reboot")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

const (
	testToken  = "org_sk_test11111111111111111111111111111111111111111111111111111111111111"
	testDevice = "d_simdevice1111111111111"
	testSystem = "sys"
	testRepo   = "repo"
	testPkg    = "pkg"
)

// rig is one simulated device with its local Hub.
type rig struct {
	t         *testing.T
	ctx       context.Context
	store     *local.Store
	url       string
	pkgID     string
	root      string
	statePath string
	engine    string
	env       []string
	suffix    string
	// failEvents makes the Hub answer devices_PublishEvents with 500 Internal.
	failEvents atomic.Bool
}

func newRig(t *testing.T, engineName string) *rig {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the agent is Linux-only")
	}
	ctx := context.Background()
	dir := t.TempDir()
	store, err := local.Open(filepath.Join(dir, "hub"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	_, pkgID, err := store.Init(ctx, testRepo, testPkg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	var failEvents *atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failEvents.Load() && strings.HasSuffix(r.URL.Path, "/devices_PublishEvents") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"kind":"Internal","message":"event store unavailable (test)"}`)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	if h, err = server.New(server.Config{Store: store, Token: testToken, BaseURL: srv.URL}); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, ctx: ctx, store: store, url: srv.URL, pkgID: pkgID, root: filepath.Join(dir, "root"),
		statePath: filepath.Join(dir, "sim.json"), engine: engineName, suffix: ".rugixb"}
	failEvents = &r.failEvents
	if engineName == "rauc" {
		r.suffix = ".raucb"
	}
	r.writeFile("/etc/otabake/hub-token", testToken+"\n")
	r.writeFile(agent.SettingsFile, fmt.Sprintf("engine = %q\ntransport = \"hub\"\n[hub]\nurl = %q\ntoken-file = \"/etc/otabake/hub-token\"\ndevice-id = %q\n[backoff]\ninitial = \"1h\"\n",
		engineName, srv.URL, testDevice))
	r.writeFile(agent.DefaultsFile, `{"path":"repo/pkg/stable"}`)
	d := &sim.Device{System: testSystem, Engine: engineName, ToolVersion: "1.2.0", Default: "a", Active: "a",
		Groups: map[string]*sim.Group{"a": {Version: "v1", Good: true}, "b": {}}, Bundles: map[string]string{}}
	if engineName == "rauc" {
		d.Default, d.Active = "A", "A"
		d.Groups = map[string]*sim.Group{"A": {Version: "v1", Good: true}, "B": {}}
	}
	if err := sim.WriteIdentity(r.root, d); err != nil {
		t.Fatal(err)
	}
	if err := sim.Save(r.statePath, d); err != nil {
		t.Fatal(err)
	}
	r.env = append(os.Environ(),
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		sim.StateEnv+"="+r.statePath, sim.RootEnv+"="+r.root)
	return r
}

func (r *rig) writeFile(p, content string) {
	r.t.Helper()
	testkit.WriteFile(r.t, filepath.Join(r.root, p), content)
}

// result of one agent run.
type result struct {
	code           int
	stdout, stderr string
	killed         bool
}

func (r *rig) run(extraEnv []string, args ...string) result {
	r.t.Helper()
	return r.exec("", extraEnv, args...)
}

func (r *rig) runStdin(stdin string, args ...string) result {
	r.t.Helper()
	return r.exec(stdin, nil, args...)
}

func (r *rig) exec(stdin string, extraEnv []string, args ...string) result {
	r.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "otabake-agent"), append([]string{"--root", r.root}, args...)...)
	cmd.Env = append(append([]string(nil), r.env...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
		res.killed = ee.ProcessState.String() == "signal: killed"
	} else if err != nil {
		r.t.Fatalf("run agent: %v", err)
	}
	r.t.Logf("otabake-agent %s → %d\n%s%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

func (r *rig) check(args ...string) result { return r.run(nil, append([]string{"check"}, args...)...) }

// newBundle writes a small real bundle and registers the version it installs with the
// simulator; it returns the bundle path and hash.
func (r *rig) newBundle(version string) (string, string) {
	r.t.Helper()
	dir := r.t.TempDir()
	payload := filepath.Join(dir, "rootfs.img")
	data := make([]byte, 24<<10)
	_, _ = rand.Read(data)
	copy(data, version)
	if err := os.WriteFile(payload, data, 0o644); err != nil {
		r.t.Fatal(err)
	}
	out := filepath.Join(dir, testSystem+r.suffix)
	res, err := bundle.Create(r.ctx, out, bundle.Spec{Payloads: []bundle.Payload{{Slot: "system", Path: payload}}}, bundle.CreateOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	d, unlock, err := sim.Load(r.statePath)
	if err != nil {
		r.t.Fatal(err)
	}
	d.Bundles[res.Hash] = version
	err = sim.Save(r.statePath, d)
	unlock()
	if err != nil {
		r.t.Fatal(err)
	}
	return out, res.Hash
}

// publish creates a version with imageVersion=version tagged tag, and attaches the bundle at
// path (if any) with metadata.
func (r *rig) publish(version, tag, path string, assetMeta map[string]any) string {
	r.t.Helper()
	meta, _ := json.Marshal(map[string]string{"imageVersion": version})
	vid, err := r.store.CreateVersion(r.ctx, hub.CreateVersionRequest{PackageID: r.pkgID,
		Tags: []hub.TagItem{{Tag: tag, Reassign: true}, {Tag: version, Locked: true}}, Metadata: meta})
	if err != nil {
		r.t.Fatal(err)
	}
	if path != "" {
		r.attach(vid, path, assetMeta)
	}
	return vid
}

func (r *rig) attach(versionID, path string, assetMeta map[string]any) {
	r.t.Helper()
	f, err := os.Open(path)
	if err != nil {
		r.t.Fatal(err)
	}
	digest, size, err := hub.DigestReader(f)
	f.Close()
	if err != nil {
		r.t.Fatal(err)
	}
	repoID, _, err := r.store.ResolveRepository(r.ctx, testRepo)
	if err != nil {
		r.t.Fatal(err)
	}
	assetID, _, err := r.store.CreateAsset(r.ctx, repoID, size, digest)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.store.PutBlobFile(r.ctx, assetID, path); err != nil {
		r.t.Fatal(err)
	}
	var meta json.RawMessage
	if assetMeta != nil {
		meta, _ = json.Marshal(assetMeta)
	}
	if _, err := r.store.AddVersionAsset(r.ctx, versionID, assetID, testSystem+r.suffix, meta); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) setProperty(name, value string) {
	r.t.Helper()
	if err := r.store.SetProperty(r.ctx, testDevice, name, json.RawMessage(value)); err != nil {
		r.t.Fatal(err)
	}
}

// status returns the published dev.nexigon.ota.status.
func (r *rig) status() map[string]any {
	r.t.Helper()
	p, found, err := r.store.GetProperty(r.ctx, testDevice, agent.StatusProperty)
	if err != nil || !found {
		r.t.Fatalf("status property: found=%v err=%v", found, err)
	}
	var m map[string]any
	if err := json.Unmarshal(p.Value, &m); err != nil {
		r.t.Fatal(err)
	}
	return m
}

// events returns the bodies of the ota events, oldest first.
func (r *rig) events() []string {
	r.t.Helper()
	evs, err := r.store.QueryEvents(r.ctx, testDevice, 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.Category != "ota" {
			r.t.Errorf("event %s: category %q", e.EventID, e.Category)
		}
		if !strings.HasPrefix(e.EventID, "d_ev_") {
			r.t.Errorf("event id %q", e.EventID)
		}
		var body string
		_ = json.Unmarshal(e.Body, &body)
		out = append(out, body)
	}
	return out
}

// eventIDs returns the IDs of the events the Hub has, oldest first.
func (r *rig) eventIDs() []string {
	r.t.Helper()
	evs, err := r.store.QueryEvents(r.ctx, testDevice, 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}

// agentState reads the agent's state file.
func (r *rig) agentState() agent.State {
	r.t.Helper()
	var st agent.State
	if err := json.Unmarshal([]byte(testkit.ReadFile(r.t, filepath.Join(r.root, agent.StateFile))), &st); err != nil {
		r.t.Fatal(err)
	}
	return st
}

func (r *rig) device() *sim.Device {
	r.t.Helper()
	d, unlock, err := sim.Load(r.statePath)
	if err != nil {
		r.t.Fatal(err)
	}
	unlock()
	return d
}

// boot power-cycles the simulated device.
func (r *rig) boot() {
	r.t.Helper()
	if err := sim.Boot(r.root, r.statePath); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) wantStatus(state, current string, failures int, errSub string) {
	r.t.Helper()
	st := r.status()
	if st["state"] != state {
		r.t.Errorf("state = %v, want %s (status %v)", st["state"], state, st)
	}
	if current != "" && st["currentVersion"] != current {
		r.t.Errorf("currentVersion = %v, want %s", st["currentVersion"], current)
	}
	if fc, _ := st["failureCount"].(float64); int(fc) != failures {
		r.t.Errorf("failureCount = %v, want %d", st["failureCount"], failures)
	}
	le, _ := st["lastError"].(string)
	if errSub == "" && st["lastError"] != nil {
		r.t.Errorf("lastError = %q, want null", le)
	}
	if errSub != "" && !strings.Contains(le, errSub) {
		r.t.Errorf("lastError = %q, want it to contain %q", le, errSub)
	}
}

func (r *rig) wantEvents(want ...string) {
	r.t.Helper()
	got := r.events()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		r.t.Errorf("event trail:\n  got  %q\n  want %q", got, want)
	}
}

type simDevice = sim.Device

// saveDevice edits the simulator's state.
func saveDevice(t *testing.T, r *rig, edit func(*sim.Device)) {
	t.Helper()
	d, unlock, err := sim.Load(r.statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	edit(d)
	if err := sim.Save(r.statePath, d); err != nil {
		t.Fatal(err)
	}
}

var _ = time.Second
