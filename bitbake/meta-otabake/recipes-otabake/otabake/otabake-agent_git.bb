# otabake-agent on the device: the OTA reconcile loop, its timer, the commit watchdog, the
# nexigon.ota.check device command, the image's OTA defaults in /etc/otabake/ota.json and, on
# Rugix, the Rugix Ctrl state rule that keeps the agent's state across reboots and updates.
require otabake.inc

SUMMARY = "otabake-agent: converges a Rugix or RAUC device to the version its Hub tag points at"

# What the binary links: otabake (MIT), github.com/BurntSushi/toml (MIT, go.agent.mod) and the
# Go runtime and standard library (BSD-3-Clause).
LICENSE = "MIT & BSD-3-Clause"
LIC_FILES_CHKSUM = "file://src/${GO_IMPORT}/LICENSE;md5=69d53d3332be57a153434421d500ff25 \
                    file://${COMMON_LICENSE_DIR}/BSD-3-Clause;md5=550794465ba0ec5312d6919e203a55f9"

GO_INSTALL = "${GO_IMPORT}/cmd/otabake-agent"
# go.agent.mod (go 1.22, only the agent's modules) lets every declared series' Go build the
# agent; go.mod needs Go 1.26 for the build-side tool. go.agent.sum is read beside it.
OTABAKE_GOFLAGS:append = " -modfile=${OTABAKE_SRC}/go.agent.mod"
OTABAKE_LDFLAGS = "-s -w -buildid= -X ${GO_IMPORT}/internal/agent/agentcli.Version=${PV}"

inherit systemd

# Where devices look for updates: <repository>/<package>/<tag> in Nexigon Hub. Repository and
# package have no default: an image that would never find its updates must not build. The
# names and value formats are meta-nexigon's (nexigon-rugix-ota.bb, nexigon-rauc-ota.bb,
# nexigon-rugix-watchdog.bb in github.com/nexigon/meta-nexigon), so one configuration serves
# both layers.
NEXIGON_OTA_REPOSITORY ??= ""
NEXIGON_OTA_PACKAGE ??= ""
NEXIGON_OTA_TAG ??= "stable"
# systemd time span between checks (otabake-agent.timer OnUnitActiveSec).
NEXIGON_OTA_INTERVAL ??= "4h"
# systemd time span after boot at which an uncommitted update is rolled back (meta-nexigon:
# "1800s"). NEXIGON_OTA_WATCHDOG_TIMEOUT, whole seconds, is the name earlier versions of this
# layer read; it is still honoured when set.
NEXIGON_OTA_WATCHDOG_TIMEOUT ??= ""
NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT ??= "${@d.getVar('NEXIGON_OTA_WATCHDOG_TIMEOUT') or '1800s'}"
# Pin the bundle hash published in the Hub when installing (1) or trust signatures only (0).
NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH ??= "0"

# The update engine the agent drives: rugix (rugix-ctrl, meta-rugix) or rauc (meta-rauc). The
# default follows DISTRO_FEATURES as meta-rugix ("rugix") and meta-rauc ("rauc") use it.
OTABAKE_UPDATE_ENGINE ??= "${@'rauc' if bb.utils.contains('DISTRO_FEATURES', 'rauc', True, False, d) and not bb.utils.contains('DISTRO_FEATURES', 'rugix', True, False, d) else 'rugix'}"
OTABAKE_ENGINE_PACKAGE = "${@{'rugix': 'rugix-ctrl', 'rauc': 'rauc'}.get(d.getVar('OTABAKE_UPDATE_ENGINE'), '')}"
# The Nexigon agent, whose CLI otabake-agent uses to reach the Hub (meta-nexigon's recipe
# nexigon-agent; nexigon-agent-service and nexigon-agent-conf run and configure it). Empty
# for images that configure otabake-agent's own Hub transport instead.
OTABAKE_NEXIGON_AGENT ??= "nexigon-agent"
RDEPENDS:${PN} += "${OTABAKE_ENGINE_PACKAGE} ${OTABAKE_NEXIGON_AGENT}"
# meta-nexigon's update scripts do the same job: two update loops and two watchdogs would
# fight, and both install nexigon.ota.check.toml.
RCONFLICTS:${PN} = "nexigon-rugix-ota nexigon-rugix-watchdog nexigon-rauc-ota"

# Whole seconds of a systemd time span ("1800", "1800s", "30min", "1h 30min"), rounded up;
# None when the value is not a positive time span (systemd.time(7)).
def otabake_timespan_seconds(value):
    import math, re
    units = {
        '': 1, 's': 1, 'sec': 1, 'second': 1, 'seconds': 1,
        'us': 1e-6, 'usec': 1e-6, 'ms': 1e-3, 'msec': 1e-3,
        'm': 60, 'min': 60, 'minute': 60, 'minutes': 60,
        'h': 3600, 'hr': 3600, 'hour': 3600, 'hours': 3600,
        'd': 86400, 'day': 86400, 'days': 86400,
        'w': 604800, 'week': 604800, 'weeks': 604800,
        'M': 2629800, 'month': 2629800, 'months': 2629800,
        'y': 31557600, 'year': 31557600, 'years': 31557600,
    }
    text = (value or '').strip()
    if not re.fullmatch(r'([0-9]+(\.[0-9]+)? *[A-Za-z]* *)+', text):
        return None
    total = 0.0
    for number, unit in re.findall(r'([0-9]+(?:\.[0-9]+)?) *([A-Za-z]*)', text):
        if unit not in units:
            return None
        total += float(number) * units[unit]
    seconds = int(math.ceil(total - 1e-9))
    return seconds if seconds > 0 else None

