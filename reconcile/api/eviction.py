"""The eviction subresource: `POST /api/v1/namespaces/NS/pods/NAME/eviction` (policy/v1 Eviction).

As upstream's pkg/registry/core/pod/storage/eviction.go, so `kubectl drain` waits on budgets as it
does against Kubernetes:
- a pod that is Pending, Succeeded, Failed or already being deleted is deleted at once, no budget
  read (it is no disruption, or one that already happened);
- otherwise the PodDisruptionBudgets of the pod's namespace whose (non-empty) selector matches its
  labels are found: more than one is upstream's 500 Status; none lets the delete go on;
- an unready pod is deleted without spending the budget when the budget is healthy anyway
  (currentHealthy >= desiredHealthy > 0) or its unhealthyPodEvictionPolicy is AlwaysAllow; the delete
  then carries the pod's resourceVersion, so a pod that became ready meanwhile answers 429;
- else one disruption is spent (`core.disruption.spend`): the PDB's status is written with its
  resourceVersion as precondition, re-read and retried on conflict; no disruption left is the 429
  "Cannot evict pod as it would violate the pod's disruption budget." with a DisruptionBudget cause;
- the pod gets the DisruptionTarget condition (reason EvictionByEvictionAPI) and is deleted with
  the Eviction's deleteOptions (grace period, preconditions, dryRun). The answer is a `Status` of
  Success (201).
Admission sees the Eviction as a CREATE of pods/eviction (NodeRestriction lets a node evict only
its own pods).
"""

from __future__ import annotations

import copy
from typing import Any

from reconcile.api import admission, authn, deleteoptions, registry, rest
from reconcile.core import disruption, errors, meta, selectors

API_VERSIONS = frozenset({"policy/v1", "policy/v1beta1"})
RETRIES = 5  # upstream's EvictionsRetry steps
MORE_THAN_ONE = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
_IGNORE_BUDGET_PHASES = frozenset({"Pending", "Succeeded", "Failed"})
_TERMINAL = frozenset({"Succeeded", "Failed"})


def _bad(why: str) -> errors.BadRequest:
    return errors.BadRequest(f'Eviction in version "v1" cannot be handled as a Eviction: {why}')


def parse(body: Any, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the Eviction, its normalized deleteOptions): the body checked as upstream's decoding does."""
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON or YAML object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "", "Eviction") or api_version not in (None, "", *API_VERSIONS):
        raise _bad(f"expected kind Eviction (policy/v1), got {kind} ({api_version})")
    metadata = body.get("metadata") if body.get("metadata") is not None else {}
    if not isinstance(metadata, dict):
        raise _bad("metadata must be an object")
    given = metadata.get("name")
    if given not in (None, "") and given != name:
        raise errors.BadRequest("name in URL does not match name in Eviction object")
    options = deleteoptions.normalized(body.get("deleteOptions"))
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {**metadata, "name": name},
            "deleteOptions": options}, options


def _phase(pod: dict[str, Any]) -> str:
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, dict) else None
    return phase if isinstance(phase, str) else ""


