// Package agentcli is otabake-agent's command line: check, watchdog, status and the Nexigon device
// command handler. Commands parse flags, build an agent.Agent and print; the work is in
// internal/agent.
package agentcli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/otabake/otabake/internal/agent"
	"github.com/otabake/otabake/internal/agent/device"
	"github.com/otabake/otabake/internal/agent/engine"
	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/nexigon"
	"github.com/otabake/otabake/internal/tool"
)

// Version is set at link time with -ldflags "-X …/internal/agent/agentcli.Version=…".
var Version = "dev"

// ServiceUnit is the systemd unit the device command starts.
const ServiceUnit = "otabake-agent.service"

// Exit codes of Main.
const (
	ExitOK    = 0 // the command succeeded (or help or the version was shown)
	ExitError = 1 // the command failed; the reason is on stderr
	ExitUsage = 2 // the command line is malformed: unknown command or flag, bad flag value
)

// env is what the commands print to and read from, and the context they run in.
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
}

// jsonFlag is the --json flag every reporting command has.
func jsonFlag(what string) flagDef {
	return flagDef{name: "json", boolean: true, usage: "print the " + what + " as JSON"}
}

// newTree builds otabake-agent's command tree. It is rebuilt per call so that tests cannot
// leak state into each other.
func newTree() *command {
	return &command{
		name:  "otabake-agent",
		usage: "converge this device to the system version its Nexigon configuration points at",
		description: "otabake-agent implements the Nexigon system update protocol for Rugix Ctrl and RAUC:\n" +
			"it reads dev.nexigon.ota.config, installs the version's bundle, reboots, commits and\n" +
			"publishes dev.nexigon.ota.status with an event for every transition. It is run by\n" +
			"otabake-agent.timer; otabake-agent-watchdog.timer rolls back boots that never commit.",
		flags: []flagDef{
			{name: "root", env: "OTABAKE_AGENT_ROOT", usage: "prefix every device path with `DIR` (tests; lifts the root requirement)"},
			{name: "config", def: agent.SettingsFile, usage: "agent settings `FILE` (under --root)"},
			{name: "engine", env: "OTABAKE_AGENT_ENGINE", usage: "update engine: rugix or rauc (default: settings, else detected)"},
			{name: "transport", env: "OTABAKE_AGENT_TRANSPORT", usage: "Hub transport: auto, nexigon-socket, nexigon-cli or hub"},
			{name: "hub-url", env: "OTABAKE_AGENT_HUB_URL", usage: "Hub URL for the hub transport"},
			{name: "hub-token-file", env: "OTABAKE_AGENT_HUB_TOKEN_FILE", usage: "file holding the Hub token for the hub transport"},
			{name: "device-id", env: "OTABAKE_AGENT_DEVICE_ID", usage: "device ID for the hub transport"},
			{name: "log-level", def: "info", env: "OTABAKE_AGENT_LOG_LEVEL", usage: "debug, info, warn or error"},
		},
		subs: []*command{
			{
				name:  "check",
				usage: "run one reconcile cycle (commit, detect rollbacks, install, reboot)",
				flags: []flagDef{
					{name: "dry-run", boolean: true, usage: "say what would be done and change nothing"},
					{name: "ignore-backoff", boolean: true, usage: "retry a failed target now instead of after its backoff"},
					jsonFlag("result"),
				},
				run: (*env).check,
			},
			{
				name:  "watchdog",
				usage: "roll back (reboot into the default group) when the running boot is still uncommitted",
				flags: []flagDef{jsonFlag("result")},
				run:   (*env).watchdog,
			},
			{
				name:  "status",
				usage: "show system, version, effective configuration with its sources and the last status",
				flags: []flagDef{jsonFlag("report")},
				run:   (*env).status,
			},
			{
				name:  "command",
				usage: "Nexigon device command handlers",
				subs: []*command{{
					name:  "check",
					usage: "nexigon.ota.check: start " + ServiceUnit + " without waiting (handler protocol on stdin/stdout)",
					run:   (*env).commandCheck,
				}},
			},
		},
	}
}

