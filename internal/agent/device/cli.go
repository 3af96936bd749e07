package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/tool"
)

// CLITransport runs the one-shot `nexigon-agent` command line (spec §3.2). It is the fallback
// when the socket is not reachable from the agent's sandbox but the CLI is installed.
type CLITransport struct {
	exe      string
	deviceID string
	// noEmittedAt is set once exe refused `events emit --emitted-at` (see PublishEvent); a
	// process opens one transport, so this lasts for the life of the process.
	noEmittedAt atomic.Bool
}

// NewCLI returns a transport running exe (a name on PATH or a path).
func NewCLI(exe string) *CLITransport { return &CLITransport{exe: exe} }

// Name implements Transport.
func (t *CLITransport) Name() string { return NameCLI }

// Close implements Transport.
func (t *CLITransport) Close() error { return nil }

// maxCLIOutput bounds what is kept of one nexigon-agent run's stdout and stderr.
const maxCLIOutput = 8 << 20

// CLIError is a failed nexigon-agent run: its exit code (-1 when it did not exit) and the
// tail of its stderr.
type CLIError struct {
	Command  string
	ExitCode int
	Stderr   string
	Err      error
}

func (e *CLIError) Error() string {
	return fmt.Sprintf("%s: %v: %s", e.Command, e.Err, e.Stderr)
}

func (e *CLIError) Unwrap() error { return e.Err }

// usageExitCode is the exit status of a command-line usage error: nexigon-agent parses its
// arguments with clap (nexigon/nexigon crates/apps/nexigon-agent/src/main.rs, `Args`), whose
// usage errors exit with 2 (clap-rs/clap clap_builder/src/util/mod.rs `USAGE_CODE`).
const usageExitCode = 2

// rejectsArgument reports whether err is the usage error of an agent that does not know the
// option flag: clap prints "error: unexpected argument '<flag>' found"
// (clap-rs/clap clap_builder/src/error/format.rs, ErrorKind::UnknownArgument).
func rejectsArgument(err error, flag string) bool {
	var ce *CLIError
	return errors.As(err, &ce) && ce.ExitCode == usageExitCode && strings.Contains(ce.Stderr, "'"+flag+"'")
}

func (t *CLITransport) run(ctx context.Context, args ...string) ([]byte, error) {
	res, err := tool.Run(ctx, tool.Cmd{Path: t.exe, Package: "nexigon-agent (from the Nexigon releases)", Args: args, MaxStdout: maxCLIOutput, MaxStderr: 2048})
	var te *tool.Error
	if errors.As(err, &te) {
		name := t.exe + " " + strings.Join(args[:min(2, len(args))], " ")
		return res.Stdout, &CLIError{Command: name, ExitCode: te.ExitCode, Stderr: te.Stderr, Err: te.Err}
	}
	if err != nil {
		return nil, err
	}
	if res.StdoutOverflowed {
		return nil, fmt.Errorf("%s %s: output exceeds %d bytes", t.exe, strings.Join(args[:min(2, len(args))], " "), maxCLIOutput)
	}
	return res.Stdout, nil
}

// DeviceID implements Transport.
func (t *CLITransport) DeviceID(ctx context.Context) (string, error) {
	if t.deviceID != "" {
		return t.deviceID, nil
	}
	out, err := t.run(ctx, "device", "id")
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(out))
	if !strings.HasPrefix(id, "d_") {
		return "", fmt.Errorf("%s device id: unexpected output %q", t.exe, id)
	}
	t.deviceID = id
	return id, nil
}

// GetProperty implements Transport.
func (t *CLITransport) GetProperty(ctx context.Context, name string) (json.RawMessage, bool, error) {
	out, err := t.run(ctx, "device", "properties", "get", name)
	if err != nil {
		return nil, false, err
	}
	return ParsePropertyOutput(out)
}

