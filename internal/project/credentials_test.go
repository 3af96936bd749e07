package project

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testToken makes a well-formed secret ID: tag, "_", then mark padded with base-58 digits to
// size (nexigon-ids: FlatRawId of the tag's raw size).
func testToken(tag, mark string, size int) string {
	return tag + "_" + mark + strings.Repeat("z", size-len(mark))
}

var (
	tokUser       = testToken("u_sk", "User", 66)
	tokOrg        = testToken("org_sk", "Xrg", 66)
	tokDeployment = testToken("deployment", "Dep", 66)
	tokEnv        = testToken("u_sk", "Env", 66)
	tokDotEnv     = testToken("u_sk", "DotEnv", 66)
	tokOther      = testToken("org_sk", "Xther", 66)
)

func TestClassifyToken(t *testing.T) {
	tests := []struct {
		token string
		want  TokenKind
	}{
		{tokUser, TokenUser},
		{tokOrg, TokenOrganization},
		{tokDeployment, TokenDeployment},
		{testToken("u_session_sk", "S", 66), TokenUserSession},
		{testToken("d_sk", "F", 44), TokenDevice},
		{testToken("u_sk", "Short", 65), TokenUnknown},   // raw size is 66
		{testToken("u_sk", "Long", 67), TokenUnknown},    // raw size is 66
		{testToken("d_sk", "F", 66), TokenUnknown},       // a fingerprint has 44
		{testToken("u_sk", "0", 66), TokenUnknown},       // 0 is not base 58
		{testToken("org_sk", "O", 66), TokenUnknown},     // nor O
		{testToken("u_sk", "Il", 66), TokenUnknown},      // nor I and l
		{testToken("u_pk", "Id", 22), TokenUnknown},      // a public token ID, not a secret
		{testToken("org_sk_x", "Tag", 66), TokenUnknown}, // the tag is all before the last _
		{"u_sk_" + strings.Repeat("z", 30) + "_" + strings.Repeat("z", 35), TokenUnknown},
		{"secret-token-value", TokenUnknown},
		{"", TokenUnknown},
	}
	for _, tt := range tests {
		if got := ClassifyToken(tt.token); got != tt.want {
			t.Errorf("ClassifyToken(%.20s…) = %s, want %s", tt.token, got, tt.want)
		}
	}
	for _, k := range []TokenKind{TokenUser, TokenOrganization} {
		if !k.BuildSideUsable() {
			t.Errorf("%s not usable", k)
		}
	}
	for _, k := range []TokenKind{TokenDeployment, TokenUserSession, TokenDevice, TokenUnknown} {
		if k.BuildSideUsable() {
			t.Errorf("%s usable", k)
		}
	}
}

