package ci

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/otabake/otabake/internal/schema"
	"github.com/otabake/otabake/internal/testkit"
)

// The pipeline steps every template must run.
var pipeline = [][]string{
	{"prepare-release"}, {"build-release"}, {"upload-release"}, {"promote-release"}, {"schema", "validate"},
}

func loadYAML(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "docs", "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

// get walks a decoded YAML document by keys (strings) and indexes (ints).
func get(t *testing.T, doc any, path ...any) any {
	t.Helper()
	cur := doc
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a mapping", path[:i])
			}
			if cur, ok = m[k]; !ok {
				t.Fatalf("%v: no key %q", path[:i], k)
			}
		case int:
			s, ok := cur.([]any)
			if !ok || k >= len(s) {
				t.Fatalf("%v: no item %d", path[:i], k)
			}
			cur = s[k]
		}
	}
	return cur
}

func asList(v any) []any {
	if s, ok := v.([]any); ok {
		return s
	}
	return []any{v}
}

// checkScripts validates every otabake command line in scripts against the CLI and returns
// the command paths seen.
func checkScripts(t *testing.T, file string, scripts map[string]string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for where, script := range scripts {
		invs, err := Invocations(script)
		if err != nil {
			t.Errorf("%s %s: %v", file, where, err)
			continue
		}
		for _, inv := range invs {
			path, pos, err := Check(inv)
			if err != nil {
				t.Errorf("%s %s: %v", file, where, err)
				continue
			}
			seen[strings.Join(path, " ")] = true
			if slices.Equal(path, []string{"schema", "validate"}) && len(pos) == 2 {
				if _, err := schema.Source(pos[0]); err != nil {
					t.Errorf("%s %s: %q: %v", file, where, inv.Line, err)
				}
			}
		}
	}
	shellcheck(t, file, scripts)
	for _, p := range pipeline {
		if !seen[strings.Join(p, " ")] {
			t.Errorf("%s never runs 'otabake %s'", file, strings.Join(p, " "))
		}
	}
	return seen
}

// ghExpr matches GitHub expressions, which the runner substitutes before the shell runs.
var ghExpr = regexp.MustCompile(`\$\{\{[^}]*\}\}`)

// shellcheck runs shellcheck on every script, as bash (what both runners use here).
func shellcheck(t *testing.T, file string, scripts map[string]string) {
	t.Helper()
	// Not testkit.NeedTool: without shellcheck only this check is left out; the rest of the
	// caller's test still runs.
	bin, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Logf("SKIPPING shellcheck of %s: shellcheck is not installed (Debian package shellcheck)", file)
		return
	}
	for where, script := range scripts {
		src := "#!/bin/bash\n" + ghExpr.ReplaceAllString(script, "GITHUB_EXPRESSION") + "\n"
		cmd := exec.Command(bin, "-s", "bash", "-")
		cmd.Stdin = strings.NewReader(src)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %s: shellcheck: %v\n%s\n%s", file, where, err, out, src)
		}
	}
}

func TestGitHubActions(t *testing.T) {
	const file = "github-actions.yml"
	doc := loadYAML(t, file)
	jobs := get(t, doc, "jobs").(map[string]any)
	for _, j := range []string{"prepare", "build", "upload"} {
		if _, ok := jobs[j]; !ok {
			t.Fatalf("%s: no job %q", file, j)
		}
	}
	if n := asList(get(t, jobs, "build", "needs")); !slices.Contains(n, any("prepare")) {
		t.Errorf("build needs %v, want prepare", n)
	}
	if n := asList(get(t, jobs, "upload", "needs")); !slices.Contains(n, any("build")) {
		t.Errorf("upload needs %v, want build", n)
	}
	if m := get(t, jobs, "build", "strategy", "matrix", "system"); !strings.Contains(m.(string), "needs.prepare.outputs.systems") {
		t.Errorf("build matrix %v is not the prepare job's system list", m)
	}

	scripts := map[string]string{}
	uses := map[string][]map[string]any{} // job → steps using an action
	for name, j := range jobs {
		for i, st := range asList(get(t, j, "steps")) {
			step := st.(map[string]any)
			if run, ok := step["run"].(string); ok {
				scripts[name+" step "+strconv.Itoa(i)] = run
				if strings.Contains(run, "secrets.") {
					t.Errorf("job %s step %d: secrets expanded into a script; pass them through env", name, i)
				}
			}
			if u, ok := step["uses"].(string); ok {
				step["uses"] = u
				uses[name] = append(uses[name], step)
			}
		}
	}
	checkScripts(t, file, scripts)

	// .release-env goes from prepare to build and upload as an artifact.
	with := func(job, action, key string) []string {
		var vals []string
		for _, st := range uses[job] {
			if strings.HasPrefix(st["uses"].(string), action+"@") {
				if w, ok := st["with"].(map[string]any); ok {
					if v, ok := w[key].(string); ok {
						vals = append(vals, v)
					}
				}
			}
		}
		return vals
	}
	if p := with("prepare", "actions/upload-artifact", "path"); !slices.Contains(p, ".release-env") {
		t.Errorf("prepare uploads %v, want .release-env", p)
	}
	for _, j := range []string{"build", "upload"} {
		if n := with(j, "actions/download-artifact", "name"); !slices.Contains(n, "release-env") {
			t.Errorf("%s downloads %v, want the release-env artifact", j, n)
		}
	}
	cached := strings.Join(with("build", "actions/cache", "path"), "\n")
	for _, p := range []string{".otabake", "~/go/pkg/mod", "~/.cache/go-build"} {
		if !strings.Contains(cached, p) {
			t.Errorf("build caches %q, want %s", cached, p)
		}
	}
	// The token comes from the repository's secrets, never from the file.
	raw, _ := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "docs", "ci", file))
	if !strings.Contains(string(raw), "NEXIGON_TOKEN: ${{ secrets.NEXIGON_TOKEN }}") {
		t.Error("NEXIGON_TOKEN is not taken from secrets")
	}
}

