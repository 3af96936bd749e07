# otabake-agent on the device: the OTA reconcile loop, its timer, the commit watchdog, the
# nexigon.ota.check device command and the image's OTA defaults in /etc/otabake/ota.json.
require otabake.inc

SUMMARY = "otabake-agent: converges a Rugix or RAUC device to the version its Hub tag points at"

GO_INSTALL = "${GO_IMPORT}/cmd/otabake-agent"

inherit systemd

# Where devices look for updates: <repository>/<package>/<tag> in Nexigon Hub. Repository and
# package have no default: an image that would never find its updates must not build.
NEXIGON_OTA_REPOSITORY ??= ""
NEXIGON_OTA_PACKAGE ??= ""
NEXIGON_OTA_TAG ??= "stable"
# systemd time span between checks (otabake-agent.timer OnUnitActiveSec).
NEXIGON_OTA_INTERVAL ??= "4h"
# Seconds after boot at which an uncommitted update is rolled back.
NEXIGON_OTA_WATCHDOG_TIMEOUT ??= "1800"
# Pin the bundle hash published in the Hub when installing (1) or trust signatures only (0).
NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH ??= "0"

# JSON literal of NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH; do_validate_otabake rejects other values
# before this is used.
OTABAKE_USE_BUNDLE_HASH_JSON = "${@'true' if (d.getVar('NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH') or '').strip().lower() in ('1', 'true', 'yes', 'on') else 'false'}"

SYSTEMD_SERVICE:${PN} = "otabake-agent.timer otabake-agent-watchdog.timer"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

FILES:${PN} += "${systemd_system_unitdir} ${sysconfdir}/nexigon/agent/commands/nexigon.ota.check.toml"
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

    interval = (d.getVar("NEXIGON_OTA_INTERVAL") or "").strip()
    if not re.fullmatch(r"([0-9]+ ?(us|ms|s|sec|m|min|h|hr|d|w)? ?)+", interval):
        fail("NEXIGON_OTA_INTERVAL", "is %r: want a systemd time span such as 4h or 30min" % interval)

    timeout = (d.getVar("NEXIGON_OTA_WATCHDOG_TIMEOUT") or "").strip()
    if not re.fullmatch(r"[1-9][0-9]*", timeout):
        fail("NEXIGON_OTA_WATCHDOG_TIMEOUT", "is %r: want a whole number of seconds such as 1800" % timeout)

    use_hash = (d.getVar("NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH") or "").strip().lower()
    if use_hash not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        fail("NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH", "is %r: want 0 or 1" % use_hash)
}
do_validate_otabake[vardeps] += "NEXIGON_OTA_REPOSITORY NEXIGON_OTA_PACKAGE NEXIGON_OTA_TAG NEXIGON_OTA_INTERVAL NEXIGON_OTA_WATCHDOG_TIMEOUT NEXIGON_OTA_RUGIX_USE_BUNDLE_HASH"
# Before fetching, so that a missing variable is reported before minutes of compiling.
addtask validate_otabake before do_fetch

do_install() {
	install -d ${D}${bindir}
	install -m 0755 ${B}/${GO_BUILD_BINDIR}/otabake-agent ${D}${bindir}/otabake-agent

	install -d ${D}${systemd_system_unitdir}
	for unit in otabake-agent.service otabake-agent.timer otabake-agent-watchdog.service otabake-agent-watchdog.timer; do
		sed -e 's|@@INTERVAL@@|${NEXIGON_OTA_INTERVAL}|g' \
			-e 's|@@TIMEOUT@@|${NEXIGON_OTA_WATCHDOG_TIMEOUT}|g' \
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
}
