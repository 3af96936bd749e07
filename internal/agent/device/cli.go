package device

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/hub"
)

// CLITransport runs the one-shot `nexigon-agent` command line (spec §3.2). It is the fallback
// when the socket is not reachable from the agent's sandbox but the CLI is installed.
type CLITransport struct {
	exe      string
	deviceID string
}

// NewCLI returns a transport running exe (a name on PATH or a path).
func NewCLI(exe string) *CLITransport { return &CLITransport{exe: exe} }

// Name implements Transport.
func (t *CLITransport) Name() string { return NameCLI }

// Close implements Transport.
func (t *CLITransport) Close() error { return nil }

func (t *CLITransport) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, t.exe, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2048 {
			msg = msg[len(msg)-2048:]
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", t.exe, args[0]+" "+args[1], err, msg)
	}
	return stdout.Bytes(), nil
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

// PublishEvent implements Transport. The CLI generates its own event ID.
func (t *CLITransport) PublishEvent(ctx context.Context, ev hub.Event) error {
	args := []string{"events", "emit", "--severity", strings.ToLower(string(ev.Severity))}
	if ev.Category != "" {
		args = append(args, "--category", ev.Category)
	}
	keys := make([]string, 0, len(ev.Attributes))
	for k := range ev.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--attribute", k+"="+string(ev.Attributes[k]))
	}
	if !ev.EmittedAt.IsZero() {
		args = append(args, "--emitted-at", ev.EmittedAt.UTC().Format(time.RFC3339Nano))
	}
	body := ev.Body
	if len(body) == 0 {
		body = json.RawMessage("null")
	}
	_, err := t.run(ctx, append(args, string(body))...)
	return err
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
