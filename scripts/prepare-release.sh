#!/usr/bin/env bash
# Drop-in replacement for the Nexigon templates' scripts/prepare-release.sh: generates the
# release version, creates it in the Hub (or the local Hub) and writes .release-env.
# Reads the same .env (NEXIGON_REPOSITORY, NEXIGON_PACKAGE, NEXIGON_HUB_URL, NEXIGON_TOKEN) and
# honours BUILD_TAG and FLOATING_TAG from the environment.
set -euo pipefail
exec "${OTABAKE:-otabake}" prepare-release "$@"
