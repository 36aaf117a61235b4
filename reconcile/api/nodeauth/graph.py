"""The node authorizer's graph: which objects each node may reach through the pods bound to it.

Upstream's plugin/pkg/auth/authorizer/node graph, with its edges kept as indexes:

    node <- pod                        a pod with spec.nodeName
    node <- pod <- secret | configmap | pvc | serviceaccount   what the pod references
    node <- pod <- pvc <- pv           a PV whose claimRef is a claim a pod on the node uses
    node <- pod <- pvc <- pv <- secret the secrets a kubelet reads to mount that PV
    node <- pv                         ours: a `reconcile.dev/docker-volume` PV pinned to the node,
                                       whose Docker volume that node's agent holds and reclaims

`reachable(node, kind, namespace, name)` is the question the authorizer asks. The graph is updated
one object at a time (`set_pod`, `remove_pod`, `set_pv`, `remove_pv`) from the API server's watch
caches, so a decision costs a few dictionary lookups whatever the size of the cluster.

Invariants (kept by the four update methods, the only writers):
- `_pods[(ns, name)]` is (node, refs) of every bound pod the graph was told of, refs as
  `references.pod_references` computed them;
- `_holders[ref][node]` is the number of pods in `_pods` on `node` whose refs contain `ref`
  (entries at zero are removed);
- `_pv_claims[pv]` / `_pv_secrets[pv]` hold what `references.pv_references` found for each PV,
  and `_pvs_by_claim` / `_pvs_by_secret` are their exact inverses;
- `_pv_homes[pv]` is the node a Docker-volume PV lives on (`references.pv_home`), whether or not
  it has a claim (a Released volume has none a pod uses, and its node still reclaims it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconcile.api.nodeauth import references
from reconcile.api.nodeauth.references import CONFIGMAP, POD, PV, PVC, SECRET, SERVICEACCOUNT, Ref

KINDS = (POD, SECRET, CONFIGMAP, PVC, PV, SERVICEACCOUNT)


class Graph:
    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._pods: dict[tuple[str, str], tuple[str, frozenset[Ref]]] = {}
        self._holders: dict[Ref, dict[str, int]] = {}
        self._pv_claims: dict[str, tuple[str, str]] = {}
        self._pv_secrets: dict[str, frozenset[Ref]] = {}
        self._pvs_by_claim: dict[tuple[str, str], set[str]] = {}
        self._pvs_by_secret: dict[Ref, set[str]] = {}
        self._pv_homes: dict[str, str] = {}

    # --- updates ---

    def set_pod(self, pod: dict[str, Any]) -> None:
        """A pod was stored: (re)place its edges. An unbound pod has none (upstream: no node yet)."""
        metadata = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
        spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
        key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        node = spec.get("nodeName")
        if not isinstance(node, str) or not node or not key[1]:
            self.remove_pod(*key)
            return
        refs = references.pod_references(pod)
        if self._pods.get(key) == (node, refs):
            return  # a status update: nothing the graph reads changed
        self.remove_pod(*key)
        self._pods[key] = (node, refs)
        for ref in refs:
            holders = self._holders.setdefault(ref, {})
            holders[node] = holders.get(node, 0) + 1

    def remove_pod(self, namespace: str, name: str) -> None:
        found = self._pods.pop((namespace, name), None)
        if found is None:
            return
        node, refs = found
        for ref in refs:
            holders = self._holders[ref]
            holders[node] -= 1
            if holders[node] == 0:
                del holders[node]
                if not holders:
                    del self._holders[ref]

    def set_pv(self, pv: dict[str, Any]) -> None:
        metadata = pv.get("metadata") if isinstance(pv.get("metadata"), dict) else {}
        name = str(metadata.get("name") or "")
        self.remove_pv(name)
        home = references.pv_home(pv)
        if name and home:
            self._pv_homes[name] = home
        claim, secrets = references.pv_references(pv)
        if not name or claim is None:
            return
        self._pv_claims[name] = claim
        self._pvs_by_claim.setdefault(claim, set()).add(name)
        self._pv_secrets[name] = secrets
        for secret in secrets:
            self._pvs_by_secret.setdefault(secret, set()).add(name)

    def remove_pv(self, name: str) -> None:
        self._pv_homes.pop(name, None)
        claim = self._pv_claims.pop(name, None)
        if claim is not None:
            _discard(self._pvs_by_claim, claim, name)
        for secret in self._pv_secrets.pop(name, ()):
            _discard(self._pvs_by_secret, secret, name)

    def reset(self, pods: Iterable[dict[str, Any]], pvs: Iterable[dict[str, Any]]) -> None:
        """Start over from everything stored now (the caches' first list, or a relist)."""
        self._clear()
        for pod in pods:
            self.set_pod(pod)
        for pv in pvs:
            self.set_pv(pv)

    # --- the question ---

    def reachable(self, node: str, kind: str, namespace: str, name: str) -> bool:
        """Is there a path from the object to `node`? (upstream's hasPathFrom)"""
        if not node:
            return False
        if kind == POD:
            bound = self._pods.get((namespace, name))
            return bound is not None and bound[0] == node
        if kind == PV:
            return self._pv_reachable(node, name)
        ref = (kind, namespace, name)
        if node in self._holders.get(ref, ()):
            return True
        if kind == SECRET:
            return any(self._pv_reachable(node, pv) for pv in self._pvs_by_secret.get(ref, ()))
        return False

    def _pv_reachable(self, node: str, pv: str) -> bool:
        claim = self._pv_claims.get(pv)
        return claim is not None and node in self._holders.get((PVC, *claim), ())

    def pv_home(self, name: str) -> str | None:
        """The node a Docker-volume PV lives on, or None."""
        return self._pv_homes.get(name)

    def pod_node(self, namespace: str, name: str) -> str | None:
        bound = self._pods.get((namespace, name))
        return bound[0] if bound else None

    def __len__(self) -> int:
        return len(self._pods)


def _discard(index: dict[Any, set[str]], key: Any, value: str) -> None:
    found = index.get(key)
    if found is not None:
        found.discard(value)
        if not found:
            del index[key]
