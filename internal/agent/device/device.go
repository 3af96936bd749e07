// Package device is how otabake-agent talks to the Hub from a device. Three transports sit
// behind one interface: the Nexigon agent's local Unix socket (preferred: the agent holds the
// device's credentials), the one-shot `nexigon-agent` command line, and the HTTP actions API
// of a Hub with a token (the local Hub and lab setups).
package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/logging"
)

// Transport is what the reconcile loop needs from the Hub, always acting as this device.
type Transport interface {
	// Name is the transport's name (nexigon-socket, nexigon-cli, hub) for logs and status.
	Name() string
	// DeviceID returns the device's d_… ID.
	DeviceID(ctx context.Context) (string, error)
	// GetProperty reads a property of this device; found is false when it does not exist.
	GetProperty(ctx context.Context, name string) (value json.RawMessage, found bool, err error)
	// SetProperty writes a property of this device.
	SetProperty(ctx context.Context, name string, value json.RawMessage) error
	// PublishEvent records one event of this device.
	PublishEvent(ctx context.Context, ev hub.Event) error
	// VersionDetails resolves a version path and returns its details; found is false when the
	// path does not resolve.
	VersionDetails(ctx context.Context, path hub.VersionPath) (*hub.VersionDetails, bool, error)
	// IssueDownloadURL returns a download URL of the asset filename of the version at path.
	IssueDownloadURL(ctx context.Context, path hub.VersionPath, filename string) (string, error)
	// Close releases connections.
	Close() error
}

// Transport names.
const (
	NameSocket = "nexigon-socket"
	NameCLI    = "nexigon-cli"
	NameHub    = "hub"
	NameAuto   = "auto"
)

// DefaultSocketPath is where the Nexigon agent serves its local API.
const DefaultSocketPath = "/run/nexigon/agent/control/socket.sock"

// Config selects and configures a transport.
type Config struct {
	// Transport is auto, nexigon-socket, nexigon-cli or hub.
	Transport string
	// SocketPath is the Nexigon agent's local API socket (already prefixed by any test root).
	SocketPath string
	// NexigonAgent is the nexigon-agent executable (name or path).
	NexigonAgent string
	// Hub connects the hub transport; nil when not configured.
	Hub func() (hub.Hub, error)
	// DeviceID is the device ID for the hub transport when the token is not a device token.
	DeviceID string
	// Log receives the reason for a fallback; nil discards it.
	Log *slog.Logger
}

// Open returns the configured transport. With Transport auto (or empty) it prefers the socket
// when it exists, then nexigon-agent on PATH, then the hub transport when one is configured.
// A socket that exists but refuses the connection or the handshake (local API disabled, Hub
// unreachable, client limit reached, a stale socket file) is passed over for the next of
// these, as nexigon-agent's own one-shot commands do (nexigon/nexigon
// crates/apps/nexigon-agent/src/main.rs `OneShot::open` warns and connects without the
// socket). An explicitly configured nexigon-socket does not fall back.
func Open(ctx context.Context, cfg Config) (Transport, error) {
	if cfg.SocketPath == "" {
		cfg.SocketPath = DefaultSocketPath
	}
	if cfg.NexigonAgent == "" {
		cfg.NexigonAgent = "nexigon-agent"
	}
	if cfg.Log == nil {
		cfg.Log = logging.Discard()
	}
	name := cfg.Transport
	if name == "" || name == NameAuto {
		name = detect(cfg)
		if name == "" {
			return nil, fmt.Errorf("no Hub transport: no socket at %s, no %s on PATH and no [hub] url configured", cfg.SocketPath, cfg.NexigonAgent)
		}
		if name == NameSocket {
			t, err := DialSocket(ctx, cfg.SocketPath)
			if err == nil {
				return t, nil
			}
			next := detectWithoutSocket(cfg)
			if next == "" {
				return nil, err
			}
			cfg.Log.Warn("nexigon agent socket unusable, falling back", "transport", next, "error", err)
			name = next
		}
	}
	switch name {
	case NameSocket:
		return DialSocket(ctx, cfg.SocketPath)
	case NameCLI:
		return NewCLI(cfg.NexigonAgent), nil
	case NameHub:
		if cfg.Hub == nil {
			return nil, errors.New("hub transport: no hub url configured ([hub] url in agent.toml or --hub-url)")
		}
		h, err := cfg.Hub()
		if err != nil {
			return nil, fmt.Errorf("hub transport: %w", err)
		}
		return NewHub(h, cfg.DeviceID), nil
	}
	return nil, fmt.Errorf("unknown transport %q: want auto, %s, %s or %s", name, NameSocket, NameCLI, NameHub)
}

func detect(cfg Config) string {
	if fi, err := os.Stat(cfg.SocketPath); err == nil && fi.Mode()&os.ModeSocket != 0 {
		return NameSocket
	}
	return detectWithoutSocket(cfg)
}

func detectWithoutSocket(cfg Config) string {
	if _, err := exec.LookPath(cfg.NexigonAgent); err == nil {
		return NameCLI
	}
	if cfg.Hub != nil {
		return NameHub
	}
	return ""
}
