package agentcli

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/agent"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestParse checks command resolution, flag values from arguments, environment and defaults,
// and that malformed lines are usage errors naming the problem.
func TestParse(t *testing.T) {
	defaults := map[string]string{
		"root": "", "config": agent.SettingsFile, "engine": "", "transport": "", "hub-url": "",
		"hub-token-file": "", "device-id": "", "log-level": "info",
	}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(defaults)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name          string
		args          []string
		env           map[string]string
		path          string
		values        map[string]string
		help, version bool
		err           string
	}{
		{name: "check", args: []string{"check"}, path: "otabake-agent check",
			values: with("dry-run", "false", "ignore-backoff", "false", "json", "false")},
		{name: "global and command flags", args: []string{"--root", "/r", "-engine=rauc", "--log-level=debug", "check", "--dry-run", "-json"},
			path: "otabake-agent check", values: with("root", "/r", "engine", "rauc", "log-level", "debug", "dry-run", "true", "ignore-backoff", "false", "json", "true")},
		{name: "environment", args: []string{"status"}, path: "otabake-agent status",
			env: map[string]string{
				"OTABAKE_AGENT_ROOT": "/e", "OTABAKE_AGENT_ENGINE": "rugix", "OTABAKE_AGENT_TRANSPORT": "hub",
				"OTABAKE_AGENT_HUB_URL": "http://h", "OTABAKE_AGENT_HUB_TOKEN_FILE": "/t", "OTABAKE_AGENT_DEVICE_ID": "d_1",
				"OTABAKE_AGENT_LOG_LEVEL": "warn",
			},
			values: with("root", "/e", "engine", "rugix", "transport", "hub", "hub-url", "http://h", "hub-token-file", "/t",
				"device-id", "d_1", "log-level", "warn", "json", "false")},
		{name: "flag beats environment", args: []string{"--transport", "nexigon-cli", "watchdog", "--json"}, path: "otabake-agent watchdog",
			env:    map[string]string{"OTABAKE_AGENT_TRANSPORT": "hub"},
			values: with("transport", "nexigon-cli", "json", "true")},
		{name: "config has no environment variable", args: []string{"watchdog"}, path: "otabake-agent watchdog",
			env: map[string]string{"OTABAKE_AGENT_CONFIG": "/x"}, values: with("json", "false")},
		{name: "nested", args: []string{"command", "check"}, path: "otabake-agent command check", values: defaults},
		{name: "no command is help", args: nil, path: "otabake-agent", values: defaults, help: true},
		{name: "group is help", args: []string{"command"}, path: "otabake-agent command", values: defaults, help: true},
		{name: "--help", args: []string{"--help"}, path: "otabake-agent", values: defaults, help: true},
		{name: "-h of a command", args: []string{"check", "-h"}, path: "otabake-agent check",
			values: with("dry-run", "false", "ignore-backoff", "false", "json", "false"), help: true},
		{name: "help command", args: []string{"help", "command", "check"}, path: "otabake-agent command check", values: defaults, help: true},
		{name: "h in a group", args: []string{"command", "h", "check"}, path: "otabake-agent command check", values: defaults, help: true},
		{name: "help after a leaf", args: []string{"status", "help"}, path: "otabake-agent status", values: with("json", "false"), help: true},
		{name: "--version", args: []string{"--version"}, path: "otabake-agent", values: defaults, version: true},
		{name: "-v", args: []string{"-v"}, path: "otabake-agent", values: defaults, version: true},

		{name: "unknown command", args: []string{"frob"}, err: `otabake-agent: unknown command "frob" (see 'otabake-agent --help')`},
		{name: "unknown subcommand", args: []string{"command", "frob"}, err: `otabake-agent command: unknown command "frob"`},
		{name: "unknown flag", args: []string{"check", "--nope"}, err: "otabake-agent check: flag provided but not defined: -nope"},
		{name: "global flag after the command", args: []string{"status", "--root", "/r"}, err: "otabake-agent status: flag provided but not defined: -root"},
		{name: "--version is global only", args: []string{"check", "--version"}, err: "not defined: -version"},
		{name: "missing value", args: []string{"--engine"}, err: "flag needs an argument: -engine"},
		{name: "bad boolean", args: []string{"check", "--json=maybe"}, err: `invalid boolean value "maybe" for -json`},
		{name: "extra argument", args: []string{"watchdog", "now"}, err: `otabake-agent watchdog: unexpected argument "now"`},
		{name: "help for nothing", args: []string{"help", "frob"}, err: `no help for unknown command "frob"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := parse(newTree(), tc.args, envOf(tc.env))
			if tc.err != "" {
				if err == nil || !isUsage(err) || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want a one-line usage error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(inv.path, " "); got != tc.path {
				t.Errorf("command %q, want %q", got, tc.path)
			}
			if !maps.Equal(inv.values, tc.values) {
				t.Errorf("values %v, want %v", inv.values, tc.values)
			}
			if inv.help != tc.help || inv.version != tc.version {
				t.Errorf("help %v version %v, want %v %v", inv.help, inv.version, tc.help, tc.version)
			}
		})
	}
}

// TestHelpComplete checks that --help of every command shows its usage line, its subcommands
// and every flag with its help text and environment variable, and that `help NAME` says the same.
func TestHelpComplete(t *testing.T) {
	var walk func(path []string, c *command)
	count := 0
	walk = func(path []string, c *command) {
		count++
		name := strings.Join(path, " ")
		var out, errOut bytes.Buffer
		args := append(append([]string{}, path...), "--help")
		if code := run(context.Background(), args, envOf(nil), strings.NewReader(""), &out, &errOut); code != ExitOK {
			t.Fatalf("%s --help: exit %d: %s", name, code, errOut.String())
		}
		help := out.String()
		if c.usage == "" || !strings.Contains(help, name+" - "+c.usage+"\n") {
			t.Errorf("%s --help lacks its usage line:\n%s", name, help)
		}
		if !strings.Contains(help, "USAGE:\n   "+name+" ") {
			t.Errorf("%s --help lacks its synopsis:\n%s", name, help)
		}
		for _, f := range c.flags {
			row := flagRow(f)
			if f.usage == "" || !strings.Contains(help, row[0]) || !strings.Contains(help, row[1]+"\n") {
				t.Errorf("%s --help lacks flag --%s with its help:\n%s", name, f.name, help)
			}
			if f.env != "" && !strings.Contains(help, "[$"+f.env+"]") {
				t.Errorf("%s --help lacks $%s", name, f.env)
			}
		}
		if !strings.Contains(help, "--help, -h") {
			t.Errorf("%s --help does not mention --help", name)
		}
		for _, s := range c.subs {
			if !strings.Contains(help, "   "+s.name+" ") || !strings.Contains(help, s.usage) {
				t.Errorf("%s --help lacks subcommand %s", name, s.name)
			}
		}
		if len(path) > 1 {
			var viaHelp bytes.Buffer
			args := append([]string{path[0], "help"}, path[1:]...)
			if code := run(context.Background(), args, envOf(nil), strings.NewReader(""), &viaHelp, &errOut); code != ExitOK || viaHelp.String() != help {
				t.Errorf("%s: exit %d, output differs from --help:\n%s", strings.Join(args, " "), code, viaHelp.String())
			}
		}
		for _, s := range c.subs {
			walk(append(append([]string{}, path...), s.name), s)
		}
	}
	walk([]string{"otabake-agent"}, newTree())
	if count != 6 {
		t.Errorf("walked %d commands, want 6 (otabake-agent, check, watchdog, status, command, command check)", count)
	}
	var out bytes.Buffer
	run(context.Background(), []string{"otabake-agent"}, envOf(nil), strings.NewReader(""), &out, &out)
	for _, want := range []string{"OTABAKE_AGENT_ROOT", "GLOBAL OPTIONS:", "--version, -v", "VERSION:\n   " + Version, "DESCRIPTION:\n   otabake-agent implements"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("otabake-agent help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRun checks exit codes and output of whole command lines, including a status report
// against a test root.
func TestRun(t *testing.T) {
	root := t.TempDir()
	info := `{"name": "gw", "release": {"id": "gw@1", "version": "1"}}`
	if err := os.MkdirAll(filepath.Join(root, "etc/rugix"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/rugix/system-build-info.json"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		out, err   string
		jsonStatus bool
	}{
		{name: "version", args: []string{"--version"}, out: "otabake-agent version " + Version + "\n"},
		{name: "unknown command", args: []string{"frob"}, code: ExitUsage, err: "otabake-agent: unknown command \"frob\" (see 'otabake-agent --help')\n"},
		{name: "unknown flag", args: []string{"status", "--frob"}, code: ExitUsage, err: "otabake-agent status: flag provided but not defined: -frob (see 'otabake-agent status --help')\n"},
		{name: "bad log level", args: []string{"--log-level", "loud", "status"}, code: ExitError, err: "otabake-agent: --log-level \"loud\": want debug, info, warn or error\n"},
		{name: "bad engine", args: []string{"--root", root, "--engine", "swupdate", "status"}, code: ExitError, err: "swupdate"},
		{name: "status as JSON", args: []string{"--root", root, "--engine", "rugix", "--transport", "nexigon-socket", "--log-level", "error", "status", "--json"}, jsonStatus: true},
		{name: "status from the environment", args: []string{"status"}, jsonStatus: false, out: "system:          gw\n",
			env: map[string]string{"OTABAKE_AGENT_ROOT": root, "OTABAKE_AGENT_ENGINE": "rugix", "OTABAKE_AGENT_TRANSPORT": "nexigon-socket", "OTABAKE_AGENT_LOG_LEVEL": "error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), append([]string{"otabake-agent"}, tc.args...), envOf(tc.env), strings.NewReader(""), &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errOut.String())
			}
			if !strings.HasPrefix(out.String(), tc.out) {
				t.Errorf("stdout %q, want it to start with %q", out.String(), tc.out)
			}
			if !strings.Contains(errOut.String(), tc.err) || (tc.err == "" && errOut.Len() > 0) {
				t.Errorf("stderr %q, want %q", errOut.String(), tc.err)
			}
			if tc.jsonStatus {
				var rep agent.Report
				if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
					t.Fatalf("status --json: %v\n%s", err, out.String())
				}
				if rep.System != "gw" || rep.CurrentVersion != "1" || rep.Engine != "rugix" {
					t.Errorf("report %+v, want system gw version 1 engine rugix", rep)
				}
			}
		})
	}
}
