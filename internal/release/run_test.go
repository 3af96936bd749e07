package release

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/project"
)

// TestRun runs the whole pipeline into the embedded local Hub, which it creates the package
// in, with a stand-in for Rugix Bakery, and checks each step's result and the order of the
// callbacks.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	bundlePath, hash := makeBundle(t, t.TempDir())
	imgPath := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(imgPath, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`#!/bin/sh
set -e
mkdir -p build/$3
case "$2" in
image) cp %q build/$3/system.img
       printf '{"name":"%%s","release":{"id":"%%s@%%s","version":"%%s"}}' "$3" "$3" "$5" "$5" > build/$3/system-build-info.json ;;
bundle) cp %q build/$3/system.rugixb ;;
esac
`, imgPath, bundlePath)
	if err := os.WriteFile(filepath.Join(dir, "run-bakery"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "rugix-bakery.toml"), []byte("[systems.pi]\nlayer = \"customized-pi\"\narchitecture = \"arm64\"\ntarget = \"rpi-tryboot\"\n"), 0o644)
	load := func() *project.Config {
		cfg, err := project.Load(dir, project.LoadOptions{Env: []string{"BUILD_TAG=build-7", "FLOATING_TAG=latest-build-main", "SOURCE_DATE_EPOCH=10"}})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	ctx := context.Background()
	if _, err := Run(ctx, load(), RunOptions{}); err == nil || !strings.Contains(err.Error(), "no Hub repository configured") {
		t.Fatalf("Run without a package: %v", err)
	}
	cfg := load()
	cfg.Hub.Repository, cfg.Hub.Package = "demo", "os"
	var calls []string
	res, err := Run(ctx, cfg, RunOptions{
		Promote: "stable",
		Prepared: func(p *PrepareResult, desc string) {
			calls = append(calls, "prepared "+p.VersionPath+" in "+filepath.Base(desc))
		},
		Built: func(b []*BuildResult) { calls = append(calls, fmt.Sprintf("built %d", len(b))) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"prepared demo/os/build-7 in hub", "built 1"}; !slices.Equal(calls, want) {
		t.Errorf("callbacks %q, want %q", calls, want)
	}
	if res.Identity.Version != "build-7" || !slices.Equal(res.Systems, []string{"pi"}) || !res.Prepare.Created {
		t.Errorf("identity %+v, systems %v, prepare %+v", res.Identity, res.Systems, res.Prepare)
	}
	b := res.Build[0]
	if b.BundleHash != hash || b.Sizes["system.rugixb"] == 0 || len(b.Sizes) != len(b.Files) {
		t.Errorf("build result: bundle hash %q (want %q), sizes %v of %v", b.BundleHash, hash, b.Sizes, b.Files)
	}
	var names []string
	for _, a := range res.Upload.Artifacts {
		names = append(names, a.Filename)
	}
	if want := []string{"pi.build-info.json", "pi.img.xz", "pi.rugixb", "pi.rugixb-hash"}; !slices.Equal(names, want) {
		t.Errorf("uploaded %v, want %v", names, want)
	}
	if res.Promote == nil || res.Promote.Tag != "stable" || !res.Promote.Moved {
		t.Errorf("promote %+v", res.Promote)
	}
	if res.LocalHub == nil || res.LocalHub.Dir != LocalHubDir(dir) || len(res.LocalHub.Tree) != 1 || res.LocalHub.Tree[0].Name != "demo" {
		t.Errorf("local Hub %+v", res.LocalHub)
	}
}
