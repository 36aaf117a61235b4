"""How `reconcile node drain` moves the chosen pods away, with the semantics of kubectl's drain helper.

Evictions run all at once, one thread per pod, under one global deadline (`--timeout`): a pod that a
PodDisruptionBudget holds back (429) is retried every 5 s in its own thread while the others are
evicted and waited for, so a drain takes as long as its slowest pod, not the sum of them. Each
thread then waits for its pod to be gone (or replaced by a pod of the same name with another uid).
With `--disable-eviction` the pods are DELETEd instead (budgets bypassed), one after the other as
kubectl does, and then waited for together.

Every message is kubectl's wording, so scripts that read drain's output read ours alike; errors are
returned (not raised) and aggregated as kubectl's `utilerrors.NewAggregate` prints them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import click

from reconcile.core import errors

EVICTION_RETRY = 5.0  # kubectl's EvictErrorRetryDelay: the pause after a 429 (a budget allows no disruption yet)
POLL_INTERVAL = 0.25  # how often a pod is looked up while waiting for it to be gone


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it (kubectl's messages do): 7s, 2m0s, 1h0m0s, 1.5s, 500ms."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{_trimmed(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{_trimmed(secs)}s"
    if hours or minutes:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text


def _trimmed(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def aggregate(messages: list[str]) -> str:
    """Several errors as kubectl's aggregate error prints them: one alone, several in brackets."""
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def _terminating_namespace(error: errors.ApiError) -> bool:
    causes = (error.details or {}).get("causes") or []
    return isinstance(error, errors.Forbidden) and any(c.get("reason") == "NamespaceTerminating" for c in causes)


def _ref(pod: dict[str, Any]) -> tuple[str, str]:
    return pod["metadata"].get("namespace") or "default", pod["metadata"]["name"]


class Drainer:
    """One drain's pods, grace period and deadline; `evict` and `delete` return kubectl's error
    messages (empty: every pod is gone). Output lines are written whole, one thread at a time."""

    def __init__(self, client: Any, *, grace_period: int, timeout: float,
                 retry: float = EVICTION_RETRY, poll: float = POLL_INTERVAL) -> None:
        self.client = client
        self.grace_period = grace_period
        self.timeout = timeout
        self.timeout_text = go_duration(timeout)
        self.retry, self.poll = retry, poll
        self._deadline = None if timeout <= 0 else time.monotonic() + timeout
        self._output = threading.Lock()
        # set when the drain is given up (Ctrl-C): every thread ends at its next look, so the pool's
        # shutdown does not wait for pods retried forever (`--timeout 0`)
        self._stopped = threading.Event()

    def _say(self, text: str, *, err: bool = False) -> None:
        with self._output:
            click.echo(text, err=err)

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _pause(self, seconds: float) -> None:
        """Sleep, but never past the deadline (the next look at the clock then reports it) and
        not once the drain is given up."""
        if self._deadline is not None:
            seconds = min(seconds, max(0.0, self._deadline - time.monotonic()))
        self._stopped.wait(seconds)

    def _delete_options(self) -> dict[str, Any]:
        return {"gracePeriodSeconds": self.grace_period} if self.grace_period >= 0 else {}

    # --- eviction: every pod in its own thread ------------------------------------------------------

    def evict(self, pods: list[dict[str, Any]]) -> list[str]:
        """Evict every pod at once and wait for each to be gone; the errors in the order they came."""
        return self._each(pods, self._evict_one)

    def _each(self, pods: list[dict[str, Any]], work: Callable[[dict[str, Any]], str | None]) -> list[str]:
        if not pods:
            return []
        found: list[str] = []
        pool = futures.ThreadPoolExecutor(max_workers=len(pods), thread_name_prefix="drain")
        try:
            for done in futures.as_completed([pool.submit(work, pod) for pod in pods]):
                message = done.result()
                if message:
                    found.append(message)
        finally:
            self._stopped.set()  # normally all done already; on Ctrl-C, the threads stop retrying
            pool.shutdown(wait=True, cancel_futures=True)
        return found

    def _evict_one(self, pod: dict[str, Any]) -> str | None:
        namespace, name = _ref(pod)
        active = pod
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace},
                "deleteOptions": self._delete_options()}
        while not self._stopped.is_set():
            self._say(f"evicting pod {namespace}/{name}")
            if self._expired():
                return f'error when evicting pods/"{name}" -n "{namespace}": global timeout reached: {self.timeout_text}'
            try:
                self.client.request("POST", f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", json=body)
                break
            except errors.NotFound:
                return None  # gone already: nothing to wait for (kubectl prints nothing either)
            except errors.TooManyRequests as exc:
                self._say(f'error when evicting pods/"{name}" -n "{namespace}" (will retry after '
                          f"{go_duration(self.retry)}): {exc.message}", err=True)
                self._pause(self.retry)
            except errors.ApiError as exc:
                if not _terminating_namespace(exc):
                    return f'error when evicting pods/"{name}" -n "{namespace}": {exc.message}'
                if active["metadata"].get("deletionTimestamp"):
                    break  # being deleted with its namespace: an eviction cannot succeed, but it goes
                self._say(f'error when evicting pod "{name}" from terminating namespace "{namespace}" (will retry '
                          f"after {go_duration(self.retry)}): {exc.message}", err=True)
                self._pause(self.retry)
            try:
                active = self.client.get("v1", "pods", name, namespace=namespace)
            except errors.ApiError:
                pass  # kubectl too evicts with the pod it had
        else:
            return None  # given up: the caller is leaving
        pending = self._wait_gone([active], "evicted")
        if isinstance(pending, str):
            return f'error when waiting for pod "{name}" in namespace "{namespace}" to terminate: {pending}'
        return None

    # --- deletion (--disable-eviction) ----------------------------------------------------------------

    def delete(self, pods: list[dict[str, Any]]) -> list[str]:
        """DELETE each pod (a failure other than NotFound stops the drain there), then wait for all."""
        options = self._delete_options()
        for pod in pods:
            namespace, name = _ref(pod)
            try:
                self.client.delete("v1", "pods", name, namespace=namespace,
                                   grace_period_seconds=options.get("gracePeriodSeconds"))
            except errors.NotFound:
                continue
            except errors.ApiError as exc:
                return [exc.message]
        pending = self._wait_gone(pods, "deleted")
        return [pending] if isinstance(pending, str) else []

    # --- waiting --------------------------------------------------------------------------------------

    def _wait_gone(self, pods: list[dict[str, Any]], verb: str) -> str | None:
        """Poll until each pod is gone (reported `pod/NAME evicted|deleted` as kubectl does); an error
        message at the deadline."""
        waiting = list(pods)
        while not self._stopped.is_set():
            still: list[dict[str, Any]] = []
            for pod in waiting:
                namespace, name = _ref(pod)
                try:
                    found = self.client.get("v1", "pods", name, namespace=namespace)
                except errors.NotFound:
                    found = None
                except errors.ApiError as exc:
                    return exc.message
                if found is None or found["metadata"].get("uid") != pod["metadata"].get("uid"):
                    self._say(f"pod/{name} {verb}")
                    continue
                still.append(pod)
            waiting = still
            if not waiting:
                return None
            if self._expired():
                return "context deadline exceeded"  # kubectl 1.32's words here (its poll's context error)
            self._pause(self.poll)
        return None
