package bakery

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/agent"
)

var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "armhf": elf.EM_ARM}

func TestAgentRecipeFromProject(t *testing.T) {
	tests := []struct{ arch, build string }{
		{"amd64", "amd64"},
		{"arm64", "arm64"},
		{"armhf", "armhf"},
		{"armv7", "armhf"}, // ARMv7 runs the ARMv6 hard-float build
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			b := newBakery(t, tt.arch)
			for a := range elfMachines {
				b.writeProject("build/otabake/otabake-agent-"+a, fakeELF(t, a, "agent for "+a), 0o755)
			}
			for range 2 { // a rebuilt layer runs the steps again
				if out, err := b.run("otabake-agent", nil); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
			}
			want := fakeELF(t, tt.build, "agent for "+tt.build)
			if got := b.read("usr/bin/otabake-agent"); !bytes.Equal(got, want) {
				t.Errorf("installed binary is not build/otabake/otabake-agent-%s", tt.build)
			}
			if m := b.mode("usr/bin/otabake-agent"); !m.IsRegular() || m.Perm() != 0o755 {
				t.Errorf("usr/bin/otabake-agent mode %v, want -rwxr-xr-x", m)
			}
			if m := elfMachine(t, b.path("usr/bin/otabake-agent")); m != elfMachines[tt.build] {
				t.Errorf("installed binary is for %v, want %v", m, elfMachines[tt.build])
			}
			if got, want := b.rebuildLines(), []string{"build/otabake/otabake-agent-" + tt.build}; !slices.Equal(got, want) {
				t.Errorf("LAYER_REBUILD_IF_CHANGED = %q, want %q (once, however often the step runs)", got, want)
			}
			checkStateFiles(t, b)
		})
	}
}

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

func TestAgentRecipeFromURL(t *testing.T) {
	bin := fakeELF(t, "arm64", "downloaded agent")
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])
	src := filepath.Join(t.TempDir(), "otabake-agent-arm64")
	if err := os.WriteFile(src, bin, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		url  func(t *testing.T) string
		sha  string
	}{
		{"file URL", func(*testing.T) string { return "file://" + src }, digest},
		{"upper-case sha256", func(*testing.T) string { return "file://" + src }, strings.ToUpper(digest)},
		{"http URL with a presigned query", func(t *testing.T) string { return serve(t, bin) + "/otabake-agent?token=s3cr3t" }, digest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBakery(t, "arm64") // no project binary: it must come from the URL
			out, err := b.run("otabake-agent", map[string]any{"url": tt.url(t), "sha256": tt.sha})
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !bytes.Equal(b.read("usr/bin/otabake-agent"), bin) {
				t.Error("installed binary differs from the downloaded one")
			}
			if m := b.mode("usr/bin/otabake-agent"); m.Perm() != 0o755 {
				t.Errorf("mode %v, want 0755", m)
			}
			if lines := b.rebuildLines(); len(lines) != 0 {
				t.Errorf("LAYER_REBUILD_IF_CHANGED = %q, want nothing from the project", lines)
			}
			if strings.Contains(out, "s3cr3t") {
				t.Errorf("output shows the URL's query:\n%s", out)
			}
			checkStateFiles(t, b)
		})
	}
}

