package agent

import (
	"path/filepath"
)

// Device paths. Every one is prefixed with Agent.Root, so that tests run against a directory.
const (
	// SettingsFile configures the agent itself (engine, transport, backoff).
	SettingsFile = "/etc/otabake/agent.toml"
	// DefaultsFile holds the image's OTA defaults, written by `otabake bake`.
	DefaultsFile = "/etc/otabake/ota.json"
	// BuildInfoFile is Rugix Bakery's release information.
	BuildInfoFile = "/etc/rugix/system-build-info.json"
	// LockFile serializes agent runs; /run/lock is a tmpfs, so a stale lock cannot outlive a boot.
	LockFile = "/run/lock/otabake-agent.lock"
	// StateFile is the agent's own state: the intended transition, failure count and backoff.
	// It lives on persistent storage so that it survives the reboots it orchestrates.
	StateFile = "/var/lib/otabake-agent/state.json"
	// BootIDFile changes on every boot; the agent uses it to tell "reboot never happened" from
	// "rebooted and fell back".
	BootIDFile = "/proc/sys/kernel/random/boot_id"
)

var osReleaseFiles = []string{"/etc/os-release", "/usr/lib/os-release"}

// Property names of the Nexigon system update protocol.
const (
	ConfigProperty = "dev.nexigon.ota.config"
	StatusProperty = "dev.nexigon.ota.status"
)

func (a *Agent) path(p string) string {
	if a.Root == "" {
		return p
	}
	return filepath.Join(a.Root, p)
}
