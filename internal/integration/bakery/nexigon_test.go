package bakery

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// What nexigon-rugix's recipes install into the system root, read from their steps
// (github.com/nexigon/nexigon-rugix, branch v0.2 and main alike):
// recipes/nexigon-rugix-ota/steps/01-install.sh installs /usr/bin/nexigon-rugix-ota, its
// service and timer into /lib/systemd/system, writes /etc/nexigon-rugix-ota.json, installs
// cmds/nexigon.ota.check.toml into /etc/nexigon/agent/commands and runs `systemctl enable
// nexigon-rugix-ota.timer` (a link in timers.target.wants); the recipe depends on
// nexigon-rugix-watchdog, whose 01-install.sh installs /usr/libexec/nexigon/nexigon-rugix-watchdog
// and its service and timer and enables the timer. Neither recipe.toml sets a priority.
var nexigonRugixFiles = map[string][]string{
	"nexigon-rugix-ota": {
		"usr/bin/nexigon-rugix-ota",
		"lib/systemd/system/nexigon-rugix-ota.service",
		"lib/systemd/system/nexigon-rugix-ota.timer",
		"etc/nexigon-rugix-ota.json",
		"etc/nexigon/agent/commands/nexigon.ota.check.toml",
		"etc/systemd/system/timers.target.wants/nexigon-rugix-ota.timer -> /lib/systemd/system/nexigon-rugix-ota.timer",
	},
	"nexigon-rugix-watchdog": {
		"usr/libexec/nexigon/nexigon-rugix-watchdog",
		"lib/systemd/system/nexigon-rugix-watchdog.service",
		"lib/systemd/system/nexigon-rugix-watchdog.timer",
		"etc/systemd/system/timers.target.wants/nexigon-rugix-watchdog.timer -> /lib/systemd/system/nexigon-rugix-watchdog.timer",
	},
}

// clashFix is the sentence of the recipes' error that names the fix; README.md quotes it.
const clashFix = `Remove "nexigon/nexigon-rugix-ota" and "nexigon/nexigon-rugix-watchdog" from the layer's recipes (and its parent layers'): otabake-ota and otabake-watchdog replace them`

