package yocto

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// agentEnv is a scratch do_install of otabake-agent: B holds the built binary where
// go.bbclass puts it, S holds the repository in go.bbclass's GOPATH layout, D is the image.
type agentEnv struct {
	files []*File
	d     string
	vars  map[string]string
}

func newAgentEnv(t *testing.T, local map[string]string) *agentEnv {
	t.Helper()
	dir := t.TempDir()
	recipes := filepath.Join(layerDir(t), "recipes-otabake", "otabake")
	e := &agentEnv{
		files: []*File{parseFile(t, filepath.Join(recipes, "otabake.inc")), parseFile(t, filepath.Join(recipes, "otabake-agent_git.bb"))},
		d:     filepath.Join(dir, "image"),
	}
	b, s := filepath.Join(dir, "build"), filepath.Join(dir, "otabake-agent-0.1+git")
	testkit.WriteFile(t, filepath.Join(b, "bin", "linux_amd64", "otabake-agent"), "#!/bin/sh\necho otabake-agent\n")
	root, err := filepath.Abs(testkit.RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s, "src", "github.com", "otabake"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(s, "src", "github.com", "otabake", "otabake")); err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{
		"D": e.d, "B": b, "WORKDIR": dir, "PN": "otabake-agent", "PV": "0.1+git", "BP": "otabake-agent-0.1+git",
		"bindir": "/usr/bin", "sysconfdir": "/etc", "systemd_system_unitdir": "/usr/lib/systemd/system",
	}
	for k, v := range local {
		defaults[k] = v
	}
	// What BitBake's classes compute: S (${WORKDIR}/${BP} on scarthgap) and GO_BUILD_BINDIR
	// from go.bbclass (cross builds put binaries in bin/<goos>_<goarch>). The recipe's inline
	// Python is evaluated by the harness.
	forced := map[string]string{"S": s, "GO_BUILD_BINDIR": "bin/linux_amd64"}
	e.vars = expandAll(t, defaults, e.files, forced)
	return e
}

