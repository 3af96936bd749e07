package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// unsetenv unsets the environment variables names for the test: flags read some of them, and
// urfave/cli takes an empty one as set.
func unsetenv(t *testing.T, names ...string) {
	for _, name := range names {
		t.Setenv(name, "") // restored after the test
		os.Unsetenv(name)
	}
}

// TestFlagsAnywhere runs command lines with the flags before and after the arguments (and the
// global flags before and after the command) through the real parser and wants the same result.
func TestFlagsAnywhere(t *testing.T) {
	unsetenv(t, "OTABAKE_PROJECT_DIR", "OTABAKE_LOG_LEVEL", "OTABAKE_NO_PROGRESS", "OTABAKE_HUB_DIR", "OTABAKE_HUB_TOKEN", "OTABAKE_SOURCE_DIR", "SOURCE_DATE_EPOCH")
	for _, tc := range []struct {
		lines []string // the same command line, flags in different places
		cmd   string
		args  []string
		flags map[string]string
		glob  map[string]string
	}{{
		lines: []string{"config show --json", "config show --json=true"},
		cmd:   "config show", flags: map[string]string{"json": "true"},
	}, {
		lines: []string{"--json config show"},
		cmd:   "config show", glob: map[string]string{"json": "true"},
	}, {
		lines: []string{
			"-C proj --log-level debug --no-progress config show --hub-url https://h",
			"config show --hub-url https://h -C proj --log-level=debug --no-progress",
			"--no-progress config show -C=proj --hub-url=https://h --log-level debug",
		},
		cmd:   "config show",
		flags: map[string]string{"hub-url": "https://h"},
		glob:  map[string]string{"project-dir": "proj", "log-level": "debug", "no-progress": "true"},
	}, {
		lines: []string{
			"build-release --image-compression none SYSTEM",
			"build-release SYSTEM --image-compression none",
			"build-release SYSTEM --image-compression=none",
		},
		cmd: "build-release", args: []string{"SYSTEM"}, flags: map[string]string{"image-compression": "none"},
	}, {
		lines: []string{
			"-C proj --json build-release --backend native a b",
			"build-release a --backend native b -C proj --json",
			"build-release a b --json --backend=native --project-dir proj",
		},
		cmd: "build-release", args: []string{"a", "b"}, flags: map[string]string{"backend": "native"},
		glob: map[string]string{"project-dir": "proj", "json": "true"},
	}, {
		lines: []string{"release --promote stable a b", "release a --promote stable b", "release a b --promote stable"},
		cmd:   "release", args: []string{"a", "b"}, flags: map[string]string{"promote": "stable"},
	}, {
		lines: []string{"upload-release -s a -s b --json", "--json upload-release -s a -s b", "upload-release -s a --json -s b"},
		cmd:   "upload-release", flags: map[string]string{"system": "a,b"}, glob: map[string]string{"json": "true"},
	}, {
		lines: []string{"promote-release --tag stable --from-floating", "promote-release --from-floating --tag=stable"},
		cmd:   "promote-release", flags: map[string]string{"tag": "stable", "from-floating": "true"},
	}, {
		lines: []string{"bundle create -o out.rugixb --workers 2 DIR", "bundle create DIR -o out.rugixb --workers 2", "bundle create --workers=2 DIR --output out.rugixb"},
		cmd:   "bundle create", args: []string{"DIR"}, flags: map[string]string{"output": "out.rugixb", "workers": "2"},
	}, {
		lines: []string{"bundle extract -p rootfs -o out b.rugixb", "bundle extract b.rugixb -p rootfs -o out", "bundle extract -o out b.rugixb --payload rootfs"},
		cmd:   "bundle extract", args: []string{"b.rugixb"}, flags: map[string]string{"payload": "rootfs", "output": "out"},
	}, {
		lines: []string{"--json bundle verify --root-cert ca.pem b.rugixb", "bundle verify b.rugixb --root-cert ca.pem --json"},
		cmd:   "bundle verify", args: []string{"b.rugixb"}, flags: map[string]string{"root-cert": "ca.pem"}, glob: map[string]string{"json": "true"},
	}, {
		lines: []string{"run --snapshot --ssh-port 0 --accel tcg SYSTEM", "run SYSTEM --snapshot --ssh-port 0 --accel tcg", "run --snapshot SYSTEM --accel=tcg --ssh-port=0"},
		cmd:   "run", args: []string{"SYSTEM"}, flags: map[string]string{"snapshot": "true", "ssh-port": "0", "accel": "tcg"},
	}, {
		lines: []string{"schema validate --json otabake otabake.toml", "schema validate otabake otabake.toml --json"},
		cmd:   "schema validate", args: []string{"otabake", "otabake.toml"}, flags: map[string]string{"json": "true"},
	}, {
		lines: []string{"schema show otabake --json", "--json schema show otabake"},
		cmd:   "schema show", args: []string{"otabake"}, glob: map[string]string{"json": "true"},
	}, {
		lines: []string{"-C proj hub init --repository r --package p", "hub init --repository r --package p -C proj", "hub init --package p -C proj --repository=r"},
		cmd:   "hub init", flags: map[string]string{"repository": "r", "package": "p"}, glob: map[string]string{"project-dir": "proj"},
	}, {
		lines: []string{"hub ls --hub-dir h x/y --json", "--json hub ls x/y --hub-dir h"},
		cmd:   "hub ls", args: []string{"x/y"}, flags: map[string]string{"hub-dir": "h"}, glob: map[string]string{"json": "true"},
	}, {
		lines: []string{"bake --rootfs r --system s --version 1.0", "bake --version 1.0 --system s --rootfs r"},
		cmd:   "bake", flags: map[string]string{"rootfs": "r", "system": "s", "version": "1.0"},
	}, {
		lines: []string{"version --json", "--json version"},
		cmd:   "version", glob: map[string]string{"json": "true"},
	}} {
		var first *Parsed
		for _, line := range tc.lines {
			p, err := Parse(append([]string{"otabake"}, strings.Fields(line)...))
			if err != nil {
				t.Errorf("%q: %v", line, err)
				continue
			}
			if first == nil {
				first = p
				if got := strings.Join(p.Command, " "); got != tc.cmd {
					t.Errorf("%q: command %q, want %q", line, got, tc.cmd)
				}
				if !reflect.DeepEqual(p.Args, tc.args) && len(p.Args)+len(tc.args) > 0 {
					t.Errorf("%q: args %q, want %q", line, p.Args, tc.args)
				}
				for k, v := range tc.flags {
					if p.Flags[k] != v {
						t.Errorf("%q: --%s = %q, want %q (flags %v)", line, k, p.Flags[k], v, p.Flags)
					}
				}
				for k, v := range tc.glob {
					if p.Globals[k] != v {
						t.Errorf("%q: global --%s = %q, want %q (globals %v)", line, k, p.Globals[k], v, p.Globals)
					}
				}
				continue
			}
			if !reflect.DeepEqual(p, first) {
				t.Errorf("%q parses as %+v,\n%q as %+v", tc.lines[0], first, line, p)
			}
		}
	}
}

