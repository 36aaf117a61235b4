"""The seam to the Docker engine: the only module that imports the `docker` SDK.

The SDK is synchronous, so every call runs in a thread pool and the agent's event loop never
blocks; long-lived streams (logs with follow, events) get a thread of their own each so they
cannot starve short calls. The SDK's exceptions are translated here into the node-local ones
below, so the rest of the agent never sees a `docker.errors` type.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from reconcile.node import procfs

T = TypeVar("T")
log = logging.getLogger(__name__)

BACKGROUND_WORKERS = 2  # threads for sampling calls (stats), apart from the pods' calls


class DockerError(Exception):
    """Docker refused a request or could not be reached."""


class ContainerMissing(DockerError):
    """The container (or image, network) named does not exist."""


class PullFailed(DockerError):
    """An image could not be pulled (unknown image, unreachable registry, ...)."""


class InvalidSpec(DockerError):
    """A rendered container spec has arguments Docker's create does not take."""


def _translate(exc: Exception) -> DockerError:
    if isinstance(exc, docker.errors.NotFound | docker.errors.ImageNotFound):
        return ContainerMissing(_explain(exc))
    if isinstance(exc, docker.errors.APIError):
        return DockerError(_explain(exc))
    if isinstance(exc, requests.exceptions.RequestException | docker.errors.DockerException | OSError):
        return DockerError(f"cannot reach the Docker engine: {exc}")
    return DockerError(str(exc))


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


