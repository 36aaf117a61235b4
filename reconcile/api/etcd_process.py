"""An embedded etcd that outlives the process that started it, for `reconcile up`.

Why it lives in `api`: only `api` may import `store`, and the CLI (which must not) needs a
local etcd that keeps running after `reconcile up` exits. `EmbeddedEtcd` already starts
etcd in its own session with its log in a file, so dropping our handle leaves it running;
`reconcile down` stops it later by the pid returned here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from reconcile.store import embedded


def start_embedded_etcd(data_dir: Path, *, timeout: float = 30) -> tuple[str, int]:
    """Start etcd with data under `data_dir`; return (client endpoint, pid) once it serves."""
    etcd = embedded.EmbeddedEtcd(Path(data_dir))
    etcd.start(timeout=timeout)
    endpoint, pid = etcd.endpoint, etcd.pid
    assert pid is not None
    # Forget the handle without stopping etcd: it is detached (own session, log file).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        if etcd.process is not None:
            etcd.process.returncode = 0  # keep Popen.__del__ from warning about a "still running" child
        etcd.process = None
    return endpoint, pid


def log_path(data_dir: Path) -> Path:
    """Where the embedded etcd writes its log."""
    return embedded.EmbeddedEtcd(Path(data_dir)).log_path


def healthy(endpoint: str, *, timeout: float = 1.0) -> bool:
    """etcd's `/health` says true (works for the embedded member and for an external one)."""
    url = endpoint.split(",")[0].rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200 and json.loads(response.read() or b"{}").get("health") in ("true", True)
    except (OSError, urllib.error.URLError, ValueError):
        return False
