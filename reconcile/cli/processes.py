"""Detached background processes, known by pid and start time (never by name).

`reconcile up` starts them in their own session so they outlive it; `down` and `status`
find them again from the state file. The start time from /proc guards against a pid that
was reused by an unrelated process after ours died.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def start_time(pid: int) -> int | None:
    """Clock ticks after boot when `pid` started, or None if there is no such live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):  # a zombie has exited
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def alive(pid: int | None, *, started: int | None = None) -> bool:
    """The process runs, and is the same one we started (when its start time is known)."""
    if not pid:
        return False
    current = start_time(pid)
    if current is None:
        return False
    return started is None or current == started


def spawn(argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> int:
    """Start `argv` detached (new session, stdin closed, output appended to `log`); return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, close_fds=True,
        )
    process.returncode = 0  # detached on purpose: no "still running" warning when our handle goes away
    return process.pid


def stop(pid: int, *, started: int | None = None, timeout: float = 10.0) -> bool:
    """SIGTERM the process (its whole group when it leads one), wait, then SIGKILL; True if it ran."""
    if not alive(pid, started=started):
        return False
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, started=started):
            return True
        time.sleep(0.05)  # polling a foreign process's exit: there is no handle to wait on
    _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and alive(pid, started=started):
        time.sleep(0.05)
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def http_ok(url: str, *, timeout: float = 1.0, cafile: str | None = None) -> bool:
    """GET `url` answers 200 (an https URL is verified against `cafile`, else the system's CAs)."""
    try:
        context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def port_free(port: int, *, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def log_tail(path: Path | str | None, *, chars: int = 3000) -> str:
    if not path:
        return "(no log)"
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
