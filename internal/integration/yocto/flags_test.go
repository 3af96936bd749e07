package yocto

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// seriesVars are the variables BitBake and openembedded-core define on every declared series
// (scarthgap and wrynose: meta/conf/bitbake.conf, meta/classes-recipe/go.bbclass, image.bbclass,
// systemd.bbclass), which the layer may reference as ${VAR} without defining them.
// GO_SRCURI_DESTSUFFIX and UNPACKDIR are deliberately absent: scarthgap has neither (a
// ${GO_SRCURI_DESTSUFFIX} there stays literal and the sources unpack into a directory of that
// name), and GOBUILDMODE is read by no series.
var seriesVars = map[string]bool{
	"B": true, "BP": true, "COMMON_LICENSE_DIR": true, "D": true, "GO_BUILD_BINDIR": true,
	"IMAGE_LINK_NAME": true, "IMAGE_NAME": true, "IMAGE_ROOTFS": true, "IMGDEPLOYDIR": true,
	"LAYERDIR": true, "PN": true, "PV": true, "S": true, "WORKDIR": true,
	"bindir": true, "sysconfdir": true, "systemd_system_unitdir": true,
}

// TestReferencesDefinedOnEverySeries rejects what only real BitBake on the older series would
// catch: a ${VAR} in an assignment or function that neither the layer nor every declared
// series defines, so that it would stay a literal "${VAR}".
func TestReferencesDefinedOnEverySeries(t *testing.T) {
	files := map[string]*File{}
	defined := map[string]bool{}
	for _, p := range layerFiles(t) {
		if !strings.Contains(p, "meta-otabake") {
			continue
		}
		f := parseFile(t, p)
		files[p] = f
		for _, a := range f.Assignments {
			defined[strings.SplitN(a.Name, ":", 2)[0]] = true
		}
	}
	refRE := regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)
	check := func(p, where, text string) {
		for _, m := range refRE.FindAllStringSubmatch(text, -1) {
			if !defined[m[1]] && !seriesVars[m[1]] {
				t.Errorf("%s: %s references ${%s}, which neither the layer nor every declared series defines", p, where, m[1])
			}
		}
	}
	for p, f := range files {
		for _, a := range f.Assignments {
			check(p, a.Name, a.Value)
		}
		for _, fn := range f.Functions {
			if fn.Kind == Shell {
				check(p, fn.Name+"()", fn.Body)
			}
		}
		for _, a := range f.Assignments {
			if a.Name == "GOBUILDMODE" {
				t.Errorf("%s sets GOBUILDMODE, which go.bbclass never reads", p)
			}
			if strings.Contains(a.Value, "${AUTOREV}") {
				t.Errorf("%s: %s = %q: AUTOREV needs git ls-remote while parsing, which fails without network", p, a.Name, a.Value)
			}
			if a.Name == "S" {
				t.Errorf("%s sets S: its default is where every series unpacks ${BP} (WORKDIR on scarthgap, UNPACKDIR on wrynose)", p)
			}
		}
	}
}

