package bakery

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/otabake/otabake/internal/agent"
	"github.com/otabake/otabake/internal/agent/agentcli"
	"github.com/otabake/otabake/internal/testkit"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "otabake-bakery-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// otabakeBinary builds the real otabake CLI once per test binary.
var otabakeBinary = sync.OnceValues(func() (string, error) {
	out := filepath.Join(binDir, "otabake")
	if err := testkit.GoBuild(out, "./cmd/otabake"); err != nil {
		return "", err
	}
	return out, nil
})

// otabakeSchema compiles one of otabake's own schemas (schemas/*.schema.json, referenced by
// their $id).
func otabakeSchema(t *testing.T, id string) *jsonschema.Schema {
	t.Helper()
	files, err := filepath.Glob(repoPath(t, "schemas", "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in schemas/ (%v)", err)
	}
	c := jsonschema.NewCompiler()
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", rel(t, f), err)
		}
		m, _ := doc.(map[string]any)
		sid, _ := m["$id"].(string)
		if sid == "" {
			t.Fatalf("%s: no $id", rel(t, f))
		}
		if err := c.AddResource(sid, doc); err != nil {
			t.Fatalf("%s: %v", rel(t, f), err)
		}
	}
	s, err := c.Compile(id)
	if err != nil {
		t.Fatalf("compile %s: %v", id, err)
	}
	return s
}

// layerChain is a layer and its local parents, root-most first: Bakery builds a child on the
// extracted tarball of its parent, which here is the same scratch root.
func layerChain(t *testing.T, name string) []string {
	var chain []string
	for name != "" && !strings.Contains(name, "/") {
		chain = append([]string{name}, chain...)
		name = loadLayer(t, name).Parent
	}
	return chain
}

// TestExampleLayers builds this repository's part of each system of the example project
// (examples/bakery) and checks the result as the device sees it: the agent reads the settings
// and OTA defaults the recipes wrote, the defaults are byte-identical to what `otabake bake`
// writes and validate against otabake's schemas, every enabled unit and the device command
// resolve inside the root.
func TestExampleLayers(t *testing.T) {
	tests := []struct{ layer, arch, system string }{
		{"device-efi", "amd64", "device-efi-amd64"},
		{"device-efi", "arm64", "device-efi-arm64"},
		{"device-pi", "arm64", "device-pi"},
	}
	for _, tt := range tests {
		t.Run(tt.layer+"/"+tt.arch, func(t *testing.T) {
			b := newBakery(t, tt.arch)
			b.writeProject(".env", []byte(testEnv), 0o600)
			// The layer's own recipe parameters, but the agent from the project (source =
			// "local") so that the test needs no network; TestAgentRecipeRelease downloads.
			b.override = map[string]map[string]any{"otabake-agent": {"source": "local"}}
			b.writeProject("build/otabake/otabake-agent-"+tt.arch, fakeAgent(t, tt.arch), 0o755)
			for _, l := range layerChain(t, tt.layer) {
				if out, err := b.runLayer(l); err != nil {
					t.Fatalf("layer %s: %v\n%s", l, err, out)
				}
			}

			checkUnits(t, b, []string{"otabake-agent.timer", "otabake-agent-watchdog.timer"})
			checkCommand(t, b)
			checkStateFiles(t, b)
			if got := strings.Join(b.rebuildLines(), " "); got != "build/otabake/otabake-agent-"+tt.arch+" .env" && got != ".env build/otabake/otabake-agent-"+tt.arch {
				t.Errorf("LAYER_REBUILD_IF_CHANGED = %q, want the agent binary and .env", got)
			}

			// The OTA defaults against otabake's schema, and the settings against the agent's.
			ota := b.read("etc/otabake/ota.json")
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(ota))
			if err != nil {
				t.Fatalf("ota.json: %v", err)
			}
			if err := otabakeSchema(t, "https://otabake.dev/schemas/ota-defaults.schema.json").Validate(doc); err != nil {
				t.Errorf("ota.json does not validate:\n%v", err)
			}
			settings, err := tomlAsJSON(b.read("etc/otabake/agent.toml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := otabakeSchema(t, "https://otabake.dev/schemas/agent.schema.json").Validate(settings); err != nil {
				t.Errorf("agent.toml does not validate:\n%v", err)
			}

			// The agent's own view: Bakery writes the build info after the recipes ran.
			info := `{"name": "` + tt.system + `", "release": {"id": "` + tt.system + `@20260101000000", "version": "20260101000000"}}`
			if err := os.WriteFile(b.path("etc/rugix/system-build-info.json"), []byte(info), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			args := []string{"otabake-agent", "--root", b.root, "--transport", "nexigon-socket", "--log-level", "error", "status", "--json"}
			if code := agentcli.Main(args, strings.NewReader(""), &stdout, &stderr); code != 0 {
				t.Fatalf("otabake-agent status: exit %d\n%s", code, stderr.String())
			}
			var rep agent.Report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("status --json: %v\n%s", err, stdout.String())
			}
			if rep.System != tt.system || rep.Engine != "rugix" || rep.Config.Path() != "fleet/gateway-os/stable" || rep.Config.UseBundleHash() {
				t.Errorf("agent sees system %q engine %q path %q useBundleHash %v, want %s rugix fleet/gateway-os/stable false",
					rep.System, rep.Engine, rep.Config.Path(), rep.Config.UseBundleHash(), tt.system)
			}

			// The same defaults as `otabake bake --ota-path` writes for native builds.
			bin, err := otabakeBinary()
			if err != nil {
				t.Fatal(err)
			}
			rootfs := t.TempDir()
			cmd := exec.Command(bin, "bake", "--rootfs", rootfs, "--system", tt.system, "--version", "20260101000000", "--ota-path", rep.Config.Path())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("otabake bake: %v\n%s", err, out)
			}
			want, err := os.ReadFile(filepath.Join(rootfs, "etc/otabake/ota.json"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ota, want) {
				t.Errorf("recipe's ota.json =\n%s\notabake bake's =\n%s", ota, want)
			}
		})
	}
}
