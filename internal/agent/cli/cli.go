// Package cli is otabake-agent's command line: check, watchdog, status and the Nexigon device
// command handler. Commands parse flags, build an agent.Agent and print; the work is in
// internal/agent.
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/agent"
	"github.com/otabake/otabake/internal/agent/device"
	"github.com/otabake/otabake/internal/agent/engine"
	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/nexigon"
)

// Version is set at link time with -ldflags "-X …/internal/agent/cli.Version=…".
var Version = "dev"

// ServiceUnit is the systemd unit the device command starts.
const ServiceUnit = "otabake-agent.service"

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
}

// NewApp builds the otabake-agent application.
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *ucli.App {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	return &ucli.App{
		Name:    "otabake-agent",
		Usage:   "converge this device to the system version its Nexigon configuration points at",
		Version: Version,
		Description: "otabake-agent implements the Nexigon system update protocol for Rugix Ctrl and RAUC:\n" +
			"it reads dev.nexigon.ota.config, installs the version's bundle, reboots, commits and\n" +
			"publishes dev.nexigon.ota.status with an event for every transition. It is run by\n" +
			"otabake-agent.timer; otabake-agent-watchdog.timer rolls back boots that never commit.",
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "root", EnvVars: []string{"OTABAKE_AGENT_ROOT"}, Usage: "prefix every device path with `DIR` (tests; lifts the root requirement)"},
			&ucli.StringFlag{Name: "config", Value: agent.SettingsFile, Usage: "agent settings `FILE` (under --root)"},
			&ucli.StringFlag{Name: "engine", EnvVars: []string{"OTABAKE_AGENT_ENGINE"}, Usage: "update engine: rugix or rauc (default: settings, else detected)"},
			&ucli.StringFlag{Name: "transport", EnvVars: []string{"OTABAKE_AGENT_TRANSPORT"}, Usage: "Hub transport: auto, nexigon-socket, nexigon-cli or hub"},
			&ucli.StringFlag{Name: "hub-url", EnvVars: []string{"OTABAKE_AGENT_HUB_URL"}, Usage: "Hub URL for the hub transport"},
			&ucli.StringFlag{Name: "hub-token-file", EnvVars: []string{"OTABAKE_AGENT_HUB_TOKEN_FILE"}, Usage: "file holding the Hub token for the hub transport"},
			&ucli.StringFlag{Name: "device-id", EnvVars: []string{"OTABAKE_AGENT_DEVICE_ID"}, Usage: "device ID for the hub transport"},
			&ucli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"OTABAKE_AGENT_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
		},
		Before: func(c *ucli.Context) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
			}
			e.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
			return nil
		},
		Commands: []*ucli.Command{
			{
				Name:  "check",
				Usage: "run one reconcile cycle (commit, detect rollbacks, install, reboot)",
				Flags: []ucli.Flag{
					&ucli.BoolFlag{Name: "dry-run", Usage: "say what would be done and change nothing"},
					&ucli.BoolFlag{Name: "ignore-backoff", Usage: "retry a failed target now instead of after its backoff"},
					&ucli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
				},
				Action: e.check,
			},
			{
				Name:   "watchdog",
				Usage:  "roll back (reboot into the default group) when the running boot is still uncommitted",
				Flags:  []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print the result as JSON"}},
				Action: e.watchdog,
			},
			{
				Name:   "status",
				Usage:  "show system, version, effective configuration with its sources and the last status",
				Flags:  []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print the report as JSON"}},
				Action: e.status,
			},
			{
				Name:  "command",
				Usage: "Nexigon device command handlers",
				Subcommands: []*ucli.Command{{
					Name:   "check",
					Usage:  "nexigon.ota.check: start " + ServiceUnit + " without waiting (handler protocol on stdin/stdout)",
					Action: e.commandCheck,
				}},
			},
		},
		ExitErrHandler: func(*ucli.Context, error) {},
	}
}

// Main runs otabake-agent and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := NewApp(stdin, stdout, stderr).RunContext(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "otabake-agent: %s\n", strings.TrimSpace(err.Error()))
	return 1
}

// build assembles the agent. withTransport false skips the Hub (status works offline);
// optionalTransport true tolerates a missing one (watchdog).
func (e *env) build(c *ucli.Context, transport, optionalTransport bool) (*agent.Agent, error) {
	root := c.String("root")
	if root == "" && os.Geteuid() != 0 {
		return nil, errors.New("must be run as root (or with --root DIR for a test root)")
	}
	a := &agent.Agent{Root: root, Log: e.log}
	settingsPath := c.String("config")
	if root != "" {
		settingsPath = root + settingsPath
	}
	s, err := agent.LoadSettings(settingsPath)
	if err != nil {
		return nil, err
	}
	a.Settings = s
	name := firstNonEmpty(c.String("engine"), s.Engine)
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
	t, err := e.openTransport(c, root, s)
	if err != nil {
		if optionalTransport {
			e.log.Warn("no Hub transport; continuing without", "error", err)
			return a, nil
		}
		return nil, err
	}
	a.Transport = t
	return a, nil
}

func (e *env) openTransport(c *ucli.Context, root string, s agent.Settings) (device.Transport, error) {
	cfg := device.Config{
		Transport:    firstNonEmpty(c.String("transport"), s.Transport),
		SocketPath:   firstNonEmpty(s.SocketPath, device.DefaultSocketPath),
		NexigonAgent: s.NexigonAgent,
		DeviceID:     firstNonEmpty(c.String("device-id"), s.Hub.DeviceID),
	}
	if root != "" {
		cfg.SocketPath = root + cfg.SocketPath
	}
	if url := firstNonEmpty(c.String("hub-url"), s.Hub.URL); url != "" {
		tokenFile := c.String("hub-token-file")
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
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
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

func (e *env) check(c *ucli.Context) error {
	a, err := e.build(c, true, false)
	if err != nil {
		return err
	}
	defer a.Transport.Close()
	res, err := a.Check(c.Context, agent.CheckOptions{DryRun: c.Bool("dry-run"), IgnoreBackoff: c.Bool("ignore-backoff")})
	if res != nil {
		if c.Bool("json") {
			printJSON(e.stdout, res)
		} else {
			if c.Bool("dry-run") {
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

func (e *env) watchdog(c *ucli.Context) error {
	a, err := e.build(c, true, true)
	if err != nil {
		return err
	}
	if a.Transport != nil {
		defer a.Transport.Close()
	}
	res, err := a.Watchdog(c.Context)
	if res != nil {
		if c.Bool("json") {
			printJSON(e.stdout, res)
		} else {
			fmt.Fprintln(e.stdout, res.Message)
		}
	}
	return err
}

func (e *env) status(c *ucli.Context) error {
	a, err := e.build(c, true, true)
	if err != nil {
		return err
	}
	if a.Transport != nil {
		defer a.Transport.Close()
	}
	r, err := a.Report(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
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
func (e *env) commandCheck(c *ucli.Context) error {
	line, err := bufio.NewReaderSize(e.stdin, 64<<10).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read command input: %w", err)
	}
	if s := strings.TrimSpace(line); s != "" && !json.Valid([]byte(s)) {
		return fmt.Errorf("command input is not JSON: %q", s)
	}
	cmd := exec.CommandContext(c.Context, "systemctl", "start", "--no-block", ServiceUnit)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl start --no-block %s: %w: %s", ServiceUnit, err, strings.TrimSpace(string(out)))
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
