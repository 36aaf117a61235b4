"""Bad flags of `reconcile dns` and the node agent's DNS flags fail at once, naming the flag."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from reconcile.cli import dns_cmd


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)), ("[::1]:53", ("::1", 53)),
    ("::1", ("::1", 53)), ("[::1]", ("::1", 53)),
])
def test_listen_addresses(value: str, expected: tuple[str, int]) -> None:
    assert dns_cmd.parse_address(value, default_port=53) == expected


@pytest.mark.parametrize("value", ["localhost:53", "127.0.0.1:99999", "127.0.0.1:x", "[::1", "[::1]x", ""])
def test_bad_listen_addresses(value: str) -> None:
    with pytest.raises(click.BadParameter):
        dns_cmd.parse_address(value, default_port=53)


def test_the_commands_refuse_bad_flags() -> None:
    listen = run("dns", "--listen", "example.com:53")
    assert listen.returncode == 2 and "is not an IP address" in listen.stderr
    ttl = run("dns", "--ttl", "4000")
    assert ttl.returncode == 2 and "--ttl" in ttl.stderr
    node = run("node", "join", "--name", "n", "--server", "http://127.0.0.1:1", "--cluster-dns", "10.96.0.10,nope")
    assert node.returncode == 2 and "--cluster-dns" in node.stderr and "'nope' is not an IP address" in node.stderr
