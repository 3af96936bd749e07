package yocto

import (
	"crypto/md5"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// layerDir returns the Yocto layer under test.
func layerDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(testkit.RepoRoot(t), "bitbake", "meta-otabake")
}

// layerFiles returns every BitBake file under bitbake/.
func layerFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(testkit.RepoRoot(t), "bitbake"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch filepath.Ext(p) {
		case ".bb", ".bbappend", ".bbclass", ".conf", ".inc":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d BitBake files under bitbake/: %v", len(files), files)
	}
	return files
}

func parseFile(t *testing.T, path string) *File {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(path, src)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return f
}

func TestLayerFilesParse(t *testing.T) {
	for _, p := range layerFiles(t) {
		t.Run(strings.TrimPrefix(p, testkit.RepoRoot(t)+"/"), func(t *testing.T) {
			f := parseFile(t, p)
			if len(f.Assignments)+len(f.Functions)+len(f.Directives) == 0 {
				t.Fatal("parsed to nothing")
			}
		})
	}
}

// TestPythonCompiles compiles every Python function body with python3, the oracle for what
// the indentation and bracket checks approximate.
func TestPythonCompiles(t *testing.T) {
	py := python3(t)
	n := 0
	for _, p := range layerFiles(t) {
		for _, fn := range parseFile(t, p).Functions {
			if fn.Kind == Shell {
				continue
			}
			n++
			src := "def f(d):\n" + fn.Body + "\n"
			if fn.Kind == Def {
				src = "def f():\n" + fn.Body + "\n"
			}
			cmd := exec.Command(py, "-c", "import sys; compile(sys.stdin.read(), sys.argv[1], 'exec')", p+":"+fn.Name)
			cmd.Stdin = strings.NewReader(src)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s:%d: python function %q does not compile: %v\n%s", p, fn.Line, fn.Name, err, out)
			}
		}
	}
	if n < 2 {
		t.Fatalf("compiled only %d Python functions; the layer has at least the validation task and the class's anonymous function", n)
	}
}

// declaredSeries are the series the layer declares and the real BitBake checks
// (bitbake/meta-otabake/README.md, "Checked with the real BitBake"), with oe-core's Go on each
// (meta/recipes-devtools/go/go-*.inc per branch of openembedded-core).
var declaredSeries = map[string]string{"scarthgap": "1.22", "wrynose": "1.26"}

// goDirective returns the "go" line of a module file of the repository.
func goDirective(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), name))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s has no go directive", name)
	}
	return string(m[1])
}

// minorVersion cuts a Go version to its major.minor ("1.22.12" -> "1.22").
func minorVersion(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

func TestLayerConf(t *testing.T) {
	f := parseFile(t, filepath.Join(layerDir(t), "conf", "layer.conf"))
	compat := f.Values("LAYERSERIES_COMPAT_otabake")
	if len(compat) != 1 {
		t.Fatalf("LAYERSERIES_COMPAT_otabake assigned %d times", len(compat))
	}
	got := strings.Fields(compat[0])
	sort.Strings(got)
	var want []string
	for s := range declaredSeries {
		want = append(want, s)
	}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("LAYERSERIES_COMPAT_otabake = %q, want exactly the series checked with the real BitBake: %q", got, want)
	}
	if v := f.Values("BBFILE_COLLECTIONS"); len(v) != 1 || strings.TrimSpace(v[0]) != "otabake" {
		t.Errorf("BBFILE_COLLECTIONS = %q", v)
	}
	// otabake-native builds where the series' Go is at least go.mod's; the agent everywhere.
	if v := f.Values("OTABAKE_NATIVE_GO"); len(v) != 1 || v[0] != minorVersion(goDirective(t, "go.mod")) {
		t.Errorf("OTABAKE_NATIVE_GO = %q, want go.mod's go %s", v, goDirective(t, "go.mod"))
	}
	agentGo := minorVersion(goDirective(t, "go.agent.mod"))
	for s, goVersion := range declaredSeries {
		if versionLess(goVersion, agentGo) {
			t.Errorf("go.agent.mod needs Go %s, but %s ships Go %s", agentGo, s, goVersion)
		}
	}
	var hosttool bool
	for _, a := range f.Assignments {
		hosttool = hosttool || (a.Name == "HOSTTOOLS_NONFATAL" && a.Op == "+=" && strings.Contains(" "+a.Value+" ", " otabake "))
	}
	if !hosttool {
		t.Error(`layer.conf lacks HOSTTOOLS_NONFATAL += "otabake": on series whose Go cannot build otabake-native, the class has no otabake`)
	}
}

