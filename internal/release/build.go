package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/image"
	"github.com/otabake/otabake/internal/project"
	"github.com/otabake/otabake/internal/tool"
)

// BuildOptions tune Build.
type BuildOptions struct {
	// Backend overrides the configured backend of every system ("native", "bakery", "yocto").
	Backend string
	// Output receives the output of the build tools (run-bakery); nil discards it.
	Output io.Writer
	// Stage is called when a stage of a system's build starts.
	Stage func(system, stage string)
	// ImageCompression is the native backend's image compression: xz (default), zst or none.
	ImageCompression string
	// AgentVersion is linked into a local otabake-agent build (the Bakery recipe's
	// source = "local"); empty means "dev".
	AgentVersion string
}

// BuildResult describes build/<system>/ after a build.
type BuildResult struct {
	System  string   `json:"system"`
	Backend string   `json:"backend"`
	Dir     string   `json:"dir"`
	Files   []string `json:"files"`
	Stages  []Stage  `json:"stages"`
	// Sizes are the sizes of Files in bytes, by name, and BundleHash the content of the
	// bundle hash file when the directory holds one: what the build summary shows. Neither is
	// in the JSON report, which lists the file names.
	Sizes      map[string]int64 `json:"-"`
	BundleHash string           `json:"-"`
	// BuildTime is the time written into every artifact and where it came from (BuildTimeOf);
	// nil for the yocto backend, which only collects what BitBake built.
	BuildTime *BuildTime `json:"buildTime,omitempty"`
	// Warnings are things the build could do only partly, such as an SBOM without packages.
	Warnings []string `json:"warnings,omitempty"`
}

// Build produces build/<system>/ for each system with the version pinned in id, using the
// system's backend: native builds everything from a root filesystem, bakery runs Rugix Bakery
// and post-processes its output, yocto collects a BitBake deploy directory. Every system is
// checked before any is built. The time the builds write is BuildTimeOf's, resolved once.
func Build(ctx context.Context, cfg *project.Config, id *Identity, systems []string, opts BuildOptions) ([]*BuildResult, error) {
	if len(systems) == 0 {
		return nil, fmt.Errorf("no system given: name one or more of %s", strings.Join(systemNames(cfg), ", "))
	}
	type job struct {
		sys     *project.System
		backend string
		trust   *trustPlan
	}
	var jobs []job
	for _, name := range systems {
		sys, err := cfg.System(name)
		if err != nil {
			return nil, err
		}
		backend := sys.Backend
		if opts.Backend != "" {
			backend = opts.Backend
		}
		if !project.ValidBackend(backend) {
			return nil, fmt.Errorf("system %s: unknown backend %q (want %s)", name, backend, strings.Join(project.Backends(), ", "))
		}
		var trust *trustPlan
		if backend == project.BackendNative {
			// Bakery and Yocto images are made by their own build; otabake cannot see what
			// they trust, so only the images otabake makes are checked.
			if trust, err = planTrust(cfg, sys); err != nil {
				return nil, err
			}
		}
		jobs = append(jobs, job{sys, backend, trust})
	}
	bt, btWarnings := BuildTimeOf(ctx, cfg, id, nil)
	var out []*BuildResult
	for _, j := range jobs {
		var (
			r   *BuildResult
			err error
		)
		switch j.backend {
		case project.BackendNative:
			r, err = buildNative(ctx, cfg, id, j.sys, j.trust, bt, opts)
		case project.BackendBakery:
			r, err = buildBakery(ctx, cfg, id, j.sys, bt, opts)
		case project.BackendYocto:
			r, err = collectYocto(ctx, cfg, id, j.sys, opts)
		}
		if err != nil {
			return out, fmt.Errorf("build %s: %w", j.sys.Name, err)
		}
		if r.BuildTime != nil {
			r.Warnings = append(r.Warnings, btWarnings...)
		}
		out = append(out, r)
	}
	return out, nil
}

func systemNames(cfg *project.Config) []string {
	var names []string
	for _, s := range cfg.Systems {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return []string{"(no systems configured in otabake.toml or rugix-bakery.toml)"}
	}
	return names
}

// Stage is one step of a system's build and how long it took.
type Stage struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// stageTimer records how long each stage of one system's build took.
type stageTimer struct {
	r     *BuildResult
	opts  BuildOptions
	name  string
	start time.Time
}

func (t *stageTimer) begin(stage string) {
	t.end()
	t.name, t.start = stage, time.Now()
	if t.opts.Stage != nil {
		t.opts.Stage(t.r.System, stage)
	}
}

func (t *stageTimer) end() {
	if t.name != "" {
		t.r.Stages = append(t.r.Stages, Stage{Name: t.name, Seconds: time.Since(t.start).Round(time.Millisecond).Seconds()})
		t.name = ""
	}
}

