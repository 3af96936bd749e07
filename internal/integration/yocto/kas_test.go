package yocto

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/otabake/otabake/internal/testkit"
)

// kasRepo is one entry of a kas configuration's repos.
type kasRepo struct {
	URL    string                 `yaml:"url"`
	Branch string                 `yaml:"branch"`
	Layers map[string]interface{} `yaml:"layers"`
}

// kasConfig is the part of a kas project configuration the examples must get right.
type kasConfig struct {
	Header struct {
		Version  int      `yaml:"version"`
		Includes []string `yaml:"includes"`
	} `yaml:"header"`
	Machine  string            `yaml:"machine"`
	Distro   string            `yaml:"distro"`
	Target   []string          `yaml:"target"`
	Env      map[string]string `yaml:"env"`
	Defaults struct {
		Repos struct {
			Branch string `yaml:"branch"`
		} `yaml:"repos"`
	} `yaml:"defaults"`
	Repos              map[string]*kasRepo `yaml:"repos"`
	LocalConfHeader    map[string]string   `yaml:"local_conf_header"`
	BBLayersConfHeader map[string]string   `yaml:"bblayers_conf_header"`
}

// loadKas reads a kas file and merges its includes (paths relative to the repository root,
// as kas resolves includes within one repository) under it, as kas does: the including
// file's keys win.
func loadKas(t *testing.T, path string) kasConfig {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var k kasConfig
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("%s: not YAML: %v", path, err)
	}
	for _, inc := range k.Header.Includes {
		sub := loadKas(t, filepath.Join(testkit.RepoRoot(t), inc))
		if k.Machine == "" {
			k.Machine = sub.Machine
		}
		if k.Distro == "" {
			k.Distro = sub.Distro
		}
		if len(k.Target) == 0 {
			k.Target = sub.Target
		}
		if k.Defaults.Repos.Branch == "" {
			k.Defaults.Repos.Branch = sub.Defaults.Repos.Branch
		}
		k.Env = mergeMap(sub.Env, k.Env)
		k.LocalConfHeader = mergeMap(sub.LocalConfHeader, k.LocalConfHeader)
		k.BBLayersConfHeader = mergeMap(sub.BBLayersConfHeader, k.BBLayersConfHeader)
		k.Repos = mergeMap(sub.Repos, k.Repos)
	}
	return k
}

