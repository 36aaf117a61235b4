"""kopf, unmodified, against the secured API server (TLS, client certificates, RBAC): the operator in
tests/compat/kopf_operator.py runs as `python -m kopf run`, with the kubeconfig of the admin or of a
least-privilege user, and what its handlers did is read back through the API.

kopf is a strict client in its own way: it discovers resources from /api and /apis, watches with
bookmarks and resumes from resourceVersions, merge-patches objects and their status subresource and
checks that each patch took ("inconsistencies" otherwise), keeps its finalizer and its
`last-handled-configuration` annotation, posts core/v1 Events, and in peering mode patches its
KopfPeering object's status. A rejected request or a response of a shape it does not expect shows in
its log as a warning or an error; the tests assert there is none, or, with too little RBAC, that the
403 it gets is a Kubernetes Status it understands.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.client import api as client_api
from reconcile.core import errors
from tests import kopf_support, support

# Too little: Gadgets can be watched but not patched, so kopf cannot even add its finalizer
READ_ONLY_ROLE = [{"apiGroups": [kopf_support.GROUP], "resources": [kopf_support.PLURAL], "verbs": ["list", "watch"]}]


class KopfOperator:
    """`python -m kopf run kopf_operator.py` for one namespace, as a child process stopped by pid."""

    def __init__(self, kubeconfig: Path, namespace: str | None, home: Path, *, peering: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        """One namespace, or every namespace (`--all-namespaces`) when `namespace` is None."""
        self.log = support.process_log("kopf-")
        mode = ["--peering", peering] if peering else ["--standalone"]
        where = ["--namespace", namespace] if namespace else ["--all-namespaces"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--verbose", "--log-format", "full", *where,
             *mode, str(kopf_support.OPERATOR)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=home,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1",
                 **(env or {})})

    def text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def running(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"kopf exited ({self.process.returncode}):\n{self.text()[-5000:]}")
        return True

    def stop(self) -> int:
        """SIGTERM (kopf stops its watches, daemons and peering), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def trouble(self) -> list[str]:
        return kopf_support.trouble(self.text())