func TestAgentInstall(t *testing.T) {
	units := filepath.Join(testkit.RepoRoot(t), "dist", "systemd")
	for _, tc := range []struct {
		name     string
		local    map[string]string
		useHash  bool
		wantPath string
		interval string
		timeout  string
		state    bool
	}{
		{
			name:     "defaults",
			local:    map[string]string{"NEXIGON_OTA_REPOSITORY": "fleet", "NEXIGON_OTA_PACKAGE": "gateway"},
			wantPath: "fleet/gateway/stable", interval: "4h", timeout: "1800", state: true,
		},
		{
			name: "meta-nexigon names and formats",
			local: map[string]string{"NEXIGON_OTA_REPOSITORY": "acme-os", "NEXIGON_OTA_PACKAGE": "edge.box", "NEXIGON_OTA_TAG": "beta",
				"NEXIGON_OTA_INTERVAL": "30min", "NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT": "15min", "NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH": "1",
				"DISTRO_FEATURES": "systemd rugix"},
			useHash:  true,
			wantPath: "acme-os/edge.box/beta", interval: "30min", timeout: "900", state: true,
		},
		{
			name:     "earlier name in seconds",
			local:    map[string]string{"NEXIGON_OTA_REPOSITORY": "fleet", "NEXIGON_OTA_PACKAGE": "gateway", "NEXIGON_OTA_WATCHDOG_TIMEOUT": "600"},
			wantPath: "fleet/gateway/stable", interval: "4h", timeout: "600", state: true,
		},
		{
			name:     "rauc",
			local:    map[string]string{"NEXIGON_OTA_REPOSITORY": "fleet", "NEXIGON_OTA_PACKAGE": "gateway", "DISTRO_FEATURES": "systemd rauc"},
			wantPath: "fleet/gateway/stable", interval: "4h", timeout: "1800", state: false,
		},
	} {
		e := newAgentEnv(t, tc.local)
		for _, sh := range shells(t) {
			t.Run(tc.name+"/"+sh, func(t *testing.T) {
				if err := os.RemoveAll(e.d); err != nil {
					t.Fatal(err)
				}
				mustRun(t, sh, script(t, e.files, e.vars, e.vars["WORKDIR"], "do_install"))

				if st, err := os.Stat(filepath.Join(e.d, "usr", "bin", "otabake-agent")); err != nil || st.Mode().Perm() != 0o755 {
					t.Errorf("/usr/bin/otabake-agent: %v, %v; want mode 0755", st, err)
				}
				unitDir := filepath.Join(e.d, "usr", "lib", "systemd", "system")
				for _, u := range []string{"otabake-agent.service", "otabake-agent.timer", "otabake-agent-watchdog.service", "otabake-agent-watchdog.timer"} {
					src := testkit.ReadFile(t, filepath.Join(units, u))
					want := strings.ReplaceAll(strings.ReplaceAll(src, "@@INTERVAL@@", tc.interval), "@@TIMEOUT@@", tc.timeout)
					if got := testkit.ReadFile(t, filepath.Join(unitDir, u)); got != want {
						t.Errorf("%s =\n%s\nwant\n%s", u, got, want)
					}
				}
				if got := testkit.ReadFile(t, filepath.Join(unitDir, "otabake-agent.timer")); !strings.Contains(got, "\nOnUnitActiveSec="+tc.interval+"\n") {
					t.Errorf("otabake-agent.timer lacks OnUnitActiveSec=%s", tc.interval)
				}
				if got := testkit.ReadFile(t, filepath.Join(unitDir, "otabake-agent-watchdog.timer")); !strings.Contains(got, "\nOnBootSec="+tc.timeout+"s\n") {
					t.Errorf("otabake-agent-watchdog.timer lacks OnBootSec=%ss", tc.timeout)
				}
				cmdDef := "etc/nexigon/agent/commands/nexigon.ota.check.toml"
				if got, want := testkit.ReadFile(t, filepath.Join(e.d, cmdDef)), testkit.ReadFile(t, filepath.Join(testkit.RepoRoot(t), "dist", "nexigon", "commands", "nexigon.ota.check.toml")); got != want {
					t.Errorf("%s differs from dist/", cmdDef)
				}
				// Rugix Ctrl keeps the agent's state across reboots and updates: the same rule
				// as the Rugix Bakery recipe's.
				state := filepath.Join(e.d, "etc", "rugix", "state", "otabake-agent.toml")
				if tc.state {
					if got, want := testkit.ReadFile(t, state), testkit.ReadFile(t, filepath.Join(testkit.RepoRoot(t), "recipes", "otabake-agent", "files", "otabake-agent-state.toml")); got != want || !strings.Contains(got, `directory = "/var/lib/otabake-agent"`) {
						t.Errorf("/etc/rugix/state/otabake-agent.toml =\n%s\nwant the Bakery recipe's\n%s", got, want)
					}
				} else if _, err := os.Stat(state); err == nil {
					t.Error("/etc/rugix/state/otabake-agent.toml installed on a RAUC image")
				}

				got := testkit.ReadFile(t, filepath.Join(e.d, "etc", "otabake", "ota.json"))
				var defaults struct {
					Path  string `json:"path"`
					Rugix struct {
						UseBundleHash bool `json:"useBundleHash"`
					} `json:"rugix"`
				}
				if err := json.Unmarshal([]byte(got), &defaults); err != nil {
					t.Fatalf("ota.json is not JSON: %v\n%s", err, got)
				}
				if defaults.Path != tc.wantPath || defaults.Rugix.UseBundleHash != tc.useHash {
					t.Errorf("ota.json = %+v, want path %s, useBundleHash %v", defaults, tc.wantPath, tc.useHash)
				}
				// The recipe and `otabake bake --ota-path` must write the same bytes.
				rootfs := t.TempDir()
				args := []string{"bake", "--rootfs", rootfs, "--system", "x", "--version", "1", "--ota-path", tc.wantPath}
				if tc.useHash {
					args = append(args, "--use-bundle-hash")
				}
				otabake(t, args...)
				if want := testkit.ReadFile(t, filepath.Join(rootfs, "etc", "otabake", "ota.json")); got != want {
					t.Errorf("ota.json from the recipe =\n%s\nfrom otabake bake =\n%s", got, want)
				}
			})
		}
	}
}