// layerGoFlags returns the go command flags BitBake gives a recipe of the layer, modelled on
// go.bbclass and go-mod.bbclass as bitbake -e shows them on scarthgap and wrynose:
// GOBUILDFLAGS = "-v ${GO_LDFLAGS} -trimpath", then the parse-time appends in order (go-mod's
// " -modcacherw", the layer's), then go.bbclass's anonymous appendVar(" -buildmode=pie"),
// then the :remove tokens. src is the repository root (OTABAKE_SRC).
func layerGoFlags(t *testing.T, recipe, src string) (flags []string, ldflags string, vars map[string]string) {
	t.Helper()
	dir := filepath.Join(layerDir(t), "recipes-otabake", "otabake")
	inc, rec := parseFile(t, filepath.Join(dir, "otabake.inc")), parseFile(t, filepath.Join(dir, recipe))
	vars = datastore(map[string]string{"PV": "0.1+git"}, []*File{inc, rec}, map[string]string{"OTABAKE_SRC": src})
	// The appends of OTABAKE_GOFLAGS (the recipes' own flags).
	var appends, removes []string
	for _, f := range []*File{inc, rec} {
		for _, a := range f.Assignments {
			switch a.Name {
			case "OTABAKE_GOFLAGS:append":
				vars["OTABAKE_GOFLAGS"] += a.Value
			case "GOBUILDFLAGS:append":
				appends = append(appends, a.Value)
			case "GOBUILDFLAGS:remove":
				removes = append(removes, strings.Fields(a.Value)...)
			}
		}
	}
	value := "-v ${GO_LDFLAGS} -trimpath" + " -modcacherw" + strings.Join(appends, "") + " -buildmode=pie"
	expanded, err := Expand(value, vars)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := Expand(vars["GO_LDFLAGS"], vars)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^-ldflags="([^"]*)"$`).FindStringSubmatch(ld)
	if m == nil {
		t.Fatalf("GO_LDFLAGS = %q, want -ldflags=\"…\"", ld)
	}
	expanded = strings.Replace(expanded, ld, "", 1)
	for _, tok := range strings.Fields(expanded) {
		drop := false
		for _, r := range removes {
			drop = drop || tok == r
		}
		if !drop {
			flags = append(flags, tok)
		}
	}
	return flags, m[1], vars
}

// TestGoBuildFlags checks what the recipes give the go command: no cgo, exactly one
// -buildmode and that one exe (go.bbclass's -buildmode=pie removed), no -I loader or
// -extldflags, and the agent's go.agent.mod.
func TestGoBuildFlags(t *testing.T) {
	for _, tc := range []struct {
		recipe string
		want   []string
	}{
		{"otabake-agent_git.bb", []string{"-modfile=/src/go.agent.mod", "-trimpath", "-buildvcs=false"}},
		{"otabake-native_git.bb", []string{"-tags=urfave_cli_no_docs,kms", "-trimpath", "-buildvcs=false"}},
	} {
		t.Run(tc.recipe, func(t *testing.T) {
			flags, ldflags, vars := layerGoFlags(t, tc.recipe, "/src")
			if vars["CGO_ENABLED"] != "0" || vars["GO_LINKSHARED"] != "" {
				t.Errorf("CGO_ENABLED = %q, GO_LINKSHARED = %q; want 0 and empty", vars["CGO_ENABLED"], vars["GO_LINKSHARED"])
			}
			var modes []string
			for _, f := range flags {
				if strings.HasPrefix(f, "-buildmode") {
					modes = append(modes, f)
				}
			}
			if len(modes) != 1 || modes[0] != "-buildmode=exe" {
				t.Errorf("go flags %q: -buildmode given as %q, want only -buildmode=exe", flags, modes)
			}
			for _, w := range tc.want {
				if !contains(flags, w) {
					t.Errorf("go flags %q lack %s", flags, w)
				}
			}
			for _, bad := range []string{"-I", "-extldflags", "-linkshared"} {
				if strings.Contains(ldflags, bad) {
					t.Errorf("ldflags %q have %s, which only cgo or shared linking needs", ldflags, bad)
				}
			}
			if !strings.Contains(ldflags, "-s -w") || !strings.Contains(ldflags, "-buildid=") {
				t.Errorf("ldflags %q: want -s -w -buildid= (stripped, reproducible)", ldflags)
			}
		})
	}
}

