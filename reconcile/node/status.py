"""A pod's status from what runs: pure functions, so the rules are testable without Docker.

Phase follows the kubelet's `getPhase`: a container waiting without ever having run keeps the
pod Pending; any running (or restarting) container makes it Running; all stopped makes it
Succeeded (all exit 0) or Failed (restartPolicy Never, or OnFailure with a failure left that
will not be restarted). Once Succeeded or Failed a pod never changes phase again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from reconcile.node import containers

TERMINAL = ("Succeeded", "Failed")


@dataclass
class ContainerView:
    """What the agent knows about one container of the pod after a sync."""

    spec: dict[str, Any]
    latest: containers.Instance | None  # the newest attempt
    previous: containers.Instance | None  # the attempt before it (for lastState)
    waiting: tuple[str, str] | None = None  # (reason, message) when it is not running
    ready: bool = False
    started: bool = False


def terminated_state(inst: containers.Instance) -> dict[str, Any]:
    if inst.oom_killed:
        reason = "OOMKilled"
    elif inst.status == "created" and inst.error:
        reason = "ContainerCannotRun"
    else:
        reason = "Completed" if inst.exit_code == 0 else "Error"
    state: dict[str, Any] = {"exitCode": inst.exit_code, "reason": reason, "containerID": f"docker://{inst.id}"}
    if inst.error:
        state["message"] = inst.error
    if inst.started_at:
        state["startedAt"] = inst.started_at
    if inst.finished_at:
        state["finishedAt"] = inst.finished_at
    return state


def container_status(view: ContainerView) -> dict[str, Any]:
    latest, spec = view.latest, view.spec
    status: dict[str, Any] = {
        "name": spec["name"],
        "image": spec.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": latest.restarts if latest else 0,
        "started": False,
        "lastState": {},
    }
    if latest is not None:
        status["imageID"] = f"docker://{latest.image_id}" if latest.image_id else ""
        status["containerID"] = f"docker://{latest.id}"
    if view.waiting is not None:
        reason, message = view.waiting
        status["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        if latest is not None and latest.terminated:
            status["lastState"] = {"terminated": terminated_state(latest)}
        return status
    if latest is not None and latest.running:
        status["state"] = {"running": {"startedAt": latest.started_at} if latest.started_at else {}}
        status["ready"] = view.ready
        status["started"] = view.started
    elif latest is not None and latest.terminated:
        status["state"] = {"terminated": terminated_state(latest)}
    else:
        status["state"] = {"waiting": {"reason": "ContainerCreating"}}
    if view.previous is not None and view.previous.terminated:
        status["lastState"] = {"terminated": terminated_state(view.previous)}
    return status


def phase(statuses: list[dict[str, Any]], restart_policy: str, *, previous: str | None) -> str:
    if previous in TERMINAL:
        return previous  # type: ignore[return-value]
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        state = status.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif (status.get("lastState") or {}).get("terminated"):
            stopped += 1  # waiting to restart after having run
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if not stopped:
        return "Pending"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"  # OnFailure: the failed ones will be restarted


def _condition(kind: str, ok: bool, *, reason: str = "", message: str = "") -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
    if not ok and reason:
        condition["reason"] = reason
    if not ok and message:
        condition["message"] = message
    return condition


def pod_status(pod: dict[str, Any], views: list[ContainerView], *, pod_ip: str | None, host_ip: str,
               now: str, init_views: list[ContainerView] | None = None, init_failed: bool = False) -> dict[str, Any]:
    """The whole new `status` (fields the agent does not own, such as qosClass, are kept).
    `init_views`: the init containers; until each exited 0 the pod is Pending (Initialized False),
    and Failed when one failed under restartPolicy Never (`init_failed`)."""
    current = pod.get("status") or {}
    spec = pod.get("spec") or {}
    statuses = [container_status(v) for v in views]
    init_statuses = [container_status(v) for v in init_views or []]
    incomplete = [s["name"] for s in init_statuses
                  if ((s.get("state") or {}).get("terminated") or {}).get("exitCode", -1) != 0]
    new_phase = phase(statuses, spec.get("restartPolicy") or "Always", previous=current.get("phase"))
    if incomplete and current.get("phase") not in TERMINAL:
        new_phase = "Failed" if init_failed else "Pending"
    unready = [s["name"] for s in statuses if not s["ready"]]
    if new_phase in TERMINAL:
        unready = [s["name"] for s in statuses]
        for s in statuses:
            s["ready"] = False
    message = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
    reason = "PodCompleted" if new_phase in TERMINAL else "ContainersNotReady"
    conditions = [
        _condition("Initialized", not incomplete, reason="ContainersNotInitialized",
                   message=f"containers with incomplete status: [{' '.join(incomplete)}]"),
        _condition("Ready", not unready, reason=reason, message=message),
        _condition("ContainersReady", not unready, reason=reason, message=message),
        _condition("PodScheduled", True),
    ]
    old_conditions = {c.get("type"): c for c in current.get("conditions") or []}
    for condition in conditions:
        old = old_conditions.get(condition["type"])
        if old and old.get("status") == condition["status"] and old.get("lastTransitionTime"):
            condition["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            condition["lastTransitionTime"] = now
    status = copy.deepcopy(current)
    status.update({
        "phase": new_phase,
        "conditions": conditions,
        "containerStatuses": statuses,
        **({"initContainerStatuses": init_statuses} if init_statuses else {}),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": current.get("startTime") or now,
    })
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def differs(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    return (old or {}) != new
