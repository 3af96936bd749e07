package bakery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/otabake/otabake/internal/testkit"
)

// repoPath joins elem to the module root, which is also the Rugix Bakery repository's root.
func repoPath(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{testkit.RepoRoot(t)}, elem...)...)
}

// Upstream schema files in schemas/upstream/.
const (
	schemaRecipe     = "rugix-bakery-recipe.schema.json"
	schemaLayer      = "rugix-bakery-layer.schema.json"
	schemaProject    = "rugix-bakery-project.schema.json"
	schemaRepository = "rugix-bakery-repository.schema.json"
	schemaState      = "rugix-ctrl-state.schema.json"
)

var (
	upstreamMu      sync.Mutex
	upstreamSchemas = map[string]*jsonschema.Schema{}
)

// upstreamSchema compiles one of the verbatim upstream schemas. Rugix's generator gives every
// $defs entry its own relative $id while the $refs inside those entries point at the root
// document (#/$defs/...); draft 2020-12 resolves such a $ref against the entry, where it does
// not exist. The nested $ids are therefore dropped in memory before compiling.
func upstreamSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	upstreamMu.Lock()
	defer upstreamMu.Unlock()
	if s, ok := upstreamSchemas[name]; ok {
		return s
	}
	path := repoPath(t, "schemas", "upstream", name)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	root, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("%s: not a JSON object", path)
	}
	if defs, ok := root["$defs"].(map[string]any); ok {
		for _, d := range defs {
			if m, ok := d.(map[string]any); ok {
				delete(m, "$id")
			}
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := "file://" + filepath.ToSlash(path)
	if err := c.AddResource(url, doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	upstreamSchemas[name] = s
	return s
}

// tomlAsJSON decodes a TOML document into the value a JSON Schema validator sees, as
// taplo/Even Better TOML do for #:schema comments.
func tomlAsJSON(data []byte) (any, error) {
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		return nil, err
	}
	j, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(j))
}

func validateTOMLFile(t *testing.T, schema, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := tomlAsJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := upstreamSchema(t, schema).Validate(doc); err != nil {
		t.Errorf("%s does not validate against %s:\n%v", rel(t, path), schema, err)
	}
}

func rel(t testing.TB, path string) string {
	t.Helper()
	if r, err := filepath.Rel(testkit.RepoRoot(t), path); err == nil {
		return r
	}
	return path
}

