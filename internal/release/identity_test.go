package release

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/project"
	"github.com/otabake/otabake/internal/testkit"
)

// gitRepo creates a repository with one commit made at fixed author and committer dates, so
// that its commit hash is the same on every run.
func identityRepo(t *testing.T) (dir, shortSHA string) {
	t.Helper()
	testkit.NeedTool(t, "git", "git", "release identity tests need it")
	dir = t.TempDir()
	runTestGit(t, dir, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runTestGit(t, dir, "add", "README")
	runTestGit(t, dir, "commit", "-q", "-m", "first")
	return dir, runTestGit(t, dir, "rev-parse", "--short", "HEAD")
}

func runTestGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=T", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	return strings.TrimSpace(testkit.RunCmd(t, cmd))
}

func identityConfig(t *testing.T, dir string, env ...string) *project.Config {
	t.Helper()
	if env == nil {
		env = []string{}
	}
	cfg, err := project.Load(dir, project.LoadOptions{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var identityNow = func() time.Time { return time.Date(2030, 5, 6, 7, 8, 9, 500, time.FixedZone("X", 3600)) }

func TestIdentityFromGit(t *testing.T) {
	dir, sha := identityRepo(t)
	if len(sha) < 7 {
		t.Fatalf("short sha %q", sha)
	}
	tests := []struct {
		name      string
		env       []string
		branch    string // checkout -b before
		detach    bool
		wantBuild string
		wantFloat string
		wantErr   string
	}{
		{name: "SOURCE_DATE_EPOCH", env: []string{"SOURCE_DATE_EPOCH=1767323045"}, wantBuild: "build-20260102030405-" + sha, wantFloat: "latest-build-main"},
		{name: "now in UTC", wantBuild: "build-20300506060809-" + sha, wantFloat: "latest-build-main"},
		{name: "branch with slashes", branch: "feature/ota/x", env: []string{"SOURCE_DATE_EPOCH=0"}, wantBuild: "build-19700101000000-" + sha, wantFloat: "latest-build-feature-ota-x"},
		{name: "detached with GITHUB_REF_NAME", detach: true, env: []string{"GITHUB_REF_NAME=release/1.2", "CI_COMMIT_REF_NAME=other"}, wantBuild: "build-20300506060809-" + sha, wantFloat: "latest-build-release-1.2"},
		{name: "detached with CI_COMMIT_REF_NAME", detach: true, env: []string{"CI_COMMIT_REF_NAME=gl"}, wantFloat: "latest-build-gl", wantBuild: "build-20300506060809-" + sha},
		{name: "detached without CI names", detach: true, wantErr: "set FLOATING_TAG"},
		{name: "detached with FLOATING_TAG", detach: true, env: []string{"FLOATING_TAG=nightly"}, wantBuild: "build-20300506060809-" + sha, wantFloat: "nightly"},
		{name: "pinned BUILD_TAG", env: []string{"BUILD_TAG=build-pinned"}, wantBuild: "build-pinned", wantFloat: "latest-build-main"},
		{name: "branch makes an invalid tag", branch: "fix+x", wantErr: `invalid tag "latest-build-fix+x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runTestGit(t, dir, "checkout", "-q", "main")
			if tt.branch != "" {
				runTestGit(t, dir, "checkout", "-q", "-B", tt.branch)
			}
			if tt.detach {
				runTestGit(t, dir, "checkout", "-q", "--detach")
			}
			cfg := identityConfig(t, dir, tt.env...)
			id, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{Now: identityNow, Env: tt.env})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.BuildTag != tt.wantBuild || id.Version != tt.wantBuild || id.FloatingTag != tt.wantFloat {
				t.Errorf("got build %q version %q floating %q; want %q, %q", id.BuildTag, id.Version, id.FloatingTag, tt.wantBuild, tt.wantFloat)
			}
			if id.Commit != sha || id.VersionID != "" || id.Dirty {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

func TestIdentityPatterns(t *testing.T) {
	dir, sha := identityRepo(t)
	if err := os.WriteFile(filepath.Join(dir, "otabake.toml"), []byte("[release]\nbuild_tag = \"v-{branch}-{time}-{commit}\"\nfloating_tag = \"edge\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runTestGit(t, dir, "add", "otabake.toml")
	runTestGit(t, dir, "commit", "-q", "-m", "config")
	sha = runTestGit(t, dir, "rev-parse", "--short", "HEAD")
	cfg := identityConfig(t, dir, "SOURCE_DATE_EPOCH=1767323045")
	id, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if id.BuildTag != "v-main-20260102030405-"+sha || id.FloatingTag != "edge" {
		t.Errorf("identity %+v", id)
	}
}

func TestIdentityDirty(t *testing.T) {
	dir, _ := identityRepo(t)
	// otabake's own outputs never make the tree dirty.
	for _, p := range []string{".release-env", ".env", "build/x/system.img", ".otabake/hub/meta.db"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("X=1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := identityConfig(t, dir)
	if _, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{}); err != nil {
		t.Fatalf("outputs made the tree dirty: %v", err)
	}
	// Untracked files do not make it dirty either (git describe --dirty); see TestDirtyTree.
	for i := 0; i < 7; i++ {
		if err := os.WriteFile(filepath.Join(dir, "new"+string(rune('a'+i))), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{}); err != nil {
		t.Fatalf("untracked files made the tree dirty: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{})
	if err == nil {
		t.Fatal("dirty tree accepted")
	}
	for _, want := range []string{"M README", "--allow-dirty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "newa") {
		t.Errorf("untracked file listed as a change: %v", err)
	}
	id, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{AllowDirty: true})
	if err != nil || !id.Dirty {
		t.Fatalf("allow-dirty: %+v, %v", id, err)
	}
}

func TestIdentityNoGit(t *testing.T) {
	testkit.NeedTool(t, "git", "git")
	dir := t.TempDir()
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	_, err := NewIdentity(context.Background(), dir, identityConfig(t, dir), IdentityOptions{})
	if err == nil || !strings.Contains(err.Error(), "not a git repository: set BUILD_TAG or run inside a git checkout") {
		t.Fatalf("err = %v", err)
	}
	// Both tags pinned: git is not needed.
	cfg := identityConfig(t, dir, "BUILD_TAG=build-1", "FLOATING_TAG=latest-build-x", "SOURCE_DATE_EPOCH=10")
	id, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if id.BuildTag != "build-1" || id.Version != "build-1" || id.FloatingTag != "latest-build-x" || id.Commit != "" || !id.Time.Equal(time.Unix(10, 0)) {
		t.Errorf("identity %+v", id)
	}
	// A pattern without {commit} needs no git either.
	if err := os.WriteFile(filepath.Join(dir, "otabake.toml"), []byte("[release]\nbuild_tag = \"nightly-{time}\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = identityConfig(t, dir, "FLOATING_TAG=nightly", "SOURCE_DATE_EPOCH=0")
	if id, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{}); err != nil || id.BuildTag != "nightly-19700101000000" {
		t.Errorf("commit-free pattern without git: %+v, %v", id, err)
	}
	if err := os.Remove(filepath.Join(dir, "otabake.toml")); err != nil {
		t.Fatal(err)
	}
	// BUILD_TAG alone needs a branch for the floating tag.
	cfg = identityConfig(t, dir, "BUILD_TAG=build-1")
	if _, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{Env: []string{}}); err == nil || !strings.Contains(err.Error(), "set FLOATING_TAG") {
		t.Errorf("err = %v", err)
	}
	if id, err := NewIdentity(context.Background(), dir, cfg, IdentityOptions{Env: []string{"GITHUB_REF_NAME=main"}}); err != nil || id.FloatingTag != "latest-build-main" {
		t.Errorf("GITHUB_REF_NAME without git: %+v, %v", id, err)
	}
}

func TestParseStatus(t *testing.T) {
	out := []byte(" M src/a.go\x00?? build/\x00R  new.go\x00old.go\x00?? sub/.release-env\x00 D sub/build/x\x00A  sub/keep\x00")
	changes, untracked := parseStatus(out, "sub/")
	got := strings.Join(changes, "|") + " / " + strings.Join(untracked, "|")
	want := "M src/a.go|R new.go|A sub/keep / build/"
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestIdentityNoCommit(t *testing.T) {
	testkit.NeedTool(t, "git", "git")
	dir := t.TempDir()
	runTestGit(t, dir, "init", "-q", "-b", "main")
	_, err := NewIdentity(context.Background(), dir, identityConfig(t, dir), IdentityOptions{})
	if err == nil || !strings.Contains(err.Error(), "git repository has no commit") {
		t.Fatalf("err = %v", err)
	}
}
