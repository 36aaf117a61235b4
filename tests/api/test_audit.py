"""The audit log: the policy's matching, the events a real API server writes for real requests (stages,
levels, users, objects, statuses), Secrets under the default policy, the annotation hook, the
anonymous audit of refused requests, and the writer's rotation and dropping."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconcile.api import audit, auditlog, auditpolicy, authn, authz, pipeline, protometa
from reconcile.cli import apiserver_files
from tests import support
from tests.api import helpers
from tests.api_unit import protoencode

CANARY = "canary-91c2-audit-never-logs-me"
CANARY_B64 = base64.b64encode(CANARY.encode()).decode()
DEVS = "devs"  # alice's group, bound to cluster-admin on each audited server (RBAC is not under test here)
DEVS_REASON = f'RBAC: allowed by ClusterRoleBinding "{DEVS}" of ClusterRole "cluster-admin" to Group "{DEVS}"'


def as_user(url: str, name: str = "alice", *groups: str, **headers: str) -> httpx.Client:
    """A client proving `name` with a client certificate of the server's CA (alice: group devs)."""
    connection = support.connection(url)
    pair = connection.user(name, *(groups or ((DEVS,) if name == "alice" else ())))
    client = connection.http_client(as_user=pair)
    client.headers.update(headers)
    return client


def allow_devs(server: support.ApiServerProcess) -> None:
    """Bind the group devs to cluster-admin, and wait until the authorizer sees it."""
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": DEVS},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": DEVS}]}
    with server.connection.http_client() as admin:
        assert admin.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=binding).status_code == 201
    with as_user(server.url) as alice:
        support.wait_for(lambda: alice.get("/api/v1/namespaces").status_code == 200, timeout=10,
                         what="the devs' binding to be in effect")


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def events_for(path: Path, audit_id: str, *, count: int) -> list[dict[str, Any]]:
    """The events of one request, waiting until `count` of them are written (the writer is a thread)."""
    def found() -> list[dict[str, Any]] | None:
        events = [e for e in read_events(path) if e["auditID"] == audit_id]
        return events if len(events) >= count else None
    return support.wait_for(found, timeout=10, interval=0.02, what=f"{count} audit event(s) of {audit_id}")


def start_server(etcd_endpoint: str, tmp_path: Path, policy: str | dict[str, Any], *extra: str) -> \
        tuple[support.ApiServerProcess, Path]:
    policy_file = tmp_path / f"policy-{uuid.uuid4().hex[:6]}.yaml"
    policy_file.write_text(policy if isinstance(policy, str) else yaml.safe_dump(policy))
    log = tmp_path / "audit" / "audit.log"
    server = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", extra_args=(
        "--audit-policy-file", str(policy_file), "--audit-log-path", str(log), *extra))
    server.start()
    allow_devs(server)
    return server, log


POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
    "rules": [
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*"]},
        {"level": "None", "users": ["quiet"]},
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["configmaps"]}],
         "omitManagedFields": True},
        {"level": "Request", "verbs": ["create", "update", "patch"]},
        {"level": "Metadata"},
    ],
}


