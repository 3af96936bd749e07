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

	"github.com/otabake/otabake/internal/testkit"
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
		otabakeErr = testkit.GoBuild(filepath.Join(otabakeDir, "otabake"), "./cmd/otabake")
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
		// Either shell will do, so not testkit.NeedTools (which needs every tool it names).
		t.Skip("SKIPPING: neither bash nor sh installed (Debian packages bash dash); the layer's shell functions did not run")
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
	py := testkit.NeedTool(t, "python3", "python3", "cannot run or compile the layer's Python functions")
	pythonOnce.Do(func() {
		out, err := exec.Command(py, "-c", "import sys; print(sys.executable)").Output()
		if err != nil {
			return
		}
		pythonPath = strings.TrimSpace(string(out))
	})
	if pythonPath == "" {
		t.Skipf("SKIPPING: %s does not report its executable (sys.executable); cannot run or compile the layer's Python functions", py)
	}
	return pythonPath
}

// pyResult is what runPython reports about one Python function call.
type pyResult struct {
	Fatal *string `json:"fatal"`
	// Skip is the reason of a bb.parse.SkipRecipe, as BitBake reports a skipped recipe.
	Skip  *string           `json:"skip"`
	Notes []string          `json:"notes"`
	Flags map[string]string `json:"flags"`
}

// pyHarness runs a BitBake Python function body with a datastore stub d and a bb stub whose
// fatal raises. d.getVar expands as BitBake's data_smart does: ${VAR} references first, then
// inline ${@python} with the same pattern BitBake uses, repeated until nothing changes, with
// the files' def functions in scope. Unset variables stay as literal ${VAR}, as in BitBake.
const pyHarness = `
import json, os, re, sys, types
req = json.load(sys.stdin)
vars = req["vars"]
class Fatal(Exception):
    pass
class SkipRecipe(Exception):
    pass
notes = []
def fatal(msg):
    raise Fatal(msg)
def contains(variable, checkvalues, truevalue, falsevalue, d):
    have = set((d.getVar(variable) or "").split())
    want = set(checkvalues.split()) if isinstance(checkvalues, str) else set(checkvalues)
    return truevalue if want.issubset(have) else falsevalue
def vercmp_string_op(a, b, op):
    # bb.utils.vercmp_string_op for dotted numeric versions.
    ta, tb = [tuple(int(x) for x in v.split(".")) for v in (a, b)]
    return {"<": ta < tb, "<=": ta <= tb, ">": ta > tb, ">=": ta >= tb, "=": ta == tb, "==": ta == tb, "!=": ta != tb}[op]
bb = types.SimpleNamespace(fatal=fatal, note=notes.append, warn=notes.append,
    utils=types.SimpleNamespace(contains=contains, vercmp_string_op=vercmp_string_op),
    parse=types.SimpleNamespace(SkipRecipe=SkipRecipe))
ns = {"bb": bb, "os": os, "VARS": vars}
for src in req["defs"]:
    exec(compile(src, "def", "exec"), ns)
VAR = re.compile(r"\$\{[a-zA-Z0-9\-_+./~:]+?\}")
PY = re.compile(r"\$\{@(?:\{.*?\}|.)+?\}")
flags = {}
class D:
    def expand(self, s, depth=0):
        if depth > 50:
            raise RuntimeError("recursive expansion of %r" % s)
        while True:
            new = VAR.sub(lambda m: self.expand(vars[m.group(0)[2:-1]], depth + 1) if m.group(0)[2:-1] in vars else m.group(0), s)
            new = PY.sub(lambda m: str(eval(m.group(0)[3:-1], ns, {"d": self})), new)
            if new == s:
                return s
            s = new
    def getVar(self, name, expand=True):
        v = vars.get(name)
        return self.expand(v) if v is not None and expand else v
    def appendVarFlag(self, var, flag, value):
        key = var + "[" + flag + "]"
        flags[key] = flags.get(key, "") + value
exec(compile("def f(d):\n" + req["body"] + "\n", "body", "exec"), ns)
res = {"fatal": None, "skip": None}
try:
    ns["f"](D())
except Fatal as e:
    res["fatal"] = str(e)
except SkipRecipe as e:
    res["skip"] = str(e)
res["notes"] = notes
res["flags"] = flags
print(json.dumps(res))
`

// defs returns the def functions of files, which BitBake puts in scope of every Python
// function and inline expression of the recipe.
func defs(files ...*File) []Function {
	var out []Function
	for _, f := range files {
		for _, fn := range f.Functions {
			if fn.Kind == Def {
				out = append(out, fn)
			}
		}
	}
	return out
}

// runPython calls a Python function body of the layer with vars, unexpanded (the harness
// expands them as BitBake would), and the def functions given.
func runPython(t *testing.T, fn Function, vars map[string]string, defFns ...Function) pyResult {
	t.Helper()
	py := python3(t)
	req := struct {
		Vars map[string]string `json:"vars"`
		Body string            `json:"body"`
		Defs []string          `json:"defs"`
	}{Vars: vars, Body: fn.Body, Defs: []string{}}
	for _, d := range defFns {
		req.Defs = append(req.Defs, "def "+d.Name+"("+d.Params+"):\n"+d.Body+"\n")
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", pyHarness)
	cmd.Stdin = bytes.NewReader(in)
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

// pyExpand expands value as BitBake would (inline Python included) with vars and defFns.
func pyExpand(t *testing.T, value string, vars map[string]string, defFns ...Function) string {
	t.Helper()
	all := map[string]string{"__PYEXPAND__": value}
	for k, v := range vars {
		all[k] = v
	}
	fn := Function{Name: "expand", Kind: Python, Body: "    bb.note(d.getVar('__PYEXPAND__'))"}
	res := runPython(t, fn, all, defFns...)
	if res.Fatal != nil || len(res.Notes) != 1 {
		t.Fatalf("expanding %q: fatal %v, notes %q", value, res.Fatal, res.Notes)
	}
	return res.Notes[0]
}

// expandAll is datastore followed by BitBake's expansion of every value, inline Python
// included, with the files' def functions in scope: what the tasks of a recipe see. Values
// whose expansion fails (they need variables only BitBake has) stay unexpanded.
func expandAll(t *testing.T, defaults map[string]string, files []*File, forced map[string]string) map[string]string {
	t.Helper()
	raw := datastore(defaults, files, forced)
	body := `    import json
    out = {}
    for k in VARS:
        try:
            out[k] = d.getVar(k)
        except Exception:
            out[k] = VARS[k]
    bb.note(json.dumps(out))`
	res := runPython(t, Function{Name: "expandAll", Kind: Python, Body: body}, raw, defs(files...)...)
	if res.Fatal != nil || len(res.Notes) != 1 {
		t.Fatalf("expanding the datastore: fatal %v, notes %q", res.Fatal, res.Notes)
	}
	out := map[string]string{}
	if err := json.Unmarshal([]byte(res.Notes[0]), &out); err != nil {
		t.Fatal(err)
	}
	return out
}
