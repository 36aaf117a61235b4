"""PersistentVolumes, claims and StorageClasses through a real API server: the default class, the
storage admission plugins, and validation errors in the Status shape naming the field."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api import helpers

PVS = "/api/v1/persistentvolumes"
CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


def claims(ns: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{ns}/persistentvolumeclaims"
    return f"{base}/{name}" if name else base


def claim(name: str, *, size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, **spec}}


def volume(name: str, *, size: str = "1Gi", **spec: Any) -> dict:
    body = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": f"/tmp/{name}"}}}
    body["spec"].update(spec)
    return body


def _causes(response: httpx.Response) -> list[tuple[str, str]]:
    body = response.json()
    assert body["kind"] == "Status", body
    return [(c.get("field", ""), c["message"]) for c in body["details"]["causes"]]


def test_default_class_exists_and_claims_get_it(client: httpx.Client, ns: str) -> None:
    local = client.get(f"{CLASSES}/local").json()
    assert local["provisioner"] == "reconcile.dev/docker-volume"
    assert local["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert local["volumeBindingMode"] == "WaitForFirstConsumer"
    created = client.post(claims(ns), json=claim("c1")).json()
    assert created["spec"]["storageClassName"] == "local"
    assert created["status"]["phase"] == "Pending"
    assert created["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    opted_out = client.post(claims(ns), json=claim("c2", storageClassName="")).json()
    assert opted_out["spec"]["storageClassName"] == ""


def test_volume_gets_protection_and_pending(client: httpx.Client) -> None:
    name = helpers.unique("pv")
    created = client.post(PVS, json=volume(name)).json()
    assert created["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert created["status"] == {"phase": "Pending"}
    assert created["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    client.patch(f"{PVS}/{name}", json={"metadata": {"finalizers": None}}, headers=helpers.MERGE)
    client.delete(f"{PVS}/{name}")


def test_bad_volumes_name_the_field(client: httpx.Client) -> None:
    cases = [
        (volume("bad-1", hostPath=None), "spec", "Required value: must specify a volume type"),
        (volume("bad-2", local={"path": "/data"}), "spec.local", "Forbidden: may not specify more than 1 volume type"),
        (volume("bad-3", hostPath={"path": "relative"}), "spec.hostPath.path", "must be an absolute path"),
        (volume("bad-4", accessModes=["ReadWriteOncePod", "ReadWriteOnce"]), "spec.accessModes", "ReadWriteOncePod"),
        (volume("bad-5", capacity={}), "spec.capacity", "Required value"),
        (volume("bad-6", hostPath=None, local={"path": "/d"}), "spec.nodeAffinity", "Local volume requires node affinity"),
        (volume("bad-7", hostPath=None, csi={"driver": "evil.example/x", "volumeHandle": "v"}), "spec.csi.driver",
         "Unsupported value"),
    ]
    for body, field, message in cases:
        if body["spec"].get("hostPath") is None:
            body["spec"].pop("hostPath", None)
        response = client.post(PVS, json=body)
        assert response.status_code == 422, (field, response.text)
        assert any(f == field and message in m for f, m in _causes(response)), (field, response.text)


def test_volume_source_is_immutable(client: httpx.Client) -> None:
    name = helpers.unique("pv")
    client.post(PVS, json=volume(name)).raise_for_status()
    response = client.patch(f"{PVS}/{name}", json={"spec": {"hostPath": {"path": "/etc"}}}, headers=helpers.MERGE)
    assert response.status_code == 422
    assert ("spec.persistentvolumesource", "Forbidden: spec.persistentvolumesource is forbidden once set") \
        in _causes(response)
    client.patch(f"{PVS}/{name}", json={"metadata": {"finalizers": None}}, headers=helpers.MERGE)
    client.delete(f"{PVS}/{name}")


def test_claim_spec_is_immutable_and_never_shrinks(client: httpx.Client, ns: str) -> None:
    client.post(claims(ns), json=claim("c", size="2Gi")).raise_for_status()
    changed = client.patch(claims(ns, "c"), json={"spec": {"accessModes": ["ReadWriteMany"]}}, headers=helpers.MERGE)
    assert changed.status_code == 422
    assert _causes(changed)[0][0] == "spec"
    assert "spec is immutable after creation except resources.requests" in _causes(changed)[0][1]
    # bound (status written as the binder does): a shrink is refused, naming the field
    status = {"status": {"phase": "Bound", "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"]}}
    client.patch(f"{claims(ns, 'c')}/status", json=status, headers=helpers.MERGE).raise_for_status()
    shrink = client.patch(claims(ns, "c"), json={"spec": {"resources": {"requests": {"storage": "1Gi"}}}},
                          headers=helpers.MERGE)
    assert shrink.status_code == 422
    assert ("spec.resources.requests.storage", "Forbidden: field can not be less than previous value") \
        in _causes(shrink)
    grow = client.patch(claims(ns, "c"), json={"spec": {"resources": {"requests": {"storage": "3Gi"}}}},
                        headers=helpers.MERGE)
    assert grow.status_code == 200, grow.text  # class `local` allows expansion


def test_expansion_needs_a_class_that_allows_it(client: httpx.Client, ns: str) -> None:
    name = helpers.unique("fixed")
    client.post(CLASSES, json={"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                               "provisioner": "reconcile.dev/docker-volume"}).raise_for_status()
    client.post(claims(ns), json=claim("c", storageClassName=name)).raise_for_status()
    client.patch(f"{claims(ns, 'c')}/status", json={"status": {"phase": "Bound"}},
                 headers=helpers.MERGE).raise_for_status()
    grow = client.patch(claims(ns, "c"), json={"spec": {"resources": {"requests": {"storage": "5Gi"}}}},
                        headers=helpers.MERGE)
    assert grow.status_code == 403
    assert "only dynamically provisioned pvc can be resized" in grow.json()["message"]
    client.delete(f"{CLASSES}/{name}")


def test_storage_class_rules(client: httpx.Client) -> None:
    name = helpers.unique("sc")
    created = client.post(CLASSES, json={"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                         "metadata": {"name": name}, "provisioner": "example.com/p"}).json()
    assert (created["reclaimPolicy"], created["volumeBindingMode"]) == ("Delete", "Immediate")
    for patch, field in (({"provisioner": "other.example/p"}, "provisioner"),
                         ({"parameters": {"a": "b"}}, "parameters"),
                         ({"reclaimPolicy": "Retain"}, "reclaimPolicy"),
                         ({"volumeBindingMode": "WaitForFirstConsumer"}, "volumeBindingMode")):
        response = client.patch(f"{CLASSES}/{name}", json=patch, headers=helpers.MERGE)
        assert response.status_code == 422, response.text
        assert _causes(response)[0][0] == field
    missing = client.post(CLASSES, json={"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                         "metadata": {"name": helpers.unique("sc")}})
    assert missing.status_code == 422
    assert "provisioner" in missing.text
    client.delete(f"{CLASSES}/{name}")


def test_pod_sub_paths_are_validated(client: httpx.Client, ns: str) -> None:
    for sub_path, message in (("../..", "must not contain '..'"), ("/etc", "must be a relative path"),
                              ("a/../../b", "must not contain '..'")):
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "x:1", "volumeMounts": [
                {"name": "v", "mountPath": "/m", "subPath": sub_path}]}],
            "volumes": [{"name": "v", "emptyDir": {}}]}}
        response = client.post(f"/api/v1/namespaces/{ns}/pods", json=body)
        assert response.status_code == 422, response.text
        assert (("spec.containers[0].volumeMounts[0].subPath", f'Invalid value: "{sub_path}": {message}')
                in _causes(response))


def test_kubectl_get_storageclass(kube_env: dict[str, str]) -> None:
    import subprocess
    out = subprocess.run(["kubectl", "get", "storageclass"], env=kube_env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION",
                              "AGE"]
    assert any(r.split()[:6] == ["local", "(default)", "reconcile.dev/docker-volume", "Delete",
                                 "WaitForFirstConsumer", "true"] for r in rows), out.stdout
