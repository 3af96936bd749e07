package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

// quickstartSystems are the systems of examples/quickstart.
var quickstartSystems = []string{"quickstart-efi-amd64", "quickstart-pi5"}

// quickstartProject copies the committed files of examples/quickstart into a new git
// repository, commits them, creates its local Hub and returns the project directory. The
// environment has no SOURCE_DATE_EPOCH, no Hub credentials and no pinned tags.
func quickstartProject(t *testing.T) string {
	t.Helper()
	testkit.NeedTools(t, "the quickstart build", testkit.Tool{Name: "git", Package: "git"}, testkit.Tool{Name: "mkfs.ext4", Package: "e2fsprogs"},
		testkit.Tool{Name: "debugfs", Package: "e2fsprogs"}, testkit.Tool{Name: "sfdisk", Package: "fdisk"})
	for _, k := range []string{"SOURCE_DATE_EPOCH", "NEXIGON_HUB_URL", "NEXIGON_TOKEN", "OTABAKE_HUB_TOKEN", "NEXIGON_REPOSITORY", "NEXIGON_PACKAGE",
		"NEXIGON_OTA_REPOSITORY", "NEXIGON_OTA_PACKAGE", "BUILD_TAG", "FLOATING_TAG", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	t.Setenv("HOME", t.TempDir())
	src, err := filepath.Abs("../../examples/quickstart")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", src, "ls-files", "-z", ".").Output()
	if err != nil {
		t.Fatalf("git ls-files in %s: %v", src, err)
	}
	dir := filepath.Join(t.TempDir(), "quickstart")
	checkedOut := time.Now().Add(-time.Hour)
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		from, to := filepath.Join(src, rel), filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(from)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, err := os.Readlink(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(l, to); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		// As a checkout made before the release: times below the release's are kept.
		if err := os.Chtimes(to, checkedOut, checkedOut); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "quickstart")
	mustRun(t, "-C", dir, "hub", "init", "--repository", "quickstart", "--package", "system")
	return dir
}

// treeDigests lists every entry under root as "type mode sha256" by slash path, so that two
// trees compare byte for byte (file times aside, which no artifact carries).
func treeDigests(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			m[filepath.ToSlash(rel)] = fmt.Sprintf("dir %v", fi.Mode())
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			m[filepath.ToSlash(rel)] = "symlink " + l
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			m[filepath.ToSlash(rel)] = fmt.Sprintf("file %v %d %s", fi.Mode(), len(data), hex.EncodeToString(sum[:]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// diffTrees lists every path whose entry differs between two treeDigests, or that only one has.
func diffTrees(a, b map[string]string) []string {
	var diffs []string
	for p, x := range a {
		if y, ok := b[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in the first build (%s)", p, x))
		} else if x != y {
			diffs = append(diffs, fmt.Sprintf("%s: %s vs %s", p, x, y))
		}
	}
	for p, y := range b {
		if _, ok := a[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in the second build (%s)", p, y))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// buildSummary is the part of build-release --json the tests read.
type buildSummary struct {
	Version string `json:"version"`
	Systems []struct {
		System    string `json:"system"`
		BuildTime struct {
			Time   time.Time `json:"time"`
			Epoch  int64     `json:"epoch"`
			Source string    `json:"source"`
			From   string    `json:"from"`
		} `json:"buildTime"`
	} `json:"systems"`
}

// sbomCreated is the creationInfo.created of a build's SBOM.
func sbomCreated(t *testing.T, dir, system string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "build", system, "sbom.spdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		CreationInfo struct {
			Created string `json:"created"`
		} `json:"creationInfo"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.CreationInfo.Created
}

// TestBuildReleaseReproducibleByDefault is issue 15's acceptance test: the quickstart built
// twice from the same .release-env, without SOURCE_DATE_EPOCH, in the same directory and more
// than 2 s apart, gives byte-identical build/ trees (images, bundles, hashes, SBOMs, bmaps,
// build info: everything build-release writes), because both builds take the release's time
// pinned by prepare-release; and both summaries (human and --json) say so.
func TestBuildReleaseReproducibleByDefault(t *testing.T) {
	dir := quickstartProject(t)
	mustRun(t, "-C", dir, "prepare-release")
	env := readEnv(t, dir)
	epoch, err := strconv.ParseInt(env["RELEASE_EPOCH"], 10, 64)
	if err != nil {
		t.Fatalf(".release-env has no RELEASE_EPOCH: %v", env)
	}
	releaseTime := time.Unix(epoch, 0).UTC()

	start := time.Now()
	args := append([]string{"-C", dir, "build-release"}, quickstartSystems...)
	human := mustRun(t, args...)
	first := treeDigests(t, filepath.Join(dir, "build"))
	firstTook := time.Since(start)
	// The second build starts at least 2 s after the first ended: any clock time would differ.
	time.Sleep(2100 * time.Millisecond)
	var js buildSummary
	if err := json.Unmarshal([]byte(mustRun(t, append([]string{"--json"}, args...)...)), &js); err != nil {
		t.Fatal(err)
	}
	second := treeDigests(t, filepath.Join(dir, "build"))
	t.Logf("built %s twice (first build %s, both with the pause %s) at the release's time %s",
		strings.Join(quickstartSystems, ", "), firstTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), releaseTime.Format(time.RFC3339))

	for _, sys := range quickstartSystems {
		for _, f := range []string{"system.img.xz", "system.img.bmap", "system.rugixb", "system.rugixb-hash", "sbom.spdx.json", "system-build-info.json"} {
			if _, ok := first[sys+"/"+f]; !ok {
				t.Errorf("build/%s/%s missing: the comparison would not cover it", sys, f)
			}
		}
	}
	if diffs := diffTrees(first, second); len(diffs) > 0 {
		t.Errorf("build/ differs between two builds of %s without SOURCE_DATE_EPOCH (%d entries):\n  %s", env["VERSION"], len(diffs), strings.Join(diffs, "\n  "))
	} else {
		t.Logf("build/ identical: %d entries", len(first))
	}

	// The time written is the release's, not the clock's.
	if got, want := sbomCreated(t, dir, quickstartSystems[0]), releaseTime.Format("2006-01-02T15:04:05Z"); got != want {
		t.Errorf("SBOM created %s, want the release's time %s", got, want)
	}
	wantLine := fmt.Sprintf("  build time   %s (epoch %d), the release's time: RELEASE_EPOCH in .release-env\n", releaseTime.Format(time.RFC3339), epoch)
	if strings.Count(human, wantLine) != len(quickstartSystems) {
		t.Errorf("human summary lacks %q per system:\n%s", wantLine, human)
	}
	if js.Version != env["VERSION"] || len(js.Systems) != len(quickstartSystems) {
		t.Fatalf("--json summary = %+v", js)
	}
	for _, s := range js.Systems {
		bt := s.BuildTime
		if bt.Source != "release" || bt.Epoch != epoch || !bt.Time.Equal(releaseTime) || bt.From != "RELEASE_EPOCH in .release-env" {
			t.Errorf("%s: --json buildTime = %+v, want the release's time %d from RELEASE_EPOCH in .release-env", s.System, bt, epoch)
		}
	}
}

// TestBuildReleaseSourceDateEpochWins: SOURCE_DATE_EPOCH overrides the release's time, and
// the summaries name it as the source.
func TestBuildReleaseSourceDateEpochWins(t *testing.T) {
	dir := quickstartProject(t)
	mustRun(t, "-C", dir, "prepare-release")
	env := readEnv(t, dir)
	if env["RELEASE_EPOCH"] == "" || env["RELEASE_EPOCH"] == "1700000000" {
		t.Fatalf(".release-env = %v", env)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000") // 2023-11-14T22:13:20Z
	sys := quickstartSystems[0]
	var js buildSummary
	if err := json.Unmarshal([]byte(mustRun(t, "-C", dir, "--json", "build-release", "--image-compression", "none", sys)), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Systems) != 1 {
		t.Fatalf("--json summary = %+v", js)
	}
	if bt := js.Systems[0].BuildTime; bt.Source != "SOURCE_DATE_EPOCH" || bt.Epoch != 1700000000 || bt.From != "environment SOURCE_DATE_EPOCH" ||
		bt.Time.Format(time.RFC3339) != "2023-11-14T22:13:20Z" {
		t.Errorf("--json buildTime = %+v, want SOURCE_DATE_EPOCH 1700000000 from the environment", bt)
	}
	if got := sbomCreated(t, dir, sys); got != "2023-11-14T22:13:20Z" {
		t.Errorf("SBOM created %s, want SOURCE_DATE_EPOCH's time", got)
	}
	human := mustRun(t, "-C", dir, "build-release", "--image-compression", "none", sys)
	if want := "  build time   2023-11-14T22:13:20Z (epoch 1700000000), SOURCE_DATE_EPOCH: environment SOURCE_DATE_EPOCH\n"; !strings.Contains(human, want) {
		t.Errorf("human summary lacks %q:\n%s", want, human)
	}
}
