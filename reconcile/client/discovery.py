"""Discovery: which resources the server serves, and turning `po`/`deploy`/`widgets.example.com` into one.

The flow is written once as a generator that yields `RequestSpec`s and receives responses
(sans-I/O), so the sync and async clients drive the same code.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx

from reconcile.client import wire
from reconcile.core import errors

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_ACCEPT = f"{AGGREGATED},application/json"


@dataclass(frozen=True)
class ApiResource:
    """One servable resource, as discovery describes it."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`deployments.apps`, or `pods` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


DiscoveryFlow = Generator[wire.RequestSpec, httpx.Response, list[ApiResource]]


def flow() -> DiscoveryFlow:
    """Aggregated discovery from `/api` and `/apis`, else the legacy per-group-version documents."""
    resources: list[ApiResource] = []
    for root in ("/api", "/apis"):
        response = yield wire.RequestSpec("GET", root, headers={"Accept": AGGREGATED_ACCEPT})
        body = wire.decode(response)
        if _is_aggregated(response, body):
            resources.extend(parse_aggregated(body))
            continue
        for group_version in _legacy_group_versions(root, body):
            response = yield wire.RequestSpec("GET", wire.group_version_path(group_version))
            try:
                resources.extend(parse_resource_list(wire.decode(response)))
            except errors.NotFound:  # a group that vanished between the two calls (CRD deleted)
                continue
    return resources


def _is_aggregated(response: httpx.Response, body: Any) -> bool:
    content_type = response.headers.get("content-type", "").replace(" ", "")
    return "as=APIGroupDiscoveryList" in content_type or (
        isinstance(body, dict) and body.get("kind") == "APIGroupDiscoveryList"
    )


def _legacy_group_versions(root: str, body: dict[str, Any]) -> list[str]:
    """Preferred version of each group only, as kubectl does, so a kind is not listed twice."""
    if root == "/api":
        return list(body.get("versions") or [])[:1]
    result = []
    for group in body.get("groups") or []:
        preferred = (group.get("preferredVersion") or {}).get("groupVersion")
        versions = [v.get("groupVersion") for v in group.get("versions") or []]
        chosen = preferred or (versions[0] if versions else None)
        if chosen:
            result.append(chosen)
    return result


def parse_aggregated(body: dict[str, Any]) -> list[ApiResource]:
    """An `APIGroupDiscoveryList`: the first version of each group is its preferred one."""
    out: list[ApiResource] = []
    for item in body.get("items") or []:
        group = (item.get("metadata") or {}).get("name") or ""
        versions = item.get("versions") or []
        for entry in versions[:1]:
            for res in entry.get("resources") or []:
                kind = (res.get("responseKind") or {}).get("kind", "")
                out.append(
                    ApiResource(
                        group=group,
                        version=entry.get("version", ""),
                        plural=res.get("resource", ""),
                        singular=res.get("singularResource") or kind.lower(),
                        kind=kind,
                        namespaced=res.get("scope") == "Namespaced",
                        short_names=tuple(res.get("shortNames") or ()),
                        verbs=tuple(res.get("verbs") or ()),
                        categories=tuple(res.get("categories") or ()),
                        subresources=tuple(s.get("subresource", "") for s in res.get("subresources") or ()),
                    )
                )
    return out


def parse_resource_list(body: dict[str, Any]) -> list[ApiResource]:
    """A legacy `APIResourceList`; `plural/sub` entries become subresources of their parent."""
    group, version = wire.split_api_version(body.get("groupVersion", ""))
    entries = body.get("resources") or []
    subs: dict[str, list[str]] = {}
    for res in entries:
        name = res.get("name", "")
        if "/" in name:
            parent, _, sub = name.partition("/")
            subs.setdefault(parent, []).append(sub)
    out = []
    for res in entries:
        name = res.get("name", "")
        if "/" in name:
            continue
        out.append(
            ApiResource(
                group=group,
                version=version,
                plural=name,
                singular=res.get("singularName") or res.get("kind", "").lower(),
                kind=res.get("kind", ""),
                namespaced=bool(res.get("namespaced")),
                short_names=tuple(res.get("shortNames") or ()),
                verbs=tuple(res.get("verbs") or ()),
                categories=tuple(res.get("categories") or ()),
                subresources=tuple(subs.get(name, ())),
            )
        )
    return out


def resolve(resources: list[ApiResource], name: str) -> ApiResource:
    """Match plural, singular, kind, short name, or `plural.group` / `kind.group`; case-insensitive.

    Ties go to the core group then to the order discovery listed them, as kubectl's
    priority does, so `events` means core/v1 events.
    """
    wanted = name.strip().lower()
    if not wanted:
        raise errors.NotFound('the server doesn\'t have a resource type ""')

    def names(res: ApiResource) -> set[str]:
        return {
            res.plural.lower(),
            res.singular.lower(),
            res.kind.lower(),
            *(s.lower() for s in res.short_names),
        }

    for res in resources:
        if wanted in names(res) and not res.group:
            return res
    for res in resources:
        if wanted in names(res):
            return res
    # "deployments.apps", "deployment.apps", "Deployment.apps", "widgets.example.com"
    resource_part, _, group_part = wanted.partition(".")
    if group_part:
        for res in resources:
            if res.group.lower() == group_part and resource_part in names(res):
                return res
            # "deployments.v1.apps" (plural.version.group), as kubectl accepts
            version, _, group = group_part.partition(".")
            if (
                group
                and res.group.lower() == group
                and res.version.lower() == version
                and resource_part in names(res)
            ):
                return res
    raise errors.NotFound(f'the server doesn\'t have a resource type "{name}"')


def for_kind(resources: list[ApiResource], api_version: str, kind: str) -> ApiResource:
    """The resource that serves objects of `kind` in `api_version`."""
    group, version = wire.split_api_version(api_version)
    for res in resources:
        if res.group == group and res.kind == kind:
            if res.version == version:
                return res
    # discovery lists only preferred versions; the same plural serves the other versions
    for res in resources:
        if res.group == group and res.kind == kind:
            return ApiResource(**{**res.__dict__, "version": version})
    raise errors.NotFound(f'no matches for kind "{kind}" in version "{api_version}"')
