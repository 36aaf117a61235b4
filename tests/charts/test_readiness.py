"""What --wait counts as ready, per kind (pure functions of the live object)."""

from __future__ import annotations

import pytest

from reconcile.charting import readiness


@pytest.mark.parametrize(("obj", "ready"), [
    ({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
      "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2}}, True),
    ({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
      "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2}}, False),
    ({"kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 2},
      "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 1}}, False),
    # a rolling update whose new pod cannot start: the old one is still available, the new revision is not
    ({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 1},
      "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}}, False),
    ({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 1},
      "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1,
                 "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}}, False),
    ({"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 1},
      "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "a", "updateRevision": "a"}}, True),
    ({"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 1},
      "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "a", "updateRevision": "b"}}, False),
    ({"kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}, True),
    ({"kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}, False),
    ({"kind": "Pod", "status": {"phase": "Succeeded"}}, True),
    ({"kind": "Service", "spec": {"clusterIP": "10.0.0.1"}}, True),
    ({"kind": "Service", "spec": {}}, False),
    ({"kind": "Service", "spec": {"clusterIP": "None"}}, True),
    ({"kind": "Service", "spec": {"type": "ExternalName"}}, True),
    ({"kind": "Service", "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1"}}, False),
    ({"kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}}, True),
    ({"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}, False),
    ({"kind": "ConfigMap"}, True),
])
def test_ready(obj: dict, ready: bool) -> None:
    assert readiness.ready(obj)[0] is ready


@pytest.mark.parametrize(("obj", "outcome"), [
    ({"kind": "Pod", "status": {"phase": "Running"}}, None),
    ({"kind": "Pod", "status": {"phase": "Succeeded"}}, "succeeded"),
    ({"kind": "Pod", "status": {"phase": "Failed"}}, "failed"),
    ({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True"}]}}, "failed"),
    ({"kind": "ConfigMap"}, "succeeded"),
])
def test_hook_outcome(obj: dict, outcome: str | None) -> None:
    assert readiness.hook_outcome(obj) == outcome
