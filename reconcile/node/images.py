"""Local images built from the host's static busybox: the pause (infra) image and a tiny web server.

No registry is reachable where this runs, so the infra image the kubelet would pull
(`registry.k8s.io/pause`) is built locally instead: `FROM scratch` plus busybox, a process that
sleeps forever and exits at once on SIGTERM (it is PID 1, which ignores signals it does not trap).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from reconcile.node import docker

PAUSE_IMAGE = "reconcile-pause:1.0"
HELLO_IMAGE = "reconcile-hello:1.0"

_BASE = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
"""
PAUSE_DOCKERFILE = _BASE + """CMD ["sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done"]
"""
# A web server on 8080 serving /www; `sh` as PID 1 so SIGTERM ends it promptly.
HELLO_DOCKERFILE = _BASE + """RUN ["/bin/sh", "-c", "mkdir -p /www /tmp && echo hello > /www/index.html"]
EXPOSE 8080
CMD ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 8080 -h /www & wait"]
"""


def busybox_binary() -> Path:
    """A static busybox on the host (Debian's `busybox-static` installs /bin/busybox)."""
    found = shutil.which("busybox") or "/bin/busybox"
    path = Path(found)
    if not path.exists():
        raise FileNotFoundError("no busybox binary on this host: install busybox-static")
    return path


def write_context(directory: Path, dockerfile: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox_binary(), directory / "busybox")
    (directory / "Dockerfile").write_text(dockerfile)
    return directory


async def build(runtime: docker.DockerRuntime, tag: str, dockerfile: str) -> None:
    with tempfile.TemporaryDirectory(prefix="reconcile-image-") as tmp:
        await runtime.build_image(write_context(Path(tmp), dockerfile), tag)


async def ensure_pause_image(runtime: docker.DockerRuntime, tag: str = PAUSE_IMAGE) -> bool:
    """Build the local pause image under `tag` if the engine lacks it; True if it was built."""
    if await runtime.image_present(tag):
        return False
    await build(runtime, tag, PAUSE_DOCKERFILE)
    return True
