package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/project"
	"github.com/otabake/otabake/internal/release"
)

func init() {
	register(prepareReleaseCommand, buildReleaseCommand, uploadReleaseCommand, promoteReleaseCommand, releaseCommand)
}

// loadProject loads the project configuration with the override flags the user set and logs
// its warnings (such as a deployment token skipped).
func loadProject(c *ucli.Context) (*project.Config, error) {
	cfg, err := project.Load(globals(c).ProjectDir, project.LoadOptions{Overrides: projectOverrides(c)})
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		globals(c).Log.Warn(w)
	}
	return cfg, nil
}

// hubFlags are the project override flags that say which Hub and package to use.
func hubFlags(extra ...ucli.Flag) []ucli.Flag {
	return append(projectOverrideFlags(project.KeyHubURL, project.KeyHubToken, project.KeyNexigonCLIConfig, project.KeyHubRepository, project.KeyHubPackage), extra...)
}

// warnUntracked says which untracked files a release does not contain.
func warnUntracked(c *ucli.Context, paths []string) {
	if w := release.UntrackedWarning(paths); w != "" {
		globals(c).Log.Warn(w)
	}
}

// openHub opens the project's Hub, telling the user when it waits for another process.
func openHub(c *ucli.Context, cfg *project.Config) (hub.Hub, io.Closer, string, error) {
	return release.OpenHub(c.Context, cfg, hubOptions(globals(c)))
}

// hubOptions tell the user, once, when the local Hub waits for another process.
func hubOptions(g *Globals) release.HubOptions {
	var once sync.Once
	return release.HubOptions{OnLockWait: func() {
		once.Do(func() { g.Log.Warn("waiting for the local Hub lock held by another otabake process") })
	}}
}

func prepareReleaseCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "prepare-release",
		Usage: "pin the release version, create it in the Hub and write .release-env",
		Description: "Makes VERSION = BUILD_TAG = build-<UTC %Y%m%d%H%M%S>-<git short sha> (the time comes from\n" +
			"SOURCE_DATE_EPOCH when set) and FLOATING_TAG = latest-build-<branch>, resolves\n" +
			"<repository>/<package>/<BUILD_TAG> in the Hub and reuses that version, or creates it with\n" +
			"the locked build tag, the floating tag and {\"imageVersion\": VERSION}. Then writes\n" +
			".release-env (BUILD_TAG, FLOATING_TAG, VERSION, VERSION_ID and RELEASE_EPOCH, the time\n" +
			"every build of the release writes) for the build and upload steps.\n" +
			"Running it twice with the same BUILD_TAG reuses the version.\n\n" +
			"With --print-vars it only prints BUILD_TAG=… and FLOATING_TAG=… as the templates'\n" +
			"scripts/build-vars.sh does, without a Hub and without writing anything.",
		Flags: append(projectOverrideFlags(),
			&ucli.BoolFlag{Name: "allow-dirty", Usage: "allow uncommitted changes in the work tree (the version then does not name the exact source)"},
			&ucli.BoolFlag{Name: "print-vars", Usage: "only print BUILD_TAG and FLOATING_TAG (as the templates' build-vars.sh); no Hub, no files"},
		),
		Action: func(c *ucli.Context) error {
			g := globals(c)
			cfg, err := loadProject(c)
			if err != nil {
				return err
			}
			if c.Bool("print-vars") {
				// The identity alone: a dirty tree does not matter for printing it.
				id, err := release.NewIdentity(c.Context, cfg.Dir, cfg, release.IdentityOptions{AllowDirty: true})
				if err != nil {
					return err
				}
				if g.JSON {
					return printJSON(g.Stdout, map[string]string{"BUILD_TAG": id.BuildTag, "FLOATING_TAG": id.FloatingTag})
				}
				fmt.Fprintf(g.Stdout, "BUILD_TAG=%s\nFLOATING_TAG=%s\n", id.BuildTag, id.FloatingTag)
				return nil
			}
			if err := release.RequirePackage(cfg); err != nil {
				return err
			}
			id, err := release.NewIdentity(c.Context, cfg.Dir, cfg, release.IdentityOptions{AllowDirty: c.Bool("allow-dirty")})
			if err != nil {
				return err
			}
			h, closer, desc, err := openHub(c, cfg)
			if err != nil {
				return err
			}
			defer closer.Close()
			res, err := release.Prepare(c.Context, h, cfg, id)
			if err != nil {
				return err
			}
			warnUntracked(c, res.Untracked)
			if g.JSON {
				return printJSON(g.Stdout, res)
			}
			verb := "created"
			switch {
			case res.OutcomeUnknown:
				verb = "created or reused (the Hub's answer to the create was lost)"
			case !res.Created:
				verb = "reused existing"
			}
			fmt.Fprintf(g.Stdout, "%s version %s (%s) in %s\n", verb, res.VersionPath, res.VersionID, desc)
			fmt.Fprintf(g.Stdout, "  VERSION      %s\n  FLOATING_TAG %s\nwrote %s\n", id.Version, id.FloatingTag, strings.Join(res.EnvFiles, ", "))
			return nil
		},
	}
}

