#!/bin/sh
# Installs otabake-agent-watchdog.{service,timer} with the `timeout` parameter substituted and
# enables the timer. Every path is written below RUGIX_ROOT_DIR ("/" in Bakery's chroot).
set -eu

die() {
	echo "otabake-watchdog recipe: $*" >&2
	exit 1
}

root=${RUGIX_ROOT_DIR:?RUGIX_ROOT_DIR is not set (Rugix Bakery sets it to the system root)}
root=${root%/}

# nexigon_rugix_installed: prints the first file nexigon-rugix's OTA service or watchdog
# installed in this root, and the recipe that installs it. Those recipes
# (github.com/nexigon/nexigon-rugix recipes/nexigon-rugix-ota/steps/01-install.sh and
# recipes/nexigon-rugix-watchdog/steps/01-install.sh) install their program, their units
# under /lib/systemd/system and enable their timer; next to otabake's recipes the system
# would run two update loops and two watchdogs, and both install
# /etc/nexigon/agent/commands/nexigon.ota.check.toml. otabake-ota and otabake-watchdog have
# a negative priority, so in a layer with both they run after nexigon-rugix's recipes
# (priority 0) and find their files here.
nexigon_rugix_installed() {
	for f in \
		nexigon-rugix-ota:usr/bin/nexigon-rugix-ota \
		nexigon-rugix-ota:etc/nexigon-rugix-ota.json \
		nexigon-rugix-ota:lib/systemd/system/nexigon-rugix-ota.timer \
		nexigon-rugix-ota:usr/lib/systemd/system/nexigon-rugix-ota.timer \
		nexigon-rugix-ota:etc/systemd/system/timers.target.wants/nexigon-rugix-ota.timer \
		nexigon-rugix-watchdog:usr/libexec/nexigon/nexigon-rugix-watchdog \
		nexigon-rugix-watchdog:lib/systemd/system/nexigon-rugix-watchdog.timer \
		nexigon-rugix-watchdog:usr/lib/systemd/system/nexigon-rugix-watchdog.timer \
		nexigon-rugix-watchdog:etc/systemd/system/timers.target.wants/nexigon-rugix-watchdog.timer; do
		if [ -e "$root/${f#*:}" ] || [ -L "$root/${f#*:}" ]; then
			printf '%s %s\n' "${f%%:*}" "/${f#*:}"
			return 0
		fi
	done
	return 1
}

if found=$(nexigon_rugix_installed); then
	die "nexigon-rugix's ${found%% *} recipe is in this system (found ${found#* }): with otabake's recipes the device would run two update checks and two rollback watchdogs. Remove \"nexigon/nexigon-rugix-ota\" and \"nexigon/nexigon-rugix-watchdog\" from the layer's recipes (and its parent layers'): otabake-ota and otabake-watchdog replace them (README.md, \"Coming from nexigon-rugix-ota\")."
fi

timeout=${RECIPE_PARAM_TIMEOUT:-}
case $timeout in
'' | 0* | *[!0-9]*) die "parameter timeout '$timeout' is not a positive number of seconds" ;;
esac
if [ ${#timeout} -gt 9 ]; then
	die "parameter timeout '$timeout' is too large"
fi

units="$root/usr/lib/systemd/system"
mkdir -p "$units"
install -m 0644 "$RECIPE_DIR/files/otabake-agent-watchdog.service" "$units/otabake-agent-watchdog.service"
sed "s|@@TIMEOUT@@|$timeout|g" "$RECIPE_DIR/files/otabake-agent-watchdog.timer" >"$units/otabake-agent-watchdog.timer"
chmod 0644 "$units/otabake-agent-watchdog.timer"

# What `systemctl enable` does for WantedBy=timers.target, without needing systemctl.
mkdir -p "$root/etc/systemd/system/timers.target.wants"
ln -sfn /usr/lib/systemd/system/otabake-agent-watchdog.timer "$root/etc/systemd/system/timers.target.wants/otabake-agent-watchdog.timer"
