#!/usr/bin/env bash
# Drop-in replacement for the Nexigon Rugix template's scripts/run-release.sh: boots one
# system's image in QEMU with the version pinned by prepare-release, without rebuilding.
# Usage: run-release.sh SYSTEM
# An image otabake built (build/SYSTEM/system.img, native backend) boots with 'otabake run';
# otherwise, as in the template, './run-bakery run SYSTEM --release-version VERSION'.
set -euo pipefail

if [ ! -f .release-env ]; then
    echo "[ERROR] .release-env not found — run ./scripts/prepare-release.sh first" >&2
    exit 1
fi

# shellcheck disable=SC1091
. ./.release-env

if [ $# -ne 1 ]; then
    echo "[ERROR] expected exactly one system" >&2
    echo "usage: $0 <system>" >&2
    exit 1
fi

system="$1"

echo "[INFO] running '$system' (version: $VERSION)"
if [ -f "build/$system/system.img" ]; then
    exec "${OTABAKE:-otabake}" run "$system"
fi
if [ -x ./run-bakery ]; then
    exec ./run-bakery run "$system" --release-version "$VERSION"
fi
echo "[ERROR] build/$system/system.img not found and no ./run-bakery — run ./scripts/build-release.sh $system first" >&2
exit 1
