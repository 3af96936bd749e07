package bakery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/otabake/otabake/internal/agentbuild"
)

// testVersion is a release no recipe pins: tests pin it themselves.
const testVersion = "9.9.9-test"

var (
	releaseOnce sync.Once
	releaseDir  string
	releaseErr  error
)

// release builds the real release artifacts of testVersion once (agentbuild, as `otabake agent
// build` does) into a directory shared by the tests.
func release(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("cross-compiles otabake-agent for every architecture")
	}
	releaseOnce.Do(func() {
		releaseDir, releaseErr = os.MkdirTemp("", "otabake-agent-release-")
		if releaseErr != nil {
			return
		}
		_, releaseErr = agentbuild.BuildAll(context.Background(), agentbuild.Options{Source: repoPath(t), Version: testVersion}, agentbuild.Names(), releaseDir)
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	return releaseDir
}

// serveRelease serves dir under /v<version>/ to requests that carry ?token=s3cr3t, as a
// mirror with presigned URLs does, and needs curl or wget, which the recipe downloads with.
func serveRelease(t *testing.T, dir string) string {
	t.Helper()
	// Either downloader will do, so not testkit.NeedTools (which needs every tool it names).
	_, curlErr := exec.LookPath("curl")
	_, wgetErr := exec.LookPath("wget")
	if curlErr != nil && wgetErr != nil {
		t.Skip("SKIPPED: neither curl nor wget is installed (Debian packages curl, wget); the download was NOT tested")
	}
	files := http.StripPrefix("/v"+testVersion+"/", http.FileServer(http.Dir(dir)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") != "s3cr3t" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v{version}?token=s3cr3t"
}

// pinnedRecipes copies this repository's recipes and pins sums for testVersion in the copy's
// otabake-agent recipe, as a release does (`just pin-agent`).
func pinnedRecipes(t *testing.T, sums []byte) string {
	t.Helper()
	dst := t.TempDir()
	cmd := exec.Command("cp", "-a", repoPath(t, "recipes")+"/.", dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	p := filepath.Join(dst, "otabake-agent", "files", "releases", testVersion+".sha256")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, sums, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestAgentRecipeRelease is one layer serving several architectures with the recipe's
// defaults but the version: each system gets the released binary for its architecture,
// checked against the pinned checksums, armhf an ARMv6 build, armv7 an ARMv7 one (both read
// from the binaries, not their names).
func TestAgentRecipeRelease(t *testing.T) {
	dir := release(t)
	sums, err := os.ReadFile(filepath.Join(dir, agentbuild.ChecksumsFile))
	if err != nil {
		t.Fatal(err)
	}
	base := serveRelease(t, dir)
	recipes := pinnedRecipes(t, sums)
	for _, arch := range agentbuild.Names() {
		t.Run(arch, func(t *testing.T) {
			b := newBakery(t, arch)
			b.recipes = recipes
			for range 2 { // a rebuilt layer runs the steps again
				out, err := b.run("otabake-agent", map[string]any{"version": testVersion, "base_url": base})
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				if strings.Contains(out, "s3cr3t") {
					t.Errorf("output shows the URL's query:\n%s", out)
				}
			}
			want, err := os.ReadFile(filepath.Join(dir, agentbuild.FileName(arch)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.read("usr/bin/otabake-agent"), want) {
				t.Errorf("installed binary is not the release's %s", agentbuild.FileName(arch))
			}
			a, _ := agentbuild.Lookup(arch)
			if err := agentbuild.Check(b.path("usr/bin/otabake-agent"), a); err != nil {
				t.Error(err)
			}
			if m := b.mode("usr/bin/otabake-agent"); !m.IsRegular() || m.Perm() != 0o755 {
				t.Errorf("usr/bin/otabake-agent mode %v, want -rwxr-xr-x", m)
			}
			if lines := b.rebuildLines(); len(lines) != 0 {
				t.Errorf("LAYER_REBUILD_IF_CHANGED = %q, want nothing from the project", lines)
			}
			checkStateFiles(t, b)
		})
	}

	// The same with the checksums given as a parameter instead of pinned in the recipe.
	b := newBakery(t, "arm64")
	if out, err := b.run("otabake-agent", map[string]any{"version": testVersion, "base_url": base, "sha256sums": string(sums)}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want, _ := os.ReadFile(filepath.Join(dir, agentbuild.FileName("arm64")))
	if !bytes.Equal(b.read("usr/bin/otabake-agent"), want) {
		t.Error("sha256sums parameter: installed binary is not the release's")
	}
}

// TestAgentRecipeLocal takes the project's build (source = "local"), and remembers it so that
// Bakery rebuilds the layer when it changes.
func TestAgentRecipeLocal(t *testing.T) {
	for _, arch := range agentbuild.Names() {
		t.Run(arch, func(t *testing.T) {
			b := newBakery(t, arch)
			for _, a := range agentbuild.Names() {
				b.writeProject("build/otabake/"+agentbuild.FileName(a), fakeAgent(t, a), 0o755)
			}
			for range 2 {
				if out, err := b.run("otabake-agent", map[string]any{"source": "local"}); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
			}
			if !bytes.Equal(b.read("usr/bin/otabake-agent"), fakeAgent(t, arch)) {
				t.Errorf("installed binary is not build/otabake/%s", agentbuild.FileName(arch))
			}
			if got, want := b.rebuildLines(), []string{"build/otabake/" + agentbuild.FileName(arch)}; !slices.Equal(got, want) {
				t.Errorf("LAYER_REBUILD_IF_CHANGED = %q, want %q (once, however often the step runs)", got, want)
			}
			checkStateFiles(t, b)
		})
	}
}

// fakeAgent is an ELF header for arch with, for 32-bit ARM, the line of Go build information
// that names the ARM level.
func fakeAgent(t *testing.T, arch string) []byte {
	t.Helper()
	payload := "agent for " + arch + "\n"
	if a, _ := agentbuild.Lookup(arch); a.GOARM != "" {
		payload += "build\tGOARM=" + a.GOARM + "\n"
	}
	return fakeELF(t, arch, payload)
}

func TestAgentRecipeFailures(t *testing.T) {
	sumsFor := func(data []byte, name string) string {
		s := sha256.Sum256(data)
		return hex.EncodeToString(s[:]) + "  " + name + "\n"
	}
	// A mirror whose file is not the release's: the pins catch it.
	tampered := func(t *testing.T) map[string]any {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "otabake-agent-arm64"), fakeAgent(t, "arm64"), 0o644)
		return map[string]any{"version": testVersion, "base_url": "file://" + dir, "sha256sums": sumsFor([]byte("the release"), "otabake-agent-arm64")}
	}
	// Checksums that match a binary for another architecture.
	wrongArch := func(t *testing.T) map[string]any {
		dir := t.TempDir()
		bin := fakeAgent(t, "amd64")
		os.WriteFile(filepath.Join(dir, "otabake-agent-arm64"), bin, 0o644)
		return map[string]any{"version": testVersion, "base_url": "file://" + dir, "sha256sums": sumsFor(bin, "otabake-agent-arm64")}
	}
	tests := []struct {
		name    string
		arch    string
		project map[string][]byte // files in the Bakery project
		params  func(t *testing.T) map[string]any
		want    string
	}{
		{
			name:   "version without pinned checksums",
			arch:   "arm64",
			params: func(*testing.T) map[string]any { return map[string]any{"version": testVersion} },
			want:   "this recipe pins no checksums for otabake-agent " + testVersion + " (pinned: 0.1.0): set the sha256sums parameter",
		},
		{
			name: "checksums without the architecture",
			arch: "armhf",
			params: func(*testing.T) map[string]any {
				return map[string]any{"version": testVersion, "sha256sums": sumsFor(nil, "otabake-agent-armv7")}
			},
			want: "the checksums for otabake-agent " + testVersion + " list no otabake-agent-armhf",
		},
		{
			name:   "sha256 mismatch",
			arch:   "arm64",
			params: tampered,
			want:   "sha256 mismatch for file://",
		},
		{
			name:   "checksummed binary for another architecture",
			arch:   "arm64",
			params: wrongArch,
			want:   "otabake-agent from otabake release " + testVersion + " is not built for arm64 (ELF class 02, machine 3e00; want class 02, machine b700)",
		},
		{
			name: "download fails",
			arch: "arm64",
			params: func(t *testing.T) map[string]any {
				srv := httptest.NewServer(http.NotFoundHandler())
				t.Cleanup(srv.Close)
				return map[string]any{"version": testVersion, "base_url": srv.URL + "/v{version}?token=s3cr3t", "sha256sums": sumsFor(nil, "otabake-agent-arm64")}
			},
			want: "download of http://127.0.0.1:",
		},
		{
			name: "unsupported URL scheme",
			arch: "arm64",
			params: func(*testing.T) map[string]any {
				return map[string]any{"base_url": "ftp://example.com/v{version}?token=s3cr3t"}
			},
			want: "parameter base_url 'ftp://example.com/v0.1.0' is not an http://, https:// or file:// URL",
		},
		{
			name: "unsupported architecture",
			arch: "arm",
			want: "no otabake-agent release for architecture 'arm' (RUGIX_ARCH)",
		},
		{
			name:   "bad source",
			arch:   "arm64",
			params: func(*testing.T) map[string]any { return map[string]any{"source": "git"} },
			want:   "parameter source 'git' is not release or local",
		},
		{
			name:   "bad version",
			arch:   "arm64",
			params: func(*testing.T) map[string]any { return map[string]any{"version": "../../etc"} },
			want:   "parameter version '../../etc' is not a release version",
		},
		{
			name:   "local: no binary in the project",
			arch:   "arm64",
			params: func(*testing.T) map[string]any { return map[string]any{"source": "local"} },
			want:   "build/otabake/otabake-agent-arm64 not found in the Bakery project (source = \"local\"): run 'otabake agent build --arch arm64 --output build/otabake' there",
		},
		{
			name:    "local: 32-bit binary for a 64-bit system",
			arch:    "arm64",
			project: map[string][]byte{"build/otabake/otabake-agent-arm64": fakeELF(t, "armhf", "x")},
			params:  func(*testing.T) map[string]any { return map[string]any{"source": "local"} },
			want:    "is not built for arm64",
		},
		{
			name:    "local: ARMv7 build for an ARMv6 (armhf) system",
			arch:    "armhf",
			project: map[string][]byte{"build/otabake/otabake-agent-armhf": fakeAgent(t, "armv7")},
			params:  func(*testing.T) map[string]any { return map[string]any{"source": "local"} },
			want:    "is not built for armhf: its Go build information does not say GOARM=6",
		},
		{
			name:    "local: not an ELF file",
			arch:    "amd64",
			project: map[string][]byte{"build/otabake/otabake-agent-amd64": []byte("#!/bin/sh\necho hi\n")},
			params:  func(*testing.T) map[string]any { return map[string]any{"source": "local"} },
			want:    "otabake-agent from build/otabake/otabake-agent-amd64 is not an ELF executable",
		},
		{
			name:   "unknown parameter",
			arch:   "arm64",
			params: func(*testing.T) map[string]any { return map[string]any{"url": "https://example.com/agent"} },
			want:   "unknown parameter `url` of recipe `otabake-agent`",
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

// TestPinnedReleases: every checksums file the recipe ships lists exactly the released
// architectures, and the recipe's default version is one of them, so that a plain
// `./run-bakery bake` finds its pins.
func TestPinnedReleases(t *testing.T) {
	files, err := filepath.Glob(repoPath(t, "recipes", "otabake-agent", "files", "releases", "*.sha256"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no pinned releases in recipes/otabake-agent/files/releases (%v)", err)
	}
	var versions []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sums, err := agentbuild.ParseChecksums(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var names []string
		for n := range sums {
			names = append(names, n)
		}
		var want []string
		for _, a := range agentbuild.Names() {
			want = append(want, agentbuild.FileName(a))
		}
		slices.Sort(names)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("%s lists %q, want %q", f, names, want)
		}
		versions = append(versions, strings.TrimSuffix(filepath.Base(f), ".sha256"))
	}
	def, err := bakeryString(loadRecipe(t, "otabake-agent").Parameters["version"].Default)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(versions, def) {
		t.Errorf("the recipe's default version %s has no pinned checksums (pinned: %q)", def, versions)
	}
}