// loadPinned loads the project and the identity pinned by prepare-release.
func loadPinned(c *ucli.Context) (*project.Config, *release.Identity, error) {
	cfg, err := loadProject(c)
	if err != nil {
		return nil, nil, err
	}
	id, _, err := release.ReadEnvFile(cfg.Dir)
	if err != nil {
		return nil, nil, err
	}
	return cfg, id, nil
}

func buildReleaseCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "build-release",
		Usage:     "build the artifacts of one or more systems with the version pinned in .release-env",
		ArgsUsage: "SYSTEM...",
		Description: "Produces build/<system>/ (system.img.xz, system.rugixb, system.rugixb-hash, sbom.spdx.json,\n" +
			"system-build-info.json) with the backend configured for each system:\n" +
			"  native  builds everything from the system's rootfs (a directory or a tarball): bakes\n" +
			"          the version into it, partitions the disk image for the target, encodes the\n" +
			"          update bundle from the same boot and system partitions, hashes and signs it,\n" +
			"          writes the SPDX SBOM, compresses the image and writes its bmap; reproducible:\n" +
			"          every time it writes is SOURCE_DATE_EPOCH when set, else the release's time\n" +
			"          pinned in .release-env (RELEASE_EPOCH, else the version's {time}), else the\n" +
			"          commit time, so building the same release twice gives the same bytes\n" +
			"  bakery  runs ./run-bakery bake image|bundle SYSTEM --release-version VERSION with\n" +
			"          SOURCE_DATE_EPOCH set to that time, then\n" +
			"          compresses system.img with xz on all cores and writes system.rugixb-hash\n" +
			"  yocto   collects *.wic[.xz|.bz2|.gz], *.rugixb, *.raucb and os-release from\n" +
			"          build/tmp/deploy/images/<machine> into build/<system>/",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "backend", Usage: "override the configured backend: native, bakery or yocto"},
			&ucli.StringFlag{Name: "image-compression", Value: "xz", Usage: "native backend: compress system.img with xz (parallel), zst, or none"},
		},
		Action: func(c *ucli.Context) error {
			g := globals(c)
			if c.NArg() == 0 {
				return usageError(c, "no system given")
			}
			cfg, id, err := loadPinned(c)
			if err != nil {
				return err
			}
			opts, stop := buildOptions(g)
			opts.Backend, opts.ImageCompression = c.String("backend"), c.String("image-compression")
			res, err := release.Build(c.Context, cfg, id, c.Args().Slice(), opts)
			stop()
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, map[string]any{"version": id.Version, "systems": res})
			}
			for _, r := range res {
				printBuildSummary(g.Stdout, r)
			}
			return nil
		},
	}
}

func uploadReleaseCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "upload-release",
		Usage: "upload build/<system>/ artifacts into the pinned Hub version with their metadata",
		Description: "For each build/<system>/ (or each --system), checks that the baked version\n" +
			"(system-build-info.json, else os-release IMAGE_VERSION) equals VERSION, then uploads and\n" +
			"attaches <system>.img.xz, <system>.rugixb (metadata rugix.bundleHash, relations.sbom,\n" +
			"version), <system>.rugixb-hash, <system>.spdx.json, <system>.build-info.json and\n" +
			"<system>.raucb. Uploads are content-addressed: re-running sends nothing new. A filename\n" +
			"already attached with other content is an error naming both digests.",
		Flags: hubFlags(
			&ucli.StringSliceFlag{Name: "system", Aliases: []string{"s"}, Usage: "upload only this system (repeatable)"},
		),
		Action: func(c *ucli.Context) error {
			g := globals(c)
			cfg, id, err := loadPinned(c)
			if err != nil {
				return err
			}
			h, closer, desc, err := openHub(c, cfg)
			if err != nil {
				return err
			}
			defer closer.Close()
			rep, err := upload(c, h, cfg, id, c.StringSlice("system"))
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, rep)
			}
			fmt.Fprintf(g.Stdout, "version %s (%s) in %s\n", rep.Version, rep.VersionID, desc)
			for _, s := range slices.Sorted(maps.Keys(rep.Names)) {
				n := rep.Names[s]
				fmt.Fprintf(g.Stdout, "  %s: published as %s.* after its %s, the name its devices look for\n", s, n.Name, n.Source)
			}
			for _, a := range rep.Artifacts {
				state := "unchanged"
				switch {
				case a.Uploaded:
					state = "uploaded"
				case a.Attached:
					state = "attached"
				}
				fmt.Fprintf(g.Stdout, "  %-10s %-40s %10s  %s\n", state, a.Filename, humanBytes(a.Size), a.Digest)
			}
			return nil
		},
	}
}

func promoteReleaseCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "promote-release",
		Usage: "move a floating tag (stable, beta, …) to a released version",
		Description: "Points --tag at the version named by --from (a tag or a pkg_v_ version ID; default:\n" +
			"BUILD_TAG from .release-env); --from-floating takes the version FLOATING_TAG of .release-env\n" +
			"points at now, like the templates' stabilize-release.sh. The Hub moves the tag atomically: devices following it see\n" +
			"either the old or the new version. Locked tags are refused, and so are incomplete versions:\n" +
			"every system of the project (and every system upload-release recorded in the version) needs\n" +
			"its bundle (<system>.rugixb or .raucb) with its bundle hash and all its uploaded files\n" +
			"attached and Available; the error names what is missing. A version whose upload is still\n" +
			"running is incomplete too. To promote although some systems are missing, name the systems\n" +
			"that go out with --partial (devices of the other systems then find no bundle in the tag):\n" +
			"  otabake promote-release --tag stable --partial efi,pi",
		Flags: hubFlags(
			&ucli.StringFlag{Name: "tag", Value: "", Usage: "the floating tag to move (default: the configured default tag, stable)"},
			&ucli.StringFlag{Name: "from", Usage: "the version to promote: a tag or a pkg_v_ ID (default: BUILD_TAG of .release-env)"},
			&ucli.BoolFlag{Name: "from-floating", Usage: "promote the version FLOATING_TAG of .release-env points at now (the latest build of the branch), as the templates' stabilize-release.sh does"},
			&ucli.StringSliceFlag{Name: "partial", Usage: "promote although other systems lack bundles: only these `SYSTEM`s (comma-separated or repeated) must be complete"},
		),
		Action: func(c *ucli.Context) error {
			g := globals(c)
			cfg, err := loadProject(c)
			if err != nil {
				return err
			}
			from := c.String("from")
			if c.Bool("from-floating") {
				if from != "" {
					return usageError(c, "--from and --from-floating exclude each other")
				}
				id, _, err := release.ReadEnvFile(cfg.Dir)
				if err != nil {
					return err
				}
				if id.FloatingTag == "" {
					return fmt.Errorf("--from-floating: FLOATING_TAG is empty in .release-env: run 'otabake prepare-release' again")
				}
				from = id.FloatingTag
			}
			if from == "" {
				id, _, err := release.ReadEnvFile(cfg.Dir)
				if err != nil {
					return fmt.Errorf("%w (or name the version with --from)", err)
				}
				from = id.BuildTag
			}
			tag := c.String("tag")
			if tag == "" {
				tag = cfg.Hub.DefaultTag
			}
			h, closer, _, err := openHub(c, cfg)
			if err != nil {
				return err
			}
			defer closer.Close()
			var partial []string
			for _, p := range c.StringSlice("partial") {
				for _, s := range strings.Split(p, ",") {
					if s = strings.TrimSpace(s); s != "" {
						partial = append(partial, s)
					}
				}
			}
			if c.IsSet("partial") && len(partial) == 0 {
				return usageError(c, "--partial needs the systems to promote")
			}
			res, err := release.Promote(c.Context, h, cfg, tag, from, release.PromoteOptions{Partial: partial})
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, res)
			}
			if len(res.Excluded) > 0 {
				g.Log.Warn(fmt.Sprintf("partial promotion: devices of %s following %s find no bundle for them", strings.Join(res.Excluded, ", "), res.Tag))
			}
			if !res.Moved {
				fmt.Fprintf(g.Stdout, "%s already points at %s (%s)\n", res.Tag, res.From, res.VersionID)
				return nil
			}
			fmt.Fprintf(g.Stdout, "%s now points at %s (%s)\n", res.Tag, res.From, res.VersionID)
			return nil
		},
	}
}

