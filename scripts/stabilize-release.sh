#!/usr/bin/env bash
# Drop-in replacement for the Nexigon Rugix template's scripts/stabilize-release.sh: tags the
# version that FLOATING_TAG of .release-env points at now (the latest build of the branch) as
# STABLE_TAG (default stable), moving that tag if it exists. Same arguments (none), environment
# (STABLE_TAG, .env, .release-env) and semantics, with two differences: otabake talks to the
# Hub itself (NEXIGON_CLI is not used; credentials as nexigon-cli finds them), and it refuses to
# promote a version that lacks a system's bundle (see 'otabake promote-release --help').
# Extra arguments go to 'otabake promote-release' (e.g. --partial SYSTEM).
set -euo pipefail
exec "${OTABAKE:-otabake}" promote-release --from-floating --tag "${STABLE_TAG:-stable}" "$@"