func mergeMap[V any](base, over map[string]V) map[string]V {
	out := map[string]V{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// What the examples must match, per series, as read from the upstream repositories
// (openembedded-core meta/conf/sanity.conf BB_MIN_VERSION; meta-rugix and meta-nexigon
// conf/layer.conf on each branch). CI cannot clone them; the real-BitBake check that backs
// these facts is in bitbake/meta-otabake/README.md.
var kasSeries = map[string]struct {
	// coreRepo holds the meta layer: poky up to scarthgap, openembedded-core after.
	coreRepo string
	// bitbake is the BitBake branch the series needs ("" when poky brings it).
	bitbake string
}{
	"scarthgap": {coreRepo: "poky"},
	"wrynose":   {coreRepo: "openembedded-core", bitbake: "2.18"},
}

// metaNexigonCompat is LAYERSERIES_COMPAT of meta-nexigon's main branch (meta-nexigon-core
// and meta-nexigon-rugix conf/layer.conf); its collections are meta-nexigon-core and
// meta-nexigon-rugix.
const metaNexigonCompat = "scarthgap"

// TestKasExamples checks every kas file under bitbake/kas: one per series the layer declares,
// each with the core repository and BitBake of its series, meta-openembedded (meta-oe, which
// meta-rugix-core depends on), meta-rugix on the series' branch, meta-nexigon with the Nexigon
// agent installed, this layer, the class and the agent, and every variable the layer needs.
func TestKasExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testkit.RepoRoot(t), "bitbake", "kas", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no kas configuration under bitbake/kas: %v", err)
	}
	layerConf := parseFile(t, filepath.Join(layerDir(t), "conf", "layer.conf"))
	compat := strings.Fields(strings.Join(layerConf.Values("LAYERSERIES_COMPAT_otabake"), " "))
	agent := parseFile(t, filepath.Join(layerDir(t), "recipes-otabake", "otabake", "otabake-agent_git.bb"))
	agentVars := map[string]bool{}
	for _, a := range agent.Assignments {
		agentVars[a.Name] = true
	}
	covered := map[string]string{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			k := loadKas(t, f)
			if k.Header.Version < 14 || k.Machine == "" || len(k.Target) == 0 || k.Distro == "" {
				t.Errorf("header.version %d, machine %q, distro %q, target %v: want a complete kas configuration (version >= 14)", k.Header.Version, k.Machine, k.Distro, k.Target)
			}
			series := k.Defaults.Repos.Branch
			want, ok := kasSeries[series]
			if !ok {
				t.Fatalf("defaults.repos.branch = %q: want one of the series the layer declares (%v)", series, compat)
			}
			if !strings.Contains(" "+strings.Join(compat, " ")+" ", " "+series+" ") {
				t.Errorf("an example for %s, which LAYERSERIES_COMPAT_otabake (%v) does not declare", series, compat)
			}
			if prev, dup := covered[series]; dup {
				t.Errorf("%s is covered by %s already", series, prev)
			}
			covered[series] = filepath.Base(f)
			branch := func(r *kasRepo) string {
				if r.Branch != "" {
					return r.Branch
				}
				return series
			}
			repo := func(name string, layers ...string) *kasRepo {
				r := k.Repos[name]
				if r == nil {
					t.Errorf("repos: lacks %s", name)
					return &kasRepo{}
				}
				for _, l := range layers {
					if _, ok := r.Layers[l]; !ok {
						t.Errorf("repos.%s.layers lacks %s", name, l)
					}
				}
				return r
			}
			if r := repo(want.coreRepo, "meta"); branch(r) != series {
				t.Errorf("repos.%s is on %s, want %s", want.coreRepo, branch(r), series)
			}
			if want.bitbake != "" {
				if r := repo("bitbake"); branch(r) != want.bitbake {
					t.Errorf("repos.bitbake is on %s; openembedded-core %s needs BitBake %s", branch(r), series, want.bitbake)
				}
			}
			if r := repo("meta-openembedded", "meta-oe"); branch(r) != series {
				t.Errorf("repos.meta-openembedded is on %s, want %s", branch(r), series)
			}
			if r := repo("meta-rugix", "meta-rugix-core"); branch(r) != series {
				t.Errorf("repos.meta-rugix is on %s: meta-rugix has a branch per series (main follows the newest), want %s", branch(r), series)
			}
			nexigon := repo("meta-nexigon", "meta-nexigon-core")
			if branch(nexigon) != "main" {
				t.Errorf("repos.meta-nexigon is on %s, want main (the only branch with meta-nexigon-rugix)", branch(nexigon))
			}
			if !strings.Contains(" "+metaNexigonCompat+" ", " "+series+" ") {
				bbl := strings.Join(sortedValues(k.BBLayersConfHeader), "\n")
				for l := range nexigon.Layers {
					if !strings.Contains(bbl, "LAYERSERIES_COMPAT_"+l+":append = \" "+series+"\"") {
						t.Errorf("bblayers_conf_header does not add %s to LAYERSERIES_COMPAT_%s: BitBake refuses meta-nexigon (compatible with %s only)", series, l, metaNexigonCompat)
					}
				}
			}
			self := repo("otabake", "bitbake/meta-otabake")
			if self.URL != "" {
				t.Error("repos.otabake has a url: want the repository holding this file")
			}
			for layer := range self.Layers {
				if _, err := os.Stat(filepath.Join(testkit.RepoRoot(t), layer, "conf", "layer.conf")); err != nil {
					t.Errorf("repos.otabake.layers: %s: %v", layer, err)
				}
			}

			for _, name := range []string{"IMAGE_ID", "IMAGE_VERSION", "NEXIGON_OTA_REPOSITORY", "NEXIGON_OTA_PACKAGE", "NEXIGON_HUB_URL", "NEXIGON_TOKEN"} {
				if _, ok := k.Env[name]; !ok {
					t.Errorf("env: lacks %s (kas passes env: variables into BitBake)", name)
				}
			}
			conf := strings.Join(sortedValues(k.LocalConfHeader), "\n")
			for name, v := range k.LocalConfHeader {
				if _, err := Parse(f+":local_conf_header."+name, []byte(v)); err != nil {
					t.Errorf("local_conf_header.%s: %v", name, err)
				}
			}
			for _, want := range []string{`IMAGE_CLASSES += "otabake-release"`, " otabake-agent", " nexigon-agent ", "nexigon-agent-conf", "rugixb", `DISTRO_FEATURES:append = " rugix"`} {
				if !strings.Contains(conf, want) {
					t.Errorf("local_conf_header lacks %q", want)
				}
			}
			for _, clash := range []string{"nexigon-rugix-ota", "nexigon-rugix-watchdog"} {
				if regexp.MustCompile(`IMAGE_INSTALL\S*\s*\S?=\s*"[^"]*\b` + clash + `\b`).MatchString(conf) {
					t.Errorf("local_conf_header installs %s, which otabake-agent RCONFLICTS with", clash)
				}
			}
			// Every NEXIGON_OTA_* the example sets is one the agent recipe reads: a typo would
			// silently fall back to the default.
			for _, m := range regexp.MustCompile(`(?m)^\s*(NEXIGON_OTA_[A-Z_]+)\s*[?:+]*=`).FindAllStringSubmatch(conf, -1) {
				if !agentVars[m[1]] {
					t.Errorf("local_conf_header sets %s, which otabake-agent does not read", m[1])
				}
			}
		})
	}
	for _, s := range compat {
		if covered[s] == "" {
			t.Errorf("no kas example for %s, which LAYERSERIES_COMPAT_otabake declares", s)
		}
	}
}

func sortedValues(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}