// buildBakery runs `./run-bakery bake image|bundle SYSTEM --release-version VERSION` in the
// project with SOURCE_DATE_EPOCH set to the build time, then compresses system.img to
// system.img.xz on all cores and writes system.rugixb-hash (Bakery writes neither).
func buildBakery(ctx context.Context, cfg *project.Config, id *Identity, sys *project.System, bt BuildTime, opts BuildOptions) (*BuildResult, error) {
	runBakery := filepath.Join(cfg.Dir, "run-bakery")
	if _, err := os.Stat(runBakery); err != nil {
		return nil, fmt.Errorf("%s not found: the bakery backend needs a Rugix Bakery project (see https://rugix.org/docs/getting-started)", runBakery)
	}
	d := SystemDirOf(cfg.Dir, sys.Name)
	r := &BuildResult{System: sys.Name, Backend: project.BackendBakery, Dir: d.Dir, BuildTime: &bt}
	t := &stageTimer{r: r, opts: opts}
	if arch := sys.Bakery.Architecture; arch != "" && usesAgentRecipe(cfg.Dir) {
		source, err := agentRecipeSource(cfg.Dir)
		if err != nil {
			return nil, err
		}
		// The recipe downloads the released binary unless told to take a local build.
		if source == "local" {
			t.begin("otabake-agent")
			if _, err := BuildAgents(ctx, cfg.Dir, opts.AgentVersion, []string{arch}); err != nil {
				return nil, err
			}
		}
	}
	for _, what := range []string{"image", "bundle"} {
		t.begin("bake " + what)
		if err := runBuildTool(ctx, cfg.Dir, opts.Output, []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(bt.Epoch, 10)}, "./run-bakery", "bake", what, sys.Name, "--release-version", id.Version); err != nil {
			return nil, err
		}
	}
	t.begin("compress image")
	img := d.Image()
	if _, err := os.Stat(img); err == nil {
		if err := image.CompressXZ(ctx, img, d.CompressedImage(".xz"), runtime.NumCPU()); err != nil {
			return nil, fmt.Errorf("compress %s: %w", img, err)
		}
		if err := os.Remove(img); err != nil {
			return nil, err
		}
	} else if _, xerr := os.Stat(d.CompressedImage(".xz")); xerr != nil {
		return nil, fmt.Errorf("Rugix Bakery left no %s", img)
	}
	t.begin("bundle hash")
	if err := writeBundleHash(d.Bundle()); err != nil {
		return nil, err
	}
	t.end()
	return r, listFiles(r)
}

// usesAgentRecipe reports whether a Bakery project uses otabake's recipes (its
// rugix-bakery.toml or a layer names otabake-agent or otabake's repository), so that the
// otabake-agent recipe's default source, build/otabake/otabake-agent-<arch>, must exist.
func usesAgentRecipe(projectDir string) bool {
	mentions := func(p string) bool {
		data, err := os.ReadFile(p)
		return err == nil && (strings.Contains(string(data), "otabake-agent") || strings.Contains(string(data), "otabake/"))
	}
	if mentions(filepath.Join(projectDir, project.BakeryFileName)) {
		return true
	}
	found := false
	filepath.WalkDir(filepath.Join(projectDir, "layers"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".toml") && mentions(p) {
			found = true
		}
		return nil
	})
	return found
}

// writeBundleHash writes <bundle>-hash next to a bundle, without a newline, as Rugix Bakery
// users write it with rugix-bundler hash.
func writeBundleHash(bundlePath string) error {
	h, err := bundle.HashFile(bundlePath)
	if err != nil {
		return fmt.Errorf("bundle hash of %s: %w", bundlePath, err)
	}
	return atomicfile.WriteFile(BundleHashPath(bundlePath), []byte(h), 0o644)
}

