package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateConfigGolden = flag.Bool("update-config-golden", false, "rewrite testdata/config/*.golden")

// runConfigCmd runs otabake in-process and returns its exit code, stdout and stderr.
func runConfigCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(append([]string{"otabake"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// configShowToken is a well-formed user token (u_sk_ and 66 base-58 digits).
var configShowToken = "u_sk_GQLDENSECRET42" + strings.Repeat("z", 66-len("GQLDENSECRET42"))

// configProject writes a project with every kind of source and pins the environment.
func configProject(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"NEXIGON_HUB_URL", "NEXIGON_TOKEN", "NEXIGON_REPOSITORY", "NEXIGON_PACKAGE",
		"NEXIGON_OTA_REPOSITORY", "NEXIGON_OTA_PACKAGE", "BUILD_TAG", "FLOATING_TAG", "SOURCE_DATE_EPOCH", "CI_TOKEN"} {
		t.Setenv(name, "") // empty counts as unset
	}
	t.Setenv("NEXIGON_PACKAGE", "os-image")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("OTABAKE_HUB_TOKEN", "")
	t.Setenv("CI_TOKEN", configShowToken)
	dir := t.TempDir()
	files := map[string]string{
		".env": "# written by CI\nNEXIGON_HUB_URL=\"https://eu.nexigon.cloud\"\nNEXIGON_REPOSITORY=fleet\nNEXIGON_PACKAGE=ignored-env-wins\n",
		"otabake.toml": `[hub]
token_env = "CI_TOKEN"
default_tag = "beta"

[release]
floating_tag = "edge-{branch}"

[systems.pc]
target = "efi-grub"
architecture = "amd64"
rootfs = "rootfs/"

[systems.pc.signing]
key = "keys/signing.pem"
cert = "keys/signing.crt"

[systems.pi.bundle]
compression = "none"
`,
		"rugix-bakery.toml": "[systems.pi]\nlayer = \"customized-pi\"\narchitecture = \"arm64\"\ntarget = \"rpi-tryboot\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestConfigShowGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		golden string
	}{
		{"human", []string{"config", "show", "--build-tag", "build-1"}, "show.golden"},
		{"json", []string{"--json", "config", "show", "--build-tag", "build-1"}, "show.json.golden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := configProject(t)
			code, out, errs := runConfigCmd(append([]string{"-C", dir}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if strings.Contains(out+errs, configShowToken) || strings.Contains(out+errs, "GQLDENSECRET") {
				t.Fatalf("the token leaked:\n%s%s", out, errs)
			}
			if !strings.Contains(out, "<redacted>") {
				t.Errorf("token not shown as <redacted>:\n%s", out)
			}
			got := strings.ReplaceAll(out, dir, "$PROJECT")
			path := filepath.Join("testdata", "config", tc.golden)
			if *updateConfigGolden {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update-config-golden to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s:\n%s", path, got)
			}
			if tc.name == "json" {
				var doc struct {
					Settings []struct{ Key, Source string } `json:"settings"`
					Systems  []struct{ Name string }        `json:"systems"`
				}
				if err := json.Unmarshal([]byte(out), &doc); err != nil {
					t.Fatal(err)
				}
				if len(doc.Settings) == 0 || len(doc.Systems) != 2 || doc.Systems[0].Name != "pi" {
					t.Errorf("json document: %+v", doc)
				}
			}
		})
	}
}

func TestConfigShowErrors(t *testing.T) {
	dir := configProject(t)
	if err := os.WriteFile(filepath.Join(dir, "otabake.toml"), []byte("[hub]\nrepo = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runConfigCmd("-C", dir, "config", "show")
	if code == 0 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	if want := "otabake: otabake.toml:2: unknown key hub.repo: did you mean repository? (allowed in [hub]: default_tag, package, repository, token_env, url)\n"; errs != want {
		t.Errorf("stderr %q\nwant   %q", errs, want)
	}
}
