package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// The drop-in scripts must run on the bash macOS ships, 3.2 (3.2.57), as well as on current
// bash. How that is tested, strongest first:
//
//   - Real bash 3.2, when the test finds one: OTABAKE_BASH32=/path/to/bash (or bash3.2 or
//     bash-3.2 on PATH), checked to report version 3.2. TestDropInScripts runs every case under
//     it, and TestBash32Rules proves that each construct the scanner refuses really breaks there.
//     It can be built from the bash-3.2.48 sources (the bminor/bash mirror of GNU bash's history,
//     commit "Imported from ../bash-3.2.48.tar.gz"): regenerate y.tab.c with bison -y -d
//     parse.y, then ./configure --without-bash-malloc --disable-nls with
//     CFLAGS="-std=gnu89 -fcommon -Wno-implicit-function-declaration -Wno-implicit-int
//     -Wno-int-conversion -Wno-incompatible-pointer-types -Wno-return-type" and make -j1.
//     Without it, the test says SKIPPED and these two proofs are not made.
//   - Always: every case runs under the installed bash and again with BASH_COMPAT=3.2, which
//     switches on bash's own compat32 behaviours (locale-aware [[ < ]], quoting rules). It does
//     NOT bring back 3.2's errors: an empty "${arr[@]}" under set -u, which aborts bash before
//     4.4, expands to nothing under any BASH_COMPAT. The cases that would hit such an error
//     (upload-release.sh without arguments expands its empty argument array) therefore only fail
//     under a real bash 3.2.
//   - Always: a static scanner (bash32Rules) refuses the constructs bash 3.2 lacks or treats
//     differently, each rule with an example that the installed bash runs correctly and the
//     rule flags, and guarded forms the scanner must accept; plus shellcheck.
//
// What none of this proves: behaviour of the external commands the scripts call on macOS (BSD
// userland), and constructs no rule names.

