"""A `reconcile dns` child process for the tests, and a dnspython query helper (127.0.0.1 by default)."""

from __future__ import annotations

import os
import subprocess
import sys

import dns.message
import dns.query

from reconcile.pki import cluster as pki_cluster
from reconcile.testing import free_port
from tests import support


class DnsProcess:
    """`python -m reconcile dns` as a child process, stopped by pid."""

    def __init__(self, server: str, *args: str, as_coredns: bool = True, host: str = "127.0.0.1",
                 port: int | None = None) -> None:
        self.host, self.port = host, port if port is not None else free_port()
        conn = support.connection(server)
        pair = conn.user(pki_cluster.COREDNS.user, *pki_cluster.COREDNS.groups) if as_coredns else None
        self.log = support.process_log("dns-")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconcile", "dns", "--kubeconfig", str(conn.kubeconfig(as_user=pair)),
             "--listen", f"{host}:{self.port}", "-v", *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        with open(self.log.name) as handle:
            return handle.read()[-3000:]


def ask(port: int, name: str, qtype: str = "A", *, tcp: bool = False, host: str = "127.0.0.1") -> dns.message.Message:
    query = dns.message.make_query(name, qtype)
    if tcp:
        return dns.query.tcp(query, host, port=port, timeout=2)
    return dns.query.udp(query, host, port=port, timeout=2)