@pytest.fixture(scope="module")
def crds(admin: client_api.Client) -> None:
    for crd in (kopf_support.GADGETS, kopf_support.PEERINGS):
        admin.create("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
    for api_version, plural in ((kopf_support.API_VERSION, kopf_support.PLURAL), ("kopf.dev/v1", "kopfpeerings")):
        support.wait_for(lambda v=api_version, p=plural: kopf_support.served(admin, v, p), timeout=20,
                         what=f"{plural} served")


@pytest.fixture
def namespace(admin: client_api.Client, crds: None) -> Iterator[str]:
    """A fresh namespace; at the end (after the test's operators stopped) its Gadgets go, finalizers
    and all, so no later test's cluster-wide kopf finds and handles them (CI saw one do so and
    log the trouble of a daemon it had started on a leftover)."""
    name = f"kopf-{uuid.uuid4().hex[:6]}"
    admin.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    for item in admin.list(kopf_support.API_VERSION, kopf_support.PLURAL, namespace=name).get("items") or []:
        gadget = item["metadata"]["name"]
        with contextlib.suppress(errors.NotFound):
            if item["metadata"].get("finalizers"):
                admin.patch(kopf_support.API_VERSION, kopf_support.PLURAL, gadget, {"metadata": {"finalizers": None}},
                            namespace=name)
            admin.delete(kopf_support.API_VERSION, kopf_support.PLURAL, gadget, namespace=name)


@pytest.fixture
def operators() -> Iterator[list[KopfOperator]]:
    """The kopf processes a test starts, stopped at its end whatever happened."""
    started: list[KopfOperator] = []
    try:
        yield started
    finally:
        for operator in started:
            operator.stop()


def test_a_kopf_operator_with_peering_handles_the_whole_lifecycle(
        admin: client_api.Client, api_server: str, namespace: str, operators: list[KopfOperator],
        tmp_path: Path) -> None:
    conn = support.connection(api_server)
    admin.create("kopf.dev/v1", "kopfpeerings", {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
                                                 "metadata": {"name": "compat"}}, namespace=namespace)
    operator = KopfOperator(conn.kubeconfig(), namespace, tmp_path, peering="compat")
    operators.append(operator)

    def peers() -> dict[str, Any]:
        operator.running()
        return admin.get("kopf.dev/v1", "kopfpeerings", "compat", namespace=namespace).get("status") or {}

    seen = support.wait_for(peers, timeout=60, what="kopf announces itself in its KopfPeering's status")
    (identity, peer), = seen.items()
    assert peer["priority"] == 10  # the startup handler's setting

    admin.create(kopf_support.API_VERSION, kopf_support.PLURAL, kopf_support.gadget("g1", "hello", 1), namespace=namespace)

    def handled() -> dict[str, Any] | None:
        operator.running()
        obj = kopf_support.current(admin, namespace, "g1")
        status = obj.get("status") or {}
        done = "created" in status and "size" in status and kopf_support.LAST_HANDLED in obj["metadata"].get("annotations", {})
        return obj if done else None

    obj = support.wait_for(handled, timeout=60, what="kopf's create handler ran on g1 and kopf noted it")
    assert obj["status"]["created"] == {"message": "hello"}  # the returned value, stored by kopf
    assert kopf_support.FINALIZER in obj["metadata"]["finalizers"]
    assert json.loads(obj["metadata"]["annotations"][kopf_support.LAST_HANDLED])["spec"] == {"message": "hello", "size": 1}
    assert obj["status"]["size"] == {"new": 1}  # a field handler runs on creation too (old None: dropped by the merge)
    support.wait_for(lambda: {"GadgetCreated", "DaemonStarted"} <= set(kopf_support.events_of(admin, namespace, "g1")),
                     timeout=30, what="the create handler's and the daemon's Events")
    event = kopf_support.events_of(admin, namespace, "g1")["GadgetCreated"]
    assert (event["message"], event["type"]) == ("made for hello", "Normal")
    assert event["involvedObject"]["uid"] == obj["metadata"]["uid"]
    support.wait_for(lambda: kopf_support.current(admin, namespace, "g1")["status"].get("ticks", 0) >= 3,
                     timeout=30, what="the timer ticks (status patched again and again)")

    admin.patch(kopf_support.API_VERSION, kopf_support.PLURAL, "g1", {"spec": {"message": "world", "size": 2}}, namespace=namespace)

    def updated() -> dict[str, Any] | None:
        operator.running()
        obj = kopf_support.current(admin, namespace, "g1")
        status = obj.get("status") or {}
        return obj if "updated" in status and status.get("size", {}).get("new") == 2 else None

    obj = support.wait_for(updated, timeout=60, what="kopf's update and field handlers ran on g1")
    assert obj["status"]["updated"] == {"from": "hello", "to": "world"}
    assert obj["status"]["size"] == {"old": 1, "new": 2}
    support.wait_for(
        lambda: json.loads(kopf_support.current(admin, namespace, "g1")["metadata"]["annotations"][kopf_support.LAST_HANDLED])["spec"]
        == {"message": "world", "size": 2}, timeout=30, what="the last-handled configuration follows the spec")

    admin.delete(kopf_support.API_VERSION, kopf_support.PLURAL, "g1", namespace=namespace)
    support.wait_for(lambda: operator.running() and kopf_support.gone(admin, namespace, "g1"), timeout=60,
                     what="g1 goes away once kopf ran its delete handler and removed its finalizer")
    assert "GadgetDeleted" in kopf_support.events_of(admin, namespace, "g1")

    assert operator.stop() == 0, operator.text()[-5000:]
    # on a clean exit kopf takes itself out of the peering
    status = admin.get("kopf.dev/v1", "kopfpeerings", "compat", namespace=namespace).get("status") or {}
    assert identity not in status, status
    assert operator.trouble() == [], operator.text()[-8000:]


def test_kopf_with_a_least_privilege_identity_streams_resumes_and_handles(
        admin: client_api.Client, api_server: str, namespace: str, operators: list[KopfOperator],
        tmp_path: Path) -> None:
    """A client certificate of a user with only kopf_support.LEAST_ROLE and the scanning ClusterRole; kopf's first
    list is a watch with sendInitialEvents, its lists come in pages of one, and each watch ends after
    two seconds and is resumed from the last resourceVersion kopf saw."""
    conn = support.connection(api_server)
    user = f"kopf-{uuid.uuid4().hex[:6]}"
    kopf_support.grant(admin, namespace, kopf_support.user(user), kopf_support.LEAST_ROLE)
    admin.create(kopf_support.API_VERSION, kopf_support.PLURAL, kopf_support.gadget("early", "before kopf", 1), namespace=namespace)  # in the initial events
    operator = KopfOperator(conn.kubeconfig(as_user=conn.user(user)), namespace, tmp_path,
                            env={"GADGETS_INITIAL_STREAMING": "1", "GADGETS_WATCH_SECONDS": "2"})
    operators.append(operator)

    def created(name: str) -> dict[str, Any] | None:
        operator.running()
        return (kopf_support.current(admin, namespace, name).get("status") or {}).get("created")

    assert support.wait_for(lambda: created("early"), timeout=60, what="kopf handled the Gadget it found") == {
        "message": "before kopf"}
    admin.create(kopf_support.API_VERSION, kopf_support.PLURAL, kopf_support.gadget("late", "after kopf", 1), namespace=namespace)
    assert support.wait_for(lambda: created("late"), timeout=60, what="kopf handled a new Gadget") == {
        "message": "after kopf"}
    # ticks every half second: at 10, kopf's watches have ended and been resumed at least twice
    support.wait_for(lambda: operator.running() and kopf_support.current(admin, namespace, "late")["status"].get("ticks", 0) >= 10,
                     timeout=60, what="the timer ticks past two watch timeouts")
    admin.patch(kopf_support.API_VERSION, kopf_support.PLURAL, "late", {"spec": {"message": "changed"}}, namespace=namespace)
    support.wait_for(
        lambda: operator.running() and kopf_support.current(admin, namespace, "late")["status"].get("updated")
        == {"from": "after kopf", "to": "changed"}, timeout=60, what="a resumed watch delivers the change")
    assert "GadgetCreated" in kopf_support.events_of(admin, namespace, "late")  # Events: the Role's create

    for name in ("early", "late"):
        admin.delete(kopf_support.API_VERSION, kopf_support.PLURAL, name, namespace=namespace)
    support.wait_for(lambda: operator.running() and kopf_support.gone(admin, namespace, "early") and kopf_support.gone(admin, namespace, "late"),
                     timeout=60, what="both Gadgets go away through kopf's finalizer")
    assert operator.stop() == 0, operator.text()[-5000:]
    assert operator.trouble() == [], operator.text()[-8000:]
    # every resume was from a resourceVersion the server still had: kopf restarts a watch (and
    # relists) on a 410, which it got when a streaming list did not end with its bookmark
    assert "Restarting the watch-stream" not in operator.text(), operator.text()[-8000:]


def test_kopf_with_too_little_rbac_is_refused_with_a_status_it_understands(
        admin: client_api.Client, api_server: str, namespace: str, operators: list[KopfOperator],
        tmp_path: Path) -> None:
    """Gadgets watched but not patchable: kopf's patch for its finalizer is refused with 403, and the
    Status our server sends is one kopf parses (it logs the Status's message, which it does only for
    a body of kind Status)."""
    conn = support.connection(api_server)
    user = f"weak-{uuid.uuid4().hex[:6]}"
    kopf_support.grant(admin, namespace, kopf_support.user(user), READ_ONLY_ROLE)
    operator = KopfOperator(conn.kubeconfig(as_user=conn.user(user)), namespace, tmp_path)
    operators.append(operator)
    admin.create(kopf_support.API_VERSION, kopf_support.PLURAL, kopf_support.gadget("g1", "hello", 1), namespace=namespace)
    refusal = (f'gadgets.{kopf_support.GROUP} "g1" is forbidden: User "{user}" cannot patch resource "gadgets" '
               f'in API group "{kopf_support.GROUP}" in the namespace "{namespace}"')
    support.wait_for(lambda: operator.running() and refusal in operator.text(), timeout=60,
                     what="kopf logs the server's 403 with its Status message")
    # logged as errors: the check the other tests make (no trouble in the log) does see them
    refused = [line for line in operator.trouble() if "[ERROR" in line and "APIForbiddenError" in line]
    assert any(refusal in line and "'kind': 'Status'" in line and "status=403" in line for line in refused), (
        operator.text()[-5000:])

    # the same request kopf made, as the same user: the Status in full
    pair = conn.user(user)
    with conn.http_client(as_user=pair) as http:
        response = http.patch(f"/apis/{kopf_support.API_VERSION}/namespaces/{namespace}/{kopf_support.PLURAL}/g1",
                              headers={"Content-Type": "application/json-patch+json"},
                              content=json.dumps([{"op": "add", "path": "/metadata/finalizers", "value": [kopf_support.FINALIZER]}]))
    assert response.status_code == 403
    assert response.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": refusal, "reason": "Forbidden",
                               "details": {"name": "g1", "group": kopf_support.GROUP, "kind": kopf_support.PLURAL}, "code": 403}
    obj = kopf_support.current(admin, namespace, "g1")
    assert kopf_support.FINALIZER not in obj["metadata"].get("finalizers", [])  # nothing got through
    assert "created" not in (obj.get("status") or {})
    assert operator.stop() == 0, operator.text()[-5000:]