// TestAgentBuildsStatic builds ./cmd/otabake-agent with the layer's effective flags and the
// local Go for some of the architectures the layer claims (the complete matrix with Go 1.22.12
// is the agent build test's) and checks the ELF: an executable (not PIE), no interpreter, no
// dynamic section.
func TestAgentBuildsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: no cross builds")
	}
	root, err := filepath.Abs(testkit.RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	flags, ldflags, _ := layerGoFlags(t, "otabake-agent_git.bb", root)
	out := t.TempDir()
	for _, arch := range []struct{ goarch, goarm string }{{"amd64", ""}, {"arm", "6"}, {"riscv64", ""}} {
		t.Run(arch.goarch, func(t *testing.T) {
			bin := filepath.Join(out, "otabake-agent-"+arch.goarch)
			args := append([]string{"build", "-o", bin}, flags...)
			args = append(args, "-ldflags="+ldflags, "./cmd/otabake-agent")
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch.goarch, "GOARM="+arch.goarm, "GOFLAGS=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Type != elf.ET_EXEC {
				t.Errorf("ELF type %v, want ET_EXEC (position-dependent)", f.Type)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("has %v: not static", p.Type)
				}
			}
		})
	}
}

// TestLicenseNamesLinkedModules classifies the license file of every module each binary links
// (go list -deps with the recipe's flags, files from the module cache) and checks that the
// recipe's LICENSE names each license found, plus BSD-3-Clause for the Go standard library.
func TestLicenseNamesLinkedModules(t *testing.T) {
	root, err := filepath.Abs(testkit.RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	classify := func(text string) []string {
		var out []string
		if strings.Contains(text, "Apache License") {
			out = append(out, "Apache-2.0")
		}
		if strings.Contains(text, "Permission is hereby granted, free of charge") {
			out = append(out, "MIT")
		}
		if strings.Contains(text, "Redistribution and use in source and binary forms") {
			if regexp.MustCompile(`(?i)neither the name|names of its\s+contributors|name of the copyright holder`).MatchString(text) {
				out = append(out, "BSD-3-Clause")
			} else {
				out = append(out, "BSD-2-Clause")
			}
		}
		if strings.Contains(text, "Mozilla Public License") {
			out = append(out, "MPL-2.0")
		}
		if regexp.MustCompile(`Permission to use, copy, modify, and(/or)? distribute this software for any`).MatchString(text) {
			out = append(out, "ISC")
		}
		return out
	}
	for _, tc := range []struct{ recipe, cmd string }{
		{"otabake-agent_git.bb", "otabake-agent"},
		{"otabake-native_git.bb", "otabake"},
	} {
		t.Run(tc.recipe, func(t *testing.T) {
			flags, _, _ := layerGoFlags(t, tc.recipe, root)
			var listFlags []string
			for _, f := range flags {
				if strings.HasPrefix(f, "-modfile=") || strings.HasPrefix(f, "-tags=") {
					listFlags = append(listFlags, f)
				}
			}
			args := append([]string{"list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Dir}}{{end}}{{end}}"}, listFlags...)
			cmd := exec.Command("go", append(args, "./cmd/"+tc.cmd)...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			found := map[string][]string{"BSD-3-Clause": {"the Go standard library"}}
			dirs := map[string]bool{}
			for _, d := range strings.Fields(string(out)) {
				dirs[d] = true
			}
			for d := range dirs {
				entries, err := os.ReadDir(d)
				if err != nil {
					t.Fatal(err)
				}
				var kinds []string
				for _, e := range entries {
					if e.Type().IsRegular() && regexp.MustCompile(`(?i)^(licen[cs]e|copying)`).MatchString(e.Name()) {
						data, err := os.ReadFile(filepath.Join(d, e.Name()))
						if err != nil {
							t.Fatal(err)
						}
						kinds = append(kinds, classify(string(data))...)
					}
				}
				if len(kinds) == 0 {
					t.Errorf("%s: no license file this test recognises", d)
				}
				for _, k := range kinds {
					found[k] = append(found[k], filepath.Base(d))
				}
			}
			lic := parseFile(t, filepath.Join(layerDir(t), "recipes-otabake", "otabake", tc.recipe)).Values("LICENSE")
			names := strings.Fields(strings.ReplaceAll(strings.Join(lic, " "), "&", " "))
			var missing []string
			for k, mods := range found {
				if !contains(names, k) {
					sort.Strings(mods)
					missing = append(missing, k+" ("+strings.Join(mods, ", ")+")")
				}
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Errorf("LICENSE = %q does not name what %s links: %s", lic, tc.cmd, strings.Join(missing, "; "))
			}
			for _, n := range names {
				if _, ok := found[n]; !ok && n != "MIT" {
					t.Errorf("LICENSE names %s, which nothing %s links is under", n, tc.cmd)
				}
			}
		})
	}
}

// TestNativeFromSource checks conf/layer.conf's choice between building otabake-native and
// using the build host's otabake, and the recipes' skip messages.
func TestNativeFromSource(t *testing.T) {
	conf := parseFile(t, filepath.Join(layerDir(t), "conf", "layer.conf"))
	dir := filepath.Join(layerDir(t), "recipes-otabake", "otabake")
	inc := parseFile(t, filepath.Join(dir, "otabake.inc"))
	native := parseFile(t, filepath.Join(dir, "otabake-native_git.bb"))
	for _, tc := range []struct {
		name string
		set  map[string]string
		want string
	}{
		{"scarthgap", map[string]string{"GOVERSION": "1.22%", "LAYERSERIES_CORENAMES": "scarthgap"}, "0"},
		{"scarthgap without GOVERSION", map[string]string{"LAYERSERIES_CORENAMES": "scarthgap"}, "0"},
		{"scarthgap with a newer Go", map[string]string{"GOVERSION": "1.26%", "LAYERSERIES_CORENAMES": "scarthgap"}, "1"},
		{"whinlatter", map[string]string{"LAYERSERIES_CORENAMES": "whinlatter"}, "0"},
		{"wrynose", map[string]string{"LAYERSERIES_CORENAMES": "wrynose"}, "1"},
		{"newer", map[string]string{"LAYERSERIES_CORENAMES": "xyz"}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := datastore(tc.set, []*File{conf}, nil)
			if got := pyExpand(t, "${OTABAKE_SERIES_GO}", vars); strings.Contains(got, "%") {
				t.Errorf("OTABAKE_SERIES_GO = %q: messages name it, want a plain version", got)
			}
			if got := pyExpand(t, "${OTABAKE_NATIVE_FROM_SOURCE}", vars); got != tc.want {
				t.Fatalf("OTABAKE_NATIVE_FROM_SOURCE = %q, want %q", got, tc.want)
			}
			anon, _ := native.Function("")
			res := runPython(t, anon, vars)
			if (res.Skip != nil) != (tc.want == "0") {
				t.Errorf("otabake-native skipped: %v, want skipped only where the Go is too old", res.Skip)
			}
			if res.Skip != nil && (!strings.Contains(*res.Skip, "needs Go 1.26") || !strings.Contains(*res.Skip, "go install -tags kms github.com/otabake/otabake/cmd/otabake@")) {
				t.Errorf("skip reason %q: want the Go version and how to install otabake on the host", *res.Skip)
			}
		})
	}
	anon, _ := inc.Function("")
	if res := runPython(t, anon, map[string]string{"OTABAKE_SRCREV": "0123456789abcdef0123456789abcdef01234567"}); res.Skip != nil || res.Fatal != nil {
		t.Errorf("with a commit: skip %v, fatal %v", res.Skip, res.Fatal)
	}
	res := runPython(t, anon, map[string]string{"OTABAKE_SRCREV": "", "OTABAKE_TOPDIR": "/layers/otabake", "OTABAKE_GIT_URI": "git://x"})
	if res.Skip == nil || !strings.Contains(*res.Skip, "set OTABAKE_SRCREV") {
		t.Errorf("without a commit: skip %v, want a skip asking for OTABAKE_SRCREV (never a parse error)", res.Skip)
	}
}
