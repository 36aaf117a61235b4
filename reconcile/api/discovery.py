"""Discovery documents, legacy and aggregated, computed from the registry.

kubectl prefers the aggregated form (one request for every group); kopf and the Python client read the
legacy `APIGroupList` / `APIResourceList` forms. Both are derived from the same `Resource`s so they never
disagree. The shapes are in the wire notes §2.
"""

from __future__ import annotations

from typing import Any

from reconcile.api import registry
from reconcile.core import errors

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUBRESOURCE_VERBS = ["get", "patch", "update"]
AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_SCALE_KIND = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
# Subresources served by code for particular built-in kinds: (group, plural) -> [(name, verbs, kind)]
# (kind: "Kind" in the resource's own group version, or "group/version/Kind").
_EXTRA_SUBRESOURCES: dict[tuple[str, str], list[tuple[str, list[str], str]]] = {
    ("", "pods"): [("log", ["get"], "Pod"), ("binding", ["create"], "Binding"),
                   ("eviction", ["create"], "policy/v1/Eviction")],
    ("", "serviceaccounts"): [("token", ["create"], "authentication.k8s.io/v1/TokenRequest")],
}
# Built-in kinds that are only created, never stored (the reviews, answered by `reviews`), so clients
# that list and watch every resource (the garbage collector, the namespace controller) leave them be.
_CREATE_ONLY = frozenset({
    ("authorization.k8s.io", "selfsubjectaccessreviews"), ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"), ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"), ("authentication.k8s.io", "tokenreviews"),
})


# Built-in kinds that are only read, never stored (NodeMetrics, PodMetrics, answered by `resourcemetrics`).
_READ_ONLY = frozenset({("metrics.k8s.io", "nodes"), ("metrics.k8s.io", "pods")})


def resource_verbs(res: registry.Resource) -> list[str]:
    """The verbs a resource answers."""
    if res.builtin and (res.group, res.plural) in _CREATE_ONLY:
        return ["create"]
    if res.builtin and (res.group, res.plural) in _READ_ONLY:
        return ["get", "list"]
    return VERBS


def api_versions(*, server_address: str = "127.0.0.1:6443") -> dict[str, Any]:
    """`GET /api` in legacy form."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_order(reg: registry.Registry) -> list[str]:
    """Built-in groups first (in a stable order), then the CRD groups by name."""
    builtin = {r.group for r in reg.resources() if r.builtin}
    groups = [g for g in reg.group_versions() if g]
    return sorted(groups, key=lambda g: (g not in builtin, g))


def api_group_list(reg: registry.Registry) -> dict[str, Any]:
    """`GET /apis` in legacy form: every named group with its versions, preferred first."""
    versions = reg.group_versions()
    groups = []
    for group in _group_order(reg):
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions[group]]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(reg: registry.Registry, group: str) -> dict[str, Any]:
    """`GET /apis/{group}`."""
    versions = reg.group_versions().get(group)
    if not versions or not group:
        raise errors.no_such_resource()
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries,
            "preferredVersion": entries[0]}


def _in_gv(reg: registry.Registry, group: str, version: str) -> list[registry.Resource]:
    return sorted((r for r in reg.resources() if r.group == group and r.version == version), key=lambda r: r.plural)


def _subresources(res: registry.Resource) -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, verbs, responseKind) for each subresource of `res`."""
    own = {"group": res.group, "version": res.version, "kind": res.kind}
    out: list[tuple[str, list[str], dict[str, str]]] = []
    if res.has_status:
        out.append(("status", SUBRESOURCE_VERBS, own))
    if res.scale is not None:
        out.append(("scale", SUBRESOURCE_VERBS, _SCALE_KIND))
    if res.builtin:
        for name, verbs, kind in _EXTRA_SUBRESOURCES.get((res.group, res.plural), []):
            group, version, kind = kind.rsplit("/", 2) if "/" in kind else (res.group, res.version, kind)
            out.append((name, verbs, {"group": group, "version": version, "kind": kind}))
    return out


def api_resource_list(reg: registry.Registry, group: str, version: str) -> dict[str, Any]:
    """`GET /api/v1` or `GET /apis/{group}/{version}`; kopf derives subresources from `plural/sub` entries."""
    found = _in_gv(reg, group, version)
    if not found:
        raise errors.no_such_resource()
    resources: list[dict[str, Any]] = []
    for res in found:
        entry: dict[str, Any] = {
            "name": res.plural,
            "singularName": res.singular,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": resource_verbs(res),
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if res.categories:
            entry["categories"] = list(res.categories)
        resources.append(entry)
        for name, verbs, kind in _subresources(res):
            sub: dict[str, Any] = {"name": f"{res.plural}/{name}", "singularName": "", "namespaced": res.namespaced,
                                   "kind": kind["kind"], "verbs": verbs}
            if (kind["group"], kind["version"]) != (res.group, res.version):
                sub["group"], sub["version"] = kind["group"], kind["version"]
            resources.append(sub)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _aggregated_resource(res: registry.Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": res.plural,
        "responseKind": {"group": res.group, "version": res.version, "kind": res.kind},
        "scope": "Namespaced" if res.namespaced else "Cluster",
        "singularResource": res.singular,
        "verbs": resource_verbs(res),
    }
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    subs = [{"subresource": name, "responseKind": kind, "verbs": verbs} for name, verbs, kind in _subresources(res)]
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated_discovery(reg: registry.Registry, *, core: bool) -> dict[str, Any]:
    """`GET /api` (core=True) or `GET /apis` (core=False) answered as an APIGroupDiscoveryList."""
    versions = reg.group_versions()
    groups = [""] if core else _group_order(reg)
    items = []
    for group in groups:
        if group not in versions:
            continue
        entries = [
            {"version": v, "resources": [_aggregated_resource(r) for r in _in_gv(reg, group, v)],
             "freshness": "Current"}
            for v in versions[group]
        ]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": entries})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