@pytest.fixture(scope="module")
def audited(etcd_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    server, log = start_server(etcd_endpoint, tmp_path_factory.mktemp("audit"), POLICY)
    try:
        yield server.url, log
    finally:
        server.stop()


def test_a_request_has_its_received_and_complete_events(audited: tuple[str, Path]) -> None:
    url, log = audited
    with as_user(url, **{"User-Agent": "audit-test/1"}) as client:
        ns = helpers.make_namespace(client)
        answer = client.get(f"/apis/apps/v1/namespaces/{ns}/deployments/missing")
    assert answer.status_code == 404
    audit_id = answer.headers["audit-id"]
    received, complete = events_for(log, audit_id, count=2)
    assert received["stage"] == "RequestReceived" and complete["stage"] == "ResponseComplete"
    for event in (received, complete):
        assert event["kind"] == "Event" and event["apiVersion"] == "audit.k8s.io/v1" and event["level"] == "Metadata"
        assert event["verb"] == "get" and event["requestURI"] == f"/apis/apps/v1/namespaces/{ns}/deployments/missing"
        assert event["user"] == {"username": "alice", "groups": ["devs", "system:authenticated"]}
        assert event["sourceIPs"] == ["127.0.0.1"] and event["userAgent"] == "audit-test/1"
        assert event["objectRef"] == {"resource": "deployments", "namespace": ns, "name": "missing",
                                      "apiGroup": "apps", "apiVersion": "v1"}
        assert event["requestReceivedTimestamp"].endswith("Z")
        assert "requestObject" not in event and "responseObject" not in event
    assert "responseStatus" not in received
    assert complete["responseStatus"]["code"] == 404 and complete["responseStatus"]["reason"] == "NotFound"
    assert complete["stageTimestamp"] >= complete["requestReceivedTimestamp"]
    assert complete["annotations"] == {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": DEVS_REASON}


def test_request_response_level_records_both_bodies(audited: tuple[str, Path]) -> None:
    url, log = audited
    with as_user(url) as client:
        ns = helpers.make_namespace(client)
        answer = client.post(helpers.cm_path(ns), content=yaml.safe_dump(helpers.configmap("c", {"k": "v"})),
                             headers={"Content-Type": "application/yaml"})
        assert answer.status_code == 201
        patched = client.patch(helpers.cm_path(ns, "c"), json={"data": {"k": "w"}}, headers=helpers.MERGE)
    _, complete = events_for(log, answer.headers["audit-id"], count=2)
    assert complete["level"] == "RequestResponse"
    assert complete["objectRef"]["name"] == "c"  # a create names the object it made
    assert complete["requestObject"]["data"] == {"k": "v"}  # YAML bodies are recorded as objects
    assert complete["responseObject"]["metadata"]["uid"] == answer.json()["metadata"]["uid"]
    assert "managedFields" not in complete["responseObject"]["metadata"]
    assert complete["responseStatus"] == {"metadata": {}, "code": 201}
    _, patch_event = events_for(log, patched.headers["audit-id"], count=2)
    assert patch_event["verb"] == "patch" and patch_event["requestObject"] == {"data": {"k": "w"}}
    assert patch_event["responseObject"]["data"] == {"k": "w"}


def test_protobuf_bodies_are_recorded_as_objects(audited: tuple[str, Path]) -> None:
    """kubectl's protobuf create bodies are recorded as the JSON they mean, not left out."""
    url, log = audited
    with as_user(url) as client:
        ns = helpers.make_namespace(client)
        answer = client.post(helpers.cm_path(ns), content=protoencode.body(
            "v1", "ConfigMap", {"metadata": {"name": "pb"}, "data": {"k": "v"}}),
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
        assert answer.status_code == 201, answer.text
    _, complete = events_for(log, answer.headers["audit-id"], count=2)
    assert complete["requestObject"] == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pb"},
                                         "data": {"k": "v"}}


def test_request_level_records_the_request_only(audited: tuple[str, Path]) -> None:
    url, log = audited
    with as_user(url) as client:
        ns = helpers.make_namespace(client)
        answer = client.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=helpers.deployment("d"))
    assert answer.status_code == 201
    _, complete = events_for(log, answer.headers["audit-id"], count=2)
    assert complete["level"] == "Request" and complete["requestObject"]["metadata"]["name"] == "d"
    assert "responseObject" not in complete


def test_watches_have_a_response_started_stage(audited: tuple[str, Path]) -> None:
    url, log = audited
    with as_user(url) as client:
        ns = helpers.make_namespace(client)
        with client.stream("GET", helpers.cm_path(ns), params={"watch": "1", "timeoutSeconds": "1"}) as response:
            audit_id = response.headers["audit-id"]
            started = events_for(log, audit_id, count=2)  # written before the watch ends
            list(response.iter_lines())
    assert [e["stage"] for e in started] == ["RequestReceived", "ResponseStarted"]
    events = events_for(log, audit_id, count=3)
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert {e["verb"] for e in events} == {"watch"} and "responseObject" not in events[2]


def test_policy_none_writes_nothing(audited: tuple[str, Path]) -> None:
    url, log = audited
    with as_user(url, "quiet") as quiet_client, as_user(url) as client:
        quiet = quiet_client.get("/api/v1/namespaces")
        health = client.get("/healthz")
        marker = client.get("/version")
    assert "audit-id" not in quiet.headers and "audit-id" not in health.headers
    events_for(log, marker.headers["audit-id"], count=2)  # everything before it has been written
    users = {e["user"]["username"] for e in read_events(log)}
    assert "quiet" not in users
    assert not [e for e in read_events(log) if e["requestURI"] == "/healthz"]
    version = events_for(log, marker.headers["audit-id"], count=2)[1]
    assert version["requestURI"] == "/version" and "objectRef" not in version and version["verb"] == "get"


def test_a_request_refused_before_authentication_is_audited_as_anonymous(audited: tuple[str, Path]) -> None:
    url, log = audited
    with as_user(url) as client:
        answer = client.get("/api/v1/configmaps", params={"watch": "maybe"})
    assert answer.status_code == 400
    events = events_for(log, answer.headers["audit-id"], count=2)
    assert events[1]["user"] == {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
    assert events[1]["responseStatus"]["code"] == 400


def test_the_client_may_name_the_audit_id(audited: tuple[str, Path]) -> None:
    url, log = audited
    with as_user(url) as client:
        answer = client.get("/api/v1/namespaces/default", headers={"Audit-ID": "my-trace-1234"})
    assert answer.headers["audit-id"] == "my-trace-1234"
    assert events_for(log, "my-trace-1234", count=2)[1]["objectRef"]["name"] == "default"


# --- Secrets ---


def _secret_traffic(url: str) -> list[str]:
    """Create, read, list, update, watch and delete a Secret holding the canary; the requests' audit IDs."""
    ids = []
    with as_user(url) as client:
        ns = helpers.make_namespace(client)
        path = f"/api/v1/namespaces/{ns}/secrets"
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": CANARY}}
        created = client.post(path, json=body)
        assert created.status_code == 201
        for answer in (created, client.get(f"{path}/s"), client.get(path),
                       client.put(f"{path}/s", json={**created.json(), "data": {"token": CANARY_B64, "x": "eA=="}}),
                       client.delete(f"{path}/s")):
            assert answer.status_code < 300
            ids.append(answer.headers["audit-id"])
        with client.stream("GET", path, params={"watch": "1", "timeoutSeconds": "1"}) as response:
            list(response.iter_lines())
            ids.append(response.headers["audit-id"])
    return ids


def test_the_default_policy_logs_secrets_at_metadata_only(etcd_endpoint: str, tmp_path: Path) -> None:
    """The API server as `reconcile up --audit --encrypt-secrets` runs it (the files it writes, its flags)."""
    up_args = apiserver_files.audit_args(tmp_path) + apiserver_files.encryption_args(tmp_path, create=True)
    assert (tmp_path / apiserver_files.AUDIT_POLICY).read_text() == auditpolicy.DEFAULT_POLICY
    log = tmp_path / apiserver_files.AUDIT_LOG
    server = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry",
                                      extra_args=up_args)
    server.start()
    allow_devs(server)
    try:
        ids = _secret_traffic(server.url)
        with as_user(server.url) as client:
            ns = helpers.make_namespace(client)
            cm = client.post(helpers.cm_path(ns), json=helpers.configmap("c", {"note": CANARY}))
            pod = client.post(helpers.pod_path(ns), json=helpers.pod("p"))
            health = client.get("/healthz")
        assert "audit-id" not in health.headers
        for audit_id in ids:
            events = events_for(log, audit_id, count=1)
            assert all(e["level"] == "Metadata" and e["objectRef"]["resource"] == "secrets" for e in events)
            assert all(e["stage"] != "RequestReceived" for e in events)  # the default policy omits it
        # ConfigMaps are Metadata too; other writes carry their request body
        assert events_for(log, cm.headers["audit-id"], count=1)[0]["level"] == "Metadata"
        pod_event = events_for(log, pod.headers["audit-id"], count=1)[0]
        assert pod_event["level"] == "Request" and pod_event["requestObject"]["metadata"]["name"] == "p"
    finally:
        server.stop()
    text = log.read_text()
    assert CANARY not in text and CANARY_B64 not in text
    assert (log.stat().st_mode & 0o777) == 0o600


def test_a_policy_that_asks_for_secret_bodies_gets_them(etcd_endpoint: str, tmp_path: Path) -> None:
    """As upstream: the level is the policy's to choose (which is why the default keeps Secrets at Metadata)."""
    policy = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "RequestResponse"}]}
    server, log = start_server(etcd_endpoint, tmp_path, policy)
    try:
        ids = _secret_traffic(server.url)
        events_for(log, ids[-1], count=3)
    finally:
        server.stop()
    assert CANARY_B64 in log.read_text()


