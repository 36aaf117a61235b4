"""Max requests in flight against a real API server: a flood by one user gets 429 with Retry-After while
system components keep their reserved share; the per-user cap; long-running requests take no seat;
every seat comes back after errors and disconnects. Plus the limiter's own bookkeeping."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from reconcile.api import authn, flowcontrol
from reconcile.core import errors
from tests import support
from tests.api import helpers

# Real credentials: static bearer tokens (--token-auth-file), one per user, over the suite's TLS.
# Every user but the admin is bound to cluster-admin through the group `flow-testers`: the limits
# are what is under test, not RBAC, and only `system:masters` is exempt from them.
TESTERS = "flow-testers"
USERS: dict[str, tuple[str, ...]] = {
    "admin": ("system:masters",),
    "alice": (TESTERS,),
    "bob": ("devs", TESTERS),
    "system:node:n1": ("system:nodes", TESTERS),
    "system:kube-controller-manager": (TESTERS,),
}


def token_of(name: str) -> str:
    return "token-" + name.replace(":", "-")


def user(name: str) -> dict[str, str]:
    """The headers that authenticate a request as `name` (one of USERS)."""
    assert name in USERS, name
    return {"Authorization": f"Bearer {token_of(name)}"}


ADMIN = user("admin")  # system:masters: exempt from the limits, as upstream
NODE = user("system:node:n1")
CONTROLLER_MANAGER = user("system:kube-controller-manager")


def write_token_file(folder: Path) -> Path:
    path = folder / "tokens.csv"
    path.write_text("".join(f'{token_of(name)},{name},uid-{i},"{",".join(groups)}"\n'
                            for i, (name, groups) in enumerate(USERS.items())))
    return path


@contextmanager
def limited_server(etcd_endpoint: str, *args: str) -> Iterator[support.ApiServerProcess]:
    folder = Path(tempfile.mkdtemp(prefix="flowcontrol-"))
    server = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry",
                                      extra_args=("--token-auth-file", str(write_token_file(folder)), *args))
    server.start()
    try:
        with server_client(server) as client:
            binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                       "metadata": {"name": TESTERS},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                       "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": TESTERS}]}
            assert client.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=binding).status_code == 201
            # the authorizer reads bindings from its watch cache: wait until it allows the testers
            support.wait_for(lambda: client.get("/api/v1/namespaces", headers=user("alice")).status_code == 200,
                             timeout=10, what="the testers' binding to be in effect")
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def server_client(server: support.ApiServerProcess) -> httpx.Client:
    """A client with no certificate (tokens say who calls), as the admin unless a request says otherwise."""
    client = server.connection.http_client(anonymous=True)
    client.headers.update(ADMIN)
    return client


def metrics(client: httpx.Client) -> dict[str, int]:
    text = client.get("/metrics", headers=ADMIN).text
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r'(\w+)(?:\{request_kind="(\w+)"\})? (\d+)', line)
        if match:
            found[match[1] + (f":{match[2]}" if match[2] else "")] = int(match[3])
    return found


class SlowWrite:
    """A POST whose body never comes (until `finish`): it holds its seat while the server waits for it."""

    def __init__(self, server: support.ApiServerProcess, namespace: str, headers: dict[str, str]) -> None:
        self.body = json.dumps(helpers.configmap(helpers.unique("slow"))).encode()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        context = server.connection.ssl_context(anonymous=True)
        self.sock = context.wrap_socket(sock, server_hostname="127.0.0.1") \
            if isinstance(context, ssl.SSLContext) else sock
        lines = [f"POST {helpers.cm_path(namespace)} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
                 f"Content-Length: {len(self.body)}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        self.sock.sendall("\r\n".join(lines).encode())

    def finish(self) -> int:
        """Send the body; the response's status code."""
        self.sock.sendall(self.body)
        response = b""
        while b"\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            response += chunk
        self.sock.close()
        return int(response.split(b" ", 2)[1])

    def disconnect(self) -> None:
        self.sock.close()


def wait_in_flight(client: httpx.Client, kind: str, count: int) -> None:
    support.wait_for(lambda: metrics(client).get(f"apiserver_current_inflight_requests:{kind}") == count,
                     timeout=10, interval=0.02, what=f"{count} {kind} request(s) in flight")


