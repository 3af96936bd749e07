package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/testkit"
)

// run runs otabake in-process and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(append([]string{"otabake"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// mustRun runs otabake and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := run(t, args...)
	if code != 0 {
		t.Fatalf("otabake %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// mustFail runs otabake, expects a non-zero exit and a one-line error containing want.
func mustFail(t *testing.T, want string, args ...string) {
	t.Helper()
	code, out, errs := run(t, args...)
	if code == 0 {
		t.Fatalf("otabake %s: exit 0, want failure\nstdout: %s", strings.Join(args, " "), out)
	}
	msg := strings.TrimSpace(errs)
	if strings.Count(msg, "\n") > 0 {
		t.Errorf("otabake %s: error is not one line:\n%s", strings.Join(args, " "), msg)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("otabake %s: error %q does not contain %q", strings.Join(args, " "), msg, want)
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// newProject makes a committed git project with .env naming repository demo, package os.
func newProject(t *testing.T) string {
	t.Helper()
	testkit.NeedTool(t, "git", "git", "the release tests on a git project did not run")
	for _, k := range []string{"NEXIGON_HUB_URL", "NEXIGON_TOKEN", "NEXIGON_REPOSITORY", "NEXIGON_PACKAGE",
		"NEXIGON_OTA_REPOSITORY", "NEXIGON_OTA_PACKAGE", "BUILD_TAG", "FLOATING_TAG", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600") // 2026-01-01T00:00:00Z
	t.Setenv("HOME", t.TempDir())               // no ~/.nexigon/cli.toml of the developer
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "feature/ota")
	testkit.WriteFile(t, filepath.Join(dir, ".env"), "NEXIGON_REPOSITORY=demo\nNEXIGON_PACKAGE=os\n")
	testkit.WriteFile(t, filepath.Join(dir, ".gitignore"), ".otabake/\nbuild/\n.release-env\n")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "init")
	return dir
}

// fakeBuild writes build/<system>/ as a native or Bakery build leaves it, with a real bundle.
func fakeBuild(t *testing.T, dir, system, version string) {
	t.Helper()
	b := filepath.Join(dir, "build", system)
	img := make([]byte, 256<<10)
	rand.Read(img)
	testkit.WriteFile(t, filepath.Join(b, "system.img.xz"), string(img))
	testkit.WriteFile(t, filepath.Join(b, "sbom.spdx.json"), `{"spdxVersion":"SPDX-2.3"}`)
	testkit.WriteFile(t, filepath.Join(b, "system-build-info.json"), fmt.Sprintf("{\n  \"name\": %q,\n  \"release\": {\n    \"id\": \"%s@%s\",\n    \"version\": %q\n  }\n}", system, system, version, version))
	payload := filepath.Join(t.TempDir(), "system.img")
	testkit.WriteFile(t, payload, strings.Repeat("otabake payload ", 10000))
	res, err := bundle.Create(context.Background(), filepath.Join(b, "system.rugixb"), bundle.Spec{
		Payloads: []bundle.Payload{{Slot: "system", Path: payload, BlockEncoding: &bundle.BlockEncoding{Chunker: "casync-16", Deduplicate: true}}},
	}, bundle.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, filepath.Join(b, "system.rugixb-hash"), res.Hash)
}

func readEnv(t *testing.T, dir string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".release-env"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

func TestReleasePipelineLocalHub(t *testing.T) {
	dir := newProject(t)
	mustFail(t, "hub init", "-C", dir, "prepare-release")
	if _, err := os.Stat(filepath.Join(dir, ".release-env")); err == nil {
		t.Fatal(".release-env written by a failed prepare-release")
	}
	mustRun(t, "-C", dir, "hub", "init", "--repository", "demo", "--package", "os")

	var prep struct {
		VersionID string `json:"versionId"`
		Created   bool   `json:"created"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "-C", dir, "--json", "prepare-release")), &prep); err != nil {
		t.Fatal(err)
	}
	env := readEnv(t, dir)
	wantVersion := "build-20260101000000-"
	if !strings.HasPrefix(env["VERSION"], wantVersion) || env["BUILD_TAG"] != env["VERSION"] {
		t.Fatalf(".release-env = %v", env)
	}
	if env["FLOATING_TAG"] != "latest-build-feature-ota" || env["VERSION_ID"] != prep.VersionID || !prep.Created {
		t.Fatalf(".release-env = %v, prepare = %+v", env, prep)
	}
	t.Logf("prepared %s as %s", env["VERSION"], prep.VersionID)

	// Same BUILD_TAG again: the version is reused, not created twice.
	var again struct {
		VersionID string `json:"versionId"`
		Created   bool   `json:"created"`
	}
	json.Unmarshal([]byte(mustRun(t, "-C", dir, "--json", "prepare-release")), &again)
	if again.Created || again.VersionID != prep.VersionID {
		t.Fatalf("second prepare-release = %+v, want reuse of %s", again, prep.VersionID)
	}

	// Promoting a version without assets is refused.
	mustFail(t, "no assets", "-C", dir, "promote-release", "--tag", "stable")

	fakeBuild(t, dir, "efi", env["VERSION"])
	var rep struct {
		Artifacts []struct {
			Filename string          `json:"filename"`
			Uploaded bool            `json:"uploaded"`
			Attached bool            `json:"attached"`
			Metadata json.RawMessage `json:"metadata"`
		} `json:"artifacts"`
	}
	json.Unmarshal([]byte(mustRun(t, "-C", dir, "--json", "upload-release")), &rep)
	got := map[string]string{}
	for _, a := range rep.Artifacts {
		if !a.Uploaded || !a.Attached {
			t.Errorf("%s: uploaded=%v attached=%v on first upload", a.Filename, a.Uploaded, a.Attached)
		}
		var c bytes.Buffer
		if len(a.Metadata) > 0 {
			if err := json.Compact(&c, a.Metadata); err != nil {
				t.Fatal(err)
			}
		}
		got[a.Filename] = c.String()
	}
	hash, _ := os.ReadFile(filepath.Join(dir, "build/efi/system.rugixb-hash"))
	want := map[string]string{
		"efi.spdx.json":       "",
		"efi.build-info.json": "",
		"efi.img.xz":          `{"relations":{"sbom":["efi.spdx.json"]}}`,
		"efi.rugixb":          `{"rugix":{"bundleHash":"` + string(hash) + `"},"relations":{"sbom":["efi.spdx.json"]},"version":"` + env["VERSION"] + `"}`,
		"efi.rugixb-hash":     "",
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("asset %s: metadata %q (present %v), want %q", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("uploaded %v, want %v", got, want)
	}

	// A re-run uploads nothing and attaches nothing.
	json.Unmarshal([]byte(mustRun(t, "-C", dir, "--json", "upload-release")), &rep)
	for _, a := range rep.Artifacts {
		if a.Uploaded || a.Attached {
			t.Errorf("%s: uploaded=%v attached=%v on re-run", a.Filename, a.Uploaded, a.Attached)
		}
	}

	// Same filename, other content: an error naming both digests.
	testkit.WriteFile(t, filepath.Join(dir, "build/efi/sbom.spdx.json"), `{"spdxVersion":"SPDX-2.3","changed":true}`)
	mustFail(t, "efi.spdx.json", "-C", dir, "upload-release")

	var prom struct {
		Moved     bool   `json:"moved"`
		VersionID string `json:"versionId"`
	}
	json.Unmarshal([]byte(mustRun(t, "-C", dir, "--json", "promote-release", "--tag", "stable")), &prom)
	if !prom.Moved || prom.VersionID != prep.VersionID {
		t.Fatalf("promote = %+v", prom)
	}
	json.Unmarshal([]byte(mustRun(t, "-C", dir, "--json", "promote-release", "--tag", "stable")), &prom)
	if prom.Moved {
		t.Fatalf("second promote moved the tag again")
	}
	// The build tag is locked: promoting to it is refused.
	mustFail(t, "build tag", "-C", dir, "promote-release", "--tag", env["BUILD_TAG"])

	ls := mustRun(t, "-C", dir, "hub", "ls")
	for _, s := range []string{"demo", "os", env["BUILD_TAG"], "stable", "efi.rugixb"} {
		if !strings.Contains(ls, s) {
			t.Errorf("hub ls lacks %q:\n%s", s, ls)
		}
	}
	t.Logf("checked: prepare twice reuses %s; upload attaches %d assets with template metadata; re-run sends nothing; changed content is refused; promote moves stable once", prep.VersionID, len(want))
}

func TestReleaseBadInput(t *testing.T) {
	dir := newProject(t)
	mustRun(t, "-C", dir, "hub", "init", "--repository", "demo", "--package", "os")

	t.Run("no .release-env", func(t *testing.T) {
		mustFail(t, "prepare-release", "-C", dir, "upload-release")
	})
	t.Run("missing .env keys", func(t *testing.T) {
		d := newProject(t)
		testkit.WriteFile(t, filepath.Join(d, ".env"), "NEXIGON_REPOSITORY=demo\n")
		git(t, d, "commit", "-qam", "env")
		mustFail(t, "NEXIGON_PACKAGE", "-C", d, "prepare-release")
		assertNoFile(t, filepath.Join(d, ".release-env"))
	})
	t.Run("no git repository", func(t *testing.T) {
		d := t.TempDir()
		testkit.WriteFile(t, filepath.Join(d, ".env"), "NEXIGON_REPOSITORY=demo\nNEXIGON_PACKAGE=os\n")
		mustFail(t, "git", "-C", d, "prepare-release")
		assertNoFile(t, filepath.Join(d, ".release-env"))
	})
	t.Run("dirty tree", func(t *testing.T) {
		gi := filepath.Join(dir, ".gitignore")
		orig, err := os.ReadFile(gi)
		if err != nil {
			t.Fatal(err)
		}
		testkit.WriteFile(t, gi, "uncommitted")
		defer os.WriteFile(gi, orig, 0o644)
		mustFail(t, "--allow-dirty", "-C", dir, "prepare-release")
		assertNoFile(t, filepath.Join(dir, ".release-env"))
	})
	t.Run("malformed otabake.toml", func(t *testing.T) {
		d := newProject(t)
		testkit.WriteFile(t, filepath.Join(d, "otabake.toml"), "[hub]\nrepositry = \"x\"\n")
		mustFail(t, "otabake.toml", "-C", d, "prepare-release")
	})
	t.Run("unreachable Hub", func(t *testing.T) {
		d := newProject(t)
		t.Setenv("NEXIGON_HUB_URL", "http://127.0.0.1:1")
		t.Setenv("NEXIGON_TOKEN", "org_sk_secretTokenXYZ"+strings.Repeat("z", 66-len("secretTokenXYZ")))
		code, out, errs := run(t, "-C", d, "prepare-release")
		if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		if strings.Contains(out+errs, "secretTokenXYZ") {
			t.Fatalf("token leaked: %s %s", out, errs)
		}
		assertNoFile(t, filepath.Join(d, ".release-env"))
	})
	t.Run("version mismatch", func(t *testing.T) {
		mustRun(t, "-C", dir, "prepare-release")
		fakeBuild(t, dir, "efi", "build-19990101000000-other")
		mustFail(t, "version mismatch", "-C", dir, "upload-release")
		ls := mustRun(t, "-C", dir, "--json", "hub", "ls")
		if strings.Contains(ls, "efi.rugixb") {
			t.Fatalf("something was uploaded after a version mismatch:\n%s", ls)
		}
	})
}

func assertNoFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s exists after a failed command", path)
	}
}

// TestPromoteHalfUploadedVersion: with systems efi and pi configured and only efi uploaded,
// promote-release refuses and names what pi lacks; --partial efi goes ahead and says who is
// left out.
func TestPromoteHalfUploadedVersion(t *testing.T) {
	dir := newProject(t)
	testkit.WriteFile(t, filepath.Join(dir, "rugix-bakery.toml"),
		"[systems.efi]\nlayer = \"customized-efi\"\narchitecture = \"amd64\"\ntarget = \"generic-grub-efi\"\n"+
			"[systems.pi]\nlayer = \"customized-pi\"\narchitecture = \"arm64\"\ntarget = \"rpi-tryboot\"\n")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "systems")
	mustRun(t, "-C", dir, "hub", "init", "--repository", "demo", "--package", "os")
	mustRun(t, "-C", dir, "prepare-release")
	env := readEnv(t, dir)
	fakeBuild(t, dir, "efi", env["VERSION"])
	fakeBuild(t, dir, "pi", env["VERSION"])
	mustRun(t, "-C", dir, "upload-release", "--system", "efi")

	mustFail(t, "pi: no bundle (pi.rugixb or pi.raucb)", "-C", dir, "promote-release", "--tag", "stable")
	mustFail(t, "--partial efi", "-C", dir, "promote-release", "--tag", "stable")
	mustFail(t, "pi: no bundle", "-C", dir, "promote-release", "--tag", "stable", "--partial", "efi,pi")
	mustFail(t, "--partial needs the systems", "-C", dir, "promote-release", "--tag", "stable", "--partial", ",")

	var prom struct {
		Moved    bool     `json:"moved"`
		Systems  []string `json:"systems"`
		Excluded []string `json:"excluded"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "-C", dir, "--json", "promote-release", "--tag", "stable", "--partial", "efi")), &prom); err != nil {
		t.Fatal(err)
	}
	if !prom.Moved || strings.Join(prom.Systems, ",") != "efi" || strings.Join(prom.Excluded, ",") != "pi" {
		t.Fatalf("partial promote = %+v", prom)
	}
	mustRun(t, "-C", dir, "upload-release", "--system", "pi")
	mustRun(t, "-C", dir, "promote-release", "--tag", "beta")
	if help := mustRun(t, "promote-release", "--help"); !strings.Contains(help, "--partial") || !strings.Contains(help, "incomplete") {
		t.Errorf("promote-release --help does not teach --partial:\n%s", help)
	}
}

func TestPrepareReleasePrintVars(t *testing.T) {
	dir := newProject(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600") // 2026-01-01T00:00:00Z
	out := mustRun(t, "--project-dir", dir, "prepare-release", "--print-vars")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "BUILD_TAG=build-20260101000000-") || !strings.HasPrefix(lines[1], "FLOATING_TAG=latest-build-") {
		t.Errorf("--print-vars printed %q; want BUILD_TAG=build-20260101000000-<sha> and FLOATING_TAG=latest-build-<branch>", out)
	}
	t.Setenv("BUILD_TAG", "build-pinned")
	t.Setenv("FLOATING_TAG", "latest-build-x")
	if out := mustRun(t, "--project-dir", dir, "prepare-release", "--print-vars"); out != "BUILD_TAG=build-pinned\nFLOATING_TAG=latest-build-x\n" {
		t.Errorf("with BUILD_TAG and FLOATING_TAG set: %q", out)
	}
	// Printing touches neither the Hub nor the release files.
	assertNoFile(t, filepath.Join(dir, ".release-env"))
	assertNoFile(t, filepath.Join(dir, ".otabake"))
}