def test_an_unusable_policy_stops_the_server(etcd_endpoint: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Everything}]\n")
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "reconcile", "apiserver", "--etcd", etcd_endpoint,
                             "--port", str(support.free_port()), "--audit-policy-file", str(bad),
                             "--audit-log-path", str(tmp_path / "a.log")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "rules[0].level" in result.stderr and "Traceback" not in result.stderr
    alone = subprocess.run([sys.executable, "-m", "reconcile", "apiserver", "--etcd", etcd_endpoint,
                            "--port", str(support.free_port()), "--audit-log-path", str(tmp_path / "a.log")],
                           capture_output=True, text=True, timeout=60)
    assert alone.returncode == 1 and "--audit-policy-file and --audit-log-path" in alone.stderr


# --- the pipeline in process: failed authentication, and the annotation hook for admission ---


class KnowsNobody:
    """An authenticator that recognises no credentials (every non-public request is then a 401)."""

    async def authenticate(self, credentials: authn.Credentials) -> authn.UserInfo | None:
        return None


class Collect:
    """A backend keeping the lines (the policy and the pipeline are the real ones)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def submit(self, line: bytes) -> None:
        self.lines.append(line)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


async def _call(app: pipeline.Pipeline, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        return await client.request(method, path, **kwargs)


async def test_failed_authentication_is_audited_as_anonymous() -> None:
    backend = Collect()
    auditor = audit.Auditor(auditpolicy.parse(POLICY), backend)

    async def unreachable(*args: Any) -> Any:
        raise AssertionError("an unauthenticated request reached the resources")

    app = pipeline.Pipeline(resources=unreachable, others=unreachable, authenticator=KnowsNobody(),
                            authorizer=authz.AlwaysAllow(), auditor=auditor)
    answer = await _call(app, "GET", "/api/v1/namespaces/default/secrets/s", headers={"Authorization": "Bearer x"})
    assert answer.status_code == 401
    complete = backend.events()[-1]
    assert complete["stage"] == "ResponseComplete" and complete["responseStatus"]["code"] == 401
    assert complete["user"]["username"] == "system:anonymous"
    assert complete["objectRef"] == {"resource": "secrets", "namespace": "default", "name": "s", "apiVersion": "v1"}


async def test_later_stages_annotate_the_event_and_name_an_impersonated_user() -> None:
    backend = Collect()
    auditor = audit.Auditor(auditpolicy.parse(POLICY), backend)

    async def resources(request: Any, info: Any, verb: str, user: authn.UserInfo) -> Any:
        # what an admission plugin (Pod Security in audit mode) and impersonation will do, from a child task too
        audit.add_annotation("pod-security.kubernetes.io/audit-violations", "privileged")
        audit.set_impersonated_user(authn.UserInfo("bob", groups=("team",)))
        await asyncio.create_task(_annotate_later())
        audit.add_annotation("pod-security.kubernetes.io/audit-violations", "changed")  # first value kept
        from reconcile.api import http
        return http.json_response({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}})

    app = pipeline.Pipeline(resources=resources, others=resources, authenticator=authn.TrustEveryone(),
                            authorizer=authz.AlwaysAllow(), auditor=auditor)
    answer = await _call(app, "GET", "/api/v1/namespaces/default/pods/p")
    assert answer.status_code == 200
    complete = backend.events()[-1]
    assert complete["annotations"]["pod-security.kubernetes.io/audit-violations"] == "privileged"
    assert complete["annotations"]["from-a-task"] == "yes"
    assert complete["impersonatedUser"] == {"username": "bob", "groups": ["team"]}
    assert complete["user"]["username"] == "system:admin"
    assert audit.current() is None  # nothing leaks past the request
    audit.add_annotation("outside", "no effect")


async def _annotate_later() -> None:
    audit.add_annotation("from-a-task", "yes")


# --- the policy ---


def attrs(verb: str = "get", *, user: str = "u", groups: tuple[str, ...] = (), group: str = "", resource: str = "pods",
          subresource: str = "", namespace: str = "ns", name: str = "n", path: str = "") -> authz.Attributes:
    who = authn.UserInfo(user, groups=groups)
    if path:
        return authz.Attributes(who, verb, False, path)
    return authz.Attributes(who, verb, True, "/x", group, "v1", resource, subresource, namespace, name)


@pytest.mark.parametrize(("rule", "attributes", "matches"), [
    ({"users": ["u"]}, attrs(), True),
    ({"users": ["v"]}, attrs(), False),
    ({"userGroups": ["g2"]}, attrs(groups=("g1", "g2")), True),
    ({"userGroups": ["g3"]}, attrs(groups=("g1", "g2")), False),
    ({"verbs": ["list", "get"]}, attrs(), True),
    ({"verbs": ["create"]}, attrs(), False),
    ({"namespaces": ["ns"]}, attrs(), True),
    ({"namespaces": ["other"]}, attrs(), False),
    ({"namespaces": [""]}, attrs(resource="nodes", namespace=""), True),
    ({"namespaces": ["ns"]}, attrs(path="/healthz"), False),
    ({"resources": [{"group": ""}]}, attrs(), True),
    ({"resources": [{"group": "apps"}]}, attrs(), False),
    ({"resources": [{"group": "", "resources": ["pods"]}]}, attrs(subresource="log"), False),
    ({"resources": [{"group": "", "resources": ["pods/log"]}]}, attrs(subresource="log"), True),
    ({"resources": [{"group": "", "resources": ["pods/*"]}]}, attrs(subresource="log"), True),
    ({"resources": [{"group": "", "resources": ["*/log"]}]}, attrs(subresource="log"), True),
    ({"resources": [{"group": "", "resources": ["*/status"]}]}, attrs(subresource="log"), False),
    ({"resources": [{"group": "", "resources": ["*"]}]}, attrs(subresource="log"), True),
    ({"resources": [{"group": "", "resources": ["pods"], "resourceNames": ["n"]}]}, attrs(), True),
    ({"resources": [{"group": "", "resources": ["pods"], "resourceNames": ["m"]}]}, attrs(), False),
    ({"nonResourceURLs": ["/healthz*"]}, attrs(path="/healthz/etcd"), True),
    ({"nonResourceURLs": ["/healthz"]}, attrs(path="/healthz/etcd"), False),
    ({"nonResourceURLs": ["/*"]}, attrs(), False),
    ({}, attrs(path="/version"), True),
])
def test_rule_matching(rule: dict[str, Any], attributes: authz.Attributes, matches: bool) -> None:
    policy = auditpolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                                "rules": [{"level": "Request", **rule}, {"level": "Metadata"}]})
    assert policy.decide(attributes).level == ("Request" if matches else "Metadata")


def test_first_rule_wins_and_stages_combine() -> None:
    policy = auditpolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                                "rules": [{"level": "None", "users": ["system:kube-proxy"]},
                                          {"level": "RequestResponse", "omitStages": ["ResponseStarted"]}]})
    assert policy.decide(attrs(user="system:kube-proxy")).level == "None"
    decision = policy.decide(attrs())
    assert decision.level == "RequestResponse"
    assert decision.omit_stages == {"RequestReceived", "ResponseStarted"}
    empty = auditpolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                               "rules": [{"level": "Metadata", "users": ["x"]}]})
    assert empty.decide(attrs()).level == "None"  # nothing matched: not logged


@pytest.mark.parametrize(("document", "message"), [
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": []}, "at least one rule"),
    ({"apiVersion": "audit.k8s.io/v1beta1", "kind": "Policy", "rules": [{"level": "None"}]}, "expected an"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "All"}]}, "rules[0].level"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "verb": ["get"]}]},
     "unknown field(s) verb"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
      "rules": [{"level": "None", "nonResourceURLs": ["/x"], "namespaces": ["a"]}]}, "not both"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "nonResourceURLs": ["x*"]}]},
     "must start with /"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["Done"], "rules": [{"level": "None"}]},
     "'Done' is not one of"),
])
def test_bad_policies_are_refused(document: dict[str, Any], message: str) -> None:
    with pytest.raises(auditpolicy.PolicyError) as caught:
        auditpolicy.parse(document)
    assert message in str(caught.value)


def test_the_default_policy_parses_and_keeps_credentials_at_metadata() -> None:
    policy = auditpolicy.default_policy()
    for resource, group in (("secrets", ""), ("configmaps", ""), ("tokenreviews", "authentication.k8s.io")):
        for verb in ("create", "update", "patch", "get", "list", "watch", "delete"):
            assert policy.decide(attrs(verb, resource=resource, group=group)).level == "Metadata"
    assert policy.decide(attrs("create", resource="pods")).level == "Request"
    assert policy.decide(attrs("create", resource="serviceaccounts", subresource="token")).level == "Metadata"
    assert policy.decide(attrs("update", resource="leases", group="coordination.k8s.io")).level == "None"
    assert policy.decide(attrs(path="/readyz")).level == "None"


# --- the writer ---


def test_the_log_rotates_by_size_and_keeps_max_backups(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    backend = auditlog.LogBackend(str(path), max_size_mb=1, max_backups=2)
    backend.max_bytes = 1000  # the flag counts megabytes; the rotation is the same at any size
    backend.start()
    line = b'{"kind":"Event","pad":"' + b"x" * 180 + b'"}\n'
    for count in range(1, 41):
        backend.submit(line)
        support.wait_for(lambda: backend.written + backend.errors == count, timeout=5, interval=0.005,  # noqa: B023
                         what="the line written")
    backend.close()
    backups = backend.backups()
    assert len(backups) == 2 and all(p.name.startswith("audit-") and p.suffix == ".log" for p in backups)
    assert backend.errors == 0 and backend.written == 40
    for file in [path, *backups]:
        assert 0 < file.stat().st_size <= 1000 and (file.stat().st_mode & 0o777) == 0o600
        assert all(json.loads(text) for text in file.read_text().splitlines())


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    backend = auditlog.LogBackend(str(path), queue_size=5)
    for i in range(12):  # the writer has not started: the queue fills
        backend.submit(b'{"n":%d}\n' % i)
    assert backend.dropped == 7
    backend.start()
    backend.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 1, 2, 3, 4]
    assert backend.written == 5


def test_the_log_can_go_to_standard_output(capfd: pytest.CaptureFixture[str]) -> None:
    backend = auditlog.LogBackend("-")
    backend.start()
    backend.submit(b'{"kind":"Event","auditID":"to-stdout"}\n')
    backend.close()
    assert json.loads(capfd.readouterr().out.strip().splitlines()[-1])["auditID"] == "to-stdout"
    assert backend.written == 1


def test_protobuf_delete_options_are_recorded_as_objects(audited: tuple[str, Path]) -> None:
    """`kubectl drain`'s pod DELETEs carry protobuf DeleteOptions: recorded as the JSON they mean."""
    url, log = audited
    with as_user(url) as client:
        ns = helpers.make_namespace(client)
        helpers.create(client, helpers.cm_path(ns), helpers.configmap("gone"))
        body = protoencode.envelope("v1", "DeleteOptions", protoencode.encode(
            protometa.DELETE_OPTIONS, {"gracePeriodSeconds": 0}))
        answer = client.request("DELETE", helpers.cm_path(ns, "gone"), content=body,
                                headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
        assert answer.status_code == 200, answer.text
    _, complete = events_for(log, answer.headers["audit-id"], count=2)
    assert complete["requestObject"] == {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
