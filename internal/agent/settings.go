package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
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

// LoadSettings reads path; a missing file gives the defaults. The file is checked as strictly
// as internal/schema's agent.schema.json does (unknown keys, types, enums, patterns), by hand:
// the schema validator and its dependencies would add over a megabyte to every device binary.
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
		if err := s.check(md); err != nil {
			return s, fmt.Errorf("%s: %w", path, err)
		}
	}
	return s, s.resolve(path)
}

// Allowed values of the settings' enumerations, as in agent.schema.json.
var (
	settingsEngines    = []string{"rugix", "rauc"}
	settingsTransports = []string{"auto", "nexigon-socket", "nexigon-cli", "hub"}
)

// check validates the decoded settings; md tells which keys the file set, so that an empty
// string that is set is told apart from one that is absent. TOML decoding already rejected
// unknown keys and wrong types.
func (s *Settings) check(md toml.MetaData) error {
	set := func(key ...string) bool { return md.IsDefined(key...) }
	switch {
	case set("engine") && !slices.Contains(settingsEngines, s.Engine):
		return fmt.Errorf("engine = %q: want %s", s.Engine, orList(settingsEngines))
	case set("transport") && !slices.Contains(settingsTransports, s.Transport):
		return fmt.Errorf("transport = %q: want %s", s.Transport, orList(settingsTransports))
	case set("socket-path") && !strings.HasPrefix(s.SocketPath, "/"):
		return fmt.Errorf("socket-path = %q: want an absolute path", s.SocketPath)
	case set("nexigon-agent") && s.NexigonAgent == "":
		return errors.New("nexigon-agent is empty: want an executable name or path")
	case set("hub", "url") && !strings.HasPrefix(s.Hub.URL, "http://") && !strings.HasPrefix(s.Hub.URL, "https://"):
		return fmt.Errorf("hub.url = %q: want an http:// or https:// URL", s.Hub.URL)
	case set("hub", "token-file") && s.Hub.TokenFile == "":
		return errors.New("hub.token-file is empty: want the path of the file holding the token")
	case set("hub", "device-id") && s.Hub.DeviceID == "":
		return errors.New("hub.device-id is empty: want the device's ID")
	}
	return nil
}

// orList renders allowed values as "a, b or c".
func orList(vs []string) string {
	if len(vs) < 2 {
		return strings.Join(vs, "")
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}

func (s *Settings) resolve(path string) error {
	s.backoffInitial, s.backoffMax = DefaultBackoffInitial, DefaultBackoffMax
	if s.Backoff.Initial != "" {
		d, ok := positiveDuration(s.Backoff.Initial)
		if !ok {
			return fmt.Errorf("%s: backoff.initial %q: want a positive duration like 15m", path, s.Backoff.Initial)
		}
		s.backoffInitial = d
	}
	if s.Backoff.Max != "" {
		d, ok := positiveDuration(s.Backoff.Max)
		if !ok {
			return fmt.Errorf("%s: backoff.max %q: want a positive duration like 24h", path, s.Backoff.Max)
		}
		s.backoffMax = d
	}
	if s.backoffMax < s.backoffInitial {
		s.backoffMax = s.backoffInitial
	}
	return nil
}

// positiveDuration parses a Go duration without a sign, like 15m or 1h30m, that is above zero.
func positiveDuration(v string) (time.Duration, bool) {
	if strings.HasPrefix(v, "+") || strings.HasPrefix(v, "-") {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	return d, err == nil && d > 0
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