class DockerRuntime:
    """Async facade over one Docker engine (`unix:///var/run/docker.sock`, `tcp://...`, `ssh://...`)."""

    def __init__(self, base_url: str, *, max_workers: int = 8) -> None:
        self.base_url = base_url
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="docker")
        # Calls that may block for a grace period (stop) get their own threads, so thirty pods
        # stopping at once cannot hold every worker the restart path needs.
        self._slow = ThreadPoolExecutor(max_workers=64, thread_name_prefix="docker-slow")
        # Background sampling (stats of every container, each 15 s) gets two threads of its own: under
        # load the engine takes about a second per stats call, and a round of a hundred queued in
        # the main pool held every pod sync's create and start behind it for five seconds.
        self._background = ThreadPoolExecutor(max_workers=BACKGROUND_WORKERS, thread_name_prefix="docker-background")
        try:
            self._client = docker.DockerClient(base_url=base_url, timeout=120, max_pool_size=max_workers + 24)
        except docker.errors.DockerException as exc:
            raise DockerError(f"cannot use the Docker engine at {base_url}: {exc}") from exc
        self._api = self._client.api

    async def _run(self, fn: Callable[..., T], *args: Any, pool: ThreadPoolExecutor | None = None,
                   **kwargs: Any) -> T:
        """`fn` on a worker thread of `pool` (the main one by default), its errors as DockerError."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool or self._pool, functools.partial(fn, *args, **kwargs))
        except DockerError:
            raise
        except Exception as exc:  # the SDK raises requests/urllib3/OSError types too
            raise _translate(exc) from exc

    # --- engine ------------------------------------------------------------------------------

    async def info(self) -> dict:
        return await self._run(self._api.info)

    async def version(self) -> dict:
        return await self._run(self._api.version)

    async def ensure_network(self, name: str, *, subnet: str, gateway: str | None = None,
                             bridge_name: str | None = None) -> str:
        """The id of bridge network `name`, created with `subnet` when missing."""
        return await self._run(self._ensure_network, name, subnet, gateway, bridge_name)

    def _ensure_network(self, name: str, subnet: str, gateway: str | None, bridge_name: str | None) -> str:
        for network in self._api.networks(names=[name]):
            if network.get("Name") == name:
                return str(network["Id"])
        pool = docker.types.IPAMPool(subnet=subnet, gateway=gateway)
        options = {"com.docker.network.bridge.name": bridge_name} if bridge_name else None
        created = self._api.create_network(
            name, driver="bridge", ipam=docker.types.IPAMConfig(pool_configs=[pool]), options=options,
            check_duplicate=True, labels={"reconcile.network": name},
        )
        return str(created["Id"])

    async def ensure_volume(self, name: str, *, labels: dict[str, str] | None = None) -> str:
        """The host directory of named volume `name` (local driver), created when missing."""
        def ensure() -> str:
            try:
                found = self._api.inspect_volume(name)
            except docker.errors.NotFound:
                found = self._api.create_volume(name=name, driver="local", labels=labels or {})
            return str(found["Mountpoint"])
        return await self._run(ensure)

    async def labelled_volumes(self, key: str) -> list[tuple[str, str]]:
        """(name, value of label `key`) of every volume carrying that label."""
        def listed() -> list[tuple[str, str]]:
            found = self._api.volumes(filters={"label": key}).get("Volumes") or []
            return [(str(v["Name"]), str((v.get("Labels") or {}).get(key, ""))) for v in found]
        return await self._run(listed)

    async def remove_volume(self, name: str) -> bool:
        """Remove named volume `name`; False when it was not there."""
        def remove() -> bool:
            try:
                self._api.remove_volume(name)
            except docker.errors.NotFound:
                return False
            return True
        return await self._run(remove)

    async def remove_network(self, name: str) -> None:
        with contextlib.suppress(ContainerMissing):
            await self._run(self._api.remove_network, name)

    # --- images ------------------------------------------------------------------------------

    async def image_present(self, ref: str) -> bool:
        return await self.image_id(ref) is not None

    async def image_id(self, ref: str) -> str | None:
        """The local image id (`sha256:...`) of `ref`, or None when it is not on this engine."""
        try:
            found = await self._run(self._api.inspect_image, ref)
        except ContainerMissing:
            return None
        return str(found.get("Id") or "") or None

    async def pull(self, ref: str) -> None:
        repository, tag = split_image(ref)
        try:
            await self._run(self._api.pull, repository, tag=tag)
        except DockerError as exc:
            raise PullFailed(str(exc)) from exc

    async def build_image(self, context_dir: Path, tag: str) -> None:
        """Build a local image (tests and `up` build theirs; nothing is pulled: `FROM scratch`)."""

        def build() -> None:
            for chunk in self._api.build(path=str(context_dir), tag=tag, rm=True, decode=True, pull=False):
                if "error" in chunk:
                    raise DockerError(f"building {tag}: {chunk['error']}")

        await self._run(build)

    # --- containers --------------------------------------------------------------------------

    async def create(self, spec: dict) -> str:
        """Create a container from a rendered spec (the SDK's `containers.create` keyword arguments)."""
        kwargs = dict(spec)

        def create() -> str:
            try:
                return str(self._client.containers.create(**kwargs).id)
            except TypeError as exc:
                raise InvalidSpec(f"the container template produced arguments Docker does not take: {exc}") from exc

        return await self._run(create)

    async def start(self, container_id: str) -> None:
        await self._run(self._api.start, container_id)

    async def inspect(self, container_id: str) -> dict | None:
        try:
            return await self._run(self._api.inspect_container, container_id)
        except ContainerMissing:
            return None

    async def list(self, *, labels: dict[str, str] | None = None, all: bool = True) -> list[dict]:
        """Containers carrying all `labels`, as `inspect` dicts (ones removed meanwhile are skipped)."""

        def list_inspected() -> list[dict]:
            filters = {"label": [f"{k}={v}" for k, v in (labels or {}).items()]}
            found = []
            for summary in self._api.containers(all=all, filters=filters):
                try:
                    found.append(self._api.inspect_container(summary["Id"]))
                except docker.errors.NotFound:
                    continue
            return found

        return await self._run(list_inspected)

    async def stats(self, container_id: str) -> dict | None:
        """One snapshot of a container's counters (`one_shot`: no second sample taken by the engine,
        so it answers at once; rates are computed by the caller from its own samples). None if gone.
        Runs on the background threads: sampling never delays a pod's create or start."""
        try:
            return await self._run(self._api.stats, container_id, stream=False, one_shot=True, pool=self._background)
        except ContainerMissing:
            return None

    async def stop(self, container_id: str, *, timeout: int) -> None:
        """SIGTERM (the image's stop signal), then SIGKILL after `timeout` seconds."""
        with contextlib.suppress(ContainerMissing):
            await self._run(self._api.stop, container_id, timeout=max(0, int(timeout)), pool=self._slow)

    async def kill(self, container_id: str, *, signal: str = "SIGKILL") -> None:
        try:
            await self._run(self._api.kill, container_id, signal=signal)
        except ContainerMissing:
            return
        except DockerError as exc:
            if "is not running" not in str(exc):
                raise

    async def remove(self, container_id: str, *, force: bool = True) -> None:
        try:
            await self._run(self._api.remove_container, container_id, force=force, v=True)
        except ContainerMissing:
            return
        except DockerError as exc:
            if "already in progress" not in str(exc):
                raise

    async def exec_stream(self, container_id: str, command: list[str]) -> ExecSession:
        """Prepare `command` in a running container; it starts when the session's output is read."""
        created = await self._run(self._api.exec_create, container_id, command, stdout=True, stderr=True)
        return ExecSession(self, container_id, str(created["Id"]))

    async def exec_raw(self, container_id: str, command: list[str], *, stdin: bool, stdout: bool, stderr: bool,
                       tty: bool) -> RawSession:
        """Start `command` with its stdio on a hijacked connection (`kubectl exec`'s needs: stdin
        in, output out as written, a TTY that can be resized)."""
        created = await self._run(self._api.exec_create, container_id, command, stdin=stdin, stdout=stdout,
                                  stderr=stderr, tty=tty)
        exec_id = str(created["Id"])
        reader, writer = await self._hijack(f"/exec/{exec_id}/start", json.dumps({"Detach": False, "Tty": tty}))
        return RawSession(self, container_id, reader, writer, tty=tty, exec_id=exec_id)

    async def attach_raw(self, container_id: str, *, stdin: bool, stdout: bool, stderr: bool) -> RawSession:
        """The container's own stdio on a hijacked connection (`kubectl attach`)."""
        info = await self.inspect(container_id)
        if info is None:
            raise ContainerMissing(f"No such container: {container_id}")
        tty = bool((info.get("Config") or {}).get("Tty"))
        query = "&".join(f"{k}={int(v)}" for k, v in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)))
        reader, writer = await self._hijack(f"/containers/{container_id}/attach?stream=1&{query}", "")
        return RawSession(self, container_id, reader, writer, tty=tty, exec_id=None)

    async def _hijack(self, path: str, body: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """POST `path` asking Docker to upgrade the connection to a raw stream (as the docker CLI
        does: `Upgrade: tcp`). Done with asyncio on our own connection rather than the SDK's socket:
        bytes Docker sends right after its headers stay in our reader's buffer instead of being lost
        in a buffered file object the SDK keeps."""
        url = self.base_url
        try:
            if url.startswith("unix://"):
                reader, writer = await asyncio.open_unix_connection(url[len("unix://"):])
            elif url.startswith(("tcp://", "http://")):
                host, _, port = url.split("://", 1)[1].rstrip("/").rpartition(":")
                reader, writer = await asyncio.open_connection(host or "127.0.0.1", int(port))
            else:
                raise DockerError(f"streaming exec and attach need a unix:// or tcp:// engine, not {url}")
        except OSError as exc:
            raise DockerError(f"cannot reach the Docker engine: {exc}") from exc
        payload = body.encode()
        head = (f"POST /v{self._api.api_version}{path} HTTP/1.1\r\nHost: docker\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n").encode()
        try:
            writer.write(head + payload)
            await writer.drain()
            header = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise DockerError(f"the Docker engine broke the connection: {exc}") from exc
        status_line, *lines = header.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if code in (101, 200):
            return reader, writer
        length = 0
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
        try:
            text = (await asyncio.wait_for(reader.readexactly(min(length, 65536)), 5)).decode("utf-8", "replace")
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            text = ""
        finally:
            writer.close()
        with contextlib.suppress(ValueError, AttributeError):
            text = json.loads(text).get("message") or text
        if code == 404:
            raise ContainerMissing(text.strip() or "not found")
        raise DockerError(text.strip() or status_line)

    async def exec(self, container_id: str, command: list[str], *, timeout: float = 30) -> tuple[int, bytes]:
        """Run `command` to its end; (exit code, stdout+stderr). After `timeout` the command is killed
        and TimeoutError raised (probes: a hung check must not pile up processes in the container)."""
        session = await self.exec_stream(container_id, command)
        chunks: list[bytes] = []

        async def run() -> int:
            async with contextlib.aclosing(session.output()) as output:
                async for _, data in output:
                    chunks.append(data)
            return await session.exit_code()

        try:
            code = await asyncio.wait_for(run(), timeout)
        finally:
            session.abort()
        return code, b"".join(chunks)

    def logs(self, container_id: str, *, follow: bool, tail: int | None, since: float | None,
             timestamps: bool) -> AsyncIterator[bytes]:
        """stdout+stderr of a container, in chunks; with `follow`, until it stops or the caller closes."""

        def open_stream() -> Any:
            return self._api.logs(container_id, stream=True, follow=follow, timestamps=timestamps,
                                  tail="all" if tail is None else max(0, int(tail)),
                                  since=int(since) if since else None)

        return _threaded_stream(open_stream)

    def events(self, *, labels: dict[str, str]) -> AsyncIterator[dict]:
        """Container die/start/oom/destroy events of containers carrying `labels`."""

        def open_stream() -> Any:
            filters = {"type": ["container"], "event": ["die", "start", "oom", "destroy"],
                       "label": [f"{k}={v}" for k, v in labels.items()]}
            return self._api.events(decode=True, filters=filters)

        return _threaded_stream(open_stream)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._slow.shutdown(wait=False, cancel_futures=True)
        self._background.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self._client.close()


class ExecSession:
    """One command run in a container with `docker exec`: its output as it comes, then its exit code.

    Docker cannot signal an exec'd process and lets it run on when the exec's connection goes, so
    a caller that leaves early calls `abort`: it finds the process through `exec inspect` and
    kills it (its process group) with a second exec inside the container (see `procfs`).
    """

    def __init__(self, runtime: DockerRuntime, container_id: str, exec_id: str) -> None:
        self._runtime = runtime
        self.container_id = container_id
        self.exec_id = exec_id
        # Invariant: once `_aborted` is set under the lock, the command is never started; if it was
        # started first, the abort sees `_stream` set and kills what runs.
        self._lock = threading.Lock()
        self._stream: Any = None  # the SDK's CancellableStream once started
        self._aborted = False
        self._ended = False  # the output ran to its end: the command is over

    def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(1 for stdout or 2 for stderr, bytes) as the command writes them, until it ends."""

        def open_stream() -> Any:
            with self._lock:
                if self._aborted:
                    return iter(())
                self._stream = self._runtime._api.exec_start(self.exec_id, stream=True, demux=True)
                return self._stream

        async def frames() -> AsyncIterator[tuple[int, bytes]]:
            async with contextlib.aclosing(_threaded_stream(open_stream)) as stream:
                async for out, err in stream:
                    if out:
                        yield 1, out
                    if err:
                        yield 2, err
            self._ended = True

        return frames()

    async def exit_code(self) -> int:
        """The command's exit code, once its output ended (-1 when Docker does not know it)."""
        info = await self._runtime._run(self._runtime._api.exec_inspect, self.exec_id)
        code = info.get("ExitCode")
        return int(code) if code is not None else -1

    def abort(self) -> None:
        """Kill the command if it still runs. Never awaits: it is called from cleanup code that may be
        running because its task is being cancelled, so the work goes to a thread of the slow pool."""
        with self._lock:
            if self._ended or self._aborted:
                return
            self._aborted = True
            started = self._stream is not None
        if started:
            with contextlib.suppress(RuntimeError):  # the pool is shut down: the agent is stopping
                self._runtime._slow.submit(self._kill)

    def _kill(self) -> None:
        try:
            kill_exec(self._runtime, self.container_id, self.exec_id)
        finally:
            with contextlib.suppress(Exception):
                self._stream.close()  # the reader thread ends now even if something still holds the pipe


class RawSession:
    """One exec or attach on a hijacked Docker connection: bytes both ways as they come.

    Without a TTY Docker multiplexes stdout and stderr (`remotecommand.DockerDemuxer` splits them);
    with one the output is the terminal's, raw. `abort` kills an exec's command if it still runs
    (Docker lets it run on when the connection goes); an attach only lets go of the container.
    """

    def __init__(self, runtime: DockerRuntime, container_id: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, tty: bool, exec_id: str | None) -> None:
        self._runtime = runtime
        self.container_id = container_id
        self.exec_id = exec_id
        self.tty = tty
        self._reader = reader
        self._writer = writer
        self._ended = False

    async def read(self) -> bytes:
        """The next bytes of output; b"" once the command (or the container) is done."""
        try:
            data = await self._reader.read(65536)
        except OSError:
            data = b""
        if not data:
            self._ended = True
        return data

    async def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            return
        self._writer.write(data)
        with contextlib.suppress(OSError):
            await self._writer.drain()

    def close_stdin(self) -> None:
        """Half-close: the command reads EOF on its stdin, its output still comes."""
        with contextlib.suppress(OSError, RuntimeError):
            if self._writer.can_write_eof() and not self._writer.is_closing():
                self._writer.write_eof()

    async def resize(self, width: int, height: int) -> None:
        api = self._runtime._api
        try:
            if self.exec_id is not None:
                await self._runtime._run(api.exec_resize, self.exec_id, height=height, width=width)
            else:
                await self._runtime._run(api.resize, self.container_id, height, width)
        except DockerError as exc:  # the command may have ended meanwhile: a resize is advisory
            log.debug("resize of %s: %s", self.container_id[:12], exc)

    async def exit_code(self) -> int | None:
        """An exec's exit code once its output ended (None for an attach, -1 when Docker does not know)."""
        if self.exec_id is None:
            return None
        info = await self._runtime._run(self._runtime._api.exec_inspect, self.exec_id)
        code = info.get("ExitCode")
        return int(code) if code is not None else -1

    async def running(self) -> bool:
        """Whether the command may still write: an exec Docker reports running (or cannot say
        about), or an attach (its container's output ends with the connection)."""
        if self.exec_id is None:
            return True
        try:
            info = await self._runtime._run(self._runtime._api.exec_inspect, self.exec_id)
        except DockerError:
            return True
        return bool(info.get("Running", True))

    def abort(self) -> None:
        """Close the connection and, for an exec that has not ended, kill its command. Never awaits."""
        self._writer.close()
        if self.exec_id is not None and not self._ended:
            with contextlib.suppress(RuntimeError):  # the pool is shut down: the agent is stopping
                self._runtime._slow.submit(kill_exec, self._runtime, self.container_id, self.exec_id)


def kill_exec(runtime: DockerRuntime, container_id: str, exec_id: str) -> None:
    """Kill what an exec still runs (its process group), from a thread: Docker cannot signal an
    exec'd process, so a second exec in the container does it (see `procfs`)."""
    api = runtime._api
    try:
        info: dict[str, Any] = {}
        for _ in range(50):  # Docker marks an exec running a moment before it records its pid
            info = api.exec_inspect(exec_id)
            if not info.get("Running") or info.get("Pid"):
                break
            time.sleep(0.02)
        if not info.get("Running"):
            return
        target = procfs.locate(int(info.get("Pid") or 0), container_id)
        if target is None:
            log.warning("exec %s in container %s: cannot find its process from this host (a remote "
                        "engine?); it runs on", exec_id[:12], container_id[:12])
            return
        killer = api.exec_create(container_id, target.kill_command(), stdout=True, stderr=True)
        api.exec_start(killer["Id"])
    except Exception as exc:  # a thread of its own: nobody else would hear of it
        log.warning("exec %s in container %s: could not kill it: %s", exec_id[:12], container_id[:12],
                    _translate(exc) if not isinstance(exc, DockerError) else exc)


async def _threaded_stream(open_stream: Callable[[], Iterable[Any]]) -> AsyncIterator[Any]:
    """Iterate a blocking SDK stream on a thread of its own, handing items to the event loop.

    Closing the async generator closes the SDK stream (its HTTP response), which ends the thread.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=256)
    holder: dict[str, Any] = {}
    stopped = threading.Event()

    def put(kind: str, value: Any) -> None:
        if stopped.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us
            asyncio.run_coroutine_threadsafe(queue.put((kind, value)), loop).result()

    def pump() -> None:
        try:
            stream = open_stream()
            holder["stream"] = stream
            for item in stream:
                if stopped.is_set():
                    break
                put("item", item)
        except Exception as exc:
            put("error", exc)
        else:
            put("end", None)

    thread = threading.Thread(target=pump, name="docker-stream", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "item":
                yield value
            elif kind == "error":
                if stopped.is_set():
                    return
                raise _translate(value) if not isinstance(value, DockerError) else value
            else:
                return
    finally:
        stopped.set()
        stream = holder.get("stream")
        close = getattr(stream, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, close)
        while not queue.empty():  # unblock a pump waiting on a full queue
            queue.get_nowait()


def split_image(ref: str) -> tuple[str, str]:
    """("repo", "tag") of an image reference; a digest stays in the repository part; no tag = latest."""
    if "@" in ref:
        return ref, ""
    name, _, last = ref.rpartition("/")
    if ":" in last:
        repo_last, _, tag = last.rpartition(":")
        return (f"{name}/{repo_last}" if name else repo_last), tag
    return ref, "latest"