func glob(t *testing.T, pattern ...string) []string {
	t.Helper()
	m, err := filepath.Glob(repoPath(t, pattern...))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// The recipes of this repository and the layers of the example project. Tests fail rather
// than silently check nothing when one disappears.
var (
	wantRecipes = []string{"otabake-agent", "otabake-ota", "otabake-watchdog"}
	wantLayers  = []string{"device", "device-efi", "device-pi"}
)

// exampleProject is the example Bakery project: its layers use otabake's recipes as
// "otabake/<recipe>" and the repositories its rugix-bakery.toml declares. otabake's repository
// has no layers of its own (see rugix-repository.toml for why).
const exampleProject = "examples/bakery"

func examplePath(t testing.TB, elem ...string) string {
	t.Helper()
	return repoPath(t, append([]string{exampleProject}, elem...)...)
}

// thisRepo is the name the example project gives otabake's repository.
const thisRepo = "otabake"

// localRecipe maps a recipe name in a layer of the example project to this repository's
// recipe: "otabake/otabake-ota" is otabake-ota. Unqualified names (recipes of the project
// itself, or of this repository inside its own recipes' dependencies) map to themselves.
func localRecipe(name string) (string, bool) {
	if r, ok := strings.CutPrefix(name, thisRepo+"/"); ok {
		return r, true
	}
	return name, !strings.Contains(name, "/")
}

func TestRepositoryValidatesAgainstUpstreamSchemas(t *testing.T) {
	var recipes, layers []string
	for _, p := range glob(t, "recipes", "*", "recipe.toml") {
		recipes = append(recipes, filepath.Base(filepath.Dir(p)))
	}
	for _, p := range glob(t, exampleProject, "layers", "*.toml") {
		layers = append(layers, strings.TrimSuffix(filepath.Base(p), ".toml"))
	}
	sort.Strings(layers)
	if !slices.Equal(recipes, wantRecipes) {
		t.Errorf("recipes = %v, want %v", recipes, wantRecipes)
	}
	if !slices.Equal(layers, wantLayers) {
		t.Errorf("layers = %v, want %v", layers, wantLayers)
	}

	files := []struct{ schema, path string }{
		{schemaRepository, repoPath(t, "rugix-repository.toml")},
		{schemaProject, examplePath(t, "rugix-bakery.toml")},
	}
	for _, r := range recipes {
		files = append(files, struct{ schema, path string }{schemaRecipe, repoPath(t, "recipes", r, "recipe.toml")})
	}
	for _, l := range layers {
		files = append(files, struct{ schema, path string }{schemaLayer, examplePath(t, "layers", l+".toml")})
	}
	for _, p := range glob(t, "recipes", "*", "files", "*state*.toml") {
		files = append(files, struct{ schema, path string }{schemaState, p})
	}
	for _, f := range files {
		t.Run(rel(t, f.path), func(t *testing.T) { validateTOMLFile(t, f.schema, f.path) })
	}
}

// TestUpstreamSchemasReject proves the validation above can fail: documents Bakery refuses
// are refused.
func TestUpstreamSchemasReject(t *testing.T) {
	tests := []struct {
		name, schema, doc string
	}{
		{"recipe unknown key", schemaRecipe, `description = "x"` + "\n" + `dependency = ["a"]`},
		{"recipe priority not an integer", schemaRecipe, `priority = "high"`},
		{"recipe parameter with unknown field", schemaRecipe, "[parameters]\nx = { value = 1 }"},
		{"recipe parameter default is an array", schemaRecipe, "[parameters]\nx = { default = [1] }"},
		{"layer recipes not a list", schemaLayer, `recipes = "otabake-ota"`},
		{"layer parameter value is a table", schemaLayer, "[parameters.\"otabake-ota\"]\ntag = { x = 1 }"},
		{"layer unknown key", schemaLayer, `parents = "core/debian-bookworm"`},
		{"repository unknown key", schemaRepository, `name = "x"` + "\n" + `version = "1"`},
		{"project bad architecture", schemaProject, "[systems.x]\nlayer = \"l\"\narchitecture = \"x86_64\""},
		{"project bad target", schemaProject, "[systems.x]\nlayer = \"l\"\narchitecture = \"amd64\"\ntarget = \"efi\""},
		{"state bad overlay", schemaState, `overlay = "keep"`},
		{"state persist without path", schemaState, "[[persist]]\ndefault = \"x\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := tomlAsJSON([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if err := upstreamSchema(t, tt.schema).Validate(doc); err == nil {
				t.Errorf("%s accepted %q", tt.schema, tt.doc)
			}
		})
	}
}

// recipeConfig is recipe.toml as Bakery reads it.
type recipeConfig struct {
	Description  string                  `toml:"description"`
	Priority     int64                   `toml:"priority"`
	Dependencies []string                `toml:"dependencies"`
	Parameters   map[string]parameterDef `toml:"parameters"`
}

type parameterDef struct {
	Default any `toml:"default"`
}

// layerConfig is a layer file as Bakery reads it.
type layerConfig struct {
	Parent     string                    `toml:"parent"`
	URL        string                    `toml:"url"`
	Root       bool                      `toml:"root"`
	Recipes    []string                  `toml:"recipes"`
	Exclude    []string                  `toml:"exclude"`
	Parameters map[string]map[string]any `toml:"parameters"`
}

func loadRecipe(t *testing.T, name string) recipeConfig {
	t.Helper()
	var rc recipeConfig
	if _, err := toml.DecodeFile(repoPath(t, "recipes", name, "recipe.toml"), &rc); err != nil {
		t.Fatalf("recipe %s: %v", name, err)
	}
	return rc
}

func loadLayer(t *testing.T, name string) layerConfig {
	t.Helper()
	var lc layerConfig
	if _, err := toml.DecodeFile(examplePath(t, "layers", name+".toml"), &lc); err != nil {
		t.Fatalf("layer %s: %v", name, err)
	}
	return lc
}

// bakeryString renders a parameter value the way Bakery exports it (Rust's Display).
func bakeryString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("parameter value %v (%T) is not a string, bool, integer or float", v, v)
}

