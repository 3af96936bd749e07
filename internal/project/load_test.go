package project

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeProject creates a project directory holding files (name → content).
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func setting(t *testing.T, cfg *Config, key string) Setting {
	t.Helper()
	for _, s := range cfg.Settings() {
		if s.Key == key {
			return s
		}
	}
	t.Fatalf("no setting %s", key)
	return Setting{}
}

// layer is one configuration source of the precedence chain, highest first.
type layer int

const (
	lFlag layer = iota
	lEnv
	lDotEnv
	lCLI
	lTOML
	lDefault
)

var layerNames = [...]string{"flag", "environment", ".env", ".nexigon-cli.toml", "otabake.toml", "default"}

// chainSpec says where a setting can come from.
type chainSpec struct {
	key     string
	env     string // environment / .env name
	cliKey  string // .nexigon-cli.toml key
	tomlKey string // key in otabake.toml (table and key)
	def     string // default value ("" = none)
	defSrc  string // source shown for the default; "unset" when empty and def is ""
	values  map[layer]string
}

func TestPrecedenceChain(t *testing.T) {
	specs := []chainSpec{
		{key: KeyHubURL, env: "NEXIGON_HUB_URL", cliKey: "hub-url", tomlKey: "hub.url", defSrc: "default",
			values: map[layer]string{lFlag: "https://flag.example", lEnv: "https://env.example", lDotEnv: "https://dotenv.example", lCLI: "https://cli.example", lTOML: "https://toml.example"}},
		// The token has its own order (nexigon-cli's); see TestTokenPrecedence.
		{key: KeyHubRepository, env: "NEXIGON_REPOSITORY", tomlKey: "hub.repository",
			values: map[layer]string{lFlag: "repo-flag", lEnv: "repo-env", lDotEnv: "repo-dotenv", lTOML: "repo-toml"}},
		{key: KeyHubPackage, env: "NEXIGON_PACKAGE", tomlKey: "hub.package",
			values: map[layer]string{lFlag: "pkg-flag", lEnv: "pkg-env", lDotEnv: "pkg-dotenv", lTOML: "pkg-toml"}},
		{key: KeyHubDefaultTag, tomlKey: "hub.default_tag", def: "stable",
			values: map[layer]string{lFlag: "beta", lTOML: "canary"}},
		{key: KeyBuildTag, env: "BUILD_TAG",
			values: map[layer]string{lFlag: "build-flag", lEnv: "build-env", lDotEnv: "build-dotenv"}},
		{key: KeyFloatingTag, env: "FLOATING_TAG",
			values: map[layer]string{lFlag: "float-flag", lEnv: "float-env", lDotEnv: "float-dotenv"}},
		{key: KeyBuildTagPattern, tomlKey: "release.build_tag", def: DefaultBuildTagPattern,
			values: map[layer]string{lFlag: "b-{commit}", lTOML: "rel-{time}"}},
		{key: KeySourceDateEpoch, env: "SOURCE_DATE_EPOCH", tomlKey: "release.source_date_epoch",
			values: map[layer]string{lFlag: "100", lEnv: "200", lDotEnv: "300", lTOML: "400"}},
	}
	for _, sp := range specs {
		// Drop the highest layers one by one: the highest remaining one must win.
		for top := lFlag; top <= lDefault; top++ {
			want, ok := sp.values[top]
			if top == lDefault {
				want, ok = sp.def, true
			}
			if !ok {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", sp.key, layerNames[top]), func(t *testing.T) {
				files := map[string]string{}
				var env []string
				overrides := map[string]string{}
				tomlTables := map[string][]string{}
				for l, v := range sp.values {
					if l < top {
						continue
					}
					switch l {
					case lFlag:
						overrides[sp.key] = v
					case lEnv:
						env = append(env, sp.env+"="+v)
					case lDotEnv:
						files[".env"] += fmt.Sprintf("# comment\n%s=%q\n", sp.env, v)
					case lCLI:
						files[NexigonCLIFile] += fmt.Sprintf("%s = %q\n", sp.cliKey, v)
					case lTOML:
						table, key, _ := strings.Cut(sp.tomlKey, ".")
						val := fmt.Sprintf("%q", v)
						if sp.key == KeySourceDateEpoch {
							val = v
						}
						tomlTables[table] = append(tomlTables[table], key+" = "+val)
					}
				}
				for table, lines := range tomlTables {
					files[FileName] += "[" + table + "]\n" + strings.Join(lines, "\n") + "\n"
				}
				dir := writeProject(t, files)
				cfg, err := Load(dir, LoadOptions{Env: env, Overrides: overrides})
				if err != nil {
					t.Fatal(err)
				}
				s := setting(t, cfg, sp.key)
				got := fmt.Sprint(s.Value)
				if s.Value == nil {
					got = ""
				}
				if sec, ok := s.Value.(Secret); ok {
					got = sec.Reveal()
					if cfg.Hub.Token.Reveal() != want {
						t.Errorf("Hub.Token = %q, want %q", cfg.Hub.Token.Reveal(), want)
					}
				}
				if got != want {
					t.Errorf("value = %q, want %q (source %s)", got, want, s.Source)
				}
				wantSrc := map[layer]string{lFlag: "flag --", lEnv: "environment " + sp.env, lDotEnv: ".env:2",
					lCLI: NexigonCLIFile + ":1", lTOML: FileName + ":", lDefault: "default"}[top]
				if top == lDefault && sp.def == "" && sp.defSrc == "" {
					wantSrc = "unset"
				}
				if !strings.HasPrefix(s.Source, wantSrc) {
					t.Errorf("source = %q, want prefix %q", s.Source, wantSrc)
				}
			})
		}
	}
}

