"""The ConfigMap `kube-public/cluster-info` that `node join` discovers the cluster CA from, as
`kubeadm init` publishes it: a kubeconfig with the server and `certificate-authority-data` and no
credentials, readable by `system:anonymous` (a Role and RoleBinding in kube-public for exactly that
ConfigMap, kubeadm's `kubeadm:bootstrap-signer-clusterinfo`). Nothing in it is secret; `node join`
trusts the CA in it only after checking `--ca-hash`.

Differences from kubeadm: no `jws-kubeconfig-<token-id>` signatures (the bootstrap signer): the
pinned hash is what authenticates the CA, so `--ca-hash` is required (kubeadm allows
`--discovery-token-unsafe-skip-ca-verification` with JWS alone).
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

from reconcile.core import errors

NAMESPACE, NAME = "kube-public", "cluster-info"
ROLE = "kubeadm:bootstrap-signer-clusterinfo"
RBAC = "rbac.authorization.k8s.io/v1"


def objects(server: str, ca_pem: bytes) -> list[tuple[str, str, dict[str, Any]]]:
    """(api_version, plural, object) to create in kube-public."""
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "users": None, "contexts": None,
                  "current-context": "",
                  "clusters": [{"name": "", "cluster": {"server": server,
                                                         "certificate-authority-data": base64.b64encode(ca_pem).decode()}}]}
    meta = {"namespace": NAMESPACE}
    return [
        ("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, **meta},
                              "data": {"kubeconfig": yaml.safe_dump(kubeconfig, sort_keys=False)}}),
        (RBAC, "roles", {"apiVersion": RBAC, "kind": "Role", "metadata": {"name": ROLE, **meta},
                         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [NAME],
                                    "verbs": ["get"]}]}),
        (RBAC, "rolebindings", {"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": ROLE, **meta},
                                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
                                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                              "name": "system:anonymous"}]}),
    ]


def publish(client: Any, server: str, ca_pem: bytes) -> None:
    """Create or update cluster-info and its anonymous read grant (a sync `reconcile.client` Client)."""
    for api_version, plural, obj in objects(server, ca_pem):
        try:
            client.create(api_version, plural, obj, namespace=NAMESPACE)
        except errors.AlreadyExists:
            current = client.get(api_version, plural, obj["metadata"]["name"], namespace=NAMESPACE)
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            client.replace(api_version, plural, obj, namespace=NAMESPACE)
