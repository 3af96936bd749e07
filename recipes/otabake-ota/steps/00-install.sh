#!/bin/sh
# Writes otabake-agent's OTA defaults (/etc/otabake/ota.json) from NEXIGON_REPOSITORY and
# NEXIGON_PACKAGE in the project's .env, sets the engine in /etc/otabake/agent.toml, installs
# and enables otabake-agent.timer and installs the nexigon.ota.check device command.
#
# Every path is written below RUGIX_ROOT_DIR: "/" when Bakery runs this `install` step in the
# chroot of the system root, a scratch directory when the tests run it.
set -eu

die() {
	echo "otabake-ota recipe: $*" >&2
	exit 1
}

# remember PATH: rebuild the layer when PATH (relative to the project) changes.
remember() {
	f=${LAYER_REBUILD_IF_CHANGED:?LAYER_REBUILD_IF_CHANGED is not set (Rugix Bakery sets it)}
	if ! grep -qxF -- "$1" "$f" 2>/dev/null; then
		printf '%s\n' "$1" >>"$f"
	fi
}

# hub_name VALUE: a Hub repository, package or tag name, as otabake and the Hub accept them.
hub_name() {
	case $1 in
	'' | [!A-Za-z0-9]* | *[!A-Za-z0-9._-]*) return 1 ;;
	esac
	[ ${#1} -le 128 ]
}

root=${RUGIX_ROOT_DIR:?RUGIX_ROOT_DIR is not set (Rugix Bakery sets it to the system root)}
root=${root%/}
project=${RUGIX_PROJECT_DIR:?RUGIX_PROJECT_DIR is not set (Rugix Bakery sets it)}

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

interval=${RECIPE_PARAM_INTERVAL:-}
case $interval in
'' | [!0-9]* | *[!0-9a-zA-Z\ ]*) die "parameter interval '$interval' is not a systemd time span like 4h or 30min" ;;
esac
tag=${RECIPE_PARAM_TAG:-}
hub_name "$tag" || die "parameter tag '$tag' is not a tag name: want 1..128 characters of [A-Za-z0-9._-], starting with a letter or digit"
use_bundle_hash=${RECIPE_PARAM_USE_BUNDLE_HASH:-}
case $use_bundle_hash in
true | false) ;;
*) die "parameter use_bundle_hash '$use_bundle_hash' is not true or false" ;;
esac
engine=${RECIPE_PARAM_ENGINE:-}
case $engine in
rugix | rauc) ;;
*) die "parameter engine '$engine' is not rugix or rauc" ;;
esac

env_file="$project/.env"
if [ ! -f "$env_file" ]; then
	die ".env not found in the Bakery project: create it with NEXIGON_REPOSITORY=<repository> and NEXIGON_PACKAGE=<package>, the Hub package devices update from"
fi
remember .env
# Source .env in subshells that print only the one value, so that the token and anything else
# in it never enter this step's environment or output.
# shellcheck source=/dev/null
repository=$(. "$env_file" >/dev/null 2>&1 && printf '%s' "${NEXIGON_REPOSITORY:-${NEXIGON_OTA_REPOSITORY:-}}") ||
	die "cannot source .env in the Bakery project (a shell syntax error?)"
# shellcheck source=/dev/null
package=$(. "$env_file" >/dev/null 2>&1 && printf '%s' "${NEXIGON_PACKAGE:-${NEXIGON_OTA_PACKAGE:-}}") ||
	die "cannot source .env in the Bakery project (a shell syntax error?)"
if [ -z "$repository" ]; then
	die "NEXIGON_REPOSITORY is not set in .env: set it to the Hub repository devices update from"
fi
if [ -z "$package" ]; then
	die "NEXIGON_PACKAGE is not set in .env: set it to the Hub package devices update from"
fi
hub_name "$repository" || die "NEXIGON_REPOSITORY '$repository' in .env is not a repository name: want 1..128 characters of [A-Za-z0-9._-], starting with a letter or digit"
hub_name "$package" || die "NEXIGON_PACKAGE '$package' in .env is not a package name: want 1..128 characters of [A-Za-z0-9._-], starting with a letter or digit"

# Byte for byte what `otabake bake --ota-path` writes.
mkdir -p "$root/etc/otabake"
printf '{\n  "path": "%s/%s/%s",\n  "rugix": {\n    "useBundleHash": %s\n  }\n}\n' \
	"$repository" "$package" "$tag" "$use_bundle_hash" >"$root/etc/otabake/ota.json"
chmod 0644 "$root/etc/otabake/ota.json"

# Keep an agent.toml another recipe installed and only set its engine; top-level keys go
# before any table, so the line is put first.
settings="$root/etc/otabake/agent.toml"
if [ -f "$settings" ]; then
	{
		printf 'engine = "%s"\n' "$engine"
		grep -v '^[[:space:]]*engine[[:space:]]*=' "$settings" || true
	} >"$settings.new"
	mv -f "$settings.new" "$settings"
else
	printf '#:schema https://otabake.dev/schemas/agent.schema.json\n# otabake-agent settings, written by the otabake-ota recipe.\nengine = "%s"\n' "$engine" >"$settings"
fi
chmod 0644 "$settings"

units="$root/usr/lib/systemd/system"
mkdir -p "$units"
install -m 0644 "$RECIPE_DIR/files/otabake-agent.service" "$units/otabake-agent.service"
sed "s|@@INTERVAL@@|$interval|g" "$RECIPE_DIR/files/otabake-agent.timer" >"$units/otabake-agent.timer"
chmod 0644 "$units/otabake-agent.timer"

# What `systemctl enable` does for WantedBy=timers.target, without needing systemctl.
mkdir -p "$root/etc/systemd/system/timers.target.wants"
ln -sfn /usr/lib/systemd/system/otabake-agent.timer "$root/etc/systemd/system/timers.target.wants/otabake-agent.timer"

install -D -m 0644 "$RECIPE_DIR/files/nexigon.ota.check.toml" "$root/etc/nexigon/agent/commands/nexigon.ota.check.toml"