func TestYoctoNamesAreFallbacks(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		dotenv   string
		wantRepo string
		wantSrc  string
	}{
		{"yocto name only", []string{"NEXIGON_OTA_REPOSITORY=ota"}, "", "ota", "environment NEXIGON_OTA_REPOSITORY"},
		{"standard name wins", []string{"NEXIGON_OTA_REPOSITORY=ota", "NEXIGON_REPOSITORY=std"}, "", "std", "environment NEXIGON_REPOSITORY"},
		{"yocto env beats standard .env", []string{"NEXIGON_OTA_REPOSITORY=ota"}, "NEXIGON_REPOSITORY=std\n", "ota", "environment NEXIGON_OTA_REPOSITORY"},
		{"yocto name in .env", nil, "export NEXIGON_OTA_REPOSITORY=ota\n", "ota", ".env:1"},
		{"empty env counts as unset", []string{"NEXIGON_REPOSITORY="}, "NEXIGON_REPOSITORY=std\n", "std", ".env:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{".env": tt.dotenv})
			cfg, err := Load(dir, LoadOptions{Env: tt.env})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Hub.Repository != tt.wantRepo {
				t.Errorf("repository = %q, want %q", cfg.Hub.Repository, tt.wantRepo)
			}
			if s := setting(t, cfg, KeyHubRepository); s.Source != tt.wantSrc {
				t.Errorf("source = %q, want %q", s.Source, tt.wantSrc)
			}
		})
	}
}