// TestAgentDependencies checks the agent's runtime dependencies as BitBake computes them: the
// update engine (from DISTRO_FEATURES or OTABAKE_UPDATE_ENGINE) and meta-nexigon's agent.
func TestAgentDependencies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local map[string]string
		want  string
	}{
		{"rugix by default", nil, "rugix-ctrl nexigon-agent"},
		{"rugix distro", map[string]string{"DISTRO_FEATURES": "systemd rugix"}, "rugix-ctrl nexigon-agent"},
		{"rauc distro", map[string]string{"DISTRO_FEATURES": "systemd rauc"}, "rauc nexigon-agent"},
		{"both: rugix", map[string]string{"DISTRO_FEATURES": "rauc rugix"}, "rugix-ctrl nexigon-agent"},
		{"explicit", map[string]string{"DISTRO_FEATURES": "rugix", "OTABAKE_UPDATE_ENGINE": "rauc", "OTABAKE_NEXIGON_AGENT": ""}, "rauc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAgentEnv(t, tc.local)
			var rdepends []string
			for _, f := range e.files {
				for _, a := range f.Assignments {
					if a.Name == "RDEPENDS:${PN}" {
						v, err := Expand(a.Value, e.vars)
						if err != nil {
							t.Fatal(err)
						}
						rdepends = append(rdepends, strings.Fields(v)...)
					}
				}
			}
			if got := strings.Join(rdepends, " "); got != tc.want {
				t.Errorf("RDEPENDS:${PN} = %q, want %q", got, tc.want)
			}
		})
	}
	agent := parseFile(t, filepath.Join(layerDir(t), "recipes-otabake", "otabake", "otabake-agent_git.bb"))
	if v := agent.Values("RCONFLICTS:${PN}"); len(v) != 1 || !strings.Contains(v[0], "nexigon-rugix-ota") || !strings.Contains(v[0], "nexigon-rugix-watchdog") {
		t.Errorf("RCONFLICTS:${PN} = %q, want meta-nexigon's own update loop and watchdog", v)
	}
}

// TestTimespan checks the systemd time span parser the watchdog timeout goes through.
func TestTimespan(t *testing.T) {
	agent := parseFile(t, filepath.Join(layerDir(t), "recipes-otabake", "otabake", "otabake-agent_git.bb"))
	body := `    import json
    bb.note(json.dumps({v: otabake_timespan_seconds(v) for v in json.loads(d.getVar("VALUES"))}))`
	cases := map[string]any{
		"1800": 1800, "1800s": 1800, "30min": 1800, "30 min": 1800, "1h 30min": 5400, "1h30m": 5400,
		"1.5h": 5400, "4h": 14400, "2w": 1209600, "500ms": 1, "15 minutes": 900,
		"": nil, "0": nil, "0s": nil, "30 parsecs": nil, "four hours": nil, "-5": nil, "1800s'": nil,
	}
	var values []string
	for v := range cases {
		values = append(values, v)
	}
	arg, _ := json.Marshal(values)
	res := runPython(t, Function{Name: "timespan", Kind: Python, Body: body}, map[string]string{"VALUES": string(arg)}, defs(agent)...)
	if res.Fatal != nil || len(res.Notes) != 1 {
		t.Fatalf("fatal %v, notes %q", res.Fatal, res.Notes)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(res.Notes[0]), &got); err != nil {
		t.Fatal(err)
	}
	for v, want := range cases {
		g := got[v]
		if f, ok := g.(float64); ok {
			g = int(f)
		}
		if g != want {
			t.Errorf("otabake_timespan_seconds(%q) = %v, want %v", v, g, want)
		}
	}
}

