package agent

import (
	"os"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/agent/device"
)

// NexigonAgentConfig is nexigon-agent's configuration file; its hub-url says which Hub the
// nexigon-socket and nexigon-cli transports reach (nexigon-api.md §3.4).
const NexigonAgentConfig = "/etc/nexigon/agent.toml"

// HubURLFor returns the URL of the Hub behind an opened transport, for Agent.HubURL:
//   - hub: hubURL, the agent's own [hub] url (or --hub-url);
//   - nexigon-socket, nexigon-cli: hub-url from nexigon-agent's configuration under a.Root;
//   - otherwise, or when that file cannot be read or has no hub-url (a device paired through
//     credentials.json): "", and bundle URLs must then be https.
func (a *Agent) HubURLFor(transport, hubURL string) string {
	switch transport {
	case device.NameHub:
		return hubURL
	case device.NameSocket, device.NameCLI:
		data, err := os.ReadFile(a.path(NexigonAgentConfig))
		if err != nil {
			return ""
		}
		var cfg struct {
			HubURL string `toml:"hub-url"`
		}
		if _, err := toml.Decode(string(data), &cfg); err != nil {
			return ""
		}
		return cfg.HubURL
	}
	return ""
}
