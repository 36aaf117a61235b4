"""Exec's channel protocols as a WebSocket client other than kubectl sees them, through the API
server: the order of output against the status and the close."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

from reconcile.client import websocket
from reconcile.core import remotecommand
from tests import support

MISSING = "/no/such/file"


def _url(api_server: str, namespace: str, command: list[str], **flags: str) -> str:
    query = urlencode([("command", c) for c in command] + [("container", "web"), *flags.items()])
    return "wss" + api_server[len("https"):] + f"/api/v1/namespaces/{namespace}/pods/web/exec?{query}"


async def _session(api_server: str, url: str, protocol: str) -> tuple[list[bytes | str], int, str | None]:
    """Every message the server sent, the close code, the subprotocol it chose."""
    conn = await websocket.connect(url, support.connection(api_server).client_config(), subprotocols=[protocol])
    messages: list[bytes | str] = []
    try:
        while True:
            messages.append(await asyncio.wait_for(conn.recv(), 30))
    except websocket.Closed as closed:
        return messages, closed.code, conn.subprotocol
    finally:
        await conn.close()


def test_stderr_written_before_the_last_stdout_is_relayed_before_it_every_time(api_server, workload):
    """tar complains on stderr, then writes its end of archive on stdout and exits 1: on each of
    30 runs every byte arrives, the complaint before the end of archive (kubectl cp exits on it),
    then one status, then Close 1000 (Docker alone delivered the two out of order in about a quarter
    of runs)."""
    url = _url(api_server, workload, ["tar", "cf", "-", MISSING], stdout="true", stderr="true")

    async def runs() -> None:
        for run in range(30):
            messages, code, _ = await _session(api_server, url, remotecommand.V5)
            frames = [(m[0], m[1:]) for m in messages if isinstance(m, bytes) and m[1:]]
            channels = [channel for channel, _ in frames]
            assert code == remotecommand.NORMAL_CLOSURE, run
            assert channels[-1] == remotecommand.ERROR and channels.count(remotecommand.ERROR) == 1, (run, channels)
            stdout = b"".join(p for c, p in frames if c == remotecommand.STDOUT)
            stderr = b"".join(p for c, p in frames if c == remotecommand.STDERR)
            assert stdout == bytes(1024), run
            assert stderr == (f"tar: {MISSING}: No such file or directory\n"
                              "tar: error exit delayed from previous errors\n").encode(), (run, stderr)
            last_stdout = max(i for i, c in enumerate(channels) if c == remotecommand.STDOUT)
            assert all(c != remotecommand.STDERR for c in channels[last_stdout:]), (run, channels)
            assert json.loads(frames[-1][1])["details"]["causes"][0] == {"reason": "ExitCode", "message": "1"}

    asyncio.run(runs())

