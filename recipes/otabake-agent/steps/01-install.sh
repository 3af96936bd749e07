#!/bin/sh
# Installs /usr/bin/otabake-agent: the release binary 00-run.sh downloaded and checked, or with
# source = "local" build/otabake/otabake-agent-<arch> from the Bakery project. Checks that it is
# an ELF executable for RUGIX_ARCH (and for 32-bit ARM, the ARM level Go recorded in it), and
# persists the agent's state directory across updates.
#
# Every path is written below RUGIX_ROOT_DIR: "/" when Bakery runs this `install` step in the
# chroot of the system root, a scratch directory when the tests run it.
set -eu

die() {
	echo "otabake-agent recipe: $*" >&2
	exit 1
}

# remember PATH: rebuild the layer when PATH (relative to the project) changes.
remember() {
	f=${LAYER_REBUILD_IF_CHANGED:?LAYER_REBUILD_IF_CHANGED is not set (Rugix Bakery sets it)}
	if ! grep -qxF -- "$1" "$f" 2>/dev/null; then
		printf '%s\n' "$1" >>"$f"
	fi
}

root=${RUGIX_ROOT_DIR:?RUGIX_ROOT_DIR is not set (Rugix Bakery sets it to the system root)}
root=${root%/}
arch=${RUGIX_ARCH:?RUGIX_ARCH is not set (Rugix Bakery sets it)}

# ELF class (1 = 32-bit, 2 = 64-bit), e_machine (little-endian) and, for ARM, Go's GOARM per
# architecture. Rugix's armhf is ARMv6 hard-float (Raspberry Pi Zero, 1): an ARMv7 build
# does not start there.
goarm=""
case $arch in
amd64) class=02 machine=3e00 ;;
arm64) class=02 machine=b700 ;;
armv7) class=01 machine=2800 goarm=7 ;;
armhf) class=01 machine=2800 goarm=6 ;;
*) die "unsupported architecture '$arch' (RUGIX_ARCH): otabake-agent is built for amd64, arm64, armv7 and armhf" ;;
esac

bin="$root/usr/bin/otabake-agent"
case ${RECIPE_PARAM_SOURCE:-} in
local)
	project=${RUGIX_PROJECT_DIR:?RUGIX_PROJECT_DIR is not set (Rugix Bakery sets it)}
	from="build/otabake/otabake-agent-$arch"
	src="$project/$from"
	if [ ! -f "$src" ]; then
		die "$from not found in the Bakery project (source = \"local\"): run 'otabake agent build --arch $arch --output build/otabake' there, or use source = \"release\""
	fi
	;;
release)
	from="otabake release ${RECIPE_PARAM_VERSION:-}"
	src=$bin
	if [ ! -f "$src" ]; then
		die "source = \"release\" but $bin is missing: the 00-run.sh step did not run"
	fi
	;;
*) die "parameter source '${RECIPE_PARAM_SOURCE:-}' is not release or local" ;;
esac

# A downloaded binary that fails the check is removed, so that a failed layer leaves none.
reject() {
	if [ "$src" = "$bin" ]; then
		rm -f "$bin"
	fi
	die "$@"
}
header=$(od -An -tx1 -N20 "$src" | tr -d ' \n')
if [ "${header%"${header#????????}"}" != 7f454c46 ]; then
	reject "otabake-agent from $from is not an ELF executable"
fi
got_class=$(printf '%s' "$header" | cut -c 9-10)
got_machine=$(printf '%s' "$header" | cut -c 37-40)
if [ "$got_class" != "$class" ] || [ "$got_machine" != "$machine" ]; then
	reject "otabake-agent from $from is not built for $arch (ELF class $got_class, machine $got_machine; want class $class, machine $machine)"
fi
# Go writes no .ARM.attributes and the same e_flags for every ARM level; its build information
# ("build<TAB>GOARM=6") is where the level shows.
if [ -n "$goarm" ] && ! LC_ALL=C grep -aqxF "$(printf 'build\tGOARM=%s' "$goarm")" "$src"; then
	reject "otabake-agent from $from is not built for $arch: its Go build information does not say GOARM=$goarm"
fi

if [ "$src" != "$bin" ]; then
	install -D -m 0755 "$src" "$bin"
	remember "$from"
fi

install -D -m 0644 "$RECIPE_DIR/files/otabake-agent-state.toml" "$root/etc/rugix/state/otabake-agent.toml"