# The watchdog timer's OnBootSec, in seconds (dist/systemd/otabake-agent-watchdog.timer).
OTABAKE_WATCHDOG_SECONDS = "${@otabake_timespan_seconds(d.getVar('NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT')) or ''}"
# JSON literal of NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH; do_validate_otabake rejects other values
# before this is used.
OTABAKE_USE_BUNDLE_HASH_JSON = "${@'true' if (d.getVar('NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH') or '').strip().lower() in ('1', 'true', 'yes', 'on') else 'false'}"

SYSTEMD_SERVICE:${PN} = "otabake-agent.timer otabake-agent-watchdog.timer"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

FILES:${PN} += "${systemd_system_unitdir} ${sysconfdir}/nexigon/agent/commands/nexigon.ota.check.toml ${sysconfdir}/rugix/state/otabake-agent.toml"
CONFFILES:${PN} = "${sysconfdir}/otabake/ota.json"

python do_validate_otabake() {
    import re

    def fail(name, problem):
        bb.fatal("otabake-agent: %s %s (set it in local.conf, your distro or kas configuration)" % (name, problem))

    for name in ("NEXIGON_OTA_REPOSITORY", "NEXIGON_OTA_PACKAGE", "NEXIGON_OTA_TAG"):
        value = (d.getVar(name) or "").strip()
        if not value:
            fail(name, "is not set: devices read their update path <repository>/<package>/<tag> from /etc/otabake/ota.json")
        if len(value) > 128 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
            fail(name, "is %r: want 1..128 characters of [A-Za-z0-9._-], starting with a letter or digit" % value)

    interval = d.getVar("NEXIGON_OTA_INTERVAL") or ""
    if otabake_timespan_seconds(interval) is None:
        fail("NEXIGON_OTA_INTERVAL", "is %r: want a systemd time span such as 4h or 30min" % interval)

    for name in ("NEXIGON_OTA_WATCHDOG_TIMEOUT", "NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT"):
        timeout = d.getVar(name) or ""
        if (timeout.strip() or name != "NEXIGON_OTA_WATCHDOG_TIMEOUT") and otabake_timespan_seconds(timeout) is None:
            fail(name, "is %r: want a systemd time span such as 1800s or 30min" % timeout)

    use_hash = (d.getVar("NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH") or "").strip().lower()
    if use_hash not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        fail("NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH", "is %r: want 0 or 1" % use_hash)

    engine = d.getVar("OTABAKE_UPDATE_ENGINE") or ""
    if engine not in ("rugix", "rauc"):
        fail("OTABAKE_UPDATE_ENGINE", "is %r: want rugix or rauc" % engine)
}
do_validate_otabake[vardeps] += "NEXIGON_OTA_REPOSITORY NEXIGON_OTA_PACKAGE NEXIGON_OTA_TAG NEXIGON_OTA_INTERVAL NEXIGON_OTA_WATCHDOG_TIMEOUT NEXIGON_OTA_RUGIX_WATCHDOG_TIMEOUT NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH OTABAKE_UPDATE_ENGINE"
# Before fetching, so that a missing variable is reported before minutes of compiling.
addtask validate_otabake before do_fetch

do_install() {
	install -d ${D}${bindir}
	install -m 0755 ${B}/${GO_BUILD_BINDIR}/otabake-agent ${D}${bindir}/otabake-agent

	install -d ${D}${systemd_system_unitdir}
	for unit in otabake-agent.service otabake-agent.timer otabake-agent-watchdog.service otabake-agent-watchdog.timer; do
		sed -e 's|@@INTERVAL@@|${NEXIGON_OTA_INTERVAL}|g' \
			-e 's|@@TIMEOUT@@|${OTABAKE_WATCHDOG_SECONDS}|g' \
			"${OTABAKE_SRC}/dist/systemd/$unit" >"${D}${systemd_system_unitdir}/$unit"
		chmod 0644 "${D}${systemd_system_unitdir}/$unit"
		if grep -q '@@' "${D}${systemd_system_unitdir}/$unit"; then
			bbfatal "otabake-agent: $unit still has a @@PLACEHOLDER@@ after substitution"
		fi
	done

	install -d ${D}${sysconfdir}/nexigon/agent/commands
	install -m 0644 ${OTABAKE_SRC}/dist/nexigon/commands/nexigon.ota.check.toml \
		${D}${sysconfdir}/nexigon/agent/commands/nexigon.ota.check.toml

	# The same bytes `otabake bake --ota-path` writes.
	install -d ${D}${sysconfdir}/otabake
	printf '{\n  "path": "%s",\n  "rugix": {\n    "useBundleHash": %s\n  }\n}\n' \
		'${NEXIGON_OTA_REPOSITORY}/${NEXIGON_OTA_PACKAGE}/${NEXIGON_OTA_TAG}' \
		'${OTABAKE_USE_BUNDLE_HASH_JSON}' >${D}${sysconfdir}/otabake/ota.json
	chmod 0644 ${D}${sysconfdir}/otabake/ota.json

	# Rugix Ctrl keeps only what a state rule names across reboots and updates: the agent's
	# update in flight, failure count and backoff live in /var/lib/otabake-agent. The same
	# file as the Rugix Bakery recipe's.
	engine='${OTABAKE_UPDATE_ENGINE}'
	if [ "$engine" = rugix ]; then
		install -d ${D}${sysconfdir}/rugix/state
		install -m 0644 ${OTABAKE_SRC}/recipes/otabake-agent/files/otabake-agent-state.toml \
			${D}${sysconfdir}/rugix/state/otabake-agent.toml
	fi
}
