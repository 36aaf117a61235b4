"""What pod sync should do to one pod, decided without doing it (the kubelet's `computePodActions`).

`compute` is a pure function of the pod (spec, restartPolicy, deletion, phase), the Docker
containers found for it by labels, the crash-backoff records and the clocks. It returns a
frozen `PodPlan`; `pods.PodSync` carries the plan out on Docker and writes the status. Keeping
the decisions here, free of I/O, is what lets the restart rules be tested exhaustively
(tests/node/test_plan.py) without a Docker engine.

Some steps change what the next decision depends on: a new sandbox kills the app containers
of the old one, and a stopped container may or may not be restarted depending on its exit
code. For those the plan holds only that step; the caller carries it out, looks at Docker
again and plans again, so every decision is made on what was observed, never on a guess.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconcile.node import backoff, containers, status


def should_restart(policy: str, exit_code: int) -> bool:
    """restartPolicy: Always restarts anything, OnFailure only non-zero exits, Never nothing."""
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


class Action(enum.Enum):
    """The one thing to do for one container of a live pod."""

    RUNNING = "running"  # runs the current definition: keep it (and probe it)
    STOP = "stop"  # runs an outdated definition (spec hash differs): stop it, then plan again
    START_CREATED = "start-created"  # created but never started (an agent died in between): start it
    START = "start"  # no instance yet, or a restart is due: create and start a new attempt
    BACK_OFF = "back-off"  # crashed and due for a restart, but not yet (CrashLoopBackOff)
    DONE = "done"  # terminated, and the restartPolicy says it stays so


@dataclass(frozen=True)
class ContainerPlan:
    """The decision for one container of the pod spec, with the attempts it was made on."""

    spec: dict[str, Any]  # the container as in the pod spec
    latest: containers.Instance | None  # the newest attempt found
    previous: containers.Instance | None  # the one before it (for lastState and `logs --previous`)
    action: Action
    attempt: int = 0  # START: the attempt number (restart count) of the new instance
    delay: float = 0.0  # BACK_OFF: the backoff delay now in force
    wait: float = 0.0  # BACK_OFF: seconds of it still to wait
    message: str = ""  # BACK_OFF: the CrashLoopBackOff message for the status
    supersedes: containers.Instance | None = None  # START: garbage once the new attempt exists

    @property
    def name(self) -> str:
        return str(self.spec["name"])


@dataclass(frozen=True)
class Sandbox:
    """A new infra container: the old one is gone or dead, so the pod's network namespace is too."""

    attempt: int  # restart count of the new infra instance
    kill: tuple[containers.Instance, ...]  # app containers still running in the old namespace: first
    remove: tuple[containers.Instance, ...]  # every infra instance found (dead ones)


@dataclass(frozen=True)
class PodPlan:
    """Everything pod sync should do to one pod now.

    Invariant: an instance appears at most once across `remove`, `garbage`, the containers'
    `latest` (which is what STOP and START_CREATED act on) and their `supersedes`; the plan
    never both acts on and garbage-collects an instance.
    """

    remove: tuple[containers.Instance, ...] = ()  # instances of another pod (other uid): remove now
    terminate: bool = False  # the pod is being deleted: graceful termination
    stop_sandbox: tuple[containers.Instance, ...] = ()  # a finished pod keeps no running sandbox
    live: bool = False  # the pod should run here: its status is to be written
    sandbox: Sandbox | None = None  # when set, nothing else of the pod is planned until it runs
    infra: containers.Instance | None = None  # the running sandbox the containers were planned in
    containers: tuple[ContainerPlan, ...] = ()  # one per container of the spec, in spec order (once initialized)
    init: tuple[ContainerPlan, ...] = ()  # the init containers planned so far, in order (done ones, then the current)
    initialized: bool = True  # every init container exited 0: the app containers are planned
    garbage: tuple[containers.Instance, ...] = ()  # dead attempts beyond current + previous, old sandboxes
    requeue_after: float | None = None  # look again after this (a crash backoff ends)

    def with_action(self, action: Action) -> tuple[ContainerPlan, ...]:
        return tuple(c for c in self.containers if c.action is action)

    @property
    def to_stop(self) -> tuple[ContainerPlan, ...]:
        return self.with_action(Action.STOP)

    @property
    def to_start(self) -> tuple[ContainerPlan, ...]:
        return self.with_action(Action.START)

    @property
    def to_start_created(self) -> tuple[ContainerPlan, ...]:
        return self.with_action(Action.START_CREATED)

    @property
    def backing_off(self) -> tuple[ContainerPlan, ...]:
        return self.with_action(Action.BACK_OFF)

    @property
    def settled(self) -> bool:
        """Nothing to do but keep what runs (and leave what is done)."""
        return (not self.remove and not self.terminate and not self.stop_sandbox and self.sandbox is None
                and not self.garbage
                and all(c.action in (Action.RUNNING, Action.DONE) for c in (*self.init, *self.containers)))

    @property
    def init_failed(self) -> bool:
        """An init container failed and will not be restarted (restartPolicy Never): the pod fails."""
        return any(c.action is Action.DONE and c.latest is not None and c.latest.exit_code != 0 for c in self.init)