def test_a_flood_gets_429_while_system_components_keep_their_share(etcd_endpoint: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n")
    audit_log = tmp_path / "audit.log"
    # 4 write seats, 1 of them reserved for system components
    with limited_server(etcd_endpoint, "--max-mutating-requests-inflight", "4",
                        "--inflight-system-reserved-fraction", "0.25", "--audit-policy-file", str(policy),
                        "--audit-log-path", str(audit_log)) as server, \
            server_client(server) as client:
        ns = helpers.make_namespace(client)
        flood = [SlowWrite(server, ns, user("alice")) for _ in range(3)]
        try:
            wait_in_flight(client, "mutating", 3)
            refused = [client.post(helpers.cm_path(ns), json=helpers.configmap(helpers.unique()), headers=who)
                       for who in (user("alice"), user("alice"), user("bob"))]
            for answer in refused:
                assert answer.status_code == 429
                assert answer.headers["retry-after"] == "1"
                status = answer.json()
                assert status["kind"] == "Status" and status["reason"] == "TooManyRequests" and status["code"] == 429
                assert status["details"]["retryAfterSeconds"] == 1
            # node heartbeats and the controller-manager still get through, on the reserved seat (the node
            # on its own Lease in kube-node-lease: NodeRestriction allows it no other)
            for who, where, name in ((NODE, "kube-node-lease", "n1"), (CONTROLLER_MANAGER, ns, helpers.unique("hb"))):
                lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": name}, "spec": {"holderIdentity": "n1"}}
                answer = client.post(f"/apis/coordination.k8s.io/v1/namespaces/{where}/leases", json=lease,
                                     headers=who)
                assert answer.status_code == 201, answer.text
            renewed = client.patch("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                                   json={"spec": {"leaseDurationSeconds": 40}},
                                   headers={**NODE, "Content-Type": "application/merge-patch+json"})
            assert renewed.status_code == 200, renewed.text
            # reads are another pool: unaffected by the write flood
            assert client.get(helpers.cm_path(ns), headers=user("alice")).status_code == 200
            # the admin (system:masters) is exempt, as upstream
            assert client.post(helpers.cm_path(ns), json=helpers.configmap("by-admin")).status_code == 201
            assert metrics(client)["apiserver_dropped_requests_total:mutating"] == 3
            # a refused request is audited (the limit stage runs after the audit stage)
            refused_id = refused[0].headers["audit-id"]

            def refused_event() -> dict | None:
                for line in audit_log.read_text().splitlines():
                    event = json.loads(line)
                    if event["auditID"] == refused_id and event["stage"] == "ResponseComplete":
                        return event
                return None

            event = support.wait_for(refused_event, timeout=10, interval=0.02, what="the 429's audit event")
            assert event["user"]["username"] == "alice" and event["responseStatus"]["code"] == 429
            assert event["responseStatus"]["reason"] == "TooManyRequests"
        finally:
            codes = [slow.finish() for slow in flood]
        assert codes == [201, 201, 201]  # the flood's own requests were served, just not more of them
        wait_in_flight(client, "mutating", 0)
        assert client.post(helpers.cm_path(ns), json=helpers.configmap("after"), headers=user("bob")).status_code == 201


def test_system_components_may_use_every_seat_others_only_the_shared_ones(etcd_endpoint: str) -> None:
    """System components may use every seat; the others only the shared ones."""
    with limited_server(etcd_endpoint, "--max-mutating-requests-inflight", "2",
                        "--inflight-system-reserved-fraction", "0.5") as server, \
            server_client(server) as client:
        ns = helpers.make_namespace(client)
        first = SlowWrite(server, ns, user("alice"))
        try:
            wait_in_flight(client, "mutating", 1)
            assert client.post(helpers.cm_path(ns), json=helpers.configmap("x"), headers=user("bob")).status_code == 429
            second = SlowWrite(server, ns, NODE)
            wait_in_flight(client, "mutating", 2)
            assert client.post(helpers.cm_path(ns), json=helpers.configmap("y"), headers=NODE).status_code == 429
            assert second.finish() == 201
        finally:
            assert first.finish() == 201
        wait_in_flight(client, "mutating", 0)


def test_the_per_user_cap(etcd_endpoint: str) -> None:
    with limited_server(etcd_endpoint, "--max-requests-inflight-per-user", "2") as server, \
            server_client(server) as client:
        ns = helpers.make_namespace(client)
        slow = [SlowWrite(server, ns, user("alice")) for _ in range(2)]
        try:
            support.wait_for(lambda: metrics(client).get("reconcile_inflight_users") == 1, timeout=10,
                             interval=0.02, what="alice's requests in flight")
            wait_in_flight(client, "mutating", 2)
            # the cap counts both pools: a read is refused too
            assert client.get(helpers.cm_path(ns), headers=user("alice")).status_code == 429
            assert client.get(helpers.cm_path(ns), headers=user("bob")).status_code == 200
            assert client.get(helpers.cm_path(ns), headers=NODE).status_code == 200  # system: not capped
        finally:
            assert [s.finish() for s in slow] == [201, 201]
        found = metrics(client)
        assert found["reconcile_inflight_rejected_per_user_total"] == 1 and found["reconcile_inflight_users"] == 0


def test_long_running_requests_take_no_seat(etcd_endpoint: str) -> None:
    with limited_server(etcd_endpoint, "--max-requests-inflight", "2", "--max-requests-inflight-per-user", "1") \
            as server, server_client(server) as client:
        ns = helpers.make_namespace(client)
        watches = [client.stream("GET", helpers.cm_path(ns), params={"watch": "1", "timeoutSeconds": "30"},
                                 headers=user("alice")) for _ in range(3)]
        opened = [w.__enter__() for w in watches]
        try:
            assert [r.status_code for r in opened] == [200, 200, 200]
            assert metrics(client)["apiserver_current_inflight_requests:readOnly"] == 0
            for _ in range(3):
                assert client.get(helpers.cm_path(ns), headers=user("alice")).status_code == 200
        finally:
            for w in watches:
                w.__exit__(None, None, None)


def test_seats_come_back_after_errors_and_disconnects(etcd_endpoint: str) -> None:
    with limited_server(etcd_endpoint, "--max-requests-inflight", "3", "--max-mutating-requests-inflight", "3",
                        "--max-requests-inflight-per-user", "2") as server, \
            server_client(server) as client:
        ns = helpers.make_namespace(client)
        alice = user("alice")
        for _ in range(10):  # failures of every stage after the seat was taken
            assert client.get(helpers.cm_path(ns, "missing"), headers=alice).status_code == 404
            assert client.post(helpers.cm_path(ns), content=b"{not json", headers={
                **alice, "Content-Type": "application/json"}).status_code == 400
            assert client.put(helpers.cm_path(ns, "x"), json={"kind": "Pod"}, headers=alice).status_code == 400
            assert client.get(helpers.cm_path(ns), params={"limit": "x"}, headers=alice).status_code == 400
        # clients that go away in the middle of their request
        for _ in range(3):
            gone = [SlowWrite(server, ns, alice) for _ in range(2)]
            wait_in_flight(client, "mutating", 2)
            for slow in gone:
                slow.disconnect()
            wait_in_flight(client, "mutating", 0)
        found = metrics(client)
        assert found["apiserver_current_inflight_requests:readOnly"] == 0
        assert found["apiserver_current_inflight_requests:mutating"] == 0
        assert found["reconcile_inflight_users"] == 0
        # and every seat is usable again
        again = [SlowWrite(server, ns, alice) for _ in range(2)]
        wait_in_flight(client, "mutating", 2)
        assert [s.finish() for s in again] == [201, 201]


# --- the limiter itself ---


def test_limiter_reserved_share_and_release() -> None:
    limiter = flowcontrol.Limiter(flowcontrol.Settings(max_read_only=4, max_mutating=2, max_per_user=3,
                                                       system_reserved_fraction=0.25))
    alice, node = authn.UserInfo("alice"), authn.UserInfo("system:node:a", groups=("system:nodes",))
    sa = authn.UserInfo("system:serviceaccount:kube-system:ctrl")
    admin = authn.UserInfo("root", groups=("system:masters",))
    seats = [limiter.acquire(alice, "get") for _ in range(3)]
    with pytest.raises(errors.TooManyRequests):
        limiter.acquire(authn.UserInfo("bob"), "list")  # the shared seats are taken
    system_seat = limiter.acquire(node, "get")  # the reserved one
    with pytest.raises(errors.TooManyRequests):
        limiter.acquire(sa, "get")  # every seat is taken now
    assert limiter.acquire(admin, "get") is None  # exempt
    assert limiter.is_system(sa) and not limiter.is_system(authn.UserInfo("system:serviceaccount:default:x"))
    with pytest.raises(errors.TooManyRequests):
        limiter.acquire(alice, "create")  # the per-user cap spans both pools
    for seat in [*seats, system_seat]:
        assert seat is not None
        seat.release()
        seat.release()  # idempotent
    pool = limiter.pools[flowcontrol.READ_ONLY]
    assert (pool.in_flight, pool.others, pool.rejected, limiter.per_user) == (0, 0, 2, {})
    assert limiter.pools[flowcontrol.MUTATING].rejected == 0 and limiter.rejected_per_user_cap == 1


def test_long_running_requests_are_recognised() -> None:
    assert flowcontrol.is_long_running("watch", None)
    assert flowcontrol.is_long_running("get", "log") and flowcontrol.is_long_running("create", "exec")
    assert not flowcontrol.is_long_running("get", "status") and not flowcontrol.is_long_running("list", None)
