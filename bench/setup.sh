#!/usr/bin/env bash
# Installs the load generators and baselines the benchmarks drive when they are missing: wrk
# (bench/api.py and friends), dnsperf and dnsmasq (bench/cluster_dns.py; dnsmasq-base is the binary
# alone, without a system service that would start listening on port 53).
set -euo pipefail
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v dnsperf >/dev/null 2>&1 || missing+=(dnsperf)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! $SUDO apt-get install -y "${missing[@]}"; then
    $SUDO apt-get update
    $SUDO apt-get install -y "${missing[@]}"
fi
