package agentbuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/tool"
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

// yoctoArches are the targets meta-otabake claims (bitbake/meta-otabake/recipes-otabake/
// otabake/otabake.inc), as openembedded-core's goarch.bbclass maps them: TARGET_GOARM is 5, 6
// or 7 from the arm tune (qemuarmv5, Raspberry Pi 1/Zero, ARMv7 boards).
var yoctoArches = []Arch{
	{Name: "x86-64", GOARCH: "amd64"},
	{Name: "aarch64", GOARCH: "arm64"},
	{Name: "armv5", GOARCH: "arm", GOARM: "5"},
	{Name: "armv6", GOARCH: "arm", GOARM: "6"},
	{Name: "armv7", GOARCH: "arm", GOARM: "7"},
	{Name: "x86", GOARCH: "386"},
	{Name: "riscv64", GOARCH: "riscv64"},
}

// TestAgentCompilesWithEachToolchain compiles ./cmd/otabake-agent under each toolchain for
// each architecture with the flags meta-otabake gives the go command (read from the layer's
// recipes, see layerArgs), and checks that every result is a static, non-PIE executable for
// its machine.
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
				out := filepath.Join(dir, tc+"-"+a.Name)
				args := append([]string{"build"}, layerArgs(t, src)...)
				args = append(args, "-o", out, "./cmd/otabake-agent")
				if _, err := tool.Run(context.Background(), tool.Cmd{Path: "go", Args: args, Dir: src,
					Env: append(BuildEnv(a), "GOTOOLCHAIN="+tc)}); err != nil {
					t.Fatalf("go %s: %v", strings.Join(args, " "), err)
				}
				if err := Check(out, a); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// bbAssign matches `NAME = "value"` and `NAME:append = " value"` lines of a BitBake file.
var bbAssign = regexp.MustCompile(`(?m)^([A-Z_]+)(:append)? = "([^"]*)"$`)

// layerArgs are the go command's arguments as meta-otabake sets them for otabake-agent:
// OTABAKE_GOFLAGS of otabake.inc with the agent recipe's append (-modfile=…go.agent.mod), and
// -ldflags from the recipe's OTABAKE_LDFLAGS (GO_LDFLAGS, which replaces go.bbclass's). The
// layer's own tests (internal/integration/yocto) and the real BitBake check that BitBake
// expands them into this command line.
func layerArgs(t *testing.T, src string) []string {
	t.Helper()
	vars := map[string]string{"GO_IMPORT": "github.com/otabake/otabake", "PV": "0.1+git", "OTABAKE_SRC": src}
	for _, name := range []string{"otabake.inc", "otabake-agent_git.bb"} {
		data, err := os.ReadFile(filepath.Join(src, "bitbake", "meta-otabake", "recipes-otabake", "otabake", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range bbAssign.FindAllStringSubmatch(string(data), -1) {
			if m[1] != "OTABAKE_GOFLAGS" && m[1] != "OTABAKE_LDFLAGS" {
				continue
			}
			if m[2] != "" {
				vars[m[1]] += m[3]
			} else {
				vars[m[1]] = m[3]
			}
		}
	}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string {
			v, ok := vars[k]
			if !ok {
				t.Fatalf("layer flags use ${%s}, which this test does not know", k)
			}
			return v
		})
	}
	flags := strings.Fields(expand(vars["OTABAKE_GOFLAGS"]))
	if !strings.Contains(vars["OTABAKE_GOFLAGS"], "-modfile=") || !strings.Contains(vars["OTABAKE_GOFLAGS"], "-buildmode=exe") {
		t.Fatalf("layer flags %q: want -buildmode=exe and -modfile=…/go.agent.mod", vars["OTABAKE_GOFLAGS"])
	}
	return append(flags, "-ldflags="+expand(vars["OTABAKE_LDFLAGS"]))
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
