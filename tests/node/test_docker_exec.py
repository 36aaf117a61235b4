"""`DockerRuntime` exec sessions on a real dockerd: output as written, exit codes, and no command
outliving its caller (a timed-out probe, an aborted session)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from reconcile.node import docker
from tests import docker_support, support
from tests.node import helpers


@pytest.fixture(scope="module")
def container(docker_node: docker_support.DockerDaemon) -> Iterator[str]:
    cid = docker_node.docker("run", "-d", "--label", "reconcile.test=exec", helpers.HELLO).stdout.strip()
    yield cid
    docker_node.docker("rm", "-f", cid, check=False)


@pytest.fixture
async def runtime(docker_node: docker_support.DockerDaemon):
    rt = docker.DockerRuntime(docker_node.host)
    yield rt
    await rt.close()


def _running(docker_node: docker_support.DockerDaemon, cid: str, marker: str) -> bool:
    return marker in docker_node.docker("exec", cid, "ps", "-o", "args").stdout


async def test_output_comes_while_the_command_runs_then_its_exit_code(runtime, container, docker_node):
    marker = uuid.uuid4().hex[:8]
    gate = f"/tmp/gate-{marker}"
    session = await runtime.exec_stream(container, ["sh", "-c", f"echo one; mkfifo {gate}; read x < {gate}; "
                                                                 "echo two >&2; exit 5"])
    output = session.output()
    assert await anext(output) == (1, b"one\n")
    await support.eventually(lambda: _running(docker_node, container, marker), what="blocked on its fifo")
    docker_node.docker("exec", container, "sh", "-c", f"echo > {gate}")
    assert [item async for item in output] == [(2, b"two\n")]
    assert await session.exit_code() == 5


async def test_a_timed_out_exec_is_killed(runtime, container, docker_node):
    marker = str(uuid.uuid4().int % 10**6)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await runtime.exec(container, ["sh", "-c", f"sleep 97{marker}"], timeout=0.5)
    assert time.monotonic() - started < 5
    await support.eventually(lambda: not _running(docker_node, container, f"97{marker}"), timeout=15,
                             what="the timed-out command killed")


async def test_an_exec_aborted_before_it_was_read_never_runs(runtime, container):
    session = await runtime.exec_stream(container, ["sh", "-c", "echo ran"])
    session.abort()
    assert [item async for item in session.output()] == []
    assert (await runtime.exec(container, ["true"])) == (0, b"")
