#!/usr/bin/env bash
# Drop-in replacement for scripts/build-release.sh: builds each named system with the version
# pinned in .release-env.  Usage: build-release.sh SYSTEM [SYSTEM...]
set -euo pipefail
if [ $# -eq 0 ]; then
    echo "usage: $0 <system> [<system> ...]" >&2
    exit 1
fi
exec "${OTABAKE:-otabake}" build-release "$@"
