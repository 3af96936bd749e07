package release

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// AgentArches maps Rugix architectures to Go's GOARCH/GOARM for otabake-agent builds.
var AgentArches = map[string][]string{
	"amd64": {"GOARCH=amd64"},
	"arm64": {"GOARCH=arm64"},
	"armhf": {"GOARCH=arm", "GOARM=7"},
}

// AgentDir is where the bakery backend puts otabake-agent binaries for the otabake-agent
// recipe: build/otabake/otabake-agent-<arch> in the Bakery project.
func AgentDir(projectDir string) string { return filepath.Join(projectDir, "build", "otabake") }

// SourceDir finds an otabake source tree to build otabake-agent from: OTABAKE_SOURCE_DIR, or
// the github.com/otabake/otabake module as `go list -m` sees it from the project directory (a
// checkout the project lives in, or a module the project requires).
func SourceDir(ctx context.Context, projectDir string) (string, error) {
	if d := os.Getenv("OTABAKE_SOURCE_DIR"); d != "" {
		return d, nil
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/otabake/otabake")
	cmd.Dir = projectDir
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil || strings.TrimSpace(out.String()) == "" {
		return "", fmt.Errorf("cannot find the otabake sources to build otabake-agent (set OTABAKE_SOURCE_DIR to an otabake checkout, or give the otabake-agent recipe a url and sha256)")
	}
	return strings.TrimSpace(out.String()), nil
}

// BuildAgents cross-compiles static otabake-agent binaries for the given Rugix architectures
// into AgentDir(projectDir), so that the otabake-agent recipe can install them.
func BuildAgents(ctx context.Context, projectDir string, arches []string) ([]string, error) {
	src, err := SourceDir(ctx, projectDir)
	if err != nil {
		return nil, err
	}
	dir := AgentDir(projectDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var outs []string
	for _, arch := range arches {
		env, ok := AgentArches[arch]
		if !ok {
			return nil, fmt.Errorf("no otabake-agent build for architecture %q (want amd64, arm64 or armhf)", arch)
		}
		out := filepath.Join(dir, "otabake-agent-"+arch)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/otabake-agent")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), append([]string{"CGO_ENABLED=0", "GOOS=linux"}, env...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build otabake-agent for %s in %s: %w: %s", arch, src, err, strings.TrimSpace(stderr.String()))
		}
		outs = append(outs, out)
	}
	return outs, nil
}
