"""Exec's channel protocols as a WebSocket client other than kubectl sees them, through the API
server: the order of output against the status and the close, and the base64 subprotocols
(`v4.base64.channel.k8s.io`, `base64.channel.k8s.io`: text frames, an ASCII channel digit and
base64 data), which browsers' terminals and older clients ask for."""

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


def _decoded(messages: list[bytes | str]) -> dict[int, bytes]:
    """The base64 protocols' messages (all text frames) gathered per channel."""
    assert all(isinstance(m, str) for m in messages), messages
    out: dict[int, bytes] = {}
    for text in messages:
        parts = remotecommand.decode_base64(text)
        assert parts is not None
        out[parts[0]] = out.get(parts[0], b"") + parts[1]
    return out


def test_v4_base64_exec_stdout_stderr_and_exit_code(api_server, workload):
    url = _url(api_server, workload, ["sh", "-c", "echo out; echo err >&2; exit 3"], stdout="true", stderr="true")
    messages, code, chosen = asyncio.run(_session(api_server, url, remotecommand.V4_BASE64))
    assert (chosen, code) == (remotecommand.V4_BASE64, remotecommand.NORMAL_CLOSURE)
    assert messages[0] == "1"  # the readiness message: stdout, empty
    channels = _decoded(messages)
    assert channels[remotecommand.STDOUT] == b"out\n" and channels[remotecommand.STDERR] == b"err\n"
    status = json.loads(channels[remotecommand.ERROR])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"][0] == {"reason": "ExitCode", "message": "3"}


def test_base64_exec_reads_stdin_and_reports_failure_as_text(api_server, workload):
    """The pre-v4 name: stdin decoded from base64 (a malformed message is dropped, the session goes
    on); the error channel says nothing on success and the failure's message as text otherwise."""
    async def run(command: str) -> tuple[dict[int, bytes], int]:
        url = _url(api_server, workload, ["sh", "-c", command], stdin="true", stdout="true", stderr="true")
        conn = await websocket.connect(url, support.connection(api_server).client_config(),
                                       subprotocols=[remotecommand.BASE64])
        assert conn.subprotocol == remotecommand.BASE64
        await conn.send("0not base64!")
        await conn.send(remotecommand.encode_base64(remotecommand.STDIN, b"hello\n"))
        messages: list[bytes | str] = []
        try:
            while True:
                messages.append(await asyncio.wait_for(conn.recv(), 30))
        except websocket.Closed as closed:
            return _decoded(messages), closed.code
        finally:
            await conn.close()

    channels, code = asyncio.run(run("read line; echo got $line"))
    assert code == remotecommand.NORMAL_CLOSURE
    assert channels[remotecommand.STDOUT] == b"got hello\n"
    assert channels.get(remotecommand.ERROR, b"") == b""
    channels, code = asyncio.run(run("read line; exit 2"))
    assert channels[remotecommand.ERROR] == b"command terminated with non-zero exit code: exit status 2"

