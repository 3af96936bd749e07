// Package agent is otabake-agent's domain logic: one reconcile cycle of the Nexigon system
// update protocol (Check), the commit watchdog (Watchdog) and the status report (Report). It
// talks to the Hub through internal/agent/device and to the update tool through
// internal/agent/engine. On the wire it is the reference shell integration: the same
// properties, events (category "ota", JSON-string bodies, string attributes), asset names and
// metadata, so Nexigon's UI works unchanged.
//
// Where the reference is silent, these are the decisions:
//
//   - Own state. /var/lib/otabake-agent/state.json (written atomically) is authoritative, not
//     the dev.nexigon.ota.status property: a half-written or hand-edited property cannot
//     trigger a reinstall, and the failure count and backoff survive Hub outages. On the first
//     run the state is adopted from the property, so devices migrate from the scripts.
//   - Crash safety. Before installing and before rebooting, the intended transition (phase,
//     target, time, kernel boot ID) is written to the state file. A run killed at any point is
//     resumed by the next one: an install whose spare slot the update tool reports as written
//     after the phase began is not repeated; a reboot that did not happen (same boot ID) is
//     repeated; after a real reboot the running version decides between completed and
//     "update rolled back (expected X, running Y)".
//   - Backoff. A failure at path@target blocks further attempts at that same target for
//     [backoff] initial (15m), doubling per consecutive failure up to [backoff] max (24h); in
//     between the state is blocked with blockedReason and nextAttemptAt. A new target, a
//     configuration change or `check --ignore-backoff` retries at once. Success or a
//     configuration change resets failureCount.
//   - Defer conditions, in the effective configuration (so fleets can set them per device):
//     {"defer": {"file": "/run/…", "inhibitor": "who"}}; while the file exists or a systemd
//     inhibitor lock of that "who" is held, an available update leaves the state blocked.
//   - Verification policy. rugix.useBundleHash comes from the image defaults
//     (/etc/otabake/ota.json) only; the published effective configuration shows the image's
//     value even when the property tries to change it. An asset whose "version" metadata
//     contradicts the version's imageVersion is refused.
//   - No Hub answer is trusted blindly. A bundle URL must be https://, or http:// only when the
//     Hub itself is reached over http:// (the [hub] url for the hub transport; hub-url in
//     nexigon-agent's /etc/nexigon/agent.toml for the socket and CLI transports; unknown
//     means https only); file://, any other scheme, whitespace or a leading '-' is refused. A
//     bundle hash must be <algorithm>:<hex> with the algorithm's length (sha512-256: 64 hex
//     digits). A refusal is a failed install with the reason in the status and event; the
//     tool never sees the value. Every value passed to rugix-ctrl or rauc follows "--".
//   - The Hub is part of health: a commit happens only in a check that reached the Hub, so an
//     update that cuts the device off is rolled back by the watchdog. The watchdog itself
//     needs no Hub.
//   - Settings (engine, transport, socket path, hub URL, token file, device ID, backoff) live
//     in /etc/otabake/agent.toml; flags and OTABAKE_AGENT_* variables override them. --root DIR
//     prefixes every device path (/etc, /run/lock, /var/lib, /proc/…/boot_id, the socket) and
//     lifts the root requirement, for tests.
//   - Presigned download URLs are redacted from every error, log line and published status.
package agent