def compute(pod: dict[str, Any] | None, instances: Sequence[containers.Instance], *,
            streaks: Mapping[str, backoff.Streak], now: float, wall: datetime) -> PodPlan:
    """The plan for `pod` (None: deleted) given every instance found under its namespace/name.

    `streaks` are the pod's crash-backoff records by container name; `now` is monotonic
    seconds (for `Streak.restarted_at`), `wall` the wall clock (for Docker's finish times).
    """
    uid = ((pod or {}).get("metadata") or {}).get("uid")
    strangers = tuple(i for i in instances if i.pod_uid != uid)
    if pod is None:
        return PodPlan(remove=strangers)
    mine = [i for i in instances if i.pod_uid == uid]
    if pod["metadata"].get("deletionTimestamp"):
        return PodPlan(remove=strangers, terminate=True)
    if (pod.get("status") or {}).get("phase") in status.TERMINAL:
        sandboxes = tuple(i for i in mine if i.running and i.name == containers.INFRA)
        return PodPlan(remove=strangers, stop_sandbox=sandboxes)
    grouped = containers.by_container(mine)
    sandboxes = grouped.get(containers.INFRA) or []
    infra = sandboxes[-1] if sandboxes else None
    if infra is None or not infra.running:
        kill = tuple(i for name, attempts in grouped.items() if name != containers.INFRA
                     for i in attempts if i.running)
        attempt = infra.restarts + 1 if infra is not None else 0
        return PodPlan(remove=strangers, live=True, sandbox=Sandbox(attempt, kill, tuple(sandboxes)))
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy") or "Always"
    # initContainers run one at a time, in order, each to a zero exit before the next (and before
    # any app container); a failed one is restarted unless the pod's restartPolicy is Never
    init_policy = "Never" if policy == "Never" else "OnFailure"
    init: list[ContainerPlan] = []
    initialized = True
    for c in spec.get("initContainers") or []:
        step = _container(c, grouped.get(c["name"]) or [], policy=init_policy,
                          streak=streaks.get(c["name"]) or backoff.Streak(), pod=pod, now=now, wall=wall)
        init.append(step)
        if not (step.action is Action.DONE and step.latest is not None and step.latest.exit_code == 0):
            initialized = False
            break
    plans: tuple[ContainerPlan, ...] = ()
    if initialized:
        plans = tuple(
            _container(c, grouped.get(c["name"]) or [], policy=policy,
                       streak=streaks.get(c["name"]) or backoff.Streak(), pod=pod, now=now, wall=wall)
            for c in spec.get("containers") or [])
    waits = [c.wait for c in (*init, *plans) if c.action is Action.BACK_OFF]
    return PodPlan(remove=strangers, live=True, infra=infra, containers=plans, init=tuple(init),
                   initialized=initialized, garbage=_garbage(grouped, (*init, *plans), infra),
                   requeue_after=min(waits) if waits else None)


def _container(spec: dict[str, Any], attempts: list[containers.Instance], *, policy: str,
               streak: backoff.Streak, pod: dict[str, Any], now: float, wall: datetime) -> ContainerPlan:
    latest = attempts[-1] if attempts else None
    previous = attempts[-2] if len(attempts) > 1 else None

    def decided(action: Action, **fields: Any) -> ContainerPlan:
        return ContainerPlan(spec, latest, previous, action, **fields)

    if latest is not None and latest.running:
        if not latest.spec_hash or latest.spec_hash == containers.spec_hash(spec):
            return decided(Action.RUNNING)  # no hash: adopted from before hashes were written
        return decided(Action.STOP)
    if latest is not None and latest.status == "created" and not latest.error:
        return decided(Action.START_CREATED)
    if latest is not None and latest.terminated:
        if not should_restart(policy, latest.exit_code):
            return decided(Action.DONE)
        delay, wait = backoff.crash_wait(streak, latest, now=now, wall=wall)
        if wait > 0:
            return decided(Action.BACK_OFF, delay=delay, wait=wait, message=_backoff_message(pod, spec, delay))
    supersedes = previous if previous is not None and not previous.running else None
    return decided(Action.START, attempt=latest.restarts + 1 if latest is not None else 0, supersedes=supersedes)


def _backoff_message(pod: dict[str, Any], spec: dict[str, Any], delay: float) -> str:
    metadata = pod["metadata"]
    return (f"back-off {delay:g}s restarting failed container={spec['name']} "
            f"pod={metadata['name']}_{metadata.get('namespace')}({metadata['uid']})")


def _garbage(grouped: Mapping[str, list[containers.Instance]], plans: tuple[ContainerPlan, ...],
             infra: containers.Instance) -> tuple[containers.Instance, ...]:
    """Keep the sandbox and the current and previous attempt of each container; a running
    attempt of a container in the spec is never collected (it is stopped first, elsewhere)."""
    keep = {infra.id}
    for plan in plans:
        keep.update(i.id for i in (plan.latest, plan.previous) if i is not None)
    names = {plan.name for plan in plans}
    return tuple(inst for name, attempts in grouped.items() for inst in attempts
                 if inst.id not in keep and not (inst.running and name in names))
