"""The Website operator end to end, with the test kit: real API server, the operator in a thread."""

from __future__ import annotations

import uuid
from pathlib import Path

import reconcile as rc
from reconcile import testing

HERE = Path(__file__).resolve().parents[1]
AV, PLURAL = "examples.reconcile.dev/v1", "websites"


def _condition(site: dict, type_: str) -> dict | None:
    return next((c for c in site.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def test_website_renders_children_reports_ready_and_cleans_up(reconcile_cluster: testing.Cluster) -> None:
    cluster = reconcile_cluster
    client = cluster.client
    cluster.apply(HERE / "crd.yaml")
    ns = f"web-{uuid.uuid4().hex[:6]}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    with testing.OperatorRunner(HERE / "handlers.py", server=cluster.client_config, namespace=ns):
        cluster.apply(HERE / "website.yaml", namespace=ns)

        def rendered() -> dict | None:
            site = client.get(AV, PLURAL, "hello", namespace=ns)
            cond = _condition(site, "Rendered")
            return site if cond and cond["status"] == "True" and site["status"].get("render") else None

        site = testing.wait_for(rendered, what="the Website rendered")
        assert site["status"]["render"]["children"] == ["ConfigMap/hello-content", "Deployment/hello", "Service/hello"]
        deploy = client.get("apps/v1", "deployments", "hello", namespace=ns)
        assert deploy["spec"]["replicas"] == 2
        assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
        owner = deploy["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"], owner["blockOwnerDeletion"]) == (
            "Website", "hello", True, True)
        page = client.get("v1", "configmaps", "hello-content", namespace=ns)
        assert page["data"]["index.html"] == "<h1>Hello from reconcile</h1>\n"
        service = client.get("v1", "services", "hello", namespace=ns)
        assert service["spec"]["ports"][0]["port"] == 80

        testing.wait_for(lambda: (_condition(client.get(AV, PLURAL, "hello", namespace=ns), "Ready") or {})
                         .get("status") == "False", what="Ready=False while no replica is ready")
        # Standing in for the deployment controller and node agents: the replicas become ready.
        client.patch("apps/v1", "deployments", "hello", {"status": {"replicas": 2, "readyReplicas": 2}},
                     namespace=ns, subresource="status")

        def ready() -> dict | None:
            site = client.get(AV, PLURAL, "hello", namespace=ns)
            cond = _condition(site, "Ready")
            return site if cond and cond["status"] == "True" else None

        site = ready_site = testing.wait_for(ready, what="Ready=True")
        assert ready_site["status"]["readyReplicas"] == 2
        assert _condition(site, "Rendered")["status"] == "True"

        client.patch(AV, PLURAL, "hello", {"spec": {"content": "<h1>v2</h1>", "replicas": 3}}, namespace=ns)
        testing.wait_for(lambda: client.get("v1", "configmaps", "hello-content", namespace=ns)["data"]["index.html"]
                         == "<h1>v2</h1>", what="the page updated")
        testing.wait_for(lambda: client.get("apps/v1", "deployments", "hello", namespace=ns)["spec"]["replicas"] == 3)

        events = client.list("v1", "events", namespace=ns)["items"]
        assert any(e["reason"] == "Rendered" and e["involvedObject"]["name"] == "hello" for e in events)

        client.delete(AV, PLURAL, "hello", namespace=ns)

        def cleaned() -> bool:
            for api_version, plural, name in (("v1", "configmaps", "hello-content"), ("apps/v1", "deployments", "hello"),
                                              ("v1", "services", "hello"), (AV, PLURAL, "hello")):
                try:
                    client.get(api_version, plural, name, namespace=ns)
                    return False
                except rc.errors.NotFound:
                    continue
            return True

        testing.wait_for(cleaned, what="children and the Website deleted")