// TestFlagsAnywhereDashDash: after "--" every word is an argument, even one that looks like a flag.
func TestFlagsAnywhereDashDash(t *testing.T) {
	p, err := Parse([]string{"otabake", "bundle", "hash", "a", "-o", "h", "--", "-b.rugixb", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "-b.rugixb", "--json"}; !reflect.DeepEqual(p.Args, want) || p.Flags["output"] != "h" || p.Globals["json"] != "" {
		t.Errorf("parsed %+v, want args %q and --output h only", p, want)
	}
	// A flag value may start with "-": it is the flag's, not a flag of its own.
	p, err = Parse([]string{"otabake", "bundle", "hash", "a", "-o", "-h"})
	if err != nil || p.Flags["output"] != "-h" || !reflect.DeepEqual(p.Args, []string{"a"}) {
		t.Errorf("parsed %+v, %v", p, err)
	}
}

// TestFlagsAnywhereErrors: wrong flags stay usage errors wherever they are.
func TestFlagsAnywhereErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"build-release SYSTEM --nope", "flag provided but not defined: -nope"},
		{"build-release --nope SYSTEM", "flag provided but not defined: -nope"},
		{"build-release SYSTEM --image-compression", "flag --image-compression needs a value"},
		{"config show x --jsn", "flag provided but not defined: -jsn"},
		{"version --project-dir", "flag --project-dir needs a value"},
		{"bundle create DIR", `Required flag "output" not set`},
		{"schema", "needs a subcommand"},
		{"frobnicate --json", "No help topic for 'frobnicate'"},
		{"--log-level loud version", "--log-level"},
		{"version --log-level loud", "--log-level"},
	} {
		_, err := Parse(append([]string{"otabake"}, strings.Fields(tc.line)...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.line, err, tc.want)
		}
	}
	for _, line := range []string{"--help", "bundle --help", "bundle create -h", "build-release SYSTEM --help", "--version", "help build-release"} {
		p, err := Parse(append([]string{"otabake"}, strings.Fields(line)...))
		if err != nil || !p.Help {
			t.Errorf("%q: %+v, %v; want help", line, p, err)
		}
	}
}

