package release

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/otabake/otabake/internal/agentbuild"
	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/project"
)

// makeBundle writes a small real bundle and returns its path and hash.
func makeBundle(t *testing.T, dir string) (string, string) {
	t.Helper()
	payload := filepath.Join(dir, "payload")
	if err := os.WriteFile(payload, bytes.Repeat([]byte("system "), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "made.rugixb")
	res, err := bundle.Create(context.Background(), out, bundle.Spec{
		Payloads: []bundle.Payload{{Slot: "system", Path: payload, BlockEncoding: &bundle.BlockEncoding{Chunker: "fixed-4"}}},
	}, bundle.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out, res.Hash
}

func loadConfig(t *testing.T, dir, toml string) *project.Config {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "otabake.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := project.Load(dir, project.LoadOptions{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// loadBakery makes dir a Rugix Bakery project with one system, pi.
func loadBakery(t *testing.T, dir string) *project.Config {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "rugix-bakery.toml"), []byte("[systems.pi]\nlayer = \"customized-pi\"\narchitecture = \"arm64\"\ntarget = \"rpi-tryboot\"\n"), 0o644)
	cfg, err := project.Load(dir, project.LoadOptions{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestBuildBakery(t *testing.T) {
	dir := t.TempDir()
	bundlePath, hash := makeBundle(t, t.TempDir())
	img := make([]byte, 3<<20)
	rand.Read(img[:1<<20]) // partly random, partly zeros, like a disk image
	imgPath := filepath.Join(t.TempDir(), "system.img")
	os.WriteFile(imgPath, img, 0o644)
	// A stand-in for Rugix Bakery's run-bakery that records its arguments and leaves what
	// `bake image` and `bake bundle` leave in build/<system>/.
	script := fmt.Sprintf(`#!/bin/sh
set -e
echo "$@" >> args.log
mkdir -p build/$3
case "$2" in
image) cp %q build/$3/system.img
       printf '{\n  "name": "%%s",\n  "release": {\n    "id": "%%s@%%s",\n    "version": "%%s"\n  }\n}' "$3" "$3" "$5" "$5" > build/$3/system-build-info.json ;;
bundle) cp %q build/$3/system.rugixb ;;
esac
`, imgPath, bundlePath)
	os.WriteFile(filepath.Join(dir, "run-bakery"), []byte(script), 0o755)
	cfg := loadBakery(t, dir)
	id := &Identity{Version: "build-20260101000000-abc1234", BuildTag: "build-20260101000000-abc1234"}

	res, err := Build(context.Background(), cfg, id, []string{"pi"}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args.log"))
	wantArgs := "bake image pi --release-version build-20260101000000-abc1234\nbake bundle pi --release-version build-20260101000000-abc1234\n"
	if string(args) != wantArgs {
		t.Errorf("run-bakery called with\n%s\nwant\n%s", args, wantArgs)
	}
	b := filepath.Join(dir, "build", "pi")
	if _, err := os.Stat(filepath.Join(b, "system.img")); err == nil {
		t.Error("system.img left next to system.img.xz")
	}
	f, err := os.Open(filepath.Join(b, "system.img.xz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	xr, err := xz.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, xr); err != nil {
		t.Fatalf("decompress system.img.xz: %v", err)
	}
	if got, want := h.Sum(nil), sha256.Sum256(img); !bytes.Equal(got, want[:]) {
		t.Error("system.img.xz does not decompress to the image")
	}
	gotHash, _ := os.ReadFile(filepath.Join(b, "system.rugixb-hash"))
	if string(gotHash) != hash {
		t.Errorf("system.rugixb-hash = %q, want %q (no newline)", gotHash, hash)
	}
	if _, err := CollectArtifacts(b, "pi", "pi", id.Version); err != nil {
		t.Errorf("upload would refuse the build: %v", err)
	}
	t.Logf("bakery build: stages %v, files %v", res[0].Stages, res[0].Files)
}

func TestBuildBakeryFailure(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run-bakery"), []byte("#!/bin/sh\necho boom >&2\nexit 3\n"), 0o755)
	cfg := loadBakery(t, dir)
	_, err := Build(context.Background(), cfg, &Identity{Version: "v"}, []string{"pi"}, BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "bake image pi") {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildYocto(t *testing.T) {
	dir := t.TempDir()
	bundlePath, hash := makeBundle(t, t.TempDir())
	deploy := filepath.Join(dir, "build/tmp/deploy/images/qemux86-64")
	os.MkdirAll(deploy, 0o755)
	version := "build-20260101000000-abc1234"
	files := map[string]string{
		"core-image-minimal-qemux86-64.rootfs-20260101000000.wic.xz": "image-bytes",
		"os-release": "ID=poky\nIMAGE_ID=qemu\nIMAGE_VERSION=\"" + version + "\"\n",
	}
	for n, c := range files {
		os.WriteFile(filepath.Join(deploy, n), []byte(c), 0o644)
	}
	os.Symlink("core-image-minimal-qemux86-64.rootfs-20260101000000.wic.xz", filepath.Join(deploy, "core-image-minimal-qemux86-64.rootfs.wic.xz"))
	data, _ := os.ReadFile(bundlePath)
	os.WriteFile(filepath.Join(deploy, "core-image-minimal-qemux86-64.rootfs-20260101000000.rugixb"), data, 0o644)
	os.Symlink("core-image-minimal-qemux86-64.rootfs-20260101000000.rugixb", filepath.Join(deploy, "core-image-minimal-qemux86-64.rootfs.rugixb"))

	cfg := loadConfig(t, dir, "[systems.qemu]\nbackend = \"yocto\"\n[systems.qemu.yocto]\nmachine = \"qemux86-64\"\n")
	if _, err := Build(context.Background(), cfg, &Identity{Version: version}, []string{"qemu"}, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "build", "qemu")
	for name, want := range map[string]string{"system.img.xz": "image-bytes", "system.rugixb-hash": hash, "system.rugixb": string(data)} {
		got, err := os.ReadFile(filepath.Join(b, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: %v (content matches: %v)", name, err, string(got) == want)
		}
	}
	// What meta-otabake's class deploys comes along too.
	os.WriteFile(filepath.Join(deploy, "core-image-minimal-qemux86-64.rootfs-20260101000000.sbom.spdx.json"), []byte(`{"spdxVersion":"SPDX-2.3"}`), 0o644)
	os.Symlink("core-image-minimal-qemux86-64.rootfs-20260101000000.sbom.spdx.json", filepath.Join(deploy, "core-image-minimal-qemux86-64.rootfs.sbom.spdx.json"))
	if _, err := Build(context.Background(), cfg, &Identity{Version: version}, []string{"qemu"}, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	arts, err := CollectArtifacts(b, "qemu", "qemu", version)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range arts {
		names = append(names, a.Filename)
	}
	if got := strings.Join(names, " "); got != "qemu.spdx.json qemu.img.xz qemu.rugixb qemu.rugixb-hash" {
		t.Errorf("artifacts %s", got)
	}
	if _, err := CollectArtifacts(b, "qemu", "qemu", "build-other"); err == nil || !strings.Contains(err.Error(), "IMAGE_VERSION") {
		t.Errorf("version mismatch not caught: %v", err)
	}

	// Two images deployed for the machine: ask for the image name.
	os.WriteFile(filepath.Join(deploy, "core-image-base-qemux86-64.rootfs-20260102000000.wic.xz"), []byte("x"), 0o644)
	os.Symlink("core-image-base-qemux86-64.rootfs-20260102000000.wic.xz", filepath.Join(deploy, "core-image-base-qemux86-64.rootfs.wic.xz"))
	_, err = Build(context.Background(), cfg, &Identity{Version: version}, []string{"qemu"}, BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "several images") {
		t.Errorf("err = %v", err)
	}
	cfg = loadConfig(t, dir, "[systems.qemu]\nbackend = \"yocto\"\n[systems.qemu.yocto]\nmachine = \"qemux86-64\"\nimage = \"core-image-minimal\"\n")
	if _, err := Build(context.Background(), cfg, &Identity{Version: version}, []string{"qemu"}, BuildOptions{}); err != nil {
		t.Errorf("with the image named: %v", err)
	}
}

func TestBuildUnknownSystem(t *testing.T) {
	dir := t.TempDir()
	cfg := loadBakery(t, dir)
	_, err := Build(context.Background(), cfg, &Identity{Version: "v"}, []string{"nope"}, BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "pi") {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles otabake-agent")
	}
	src, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTABAKE_SOURCE_DIR", src)
	dir := t.TempDir()
	outs, err := BuildAgents(context.Background(), dir, "1.0.0", []string{"armhf"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "build", "otabake", "otabake-agent-armhf"); outs[0].Path != want || !outs[0].Written {
		t.Errorf("BuildAgents = %+v, want a new %s", outs[0], want)
	}
	// Checked by agentbuild.Check: ARMv6, static, not a PIE.
	if _, err := BuildAgents(context.Background(), dir, "1.0.0", []string{"mips"}); err == nil || !strings.Contains(err.Error(), "mips") {
		t.Errorf("err = %v", err)
	}
}

func TestAgentRecipeSource(t *testing.T) {
	for _, tc := range []struct {
		name, bakery, layer, want, err string
	}{
		{name: "unset", bakery: "[systems.a]\nlayer = \"x\"\n", want: "release"},
		{name: "project", bakery: "[parameters.\"otabake/otabake-agent\"]\nsource = \"local\"\n", want: "local"},
		{name: "layer", layer: "[parameters.\"otabake/otabake-agent\"]\nsource = \"release\"\nversion = \"0.1.0\"\n", want: "release"},
		{name: "other recipe", layer: "[parameters.\"otabake/otabake-ota\"]\nsource = \"local\"\n", want: "release"},
		{name: "conflict", bakery: "[parameters.\"otabake/otabake-agent\"]\nsource = \"local\"\n", layer: "[parameters.\"otabake/otabake-agent\"]\nsource = \"release\"\n", err: "another file"},
		{name: "bad toml", bakery: "[parameters\n", err: project.BakeryFileName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.bakery != "" {
				os.WriteFile(filepath.Join(dir, project.BakeryFileName), []byte(tc.bakery), 0o644)
			}
			if tc.layer != "" {
				os.MkdirAll(filepath.Join(dir, "layers"), 0o755)
				os.WriteFile(filepath.Join(dir, "layers", "l.toml"), []byte(tc.layer), 0o644)
			}
			got, err := agentRecipeSource(dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("agentRecipeSource = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestBuildBakeryLocalAgent: with the otabake-agent recipe's source = "local", build-release
// cross-compiles the agent into build/otabake/ for the system's Rugix architecture (armhf is
// ARMv6), and a second build-release of the same sources rewrites no agent file, so Bakery does
// not rebuild the layer that holds it.
func TestBuildBakeryLocalAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles otabake-agent")
	}
	src, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTABAKE_SOURCE_DIR", src)
	dir := t.TempDir()
	bundlePath, _ := makeBundle(t, t.TempDir())
	os.WriteFile(filepath.Join(dir, "run-bakery"), []byte(fmt.Sprintf(`#!/bin/sh
set -e
mkdir -p build/$3
case "$2" in
image) printf 'image' > build/$3/system.img ;;
bundle) cp %q build/$3/system.rugixb ;;
esac
`, bundlePath)), 0o755)
	os.WriteFile(filepath.Join(dir, "rugix-bakery.toml"), []byte("[systems.pi]\nlayer = \"device-pi\"\narchitecture = \"armhf\"\ntarget = \"rpi-tryboot\"\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "layers"), 0o755)
	os.WriteFile(filepath.Join(dir, "layers", "device-pi.toml"), []byte("recipes = [\"otabake/otabake-ota\"]\n\n[parameters.\"otabake/otabake-agent\"]\nsource = \"local\"\n"), 0o644)
	cfg, err := project.Load(dir, project.LoadOptions{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	agentPath := filepath.Join(AgentDir(dir), "otabake-agent-armhf")
	build := func() []string {
		res, err := Build(context.Background(), cfg, &Identity{Version: "v1"}, []string{"pi"}, BuildOptions{AgentVersion: "1.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		var stages []string
		for _, s := range res[0].Stages {
			stages = append(stages, s.Name)
		}
		return stages
	}
	if stages := build(); !slices.Contains(stages, "otabake-agent") {
		t.Fatalf("stages %q: no otabake-agent build", stages)
	}
	armhf, _ := agentbuild.Lookup("armhf")
	if err := agentbuild.Check(agentPath, armhf); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(agentPath, old, old); err != nil {
		t.Fatal(err)
	}
	build()
	if st, err := os.Stat(agentPath); err != nil || !st.ModTime().Equal(old) {
		t.Errorf("second build-release rewrote %s (%v)", agentPath, err)
	}

	// The recipe's default (release) needs no local build.
	os.WriteFile(filepath.Join(dir, "layers", "device-pi.toml"), []byte("recipes = [\"otabake/otabake-ota\"]\n"), 0o644)
	if stages := build(); slices.Contains(stages, "otabake-agent") {
		t.Errorf("stages %q: built the agent although the recipe downloads the release", stages)
	}
}
