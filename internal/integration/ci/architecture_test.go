package ci

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// layers are the headings of docs/architecture.md's package tables, bottom up.
var layers = []string{"**Foundations**", "**Formats and images**", "**The pipeline and the device**", "**Commands**"}

// TestArchitectureDoc keeps docs/architecture.md true where a test can: every package of
// internal/ is in one of its layer tables, and no package imports one from a layer above its
// own (a package may use its own layer and those below).
func TestArchitectureDoc(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	layerOf := map[string]int{}
	layer := -1
	cell := regexp.MustCompile("`([a-z0-9/]+)`")
	for _, line := range strings.Split(string(data), "\n") {
		for i, h := range layers {
			if strings.HasPrefix(line, h) {
				layer = i
			}
		}
		if strings.HasPrefix(line, "## ") && !strings.HasPrefix(line, "## Packages") {
			layer = -1
		}
		if layer < 0 || !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line[1:], "|", 2)[0]
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			if prev, dup := layerOf[m[1]]; dup {
				t.Errorf("docs/architecture.md lists %s twice (layers %d and %d)", m[1], prev, layer)
			}
			layerOf[m[1]] = layer
		}
	}
	if len(layerOf) == 0 {
		t.Fatal("docs/architecture.md: no package tables found")
	}

	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./internal/...")
	cmd.Dir = testkit.RepoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const prefix = "github.com/otabake/otabake/internal/"
	// Test-only trees, described in prose: the integration tests, the boot proof, the agent's
	// device simulators.
	skip := func(p string) bool {
		return strings.HasPrefix(p, "integration/") || p == "e2e" || strings.HasPrefix(p, "e2e/") || strings.HasPrefix(p, "agent/internal/")
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], prefix)
		if skip(pkg) {
			continue
		}
		own, ok := layerOf[pkg]
		if !ok {
			t.Errorf("package internal/%s is not in docs/architecture.md's package tables", pkg)
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, prefix) {
				continue
			}
			dep := strings.TrimPrefix(imp, prefix)
			if skip(dep) {
				continue
			}
			if l, ok := layerOf[dep]; ok && l > own {
				t.Errorf("internal/%s (%s) imports internal/%s from a layer above (%s)", pkg, strings.Trim(layers[own], "*"), dep, strings.Trim(layers[l], "*"))
			}
		}
	}
	for pkg := range layerOf {
		if _, err := os.Stat(filepath.Join(testkit.RepoRoot(t), "internal", pkg)); err != nil {
			t.Errorf("docs/architecture.md lists internal/%s, which does not exist", pkg)
		}
	}
}