// Main runs otabake-agent and returns its exit code: ExitOK, ExitError or ExitUsage.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Getenv, stdin, stdout, stderr)
}

// run is Main with the context and environment supplied by the caller.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		args = args[1:]
	}
	inv, err := parse(newTree(), args, getenv)
	if err == nil {
		err = execute(ctx, inv, stdin, stdout, stderr)
	}
	if err == nil {
		return ExitOK
	}
	if isUsage(err) {
		fmt.Fprintln(stderr, err)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "otabake-agent: %s\n", strings.TrimSpace(err.Error()))
	return ExitError
}

// execute runs a parsed command line.
func execute(ctx context.Context, inv *invocation, stdin io.Reader, stdout, stderr io.Writer) error {
	switch {
	case inv.version:
		_, err := fmt.Fprintf(stdout, "otabake-agent version %s\n", Version)
		return err
	case inv.help:
		return writeHelp(stdout, inv, Version)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(inv.str("log-level"))); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", inv.str("log-level"))
	}
	e := &env{
		ctx:   ctx,
		stdin: stdin, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})),
	}
	return inv.cmd.run(e, inv)
}

// build assembles the agent. withTransport false skips the Hub (status works offline);
// optionalTransport true tolerates a missing one (watchdog).
func (e *env) build(inv *invocation, transport, optionalTransport bool) (*agent.Agent, error) {
	root := inv.str("root")
	if root == "" && os.Geteuid() != 0 {
		return nil, errors.New("must be run as root (or with --root DIR for a test root)")
	}
	a := &agent.Agent{Root: root, Log: e.log}
	settingsPath := inv.str("config")
	if root != "" {
		settingsPath = root + settingsPath
	}
	s, err := agent.LoadSettings(settingsPath)
	if err != nil {
		return nil, err
	}
	a.Settings = s
	name := firstNonEmpty(inv.str("engine"), s.Engine)
	if name == "" {
		if name, err = engine.Detect(); err != nil {
			return nil, err
		}
	}
	if a.Engine, err = engine.New(name, nil); err != nil {
		return nil, err
	}
	if !transport {
		return a, nil
	}
	t, err := e.openTransport(inv, root, s)
	if err != nil {
		if optionalTransport {
			e.log.Warn("no Hub transport; continuing without", "error", err)
			return a, nil
		}
		return nil, err
	}
	a.Transport = t
	a.HubURL = a.HubURLFor(t.Name(), firstNonEmpty(inv.str("hub-url"), s.Hub.URL))
	return a, nil
}