func TestTokenEnv(t *testing.T) {
	dir := writeProject(t, map[string]string{
		FileName: "[hub]\ntoken_env = \"CI_HUB_TOKEN\"\n",
		".env":   "CI_HUB_TOKEN=" + tokDotEnv + "\nNEXIGON_TOKEN=" + tokOther + "\n",
	})
	cfg, err := Load(dir, LoadOptions{Env: []string{"NEXIGON_TOKEN=" + tokOther}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hub.Token.Reveal() != tokDotEnv || cfg.Hub.TokenEnv != "CI_HUB_TOKEN" {
		t.Errorf("token %q from %q", cfg.Hub.Token.Reveal(), cfg.Hub.TokenEnv)
	}
	cfg, err = Load(dir, LoadOptions{Env: []string{"CI_HUB_TOKEN=" + tokEnv}})
	if err != nil {
		t.Fatal(err)
	}
	if s := setting(t, cfg, KeyHubToken); cfg.Hub.Token.Reveal() != tokEnv || s.Source != "environment CI_HUB_TOKEN" {
		t.Errorf("token %q source %q", cfg.Hub.Token.Reveal(), s.Source)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Load(t.TempDir(), LoadOptions{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Hub
	if h.URL != "" || h.Token != "" || h.TokenEnv != DefaultTokenEnv || h.DefaultTag != "stable" || h.Repository != "" {
		t.Errorf("hub defaults: %+v", h)
	}
	r := cfg.Release
	if r.BuildTagPattern != DefaultBuildTagPattern || r.FloatingTagPattern != DefaultFloatingTagPattern || r.SourceDateEpoch != nil || r.BuildTag != "" {
		t.Errorf("release defaults: %+v", r)
	}
	if len(cfg.Systems) != 0 || len(cfg.Files) != 0 {
		t.Errorf("systems %v files %v", cfg.Systems, cfg.Files)
	}
}

// TestSecretsNeverLeak checks that the token appears in no rendering of the configuration and
// in no error, even when it is the reason for the error.
func TestSecretsNeverLeak(t *testing.T) {
	token := testToken("u_sk", "SUPERSECRET", 66)
	dir := writeProject(t, map[string]string{
		".env":         "NEXIGON_TOKEN=" + token + "\nNEXIGON_REPOSITORY=repo\n",
		NexigonCLIFile: "token = \"" + token + "\"\n",
	})
	cfg, err := Load(dir, LoadOptions{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(struct {
		C *Config
		S []Setting
	}{cfg, cfg.Settings()})
	if err != nil {
		t.Fatal(err)
	}
	renderings := []string{string(js), fmt.Sprintf("%v %+v %#v %s %q %x", cfg, *cfg, *cfg, cfg.Hub.Token, cfg.Hub.Token, cfg.Hub.Token),
		fmt.Sprint(cfg.Settings())}
	for i, r := range renderings {
		if strings.Contains(r, token) || strings.Contains(r, "SUPERSECRET") {
			t.Errorf("rendering %d leaks the token: %s", i, r)
		}
	}
	if !strings.Contains(string(js), `"\u003credacted\u003e"`) {
		t.Errorf("JSON does not show the token as redacted: %s", js)
	}
	if cfg.Hub.Token.Reveal() != token {
		t.Errorf("Reveal = %q", cfg.Hub.Token.Reveal())
	}

	// Errors about lines that hold secrets must not quote them.
	for _, bad := range []string{
		"NEXIGON_TOKEN=" + token + " extra\n",
		"NEXIGON_TOKEN=\"" + token + "\n",
		"NEXIGON_TOKEN=" + token + "$x\n",
		"NEXIGON_TOKEN " + token + "\n",
	} {
		dir := writeProject(t, map[string]string{".env": bad})
		_, err := Load(dir, LoadOptions{Env: []string{}})
		if err == nil {
			t.Errorf("%q: no error", bad)
			continue
		}
		if strings.Contains(err.Error(), "SUPERSECRET") {
			t.Errorf("error leaks the token: %v", err)
		}
	}
	_, err = Load(writeProject(t, nil), LoadOptions{Env: []string{"NEXIGON_TOKEN=" + token + " x"}})
	if err == nil || strings.Contains(err.Error(), "SUPERSECRET") {
		t.Errorf("token with space: err = %v", err)
	}
}

func TestInvalidValues(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		env   []string
		over  map[string]string
		want  string
	}{
		{"bad repository in .env", map[string]string{".env": "A=1\nNEXIGON_REPOSITORY=my repo\n"}, nil, nil, ".env:2: NEXIGON_REPOSITORY: unquoted space"},
		{"bad repository name", map[string]string{".env": "NEXIGON_REPOSITORY='-repo'\n"}, nil, nil, `.env:1: hub.repository: invalid repository "-repo"`},
		{"bad package in env", nil, []string{"NEXIGON_PACKAGE=a/b"}, nil, `environment NEXIGON_PACKAGE: hub.package: invalid package "a/b"`},
		{"bad url", map[string]string{FileName: "[hub]\nurl = \"ftp://x\"\n"}, nil, nil, "otabake.toml:2: hub.url: want an http(s) URL"},
		{"url with credentials", nil, []string{"NEXIGON_HUB_URL=https://user:pw@hub.example"}, nil, "must not contain credentials"},
		{"bad epoch", nil, []string{"SOURCE_DATE_EPOCH=yesterday"}, nil, `environment SOURCE_DATE_EPOCH: release.source_date_epoch: "yesterday" is not a number`},
		{"bad build tag flag", nil, nil, map[string]string{KeyBuildTag: "build 1"}, `flag --build-tag: release.build_tag: invalid tag "build 1"`},
		{"unknown placeholder", map[string]string{FileName: "\n[release]\nbuild_tag = \"b-{sha}\"\n"}, nil, nil, "otabake.toml:3: release.build_tag_pattern: pattern \"b-{sha}\": unknown placeholder {sha}"},
		{"pattern makes bad tag", map[string]string{FileName: "[release]\nfloating_tag = \"latest/{branch}\"\n"}, nil, nil, "otabake.toml:2: release.floating_tag_pattern: pattern \"latest/{branch}\" does not make a valid tag"},
		{"bad token_env", map[string]string{FileName: "[hub]\ntoken_env = \"MY-TOKEN\"\n"}, nil, nil, "otabake.toml:2: hub.token_env"},
		{"unknown override", nil, nil, map[string]string{"hub.colour": "x"}, `unknown configuration override "hub.colour"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, tt.files)
			env := tt.env
			if env == nil {
				env = []string{}
			}
			_, err := Load(dir, LoadOptions{Env: env, Overrides: tt.over})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLookupEnv(t *testing.T) {
	dir := writeProject(t, map[string]string{".env": "KEY_PASSWORD='p w'\nBOTH=dotenv\n"})
	cfg, err := Load(dir, LoadOptions{Env: []string{"BOTH=env"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"KEY_PASSWORD": "p w", "BOTH": "env"} {
		if v, ok := cfg.LookupEnv(name); !ok || v != want {
			t.Errorf("LookupEnv(%s) = %q, %v; want %q", name, v, ok, want)
		}
	}
	if _, ok := cfg.LookupEnv("NOPE"); ok {
		t.Error("LookupEnv(NOPE) found")
	}
}

func TestEmptyOverrideSelectsLocalHub(t *testing.T) {
	dir := writeProject(t, map[string]string{".env": "NEXIGON_HUB_URL=https://hub.example\n"})
	cfg, err := Load(dir, LoadOptions{Env: []string{}, Overrides: map[string]string{KeyHubURL: ""}})
	if err != nil {
		t.Fatal(err)
	}
	if s := setting(t, cfg, KeyHubURL); cfg.Hub.URL != "" || s.Source != "flag --hub-url" {
		t.Errorf("url %q from %q", cfg.Hub.URL, s.Source)
	}
}
