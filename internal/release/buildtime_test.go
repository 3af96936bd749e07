package release

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBuildTimeRule checks the one rule for a build's time, in its order: SOURCE_DATE_EPOCH
// (wherever the configuration took it from), the release's RELEASE_EPOCH, the version's
// {time}, the commit time, and the clock only as the last resort, with a warning.
func TestBuildTimeRule(t *testing.T) {
	repo, sha := identityRepo(t) // committed at 2026-01-02T03:04:05Z
	noGit := t.TempDir()
	released := &Identity{Version: "build-20260101000000-abc1234", BuildTag: "build-20260101000000-abc1234",
		Time: time.Unix(1767400000, 0).UTC(), TimeFrom: "RELEASE_EPOCH in .release-env"}
	unpinned := &Identity{Version: "build-20260101000000-abc1234", BuildTag: "build-20260101000000-abc1234"}
	custom := &Identity{Version: "1.2.3", BuildTag: "1.2.3"}
	clock := func() time.Time { return time.Date(2030, 5, 6, 7, 8, 9, 500, time.UTC) }

	tests := []struct {
		name      string
		dir       string
		env       []string
		toml      string
		id        *Identity
		want      int64
		source    TimeSource
		from      string
		warnsLike string
	}{
		{"SOURCE_DATE_EPOCH wins over the release", repo, []string{"SOURCE_DATE_EPOCH=1700000000"}, "", released, 1700000000, TimeFromSourceDateEpoch, "environment SOURCE_DATE_EPOCH", ""},
		{"otabake.toml's source_date_epoch counts as SOURCE_DATE_EPOCH", noGit, nil, "[release]\nsource_date_epoch = 1700000001\n", released, 1700000001, TimeFromSourceDateEpoch, "otabake.toml:2", ""},
		{"the release's pinned time", repo, nil, "", released, 1767400000, TimeFromRelease, "RELEASE_EPOCH in .release-env", ""},
		{"the version's time without RELEASE_EPOCH", repo, nil, "", unpinned, 1767225600, TimeFromVersion, "version build-20260101000000-abc1234", ""},
		{"a custom pattern's time", noGit, nil, "[release]\nbuild_tag = \"v{time}.{commit}\"\n", &Identity{Version: "v20250304050607.abc", BuildTag: "v20250304050607.abc"}, 1741064767, TimeFromVersion, "version v20250304050607.abc", ""},
		{"the commit time when the version has no time", repo, nil, "", custom, 1767323045, TimeFromCommit, "commit " + sha, ""},
		{"the clock as the last resort", noGit, nil, "", custom, clock().Unix(), TimeFromClock, "the clock", "not reproducible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if tt.toml != "" {
				dir = t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "otabake.toml"), []byte(tt.toml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			bt, warnings := BuildTimeOf(context.Background(), identityConfig(t, dir, tt.env...), tt.id, clock)
			if bt.Epoch != tt.want || !bt.Time.Equal(time.Unix(tt.want, 0)) || bt.Time.Location() != time.UTC || bt.Source != tt.source || bt.From != tt.from {
				t.Errorf("got %+v, want epoch %d from %s (%s)", bt, tt.want, tt.source, tt.from)
			}
			if bt.Reproducible() != (tt.source != TimeFromClock) {
				t.Errorf("Reproducible() = %v", bt.Reproducible())
			}
			if got := strings.Join(warnings, "\n"); tt.warnsLike == "" && got != "" || !strings.Contains(got, tt.warnsLike) {
				t.Errorf("warnings %q, want %q", got, tt.warnsLike)
			}
			if s := bt.String(); !strings.Contains(s, bt.Time.Format(time.RFC3339)) || !strings.Contains(s, tt.from) {
				t.Errorf("String() = %q", s)
			}
		})
	}
}

