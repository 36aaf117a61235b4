"""batch/v1 Jobs and CronJobs against a real API server (no controllers): discovery and OpenAPI,
upstream's defaults and generated selector, and bad input answered with a 422 naming the field."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api import helpers

JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
CRONJOBS = "/apis/batch/v1/namespaces/{ns}/cronjobs"


def _template(restart: str | None = "Never", **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}]}
    if restart is not None:
        spec["restartPolicy"] = restart
    return {"metadata": {"labels": labels} if labels else {}, "spec": spec}


def job(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": _template(), **spec}}


def cronjob(name: str, schedule: str = "*/5 * * * *", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": _template()}}, **spec}}


def test_discovery_and_openapi_serve_batch_v1(client: httpx.Client) -> None:
    resources = {r["name"]: r for r in client.get("/apis/batch/v1").json()["resources"]}
    assert resources["jobs"]["namespaced"] and resources["jobs"]["kind"] == "Job"
    assert "all" in resources["jobs"].get("categories", [])
    assert resources["cronjobs"]["shortNames"] == ["cj"] and "all" in resources["cronjobs"]["categories"]
    assert {"jobs/status", "cronjobs/status"} <= set(resources)
    v3 = client.get("/openapi/v3/apis/batch/v1").json()
    v3_job = next(s for n, s in v3["components"]["schemas"].items() if n.endswith(".Job"))
    v2 = client.get("/openapi/v2").json()
    v2_job = next(s for n, s in v2["definitions"].items() if n.endswith("batch.v1.Job"))
    for found in (v3_job, v2_job):
        assert "spec" in found["properties"] and "status" in found["properties"]


def test_a_job_gets_upstreams_defaults_and_a_generated_selector(client: httpx.Client, ns: str) -> None:
    made = helpers.create(client, JOBS.format(ns=ns), job("pi"))
    uid, spec = made["metadata"]["uid"], made["spec"]
    assert {k: spec[k] for k in ("parallelism", "completions", "backoffLimit", "completionMode", "suspend",
                                 "manualSelector", "podReplacementPolicy")} == {
        "parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False,
        "manualSelector": False, "podReplacementPolicy": "TerminatingOrFailed"}
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
              "controller-uid": uid, "job-name": "pi"}
    assert spec["template"]["metadata"]["labels"] == labels
    assert made["metadata"]["labels"] == labels
    assert made["status"] == {}
    parallel = helpers.create(client, JOBS.format(ns=ns), job("wide", parallelism=3))["spec"]
    assert parallel["parallelism"] == 3 and "completions" not in parallel


def test_a_manual_selector_is_kept(client: httpx.Client, ns: str) -> None:
    body = job("manual", manualSelector=True, selector={"matchLabels": {"app": "x"}})
    body["spec"]["template"] = _template(app="x")
    made = helpers.create(client, JOBS.format(ns=ns), body)
    assert made["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert made["spec"]["template"]["metadata"]["labels"] == {"app": "x"}


def test_restart_policy_always_is_a_422_naming_the_field(client: httpx.Client, ns: str) -> None:
    for restart in ("Always", None):  # unset defaults to Always, as a pod's does
        body = job(helpers.unique("always"))
        body["spec"]["template"] = _template(restart)
        answer = client.post(JOBS.format(ns=ns), json=body)
        helpers.assert_status(answer, 422, "Invalid")
        causes = answer.json()["details"]["causes"]
        assert causes == [{"reason": "FieldValueNotSupported", "field": "spec.template.spec.restartPolicy",
                           "message": 'Unsupported value: "Always": supported values: "OnFailure", "Never"'}]


def test_a_selector_without_manual_selector_is_refused(client: httpx.Client, ns: str) -> None:
    body = job("sel", selector={"matchLabels": {"app": "x"}})
    body["spec"]["template"] = _template(app="x")
    answer = client.post(JOBS.format(ns=ns), json=body)
    helpers.assert_status(answer, 422, "Invalid")
    assert "`selector` not auto-generated" in answer.json()["message"]


def test_indexed_needs_completions(client: httpx.Client, ns: str) -> None:
    answer = client.post(JOBS.format(ns=ns), json=job("ix", completionMode="Indexed", parallelism=2))
    helpers.assert_status(answer, 422, "Invalid")
    assert answer.json()["details"]["causes"][0]["field"] == "spec.completions"


def test_template_selector_and_completions_are_immutable(client: httpx.Client, ns: str) -> None:
    path = f"{JOBS.format(ns=ns)}/fixed"
    helpers.create(client, JOBS.format(ns=ns), job("fixed", completions=2))
    for patch, field in (({"spec": {"completions": 3}}, "spec.completions"),
                         ({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "other"}]}}}},
                          "spec.template"),
                         ({"spec": {"completionMode": "Indexed"}}, "spec.completionMode")):
        answer = client.patch(path, json=patch, headers={"Content-Type": "application/merge-patch+json"})
        helpers.assert_status(answer, 422, "Invalid")
        assert field in {c["field"] for c in answer.json()["details"]["causes"]}, answer.json()
    suspended = client.patch(path, json={"spec": {"suspend": True, "parallelism": 2}},
                             headers={"Content-Type": "application/merge-patch+json"})
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["spec"]["suspend"] is True


def test_a_suspended_job_that_never_ran_may_change_where_its_pods_go(client: httpx.Client, ns: str) -> None:
    path = f"{JOBS.format(ns=ns)}/held"
    helpers.create(client, JOBS.format(ns=ns), job("held", suspend=True))
    merge = {"Content-Type": "application/merge-patch+json"}
    moved = client.patch(path, headers=merge, json={"spec": {"template": {
        "metadata": {"annotations": {"team": "a"}},
        "spec": {"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "k", "operator": "Exists"}]}}}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd"}
    image = client.patch(path, headers=merge, json={"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "other"}]}}}})
    helpers.assert_status(image, 422, "Invalid")
    client.patch(f"{path}/status", headers=merge, json={"status": {"startTime": "2026-01-01T00:00:00Z"}})
    started = client.patch(path, headers=merge, json={"spec": {"template": {"spec": {"nodeSelector": None}}}})
    helpers.assert_status(started, 422, "Invalid")  # it ran once: the template is fixed


def test_a_cronjob_gets_its_defaults(client: httpx.Client, ns: str) -> None:
    made = helpers.create(client, CRONJOBS.format(ns=ns), cronjob("tick"))
    spec = made["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    assert "backoffLimit" not in spec["jobTemplate"]["spec"]  # upstream defaults the Job, not the template
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert made["status"] == {}


def test_a_bad_schedule_is_a_422_naming_spec_schedule(client: httpx.Client, ns: str) -> None:
    for schedule, message in (("not a schedule", "expected exactly 5 fields, found 3: [not a schedule]"),
                              ("61 * * * *", "61"), ("TZ=UTC 0 * * * *", "use timeZone field instead"),
                              ("@every 5m", "unrecognized descriptor")):
        answer = client.post(CRONJOBS.format(ns=ns), json=cronjob(helpers.unique("bad"), schedule))
        helpers.assert_status(answer, 422, "Invalid")
        causes = answer.json()["details"]["causes"]
        assert [c["field"] for c in causes] == ["spec.schedule"] and message in causes[0]["message"], causes


def test_bad_time_zone_policy_and_template_are_422s(client: httpx.Client, ns: str) -> None:
    answer = client.post(CRONJOBS.format(ns=ns), json=cronjob("tz", timeZone="Mars/Olympus"))
    helpers.assert_status(answer, 422, "Invalid")
    assert answer.json()["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.timeZone",
                                                   "message": 'Invalid value: "Mars/Olympus": unknown time zone '
                                                              'Mars/Olympus'}]
    answer = client.post(CRONJOBS.format(ns=ns), json=cronjob("pol", concurrencyPolicy="Sometimes"))
    helpers.assert_status(answer, 422, "Invalid")
    assert answer.json()["details"]["causes"][0]["field"] == "spec.concurrencyPolicy"
    body = cronjob("always")
    body["spec"]["jobTemplate"]["spec"]["template"] = _template("Always")
    answer = client.post(CRONJOBS.format(ns=ns), json=body)
    helpers.assert_status(answer, 422, "Invalid")
    assert answer.json()["details"]["causes"][0]["field"] == "spec.jobTemplate.spec.template.spec.restartPolicy"
    ok = helpers.create(client, CRONJOBS.format(ns=ns), cronjob("paris", "@daily", timeZone="Europe/Paris"))
    assert ok["spec"]["timeZone"] == "Europe/Paris"
    assert client.post(CRONJOBS.format(ns=ns), json=cronjob("x" * 53)).status_code == 422
