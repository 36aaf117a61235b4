"""The ServiceAccount admission plugin (upstream's plugin/pkg/admission/serviceaccount), for pods.

On a pod's create:
- `spec.serviceAccountName` defaults to `default` (and the deprecated `spec.serviceAccount`
  follows it, as upstream's v1 conversion writes it);
- the ServiceAccount must exist in the pod's namespace: looked up in the cache, then by a
  consistent read, retried for `default` (which the ServiceAccount controller creates moments after
  its namespace) about ten times over one to two seconds, as upstream; otherwise 403
  `error looking up service account NS/NAME: serviceaccount "NAME" not found`;
- unless `automountServiceAccountToken` is false on the pod (or, when the pod does not say, on the
  ServiceAccount), the projected volume `kube-api-access-XXXXX` (a bound token of 3607 s at `token`,
  `ca.crt` of the `kube-root-ca.crt` ConfigMap, the namespace from the downward API; mode 0644) is
  added and mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in every init
  container and container that mounts nothing there already;
- the ServiceAccount's `imagePullSecrets` are copied when the pod names none.

Where it differs from upstream (README): an API server that does not sign tokens (no
--service-account-signing-key-file: the API-only servers of tests, which run no controller-manager
to make `default` accounts) neither mounts tokens nor requires the `default` account to exist; a
pod naming any other account still needs it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from reconcile.api import admission

DEFAULT_NAME = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_EXPIRATION = 3607  # upstream's WarnOnlyBoundTokenExpirationSeconds
DEFAULT_MODE = 0o644
DEFAULT_ATTEMPTS = 10  # lookups of `default` before the pod is refused
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand


class Getter(Protocol):
    def __call__(self, namespace: str, name: str, *, fresh: bool) -> Awaitable[dict[str, Any] | None]:
        """The ServiceAccount (from the cache, or `fresh`: a consistent read), or None."""
        ...


def token_volume(name: str) -> dict[str, Any]:
    """Upstream's createVolume: the projected volume of the pod's token, the cluster CA and its namespace."""
    return {"name": name, "projected": {"defaultMode": DEFAULT_MODE, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def should_automount(service_account: dict[str, Any], pod: dict[str, Any]) -> bool:
    """The pod's `automountServiceAccountToken` decides, else the ServiceAccount's, else yes."""
    pod_says = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if isinstance(pod_says, bool):
        return pod_says
    sa_says = service_account.get("automountServiceAccountToken")
    return sa_says if isinstance(sa_says, bool) else True


def mount_token(pod: dict[str, Any], *, choose: Callable[[], str]) -> None:
    """Upstream's mountServiceAccountToken: reuse a `kube-api-access-*` volume the pod has, else add one
    when some container needs it; every container without a mount at MOUNT_PATH gets one."""
    spec = pod.setdefault("spec", {})
    volumes = spec.get("volumes") or []
    existing = next((v.get("name") for v in volumes if isinstance(v, dict)
                     and str(v.get("name", "")).startswith(VOLUME_PREFIX)), None)
    name = existing or choose()
    needed = False
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            if not isinstance(container, dict):
                continue
            mounts = container.get("volumeMounts") or []
            if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}]
            needed = True
    if existing is None and needed:
        spec["volumes"] = [*volumes, token_volume(name)]


def _random_name() -> str:
    return VOLUME_PREFIX + "".join(random.choice(_NAME_ALPHABET) for _ in range(5))


class ServiceAccount(admission.Plugin):
    name = "ServiceAccount"

    def __init__(self, get: Getter, *, mount_tokens: bool,
                 retry_interval: Callable[[], float] = lambda: random.uniform(0.1, 0.2),
                 choose_name: Callable[[], str] = _random_name) -> None:
        self._get = get
        self.mount_tokens = mount_tokens  # the server signs tokens: mount them, and require `default`
        self._interval = retry_interval
        self._choose = choose_name

    async def mutate(self, attributes: admission.Attributes) -> None:
        resource = attributes.resource
        if (resource.group, resource.plural) != ("", "pods") or not resource.builtin:
            return
        if attributes.operation != admission.CREATE or attributes.subresource or attributes.obj is None:
            return
        pod = attributes.obj
        if MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {}):
            return
        spec = pod.setdefault("spec", {})
        if not isinstance(spec, dict):
            return  # schema validation names the field
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_NAME
        if not isinstance(name, str):
            return
        spec["serviceAccountName"] = name
        if "serviceAccount" in spec:
            spec["serviceAccount"] = name
        namespace = attributes.namespace or ""
        service_account = await self._lookup(namespace, name)
        if service_account is None:
            if name == DEFAULT_NAME and not self.mount_tokens:
                return  # see the module's docstring: no controller makes `default` beside such a server
            raise admission.forbidden(attributes, f"error looking up service account {namespace}/{name}: "
                                                  f'serviceaccount "{name}" not found')
        if self.mount_tokens and should_automount(service_account, pod):
            mount_token(pod, choose=self._choose)
        pull = service_account.get("imagePullSecrets") or []
        if not spec.get("imagePullSecrets") and pull:
            spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in pull if isinstance(s, dict)]

    async def _lookup(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Upstream's getServiceAccount: the cache, then live reads (ten for `default`)."""
        found = await self._get(namespace, name, fresh=False)
        if found is not None:
            return found
        attempts = DEFAULT_ATTEMPTS if name == DEFAULT_NAME and self.mount_tokens else 1
        interval = self._interval()
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(interval)  # upstream's retry of a live lookup, not a test's synchronisation
            found = await self._get(namespace, name, fresh=True)
            if found is not None:
                return found
        return None