// TestFlagsAnywhereMain runs the documented command lines through Main in a temporary project:
// they may fail for a reason of the project, but never with a usage error.
func TestFlagsAnywhereMain(t *testing.T) {
	unsetenv(t, "OTABAKE_PROJECT_DIR", "OTABAKE_LOG_LEVEL", "OTABAKE_NO_PROGRESS", "NEXIGON_HUB_URL", "NEXIGON_TOKEN", "OTABAKE_HUB_TOKEN", "SOURCE_DATE_EPOCH")
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	t.Chdir(dir)
	usage := []string{"Incorrect Usage", "flag provided but not defined", "needs a value", "--help')", "Required flag"}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(append([]string{"otabake"}, args...), strings.NewReader(""), &out, &errb)
		for _, u := range usage {
			if strings.Contains(errb.String(), u) || strings.Contains(out.String(), u) {
				t.Errorf("otabake %s: a usage error (exit %d):\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
			}
		}
		return code, out.String(), errb.String()
	}
	for _, args := range [][]string{{"config", "show", "--json"}, {"config", "show", "--json", "-C", dir}, {"--json", "config", "show"}} {
		code, out, errs := run(args...)
		var doc struct{ Dir string }
		if err := json.Unmarshal([]byte(out), &doc); code != 0 || err != nil || doc.Dir == "" {
			t.Errorf("otabake %s: exit %d, %v:\n%s%s", strings.Join(args, " "), code, err, out, errs)
		}
	}
	for _, args := range [][]string{
		{"build-release", "SYSTEM", "--image-compression", "none"},
		{"build-release", "SYSTEM", "--image-compression", "none", "--json", "-C", dir, "--no-progress"},
	} {
		if code, out, errs := run(args...); code == 0 || errs == "" {
			t.Errorf("otabake %s: exit %d in an empty project:\n%s%s", strings.Join(args, " "), code, out, errs)
		}
	}
	// The same with a flag error is one.
	var errb bytes.Buffer
	if code := Main([]string{"otabake", "build-release", "SYSTEM", "--image-compresion", "none"}, strings.NewReader(""), &bytes.Buffer{}, &errb); code == 0 || !strings.Contains(errb.String(), "flag provided but not defined: -image-compresion") {
		t.Errorf("a misspelled flag: exit %d, %s", code, errb.String())
	}
}
