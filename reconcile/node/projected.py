"""The content of projected and downwardAPI volumes, and the ServiceAccount tokens they carry.

A projected volume merges its sources into one directory (written by `atomicdir`):
- `serviceAccountToken`: a token of the pod's ServiceAccount, bound to the pod (TokenRequest with
  `boundObjectRef` to it; the API server refuses a pod of another account), for `audience`
  (default: the API server's own audiences) and `expirationSeconds` (default 3600). Tokens are
  kept per pod and source and asked for again, as the kubelet's token manager does, once 80% of
  their lifetime has passed or they are 24 hours old;
- `configMap`, `secret`: keys (or `items`) of an object in the pod's namespace, `optional` as for
  volumes of their own;
- `downwardAPI`: `fieldRef` (name, namespace, uid, labels and annotations, one or all) and
  `resourceFieldRef` (a container's requests and limits).
`defaultMode` (0644) applies to every file unless an item gives its `mode`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from reconcile.core import meta
from reconcile.node import atomicdir, environment

DEFAULT_MODE = 0o644
DEFAULT_EXPIRATION = 3600
MAX_TTL = 24 * 3600  # a token older than this is renewed whatever its expiry (the kubelet's maxTTL)
REFRESH_FRACTION = 0.8

# (namespace, ServiceAccount name, TokenRequest body) -> the answered TokenRequest
RequestToken = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


class SourceError(Exception):
    """A source cannot be rendered yet (a missing object or key, a token the server refused)."""


@dataclass
class Token:
    value: bytes
    issued: float  # wall-clock seconds
    expires: float

    def due(self) -> float:
        """When it must be asked for again: 80% of its lifetime, or 24 h, whichever comes first."""
        lifetime = max(0.0, self.expires - self.issued)
        return min(self.issued + lifetime * REFRESH_FRACTION, self.issued + MAX_TTL)


class Tokens:
    """The tokens of the pods on this node, by (pod uid, volume, source index)."""

    def __init__(self, request: RequestToken | None, *, clock: Callable[[], float] = time.time) -> None:
        self.request = request
        self.clock = clock
        self._tokens: dict[tuple[str, str, int], Token] = {}

    async def get(self, pod: dict[str, Any], volume: str, index: int, source: dict[str, Any]) -> Token:
        metadata = pod.get("metadata") or {}
        key = (str(metadata.get("uid")), volume, index)
        held = self._tokens.get(key)
        if held is not None and self.clock() < held.due():
            return held
        if self.request is None:
            raise SourceError("this node agent cannot request ServiceAccount tokens")
        seconds = int(source.get("expirationSeconds") or DEFAULT_EXPIRATION)
        spec: dict[str, Any] = {"expirationSeconds": seconds,
                                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": metadata.get("name"),
                                                   "uid": metadata.get("uid")}}
        if source.get("audience"):
            spec["audiences"] = [source["audience"]]
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        now = self.clock()
        try:
            answer = await self.request(str(metadata.get("namespace") or "default"), account, body)
            status = answer.get("status") or {}
            token = str(status["token"])
            expires = meta.parse_time(status["expirationTimestamp"]).timestamp()
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"token request for serviceaccount {account} answered without a token: {exc}") from None
        except Exception as exc:  # an API error: the container waits and the agent tries again
            raise SourceError(f"failed to fetch token for serviceaccount {account}: {exc}") from None
        fresh = Token(token.encode(), now, expires)
        self._tokens[key] = fresh
        return fresh

    def due(self, uid: str) -> float | None:
        """The earliest refresh time of a pod's tokens (None: it holds none)."""
        times = [t.due() for (owner, _, _), t in self._tokens.items() if owner == uid]
        return min(times) if times else None

    def forget(self, uid: str) -> None:
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]


def field_file(pod: dict[str, Any], field_path: str) -> str:
    """A downwardAPI volume file: as an env var's fieldRef, and the whole label or annotation map as
    `key="value"` lines (upstream's FormatMap)."""
    metadata = pod.get("metadata") or {}
    if field_path in ("metadata.labels", "metadata.annotations"):
        values = metadata.get(field_path.split(".", 1)[1]) or {}
        return "\n".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(values.items()))
    try:
        return environment.field_value(pod, field_path, host_ip="")
    except environment.ConfigError as exc:
        raise SourceError(str(exc)) from None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def downward_files(pod: dict[str, Any], items: list[dict[str, Any]], mode: int) -> atomicdir.Files:
    files: atomicdir.Files = {}
    containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    for item in items:
        item_mode = int(item.get("mode", mode))
        if item.get("fieldRef"):
            content = field_file(pod, item["fieldRef"].get("fieldPath", ""))
        elif item.get("resourceFieldRef"):
            ref = item["resourceFieldRef"]
            container = containers.get(ref.get("containerName"))
            if container is None:
                raise SourceError(f'resourceFieldRef: container "{ref.get("containerName")}" not found')
            content = environment.resource_field(container, ref)
        else:
            raise SourceError(f"downwardAPI item {item.get('path')}: needs fieldRef or resourceFieldRef")
        files[str(item.get("path", ""))] = (content.encode(), item_mode)
    return files


def object_files(obj: dict[str, Any] | None, plural: str, source: dict[str, Any], mode: int) -> atomicdir.Files:
    """The files of a configMap or secret source (None: the object does not exist)."""
    kind = "configmap" if plural == "configmaps" else "secret"
    name = source.get("name") or ""
    if obj is None:
        if source.get("optional"):
            return {}
        raise SourceError(f'{kind} "{name}" not found')
    data = environment.decoded_data(obj, plural)
    if not source.get("items"):
        return {key: (value, mode) for key, value in data.items()}
    files: atomicdir.Files = {}
    for item in source["items"]:
        if item.get("key") not in data:
            if source.get("optional"):
                continue
            raise SourceError(f"{kind} {name}: no key {item.get('key')}")
        files[str(item.get("path", ""))] = (data[item["key"]], int(item.get("mode", mode)))
    return files


async def projected_files(pod: dict[str, Any], volume: dict[str, Any], fetch: environment.Fetch,
                          tokens: Tokens) -> atomicdir.Files:
    """Every file of one projected volume."""
    spec = volume.get("projected") or {}
    mode = int(spec.get("defaultMode", DEFAULT_MODE))
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    files: atomicdir.Files = {}
    for index, source in enumerate(spec.get("sources") or []):
        if source.get("serviceAccountToken") is not None:
            token_source = source["serviceAccountToken"]
            token = await tokens.get(pod, volume["name"], index, token_source)
            files[str(token_source.get("path", ""))] = (token.value, mode)
        elif source.get("configMap") is not None:
            ref = source["configMap"]
            files.update(object_files(await fetch("configmaps", namespace, ref.get("name") or ""), "configmaps",
                                      ref, mode))
        elif source.get("secret") is not None:
            ref = source["secret"]
            files.update(object_files(await fetch("secrets", namespace, ref.get("name") or ""), "secrets", ref, mode))
        elif source.get("downwardAPI") is not None:
            files.update(downward_files(pod, source["downwardAPI"].get("items") or [], mode))
        else:
            raise SourceError(f"volume {volume['name']}: unsupported projection {sorted(source)}")
    return files
