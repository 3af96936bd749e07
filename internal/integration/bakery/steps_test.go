package bakery

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/agent"
)

// checkStateFiles validates every /etc/rugix/state/*.toml and checks that the agent's state
// directory is persisted across updates.
func checkStateFiles(t *testing.T, b *bakery) {
	t.Helper()
	files, err := filepath.Glob(b.path("etc/rugix/state/*.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no /etc/rugix/state/*.toml installed (%v)", err)
	}
	var persisted []string
	for _, f := range files {
		validateTOMLFile(t, schemaState, f)
		var st struct {
			Persist []struct {
				Directory string `toml:"directory"`
				File      string `toml:"file"`
			} `toml:"persist"`
		}
		if _, err := toml.DecodeFile(f, &st); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range st.Persist {
			persisted = append(persisted, p.Directory)
		}
		if m := b.mode(strings.TrimPrefix(f, b.root+"/")); m.Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", f, m)
		}
	}
	if want := filepath.Dir(agent.StateFile); !slices.Contains(persisted, want) {
		t.Errorf("persisted directories %q do not include the agent's state directory %s", persisted, want)
	}
}

// otaJSON is /etc/otabake/ota.json as `otabake bake --ota-path` writes it.
func otaJSON(t *testing.T, path string, useHash bool) []byte {
	t.Helper()
	var d struct {
		Path  string `json:"path"`
		Rugix struct {
			UseBundleHash bool `json:"useBundleHash"`
		} `json:"rugix"`
	}
	d.Path, d.Rugix.UseBundleHash = path, useHash
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(data, '\n')
}

const testEnv = `# written by the test
NEXIGON_HUB_URL="https://eu.nexigon.cloud"
NEXIGON_TOKEN="tok-0123456789-secret"
NEXIGON_REPOSITORY=fleet
NEXIGON_PACKAGE="gateway-os"
`

func TestOTARecipe(t *testing.T) {
	tests := []struct {
		name      string
		env       string
		params    map[string]any
		wantPath  string
		wantHash  bool
		wantTimer string
		engine    string
	}{
		{"defaults", testEnv, nil, "fleet/gateway-os/stable", false, "4h", "rugix"},
		{
			"parameters", testEnv,
			map[string]any{"interval": "30min", "tag": "beta", "use_bundle_hash": true, "engine": "rauc"},
			"fleet/gateway-os/beta", true, "30min", "rauc",
		},
		{"string bool", testEnv, map[string]any{"use_bundle_hash": "true"}, "fleet/gateway-os/stable", true, "4h", "rugix"},
		{
			"Yocto variable names", "NEXIGON_OTA_REPOSITORY=r1\nNEXIGON_OTA_PACKAGE=p.1\n",
			nil, "r1/p.1/stable", false, "4h", "rugix",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBakery(t, "amd64")
			b.writeProject(".env", []byte(tt.env), 0o600)
			out, err := b.run("otabake-ota", tt.params)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if strings.Contains(out, "secret") {
				t.Errorf("output shows .env content:\n%s", out)
			}
			if got, want := b.read("etc/otabake/ota.json"), otaJSON(t, tt.wantPath, tt.wantHash); !bytes.Equal(got, want) {
				t.Errorf("ota.json =\n%s\nwant\n%s", got, want)
			}
			s, err := agent.LoadSettings(b.path("etc/otabake/agent.toml"))
			if err != nil {
				t.Fatal(err)
			}
			if s.Engine != tt.engine {
				t.Errorf("agent.toml engine = %q, want %q", s.Engine, tt.engine)
			}
			timer := parseUnit(t, b.read("usr/lib/systemd/system/otabake-agent.timer"))
			if got := timer.get("Timer", "OnUnitActiveSec"); got != tt.wantTimer {
				t.Errorf("OnUnitActiveSec = %q, want %q", got, tt.wantTimer)
			}
			if got := b.rebuildLines(); !slices.Equal(got, []string{".env"}) {
				t.Errorf("LAYER_REBUILD_IF_CHANGED = %q, want [.env]", got)
			}
			checkUnits(t, b, []string{"otabake-agent.timer"})
			checkCommand(t, b)
			for _, p := range []string{"etc/otabake/ota.json", "etc/otabake/agent.toml", "usr/lib/systemd/system/otabake-agent.service"} {
				if m := b.mode(p); m.Perm() != 0o644 {
					t.Errorf("%s mode %v, want 0644", p, m)
				}
			}
		})
	}
}