// serve starts an HTTP server on 127.0.0.1 that hands out bin to requests carrying the token,
// and needs curl or wget, which the recipe downloads with.
func serve(t *testing.T, bin []byte) string {
	t.Helper()
	_, curlErr := exec.LookPath("curl")
	_, wgetErr := exec.LookPath("wget")
	if curlErr != nil && wgetErr != nil {
		t.Skip("SKIPPED: neither curl nor wget is installed (Debian packages curl, wget); the HTTP download was NOT tested")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/otabake-agent" || r.URL.Query().Get("token") != "s3cr3t" {
			http.NotFound(w, r)
			return
		}
		w.Write(bin)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAgentRecipeFailures(t *testing.T) {
	good := func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "agent")
		if err := os.WriteFile(p, fakeELF(t, "arm64", "x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		arch    string
		project map[string][]byte // files in the Bakery project
		params  func(t *testing.T) map[string]any
		want    string
	}{
		{
			name: "no binary in the project",
			arch: "arm64",
			want: "build/otabake/otabake-agent-arm64 not found in the Bakery project: run 'otabake build-release --backend bakery'",
		},
		{
			name:    "binary for another architecture",
			arch:    "arm64",
			project: map[string][]byte{"build/otabake/otabake-agent-arm64": fakeELF(t, "amd64", "x")},
			want:    "is not built for arm64 (ELF class 02, machine 3e00; want class 02, machine b700)",
		},
		{
			name:    "32-bit binary for a 64-bit system",
			arch:    "arm64",
			project: map[string][]byte{"build/otabake/otabake-agent-arm64": fakeELF(t, "armhf", "x")},
			want:    "is not built for arm64",
		},
		{
			name:    "not an ELF file",
			arch:    "amd64",
			project: map[string][]byte{"build/otabake/otabake-agent-amd64": []byte("#!/bin/sh\necho hi\n")},
			want:    "otabake-agent from build/otabake/otabake-agent-amd64 is not an ELF executable",
		},
		{
			name: "unsupported architecture",
			arch: "arm",
			want: "unsupported architecture 'arm' (RUGIX_ARCH)",
		},
		{
			name:   "url without sha256",
			arch:   "arm64",
			params: func(t *testing.T) map[string]any { return map[string]any{"url": "file://" + good(t)} },
			want:   "parameter sha256 is required with url file://",
		},
		{
			name: "sha256 not hex",
			arch: "arm64",
			params: func(t *testing.T) map[string]any {
				return map[string]any{"url": "file://" + good(t), "sha256": "xyz"}
			},
			want: "parameter sha256 'xyz' is not 64 hex digits",
		},
		{
			name: "sha256 mismatch",
			arch: "arm64",
			params: func(t *testing.T) map[string]any {
				return map[string]any{"url": "file://" + good(t), "sha256": strings.Repeat("ab", 32)}
			},
			want: "sha256 mismatch for file://",
		},
		{
			name: "downloaded binary for another architecture",
			arch: "arm64",
			params: func(t *testing.T) map[string]any {
				bin := fakeELF(t, "amd64", "x")
				p := filepath.Join(t.TempDir(), "agent")
				if err := os.WriteFile(p, bin, 0o644); err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(bin)
				return map[string]any{"url": "file://" + p, "sha256": hex.EncodeToString(sum[:])}
			},
			want: "otabake-agent from the url parameter is not built for arm64",
		},
		{
			name: "unsupported URL scheme",
			arch: "arm64",
			params: func(*testing.T) map[string]any {
				return map[string]any{"url": "ftp://example.com/agent?token=s3cr3t", "sha256": strings.Repeat("ab", 32)}
			},
			want: "parameter url 'ftp://example.com/agent' is not an http://, https:// or file:// URL",
		},
		{
			name: "download fails",
			arch: "arm64",
			params: func(t *testing.T) map[string]any {
				return map[string]any{"url": serve(t, nil) + "/missing?token=s3cr3t", "sha256": strings.Repeat("ab", 32)}
			},
			want: "download of http://127.0.0.1:",
		},
		{
			name:   "unknown parameter",
			arch:   "arm64",
			params: func(*testing.T) map[string]any { return map[string]any{"version": "1.0"} },
			want:   "unknown parameter `version` of recipe `otabake-agent`",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBakery(t, tt.arch)
			for name, data := range tt.project {
				b.writeProject(name, data, 0o755)
			}
			var params map[string]any
			if tt.params != nil {
				params = tt.params(t)
			}
			out, err := b.run("otabake-agent", params)
			if err == nil {
				t.Fatalf("recipe succeeded, want an error containing %q\n%s", tt.want, out)
			}
			if !strings.Contains(out+err.Error(), tt.want) {
				t.Errorf("error output:\n%s%v\nwant it to contain %q", out, err, tt.want)
			}
			if strings.Contains(out, "s3cr3t") {
				t.Errorf("output shows the URL's query:\n%s", out)
			}
			for _, p := range []string{"usr/bin/otabake-agent", "usr/bin/.otabake-agent.part"} {
				if _, err := os.Lstat(b.path(p)); err == nil {
					t.Errorf("%s left behind by a failed recipe", p)
				}
			}
		})
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