// versionLess compares major.minor Go versions.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, _ := strconv.Atoi(pa[i])
		nb, _ := strconv.Atoi(pb[i])
		if na != nb {
			return na < nb
		}
	}
	return len(pa) < len(pb)
}

// commonLicenseMD5 are the md5 sums of openembedded-core's meta/files/common-licenses, the
// same on scarthgap and wrynose.
var commonLicenseMD5 = map[string]string{
	"MIT":          "0835ade698e0bcf8506ecda2f7b4f302",
	"Apache-2.0":   "89aea4e17d99a7cacdbeed46a0096b10",
	"BSD-2-Clause": "cb641bc04cda31daea161b1bc15da69f",
	"BSD-3-Clause": "550794465ba0ec5312d6919e203a55f9",
	"ISC":          "f3b90e78ea0cffb20bf5cca7947a896d",
	"MPL-2.0":      "815ca599c9df247a0c7f619bab123dad",
}

// TestLicenseChecksum keeps LIC_FILES_CHKSUM in step with the repository's LICENSE and
// openembedded-core's common licenses, which BitBake would otherwise reject in
// do_populate_lic, and checks that every license LICENSE names has a file there.
func TestLicenseChecksum(t *testing.T) {
	for _, recipe := range []string{"otabake-agent_git.bb", "otabake-native_git.bb"} {
		t.Run(recipe, func(t *testing.T) {
			f := parseFile(t, filepath.Join(layerDir(t), "recipes-otabake", "otabake", recipe))
			v := f.Values("LIC_FILES_CHKSUM")
			if len(v) != 1 {
				t.Fatalf("LIC_FILES_CHKSUM assigned %d times", len(v))
			}
			have := map[string]bool{}
			for _, entry := range strings.Fields(v[0]) {
				if m := regexp.MustCompile(`^file://src/\$\{GO_IMPORT\}/(\S+);md5=([0-9a-f]{32})$`).FindStringSubmatch(entry); m != nil {
					data, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), m[1]))
					if err != nil {
						t.Fatal(err)
					}
					sum := md5.Sum(data)
					if got := hex.EncodeToString(sum[:]); got != m[2] {
						t.Errorf("LIC_FILES_CHKSUM md5 = %s, %s has md5 %s", m[2], m[1], got)
					}
					have["MIT"] = true // otabake's own LICENSE
					continue
				}
				m := regexp.MustCompile(`^file://\$\{COMMON_LICENSE_DIR\}/(\S+);md5=([0-9a-f]{32})$`).FindStringSubmatch(entry)
				if m == nil {
					t.Errorf("LIC_FILES_CHKSUM entry %q: want file://src/${GO_IMPORT}/FILE or file://${COMMON_LICENSE_DIR}/NAME with an md5", entry)
					continue
				}
				if commonLicenseMD5[m[1]] != m[2] {
					t.Errorf("LIC_FILES_CHKSUM %s md5 = %s, openembedded-core's is %q", m[1], m[2], commonLicenseMD5[m[1]])
				}
				have[m[1]] = true
			}
			lic := f.Values("LICENSE")
			if len(lic) != 1 {
				t.Fatalf("LICENSE assigned %d times", len(lic))
			}
			for _, name := range strings.Fields(strings.ReplaceAll(lic[0], "&", " ")) {
				if !have[name] {
					t.Errorf("LICENSE names %s, which LIC_FILES_CHKSUM has no file for", name)
				}
			}
		})
	}
}

