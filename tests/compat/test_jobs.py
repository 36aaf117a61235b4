"""kubectl 1.32 and batch/v1 on a real node: `create job` (protobuf) runs to Complete, `wait
--for=condition=complete`, `logs job/NAME`, `get jobs|cronjobs|cj|all`, `create cronjob`, `create job
--from=cronjob/NAME`; bad input is the upstream 422. Oracle for the generators: what `--dry-run=client
-o json` prints, posted as JSON with a server dry run, is what the protobuf request stored (the uid,
and so the generated selector, aside)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import api as client_api
from reconcile.node import images
from tests.compat.conftest import kubectl
from tests.controllers import helpers as controller_helpers
from tests.scheduler import harness

IMAGE = images.HELLO_IMAGE  # built on the node's dockerd: no registry needed
SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


@pytest.fixture(scope="module")
def controllers(api_server: str, node_agent) -> Iterator[None]:
    manager = controller_helpers.ControllerManagerProcess(api_server)
    manager.start()
    scheduler = harness.SchedulerThread(api_server).start()
    try:
        yield
    finally:
        scheduler.stop()
        manager.stop()


@pytest.fixture
def ns(admin: client_api.Client) -> str:
    name = f"batch-{uuid.uuid4().hex[:6]}"
    admin.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def _ok(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    done = kubectl(env, *args, timeout=timeout)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def _as_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the server sets itself; its uid (in the generated selector and labels) as UID."""
    uid = obj["metadata"].get("uid", "")
    found = json.loads(json.dumps(obj).replace(uid, "UID") if uid else json.dumps(obj))
    for key in SERVER_SET:
        found["metadata"].pop(key, None)
    found.pop("status", None)
    return found


def _stores_what_dry_run_prints(env: dict[str, str], admin: client_api.Client, ns: str, plural: str,
                                name: str, head: list[str], tail: list[str]) -> dict[str, Any]:
    printed = _ok(env, "create", *head, "-n", ns, "--dry-run=client", "-o", "json", *tail)
    as_json = admin.create("batch/v1", plural, json.loads(printed), namespace=ns, dry_run=True)
    out = _ok(env, "create", *head, "-n", ns, *tail)
    assert out.strip() == f"{plural[:-1]}.batch/{name} created"
    stored = admin.get("batch/v1", plural, name, namespace=ns)
    assert _as_stored(stored) == _as_stored(as_json)
    return stored


def test_kubectl_create_job_runs_it_to_complete(controllers, module_env, admin: client_api.Client, ns: str) -> None:
    job = _stores_what_dry_run_prints(module_env, admin, ns, "jobs", "hello", ["job", "hello", f"--image={IMAGE}"],
                                      ["--", "sh", "-c", "echo hello from a job"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": job["metadata"]["uid"]}}
    waited = _ok(module_env, "wait", "--for=condition=complete", "job/hello", "-n", ns, "--timeout=90s", timeout=100)
    assert waited.strip() == "job.batch/hello condition met"
    assert _ok(module_env, "logs", "job/hello", "-n", ns) == "hello from a job\n"
    header, row = _ok(module_env, "get", "jobs", "-n", ns).splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["hello", "Complete", "1/1"]
    wide = _ok(module_env, "get", "job", "hello", "-n", ns, "-o", "wide").splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[-3:] == ["hello", IMAGE, f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"]
    described = _ok(module_env, "describe", "job", "hello", "-n", ns)
    assert "Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed" in described, described
    assert "Completion Mode:  NonIndexed" in described and "Completed" in described
    status = admin.get("batch/v1", "jobs", "hello", namespace=ns)["status"]
    assert [c["type"] for c in status["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert status["succeeded"] == 1 and status["completionTime"]


def test_kubectl_create_cronjob_and_a_job_from_it(controllers, module_env, admin: client_api.Client,
                                                  ns: str) -> None:
    cronjob = _stores_what_dry_run_prints(module_env, admin, ns, "cronjobs", "tick",
                                          ["cronjob", "tick", f"--image={IMAGE}", "--schedule=*/5 * * * *"],
                                          ["--", "sh", "-c", "echo tick"])
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    header, row = _ok(module_env, "get", "cj", "-n", ns).splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert row.split()[:8] == ["tick", "*/5", "*", "*", "*", "*", "<none>", "False"]
    assert row.split()[8:10] == ["0", "<none>"]
    printed = _ok(module_env, "create", "job", "manual", "--from=cronjob/tick", "-n", ns, "--dry-run=client",
                  "-o", "json")
    as_json = admin.create("batch/v1", "jobs", json.loads(printed), namespace=ns, dry_run=True)
    assert _ok(module_env, "create", "job", "manual", "--from=cronjob/tick", "-n", ns).strip() == \
        "job.batch/manual created"
    manual = admin.get("batch/v1", "jobs", "manual", namespace=ns)
    assert _as_stored(manual) == _as_stored(as_json)
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    (owner,) = manual["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("CronJob", "tick", cronjob["metadata"]["uid"])
    _ok(module_env, "wait", "--for=condition=complete", "job/manual", "-n", ns, "--timeout=90s", timeout=100)
    assert _ok(module_env, "logs", "job/manual", "-n", ns) == "tick\n"
    described = _ok(module_env, "describe", "cronjob", "tick", "-n", ns)
    assert "Schedule:                      */5 * * * *" in described and "Concurrency Policy:            Allow" \
        in described, described
    everything = _ok(module_env, "get", "all", "-n", ns)
    assert "cronjob.batch/tick" in everything and "job.batch/manual" in everything


def test_bad_jobs_and_cronjobs_are_refused_naming_the_field(controllers, module_env, ns: str) -> None:
    refused = kubectl(module_env, "create", "cronjob", "bad", f"--image={IMAGE}", "--schedule=every minute",
                      "-n", ns)
    assert refused.returncode == 1
    assert b'spec.schedule: Invalid value: "every minute": expected exactly 5 fields, found 2: [every minute]' \
        in refused.stderr, refused.stderr
    manifest = json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "always"},
                           "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [
                               {"name": "c", "image": IMAGE}]}}}}).encode()
    refused = kubectl(module_env, "create", "-n", ns, "-f", "-", input=manifest)
    assert refused.returncode == 1
    assert b'The Job "always" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": ' \
        b'supported values: "OnFailure", "Never"' in refused.stderr, refused.stderr
