package release

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/agentbuild"
	"github.com/otabake/otabake/internal/project"
	"github.com/otabake/otabake/internal/tool"
)

// AgentDir is where a local otabake-agent build goes for the otabake-agent Bakery recipe
// (its parameter source = "local"): build/otabake/otabake-agent-<arch> in the Bakery project.
func AgentDir(projectDir string) string { return filepath.Join(BuildRoot(projectDir), "otabake") }

// SourceDir finds an otabake source tree to build otabake-agent from: OTABAKE_SOURCE_DIR, or
// the github.com/otabake/otabake module as `go list -m` sees it from the project directory (a
// checkout the project lives in, or a module the project requires).
func SourceDir(ctx context.Context, projectDir string) (string, error) {
	if d := os.Getenv("OTABAKE_SOURCE_DIR"); d != "" {
		return d, nil
	}
	res, err := tool.Run(ctx, tool.Cmd{Path: "go", Package: "golang", Args: []string{"list", "-m", "-f", "{{.Dir}}", "github.com/otabake/otabake"}, Dir: projectDir})
	dir := strings.TrimSpace(string(res.Stdout))
	if err != nil || dir == "" {
		return "", fmt.Errorf("cannot find the otabake sources to build otabake-agent: set OTABAKE_SOURCE_DIR to an otabake checkout, or let the otabake-agent recipe download the released binary (remove source = \"local\" from its parameters)")
	}
	return dir, nil
}

// BuildAgents cross-compiles otabake-agent for the given Rugix architectures into
// AgentDir(projectDir). Files whose bytes do not change are left alone, so that Bakery does
// not rebuild the layer holding the agent, and every layer above it, on every release.
func BuildAgents(ctx context.Context, projectDir, version string, arches []string) ([]agentbuild.Result, error) {
	src, err := SourceDir(ctx, projectDir)
	if err != nil {
		return nil, err
	}
	return agentbuild.BuildEach(ctx, agentbuild.Options{Source: src, Version: version}, arches, AgentDir(projectDir))
}

// agentRecipeSource is the otabake-agent recipe's `source` parameter as the Bakery project
// sets it ("release" when unset, the recipe's default), from rugix-bakery.toml and layers/*.toml:
// [parameters."otabake/otabake-agent"] (or "otabake-agent" in otabake's own layers).
func agentRecipeSource(projectDir string) (string, error) {
	files := []string{filepath.Join(projectDir, project.BakeryFileName)}
	layers, _ := filepath.Glob(filepath.Join(projectDir, "layers", "*.toml"))
	files = append(files, layers...)
	source := ""
	for _, p := range files {
		data, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		var doc struct {
			Parameters map[string]map[string]any `toml:"parameters"`
		}
		if err := toml.Unmarshal(data, &doc); err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		for recipe, params := range doc.Parameters {
			if recipe != "otabake-agent" && !strings.HasSuffix(recipe, "/otabake-agent") {
				continue
			}
			if s, ok := params["source"].(string); ok {
				if source != "" && source != s {
					return "", fmt.Errorf("%s: otabake-agent source %q, but another file sets %q", p, s, source)
				}
				source = s
			}
		}
	}
	if source == "" {
		source = "release"
	}
	return source, nil
}
