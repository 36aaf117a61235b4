"""Secrets encrypted at rest, through a real API server process on a real etcd: etcd holds ciphertext,
clients and the watch cache plaintext; the canary never reaches etcd, logs or error messages; a
missing key makes one object unreadable, not a list or a watch; rotation with `reconcile secrets
rotate` keeps every Secret readable throughout."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconcile.store import etcd
from tests import support
from tests.api import helpers
from tests.conftest import run_cli

CANARY = "canary-4b1d0e2a-secret-at-rest"
CANARY_B64 = base64.b64encode(CANARY.encode()).decode()
KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(50, 82))).decode()


def write_config(path: Path, *providers: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": list(providers)}]}))
    return path


def aesgcm(*keys: tuple[str, str]) -> dict[str, Any]:
    return {"aesgcm": {"keys": [{"name": name, "secret": secret} for name, secret in keys]}}


IDENTITY: dict[str, Any] = {"identity": {}}


def raw_values(endpoint: str, prefix: str, key_prefix: str) -> dict[str, bytes]:
    """What etcd holds under `key_prefix`, read with a store that has no transformer."""
    async def read() -> dict[str, bytes]:
        async with etcd.EtcdStore([endpoint], prefix=prefix) as store:
            return {kv.key: kv.value for kv in (await store.list(key_prefix)).items}
    return asyncio.run(read())


def secret(name: str, value: str = CANARY) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"password": value}}


def password(obj: dict[str, Any]) -> str:
    return base64.b64decode(obj["data"]["password"]).decode()


class Servers:
    """API server processes on one etcd prefix, started one after another with different configurations."""

    def __init__(self, endpoint: str, tmp: Path) -> None:
        self.endpoint = endpoint
        self.prefix = f"/test-{uuid.uuid4().hex[:12]}/registry"
        self.tmp = tmp
        self.started: list[support.ApiServerProcess] = []

    def start(self, config: Path | None) -> support.ApiServerProcess:
        extra = ("--encryption-provider-config", str(config)) if config else ()
        server = support.ApiServerProcess(self.endpoint, prefix=self.prefix, extra_args=extra)
        server.start()
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()

    def logs(self) -> str:
        return "".join(Path(server.log.name).read_text(errors="replace") for server in self.started)

    def raw(self, namespace: str) -> dict[str, bytes]:
        return raw_values(self.endpoint, self.prefix, f"core/secrets/{namespace}/")


@pytest.fixture
def servers(etcd_endpoint: str, tmp_path: Path) -> Iterator[Servers]:
    started = Servers(etcd_endpoint, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def test_etcd_holds_ciphertext_clients_and_the_watch_cache_plaintext(servers: Servers, tmp_path: Path) -> None:
    server = servers.start(write_config(tmp_path / "enc.yaml", aesgcm(("key1", KEY1)), IDENTITY))
    with server.connection.http_client() as client:
        ns = helpers.make_namespace(client)
        start = client.get(f"/api/v1/namespaces/{ns}/secrets").json()["metadata"]["resourceVersion"]
        created = helpers.create(client, f"/api/v1/namespaces/{ns}/secrets", secret("s"))
        assert password(created) == CANARY
        helpers.create(client, helpers.cm_path(ns), helpers.configmap("c", {"note": CANARY}))
        raw = servers.raw(ns)
        assert list(raw) == [f"core/secrets/{ns}/s"]
        stored = raw[f"core/secrets/{ns}/s"]
        assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
        assert CANARY.encode() not in stored and CANARY_B64.encode() not in stored
        # only the configured resources are encrypted
        assert CANARY.encode() in raw_values(servers.endpoint, servers.prefix, f"core/configmaps/{ns}/")[
            f"core/configmaps/{ns}/c"]
        # the watch cache holds plaintext: cached get, list and watch all serve the data
        cached = client.get(f"/api/v1/namespaces/{ns}/secrets/s", params={"resourceVersion": "0"})
        assert cached.status_code == 200 and password(cached.json()) == CANARY
        listed = client.get(f"/api/v1/namespaces/{ns}/secrets").json()
        assert [password(item) for item in listed["items"]] == [CANARY]
        events = _watch(client, ns, start)
        assert events[0]["type"] == "ADDED" and password(events[0]["object"]) == CANARY
        # an update that changes nothing is not written (the value is already under the write key)
        again = client.put(f"/api/v1/namespaces/{ns}/secrets/s", json=created)
        assert again.status_code == 200
        assert again.json()["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def _watch(client: httpx.Client, ns: str, start: str) -> list[dict[str, Any]]:
    events = []
    with client.stream("GET", f"/api/v1/namespaces/{ns}/secrets",
                       params={"watch": "true", "resourceVersion": start, "timeoutSeconds": "5"}) as response:
        for line in response.iter_lines():
            if line:
                events.append(json.loads(line))
                break
    return events


def test_the_canary_is_in_no_log_and_no_error_message(servers: Servers, tmp_path: Path) -> None:
    server = servers.start(write_config(tmp_path / "enc.yaml", aesgcm(("key1", KEY1))))
    with server.connection.http_client() as client:
        ns = helpers.make_namespace(client)
        path = f"/api/v1/namespaces/{ns}/secrets"
        immutable = {**helpers.create(client, path, secret("s")), "immutable": True}
        assert client.put(f"{path}/s", json=immutable).status_code == 200
        answers = [
            client.post(path, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad1"},
                                    "data": {"password": CANARY + "!!"}}),  # not base64
            client.post(path, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad2"},
                                    "data": CANARY}),  # not a map
            client.post(path, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad3"},
                                    "stringData": {"password": [CANARY]}}),  # not a string
            client.post(path, json=secret("s")),  # AlreadyExists
            client.put(f"{path}/s", json={**secret("s"), "immutable": True, "data": {"x": CANARY_B64}}),  # immutable
        ]
        assert [a.status_code >= 400 for a in answers] == [True] * len(answers)
        for answer in answers:
            assert CANARY not in answer.text and CANARY_B64 not in answer.text, answer.text
    server.stop()
    logs = servers.logs()
    assert CANARY not in logs and CANARY_B64 not in logs


def test_a_missing_key_makes_one_object_unreadable_not_the_list(servers: Servers, tmp_path: Path) -> None:
    first = servers.start(write_config(tmp_path / "one.yaml", aesgcm(("key1", KEY1))))
    with first.connection.http_client() as client:
        ns = helpers.make_namespace(client)
        helpers.create(client, f"/api/v1/namespaces/{ns}/secrets", secret("lost"))
    first.stop()
    second = servers.start(write_config(tmp_path / "two.yaml", aesgcm(("key2", KEY2))))
    with second.connection.http_client() as client:
        path = f"/api/v1/namespaces/{ns}/secrets"
        helpers.create(client, path, secret("kept", "readable"))
        answer = client.get(f"{path}/lost")
        assert answer.status_code == 500
        status = answer.json()
        assert status["kind"] == "Status" and status["reason"] == "InternalError"
        assert "cannot be read" in status["message"] and "aesgcm key 'key1'" in status["message"]
        assert CANARY not in answer.text
        listed = client.get(path)
        assert listed.status_code == 200
        assert [item["metadata"]["name"] for item in listed.json()["items"]] == ["kept"]
        everywhere = client.get("/api/v1/secrets")
        assert everywhere.status_code == 200 and "lost" not in [i["metadata"]["name"] for i in everywhere.json()["items"]]
        start = listed.json()["metadata"]["resourceVersion"]
        helpers.create(client, path, secret("later", "readable"))
        events = _watch(client, ns, start)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "later")]
        # an update of the unreadable object fails as a Status, the unsafe delete removes it
        update = client.put(f"{path}/lost", json=secret("lost", "new"))
        assert update.status_code == 500 and update.json()["reason"] == "InternalError"
        delete = client.request("DELETE", f"{path}/lost",
                                json={"ignoreStoreReadErrorWithClusterBreakingPotential": True})
        assert delete.status_code == 200, delete.text
        assert f"core/secrets/{ns}/lost" not in servers.raw(ns)


def test_rotation_keeps_every_secret_readable(servers: Servers, tmp_path: Path) -> None:
    # before encryption: plaintext in etcd
    plain = servers.start(None)
    with plain.connection.http_client() as client:
        ns = helpers.make_namespace(client)
        path = f"/api/v1/namespaces/{ns}/secrets"
        expected = {f"s{i}": f"{CANARY}-{i}" for i in range(12)}
        for name in list(expected)[:6]:
            # one immutable Secret: a rewrite that changes nothing is still allowed for it
            helpers.create(client, path, {**secret(name, expected[name]), **({"immutable": True} if name == "s0" else {})})
    plain.stop()
    assert all(not value.startswith(b"k8s:enc:") for value in servers.raw(ns).values())

    # encryption on, identity kept for reads: old plaintext readable, new writes under key1
    one = servers.start(write_config(tmp_path / "one.yaml", aesgcm(("key1", KEY1)), IDENTITY))
    with one.connection.http_client() as client:
        for name in list(expected)[6:]:
            helpers.create(client, path, secret(name, expected[name]))
        assert {i["metadata"]["name"]: password(i) for i in client.get(path).json()["items"]} == expected
    result = run_cli("secrets", "rotate", server=one.url)
    assert result.returncode == 0, result.stderr
    assert "secrets: 6 rewritten, 6 already current" in result.stdout
    assert {v[:23] for v in servers.raw(ns).values()} == {b"k8s:enc:aesgcm:v1:key1:"}
    one.stop()

    # a new key first, the old one still read: rotate while a reader checks every Secret
    two = servers.start(write_config(tmp_path / "two.yaml", aesgcm(("key2", KEY2), ("key1", KEY1))))
    problems: list[str] = []
    reads = 0
    done = threading.Event()

    def reader() -> None:
        nonlocal reads
        with two.connection.http_client() as client:
            while not done.is_set() or reads == 0:
                listed = client.get(path)
                got = {i["metadata"]["name"]: password(i) for i in listed.json().get("items", [])}
                if got != expected:
                    problems.append(f"list: {sorted(got)}")
                name = f"s{reads % 12}"
                single = client.get(f"{path}/{name}")
                if single.status_code != 200 or password(single.json()) != expected[name]:
                    problems.append(f"get {name}: {single.status_code}")
                reads += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = run_cli("secrets", "rotate", "-n", ns, server=two.url)
    finally:
        done.set()
        thread.join(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "secrets: 12 rewritten, 0 already current" in result.stdout
    assert problems == [] and reads > 0
    assert {v[:23] for v in servers.raw(ns).values()} == {b"k8s:enc:aesgcm:v1:key2:"}
    again = run_cli("secrets", "rotate", "-n", ns, server=two.url)
    assert "secrets: 0 rewritten, 12 already current" in again.stdout
    two.stop()

    # the old key removed: nothing needed it any more
    three = servers.start(write_config(tmp_path / "three.yaml", aesgcm(("key2", KEY2))))
    with three.connection.http_client() as client:
        assert {i["metadata"]["name"]: password(i) for i in client.get(path).json()["items"]} == expected
    for value in servers.raw(ns).values():
        assert CANARY.encode() not in value


@pytest.mark.parametrize(("provider", "says"), [
    ({"secretbox": {"keys": [{"name": "k", "secret": KEY1}]}}, "use aesgcm"),
    ({"aesgcm": {"keys": [{"name": "k", "secret": "c2hvcnQ="}]}}, "must decode to 16, 24 or 32 bytes"),
])
def test_an_unusable_configuration_stops_the_server(etcd_endpoint: str, tmp_path: Path,
                                                    provider: dict[str, Any], says: str) -> None:
    config = write_config(tmp_path / "bad.yaml", provider)
    result = subprocess.run(
        [sys.executable, "-m", "reconcile", "apiserver", "--etcd", etcd_endpoint, "--port", str(support.free_port()),
         "--encryption-provider-config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "--encryption-provider-config" in result.stderr and says in result.stderr
    assert KEY1 not in result.stderr and "Traceback" not in result.stderr