// installNexigonRugix lays into the scratch root what one of nexigon-rugix's recipes installs,
// as an image built from Debian bookworm has it: /lib is a link to usr/lib (merged /usr), so
// the units land in /usr/lib/systemd/system; enabled timers are absolute links that dangle
// outside the chroot. With mergedUsr false, /lib is a directory of its own.
func installNexigonRugix(t *testing.T, b *bakery, recipe string, mergedUsr bool) {
	t.Helper()
	if mergedUsr {
		if err := os.MkdirAll(b.path("usr/lib"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(b.path("lib")); err != nil {
			if err := os.Symlink("usr/lib", b.path("lib")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range nexigonRugixFiles[recipe] {
		name, target, link := strings.Cut(f, " -> ")
		p := b.path(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if link {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte("# installed by "+recipe+"\n"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestNexigonRugixClash: in a layer that also runs nexigon-rugix's OTA service or watchdog
// (or is built on one that did), otabake-ota and otabake-watchdog stop before they install
// anything, with the error README.md documents. Each case lays only the files one recipe
// installs, so every probe the steps make is exercised by some case. Bakery runs the otabake
// recipes after nexigon-rugix's (TestRecipesRunAfterNexigonRugix); what is not covered: a
// nexigon-rugix recipe in a child layer built on top of otabake's recipes, whose files appear
// only after otabake's steps ran.
func TestNexigonRugixClash(t *testing.T) {
	cases := []struct {
		name      string
		installed []string // nexigon-rugix recipes in the root
		mergedUsr bool
		only      string // one file of the recipe kept, the others removed
	}{
		{"ota and watchdog, merged usr", []string{"nexigon-rugix-ota", "nexigon-rugix-watchdog"}, true, ""},
		{"ota and watchdog, split usr", []string{"nexigon-rugix-ota", "nexigon-rugix-watchdog"}, false, ""},
		{"watchdog only", []string{"nexigon-rugix-watchdog"}, true, ""},
	}
	// One case per probed file: a root where only that file of a recipe remains.
	for recipe, files := range nexigonRugixFiles {
		for _, f := range files {
			name, _, _ := strings.Cut(f, " -> ")
			if strings.HasSuffix(name, ".service") || strings.HasSuffix(name, "nexigon.ota.check.toml") {
				continue // not probed: otabake installs a nexigon.ota.check.toml of its own
			}
			cases = append(cases, struct {
				name      string
				installed []string
				mergedUsr bool
				only      string
			}{"only " + name, []string{recipe}, false, name})
		}
	}
	for _, tc := range cases {
		for _, ours := range []string{"otabake-ota", "otabake-watchdog"} {
			t.Run(tc.name+"/"+ours, func(t *testing.T) {
				b := newBakery(t, "amd64")
				b.writeProject(".env", []byte("NEXIGON_REPOSITORY=fleet\nNEXIGON_PACKAGE=gateway-os\n"), 0o600)
				for _, r := range tc.installed {
					installNexigonRugix(t, b, r, tc.mergedUsr)
				}
				if tc.only != "" {
					for _, f := range nexigonRugixFiles[tc.installed[0]] {
						name, _, _ := strings.Cut(f, " -> ")
						if name != tc.only {
							if err := os.Remove(b.path(name)); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				out, err := b.run(ours, nil)
				if err == nil {
					t.Fatalf("%s succeeded next to %v, want it to stop\n%s", ours, tc.installed, out)
				}
				wantRecipe := tc.installed[0]
				if !strings.Contains(out, ours+" recipe: nexigon-rugix's "+wantRecipe+" recipe is in this system (found /") {
					t.Errorf("output does not name %s and the file found:\n%s", wantRecipe, out)
				}
				if !strings.Contains(out, clashFix) {
					t.Errorf("output:\n%s\nwant it to contain %q", out, clashFix)
				}
				// Early: nothing of otabake's is in the root.
				for _, p := range []string{"usr/lib/systemd/system/otabake-agent.timer", "usr/lib/systemd/system/otabake-agent-watchdog.timer", "etc/otabake/ota.json"} {
					if _, err := os.Lstat(b.path(p)); err == nil {
						t.Errorf("%s installed although the recipe stopped", p)
					}
				}
			})
		}
	}

	// Without nexigon-rugix's files both recipes run: the probes do not fire on otabake's own
	// files or on a Debian root's usual content.
	b := newBakery(t, "amd64")
	b.writeProject(".env", []byte("NEXIGON_REPOSITORY=fleet\nNEXIGON_PACKAGE=gateway-os\n"), 0o600)
	for _, d := range []string{"usr/lib/systemd/system", "usr/libexec", "usr/bin", "etc/systemd/system/timers.target.wants"} {
		if err := os.MkdirAll(b.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/lib", b.path("lib")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"otabake-watchdog", "otabake-ota", "otabake-watchdog", "otabake-ota"} { // twice: a rebuild
		if out, err := b.run(r, nil); err != nil {
			t.Fatalf("%s without nexigon-rugix: %v\n%s", r, err, out)
		}
	}
}

// TestRecipesRunAfterNexigonRugix: Bakery runs a layer's recipes by descending priority
// (silitics/rugix crates/apps/rugix-bakery/src/oven/customize.rs, recipe_schedule; equal
// priorities in a hash set's order). nexigon-rugix's recipes set none (0), so otabake's
// recipes that look for them must have a negative one to run after them.
func TestRecipesRunAfterNexigonRugix(t *testing.T) {
	for _, r := range []string{"otabake-ota", "otabake-watchdog"} {
		if p := loadRecipe(t, r).Priority; p >= 0 {
			t.Errorf("recipe %s: priority %d, want < 0 (after nexigon-rugix-ota and nexigon-rugix-watchdog)", r, p)
		}
	}
}

// TestClashDocumented: README.md quotes the recipes' fix and has the migration subsection.
func TestClashDocumented(t *testing.T) {
	data, err := os.ReadFile(repoPath(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(data)), " ")
	for _, want := range []string{"Coming from nexigon-rugix-ota", clashFix} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not contain %q", want)
		}
	}
	for _, r := range []string{"otabake-ota", "otabake-watchdog"} {
		step, err := os.ReadFile(repoPath(t, "recipes", r, "steps", "00-install.sh"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(step), `README.md, \"Coming from nexigon-rugix-ota\"`) {
			t.Errorf("recipe %s: the error does not point at README.md's subsection", r)
		}
	}
}

// TestNoRepositoryPins: otabake's rugix-repository.toml declares no repositories. Bakery
// identifies a Git repository by its URL alone and stops with "incompatible repository
// sources" when two declarations of one URL differ in anything else (branch, tag, rev)
// (silitics/rugix crates/apps/rugix-bakery/src/project/repositories.rs, load_source and
// compute_source_id), so any pin here could clash with the user's project. Without
// declarations, a "repo/recipe" name in this repository could not resolve (library.rs, lookup:
// through the naming repository's own declarations), so recipes may only name their own
// recipes and core's; and the repository has no layers (they would need nexigon/… recipes).
func TestNoRepositoryPins(t *testing.T) {
	var repo map[string]any
	if _, err := toml.DecodeFile(repoPath(t, "rugix-repository.toml"), &repo); err != nil {
		t.Fatal(err)
	}
	if deps, ok := repo["repositories"]; ok {
		t.Errorf("rugix-repository.toml declares repositories %v: a pin clashes with the user's own (incompatible repository sources)", deps)
	}
	if repo["name"] != thisRepo {
		t.Errorf("rugix-repository.toml name = %v, want %s", repo["name"], thisRepo)
	}
	for _, r := range wantRecipes {
		for _, d := range loadRecipe(t, r).Dependencies {
			if repo, _, ok := strings.Cut(d, "/"); ok && repo != "core" {
				t.Errorf("recipe %s depends on %s: this repository declares no repository %s", r, d, repo)
			}
		}
	}
	if layers, _ := filepath.Glob(repoPath(t, "layers", "*.toml")); len(layers) > 0 {
		t.Errorf("layers in otabake's repository: %v; they could name only core and otabake recipes (keep example layers in %s)", layers, exampleProject)
	}
}

// TestExampleProject: the example project declares every repository its layers name, pins
// nexigon-rugix and rugix-extra as nexigon-rugix-template's rugix-bakery.toml does, and its
// systems get networking and time synchronisation from rugix-extra as the template's
// layers/customized.toml does, and Nexigon Agent, without nexigon-rugix's OTA recipes.
func TestExampleProject(t *testing.T) {
	var project struct {
		Repositories map[string]map[string]any `toml:"repositories"`
		Systems      map[string]struct {
			Layer string `toml:"layer"`
		} `toml:"systems"`
	}
	if _, err := toml.DecodeFile(examplePath(t, "rugix-bakery.toml"), &project); err != nil {
		t.Fatal(err)
	}
	wantRepos := map[string][2]string{
		"otabake":     {"https://github.com/otabake/otabake.git", "main"},
		"nexigon":     {"https://github.com/nexigon/nexigon-rugix.git", "v0.2"},
		"rugix-extra": {"https://github.com/silitics/rugix-extra.git", "v0.8"},
	}
	for name, want := range wantRepos {
		got := project.Repositories[name]
		if got["git"] != want[0] || got["branch"] != want[1] {
			t.Errorf("repository %s = %v, want git %s branch %s", name, got, want[0], want[1])
		}
	}
	if len(project.Systems) == 0 {
		t.Fatal("no systems in the example project")
	}
	for sys, s := range project.Systems {
		var recipes []string
		for _, l := range layerChain(t, s.Layer) {
			lc := loadLayer(t, l)
			recipes = append(recipes, lc.Recipes...)
			for _, r := range lc.Recipes {
				if repo, _, ok := strings.Cut(r, "/"); ok && repo != "core" && project.Repositories[repo] == nil {
					t.Errorf("system %s: layer %s names %s, but the project declares no repository %s", sys, l, r, repo)
				}
			}
		}
		for _, want := range []string{
			"rugix-extra/debian-setup-network",
			"rugix-extra/debian-setup-timesyncd",
			"nexigon/nexigon-agent",
			"nexigon/nexigon-agent-config",
			"otabake/otabake-ota",
		} {
			if !slices.Contains(recipes, want) {
				t.Errorf("system %s (layer %s): no recipe %s", sys, s.Layer, want)
			}
		}
		for _, bad := range []string{"nexigon/nexigon-rugix-ota", "nexigon/nexigon-rugix-watchdog", "core/rugpi-auto-commit"} {
			if slices.Contains(recipes, bad) {
				t.Errorf("system %s (layer %s): recipe %s, which otabake replaces", sys, s.Layer, bad)
			}
		}
	}
}
