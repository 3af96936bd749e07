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