func TestOTARecipeFailures(t *testing.T) {
	tests := []struct {
		name   string
		env    *string
		params map[string]any
		want   string
	}{
		{"no .env", nil, nil, ".env not found in the Bakery project: create it with NEXIGON_REPOSITORY=<repository> and NEXIGON_PACKAGE=<package>"},
		{"no repository", ptr("NEXIGON_TOKEN=secret\nNEXIGON_PACKAGE=p\n"), nil, "NEXIGON_REPOSITORY is not set in .env"},
		{"empty repository", ptr("NEXIGON_REPOSITORY=\nNEXIGON_PACKAGE=p\n"), nil, "NEXIGON_REPOSITORY is not set in .env"},
		{"no package", ptr("NEXIGON_TOKEN=secret\nNEXIGON_REPOSITORY=r\n"), nil, "NEXIGON_PACKAGE is not set in .env"},
		{"bad repository", ptr("NEXIGON_REPOSITORY='my repo'\nNEXIGON_PACKAGE=p\n"), nil, "NEXIGON_REPOSITORY 'my repo' in .env is not a repository name"},
		{"quote in package", ptr("NEXIGON_REPOSITORY=r\nNEXIGON_PACKAGE='p\"x'\n"), nil, "NEXIGON_PACKAGE 'p\"x' in .env is not a package name"},
		{"broken .env", ptr("NEXIGON_REPOSITORY=r\nif then\n"), nil, "cannot source .env"},
		{"use_bundle_hash", ptr(testEnv), map[string]any{"use_bundle_hash": "yes"}, "parameter use_bundle_hash 'yes' is not true or false"},
		{"engine", ptr(testEnv), map[string]any{"engine": "swupdate"}, "parameter engine 'swupdate' is not rugix or rauc"},
		{"interval", ptr(testEnv), map[string]any{"interval": "4h|x"}, "parameter interval '4h|x' is not a systemd time span"},
		{"empty interval", ptr(testEnv), map[string]any{"interval": ""}, "parameter interval '' is not a systemd time span"},
		{"tag", ptr(testEnv), map[string]any{"tag": "a/b"}, "parameter tag 'a/b' is not a tag name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBakery(t, "amd64")
			if tt.env != nil {
				b.writeProject(".env", []byte(*tt.env), 0o600)
			}
			out, err := b.run("otabake-ota", tt.params)
			if err == nil {
				t.Fatalf("recipe succeeded, want an error containing %q\n%s", tt.want, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output:\n%s\nwant it to contain %q", out, tt.want)
			}
			if strings.Contains(out, "secret") {
				t.Errorf("output shows .env content:\n%s", out)
			}
			if _, err := os.Stat(b.path("etc/otabake/ota.json")); err == nil {
				t.Error("ota.json written although the recipe failed")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestOTARecipeKeepsAgentSettings: an agent.toml another recipe installed keeps its settings;
// only the engine is set.
func TestOTARecipeKeepsAgentSettings(t *testing.T) {
	b := newBakery(t, "amd64")
	b.writeProject(".env", []byte(testEnv), 0o600)
	existing := "engine = \"rauc\"\ntransport = \"nexigon-socket\"\n\n[backoff]\ninitial = \"5m\"\n"
	if err := os.MkdirAll(b.path("etc/otabake"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.path("etc/otabake/agent.toml"), []byte(existing), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := b.run("otabake-ota", nil); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s, err := agent.LoadSettings(b.path("etc/otabake/agent.toml"))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.read("etc/otabake/agent.toml"))
	}
	if s.Engine != "rugix" || s.Transport != "nexigon-socket" || s.Backoff.Initial != "5m" {
		t.Errorf("settings = engine %q transport %q backoff.initial %q, want rugix, nexigon-socket, 5m", s.Engine, s.Transport, s.Backoff.Initial)
	}
}

func TestWatchdogRecipe(t *testing.T) {
	tests := []struct {
		name    string
		params  map[string]any
		want    string // OnBootSec=
		wantErr string
	}{
		{"default", nil, "1800s", ""},
		{"integer", map[string]any{"timeout": int64(600)}, "600s", ""},
		{"string", map[string]any{"timeout": "900"}, "900s", ""},
		{"zero", map[string]any{"timeout": int64(0)}, "", "parameter timeout '0' is not a positive number of seconds"},
		{"negative", map[string]any{"timeout": int64(-5)}, "", "parameter timeout '-5' is not a positive number of seconds"},
		{"unit suffix", map[string]any{"timeout": "30min"}, "", "parameter timeout '30min' is not a positive number of seconds"},
		{"float", map[string]any{"timeout": 1.5}, "", "parameter timeout '1.5' is not a positive number of seconds"},
		{"huge", map[string]any{"timeout": int64(1e12)}, "", "parameter timeout '1000000000000' is too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBakery(t, "arm64")
			out, err := b.run("otabake-watchdog", tt.params)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(out, tt.wantErr) {
					t.Fatalf("err %v, output:\n%s\nwant an error containing %q", err, out, tt.wantErr)
				}
				if _, err := os.Lstat(b.path("usr/lib/systemd/system/otabake-agent-watchdog.timer")); err == nil {
					t.Error("timer installed although the recipe failed")
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			timer := parseUnit(t, b.read("usr/lib/systemd/system/otabake-agent-watchdog.timer"))
			if got := timer.get("Timer", "OnBootSec"); got != tt.want {
				t.Errorf("OnBootSec = %q, want %q", got, tt.want)
			}
			checkUnits(t, b, []string{"otabake-agent-watchdog.timer"})
		})
	}
}

// unit is a parsed systemd unit file: section → key → values.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("unit line %d: %q is not key=value in a section", n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// checkUnits verifies what `systemctl enable` would have done: exactly the wanted units are
// linked from <target>.wants for each target their [Install] WantedBy= names, links point at
// installed units, and no unit has a placeholder left.
func checkUnits(t *testing.T, b *bakery, wantEnabled []string) {
	t.Helper()
	units, err := filepath.Glob(b.path("usr/lib/systemd/system/*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range units {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("@@")) {
			t.Errorf("%s: placeholder not substituted:\n%s", filepath.Base(p), data)
		}
		u := parseUnit(t, data)
		if exec := u.get("Service", "ExecStart"); exec != "" {
			bin := strings.Fields(strings.TrimLeft(exec, "-@:+!"))[0]
			if _, err := os.Stat(b.path(bin)); err != nil && b.hasAgent() {
				t.Errorf("%s: ExecStart %s is not installed", filepath.Base(p), bin)
			}
		}
	}
	links, err := filepath.Glob(b.path("etc/systemd/system/*.wants/*"))
	if err != nil {
		t.Fatal(err)
	}
	var enabled []string
	for _, l := range links {
		name := filepath.Base(l)
		target := strings.TrimSuffix(filepath.Base(filepath.Dir(l)), ".wants")
		enabled = append(enabled, name)
		dest, err := os.Readlink(l)
		if err != nil {
			t.Errorf("%s: not a symlink: %v", l, err)
			continue
		}
		if want := "/usr/lib/systemd/system/" + name; dest != want {
			t.Errorf("%s -> %s, want -> %s", name, dest, want)
			continue
		}
		u := parseUnit(t, b.read(strings.TrimPrefix(dest, "/")))
		if !slices.Contains(strings.Fields(strings.Join(u["Install"]["WantedBy"], " ")), target) {
			t.Errorf("%s is linked from %s.wants but its WantedBy= is %q", name, target, u["Install"]["WantedBy"])
		}
	}
	slices.Sort(enabled)
	slices.Sort(wantEnabled)
	if !slices.Equal(enabled, wantEnabled) {
		t.Errorf("enabled units = %q, want %q", enabled, wantEnabled)
	}
}

func (b *bakery) hasAgent() bool {
	_, err := os.Stat(b.path("usr/bin/otabake-agent"))
	return err == nil
}

// checkCommand verifies the nexigon.ota.check device command definition.
func checkCommand(t *testing.T, b *bakery) {
	t.Helper()
	p := "etc/nexigon/agent/commands/nexigon.ota.check.toml"
	if m := b.mode(p); m.Perm()&0o022 != 0 {
		t.Errorf("%s mode %v: Nexigon Agent refuses group- or world-writable command files", p, m)
	}
	var cmd struct {
		Command struct {
			Name string `toml:"name"`
		} `toml:"command"`
		Exec struct {
			Handler []string `toml:"handler"`
			Timeout int      `toml:"timeout"`
		} `toml:"exec"`
	}
	md, err := toml.Decode(string(b.read(p)), &cmd)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if cmd.Command.Name != "nexigon.ota.check" {
		t.Errorf("%s: command.name = %q", p, cmd.Command.Name)
	}
	if len(cmd.Exec.Handler) == 0 || cmd.Exec.Handler[0] != "/usr/bin/otabake-agent" || cmd.Exec.Timeout <= 0 {
		t.Errorf("%s: exec = %+v, want the otabake-agent handler with a timeout", p, cmd.Exec)
	}
	if !md.IsDefined("output", "schema") {
		t.Errorf("%s: no output schema", p)
	}
}
