"""What the HPA controller reads of pods and PodMetrics (`controllers.hpainputs`): requests summed
over containers (none when one container sets none), readiness and start times, usage per pod
summed over containers, and metrics-server's window durations."""

from __future__ import annotations

from reconcile.controllers import hpainputs


def _pod(*requests: str | None, ready: str = "True") -> dict:
    containers = [{"name": f"c{i}", "resources": {"requests": {"cpu": r}} if r else {}} for i, r in enumerate(requests)]
    return {"metadata": {"name": "p"}, "spec": {"containers": containers},
            "status": {"phase": "Running", "startTime": "2026-01-01T00:00:00Z",
                       "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:00:10Z"}]}}


def test_pod_inputs() -> None:
    pod = hpainputs.pod_inputs(_pod("100m", "0.5"), "cpu")
    assert (pod.request, pod.ready, pod.ready_since - pod.started) == (600, True, 10.0)
    missing = hpainputs.pod_inputs(_pod("100m", None), "cpu")
    assert (missing.request, missing.unrequested) == (None, "c1")
    assert hpainputs.pod_inputs({"metadata": {"name": "new"}}, "cpu").phase == "Pending"
    assert hpainputs.pod_inputs(_pod("1", ready="False"), "cpu").ready is False


def test_samples_sum_containers_and_read_windows() -> None:
    item = {"metadata": {"name": "p"}, "timestamp": "2026-01-01T00:01:00Z", "window": "15.002s",
            "containers": [{"name": "a", "usage": {"cpu": "250m"}}, {"name": "b", "usage": {"cpu": "1500000n"}}]}
    found = hpainputs.samples([item, {"metadata": {"name": "q"}, "containers": [{"usage": {}}]}], "cpu")
    assert set(found) == {"p"}, "a pod with a container reporting no cpu has no sample"
    assert found["p"].usage == 252 and abs(found["p"].window - 15.002) < 1e-9
    assert hpainputs.window_seconds("1m0s") == 60 and hpainputs.window_seconds("bogus") == 0
    assert hpainputs.format_milli(2000) == "2" and hpainputs.format_milli(252) == "252m"