// buildOptions reports each build stage — as a spinner with the elapsed time on a terminal,
// else as a log line — and passes build tools' output to stderr unless the output is JSON.
// The returned func stops the spinner.
func buildOptions(g *Globals) (release.BuildOptions, func()) {
	if g.JSON {
		return release.BuildOptions{Output: io.Discard, AgentVersion: Version}, func() {}
	}
	if !g.Progress {
		return release.BuildOptions{Output: g.Stderr, AgentVersion: Version, Stage: func(system, stage string) { g.Log.Info(system + ": " + stage) }}, func() {}
	}
	var bar *progressbar.ProgressBar
	stop := func() {
		if bar != nil {
			_ = bar.Finish()
			fmt.Fprintln(g.Stderr)
			bar = nil
		}
	}
	return release.BuildOptions{Output: g.Stderr, AgentVersion: Version, Stage: func(system, stage string) {
		stop()
		bar = progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(g.Stderr),
			progressbar.OptionSetDescription(system+": "+stage),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
		go func(b *progressbar.ProgressBar) {
			for !b.IsFinished() {
				_ = b.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
		}(bar)
	}}, stop
}

// upload runs release.Upload with a progress bar per file on a terminal.
func upload(c *ucli.Context, h hub.Hub, cfg *project.Config, id *release.Identity, systems []string) (*release.UploadReport, error) {
	bars := newBars(globals(c))
	defer bars.finish()
	return release.Upload(c.Context, h, cfg, id, release.UploadOptions{Systems: systems, Progress: bars.update})
}

// bars draws one progress bar per uploaded file on a terminal.
type bars struct {
	g    *Globals
	mu   sync.Mutex
	cur  *release.Artifact
	bar  *progressbar.ProgressBar
	last time.Time
}

func newBars(g *Globals) *bars { return &bars{g: g} }

func (b *bars) update(a *release.Artifact, done, total int64) {
	if !b.g.Progress {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur != a {
		b.finishLocked()
		b.cur = a
		b.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(b.g.Stderr),
			progressbar.OptionSetDescription(a.Filename),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	_ = b.bar.Set64(done)
}

func (b *bars) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked()
}

func (b *bars) finishLocked() {
	if b.bar != nil {
		_ = b.bar.Finish()
		b.bar = nil
	}
}

// humanBytes formats a size with binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func releaseCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "release",
		Usage:     "prepare, build and upload in one go (the whole pipeline, for laptops and demos)",
		ArgsUsage: "[SYSTEM...]",
		Description: "Runs prepare-release, build-release for the given systems (default: every configured\n" +
			"system) and upload-release, then lists the Hub. With the embedded local Hub, the\n" +
			"configured repository and package are created first if they do not exist yet.\n" +
			"In CI, run the three steps separately so that builds can run in parallel jobs.",
		Flags: append(projectOverrideFlags(),
			&ucli.BoolFlag{Name: "allow-dirty", Usage: "allow uncommitted changes in the work tree"},
			&ucli.StringFlag{Name: "promote", Usage: "finally move this floating tag (e.g. stable) to the new version"},
		),
		Action: func(c *ucli.Context) error {
			g := globals(c)
			cfg, err := loadProject(c)
			if err != nil {
				return err
			}
			opts, stop := buildOptions(g)
			bars := newBars(g)
			res, err := release.Run(c.Context, cfg, release.RunOptions{
				Systems:    c.Args().Slice(),
				AllowDirty: c.Bool("allow-dirty"),
				Promote:    c.String("promote"),
				Hub:        hubOptions(g),
				Build:      opts,
				Upload:     release.UploadOptions{Progress: bars.update},
				Prepared: func(prep *release.PrepareResult, desc string) {
					warnUntracked(c, prep.Untracked)
					g.Log.Info(fmt.Sprintf("prepared %s (%s) in %s", prep.VersionPath, prep.VersionID, desc))
				},
				Built: func([]*release.BuildResult) { stop() },
			})
			stop()
			bars.finish()
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, map[string]any{"prepare": res.Prepare, "build": res.Build, "upload": res.Upload, "promote": res.Promote})
			}
			fmt.Fprintf(g.Stdout, "released %s (%s): %d artifacts of %s\n", res.Identity.Version, res.Prepare.VersionID, len(res.Upload.Artifacts), strings.Join(res.Systems, ", "))
			if res.Promote != nil {
				fmt.Fprintf(g.Stdout, "%s now points at %s\n", res.Promote.Tag, res.Identity.Version)
			}
			if res.LocalHub != nil {
				fmt.Fprintln(g.Stdout)
				return printTree(g.Stdout, res.LocalHub.Dir, res.LocalHub.Tree)
			}
			return nil
		},
	}
}

// printBuildSummary prints one screen about a built system: files with sizes, the bundle hash
// and the time each stage took.
func printBuildSummary(w io.Writer, r *release.BuildResult) {
	fmt.Fprintf(w, "%s (%s backend) -> %s\n", r.System, r.Backend, r.Dir)
	for _, f := range r.Files {
		size := ""
		if n, ok := r.Sizes[f]; ok {
			size = humanBytes(n)
		}
		fmt.Fprintf(w, "  %-24s %10s\n", f, size)
	}
	if r.BundleHash != "" {
		fmt.Fprintf(w, "  bundle hash  %s\n", r.BundleHash)
	}
	if r.BuildTime != nil {
		fmt.Fprintf(w, "  build time   %s\n", r.BuildTime)
	}
	if len(r.Stages) > 0 {
		parts := make([]string, len(r.Stages))
		for i, st := range r.Stages {
			parts[i] = fmt.Sprintf("%s %.2fs", st.Name, st.Seconds)
		}
		fmt.Fprintf(w, "  stages       %s\n", strings.Join(parts, ", "))
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
}
