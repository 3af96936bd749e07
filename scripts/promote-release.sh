#!/usr/bin/env bash
# otabake's own promotion script (not a template script): moves STABLE_TAG (default stable) to
# the version pinned in .release-env (its BUILD_TAG), the exact build this checkout prepared.
# The templates' stabilize-release.sh promotes whatever FLOATING_TAG points at now instead;
# its drop-in is stabilize-release.sh. Extra arguments go to 'otabake promote-release'.
set -euo pipefail
exec "${OTABAKE:-otabake}" promote-release --tag "${STABLE_TAG:-stable}" "$@"
