package bakery

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// bakery is one emulated layer build: a scratch system root and project with the environment
// Bakery gives every step (oven/customize.rs), paths pointing into the scratch directory.
type bakery struct {
	t       *testing.T
	arch    string
	root    string // RUGIX_ROOT_DIR
	project string // RUGIX_PROJECT_DIR
	layer   string // RUGIX_LAYER_DIR
	rebuild string // LAYER_REBUILD_IF_CHANGED
	// recipes is where the recipes' directories are (RECIPE_DIR); this repository's recipes/
	// unless a test works on a copy.
	recipes string
	// override sets recipe parameters over the layer's, as a project's own layer would.
	override map[string]map[string]any
}

func newBakery(t *testing.T, arch string) *bakery {
	t.Helper()
	dir := t.TempDir()
	b := &bakery{
		t:       t,
		arch:    arch,
		root:    filepath.Join(dir, "layer", "roots", "system"),
		project: filepath.Join(dir, "project"),
		layer:   filepath.Join(dir, "layer"),
		recipes: repoPath(t, "recipes"),
	}
	layerOut := filepath.Join(b.project, ".rugix", "layers", "0123456789abcdef")
	b.rebuild = filepath.Join(layerOut, "rebuild-if-changed.txt")
	for _, d := range []string{b.root, layerOut, filepath.Join(b.layer, "artifacts")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// writeProject writes a file into the Bakery project.
func (b *bakery) writeProject(name string, data []byte, mode os.FileMode) {
	b.t.Helper()
	p := filepath.Join(b.project, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		b.t.Fatal(err)
	}
}

// env is what Bakery sets for a step of recipe (both `install` and `run` steps get the same
// names); PATH stands in for the inherited environment.
func (b *bakery) env(recipe, step string, params map[string]string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"LC_ALL=C",
		"DEBIAN_FRONTEND=noninteractive",
		"SOURCE_DATE_EPOCH=1700000000",
		"RUGIX_LAYER_DIR=" + b.layer,
		"RUGIX_ARTIFACTS_DIR=" + filepath.Join(b.layer, "artifacts"),
		"RUGIX_ROOT_DIR=" + b.root,
		"RUGIX_CONTEXT_DIR=" + filepath.Join(b.layer, "context"),
		"RUGIX_CACHE_DIR=" + filepath.Join(b.layer, "cache"),
		"RUGIX_PROJECT_DIR=" + b.project,
		"RUGIX_ARCH=" + b.arch,
		"LAYER_REBUILD_IF_CHANGED=" + b.rebuild,
		"RECIPE_DIR=" + filepath.Join(b.recipes, recipe),
		"RECIPE_STEP_PATH=" + filepath.Join(b.recipes, recipe, "steps", step),
	}
	for name, v := range params {
		env = append(env, "RECIPE_PARAM_"+strings.ToUpper(name)+"="+v)
	}
	sort.Strings(env)
	return env
}

// run runs every step of recipe in order with the layer's parameters for it and returns the
// steps' combined output and the first failure.
func (b *bakery) run(recipe string, given map[string]any) (string, error) {
	b.t.Helper()
	if o := b.override[recipe]; o != nil {
		merged := map[string]any{}
		for k, v := range given {
			merged[k] = v
		}
		for k, v := range o {
			merged[k] = v
		}
		given = merged
	}
	params, err := resolveParams(loadRecipe(b.t, recipe), recipe, given)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	for _, s := range steps(b.t, recipe) {
		if m := stepName.FindStringSubmatch(s); m == nil || m[2] == "packages" {
			b.t.Fatalf("recipe %s step %s: the harness runs only install and run steps", recipe, s)
		}
		cmd := exec.Command(filepath.Join(b.recipes, recipe, "steps", s))
		cmd.Env = b.env(recipe, s, params)
		cmd.Dir = b.project
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return out.String(), fmt.Errorf("recipe %s step %s: %w", recipe, s, err)
		}
	}
	return out.String(), nil
}

// runLayer runs this repository's recipes of a layer file in Bakery's order with its
// parameters.
func (b *bakery) runLayer(layer string) (string, error) {
	b.t.Helper()
	var all strings.Builder
	for _, j := range schedule(b.t, loadLayer(b.t, layer)) {
		out, err := b.run(j.recipe, j.params)
		all.WriteString(out)
		if err != nil {
			return all.String(), err
		}
	}
	return all.String(), nil
}

func (b *bakery) path(p string) string { return filepath.Join(b.root, p) }

func (b *bakery) read(p string) []byte {
	b.t.Helper()
	data, err := os.ReadFile(b.path(p))
	if err != nil {
		b.t.Fatalf("installed file: %v", err)
	}
	return data
}

func (b *bakery) mode(p string) os.FileMode {
	b.t.Helper()
	fi, err := os.Lstat(b.path(p))
	if err != nil {
		b.t.Fatalf("installed file: %v", err)
	}
	return fi.Mode()
}

// rebuildLines is the content of LAYER_REBUILD_IF_CHANGED.
func (b *bakery) rebuildLines() []string {
	data, err := os.ReadFile(b.rebuild)
	if err != nil {
		return nil
	}
	return strings.Fields(string(data))
}

// fakeELF is an ELF header (and a little payload, so that builds differ) for an architecture:
// what the recipe's architecture check reads, not a runnable program.
func fakeELF(t *testing.T, arch, payload string) []byte {
	t.Helper()
	var buf bytes.Buffer
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', 0, byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	switch arch {
	case "amd64", "arm64":
		m := elf.EM_X86_64
		if arch == "arm64" {
			m = elf.EM_AARCH64
		}
		ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
		h := elf.Header64{Ident: ident, Type: uint16(elf.ET_EXEC), Machine: uint16(m), Version: uint32(elf.EV_CURRENT), Ehsize: 64}
		if err := binary.Write(&buf, binary.LittleEndian, h); err != nil {
			t.Fatal(err)
		}
	case "armhf", "armv7":
		ident[elf.EI_CLASS] = byte(elf.ELFCLASS32)
		h := elf.Header32{Ident: ident, Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_ARM), Version: uint32(elf.EV_CURRENT), Ehsize: 52}
		if err := binary.Write(&buf, binary.LittleEndian, h); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("fakeELF: no architecture %s", arch)
	}
	buf.WriteString(payload)
	return buf.Bytes()
}

// elfMachine reads the machine of an installed binary with the standard library's parser.
func elfMachine(t *testing.T, path string) elf.Machine {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	return f.Machine
}
