package agent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/agent"
	"github.com/otabake/otabake/internal/agent/internal/sim/nexigonsock"
	"github.com/otabake/otabake/internal/testkit"
)

func TestNoUpdateAvailable(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	r.publish("v1", "stable", "", nil)
	if res := r.check(); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	r.wantStatus("completed", "v1", 0, "")
	if st := r.status(); st["targetVersion"] != nil {
		t.Errorf("targetVersion = %v, want null", st["targetVersion"])
	}
	r.wantEvents("checking for updates", "no update available")
}

func TestUpdateInstallRebootCommit(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	path, hash := r.newBundle("v2")
	r.publish("v2", "stable", path, map[string]any{"rugix": map[string]any{"bundleHash": hash}, "version": "v2"})
	if res := r.check(); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	r.wantStatus("rebooting", "v1", 0, "")
	if st := r.status(); st["targetVersion"] != "v2" {
		t.Errorf("targetVersion = %v, want v2", st["targetVersion"])
	}
	d := r.device()
	if d.Installs != 1 || !slices.Equal(d.Reboots, []string{"spare"}) {
		t.Fatalf("installs %d reboots %v, want 1 and [spare]", d.Installs, d.Reboots)
	}
	if slices.Contains(d.InstallArgs[0], "--bundle-hash") {
		t.Errorf("install args %v: --bundle-hash without useBundleHash", d.InstallArgs[0])
	}
	if a := d.InstallArgs[0]; len(a) < 2 || a[len(a)-2] != "--" || !strings.HasPrefix(a[len(a)-1], r.url) {
		t.Errorf("install args %v: want the Hub's URL alone after \"--\"", a)
	}
	r.boot()
	if res := r.check(); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	r.wantStatus("completed", "v2", 0, "")
	if d := r.device(); d.Default != "b" || d.Commits != 1 || d.Installs != 1 {
		t.Errorf("device default %s commits %d installs %d, want b 1 1", d.Default, d.Commits, d.Installs)
	}
	r.wantEvents("checking for updates", "update available, installing", "installing update", "update installed, rebooting",
		"committing system", "update completed", "checking for updates", "no update available")

	// A further tick is quiet: no install, no new transition event.
	r.check()
	r.wantStatus("completed", "v2", 0, "")
	if d := r.device(); d.Installs != 1 {
		t.Errorf("installs = %d after an idle tick", d.Installs)
	}
}

func TestUnresolvablePath(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	r.writeFile(agent.DefaultsFile, `{"path":"repo/pkg/nope"}`)
	if res := r.check(); res.code != 1 {
		t.Fatalf("exit %d, want 1", res.code)
	}
	r.wantStatus("failed", "v1", 1, "unable to resolve version at repo/pkg/nope")
	r.wantEvents("checking for updates", "update failed")
}

func corrupt(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-2000] ^= 0xff
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCorruptBundle(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", corrupt(t, path), nil)
	if res := r.check(); res.code != 1 {
		t.Fatalf("exit %d, want 1", res.code)
	}
	r.wantStatus("failed", "v1", 1, "rugix-ctrl update install failed")
	if d := r.device(); d.InstallAttempts != 1 || d.Installs != 0 || len(d.Reboots) != 0 {
		t.Errorf("attempts %d installs %d reboots %v", d.InstallAttempts, d.Installs, d.Reboots)
	}
	if le, _ := r.status()["lastError"].(string); !strings.Contains(le, "verification failed") {
		t.Errorf("lastError %q does not quote rugix-ctrl's stderr", le)
	}
}

func TestFailingPreCommitHookRollsBack(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", path, nil)
	r.check()
	r.boot()
	r.writeFile("/etc/rugix/hooks/system-commit/pre-commit/10-fail", "#!/bin/sh\necho health check failed >&2\nexit 1\n")
	os.Chmod(filepath.Join(r.root, "/etc/rugix/hooks/system-commit/pre-commit/10-fail"), 0o755)
	if res := r.check(); res.code != 1 {
		t.Fatalf("exit %d, want 1", res.code)
	}
	r.wantStatus("committing", "v2", 1, "pre-commit")
	r.boot() // reboot without commit: back to a
	if res := r.check(); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	r.wantStatus("failed", "v1", 2, "update rolled back (expected v2, running v1)")
	if d := r.device(); d.Installs != 1 {
		t.Errorf("installs = %d, want 1 (no retry before backoff)", d.Installs)
	}
}

