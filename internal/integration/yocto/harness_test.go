package yocto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The real otabake binary, built at most once per test binary, on first use: fuzz workers
// and runs of the parser tests alone never pay for the build.
var (
	otabakeOnce sync.Once
	otabakeDir  string
	otabakeErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if otabakeDir != "" {
		os.RemoveAll(otabakeDir)
	}
	os.Exit(code)
}

// needOtabake builds otabake once and fails the test when that is impossible.
func needOtabake(t *testing.T) string {
	t.Helper()
	otabakeOnce.Do(func() {
		otabakeDir, otabakeErr = os.MkdirTemp("", "otabake-yocto-")
		if otabakeErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(otabakeDir, "otabake"), "./cmd/otabake")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			otabakeErr = fmt.Errorf("go build ./cmd/otabake: %v\n%s", err, out)
		}
	})
	if otabakeErr != nil {
		t.Fatal(otabakeErr)
	}
	return filepath.Join(otabakeDir, "otabake")
}

// otabake runs the built otabake binary and returns its stdout.
func otabake(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(needOtabake(t), append([]string{"--no-progress"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("otabake %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// hasCommand reports whether `otabake <words> --help` succeeds, i.e. the command exists.
func hasCommand(t *testing.T, words ...string) bool {
	t.Helper()
	cmd := exec.Command(needOtabake(t), append(words, "--help")...)
	out, err := cmd.CombinedOutput()
	return err == nil && !bytes.Contains(out, []byte("No help topic"))
}

// datastore builds the variables BitBake would see: defaults first (as local.conf would set
// them), then the plain assignments of files in order, then forced values that BitBake's own
// classes or inline Python would compute. Override-qualified names and flags are skipped.
func datastore(defaults map[string]string, files []*File, forced map[string]string) map[string]string {
	vars := map[string]string{}
	for k, v := range defaults {
		vars[k] = v
	}
	for _, f := range files {
		for _, a := range f.Assignments {
			if a.Flag != "" || strings.ContainsAny(a.Name, ":$") {
				continue
			}
			_, set := vars[a.Name]
			switch a.Op {
			case "=", ":=":
				vars[a.Name] = a.Value
			case "?=", "??=":
				if !set {
					vars[a.Name] = a.Value
				}
			case "+=":
				vars[a.Name] = strings.TrimSpace(vars[a.Name] + " " + a.Value)
			}
		}
	}
	for k, v := range forced {
		vars[k] = v
	}
	return vars
}

// stubs stand in for BitBake's logging functions in shell tasks.
const stubs = `bbfatal() { printf 'FATAL: %s\n' "$*" >&2; exit 1; }
bbnote() { printf 'NOTE: %s\n' "$*" >&2; }
bbwarn() { printf 'WARNING: %s\n' "$*" >&2; }
`

// script renders a run script the way BitBake does: every shell function of the files with
// ${VAR}s expanded from vars, "set -e", a cd into dir and the call.
func script(t *testing.T, files []*File, vars map[string]string, dir, call string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("set -e\n")
	b.WriteString(stubs)
	var names []string
	bodies := map[string]string{}
	for _, f := range files {
		for _, fn := range f.Functions {
			if fn.Kind != Shell {
				continue
			}
			body, err := Expand(fn.Body, vars)
			if err != nil {
				t.Fatalf("%s: function %s: %v", f.Name, fn.Name, err)
			}
			names = append(names, fn.Name)
			bodies[fn.Name] = body
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s() {\n%s\n}\n\n", n, bodies[n])
	}
	if dir != "" {
		fmt.Fprintf(&b, "cd '%s'\n", dir)
	}
	if call != "" {
		b.WriteString(call + "\n")
	}
	return b.String()
}

// shells are the shells the layer's functions must work in: bash (as the brief asks) and
// /bin/sh, which is what BitBake runs (dash on Debian and Ubuntu build hosts).
func shells(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, s := range []string{"bash", "sh"} {
		if _, err := exec.LookPath(s); err == nil {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Skip("SKIP: neither bash nor sh found")
	}
	return out
}

// runShell runs a script with otabake first on PATH, as the native sysroot puts it, and the
// environment BitBake exports to tasks. It returns stdout, stderr and the error.
func runShell(t *testing.T, shell, src string, env ...string) (string, string, error) {
	t.Helper()
	needOtabake(t)
	cmd := exec.Command(shell, "-c", src)
	cmd.Env = append([]string{
		"PATH=" + otabakeDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"SOURCE_DATE_EPOCH=1700000000",
		"LC_ALL=C",
	}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// mustRun is runShell that fails the test on a non-zero exit.
func mustRun(t *testing.T, shell, src string, env ...string) string {
	t.Helper()
	out, errOut, err := runShell(t, shell, src, env...)
	if err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s\nscript:\n%s", shell, err, errOut, src)
	}
	return out
}

var (
	pythonOnce sync.Once
	pythonPath string
)

// python3 returns the real python3 executable, resolved once: version-manager shims (pyenv)
// cost a second or more per start.
func python3(t *testing.T) string {
	t.Helper()
	pythonOnce.Do(func() {
		py, err := exec.LookPath("python3")
		if err != nil {
			return
		}
		out, err := exec.Command(py, "-c", "import sys; print(sys.executable)").Output()
		if err != nil {
			return
		}
		pythonPath = strings.TrimSpace(string(out))
	})
	if pythonPath == "" {
		t.Skip("SKIP: python3 not found: cannot run or compile the layer's Python functions")
	}
	return pythonPath
}

// pyResult is what runPython reports about one Python function call.
type pyResult struct {
	Fatal *string `json:"fatal"`
}

// pyHarness runs a BitBake Python function body with a datastore stub d (getVar returns the
// already expanded values) and a bb stub whose fatal raises.
const pyHarness = `
import json, sys, types
vars = json.loads(sys.argv[1])
class Fatal(Exception):
    pass
def fatal(msg):
    raise Fatal(msg)
bb = types.SimpleNamespace(fatal=fatal)
class D:
    def getVar(self, name, expand=True):
        return vars.get(name)
ns = {"bb": bb}
exec(compile("def f(d):\n" + sys.stdin.read() + "\n", "body", "exec"), ns)
res = {"fatal": None}
try:
    ns["f"](D())
except Fatal as e:
    res["fatal"] = str(e)
print(json.dumps(res))
`

// runPython calls a Python function body of the layer with vars (expanded first).
func runPython(t *testing.T, fn Function, vars map[string]string) pyResult {
	t.Helper()
	py := python3(t)
	expanded := map[string]string{}
	for k, v := range vars {
		if strings.Contains(v, "${@") {
			continue
		}
		// Values that reach inline Python (S, OTABAKE_SRC, …) are BitBake's to compute; the
		// functions under test do not read them.
		if e, err := Expand(v, vars); err == nil {
			expanded[k] = e
		}
	}
	arg, _ := json.Marshal(expanded)
	cmd := exec.Command(py, "-c", pyHarness, string(arg))
	cmd.Stdin = strings.NewReader(fn.Body)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python %s: %v\n%s", fn.Name, err, stderr)
	}
	var res pyResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python %s printed %q: %v", fn.Name, out, err)
	}
	return res
}
