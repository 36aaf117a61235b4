#!/usr/bin/env bash
# Make sure a Docker engine answers here, so `make up` and `make test` work on a bare Debian box.
#
# Idempotent: if `docker info` already answers, nothing happens (a second dockerd is never
# started). Otherwise, as root: install Debian's docker.io and busybox-static when missing
# (busybox builds the local test images: no registry is reachable), start dockerd in the
# background with its own log and pidfile under the state dir, and wait until it answers.
# Nothing here contacts an image registry.
set -euo pipefail

STATE_DIR="${RECONCILE_DOCKER_STATE_DIR:-${RECONCILE_STATE_DIR:-${HOME:-/root}/.local/share/reconcile}/dockerd}"
PIDFILE="$STATE_DIR/dockerd.pid"
LOG="$STATE_DIR/dockerd.log"
WAIT_SECONDS="${RECONCILE_DOCKER_WAIT:-60}"

answers() { docker info >/dev/null 2>&1; }

# The service proxy programs the kernel with nft (Debian's nftables); its tests need it too.
if ! command -v nft >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-docker: installing nftables (the service proxy's nft)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nftables \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nftables; }
fi
# ... and clears stale UDP flows with conntrack (Debian's conntrack, conntrack-tools).
if ! command -v conntrack >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-docker: installing conntrack (the service proxy's UDP flow cleanup)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends conntrack \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends conntrack; }
fi
# ssh:// GitRepository tests start their own sshd (127.0.0.1, a free port, state in a temp folder):
# they need Debian's openssh-server, but never its system sshd on port 22. The marker file, written
# before the install, stops the package's service (sysvinit script and systemd unit both honour it).
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" -eq 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-docker: installing openssh-server (ssh:// source tests), its system sshd disabled"
    mkdir -p /etc/ssh && touch /etc/ssh/sshd_not_to_be_run
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server openssh-client \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
             openssh-server openssh-client; }
fi

if command -v docker >/dev/null 2>&1 && answers; then
    echo "ensure-docker: a Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-docker: no Docker engine answers, and starting one needs root." >&2
    echo "  run: sudo $0   (or start dockerd yourself: sudo dockerd &)" >&2
    exit 1
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || missing+=(busybox-static)
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure-docker: missing ${missing[*]} and this is not a Debian system; install them by hand." >&2
        exit 1
    fi
    echo "ensure-docker: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

mkdir -p "$STATE_DIR"
started=""
pid="$(cat "$PIDFILE" 2>/dev/null || true)"
if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "dockerd" ]; then
    echo "ensure-docker: dockerd (pid $pid) is running; waiting for it to answer"
else
    echo "ensure-docker: starting dockerd in the background (log $LOG)"
    # setsid: the daemon outlives this shell and a Ctrl-C in `make` never reaches it
    setsid dockerd --pidfile "$PIDFILE" >>"$LOG" 2>&1 < /dev/null &
    started="$!"
fi

for _ in $(seq 1 $((WAIT_SECONDS * 5))); do
    if answers; then
        echo "ensure-docker: Docker engine answers ($(docker version --format '{{.Server.Version}}'))"
        exit 0
    fi
    if [ -n "$started" ] && ! kill -0 "$started" 2>/dev/null; then
        echo "ensure-docker: dockerd exited; the end of $LOG:" >&2
        tail -n 30 "$LOG" >&2
        exit 1
    fi
    sleep 0.2
done
echo "ensure-docker: dockerd did not answer within ${WAIT_SECONDS}s; the end of $LOG:" >&2
tail -n 30 "$LOG" >&2
exit 1
