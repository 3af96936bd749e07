#!/usr/bin/env bash
# Drop-in replacement for scripts/stabilize-release.sh: moves STABLE_TAG (default stable) to the
# version pinned in .release-env.
set -euo pipefail
exec "${OTABAKE:-otabake}" promote-release --tag "${STABLE_TAG:-stable}" "$@"