// TestRecipesMatchRepository checks that what the recipes build and install exists here.
func TestRecipesMatchRepository(t *testing.T) {
	dir := filepath.Join(layerDir(t), "recipes-otabake", "otabake")
	for _, tc := range []struct{ recipe, cmd string }{
		{"otabake-agent_git.bb", "otabake-agent"},
		{"otabake-native_git.bb", "otabake"},
	} {
		f := parseFile(t, filepath.Join(dir, tc.recipe))
		if v := f.Values("GO_INSTALL"); len(v) != 1 || v[0] != "${GO_IMPORT}/cmd/"+tc.cmd {
			t.Errorf("%s: GO_INSTALL = %q", tc.recipe, v)
		}
		if _, err := os.Stat(filepath.Join(testkit.RepoRoot(t), "cmd", tc.cmd, "main.go")); err != nil {
			t.Errorf("%s builds cmd/%s: %v", tc.recipe, tc.cmd, err)
		}
	}
	agent := parseFile(t, filepath.Join(dir, "otabake-agent_git.bb"))
	units := agent.Values("SYSTEMD_SERVICE:${PN}")
	if len(units) != 1 {
		t.Fatalf("SYSTEMD_SERVICE:${PN} assigned %d times", len(units))
	}
	for _, u := range strings.Fields(units[0]) {
		if _, err := os.Stat(filepath.Join(testkit.RepoRoot(t), "dist", "systemd", u)); err != nil {
			t.Errorf("SYSTEMD_SERVICE names %s: %v", u, err)
		}
	}
	inc := parseFile(t, filepath.Join(dir, "otabake.inc"))
	if v := inc.Values("GO_IMPORT"); len(v) != 1 || v[0] != "github.com/otabake/otabake" {
		t.Errorf("GO_IMPORT = %q, want the module path of go.mod", v)
	}
	if v := inc.Values("CGO_ENABLED"); len(v) != 1 || v[0] != "0" {
		t.Errorf("CGO_ENABLED = %q, want \"0\" (static binaries)", v)
	}
	// Every file the recipes take from the checked-out repository exists here.
	refRE := regexp.MustCompile(`\$\{OTABAKE_SRC\}/([A-Za-z0-9_./-]+)`)
	for _, name := range []string{"otabake.inc", "otabake-agent_git.bb", "otabake-native_git.bb"} {
		src, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range refRE.FindAllStringSubmatch(string(src), -1) {
			if _, err := os.Stat(filepath.Join(testkit.RepoRoot(t), m[1])); err != nil {
				t.Errorf("%s uses ${OTABAKE_SRC}/%s: %v", name, m[1], err)
			}
		}
	}
	var validate bool
	for _, d := range agent.Directives {
		if d.Keyword == "addtask" && d.Args[0] == "validate_otabake" && strings.Contains(strings.Join(d.Args, " "), "before do_fetch") {
			validate = true
		}
	}
	if !validate {
		t.Error("otabake-agent has no `addtask validate_otabake before do_fetch`")
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"assignments", "A = \"1\"\nB ?= \"2\"\nC ??= \"3\"\nD := \"${A}\"\nE += \"x\"\nF =+ \"y\"\nG .= \"z\"\nH =. \"w\"\n"},
		{"single quotes", "GO_LDFLAGS = '-ldflags=\"-s\"'\n"},
		{"overrides", "FILES:${PN} += \"/x\"\nA:append = \" b\"\nA:prepend:class-native = \"c \"\nA:remove = \"d\"\n"},
		{"flags", "do_install[depends] += \"x-native:do_populate_sysroot\"\ndo_compile[network] = \"1\"\n"},
		{"continuation", "SRC_URI = \"a \\\n    b \\\n\"\n"},
		{"export", "export GOFLAGS\nexport CGO_ENABLED = \"0\"\nunset FOO\n"},
		{"inherit require include", "inherit go-mod systemd\nrequire otabake.inc\ninclude optional.inc\n"},
		{"addtask", "addtask validate before do_fetch\naddtask x after do_a do_b before do_c\ndeltask do_y\n"},
		{"inline python", "X = \"${@'a' if d.getVar('Y') in ('1', 'b}') else 'c'}\"\n"},
		{"shell function", "do_install() {\n\tx=\"$(dirname \"$f\")\"\n\techo '${A}' \"${f#./}\" ${v:+--v \"$v\"} # it's fine\n\tcase \"$a\" in 0 | no) : ;; esac\n}\n"},
		{"here-documents", "do_x() {\n\tcat >\"$f\" <<'EOF'\nit's \"quoted\" $(not\nEOF\n\tcat <<-END | sed 's/a/b/'\n\t\tdon't\n\tEND\n\techo $((1 << 2))\n}\n"},
		{"python function", "python do_x() {\n    if d.getVar('A'):\n        bb.fatal(\"no\")\n    x = [1,\n         2]\n}\n"},
		{"anonymous python", "python () {\n    pass\n}\n"},
		{"def", "def f(d):\n    return 'x'\n\nA = \"1\"\n"},
		{"comments", "# a comment\n\n  # indented comment\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse("t.bb", []byte(tc.src)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestParseRejects proves that the checker catches the mistakes it exists for.
func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"unbalanced double quote", "A = \"x\n", "one quoted string"},
		{"quote inside value", "A = \"a\"b\"\n", "unbalanced quotes"},
		{"unquoted value", "A = x\n", "one quoted string"},
		{"mismatched quotes", "A = \"x'\n", "one quoted string"},
		{"unclosed brace", "A = \"${B\"\n", "unbalanced braces"},
		{"unclosed inline python", "A = \"${@d.getVar('B')\"\n", "inline Python"},
		{"inline python string", "A = \"${@d.getVar('B)}\"\n", "unterminated ' string"},
		{"unknown construct", "frobnicate the layer\n", "unknown construct"},
		{"unknown operator", "A =~ \"x\"\n", "one quoted string"},
		{"addtask without tasks", "addtask x before\n", "names no task"},
		{"addtask bad keyword", "addtask x until do_y\n", "want before or after"},
		{"addtask no name", "addtask\n", "needs an argument"},
		{"require two files", "require a.inc b.inc\n", "takes one file"},
		{"continuation at eof", "A = \"x \\", "continuation at the end"},
		{"comment continuation", "# a \\\nA = \"1\"\n", "comment ends with a backslash"},
		{"function not closed", "do_x() {\n\techo\n", "no closing }"},
		{"shell single quote", "do_x() {\n\techo 'a\n}\n", "unterminated ' quote"},
		{"shell double quote", "do_x() {\n\techo \"a\n}\n", "unterminated \""},
		{"shell command substitution", "do_x() {\n\tx=$(echo a\n}\n", "unterminated $("},
		{"shell parameter", "do_x() {\n\techo ${a\n}\n", "unterminated ${"},
		{"unterminated here-document", "do_x() {\n\tcat <<EOF\nbody\n}\n", "here-document EOF is not terminated"},
		{"bad quote after here-document", "do_x() {\n\tcat <<EOF\nbody\nEOF\n\techo 'a\n}\n", "t.bb:5: shell function do_x: unterminated ' quote"},
		{"python unexpected indent", "python do_x() {\n    a = 1\n        b = 2\n}\n", "unexpected indent"},
		{"python bad dedent", "python do_x() {\n    if a:\n        b = 2\n      c = 3\n}\n", "unindent does not match"},
		{"python missing block", "python do_x() {\n    if a:\n    b = 2\n}\n", "expected an indented block"},
		{"python unclosed bracket", "python do_x() {\n    x = (1,\n}\n", "unclosed ("},
		{"python wrong bracket", "python do_x() {\n    x = (1]\n}\n", "closes the ("},
		{"python unterminated string", "python do_x() {\n    bb.fatal(\"x)\n}\n", "unterminated \" string"},
		{"python unindented body", "python do_x() {\nx = 1\n}\n", "must be indented"},
		{"python tabs and spaces", "python do_x() {\n    if a:\n\tb = 1\n}\n", "mixes tabs and spaces"},
		{"stray indented line", "A = \"1\"\n    B = \"2\"\n", "unexpected indented line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.bb", []byte(tc.src))
			if err == nil {
				t.Fatalf("Parse accepted %q", tc.src)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "t.bb:") {
				t.Fatalf("error %q does not name the file and line", err)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "B": "${A}b", "PN": "otabake-agent"}
	for _, tc := range []struct{ in, want string }{
		{"${B}", "ab"},
		{"${D}${B}", "${D}ab"},
		{"${f#./} ${v:+x}", "${f#./} ${v:+x}"},
		{"FILES:${PN}", "FILES:otabake-agent"},
	} {
		got, err := Expand(tc.in, vars)
		if err != nil || got != tc.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := Expand("${@d.getVar('A')}", vars); err == nil {
		t.Error("Expand accepted inline Python")
	}
	if _, err := Expand("${X}", map[string]string{"X": "${Y}", "Y": "${X}"}); err == nil {
		t.Error("Expand accepted a cycle")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("A = \"1\"\ndo_x() {\n\techo \"$(a)\"\n}\npython () {\n    if x:\n        y()\n}\n"))
	f.Add([]byte("X = \"${@'a' if d.getVar('Y') else 'b'}\"\naddtask x before do_y after do_z\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse("fuzz.bb", src)
		if file == nil {
			t.Fatal("Parse returned no file")
		}
		if err == nil {
			for _, fn := range file.Functions {
				if fn.Kind == Shell && checkShell(fn.Body) != nil {
					t.Fatalf("accepted file holds a shell function that fails checkShell")
				}
			}
		}
	})
}