def _deleting(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _has_resource_version(options: dict[str, Any]) -> bool:
    return bool((options.get("preconditions") or {}).get("resourceVersion"))


def _with_resource_version(options: dict[str, Any], version: str) -> dict[str, Any]:
    new = copy.deepcopy(options)
    new["preconditions"] = {**(new.get("preconditions") or {}), "resourceVersion": version}
    return new


def matching_budgets(pdbs: list[dict[str, Any]], pod: dict[str, Any]) -> list[dict[str, Any]]:
    """getPodDisruptionBudgets: the PDBs of the pod's namespace whose selector matches its labels;
    a missing, empty or invalid selector matches nothing."""
    md = pod.get("metadata") or {}
    found = []
    for pdb in pdbs:
        if (pdb.get("metadata") or {}).get("namespace") != md.get("namespace"):
            continue
        spec = pdb.get("spec") if isinstance(pdb.get("spec"), dict) else {}
        raw = spec.get("selector")
        if not isinstance(raw, dict):
            continue
        try:
            selector = selectors.LabelSelector.from_match(raw)
        except (errors.ApiError, ValueError, TypeError, AttributeError):
            continue
        if selector.empty or not selector.matches(md.get("labels") or {}):
            continue
        found.append(pdb)
    return found


class Evictions:
    """Serves pods/eviction on the generic store (`rest.Rest`)."""

    def __init__(self, api: rest.Rest) -> None:
        self.api = api

    def _resources(self) -> tuple[registry.Resource, registry.Resource]:
        pods = self.api.registry.get("", "v1", "pods")
        pdbs = self.api.registry.get("policy", "v1", "poddisruptionbudgets")
        if pods is None or pdbs is None:
            raise errors.no_such_resource()
        return pods, pdbs

    async def evict(self, namespace: str, name: str, body: Any, *, dry_run: bool = False,
                    user: authn.UserInfo = authn.SERVER) -> dict[str, Any]:
        """Evict the pod (or raise the error that refuses it); the Success Status to answer."""
        pods, pdbs = self._resources()
        eviction, options = parse(body, name)
        if dry_run and not deleteoptions.is_dry_run(options):
            options["dryRun"] = [deleteoptions.DRY_RUN_ALL]
        dry_run = deleteoptions.is_dry_run(options)
        await self.api.admission.admit(admission.Attributes(
            admission.CREATE, pods, "eviction", namespace, name, eviction, None, user, dry_run))
        pod = None
        for _ in range(RETRIES):  # a budget-free delete, retried on conflict unless the client gave a version
            pod = (await self.api.get(pods, namespace, name)).obj
            if _phase(pod) not in _IGNORE_BUDGET_PHASES and not _deleting(pod):
                break
            delete_options = options
            if _phase(pod) not in _TERMINAL and not _deleting(pod) and not _has_resource_version(options):
                delete_options = _with_resource_version(options, pod["metadata"]["resourceVersion"])
            try:
                await self._delete(pods, namespace, name, delete_options, user=user)
            except errors.Conflict:
                if _has_resource_version(options):
                    raise
                continue
            return _success()
        else:
            raise errors.Conflict.for_resource("pods", name, why="too many concurrent writers; please try again")
        assert pod is not None
        listed = await self.api.list(pdbs, rest.Selection(namespace=namespace))
        budgets = matching_budgets([e.obj for e in listed.entries], pod)
        if len(budgets) > 1:
            raise errors.InternalError(MORE_THAN_ONE)
        guard_version = False
        if budgets:
            pdb = budgets[0]
            status = pdb.get("status") if isinstance(pdb.get("status"), dict) else {}
            spec = pdb.get("spec") if isinstance(pdb.get("spec"), dict) else {}
            ready = disruption.is_ready(pod)
            desired = status.get("desiredHealthy") or 0
            if not ready and ((status.get("currentHealthy") or 0) >= desired > 0
                              or spec.get("unhealthyPodEvictionPolicy") == disruption.ALWAYS_ALLOW):
                guard_version = True
            else:
                await self._spend(pdbs, pdb, name, dry_run=dry_run)
        delete_options = _with_resource_version(options, pod["metadata"]["resourceVersion"]) \
            if guard_version else options
        try:
            await self._delete(pods, namespace, name, delete_options, user=user)
        except errors.Conflict:
            if guard_version and not _has_resource_version(options):
                pdb_name = budgets[0]["metadata"]["name"]
                raise disruption.violation(
                    pdb_name, f"The disruption budget {pdb_name} is still being processed by the server.") from None
            raise
        return _success()

    async def _spend(self, pdbs: registry.Resource, pdb: dict[str, Any], pod_name: str, *, dry_run: bool) -> None:
        """checkAndDecrement under a resourceVersion precondition, re-read and retried on conflict."""
        md = pdb["metadata"]
        for attempt in range(RETRIES):
            if attempt:
                pdb = (await self.api.get(pdbs, md["namespace"], md["name"])).obj
            status = disruption.spend(pdb, pod_name, meta.now_rfc3339(), dry_run=dry_run)
            if dry_run:
                return
            try:
                await self.api.guarded_update(pdbs, md["namespace"], md["name"], lambda obj, new=status: {**obj, "status": new},
                                              subresource="status",
                                              precondition=pdb["metadata"]["resourceVersion"])
                return
            except errors.Conflict:
                continue
        raise errors.Timeout(f'couldn\'t update PodDisruptionBudget "{md["name"]}" due to conflicts',
                             details={"retryAfterSeconds": 10})

    async def _delete(self, pods: registry.Resource, namespace: str, name: str, options: dict[str, Any], *,
                      user: authn.UserInfo) -> None:
        """addConditionAndDeletePod: the DisruptionTarget condition on the pod's status (checked
        against the delete's preconditions), then the delete."""
        dry_run = deleteoptions.is_dry_run(options)
        if not dry_run:
            preconditions = options.get("preconditions") or {}

            def mark(pod: dict[str, Any]) -> dict[str, Any]:
                md = pod["metadata"]
                for field, shown in (("uid", "UID"), ("resourceVersion", "resourceVersion")):
                    wanted = preconditions.get(field)
                    if wanted and wanted != md.get(field):
                        raise errors.Conflict.for_resource(
                            "pods", name, why=f"Precondition failed: {shown} in precondition: {wanted}, "
                                              f"{shown} in object meta: {md.get(field)}")
                return _with_disruption_target(pod)

            updated = await self.api.guarded_update(pods, namespace, name, mark, subresource="status", user=user)
            if _has_resource_version(options):
                options = _with_resource_version(options, updated.obj["metadata"]["resourceVersion"])
        await self.api.delete(pods, namespace, name, options=options, dry_run=dry_run, user=user)


def _with_disruption_target(pod: dict[str, Any]) -> dict[str, Any]:
    """podutil.UpdatePodCondition with DisruptionTarget=True (lastTransitionTime only when it changes)."""
    status = pod.get("status") if isinstance(pod.get("status"), dict) else {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    wanted = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
              "message": "Eviction API: evicting"}
    for i, cond in enumerate(conditions):
        if cond.get("type") == "DisruptionTarget":
            stamp = cond.get("lastTransitionTime") if cond.get("status") == "True" else None
            conditions[i] = {**cond, **wanted, "lastTransitionTime": stamp or meta.now_rfc3339()}
            break
    else:
        conditions.append({**wanted, "lastTransitionTime": meta.now_rfc3339()})
    return {**pod, "status": {**status, "conditions": conditions}}


def _success() -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
