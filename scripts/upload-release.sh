#!/usr/bin/env bash
# Drop-in replacement for scripts/upload-release.sh: uploads every build/<system>/ into the
# version pinned in .release-env, with the same asset names and metadata.
# The Yocto flavour took a MACHINE argument; with otabake, collect it first with
# 'otabake build-release --backend yocto SYSTEM' and pass the system name here.
set -euo pipefail
args=()
for system in "$@"; do
    args+=(--system "$system")
done
# ${args[@]+…}: bash 3.2 calls an empty array unbound under set -u.
exec "${OTABAKE:-otabake}" upload-release ${args[@]+"${args[@]}"}