func TestTimeFromTag(t *testing.T) {
	tests := []struct {
		pattern, tag string
		want         string // RFC 3339, "" for no time
	}{
		{"build-{time}-{commit}", "build-20260101000000-abc1234", "2026-01-01T00:00:00Z"},
		{"build-{time}-{commit}", "build-2026010100000-abc1234", ""},  // 13 digits
		{"build-{time}-{commit}", "build-20261301000000-abc1234", ""}, // month 13
		{"build-{time}-{commit}", "release-20260101000000-abc1234", ""},
		{"{branch}.{time}", "feature-x.20260101000000", "2026-01-01T00:00:00Z"},
		{"v{time}-{time}", "v20260101000000-20260101000001", ""},
		{"build-{commit}", "build-20260101000000", ""},
		{"build-{time}-{commit}", "", ""},
	}
	for _, tt := range tests {
		got, ok := timeFromTag(tt.pattern, tt.tag)
		if s := got.Format(time.RFC3339); ok != (tt.want != "") || ok && s != tt.want {
			t.Errorf("timeFromTag(%q, %q) = %s, %v; want %q", tt.pattern, tt.tag, s, ok, tt.want)
		}
	}
}

// TestEnvFileReleaseEpoch: prepare-release pins the release's time as RELEASE_EPOCH, the shell
// reads it, ReadEnvFile brings it back with where it came from, a file without it (meta-nexigon's
// prepare-release.sh) still agrees with one that has it, and a bad value is refused.
func TestEnvFileReleaseEpoch(t *testing.T) {
	dir := t.TempDir()
	id := &Identity{BuildTag: "build-20260101000000-abc1234", FloatingTag: "latest-build-main", Version: "build-20260101000000-abc1234", VersionID: "pkg_v_1",
		Time: time.Unix(1767225600, 0).UTC()}
	paths, err := WriteEnvFiles(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(paths[0])
	if !strings.HasSuffix(string(data), "\nVERSION_ID=pkg_v_1\nRELEASE_EPOCH=1767225600\n") {
		t.Errorf(".release-env = %q", data)
	}
	if _, err := exec.LookPath("bash"); err == nil {
		out, err := exec.Command("bash", "-c", `. "$1" && printf %s "$RELEASE_EPOCH"`, "x", paths[0]).Output()
		if err != nil || string(out) != "1767225600" {
			t.Errorf("bash read %q, %v", out, err)
		}
	}
	got, _, err := ReadEnvFile(dir)
	if err != nil || !got.Time.Equal(id.Time) || got.TimeFrom != "RELEASE_EPOCH in .release-env" {
		t.Fatalf("read %+v, %v", got, err)
	}

	// meta-nexigon's prepare-release.sh rewrote .release.env for the same version, without
	// the time: the files agree and the time stays.
	legacy := "BUILD_TAG=build-20260101000000-abc1234\nFLOATING_TAG=latest-build-main\nVERSION=build-20260101000000-abc1234\nVERSION_ID=pkg_v_1\n"
	if err := os.WriteFile(paths[1], []byte(legacy), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _, err := ReadEnvFile(dir); err != nil || !got.Time.Equal(id.Time) {
		t.Fatalf("with a legacy file without time: %+v, %v", got, err)
	}
	// The other way round the time comes from .release.env.
	if err := os.WriteFile(paths[0], []byte(legacy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(paths[1], data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _, err := ReadEnvFile(dir); err != nil || !got.Time.Equal(id.Time) || got.TimeFrom != "RELEASE_EPOCH in .release.env" {
		t.Fatalf("time only in .release.env: %+v, %v", got, err)
	}
	// Two different times for the same version: one file is stale.
	if err := os.WriteFile(paths[0], []byte(legacy+"RELEASE_EPOCH=1767225601\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadEnvFile(dir); err == nil || !strings.Contains(err.Error(), "RELEASE_EPOCH=1767225601 (pkg_v_1) but .release.env pins build-20260101000000-abc1234 at RELEASE_EPOCH=1767225600") {
		t.Fatalf("different times: %v", err)
	}
	os.Remove(paths[1])
	for _, bad := range []string{"soon", "-1", "253402300800"} {
		if err := os.WriteFile(paths[0], []byte(legacy+"RELEASE_EPOCH="+bad+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadEnvFile(dir); err == nil || !strings.Contains(err.Error(), "RELEASE_EPOCH \""+bad+"\" is not a number of seconds since 1970") {
			t.Errorf("RELEASE_EPOCH=%s: %v", bad, err)
		}
	}
}
