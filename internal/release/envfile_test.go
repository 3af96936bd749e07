package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvFileRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		id   Identity
		want string
	}{
		{"plain", Identity{BuildTag: "build-20260102030405-abc1234", FloatingTag: "latest-build-main", Version: "build-20260102030405-abc1234", VersionID: "pkg_v_3kXy9"},
			"BUILD_TAG=build-20260102030405-abc1234\nFLOATING_TAG=latest-build-main\nVERSION=build-20260102030405-abc1234\nVERSION_ID=pkg_v_3kXy9\n"},
		{"needs quoting", Identity{BuildTag: "b1", FloatingTag: "f1", Version: "1.0 beta's", VersionID: "id$x"},
			"BUILD_TAG=b1\nFLOATING_TAG=f1\nVERSION='1.0 beta'\\''s'\nVERSION_ID='id$x'\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, EnvFileName)
			if err := WriteEnvFile(path, &tt.id); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != tt.want {
				t.Errorf("file:\n%s\nwant:\n%s", data, tt.want)
			}
			got, used, err := ReadEnvFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			if used != path || *got != tt.id {
				t.Errorf("read %+v from %s, want %+v", got, used, tt.id)
			}
			// The shell reads the same values.
			if _, err := exec.LookPath("bash"); err == nil {
				out, err := exec.Command("bash", "-c", `. "$1" && printf '%s|%s|%s|%s' "$BUILD_TAG" "$FLOATING_TAG" "$VERSION" "$VERSION_ID"`, "x", path).Output()
				if err != nil {
					t.Fatal(err)
				}
				if want := tt.id.BuildTag + "|" + tt.id.FloatingTag + "|" + tt.id.Version + "|" + tt.id.VersionID; string(out) != want {
					t.Errorf("bash read %q, want %q", out, want)
				}
			}
		})
	}
}

func TestReadEnvFileFallbackAndErrors(t *testing.T) {
	dir := t.TempDir()
	_, _, err := ReadEnvFile(dir)
	if err == nil || err.Error() != "no .release-env in "+dir+": run 'otabake prepare-release' first" {
		t.Fatalf("missing: %v", err)
	}
	legacy := filepath.Join(dir, LegacyEnvFileName)
	if err := os.WriteFile(legacy, []byte("BUILD_TAG=build-1\nFLOATING_TAG=latest-build-main\nVERSION=build-1\nVERSION_ID=pkg_v_1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, used, err := ReadEnvFile(dir)
	if err != nil || used != legacy || id.Version != "build-1" || id.VersionID != "pkg_v_1" {
		t.Fatalf("legacy: %+v %s %v", id, used, err)
	}
	// Both files must pin the same release: a stale one is an error naming both.
	if err := os.WriteFile(filepath.Join(dir, EnvFileName), []byte("BUILD_TAG=build-2\nVERSION=build-2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadEnvFile(dir); err == nil || !strings.Contains(err.Error(), ".release-env pins build-2 (-) but .release.env pins build-1 (pkg_v_1): one is stale") {
		t.Fatalf("disagreeing files: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, EnvFileName), []byte("BUILD_TAG=build-1\nFLOATING_TAG=latest-build-main\nVERSION=build-1\nVERSION_ID=pkg_v_1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if id, used, err := ReadEnvFile(dir); err != nil || id.Version != "build-1" || filepath.Base(used) != EnvFileName {
		t.Fatalf("preferred: %+v %s %v", id, used, err)
	}

	bad := []struct{ content, want string }{
		{"BUILD_TAG=build-2\n", "VERSION is missing"},
		{"VERSION=v\n", "BUILD_TAG is missing"},
		{"VERSION=v\nBUILD_TAG=bad tag\n", ".release-env:2: BUILD_TAG: unquoted space"},
		{"VERSION=v\nBUILD_TAG='-bad'\n", `.release-env: BUILD_TAG: invalid tag "-bad"`},
	}
	for _, b := range bad {
		if err := os.WriteFile(filepath.Join(dir, EnvFileName), []byte(b.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadEnvFile(dir); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: err = %v, want %q", b.content, err, b.want)
		}
	}
}

func TestWriteEnvFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, EnvFileName)
	good := &Identity{BuildTag: "b", FloatingTag: "f", Version: "b", VersionID: "pkg_v_1"}
	if err := WriteEnvFile(path, good); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	// An incomplete identity is refused and the previous file stays intact.
	for _, id := range []*Identity{{BuildTag: "b", FloatingTag: "f", Version: "b"}, {BuildTag: "b", FloatingTag: "f\nX=1", Version: "b", VersionID: "v"}} {
		if err := WriteEnvFile(path, id); err == nil {
			t.Errorf("%+v accepted", id)
		}
	}
	// A failing write (the directory is gone) leaves nothing behind either.
	if err := WriteEnvFile(filepath.Join(dir, "missing", EnvFileName), good); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Errorf("file changed: %q → %q", before, after)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
