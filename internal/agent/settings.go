package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/schema"
)

// Settings is /etc/otabake/agent.toml: how this device runs the agent. Everything is optional.
//
//	engine = "rugix"            # rugix or rauc; default: whichever tool is on PATH
//	transport = "auto"          # auto, nexigon-socket, nexigon-cli or hub
//	socket-path = "/run/nexigon/agent/control/socket.sock"
//	nexigon-agent = "nexigon-agent"
//	[hub]                       # the hub transport (local Hub, lab setups)
//	url = "http://127.0.0.1:8080"
//	token-file = "/etc/otabake/hub-token"
//	device-id = "d_…"
//	[backoff]
//	initial = "15m"
//	max = "24h"
type Settings struct {
	Engine       string `toml:"engine" json:"engine,omitempty"`
	Transport    string `toml:"transport" json:"transport,omitempty"`
	SocketPath   string `toml:"socket-path" json:"socketPath,omitempty"`
	NexigonAgent string `toml:"nexigon-agent" json:"nexigonAgent,omitempty"`
	Hub          struct {
		URL       string `toml:"url" json:"url,omitempty"`
		TokenFile string `toml:"token-file" json:"tokenFile,omitempty"`
		DeviceID  string `toml:"device-id" json:"deviceId,omitempty"`
	} `toml:"hub" json:"hub"`
	Backoff struct {
		Initial string `toml:"initial" json:"initial,omitempty"`
		Max     string `toml:"max" json:"max,omitempty"`
	} `toml:"backoff" json:"backoff"`

	backoffInitial, backoffMax time.Duration
}

// Default backoff between attempts at the same failing target: the first retry after 15
// minutes, doubling up to a day, so a broken release is not downloaded on every timer tick.
const (
	DefaultBackoffInitial = 15 * time.Minute
	DefaultBackoffMax     = 24 * time.Hour
)

// LoadSettings reads path; a missing file gives the defaults.
func LoadSettings(path string) (Settings, error) {
	var s Settings
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, fmt.Errorf("read agent settings: %w", err)
	}
	if err == nil {
		md, err := toml.Decode(string(data), &s)
		if err != nil {
			return s, fmt.Errorf("parse %s: %w", path, err)
		}
		if un := md.Undecoded(); len(un) > 0 {
			return s, fmt.Errorf("parse %s: unknown key %s", path, un[0])
		}
		if err := schema.ValidateTOML(schema.KindAgent, data); err != nil {
			return s, fmt.Errorf("%s: %w", path, err)
		}
	}
	return s, s.resolve(path)
}

func (s *Settings) resolve(path string) error {
	s.backoffInitial, s.backoffMax = DefaultBackoffInitial, DefaultBackoffMax
	if s.Backoff.Initial != "" {
		d, err := time.ParseDuration(s.Backoff.Initial)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s: backoff.initial %q: want a positive duration like 15m", path, s.Backoff.Initial)
		}
		s.backoffInitial = d
	}
	if s.Backoff.Max != "" {
		d, err := time.ParseDuration(s.Backoff.Max)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s: backoff.max %q: want a positive duration like 24h", path, s.Backoff.Max)
		}
		s.backoffMax = d
	}
	if s.backoffMax < s.backoffInitial {
		s.backoffMax = s.backoffInitial
	}
	return nil
}

// backoff returns the wait after the n-th consecutive failure (n ≥ 1).
func (s *Settings) backoff(n int) time.Duration {
	if s.backoffInitial == 0 {
		_ = s.resolve("")
	}
	d := s.backoffInitial
	for i := 1; i < n && d < s.backoffMax; i++ {
		d *= 2
	}
	return min(d, s.backoffMax)
}