// schedule is Bakery's recipe_schedule restricted to this repository's recipes: the layer's
// otabake/… recipes plus their dependencies, minus exclusions, highest priority first (ties by
// name; Bakery's order among them is a hash set's), each with its parameters resolved (layer
// value, else default). Other qualified names (core/…, nexigon/…, rugix-extra/…) belong to
// other repositories and are skipped.
func schedule(t *testing.T, lc layerConfig) []job {
	t.Helper()
	enabled := map[string]bool{}
	var stack []string
	for _, name := range lc.Recipes {
		if r, ok := localRecipe(name); ok && !enabled[r] {
			enabled[r] = true
			stack = append(stack, r)
		}
	}
	params := map[string]map[string]any{}
	for name, p := range lc.Parameters {
		if r, ok := localRecipe(name); ok {
			params[r] = p
		}
	}
	for len(stack) > 0 {
		r := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range loadRecipe(t, r).Dependencies {
			if strings.Contains(d, "/") {
				continue
			}
			if _, err := os.Stat(repoPath(t, "recipes", d, "recipe.toml")); err != nil {
				t.Fatalf("recipe %s depends on %s, which does not exist", r, d)
			}
			if !enabled[d] {
				enabled[d] = true
				stack = append(stack, d)
			}
		}
	}
	for _, e := range lc.Exclude {
		if r, ok := localRecipe(e); ok {
			delete(enabled, r)
		}
	}
	var jobs []job
	for r := range enabled {
		jobs = append(jobs, job{recipe: r, params: params[r]})
	}
	for name := range params {
		if !enabled[name] {
			t.Errorf("parameters for recipe %s, which is not part of the layer (Bakery fails)", name)
		}
	}
	sort.Slice(jobs, func(i, j int) bool {
		pi, pj := loadRecipe(t, jobs[i].recipe).Priority, loadRecipe(t, jobs[j].recipe).Priority
		if pi != pj {
			return pi > pj
		}
		return jobs[i].recipe < jobs[j].recipe
	})
	return jobs
}

type job struct {
	recipe string
	params map[string]any
}

// resolveParams applies Bakery's parameter rules: unknown parameters and missing required ones
// are errors; values are exported as strings.
func resolveParams(rc recipeConfig, recipe string, given map[string]any) (map[string]string, error) {
	out := map[string]string{}
	for name := range given {
		if _, ok := rc.Parameters[name]; !ok {
			return nil, fmt.Errorf("unknown parameter `%s` of recipe `%s`", name, recipe)
		}
	}
	for name, def := range rc.Parameters {
		v, ok := given[name]
		if !ok {
			v = def.Default
		}
		if v == nil {
			return nil, fmt.Errorf("unable to find value for parameter `%s` of recipe `%s`", name, recipe)
		}
		s, err := bakeryString(v)
		if err != nil {
			return nil, fmt.Errorf("recipe %s parameter %s: %w", recipe, name, err)
		}
		out[name] = s
	}
	return out, nil
}