func (e *env) openTransport(inv *invocation, root string, s agent.Settings) (device.Transport, error) {
	cfg := device.Config{
		Transport:    firstNonEmpty(inv.str("transport"), s.Transport),
		SocketPath:   firstNonEmpty(s.SocketPath, device.DefaultSocketPath),
		NexigonAgent: s.NexigonAgent,
		DeviceID:     firstNonEmpty(inv.str("device-id"), s.Hub.DeviceID),
		Log:          e.log,
	}
	if root != "" {
		cfg.SocketPath = root + cfg.SocketPath
	}
	if url := firstNonEmpty(inv.str("hub-url"), s.Hub.URL); url != "" {
		tokenFile := inv.str("hub-token-file")
		if tokenFile == "" && s.Hub.TokenFile != "" {
			tokenFile = root + s.Hub.TokenFile
		}
		cfg.Hub = func() (hub.Hub, error) {
			if tokenFile == "" {
				return nil, errors.New("no hub token file configured ([hub] token-file or --hub-token-file)")
			}
			tok, err := os.ReadFile(tokenFile)
			if err != nil {
				return nil, fmt.Errorf("read hub token: %w", err)
			}
			return nexigon.New(url, strings.TrimSpace(string(tok)), nexigon.WithLogger(e.log))
		}
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	return device.Open(ctx, cfg)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func (e *env) check(inv *invocation) error {
	a, err := e.build(inv, true, false)
	if err != nil {
		return err
	}
	defer a.Transport.Close()
	res, err := a.Check(e.ctx, agent.CheckOptions{DryRun: inv.boolean("dry-run"), IgnoreBackoff: inv.boolean("ignore-backoff")})
	if res != nil {
		if inv.boolean("json") {
			printJSON(e.stdout, res)
		} else {
			if inv.boolean("dry-run") {
				fmt.Fprintf(e.stdout, "dry run: %s %s, path %s\n", res.System, res.CurrentVersion, res.Config.Path())
				for _, s := range res.Actions {
					fmt.Fprintf(e.stdout, "  would: %s\n", s)
				}
			} else {
				fmt.Fprintf(e.stdout, "%s %s: %s\n", res.System, res.CurrentVersion, res.Status.State)
			}
		}
	}
	return err
}

func (e *env) watchdog(inv *invocation) error {
	a, err := e.build(inv, true, true)
	if err != nil {
		return err
	}
	if a.Transport != nil {
		defer a.Transport.Close()
	}
	res, err := a.Watchdog(e.ctx)
	if res != nil {
		if inv.boolean("json") {
			printJSON(e.stdout, res)
		} else {
			fmt.Fprintln(e.stdout, res.Message)
		}
	}
	return err
}

func (e *env) status(inv *invocation) error {
	a, err := e.build(inv, true, true)
	if err != nil {
		return err
	}
	if a.Transport != nil {
		defer a.Transport.Close()
	}
	r, err := a.Report(e.ctx)
	if err != nil {
		return err
	}
	if inv.boolean("json") {
		return printJSON(e.stdout, r)
	}
	w := e.stdout
	fmt.Fprintf(w, "system:          %s\n", r.System)
	fmt.Fprintf(w, "version:         %s\n", r.CurrentVersion)
	fmt.Fprintf(w, "engine:          %s\n", r.Engine)
	fmt.Fprintf(w, "transport:       %s\n", firstNonEmpty(r.Transport, "none"))
	if r.DeviceID != "" {
		fmt.Fprintf(w, "device:          %s\n", r.DeviceID)
	}
	if r.HubError != "" {
		fmt.Fprintf(w, "hub:             unavailable (%s)\n", r.HubError)
	}
	cfg, _ := json.Marshal(r.Config)
	fmt.Fprintf(w, "configuration:   %s\n", cfg)
	keys := make([]string, 0, len(r.ConfigSources))
	for k := range r.ConfigSources {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-14s from %s\n", k+":", r.ConfigSources[k])
	}
	if r.LastStatus != nil {
		st, _ := json.Marshal(r.LastStatus)
		fmt.Fprintf(w, "last status:     %s\n", st)
	} else {
		fmt.Fprintf(w, "last status:     none published yet\n")
	}
	if r.NextAttempt != nil {
		fmt.Fprintf(w, "next attempt:    %s\n", r.NextAttempt.UTC().Format(time.RFC3339))
	}
	return nil
}

// commandCheck implements the Nexigon command handler protocol for nexigon.ota.check: the
// input (one JSON line, or nothing) is read and ignored, the check service is started without
// blocking, and the output is one {"type":"Output","data":…} line.
func (e *env) commandCheck(inv *invocation) error {
	line, err := bufio.NewReaderSize(e.stdin, 64<<10).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read command input: %w", err)
	}
	if s := strings.TrimSpace(line); s != "" && !json.Valid([]byte(s)) {
		return fmt.Errorf("command input is not JSON: %q", s)
	}
	if _, err := tool.Run(e.ctx, tool.Cmd{Path: "systemctl", Package: "systemd", Args: []string{"start", "--no-block", ServiceUnit}}); err != nil {
		return fmt.Errorf("start %s: %w", ServiceUnit, err)
	}
	return json.NewEncoder(e.stdout).Encode(map[string]any{
		"type": "Output",
		"data": map[string]any{"started": true, "unit": ServiceUnit},
	})
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