// TestTokenPrecedence: flag > OTABAKE_HUB_TOKEN > nexigon-cli configuration (--nexigon-cli-config,
// else ./.nexigon-cli.toml, else ~/.nexigon/cli.toml: the first file found is used whole) >
// NEXIGON_TOKEN (environment, then .env) when it is a user or organization token.
func TestTokenPrecedence(t *testing.T) {
	cliFile := func(tok string) string { return "hub-url = \"https://eu.nexigon.cloud\"\ntoken = \"" + tok + "\"\n" }
	tests := []struct {
		name      string
		over      map[string]string
		env       []string
		dotenv    string
		local     string // ./.nexigon-cli.toml
		home      string // ~/.nexigon/cli.toml
		explicit  string // the --nexigon-cli-config file
		want      string
		wantSrc   string
		wantWarn  string
		wantError string
	}{
		{name: "flag wins", over: map[string]string{KeyHubToken: tokOrg}, env: []string{OTABakeTokenEnv + "=" + tokEnv}, home: cliFile(tokUser),
			want: tokOrg, wantSrc: "flag --hub-token"},
		{name: "OTABAKE_HUB_TOKEN above the files", env: []string{OTABakeTokenEnv + "=" + tokEnv}, local: cliFile(tokUser),
			want: tokEnv, wantSrc: "environment OTABAKE_HUB_TOKEN"},
		{name: "--nexigon-cli-config above ./.nexigon-cli.toml", explicit: cliFile(tokOther), local: cliFile(tokUser),
			want: tokOther, wantSrc: "explicit.toml:2"},
		{name: "./.nexigon-cli.toml above home", local: cliFile(tokUser), home: cliFile(tokOther),
			want: tokUser, wantSrc: ".nexigon-cli.toml:2"},
		{name: "home configuration (nexigon-cli configure)", home: cliFile(tokUser),
			want: tokUser, wantSrc: "~/.nexigon/cli.toml:2"},
		{name: "the first file found is used whole", local: "hub-url = \"https://eu.nexigon.cloud\"\n", home: cliFile(tokOther), env: []string{"NEXIGON_TOKEN=" + tokEnv},
			want: tokEnv, wantSrc: "environment NEXIGON_TOKEN"},
		{name: "files above NEXIGON_TOKEN", home: cliFile(tokUser), env: []string{"NEXIGON_TOKEN=" + tokEnv},
			want: tokUser, wantSrc: "~/.nexigon/cli.toml:2"},
		{name: "template: deployment token in .env, user token in .nexigon-cli.toml", dotenv: "NEXIGON_HUB_URL=https://eu.nexigon.cloud\nNEXIGON_TOKEN=" + tokDeployment + "\n", local: cliFile(tokUser),
			want: tokUser, wantSrc: ".nexigon-cli.toml:2"},
		{name: "NEXIGON_TOKEN user token in the environment", env: []string{"NEXIGON_TOKEN=" + tokEnv}, dotenv: "NEXIGON_TOKEN=" + tokDotEnv + "\n",
			want: tokEnv, wantSrc: "environment NEXIGON_TOKEN"},
		{name: "deployment token in the environment skipped for .env", env: []string{"NEXIGON_TOKEN=" + tokDeployment}, dotenv: "NEXIGON_TOKEN=" + tokDotEnv + "\n",
			want: tokDotEnv, wantSrc: ".env:1", wantWarn: "NEXIGON_TOKEN in the environment is a device deployment token"},
		{name: "deployment token only", dotenv: "\nNEXIGON_TOKEN=" + tokDeployment + "\n",
			want: "", wantSrc: "unset", wantWarn: "NEXIGON_TOKEN in .env:2 is a device deployment token (deployment_…), which belongs to devices"},
		{name: "malformed NEXIGON_TOKEN skipped", env: []string{"NEXIGON_TOKEN=secret-token-value"},
			want: "", wantSrc: "unset", wantWarn: "is not a Nexigon user or organization API token"},
		{name: "deployment token by flag", over: map[string]string{KeyHubToken: tokDeployment},
			wantError: "flag --hub-token: hub.token: the token is a device deployment token (deployment_…); the build side authenticates like nexigon-cli"},
		{name: "deployment token in OTABAKE_HUB_TOKEN", env: []string{OTABakeTokenEnv + "=" + tokDeployment},
			wantError: "environment OTABAKE_HUB_TOKEN: hub.token: the token is a device deployment token"},
		{name: "deployment token in .nexigon-cli.toml", local: cliFile(tokDeployment),
			wantError: ".nexigon-cli.toml:2: hub.token: the token is a device deployment token (deployment_…); the build side authenticates like nexigon-cli, with a user token (u_sk_…) or an organization API token (org_sk_…): a deployment token belongs to devices (nexigon-cli refuses this file too: run 'nexigon-cli configure')"},
		{name: "missing --nexigon-cli-config file", over: map[string]string{KeyNexigonCLIConfig: "nope.toml"},
			wantError: "flag --nexigon-cli-config:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{".env": tt.dotenv})
			if tt.local != "" {
				if err := os.WriteFile(filepath.Join(dir, NexigonCLIFile), []byte(tt.local), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			home := t.TempDir()
			if tt.home != "" {
				if err := os.MkdirAll(filepath.Join(home, ".nexigon"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(home, NexigonCLIHomeFile), []byte(tt.home), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			over := map[string]string{}
			for k, v := range tt.over {
				over[k] = v
			}
			if tt.explicit != "" {
				p := filepath.Join(t.TempDir(), "explicit.toml")
				if err := os.WriteFile(p, []byte(tt.explicit), 0o600); err != nil {
					t.Fatal(err)
				}
				over[KeyNexigonCLIConfig] = p
			}
			cfg, err := Load(dir, LoadOptions{Env: append([]string{"HOME=" + home}, tt.env...), Overrides: over})
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("err = %v, want %q", err, tt.wantError)
				}
				if strings.Contains(err.Error(), tokDeployment) {
					t.Fatalf("error leaks the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Hub.Token.Reveal(); got != tt.want {
				t.Errorf("token = %.12s…, want %.12s…", got, tt.want)
			}
			s := setting(t, cfg, KeyHubToken)
			if !strings.HasSuffix(s.Source, tt.wantSrc) {
				t.Errorf("source = %q, want suffix %q", s.Source, tt.wantSrc)
			}
			warnings := strings.Join(cfg.Warnings, "\n")
			if tt.wantWarn != "" && !strings.Contains(warnings, tt.wantWarn) {
				t.Errorf("warnings %q lack %q", warnings, tt.wantWarn)
			}
			if strings.Contains(warnings, tokDeployment) || strings.Contains(strings.Join(cfg.Hub.SkippedTokens, " "), tokDeployment) {
				t.Errorf("warnings leak the deployment token")
			}
			if cfg.Hub.Token != "" && !cfg.Hub.TokenKind.BuildSideUsable() {
				t.Errorf("token kind %s", cfg.Hub.TokenKind)
			}
		})
	}
}

func TestHubChoice(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".nexigon"), 0o700); err != nil {
		t.Fatal(err)
	}
	homeCLI := "hub-url = \"https://us.nexigon.cloud\"\ntoken = \"" + tokUser + "\"\n"
	tests := []struct {
		name     string
		dotenv   string
		homeCLI  bool
		over     map[string]string
		want     string
		wantWarn string
	}{
		{name: "nothing configured", want: "embedded local Hub in .otabake/hub: no Hub URL is configured"},
		{name: "--hub-url ''", dotenv: "NEXIGON_HUB_URL=https://eu.nexigon.cloud\n", over: map[string]string{KeyHubURL: ""}, want: "embedded local Hub in .otabake/hub (--hub-url \"\" selects it)"},
		{name: "home configuration alone", homeCLI: true, want: "Nexigon Hub https://us.nexigon.cloud (URL from ~/.nexigon/cli.toml:1; user token (u_sk_…) from ~/.nexigon/cli.toml:2)"},
		{name: "URL of .env, token of the home configuration", homeCLI: true, dotenv: "NEXIGON_HUB_URL=https://eu.nexigon.cloud\n",
			want:     "Nexigon Hub https://eu.nexigon.cloud (URL from .env:1; user token (u_sk_…) from ~/.nexigon/cli.toml:2)",
			wantWarn: "the token of ~/.nexigon/cli.toml was configured for https://us.nexigon.cloud but is sent to https://eu.nexigon.cloud (hub.url from .env:1)"},
		{name: "URL without a usable token", dotenv: "NEXIGON_HUB_URL=https://eu.nexigon.cloud\nNEXIGON_TOKEN=" + tokDeployment + "\n",
			want: "Nexigon Hub https://eu.nexigon.cloud (URL from .env:1; no usable token (run 'nexigon-cli configure' or put hub-url and token in .nexigon-cli.toml))"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(home, NexigonCLIHomeFile)
			os.Remove(p)
			if tt.homeCLI {
				if err := os.WriteFile(p, []byte(homeCLI), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := Load(writeProject(t, map[string]string{".env": tt.dotenv}), LoadOptions{Env: []string{"HOME=" + home}, Overrides: tt.over})
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.HubChoice(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("HubChoice = %q\nwant %q", got, tt.want)
			}
			if w := strings.Join(cfg.Warnings, "\n"); tt.wantWarn != "" && !strings.Contains(w, tt.wantWarn) {
				t.Errorf("warnings %q lack %q", w, tt.wantWarn)
			}
		})
	}
}

// TestNexigonCLIConfigReadableByOthers: nexigon-cli keeps its configuration at mode 0600; a
// token file others can read is worth a warning.
func TestNexigonCLIConfigReadableByOthers(t *testing.T) {
	dir := writeProject(t, nil)
	p := filepath.Join(dir, NexigonCLIFile)
	if err := os.WriteFile(p, []byte("token = \""+tokUser+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir, LoadOptions{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(cfg.Warnings, "\n"); !strings.Contains(w, "readable by other users (mode 0644): chmod 600") {
		t.Errorf("warnings = %q", w)
	}
}