func TestAgentValidation(t *testing.T) {
	recipes := filepath.Join(layerDir(t), "recipes-otabake", "otabake")
	recipe := parseFile(t, filepath.Join(recipes, "otabake-agent_git.bb"))
	fn, ok := recipe.Function("do_validate_otabake")
	if !ok || fn.Kind != Python {
		t.Fatal("otabake-agent has no python do_validate_otabake")
	}
	good := map[string]string{"NEXIGON_OTA_REPOSITORY": "fleet", "NEXIGON_OTA_PACKAGE": "gateway"}
	for _, tc := range []struct {
		name      string
		set       map[string]string
		wantFatal string
	}{
		{name: "valid defaults"},
		{name: "valid everything", set: map[string]string{"NEXIGON_OTA_TAG": "beta", "NEXIGON_OTA_INTERVAL": "1h 30min", "NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT": "1800s", "NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH": "true", "OTABAKE_UPDATE_ENGINE": "rauc"}},
		{name: "valid earlier timeout name", set: map[string]string{"NEXIGON_OTA_WATCHDOG_TIMEOUT": "600"}},
		{name: "no repository", set: map[string]string{"NEXIGON_OTA_REPOSITORY": ""}, wantFatal: "NEXIGON_OTA_REPOSITORY is not set"},
		{name: "no package", set: map[string]string{"NEXIGON_OTA_PACKAGE": "  "}, wantFatal: "NEXIGON_OTA_PACKAGE is not set"},
		{name: "no tag", set: map[string]string{"NEXIGON_OTA_TAG": ""}, wantFatal: "NEXIGON_OTA_TAG is not set"},
		{name: "bad repository", set: map[string]string{"NEXIGON_OTA_REPOSITORY": "my fleet"}, wantFatal: "NEXIGON_OTA_REPOSITORY is 'my fleet'"},
		{name: "bad interval", set: map[string]string{"NEXIGON_OTA_INTERVAL": "four hours"}, wantFatal: "NEXIGON_OTA_INTERVAL"},
		{name: "no interval", set: map[string]string{"NEXIGON_OTA_INTERVAL": ""}, wantFatal: "NEXIGON_OTA_INTERVAL"},
		{name: "bad timeout", set: map[string]string{"NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT": "30 parsecs"}, wantFatal: "NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT"},
		{name: "zero timeout", set: map[string]string{"NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT": "0s"}, wantFatal: "NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT"},
		{name: "bad earlier timeout", set: map[string]string{"NEXIGON_OTA_WATCHDOG_TIMEOUT": "soon"}, wantFatal: "NEXIGON_OTA_WATCHDOG_TIMEOUT"},
		{name: "bad bundle hash flag", set: map[string]string{"NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH": "maybe"}, wantFatal: "NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH"},
		{name: "bad engine", set: map[string]string{"OTABAKE_UPDATE_ENGINE": "swupdate"}, wantFatal: "OTABAKE_UPDATE_ENGINE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := map[string]string{}
			for k, v := range good {
				local[k] = v
			}
			for k, v := range tc.set {
				local[k] = v
			}
			files := []*File{parseFile(t, filepath.Join(recipes, "otabake.inc")), recipe}
			res := runPython(t, fn, datastore(local, files, nil), defs(files...)...)
			switch {
			case tc.wantFatal == "" && res.Fatal != nil:
				t.Fatalf("unexpected fatal: %s", *res.Fatal)
			case tc.wantFatal != "" && (res.Fatal == nil || !strings.Contains(*res.Fatal, tc.wantFatal)):
				t.Fatalf("fatal = %v, want one containing %q", res.Fatal, tc.wantFatal)
			}
		})
	}
}

// TestShellcheck runs shellcheck on every shell function of the layer, expanded as BitBake
// would expand it, inside a script with the bb* stubs: as bash (what the brief asks) and as
// POSIX sh (what BitBake runs).
func TestShellcheck(t *testing.T) {
	sc := testkit.NeedTool(t, "shellcheck", "shellcheck", "the layer's shell functions are not linted")
	dir := t.TempDir()
	sample := map[string]string{
		"IMAGE_ROOTFS": "/work/rootfs", "IMGDEPLOYDIR": "/work/deploy", "DEPLOY_DIR_IMAGE": "/deploy", "WORKDIR": "/work",
		"IMAGE_NAME": testImageName, "IMAGE_LINK_NAME": testLinkName, "IMAGE_ID": "qemux86-64", "IMAGE_VERSION": testVersion,
		"D": "/work/image", "B": "/work/build", "S": "/work/git", "GO_BUILD_BINDIR": "bin", "PN": "otabake-agent",
		"bindir": "/usr/bin", "sysconfdir": "/etc", "systemd_system_unitdir": "/usr/lib/systemd/system",
		"NEXIGON_OTA_REPOSITORY": "fleet", "NEXIGON_OTA_PACKAGE": "gateway",
		"OTABAKE_SIGNING_CHAIN": "/keys/a.pem /keys/b.pem", "MACHINE": "qemux86-64", "BP": "otabake-agent-0.1+git",
		"OTABAKE_SERIES_GO": "1.22", "OTABAKE_NATIVE_GO": "1.26",
	}
	n := 0
	for _, p := range layerFiles(t) {
		f := parseFile(t, p)
		hasShell := false
		for _, fn := range f.Functions {
			hasShell = hasShell || fn.Kind == Shell
		}
		if !hasShell {
			continue
		}
		files := []*File{f}
		if strings.HasSuffix(p, "_git.bb") {
			files = append([]*File{parseFile(t, filepath.Join(filepath.Dir(p), "otabake.inc"))}, f)
		}
		forced := map[string]string{"S": sample["S"]}
		src := script(t, files, expandAll(t, sample, files, forced), "", "")
		for _, shell := range []string{"bash", "sh"} {
			n++
			path := filepath.Join(dir, strings.ReplaceAll(filepath.Base(p), ".", "_")+"."+shell)
			testkit.WriteFile(t, path, "#!/bin/"+shell+"\n"+src)
			if out, err := exec.Command(sc, "-s", shell, path).CombinedOutput(); err != nil {
				t.Errorf("shellcheck -s %s %s: %v\n%s", shell, p, err, out)
			}
		}
	}
	if n < 4 {
		t.Fatalf("shellchecked only %d scripts; want the class and the agent recipe in bash and sh", n)
	}
}
