"""batch/v1 Jobs and CronJobs: upstream's defaulting, generated selector, validation and immutable fields.

The schema carries the defaults that stand alone (backoffLimit 6, completionMode NonIndexed, ...);
what depends on other fields is here: completions and parallelism (both 1 when both are unset), and
the selector a Job gets from its own uid unless `manualSelector` is true, with the labels
`batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name` and their legacy names on the
pod template (upstream's generateSelector). A Job's pods must not restart in place (the controller
counts their exits), so the template's restartPolicy is Never or OnFailure.
"""

from __future__ import annotations

import json
from typing import Any

from reconcile.api import objectmeta_validation, registry
from reconcile.api.strategies import base, pods
from reconcile.core import cronschedule, errors, selectors

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
RESTART_POLICIES = ("OnFailure", "Never")
MAX_CRONJOB_NAME = 52  # upstream: the Job name adds `-<11 digits>` and must stay a 63-character label


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if not isinstance(value, str) else f'"{value}"'


def default_job_spec(spec: dict[str, Any]) -> None:
    """Upstream SetDefaults_Job's dependent defaults: a non-parallel Job (neither set) runs once."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1


def generate_selector(job: dict[str, Any]) -> None:
    """Upstream generateSelector: the uid and name labels on the template (kept when the user set
    them), and a selector of the uid label when none was given; the Job's own labels are the
    template's when it has none (upstream's defaulting, applied on every read there)."""
    md = job["metadata"]
    spec = job.setdefault("spec", {})
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    labels = tmeta.get("labels") if isinstance(tmeta.get("labels"), dict) else {}
    if not spec.get("manualSelector"):
        for key in (LEGACY_JOB_NAME, JOB_NAME):
            labels.setdefault(key, md["name"])
        for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
            labels.setdefault(key, md["uid"])
        selector = _dict(spec.get("selector"))
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            spec["selector"] = {"matchLabels": {CONTROLLER_UID: md["uid"]}}
    if labels:
        tmeta["labels"] = labels
    if not md.get("labels") and labels:
        md["labels"] = dict(labels)


def template_causes(spec: dict[str, Any], path: str) -> list[base.Cause]:
    """The pod template of a Job (or of a CronJob's jobTemplate): restartPolicy, DNS, label syntax."""
    template = _dict(spec.get("template"))
    pod_spec = _dict(template.get("spec"))
    causes: list[base.Cause] = []
    policy = pod_spec.get("restartPolicy")
    if policy not in RESTART_POLICIES:
        causes.append(errors.cause(f"{path}.template.spec.restartPolicy",
                                   f'Unsupported value: {_show(policy)}: supported values: "OnFailure", "Never"',
                                   "FieldValueNotSupported"))
    causes += pods.dns_config_causes(pod_spec, f"{path}.template.spec")
    labels = _dict(template.get("metadata")).get("labels")
    if isinstance(labels, dict):
        causes += objectmeta_validation.label_causes(labels, f"{path}.template.metadata.labels")
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        causes.append(errors.cause(f"{path}.completions", "Required value: when completion mode is Indexed",
                                   "FieldValueRequired"))
    return causes


def selector_causes(job: dict[str, Any]) -> list[base.Cause]:
    """Upstream ValidateJob's selector rules: required, matching the template, generated unless manual."""
    spec = _dict(job.get("spec"))
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [errors.cause("spec.selector", "Required value", "FieldValueRequired")]
    labels = _dict(_dict(spec.get("template")).get("metadata")).get("labels") or {}
    try:
        matches = selectors.LabelSelector.from_match(selector).matches(labels)
    except errors.ApiError as exc:
        return [errors.cause("spec.selector", f"Invalid value: {_show(selector)}: {exc}")]
    causes: list[base.Cause] = []
    if not matches:
        shown = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"
        causes.append(errors.cause("spec.template.metadata.labels",
                                   f"Invalid value: {shown}: `selector` does not match template `labels`"))
    uid = job["metadata"].get("uid")
    if not spec.get("manualSelector") and uid and selector != {"matchLabels": {CONTROLLER_UID: uid}}:
        causes.append(errors.cause("spec.selector", f"Invalid value: {_show(selector)}: `selector` not auto-generated"))
    return causes


class JobStrategy(base.BuiltinStrategy):
    """Jobs: defaults, the generated selector, and upstream's immutable fields."""

    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_job_spec(spec)
            pods.default_pod_spec(_dict(spec.get("template")).get("spec"))

    def fill_from_identity(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        generate_selector(obj)

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        spec = _dict(obj.get("spec"))
        return [*template_causes(spec, "spec"), *selector_causes(obj)]

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        causes = self.validate(resource, new)
        old_spec, new_spec = _dict(old.get("spec")), _dict(new.get("spec"))
        for field in ("selector", "template", "completionMode"):
            before, after = old_spec.get(field), new_spec.get(field)
            if field == "template" and old_spec.get("suspend") and not _dict(old.get("status")).get("startTime"):
                before, after = _without_scheduling(before), _without_scheduling(after)
            if before != after:
                causes.append(errors.cause(f"spec.{field}",
                                           f"Invalid value: {_show(new_spec.get(field))}: field is immutable"))
        if old_spec.get("completions") != new_spec.get("completions") and not _elastic(old_spec, new_spec):
            causes.append(errors.cause("spec.completions",
                                       f"Invalid value: {_show(new_spec.get('completions'))}: field is immutable"))
        return causes


SCHEDULING_DIRECTIVES = ("nodeSelector", "affinity", "tolerations", "schedulingGates")


def _without_scheduling(template: Any) -> Any:
    """A pod template less what a suspended Job that never started may change (upstream's mutable
    scheduling directives: where its pods will go, and the template's labels and annotations)."""
    if not isinstance(template, dict):
        return template
    trimmed = dict(template)
    trimmed["metadata"] = {k: v for k, v in _dict(template.get("metadata")).items() if k not in ("labels", "annotations")}
    trimmed["spec"] = {k: v for k, v in _dict(template.get("spec")).items() if k not in SCHEDULING_DIRECTIVES}
    return trimmed


def _elastic(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Upstream's elastic Indexed Jobs: completions may change together with parallelism, equal to it."""
    return (new.get("completionMode") == "Indexed" and new.get("completions") == new.get("parallelism")
            and old.get("completions") == old.get("parallelism"))


class CronJobStrategy(base.BuiltinStrategy):
    """CronJobs: a schedule and time zone the controller can run, and a Job template a Job can be made of."""

    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        job_spec = _dict(_dict(_dict(obj.get("spec")).get("jobTemplate")).get("spec"))
        pods.default_pod_spec(_dict(job_spec.get("template")).get("spec"))

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        spec = _dict(obj.get("spec"))
        causes: list[base.Cause] = []
        name = obj["metadata"].get("name") or ""
        if len(name) > MAX_CRONJOB_NAME:
            causes.append(errors.cause("metadata.name", f"Invalid value: {_show(name)}: must be no more than "
                                       f"{MAX_CRONJOB_NAME} characters"))
        schedule = spec.get("schedule")
        try:
            cronschedule.check(schedule)
        except ValueError as exc:
            causes.append(errors.cause("spec.schedule", f"Invalid value: {_show(schedule)}: {exc}"))
        if "timeZone" in spec:
            try:
                cronschedule.zone(spec["timeZone"])
            except ValueError as exc:
                causes.append(errors.cause("spec.timeZone", f"Invalid value: {_show(spec['timeZone'])}: {exc}"))
        job_spec = _dict(_dict(spec.get("jobTemplate")).get("spec"))
        causes += template_causes(job_spec, "spec.jobTemplate.spec")
        return causes
