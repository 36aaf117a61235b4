"""`kubectl debug` against a server without ephemeral containers: a clean error, never a crash."""

from __future__ import annotations

import uuid

from tests import support
from tests.compat.conftest import kubectl


def test_kubectl_debug_of_a_pod_gets_the_servers_404_not_a_panic(api_server: str, module_env: dict[str, str]) -> None:
    """kubectl 1.32 reads `details.name` of the 404 that `pods/NAME/ephemeralcontainers` gets here
    (the subresource is not served); a Status without `details` made it panic (exit 2)."""
    ns = f"debug-{uuid.uuid4().hex[:6]}"
    with support.connection(api_server).http_client() as http:
        assert http.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": ns}}).status_code == 201
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "target"},
               "spec": {"containers": [{"name": "app", "image": "busybox:stable"}]}}
        assert http.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
        missing = http.patch(f"/api/v1/namespaces/{ns}/pods/target/ephemeralcontainers", content=b"{}",
                             headers={"Content-Type": "application/strategic-merge-patch+json"})
        assert missing.status_code == 404 and missing.json()["details"] == {}, missing.text
    done = kubectl(module_env, "debug", "-n", ns, "target", "--image=busybox:stable", "--attach=false")
    err = done.stderr.decode()
    assert done.returncode == 1 and "panic" not in err, (done.returncode, err)
    assert "the server could not find the requested resource" in err, err