func TestGitLabCI(t *testing.T) {
	const file = "gitlab-ci.yml"
	doc := loadYAML(t, file)
	stages := asList(get(t, doc, "stages"))
	want := []any{"prepare", "build", "upload", "promote"}
	if !slices.Equal(stages, want) {
		t.Errorf("stages %v, want %v", stages, want)
	}
	scripts := map[string]string{}
	reserved := map[string]bool{"stages": true, "variables": true, "default": true, "workflow": true, "include": true}
	for name, v := range doc {
		job, ok := v.(map[string]any)
		if !ok || (reserved[name] && name != "default") {
			continue
		}
		for _, key := range []string{"before_script", "script", "after_script"} {
			if s, ok := job[key]; ok {
				for i, line := range asList(s) {
					scripts[name+" "+key+" "+strconv.Itoa(i)] = line.(string)
				}
			}
		}
	}
	checkScripts(t, file, scripts)
	if p := asList(get(t, doc, "prepare", "artifacts", "paths")); !slices.Contains(p, any(".release-env")) {
		t.Errorf("prepare artifacts %v, want .release-env", p)
	}
	if n := asList(get(t, doc, "upload", "needs")); !slices.Contains(n, any("build")) || !slices.Contains(n, any("prepare")) {
		t.Errorf("upload needs %v, want prepare and build", n)
	}
	if m := asList(get(t, doc, "build", "parallel", "matrix")); len(m) == 0 {
		t.Error("build has no matrix")
	}
	var cached []string
	for _, c := range asList(get(t, doc, "build", "cache")) {
		for _, p := range asList(get(t, c, "paths")) {
			cached = append(cached, p.(string))
		}
	}
	for _, p := range []string{".otabake/", ".go/pkg/mod", ".cache/go-build"} {
		if !slices.Contains(cached, p) {
			t.Errorf("build caches %v, want %s", cached, p)
		}
	}
}

// TestCheckRejects makes sure the command check can fail.
func TestCheckRejects(t *testing.T) {
	for _, tc := range []struct {
		script, want string
	}{
		{"otabake frobnicate", `No help topic for 'frobnicate'`},
		{"otabake build-release --nope a", "flag provided but not defined: -nope"},
		{"otabake build-release a --nope", "flag provided but not defined: -nope"},
		{"otabake schema frob x", `No help topic for 'frob'`},
		{"otabake schema", "needs a subcommand"},
		{"otabake --no-such-global prepare-release", "flag provided but not defined: -no-such-global"},
		{"FOO=1 otabake promote-release --tag", "needs a value"},
		{"if true; then otabake upload-release --systemz a; fi", "flag provided but not defined: -systemz"},
		{"x=$(otabake versio)", `No help topic for 'versio'`},
		{`echo "n=$(otabake --json confg show | jq -c '[.x[]]')" >> "$OUT"`, `No help topic for 'confg'`},
		{`exec "${OTABAKE:-otabake}" bundle create "$@"`, `Required flag "output" not set`},
	} {
		invs, err := Invocations(tc.script)
		if err != nil || len(invs) != 1 {
			t.Fatalf("%q: %d invocations, %v", tc.script, len(invs), err)
		}
		_, _, err = Check(invs[0])
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.script, err, tc.want)
		}
	}
	for _, ok := range []string{
		"otabake -C proj --json config show",
		"otabake build-release \"$SYSTEM\" --backend=native",
		"otabake upload-release -s a -s b",
		"otabake schema validate --json otabake otabake.toml",
		"otabake schema validate otabake otabake.toml --json -C proj",
		`exec "${OTABAKE:-otabake}" upload-release ${args[@]+"${args[@]}"}`,
		"echo otabake prepare-release # not a command",
	} {
		invs, err := Invocations(ok)
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range invs {
			if _, _, err := Check(inv); err != nil {
				t.Errorf("%q: %v", ok, err)
			}
		}
	}
}

// TestReleaseWorkflow: otabake's own release builds the agent artifacts with the command the
// justfile uses, checks them against the recipe's pins before publishing, and publishes them
// where the otabake-agent recipe's default base_url looks.
func TestReleaseWorkflow(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), ".github", "workflows", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	steps, _ := get(t, doc, "jobs", "agent", "steps").([]any)
	var runs []string
	for _, s := range steps {
		if m, ok := s.(map[string]any); ok {
			if r, ok := m["run"].(string); ok {
				runs = append(runs, r)
			}
		}
	}
	all := strings.Join(runs, "\n")
	build := strings.Index(all, "otabake agent build --version")
	check := strings.Index(all, "cmp \"$pins\"")
	publish := strings.Index(all, "gh release create")
	if build < 0 || check < build || publish < check {
		t.Errorf("release workflow must build, then check the pins, then publish:\n%s", all)
	}
	if !strings.Contains(all, "recipes/otabake-agent/files/releases/$version.sha256") {
		t.Error("release workflow does not check the recipe's pinned checksums")
	}
	just, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "justfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(just), "go run ./cmd/otabake agent build --version {{VERSION}} --output build/agent/v{{VERSION}}") {
		t.Error("justfile agent-artifacts does not build what the release workflow builds")
	}
	recipe, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "recipes", "otabake-agent", "recipe.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(recipe), `base_url = { default = "https://github.com/otabake/otabake/releases/download/v{version}" }`) {
		t.Error("the otabake-agent recipe does not download from the GitHub release the workflow publishes")
	}
}
