#!/usr/bin/env bash
# Installs wrk (the HTTP load generator bench/api.py drives) when it is missing.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! $SUDO apt-get install -y wrk; then
    $SUDO apt-get update
    $SUDO apt-get install -y wrk
fi
