#!/bin/sh
# Installs /usr/bin/otabake-agent from build/otabake/otabake-agent-<arch> in the Bakery project
# (unless 00-run.sh already downloaded it), checks that it is an ELF executable for
# RUGIX_ARCH, and persists the agent's state directory across updates.
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

# ELF class (1 = 32-bit, 2 = 64-bit) and e_machine (little-endian) per architecture. ARMv7
# systems run the armhf (ARMv6 hard-float) build.
case $arch in
amd64) build=amd64 class=02 machine=3e00 ;;
arm64) build=arm64 class=02 machine=b700 ;;
armhf | armv7) build=armhf class=01 machine=2800 ;;
*) die "unsupported architecture '$arch' (RUGIX_ARCH): otabake-agent is built for amd64, arm64 and armhf" ;;
esac

bin="$root/usr/bin/otabake-agent"
if [ -z "${RECIPE_PARAM_URL:-}" ]; then
	project=${RUGIX_PROJECT_DIR:?RUGIX_PROJECT_DIR is not set (Rugix Bakery sets it)}
	from="build/otabake/otabake-agent-$build"
	src="$project/$from"
	if [ ! -f "$src" ]; then
		die "$from not found in the Bakery project: run 'otabake build-release --backend bakery', which cross-compiles it there, or set the url and sha256 parameters of otabake-agent"
	fi
else
	from="the url parameter"
	src=$bin
	if [ ! -f "$src" ]; then
		die "url is set but $bin is missing: the 00-run.sh step did not run"
	fi
fi

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

if [ "$src" != "$bin" ]; then
	install -D -m 0755 "$src" "$bin"
	remember "$from"
fi

install -D -m 0644 "$RECIPE_DIR/files/otabake-agent-state.toml" "$root/etc/rugix/state/otabake-agent.toml"
