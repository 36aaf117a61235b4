"""The node agent's second line of defence: before it creates a pod's sandbox, the agent refuses
what Pod Security admission should have refused, in case a pod got past it (written around the
API server, admitted before its namespace was labelled, or by a bug).

Refused unless the pod's namespace enforces the `privileged` Pod Security level:
- privileged containers (`securityContext.privileged: true`), init containers included;
- host namespaces (`hostNetwork`, `hostPID`, `hostIPC`);
- hostPath volumes outside the node's allow-list (`reconcile node join --allowed-host-paths`),
  compared after resolving `..` and symbolic links, component by component (`/srv` allows
  `/srv/data`, never `/srvx`). Links are resolved on the agent's host: with a Docker engine on
  another machine, keep the allow-list to paths that are not links there.

The namespace's level is its `pod-security.kubernetes.io/enforce` label, read from the API; a
namespace without a valid one enforces the node's default level (`--pod-security-default`), which
is `privileged` as the API server's own default, so node and admission agree out of the box. A
refused pod is rejected as the kubelet rejects a pod at admission: a Warning Event (reason
`Forbidden`) and status phase `Failed`, reason `Forbidden`, message `Pod was rejected: ...`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
PRIVILEGED = "privileged"
LEVELS = ("privileged", "baseline", "restricted")
REASON = "Forbidden"


@dataclass(frozen=True)
class GuardSettings:
    allowed_host_paths: tuple[str, ...] = ()  # host path prefixes any pod may mount
    default_level: str = PRIVILEGED  # the level of a namespace without a valid enforce label


def _quote_all(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _plural(word: str, count: int) -> str:
    return word if count == 1 else word + "s"


def _resolved(path: str) -> str:
    return os.path.realpath(os.path.normpath(path))


def host_path_allowed(path: str, allowed: Sequence[str]) -> bool:
    """Whether `path` is one of the allowed prefixes or below one (both as written, normalized,
    and with symbolic links resolved: a link out of an allowed directory does not count)."""
    if not os.path.isabs(path):
        return False
    written, real = os.path.normpath(path), _resolved(path)
    return any(_within(written, os.path.normpath(prefix)) and _within(real, _resolved(prefix))
               for prefix in allowed if os.path.isabs(prefix))


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def problems(pod: Mapping[str, Any], *, allowed_host_paths: Sequence[str] = ()) -> list[str]:
    """What about `pod` needs the privileged level (empty: nothing). Pure."""
    spec = pod.get("spec") or {}
    found = []
    containers = [c for key in ("initContainers", "containers", "ephemeralContainers")
                  for c in spec.get(key) or [] if isinstance(c, Mapping)]
    privileged = [str(c.get("name")) for c in containers
                  if ((c.get("securityContext") or {}).get("privileged")) is True]
    if privileged:
        found.append(f"privileged ({_plural('container', len(privileged))} {_quote_all(privileged)} "
                     "must not set securityContext.privileged=true)")
    namespaces = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field) is True]
    if namespaces:
        found.append(f"host namespaces ({', '.join(namespaces)})")
    outside = [(str(v.get("name")), str((v.get("hostPath") or {}).get("path") or ""))
               for v in spec.get("volumes") or [] if isinstance(v, Mapping) and v.get("hostPath") is not None]
    outside = [(name, path) for name, path in outside if not host_path_allowed(path, allowed_host_paths)]
    if outside:
        listed = ", ".join(f'"{name}" ({path})' for name, path in outside)
        where = ", ".join(allowed_host_paths) if allowed_host_paths else "none"
        found.append(f"hostPath volumes ({_plural('volume', len(outside))} {listed} outside the node's allowed "
                     f"host paths: {where})")
    return found


def namespace_level(namespace: Mapping[str, Any] | None, default_level: str) -> str:
    """The enforce level a namespace's labels give (a missing or invalid label: the default)."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(ENFORCE_LABEL)
    return level if level in LEVELS else default_level


def refusal_message(pod: Mapping[str, Any], found: Sequence[str], level: str) -> str:
    metadata = pod.get("metadata") or {}
    return (f'the node refuses pod "{metadata.get("name")}": {"; ".join(found)}; namespace '
            f'"{metadata.get("namespace")}" enforces Pod Security level "{level}", and only "privileged" allows this')


class Guard:
    """Asks the API for the pod's namespace only when the pod needs the privileged level."""

    def __init__(self, client: aio.AsyncClient, settings: GuardSettings | None = None) -> None:
        self.client = client
        self.settings = settings or GuardSettings()

    async def refusal(self, pod: Mapping[str, Any]) -> str | None:
        """Why the node will not run `pod` (None: it may). API errors propagate: the sync retries."""
        found = problems(pod, allowed_host_paths=self.settings.allowed_host_paths)
        if not found:
            return None
        name = (pod.get("metadata") or {}).get("namespace") or "default"
        namespace = await self.client.get("v1", "namespaces", name)
        level = namespace_level(namespace, self.settings.default_level)
        if level == PRIVILEGED:
            return None
        return refusal_message(pod, found, level)
