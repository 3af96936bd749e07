package agentbuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Toolchains the agent must compile with, and for which architectures. Go 1.22.12 is the Go of
// Yocto scarthgap (openembedded-core scarthgap, meta/recipes-devtools/go/go-1.22.12.inc), the
// oldest series meta-otabake declares: every architecture the layer claims. The newest Go
// release compiles the same sources; what differs between architectures does not depend on
// the toolchain, so two of them are enough there (the machine's own Go builds every release
// architecture in TestBuildReproducibleNoRewrite). The go command downloads the toolchains
// from the module proxy (GOTOOLCHAIN), about 70 MB each on a fresh machine.
var toolchains = []struct {
	name   string
	arches []Arch
}{
	{"go1.22.12", yoctoArches},
	{"go1.27.3", []Arch{yoctoArches[0], yoctoArches[2]}},
}

// yoctoArches are the targets meta-otabake claims (bitbake/meta-otabake/README.md), as
// goarch.bbclass maps them: TARGET_GOARM 5 for armv5 tunes, 7 for armv7.
var yoctoArches = []Arch{
	{Name: "x86-64", GOARCH: "amd64"},
	{Name: "aarch64", GOARCH: "arm64"},
	{Name: "armv5", GOARCH: "arm", GOARM: "5"},
	{Name: "armv7", GOARCH: "arm", GOARM: "7"},
	{Name: "x86", GOARCH: "386"},
	{Name: "riscv64", GOARCH: "riscv64"},
}

// TestAgentCompilesWithEachToolchain compiles ./cmd/otabake-agent with go.agent.mod under
// each toolchain for each architecture, with the flags of the release build, and checks that
// every result is a static, non-PIE executable for its machine.
func TestAgentCompilesWithEachToolchain(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Go toolchains and cross-compiles otabake-agent")
	}
	src := sourceDir(t)
	dir := t.TempDir()
	for _, tcs := range toolchains {
		tc := tcs.name
		// Fails on a machine without access to the Go module proxy: say so, rather than
		// skipping, since this is the proof that Yocto scarthgap can build the agent.
		if out, err := goVersion(src, tc); err != nil {
			t.Fatalf("GOTOOLCHAIN=%s go version: %v\n%s\n(the Go module proxy serves toolchains as golang.org/toolchain; set GOPROXY to one that does)", tc, err, out)
		}
		for _, a := range tcs.arches {
			t.Run(tc+"/"+a.Name, func(t *testing.T) {
				_, err := Build(context.Background(), Options{Source: src, Version: "test", Env: []string{"GOTOOLCHAIN=" + tc}}, a, filepath.Join(dir, tc+"-"+a.Name))
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func goVersion(dir, toolchain string) (string, error) {
	cmd := exec.Command("go", "version")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN="+toolchain)
	out, err := cmd.CombinedOutput()
	if err == nil && !strings.Contains(string(out), toolchain+" ") {
		return string(out), errNotToolchain
	}
	return string(out), err
}

type toolchainError string

func (e toolchainError) Error() string { return string(e) }

const errNotToolchain = toolchainError("the go command did not switch to the requested toolchain")