// ParsePropertyOutput parses the output of `nexigon-agent device properties get`.
func ParsePropertyOutput(out []byte) (json.RawMessage, bool, error) {
	var res struct {
		Result string          `json:"result"`
		Value  json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, false, fmt.Errorf("parse property output: %w", err)
	}
	switch res.Result {
	case "Found":
		return res.Value, true, nil
	case "NotFound":
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("parse property output: unexpected result %q", res.Result)
}

// SetProperty implements Transport.
func (t *CLITransport) SetProperty(ctx context.Context, name string, value json.RawMessage) error {
	_, err := t.run(ctx, "device", "properties", "set", name, string(value))
	return err
}

// Attributes the CLI transport adds, since `events emit` cannot carry them otherwise.
const (
	// AttrEventID is otabake's event ID: the CLI generates its own ID for every call
	// (`DeviceEventId::generate()` in run_events_cmd), so a retried event can be recognised
	// by this attribute only.
	AttrEventID = "otabake.eventId"
	// AttrEmittedAt is the time the event was emitted, added when the agent has no
	// --emitted-at (the Hub then records the time of the call).
	AttrEmittedAt = "otabake.emittedAt"
)

// PublishEvent implements Transport. The CLI generates its own event ID; otabake's travels as
// the AttrEventID attribute. --emitted-at is used when the agent supports it: the option
// exists only since nexigon/nexigon commit 3aef777 ("agent: add [telemetry] config and
// --emitted-at on events emit", crates/apps/nexigon-agent/src/main.rs `EventsCmd::Emit`), and
// older agents, such as the v0.5 the Rugix template pins, refuse the whole call with a usage
// error. The first usage error naming it switches to calls without it for the rest of the
// transport's life (a usage error means the call did nothing, so repeating it cannot
// duplicate the event).
func (t *CLITransport) PublishEvent(ctx context.Context, ev hub.Event) error {
	withTime := !ev.EmittedAt.IsZero() && !t.noEmittedAt.Load()
	_, err := t.run(ctx, emitArgs(ev, withTime)...)
	if err != nil && withTime && rejectsArgument(err, "--emitted-at") {
		t.noEmittedAt.Store(true)
		_, err = t.run(ctx, emitArgs(ev, false)...)
	}
	if err != nil {
		return fmt.Errorf("publish event %s: %w", ev.EventID, err)
	}
	return nil
}

// emitArgs builds `events emit` (spec §3.2): lowercase severity, attributes as key=<json> in
// key order, the body as JSON.
func emitArgs(ev hub.Event, withTime bool) []string {
	args := []string{"events", "emit", "--severity", strings.ToLower(string(ev.Severity))}
	if ev.Category != "" {
		args = append(args, "--category", ev.Category)
	}
	attrs := make(map[string]json.RawMessage, len(ev.Attributes)+2)
	for k, v := range ev.Attributes {
		attrs[k] = v
	}
	if ev.EventID != "" {
		attrs[AttrEventID], _ = json.Marshal(ev.EventID)
	}
	if !ev.EmittedAt.IsZero() && !withTime {
		attrs[AttrEmittedAt], _ = json.Marshal(ev.EmittedAt.UTC().Format(time.RFC3339Nano))
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--attribute", k+"="+string(attrs[k]))
	}
	if withTime {
		args = append(args, "--emitted-at", ev.EmittedAt.UTC().Format(time.RFC3339Nano))
	}
	body := ev.Body
	if len(body) == 0 {
		body = json.RawMessage("null")
	}
	// "--" ends the options, so that a body such as -1 is not taken for one.
	return append(args, "--", string(body))
}

// VersionDetails implements Transport.
func (t *CLITransport) VersionDetails(ctx context.Context, p hub.VersionPath) (*hub.VersionDetails, bool, error) {
	out, err := t.run(ctx, "repositories", "versions", "info", p.String())
	if err != nil {
		// The CLI reports NotFound as exit 1 with "… not found" on stderr.
		if strings.Contains(err.Error(), "not found") {
			return nil, false, nil
		}
		return nil, false, err
	}
	var d hub.VersionDetails
	if err := json.Unmarshal(out, &d); err != nil {
		return nil, false, fmt.Errorf("parse versions info %s: %w", p, err)
	}
	return &d, true, nil
}

// IssueDownloadURL implements Transport.
func (t *CLITransport) IssueDownloadURL(ctx context.Context, p hub.VersionPath, filename string) (string, error) {
	out, err := t.run(ctx, "repositories", "issue-url", p.String()+"/"+filename)
	if err != nil {
		return "", err
	}
	var res struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.URL == "" {
		return "", fmt.Errorf("parse issue-url %s/%s output %q", p, filename, bytes.TrimSpace(out))
	}
	return res.URL, nil
}