// collectYocto copies a BitBake deploy directory's image, bundles and os-release into
// build/<system>/ with the names upload-release expects.
func collectYocto(ctx context.Context, cfg *project.Config, id *Identity, sys *project.System, opts BuildOptions) (*BuildResult, error) {
	machine := sys.Yocto.Machine
	if machine == "" {
		machine = sys.Name
	}
	deploy := sys.Yocto.DeployDir
	if deploy == "" {
		deploy = filepath.Join("build", "tmp", "deploy", "images", machine)
	}
	if !filepath.IsAbs(deploy) {
		deploy = filepath.Join(cfg.Dir, deploy)
	}
	if st, err := os.Stat(deploy); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("deploy directory %s not found: run the BitBake build for MACHINE=%s first (or set deploy_dir in [systems.%s.yocto])", deploy, machine, sys.Name)
	}
	d := SystemDirOf(cfg.Dir, sys.Name)
	r := &BuildResult{System: sys.Name, Backend: project.BackendYocto, Dir: d.Dir}
	t := &stageTimer{r: r, opts: opts}
	t.begin("collect")
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, err
	}
	prefix := ""
	if sys.Yocto.Image != "" {
		prefix = sys.Yocto.Image + "-"
	}
	pick := func(suffix string) (string, error) { return pickDeployed(deploy, prefix, machine, suffix) }

	found := false
	for _, ext := range []string{".wic.xz", ".wic.zst", ".wic.bz2", ".wic.gz", ".wic"} {
		src, err := pick(".rootfs" + ext)
		if err != nil {
			return nil, err
		}
		if src == "" {
			continue
		}
		found = true
		if ext == ".wic" {
			t.begin("compress image")
			if err := image.CompressXZ(ctx, src, d.CompressedImage(".xz"), runtime.NumCPU()); err != nil {
				return nil, fmt.Errorf("compress %s: %w", src, err)
			}
			t.begin("collect")
		} else if err := copyFile(src, d.CompressedImage(strings.TrimPrefix(ext, ".wic"))); err != nil {
			return nil, err
		}
		break
	}
	for _, b := range []struct{ suffix, dest string }{{".rootfs.rugixb", d.Bundle()}, {".raucb", d.RaucBundle()}} {
		src, err := pick(b.suffix)
		if err != nil {
			return nil, err
		}
		if src == "" {
			continue
		}
		found = true
		if err := copyFile(src, b.dest); err != nil {
			return nil, err
		}
		if b.dest == d.Bundle() {
			if err := writeBundleHash(b.dest); err != nil {
				return nil, err
			}
		}
	}
	if !found {
		img := prefix
		if img == "" {
			img = "*-"
		}
		return nil, fmt.Errorf("%s holds no %s%s.rootfs.wic[.xz|.bz2|.gz], .rootfs.rugixb or .raucb", deploy, img, machine)
	}
	// Written by meta-otabake's otabake-release class next to the image.
	if src, err := pick(".rootfs.sbom.spdx.json"); err != nil {
		return nil, err
	} else if src != "" {
		if err := copyFile(src, d.SBOM()); err != nil {
			return nil, err
		}
	}
	// The image's os-release and build info lie in the deploy directory under the names they
	// have in build/<system>/.
	for _, file := range []func(SystemDir) string{SystemDir.OSRelease, SystemDir.BuildInfo} {
		src := file(SystemDir{Dir: deploy})
		if _, err := os.Stat(src); err == nil {
			if err := copyFile(src, file(d)); err != nil {
				return nil, err
			}
		}
	}
	t.end()
	if err := checkBakedVersion(r.Dir, id.Version); err != nil {
		return nil, err
	}
	return r, listFiles(r)
}

// pickDeployed finds <image>-<machine><suffix> in a deploy directory (any image when prefix
// is empty, else prefix is "<image>-"). BitBake writes
// timestamped files plus an unversioned symlink to the newest; the symlink wins. Several
// candidates without a symlink is an error asking for the image name.
func pickDeployed(dir, prefix, machine, suffix string) (string, error) {
	// BitBake's link names are <image>-<machine><suffix> (IMAGE_LINK_NAME).
	pattern := filepath.Join(dir, "*"+globEscape("-"+machine+suffix))
	if prefix != "" {
		pattern = filepath.Join(dir, globEscape(prefix+machine+suffix))
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return "", err
	}
	var links, files []string
	for _, m := range matches {
		st, err := os.Lstat(m)
		if err != nil {
			continue
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			links = append(links, m)
		} else if st.Mode().IsRegular() {
			files = append(files, m)
		}
	}
	sort.Strings(links)
	sort.Strings(files)
	switch {
	case len(links) == 1:
		return links[0], nil
	case len(links) == 0 && len(files) == 1:
		return files[0], nil
	case len(links) == 0 && len(files) == 0:
		return "", nil
	}
	cands := append(links, files...)
	return "", fmt.Errorf("several images match %s (%s): set image in [systems.NAME.yocto]", pattern, strings.Join(cands, ", "))
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// copyFile copies src (following symlinks) to dest atomically, hard-linking when possible.
func copyFile(src, dest string) error {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	tmp := dest + ".link-tmp"
	os.Remove(tmp)
	if err := os.Link(real, tmp); err == nil {
		return os.Rename(tmp, dest)
	}
	f, err := os.Open(real)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = atomicfile.WriteFrom(dest, f, 0o644)
	return err
}

// listFiles fills in the files of the finished build directory, their sizes and the bundle
// hash its hash file holds.
func listFiles(r *BuildResult) error {
	ents, err := os.ReadDir(r.Dir)
	if err != nil {
		return err
	}
	r.Sizes = map[string]int64{}
	for _, e := range ents {
		if e.Type().IsRegular() {
			r.Files = append(r.Files, e.Name())
			if info, err := e.Info(); err == nil {
				r.Sizes[e.Name()] = info.Size()
			}
		}
	}
	if h, err := os.ReadFile(SystemDir{Dir: r.Dir}.BundleHash()); err == nil {
		r.BundleHash = strings.TrimSpace(string(h))
	}
	return nil
}

// runBuildTool runs a build tool in dir with its output on w and env (KEY=VALUE, replacing the
// process environment's values) added to its environment, and names it in errors.
func runBuildTool(ctx context.Context, dir string, w io.Writer, env []string, name string, args ...string) error {
	if w == nil {
		w = io.Discard
	}
	_, err := tool.Run(ctx, tool.Cmd{Path: name, Args: args, Dir: dir, Env: env, Stdout: w, Stderr: w})
	var te *tool.Error
	if errors.As(err, &te) && te.ExitCode >= 0 {
		return fmt.Errorf("%s %s failed with exit code %d", name, strings.Join(args, " "), te.ExitCode)
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	return nil
}