func TestWatchdogNoopWhenCommitted(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	res := r.run(nil, "watchdog")
	if res.code != 0 || !strings.Contains(res.stdout, "nothing to do") {
		t.Fatalf("exit %d stdout %q", res.code, res.stdout)
	}
	if d := r.device(); len(d.Reboots) != 0 {
		t.Errorf("reboots %v", d.Reboots)
	}
}

func TestWatchdogRollsBackUncommitted(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", path, nil)
	r.check()
	r.boot() // on trial in b, never committed
	res := r.run(nil, "watchdog")
	if res.code != 0 || !strings.Contains(res.stdout, "rollback") {
		t.Fatalf("exit %d stdout %q", res.code, res.stdout)
	}
	if d := r.device(); !slices.Equal(d.Reboots, []string{"spare", "default"}) {
		t.Errorf("reboots %v, want [spare default]", d.Reboots)
	}
	if ev := r.events(); ev[len(ev)-1] != "watchdog triggering rollback reboot" {
		t.Errorf("last event %q", ev[len(ev)-1])
	}
	r.wantStatus("rollback", "", 0, "")
	r.boot()
	r.check()
	r.wantStatus("failed", "v1", 1, "rolled back")
}

func TestSecondInstanceAlreadyRunning(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	r.publish("v1", "stable", "", nil)
	lockPath := filepath.Join(r.root, agent.LockFile)
	os.MkdirAll(filepath.Dir(lockPath), 0o755)
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	res := r.check()
	if res.code != 1 || !strings.Contains(res.stderr, "already running") {
		t.Fatalf("exit %d stderr %q, want 1 and already running", res.code, res.stderr)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if res := r.check(); res.code != 0 {
		t.Fatalf("after unlock: exit %d", res.code)
	}
}

func TestDeviceOverrideAndRemoval(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	r.publish("v1", "stable", "", nil)
	r.setProperty(agent.ConfigProperty, `{"path":"repo/pkg/canary"}`)
	r.check()
	r.wantStatus("failed", "v1", 1, "unable to resolve version at repo/pkg/canary")
	if cfg := r.status()["config"].(map[string]any); cfg["path"] != "repo/pkg/canary" {
		t.Errorf("config.path = %v", cfg["path"])
	}
	if _, err := r.store.RemoveProperty(r.ctx, testDevice, agent.ConfigProperty); err != nil {
		t.Fatal(err)
	}
	if res := r.check(); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	r.wantStatus("completed", "v1", 0, "")
	if cfg := r.status()["config"].(map[string]any); cfg["path"] != "repo/pkg/stable" {
		t.Errorf("config.path = %v after removing the override", cfg["path"])
	}
}

func TestUseBundleHash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tool, flag string
	}{{"1.2.0", "--bundle-hash"}, {"0.8.15", "--verify-bundle"}} {
		t.Run(tc.tool, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, "rugix")
			saveDevice(t, r, func(dd *simDevice) { dd.ToolVersion = tc.tool })
			r.writeFile(agent.DefaultsFile, `{"path":"repo/pkg/stable","rugix":{"useBundleHash":true}}`)
			// The cloud cannot switch verification off.
			r.setProperty(agent.ConfigProperty, `{"rugix":{"useBundleHash":false}}`)
			path, hash := r.newBundle("v2")
			vid := r.publish("v2", "stable", path, map[string]any{"version": "v2"})
			if res := r.check(); res.code != 1 {
				t.Fatalf("exit %d, want 1", res.code)
			}
			r.wantStatus("failed", "v1", 1, "no rugix.bundleHash metadata")
			meta, _ := json.Marshal(map[string]any{"rugix": map[string]any{"bundleHash": hash}})
			if err := r.store.SetVersionAssetMetadata(r.ctx, vid, testSystem+".rugixb", meta); err != nil {
				t.Fatal(err)
			}
			if res := r.check("--ignore-backoff"); res.code != 0 {
				t.Fatalf("exit %d", res.code)
			}
			args := r.device().InstallArgs[0]
			if i := slices.Index(args, tc.flag); i < 0 || args[i+1] != hash {
				t.Errorf("install args %v, want %s %s", args, tc.flag, hash)
			}
			// The failure count and last error stand until the update completes.
			r.wantStatus("rebooting", "v1", 1, "no rugix.bundleHash")
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	r.writeFile(agent.SettingsFile, strings.Replace(testkit.ReadFile(t, filepath.Join(r.root, agent.SettingsFile)), `initial = "1h"`, `initial = "2s"`, 1))
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", corrupt(t, path), nil)
	start := time.Now()
	r.check()
	r.wantStatus("failed", "v1", 1, "install failed")
	r.check()
	r.wantStatus("blocked", "v1", 1, "install failed")
	st := r.status()
	if st["nextAttemptAt"] == nil || !strings.Contains(st["blockedReason"].(string), "backing off") {
		t.Errorf("blocked status without reason or next attempt: %v", st)
	}
	if d := r.device(); d.InstallAttempts != 1 {
		t.Fatalf("install attempts = %d during backoff, want 1", d.InstallAttempts)
	}
	next, err := time.Parse(time.RFC3339Nano, st["nextAttemptAt"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if d := next.Sub(start); d < time.Second || d > 10*time.Second {
		t.Errorf("next attempt %v after the start, want about 2s", d)
	}
	time.Sleep(time.Until(next.Add(50 * time.Millisecond)))
	r.check()
	r.wantStatus("failed", "v1", 2, "install failed")
	if d := r.device(); d.InstallAttempts != 2 {
		t.Fatalf("install attempts = %d after backoff, want 2", d.InstallAttempts)
	}
}

func TestVersionMetadataContradiction(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", path, map[string]any{"version": "v3"})
	r.check()
	r.wantStatus("failed", "v1", 1, "refusing to install")
	if d := r.device(); d.InstallAttempts != 0 {
		t.Errorf("install attempts = %d", d.InstallAttempts)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", path, nil)
	res := r.check("--dry-run")
	if res.code != 0 || !strings.Contains(res.stdout, "would: install sys.rugixb v2: rugix-ctrl update install --reboot no") {
		t.Fatalf("exit %d stdout %q", res.code, res.stdout)
	}
	if _, found, _ := r.store.GetProperty(r.ctx, testDevice, agent.StatusProperty); found {
		t.Error("dry run published a status")
	}
	if ev := r.events(); len(ev) != 0 {
		t.Errorf("dry run emitted events %q", ev)
	}
	if d := r.device(); d.InstallAttempts != 0 || len(d.Reboots) != 0 {
		t.Errorf("dry run acted: %+v", d)
	}
	if _, err := os.Stat(filepath.Join(r.root, agent.StateFile)); err == nil {
		t.Error("dry run wrote the state file")
	}
}

func TestDeferFile(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	r.writeFile(agent.DefaultsFile, `{"path":"repo/pkg/stable","defer":{"file":"/run/otabake/defer"}}`)
	r.writeFile("/run/otabake/defer", "")
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", path, nil)
	r.check()
	r.wantStatus("blocked", "v1", 0, "")
	r.check() // still deferred: no new event
	r.wantEvents("checking for updates", "update blocked", "checking for updates")
	os.Remove(filepath.Join(r.root, "/run/otabake/defer"))
	r.check()
	r.wantStatus("rebooting", "v1", 0, "")
}

func TestRauc(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rauc")
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", path, nil)
	if res := r.check(); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	r.wantStatus("rebooting", "v1", 0, "")
	if d := r.device(); d.Installs != 1 || !slices.Equal(d.Reboots, []string{"reboot"}) {
		t.Fatalf("installs %d reboots %v", d.Installs, d.Reboots)
	} else if a := d.InstallArgs[0]; len(a) != 3 || a[0] != "install" || a[1] != "--" {
		t.Errorf("rauc args %q, want install -- URL", a)
	}
	r.boot()
	if res := r.check(); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	r.wantStatus("completed", "v2", 0, "")
}

func TestSocketTransport(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	sock := filepath.Join(r.root, "s.sock")
	srv, err := nexigonsock.Listen(sock, r.url, testToken, testDevice)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r.writeFile(agent.SettingsFile, "engine = \"rugix\"\nsocket-path = \"/s.sock\"\n")
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", path, nil)
	// The Hub is reached over plain http here; until nexigon-agent's configuration says so,
	// the agent accepts only https bundle URLs.
	if res := r.check(); res.code == 0 || !strings.Contains(res.stderr, "only https bundle URLs are accepted") {
		t.Fatalf("http bundle URL with an unknown Hub URL: exit %d\n%s", res.code, res.stderr)
	}
	if d := r.device(); d.InstallAttempts != 0 {
		t.Fatalf("rugix-ctrl was run %d times with a refused URL", d.InstallAttempts)
	}
	r.writeFile(agent.NexigonAgentConfig, "hub-url = \""+r.url+"\"\ntoken = \"deployment_x\"\nfingerprint-script = \"fp.sh\"\n")
	if res := r.check("--ignore-backoff"); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	r.boot()
	r.check()
	r.wantStatus("completed", "v2", 0, "")
	acts := srv.Actions()
	for _, want := range []string{"actor_GetActor", "devices_GetProperty", "devices_SetProperty", "devices_PublishEvents",
		"repositories_ResolveVersionByPath", "repositories_GetVersionDetails", "repositories_ResolveVersionAssetByPath",
		"repositories_IssueAssetDownloadUrl"} {
		if !slices.Contains(acts, want) {
			t.Errorf("socket never saw %s", want)
		}
	}
}

func TestStatusCommand(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	r.publish("v1", "stable", "", nil)
	r.setProperty(agent.ConfigProperty, `{"extra":1}`)
	r.check()
	res := r.run(nil, "status", "--json")
	var rep agent.Report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("status --json: %v: %q", err, res.stdout)
	}
	if rep.System != testSystem || rep.CurrentVersion != "v1" || rep.LastStatus == nil || rep.LastStatus.State != "completed" {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(rep.ConfigSources["path"], "image defaults") || !strings.Contains(rep.ConfigSources["extra"], "device property") {
		t.Errorf("config sources %v", rep.ConfigSources)
	}
}

func TestCommandCheck(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	fake := t.TempDir()
	log := filepath.Join(fake, "log")
	os.WriteFile(filepath.Join(fake, "systemctl"), []byte("#!/bin/sh\necho \"$@\" > "+log+"\n"), 0o755)
	r.env = append(r.env, "PATH="+fake+string(os.PathListSeparator)+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	res := r.runStdin("{\"unit\":null}\n", "command", "check")
	if res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	var out struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || out.Type != "Output" || out.Data["started"] != true {
		t.Errorf("output %q (%v)", res.stdout, err)
	}
	if got := strings.TrimSpace(testkit.ReadFile(t, log)); got != "start --no-block otabake-agent.service" {
		t.Errorf("systemctl %q", got)
	}
}

// TestFailedEventPublishDeliveredNextCycle: events the Hub could not take are kept in the
// agent's state and delivered first by the next cycle, in order and with the same IDs.
func TestFailedEventPublishDeliveredNextCycle(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	r.publish("v1", "stable", "", nil)
	r.failEvents.Store(true)
	if res := r.check(); res.code != 0 {
		t.Fatalf("a failed event publish failed the cycle: exit %d", res.code)
	}
	r.wantStatus("completed", "v1", 0, "")
	if ids := r.eventIDs(); len(ids) != 0 {
		t.Fatalf("the Hub has events %v although it refused them", ids)
	}
	var pending []string
	for _, ev := range r.agentState().PendingEvents {
		pending = append(pending, ev.EventID)
	}
	if len(pending) != 2 {
		t.Fatalf("pending events %v, want the two of the cycle", pending)
	}
	res := r.run(nil, "status", "--json")
	var rep agent.Report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || rep.PendingEvents != 2 {
		t.Errorf("status reports %d pending events (%v), want 2", rep.PendingEvents, err)
	}

	r.failEvents.Store(false)
	if res := r.check(); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	ids := r.eventIDs()
	if len(ids) != 4 || !slices.Equal(ids[:2], pending) {
		t.Fatalf("Hub events %v, want %v first, then the two of the second cycle", ids, pending)
	}
	r.wantEvents("checking for updates", "no update available", "checking for updates", "no update available")
	if st := r.agentState(); len(st.PendingEvents) != 0 || st.DroppedEvents != 0 {
		t.Errorf("after delivery: %d pending, %d dropped", len(st.PendingEvents), st.DroppedEvents)
	}
}