// bash32 finds a real bash 3.2, or "" with the reason.
func bash32(t *testing.T) (string, string) {
	t.Helper()
	path := os.Getenv("OTABAKE_BASH32")
	if path == "" {
		for _, name := range []string{"bash3.2", "bash-3.2"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		return "", "no bash 3.2: set OTABAKE_BASH32 to one (see the comment above bash32)"
	}
	out, err := exec.Command(path, "-c", `echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}"`).Output()
	if err != nil || strings.TrimSpace(string(out)) != "3.2" {
		t.Fatalf("OTABAKE_BASH32=%s is not bash 3.2 (%q, %v)", path, out, err)
	}
	return path, ""
}

// shell is one way of running the scripts.
type shell struct {
	name string
	path string
	env  []string
}

func shells(t *testing.T) []shell {
	t.Helper()
	bash := testkit.NeedTool(t, "bash", "bash", "the scripts did not run")
	list := []shell{{"bash", bash, nil}, {"bash BASH_COMPAT=3.2", bash, []string{"BASH_COMPAT=3.2"}}}
	if b32, why := bash32(t); b32 != "" {
		list = append(list, shell{"bash 3.2", b32, nil})
	} else {
		t.Logf("SKIPPED real bash 3.2 runs: %s", why)
	}
	return list
}

// TestDropInScripts runs scripts/*.sh with OTABAKE pointing at a stub that records its
// arguments: each drop-in takes the template script's arguments and environment and calls the
// otabake command with the same semantics (nexigon/nexigon-rugix-template scripts/). Every case
// runs under each shell of shells.
func TestDropInScripts(t *testing.T) {
	scripts, err := filepath.Abs(filepath.Join("..", "..", "scripts"))
	if err != nil {
		t.Fatal(err)
	}
	release := "BUILD_TAG=build-1\nFLOATING_TAG=latest-build-main\nVERSION=build-1\nVERSION_ID=pkg_v_1\n"
	tests := []struct {
		script  string
		args    []string
		env     []string
		files   map[string]string // project files; "+x" suffix on the name makes it executable
		want    string            // the recorded command line
		wantErr string
	}{
		{script: "prepare-release.sh", want: "otabake prepare-release"},
		{script: "prepare-release.sh", args: []string{"--local"}, want: "otabake prepare-release --local"},
		{script: "build-vars.sh", want: "otabake prepare-release --print-vars"},
		{script: "build-release.sh", args: []string{"a", "b"}, want: "otabake build-release a b"},
		{script: "build-release.sh", wantErr: "usage:"},
		{script: "upload-release.sh", want: "otabake upload-release"}, // no systems: an empty array under set -u
		{script: "upload-release.sh", args: []string{"a"}, want: "otabake upload-release --system a"},
		{script: "upload-release.sh", args: []string{"a", "b c"}, want: "otabake upload-release --system a --system b c"},
		{script: "stabilize-release.sh", want: "otabake promote-release --from-floating --tag stable"},
		{script: "stabilize-release.sh", env: []string{"STABLE_TAG=beta"}, want: "otabake promote-release --from-floating --tag beta"},
		{script: "stabilize-release.sh", args: []string{"--partial", "x"}, want: "otabake promote-release --from-floating --tag stable --partial x"},
		{script: "promote-release.sh", want: "otabake promote-release --tag stable"},
		{script: "promote-release.sh", env: []string{"STABLE_TAG=beta"}, args: []string{"--partial", "x"}, want: "otabake promote-release --tag beta --partial x"},
		{script: "run-release.sh", args: []string{"efi"}, wantErr: ".release-env not found"},
		{script: "run-release.sh", files: map[string]string{".release-env": release}, wantErr: "expected exactly one system"},
		{script: "run-release.sh", args: []string{"efi"}, files: map[string]string{".release-env": release, "build/efi/system.img": "img"},
			want: "otabake run efi"},
		{script: "run-release.sh", args: []string{"efi"}, files: map[string]string{".release-env": release, "run-bakery+x": "#!/bin/sh\necho \"run-bakery $*\" >>\"$RECORD\"\n"},
			want: "run-bakery run efi --release-version build-1"},
		{script: "run-release.sh", args: []string{"efi"}, files: map[string]string{".release-env": release}, wantErr: "build/efi/system.img not found"},
	}
	ran := map[string]bool{}
	for _, sh := range shells(t) {
		for _, tt := range tests {
			ran[tt.script] = true
			t.Run(sh.name+"/"+tt.script+" "+strings.Join(tt.args, " "), func(t *testing.T) {
				dir := t.TempDir()
				record := filepath.Join(t.TempDir(), "record")
				stub := filepath.Join(t.TempDir(), "otabake")
				if err := os.WriteFile(stub, []byte("#!/bin/sh\necho \"otabake $*\" >>\"$RECORD\"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				for name, content := range tt.files {
					mode := os.FileMode(0o644)
					if n, ok := strings.CutSuffix(name, "+x"); ok {
						name, mode = n, 0o755
					}
					testkit.WriteFile(t, filepath.Join(dir, name), content)
					if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
						t.Fatal(err)
					}
				}
				cmd := exec.Command(sh.path, append([]string{filepath.Join(scripts, tt.script)}, tt.args...)...)
				cmd.Dir = dir
				env := append(os.Environ(), "OTABAKE="+stub, "RECORD="+record, "STABLE_TAG=", "BASH_COMPAT=")
				cmd.Env = append(append(env, sh.env...), tt.env...)
				out, err := cmd.CombinedOutput()
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(string(out), tt.wantErr) {
						t.Fatalf("err %v, output %q, want %q", err, out, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				if len(out) > 0 && !strings.HasPrefix(tt.script, "run-release") {
					t.Errorf("unexpected output (a shell error?): %s", out)
				}
				got, err := os.ReadFile(record)
				if err != nil {
					t.Fatal(err)
				}
				if strings.TrimSpace(string(got)) != tt.want {
					t.Errorf("ran %q, want %q", strings.TrimSpace(string(got)), tt.want)
				}
			})
		}
	}
	for _, p := range dropIns(t) {
		if !ran[filepath.Base(p)] {
			t.Errorf("%s: no case runs it", p)
		}
	}
}

func dropIns(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "scripts", "*.sh"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	return paths
}

// bash32Rule is a construct bash 3.2 lacks or treats differently. bad is a small program the
// installed bash runs, printing want; bash 3.2 fails on it, complains, or prints something
// else (checked by TestBash32Rules when a bash 3.2 is at hand).
type bash32Rule struct {
	why  string
	re   *regexp.Regexp
	bad  string
	want string
}

const nameRE = `[A-Za-z_][A-Za-z0-9_]*`

var bash32Rules = []bash32Rule{
	// unguardedArray handles "${a[@]}"/"${a[*]}" (empty arrays are unbound under set -u before
	// bash 4.4); listed here for its example.
	{"empty array expansion under set -u is an unbound variable before bash 4.4: write ${a[@]+\"${a[@]}\"}", nil,
		"set -u; a=(); printf '<%s>' \"${a[@]}\"; echo ok", "<>ok"},
	{"associative arrays, namerefs, case attributes and declare -g are bash 4+",
		regexp.MustCompile(`\b(declare|local|typeset|readonly)\s+(-[A-Za-z]+\s+)*-[A-Za-z]*[Anlug]`),
		"declare -A m; m[x]=1; echo ${m[x]}", "1"},
	{"mapfile/readarray are bash 4+", regexp.MustCompile(`\b(mapfile|readarray)\b`),
		"mapfile -t a < <(echo x); echo ${a[0]}", "x"},
	{"case modification ${v,,} ${v^^} is bash 4+", regexp.MustCompile(`\$\{` + nameRE + `(\[[^]]*\])?(\^\^?|,,?)`),
		"v=AB; echo ${v,,}", "ab"},
	{"&>> is bash 4+", regexp.MustCompile(`&>>`),
		"f=$(mktemp); echo x &>> \"$f\"; cat \"$f\"; rm -f \"$f\"", "x"},
	{"|& is bash 4+", regexp.MustCompile(`\|&`),
		"echo x |& cat", "x"},
	{"negative array subscripts are bash 4.3+", regexp.MustCompile(`\$\{` + nameRE + `\[-[0-9]|\b` + nameRE + `\[-[0-9]+\]=`),
		"a=(1 2); echo ${a[-1]}", "2"},
	{"${v@Q} transformations are bash 4.4+", regexp.MustCompile(`\$\{[^}]*@[QEPAaKkUuL]\}`),
		"v=1; echo ${v@Q}", "'1'"},
	{"coproc is bash 4+", regexp.MustCompile(`\bcoproc\b`),
		"coproc { echo x; }; read -r l <&\"${COPROC[0]}\"; echo $l", "x"},
	{";& and ;;& in case are bash 4+", regexp.MustCompile(`;;&|(^|[^;&]);&($|[^&])`),
		"case a in a) printf 1;& b) echo 2;; esac", "12"},
	{"these shell options are bash 4+", regexp.MustCompile(`\bshopt\s+-[su]\s+.*\b(globstar|lastpipe|inherit_errexit|autocd|checkjobs|dirspell|direxpand|globasciiranges|localvar_inherit|localvar_unset|assoc_expand_once|patsub_replacement|varredir_close)\b`),
		"shopt -s lastpipe; echo ok", "ok"},
	{"BASHPID, EPOCHSECONDS, EPOCHREALTIME, SRANDOM and BASH_ARGV0 are bash 4+", regexp.MustCompile(`\$\{?(BASHPID|EPOCHSECONDS|EPOCHREALTIME|SRANDOM|BASH_ARGV0)\b`),
		"set -u; [ \"$BASHPID\" -gt 0 ] && echo ok", "ok"},
	{"wait -n/-f/-p is bash 4.3+", regexp.MustCompile(`\bwait\s+-[A-Za-z]*[nfp]`),
		"sleep 0 & wait -n; echo ok", "ok"},
	{"test -v and -R are bash 4.2+", regexp.MustCompile(`(\[\[?|\btest)\s+(!\s+)?-[vR]\s`),
		"x=1; [[ -v x ]] && echo ok", "ok"},
	{"brace ranges with a step are bash 4+", regexp.MustCompile(`\{-?[0-9A-Za-z]+\.\.-?[0-9A-Za-z]+\.\.-?[0-9]+\}`),
		"echo {1..5..2}", "1 3 5"},
	{"{fd}> redirections are bash 4.1+", regexp.MustCompile(`(^|[^$])\{` + nameRE + `\}[<>]`),
		"exec {fd}>/dev/null; echo ok", "ok"},
	{"read -N and -i are bash 4+", regexp.MustCompile(`\bread(\s+-[A-Za-z]+)*\s+-[A-Za-z]*[Ni]`),
		"read -r -N 1 c <<< x; echo $c", "x"},
	{"fractional read -t timeouts are bash 4+", regexp.MustCompile(`\bread\b[^;|&]*-t\s*[0-9]*\.[0-9]`),
		"read -t 0.5 x <<< y; echo $x", "y"},
	{"printf %(...)T is bash 4.2+", regexp.MustCompile(`%\([^)]*\)T`),
		"printf '%(%Y)T\\n' 0 | grep -q 1970 && echo ok", "ok"},
	{"negative substring lengths are bash 4.2+", regexp.MustCompile(`\$\{` + nameRE + `:[^}:]*:\s*-[0-9]`),
		"v=abc; echo ${v:0:-1}", "ab"},
	{"local - is bash 4.4+", regexp.MustCompile(`\blocal\s+-($|[\s;])`),
		"f() { local -; set -f; }; f; echo ok", "ok"},
}

// Forms bash 3.2 runs as bash 5 does; the scanner must accept them.
var bash32Good = []struct{ prog, want string }{
	{"set -u; a=(); printf '<%s>' ${a[@]+\"${a[@]}\"}; echo ok", "<>ok"},
	{"set -u; a=(x 'y z'); printf '<%s>' ${a[@]+\"${a[@]}\"}; echo", "<x><y z>"},
	{"set -u; a=(); echo ${#a[@]}", "0"},
	{"set -u; f() { printf '<%s>' \"$@\"; echo ok; }; f", "<>ok"},
	{"set -euo pipefail; a=(); a+=(--system x); printf '%s ' ${a[@]+\"${a[@]}\"}; echo", "--system x"},
	{"printf -v v '%s' x; echo $v", "x"},
	{"x=abc; [[ $x =~ ^a ]] && echo ${BASH_REMATCH[0]}", "a"},
	{"f() { local -a a=(1); local r=${a[0]}; echo $r; }; f", "1"},
	{"v=abc; echo ${v: -1} ${v:0:2} ${v/#a/z}", "c ab zbc"},
	{"echo {1..3}", "1 2 3"},
	{"echo x &>/dev/null; echo ok", "ok"},
	{"read -r -t 1 x <<< y; echo $x", "y"},
	{"case a in a) echo 1;; esac", "1"},
}

var arrayExpansion = regexp.MustCompile(`"?\$\{` + nameRE + `\[[@*]\](\}|:)`)

// unguardedArray reports "${a[@]}", "${a[*]}", ${a[@]} and slices of them that are not the
// inner part of the ${a[@]+"${a[@]}"} guard.
func unguardedArray(line string) bool {
	for _, m := range arrayExpansion.FindAllStringIndex(line, -1) {
		if m[0] == 0 || line[m[0]-1] != '+' {
			return true
		}
	}
	return false
}

// bash32Problems scans a script, skipping comment lines.
func bash32Problems(src string) []string {
	var out []string
	for i, line := range strings.Split(src, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if unguardedArray(line) {
			out = append(out, fmt.Sprintf("line %d: %s: %s", i+1, bash32Rules[0].why, strings.TrimSpace(line)))
		}
		for _, r := range bash32Rules[1:] {
			if r.re.MatchString(line) {
				out = append(out, fmt.Sprintf("line %d: %s: %s", i+1, r.why, strings.TrimSpace(line)))
			}
		}
	}
	return out
}

func runBash(path, prog string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd := exec.Command(path, "-c", prog)
	cmd.Env = append(os.Environ(), "BASH_COMPAT=")
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return strings.TrimSpace(o.String()), e.String(), err
}

// TestBash32Rules proves the scanner: each rule's example is valid bash that the installed
// bash runs as expected and the scanner flags; each guarded form passes the scanner and runs.
// With a real bash 3.2, each example must break there and each guarded form must not.
func TestBash32Rules(t *testing.T) {
	bash := testkit.NeedTool(t, "bash", "bash", "the bash 3.2 rules were not checked")
	b32, why := bash32(t)
	for _, r := range bash32Rules {
		if out, _, err := runBash(bash, r.bad); err != nil || out != r.want {
			t.Errorf("%s: installed bash prints %q (%v) for %q, want %q", r.why, out, err, r.bad, r.want)
		}
		if len(bash32Problems(r.bad)) == 0 {
			t.Errorf("%s: the scanner does not flag %q", r.why, r.bad)
		}
		if b32 != "" {
			out, stderr, err := runBash(b32, r.bad)
			if err == nil && stderr == "" && out == r.want {
				t.Errorf("%s: bash 3.2 runs %q fine; the rule is not needed", r.why, r.bad)
			}
		}
	}
	for _, g := range bash32Good {
		if p := bash32Problems(g.prog); len(p) > 0 {
			t.Errorf("the scanner refuses %q: %v", g.prog, p)
		}
		shellsToRun := []string{bash}
		if b32 != "" {
			shellsToRun = append(shellsToRun, b32)
		}
		for _, sh := range shellsToRun {
			if out, stderr, err := runBash(sh, g.prog); err != nil || stderr != "" || out != g.want {
				t.Errorf("%s: %q prints %q, stderr %q (%v), want %q", sh, g.prog, out, stderr, err, g.want)
			}
		}
	}
	if b32 == "" {
		t.Logf("SKIPPED the bash 3.2 half: %s", why)
	}
}

// TestDropInScriptsPortable: the scripts (and the benchmark scripts) pass the bash 3.2 scanner
// and shellcheck, and the drop-ins start with #!/usr/bin/env bash as the template's do.
func TestDropInScriptsPortable(t *testing.T) {
	paths := dropIns(t)
	bench, err := filepath.Glob(filepath.Join("..", "..", "scripts", "bench", "*.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(append([]string{}, paths...), bench...) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, problem := range bash32Problems(string(data)) {
			t.Errorf("%s: %s", p, problem)
		}
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("#!/usr/bin/env bash\n")) {
			t.Errorf("%s: want #!/usr/bin/env bash", p)
		}
		if !bytes.Contains(data, []byte("\nset -euo pipefail\n")) {
			t.Errorf("%s: want set -euo pipefail (the template's scripts use it; the tests run with it)", p)
		}
	}
	sc := testkit.NeedTool(t, "shellcheck", "shellcheck", "scripts were NOT linted")
	if out, err := exec.Command(sc, append([]string{"--severity=style"}, append(paths, bench...)...)...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
