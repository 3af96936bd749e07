package yocto

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// kasConfig is the part of a kas project configuration the example must get right.
type kasConfig struct {
	Header struct {
		Version int `yaml:"version"`
	} `yaml:"header"`
	Machine string            `yaml:"machine"`
	Target  []string          `yaml:"target"`
	Env     map[string]string `yaml:"env"`
	Repos   map[string]*struct {
		URL    string                 `yaml:"url"`
		Layers map[string]interface{} `yaml:"layers"`
	} `yaml:"repos"`
	LocalConfHeader map[string]string `yaml:"local_conf_header"`
}

// TestKasExample parses every kas file under bitbake/kas and checks that it uses this
// layer, the class and the agent, and passes through every variable the layer requires.
func TestKasExample(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "bitbake", "kas", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no kas configuration under bitbake/kas: %v", err)
	}
	recipe := parseFile(t, filepath.Join(layerDir, "recipes-otabake", "otabake", "otabake-agent_git.bb"))
	validate, _ := recipe.Function("do_validate_otabake")
	required := map[string]bool{"IMAGE_ID": true, "IMAGE_VERSION": true}
	for _, v := range regexp.MustCompile(`NEXIGON_OTA_[A-Z_]+`).FindAllString(validate.Body, -1) {
		required[v] = true
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var k kasConfig
			if err := yaml.Unmarshal(data, &k); err != nil {
				t.Fatalf("not YAML: %v", err)
			}
			if k.Header.Version < 14 || k.Machine == "" || len(k.Target) == 0 {
				t.Errorf("header.version %d, machine %q, target %v: want a complete kas configuration (version >= 14)", k.Header.Version, k.Machine, k.Target)
			}
			var names []string
			for name := range required {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				if _, ok := k.Env[name]; !ok {
					t.Errorf("env: lacks %s, which the layer requires (kas passes env: variables into BitBake)", name)
				}
			}
			self, ok := k.Repos["otabake"]
			if !ok || self == nil || self.URL != "" {
				t.Fatal("repos: want an \"otabake\" entry without url (the repository holding this file)")
			}
			for layer := range self.Layers {
				if _, err := os.Stat(filepath.Join(repoRoot, layer, "conf", "layer.conf")); err != nil {
					t.Errorf("repos.otabake.layers: %s: %v", layer, err)
				}
			}
			if _, ok := self.Layers["bitbake/meta-otabake"]; !ok {
				t.Error("repos.otabake.layers lacks bitbake/meta-otabake")
			}
			var conf strings.Builder
			for _, v := range k.LocalConfHeader {
				conf.WriteString(v)
			}
			for name, v := range k.LocalConfHeader {
				if _, err := Parse(f+":local_conf_header."+name, []byte(v)); err != nil {
					t.Errorf("local_conf_header.%s: %v", name, err)
				}
			}
			for _, want := range []string{"otabake-release", "otabake-agent", "rugixb"} {
				if !strings.Contains(conf.String(), want) {
					t.Errorf("local_conf_header does not mention %s", want)
				}
			}
		})
	}
}