// TestLayersFollowBakeryRules checks what the schemas cannot: every layer's parameters belong
// to recipes of the layer and are declared by them, parents exist, and recipes resolve through
// the repositories the example project declares (Bakery resolves "repo/recipe" through the
// declarations of the project whose layer names it; core is built in).
func TestLayersFollowBakeryRules(t *testing.T) {
	var project struct {
		Repositories map[string]any `toml:"repositories"`
	}
	if _, err := toml.DecodeFile(examplePath(t, "rugix-bakery.toml"), &project); err != nil {
		t.Fatal(err)
	}
	for _, name := range wantLayers {
		t.Run(name, func(t *testing.T) {
			lc := loadLayer(t, name)
			if lc.Parent == "" && lc.URL == "" && !lc.Root {
				t.Errorf("layer has neither parent, url nor root = true")
			}
			if lc.Parent != "" && !strings.Contains(lc.Parent, "/") {
				if _, err := os.Stat(examplePath(t, "layers", lc.Parent+".toml")); err != nil {
					t.Errorf("parent layer %s does not exist", lc.Parent)
				}
			}
			for _, r := range lc.Recipes {
				repo, recipe, ok := strings.Cut(r, "/")
				if !ok {
					t.Errorf("recipe %s: the example project has no recipes of its own (write %s/%s for otabake's)", r, thisRepo, r)
					continue
				}
				if _, declared := project.Repositories[repo]; !declared && repo != "core" {
					t.Errorf("recipe %s: repository %s is not declared in %s/rugix-bakery.toml", r, repo, exampleProject)
				}
				if repo == thisRepo {
					if _, err := os.Stat(repoPath(t, "recipes", recipe, "recipe.toml")); err != nil {
						t.Errorf("recipe %s does not exist", r)
					}
				}
			}
			for _, j := range schedule(t, lc) {
				if _, err := resolveParams(loadRecipe(t, j.recipe), j.recipe, j.params); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// stepName is Bakery's steps/NN-<kind>[.<ext>] with a u16 prefix.
var stepName = regexp.MustCompile(`^([0-9]+)-(packages|install|run)(\.[A-Za-z0-9]+)?$`)

func steps(t *testing.T, recipe string) []string {
	t.Helper()
	entries, err := os.ReadDir(repoPath(t, "recipes", recipe, "steps"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.SliceStable(out, func(i, j int) bool {
		ni, _ := strconv.Atoi(strings.SplitN(out[i], "-", 2)[0])
		nj, _ := strconv.Atoi(strings.SplitN(out[j], "-", 2)[0])
		return ni < nj
	})
	return out
}

func TestStepFiles(t *testing.T) {
	for _, r := range wantRecipes {
		list := steps(t, r)
		if len(list) == 0 {
			t.Errorf("recipe %s has no steps", r)
		}
		for _, s := range list {
			path := repoPath(t, "recipes", r, "steps", s)
			m := stepName.FindStringSubmatch(s)
			if m == nil {
				t.Errorf("%s: not a Bakery step name NN-packages|install|run[.ext]", rel(t, path))
				continue
			}
			if n, err := strconv.ParseUint(m[1], 10, 16); err != nil {
				t.Errorf("%s: prefix %s is not a u16", rel(t, path), m[1])
			} else if n > 99 {
				t.Errorf("%s: prefix %d: keep two digits", rel(t, path), n)
			}
			if m[2] == "packages" {
				continue
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o111 != 0o111 {
				t.Errorf("%s: mode %v, want executable (Bakery executes it directly)", rel(t, path), fi.Mode().Perm())
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("#!/bin/sh\n")) {
				t.Errorf("%s: want a #!/bin/sh shebang (the image may have no bash)", rel(t, path))
			}
		}
	}
}

func TestShellcheck(t *testing.T) {
	sc := testkit.NeedTool(t, "shellcheck", "shellcheck", "step scripts were NOT linted")
	scripts := glob(t, "recipes", "*", "steps", "*.sh")
	if len(scripts) == 0 {
		t.Fatal("no step scripts found")
	}
	args := append([]string{"--shell=sh", "--severity=style", "--external-sources"}, scripts...)
	out, err := exec.Command(sc, args...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// TestFilesMatchDist keeps the recipes' copies of the units and the command definition equal
// to dist/, their single source (a recipe directory is all Bakery mounts into the chroot, so
// the files must be copies, not links).
func TestFilesMatchDist(t *testing.T) {
	pairs := []struct{ recipeFile, dist string }{
		{"otabake-ota/files/otabake-agent.service", "dist/systemd/otabake-agent.service"},
		{"otabake-ota/files/otabake-agent.timer", "dist/systemd/otabake-agent.timer"},
		{"otabake-ota/files/nexigon.ota.check.toml", "dist/nexigon/commands/nexigon.ota.check.toml"},
		{"otabake-watchdog/files/otabake-agent-watchdog.service", "dist/systemd/otabake-agent-watchdog.service"},
		{"otabake-watchdog/files/otabake-agent-watchdog.timer", "dist/systemd/otabake-agent-watchdog.timer"},
	}
	for _, p := range pairs {
		got, err := os.ReadFile(repoPath(t, "recipes", p.recipeFile))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(repoPath(t, p.dist))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("recipes/%s differs from %s: copy it again (cp %s recipes/%s)", p.recipeFile, p.dist, p.dist, p.recipeFile)
		}
	}
}
