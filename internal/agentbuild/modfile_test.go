package agentbuild

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// requires reads the require directives of a go.mod-format file: module → version.
func requires(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "require (":
			inBlock = true
			continue
		case inBlock && line == ")":
			inBlock = false
			continue
		case strings.HasPrefix(line, "require "):
			line = strings.TrimPrefix(line, "require ")
		case !inBlock:
			continue
		}
		if f := strings.Fields(line); len(f) == 2 {
			out[f[0]] = f[1]
		}
	}
	return out
}

// TestAgentModFileInStep keeps go.agent.mod a subset of go.mod: the agent the layer builds is
// built from the module versions the tests ran with, and go.agent.sum holds exactly go.sum's
// lines for them.
func TestAgentModFileInStep(t *testing.T) {
	root := sourceDir(t)
	main := requires(t, filepath.Join(root, "go.mod"))
	agent := requires(t, filepath.Join(root, ModFile))
	if len(agent) == 0 {
		t.Fatalf("%s requires nothing", ModFile)
	}
	data, err := os.ReadFile(filepath.Join(root, ModFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("\ngo 1.22\n")) {
		t.Errorf("%s: want the directive \"go 1.22\" (Yocto scarthgap ships Go 1.22.12)", ModFile)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for mod, v := range agent {
		if main[mod] != v {
			t.Errorf("%s requires %s %s, go.mod %q", ModFile, mod, v, main[mod])
		}
		for _, line := range strings.Split(string(sum), "\n") {
			if strings.HasPrefix(line, mod+" "+v+" ") || strings.HasPrefix(line, mod+" "+v+"/go.mod ") {
				want = append(want, line)
			}
		}
	}
	got, err := os.ReadFile(filepath.Join(root, strings.TrimSuffix(ModFile, ".mod")+".sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range want {
		if !bytes.Contains(got, []byte(line+"\n")) {
			t.Errorf("go.agent.sum lacks %q from go.sum", line)
		}
	}
	if n := strings.Count(string(got), "\n"); n != len(want) {
		t.Errorf("go.agent.sum has %d lines, want the %d of go.sum for go.agent.mod's modules", n, len(want))
	}
}
