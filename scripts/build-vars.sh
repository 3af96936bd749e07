#!/usr/bin/env bash
# Drop-in replacement for the Nexigon Rugix template's scripts/build-vars.sh: prints
# BUILD_TAG=build-<UTC %Y%m%d%H%M%S>-<short sha> and FLOATING_TAG=latest-build-<branch>, each
# taken from the environment when set, exactly as otabake prepare-release will pin them. Same
# arguments (none), environment (BUILD_TAG, FLOATING_TAG) and output. Unlike the template, the
# time honours SOURCE_DATE_EPOCH and a detached HEAD takes its branch from CI variables.
set -euo pipefail
exec "${OTABAKE:-otabake}" prepare-release --print-vars
