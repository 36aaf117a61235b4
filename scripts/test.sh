#!/usr/bin/env bash
# The whole suite as CI runs it: `make test` and .ci/run both come here (after installing .venv
# from the lock and making sure a Docker engine answers), so there is one test command.
#
# RECONCILE_REQUIRE_PREREQUISITES=1: a missing prerequisite (dockerd, ip, root, kubectl 1.32) fails
# its tests with what to install instead of skipping them (tests/prerequisites.py), and so does any
# other skip. -rs lists skip reasons (none should remain) and --durations=15 the slowest tests, both
# printed before pytest's summary line, which stays the last line of the output (`exec`: nothing of
# ours runs after pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
export RECONCILE_REQUIRE_PREREQUISITES=1
# The suite starts a few thousand Python processes (servers, agents, controllers, CLI runs); with
# PYTHONDONTWRITEBYTECODE set (as some sandboxes and CI images do), each recompiles the reconcile
# modules it imports, about half a second of CPU for an API server. Byte code goes to a cache
# outside the checkout instead, so a clean clone stays clean.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-${TMPDIR:-/tmp}/reconcile-pycache-$(id -u)}"
exec "${VENV:-.venv}/bin/python" -m pytest -q -p no:cacheprovider -rs --durations=15 "$@"