def test_kopf_restarted_cluster_wide_resumes_and_catches_up_on_a_change_made_while_down(
        admin: client_api.Client, api_server: str, namespace: str, operators: list[KopfOperator],
        tmp_path: Path) -> None:
    """kopf across a restart, watching every namespace: what it noted (its last-handled annotation)
    tells it on the next start that the Gadget was created before and changed meanwhile, so it runs
    the update and resume handlers and not the create handler again."""
    conn = support.connection(api_server)
    first = KopfOperator(conn.kubeconfig(), None, tmp_path)
    operators.append(first)
    admin.create(kopf_support.API_VERSION, kopf_support.PLURAL, kopf_support.gadget("g1", "hello", 1),
                 namespace=namespace)

    def noted() -> bool:
        first.running()
        obj = kopf_support.current(admin, namespace, "g1")
        return kopf_support.LAST_HANDLED in obj["metadata"].get("annotations", {}) and "size" in obj.get("status", {})

    support.wait_for(noted, timeout=60, what="kopf handled g1 and noted it")
    assert first.stop() == 0, first.text()[-5000:]
    admin.patch(kopf_support.API_VERSION, kopf_support.PLURAL, "g1", {"spec": {"message": "while down"}},
                namespace=namespace)

    second = KopfOperator(conn.kubeconfig(), None, tmp_path)
    operators.append(second)

    def caught_up() -> dict[str, Any] | None:
        second.running()
        status = kopf_support.current(admin, namespace, "g1").get("status") or {}
        return status if "updated" in status and status.get("resumed") else None

    status = support.wait_for(caught_up, timeout=60, what="the restarted kopf resumes g1 and handles its change")
    assert status["updated"] == {"from": "hello", "to": "while down"}
    assert status["created"] == {"message": "hello"}
    admin.delete(kopf_support.API_VERSION, kopf_support.PLURAL, "g1", namespace=namespace)
    support.wait_for(lambda: second.running() and kopf_support.gone(admin, namespace, "g1"), timeout=60,
                     what="g1 goes away through the restarted kopf")
    assert second.stop() == 0, second.text()[-5000:]
    handled = [line for line in second.text().splitlines() if f"[{namespace}/g1]" in line]
    assert not any("Handler 'created' is invoked" in line for line in handled), second.text()[-8000:]
    assert first.trouble() == [] and second.trouble() == [], second.text()[-8000:]
