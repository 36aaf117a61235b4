"""The PodSecurity admission plugin: namespace labels pick a Pod Security Standards policy, and
pods and pod templates are held to it (upstream's pod-security-admission `admission` package).

- Pods (create, and updates that change an image or the containers): `enforce` refuses with 403
  `pods "x" is forbidden: violates PodSecurity "baseline:latest": ...`; `warn` adds a warning;
  `audit` adds the audit annotation `pod-security.kubernetes.io/audit-violations`.
- Workloads with a pod template (Deployments, ReplicaSets, ... as upstream's list): warn and
  audit only, so a Deployment is never refused for what its pods will be refused for.
- Namespaces: invalid labels are refused (422); a stricter enforce level answers with warnings
  naming the existing pods that would violate it (at most 3000 pods, about one second of work).
- Exemptions by user name, namespace and runtime class, and the defaults for unlabelled
  namespaces, come from a `PodSecurityConfiguration` (in the admission configuration file).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconcile.api import admission
from reconcile.api import podsecurity as pss
from reconcile.core import errors

NAMESPACE_MAX_PODS = 3000  # upstream's namespaceMaxPodsToCheck
NAMESPACE_CHECK_SECONDS = 1.0  # upstream's namespacePodCheckTimeout
# Pod subresources that cannot change what the policy looks at (upstream's ignoredPodSubresources).
IGNORED_POD_SUBRESOURCES = frozenset({"exec", "attach", "binding", "eviction", "log", "portforward", "proxy",
                                      "status"})
# Where each workload kind keeps its pod template (upstream's DefaultPodSpecExtractor).
TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
    ("", "replicationcontrollers"): ("spec", "template"),
    ("", "podtemplates"): ("template",),
}
CONFIG_KINDS = ("PodSecurityConfiguration",)
CONFIG_GROUP = "pod-security.admission.config.k8s.io/"


@dataclass(frozen=True)
class Configuration:
    """Upstream's PodSecurityConfiguration: defaults for unlabelled namespaces, and exemptions."""

    defaults: pss.Policy = pss.Policy()
    exempt_usernames: frozenset[str] = frozenset()
    exempt_namespaces: frozenset[str] = frozenset()
    exempt_runtime_classes: frozenset[str] = frozenset()


def parse_configuration(doc: Mapping[str, Any]) -> Configuration:
    """A PodSecurityConfiguration document (v1, v1beta1 or v1alpha1); ValueError says what is wrong."""
    api_version = str(doc.get("apiVersion") or "")
    if doc.get("kind") not in CONFIG_KINDS or not api_version.startswith(CONFIG_GROUP):
        raise ValueError(f"expected a {CONFIG_GROUP}v1 PodSecurityConfiguration, got {api_version} {doc.get('kind')}")
    defaults = doc.get("defaults") or {}
    modes = {}
    for mode in pss.MODES:
        try:
            level = pss.parse_level(str(defaults.get(mode) or pss.PRIVILEGED))
            minor = pss.parse_version(str(defaults.get(f"{mode}-version") or "latest"))
        except ValueError as exc:
            raise ValueError(f"defaults.{mode}: {exc}") from None
        modes[mode] = pss.LevelVersion(level, minor)
    exemptions = doc.get("exemptions") or {}

    def names(key: str) -> frozenset[str]:
        values = exemptions.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"exemptions.{key} must be a list of names")
        return frozenset(values)

    return Configuration(pss.Policy(modes["enforce"], modes["audit"], modes["warn"]),
                         names("usernames"), names("namespaces"), names("runtimeClasses"))


def _annotate(attributes: admission.Attributes, key: str, value: str) -> None:
    attributes.audit_annotations[pss.LABEL_PREFIX + key] = value


def _template(obj: Mapping[str, Any] | None, path: tuple[str, ...]) -> Mapping[str, Any] | None:
    found: Any = obj
    for part in path:
        found = found.get(part) if isinstance(found, Mapping) else None
    return found if isinstance(found, Mapping) else None


@dataclass
class _Evaluations:
    """Results by level and version, so enforce, audit and warn at one level evaluate once."""

    meta: Mapping[str, Any]
    spec: Mapping[str, Any]
    done: dict[pss.LevelVersion, pss.Result] = field(default_factory=dict)

    def __call__(self, level_version: pss.LevelVersion) -> pss.Result:
        if level_version not in self.done:
            self.done[level_version] = pss.evaluate(level_version, self.meta, self.spec)
        return self.done[level_version]


class PodSecurity(admission.Plugin):
    name = "PodSecurity"

    def __init__(self, namespace: Callable[[str], Awaitable[dict[str, Any] | None]],
                 pods: Callable[[str], Awaitable[list[dict[str, Any]]]], *,
                 configuration: Configuration | None = None, max_pods: int = NAMESPACE_MAX_PODS,
                 check_seconds: float = NAMESPACE_CHECK_SECONDS) -> None:
        self._namespace = namespace  # name -> the Namespace, or None
        self._pods = pods  # namespace -> its pods (shared objects: read only)
        self.config = configuration or Configuration()
        self.max_pods = max_pods
        self.check_seconds = check_seconds

    def policy(self, labels: Mapping[str, str] | None) -> tuple[pss.Policy, list[dict[str, str]]]:
        return pss.policy_from_labels(labels, self.config.defaults)

    async def validate(self, attributes: admission.Attributes) -> None:
        if attributes.operation not in (admission.CREATE, admission.UPDATE):
            return
        resource = attributes.resource
        key = (resource.group, resource.plural)
        if key == ("", "namespaces"):
            await self._validate_namespace(attributes)
        elif key == ("", "pods"):
            await self._validate_pod(attributes)
        elif key in TEMPLATES and not attributes.subresource:
            await self._validate_workload(attributes, TEMPLATES[key])

    # --- pods ---------------------------------------------------------------------------------

    async def _validate_pod(self, attributes: admission.Attributes) -> None:
        if attributes.subresource in IGNORED_POD_SUBRESOURCES:
            return
        if self._exempt(attributes):
            return
        namespace = await self._namespace(attributes.namespace or "")
        if namespace is None:
            raise errors.InternalError(f'failed to lookup namespace "{attributes.namespace}"')
        policy, causes = self.policy((namespace.get("metadata") or {}).get("labels"))
        if not causes and policy.fully_privileged():
            _annotate(attributes, "enforce-policy", str(pss.LevelVersion(pss.PRIVILEGED)))
            return
        pod = attributes.obj or {}
        if attributes.operation == admission.UPDATE and not significant_update(pod, attributes.old or {}):
            return
        self._evaluate(attributes, policy, causes, pod.get("metadata") or {}, pod.get("spec") or {}, enforce=True)

    # --- workloads ----------------------------------------------------------------------------

    async def _validate_workload(self, attributes: admission.Attributes, path: tuple[str, ...]) -> None:
        if self._exempt(attributes):
            return
        namespace = await self._namespace(attributes.namespace or "")
        if namespace is None:
            _annotate(attributes, "error", f'failed to lookup namespace "{attributes.namespace}"')
            return
        policy, causes = self.policy((namespace.get("metadata") or {}).get("labels"))
        if not causes and policy.warn.level == pss.PRIVILEGED and policy.audit.level == pss.PRIVILEGED:
            return
        template = _template(attributes.obj, path)
        if template is None:
            return
        self._evaluate(attributes, policy, causes, template.get("metadata") or {}, template.get("spec") or {},
                       enforce=False)

    def _exempt(self, attributes: admission.Attributes) -> bool:
        if attributes.namespace and attributes.namespace in self.config.exempt_namespaces:
            _annotate(attributes, "exempt", "namespace")
            return True
        if attributes.user.name and attributes.user.name in self.config.exempt_usernames:
            _annotate(attributes, "exempt", "user")
            return True
        return False

    def _evaluate(self, attributes: admission.Attributes, policy: pss.Policy, causes: list[dict[str, str]],
                  meta: Mapping[str, Any], spec: Mapping[str, Any], *, enforce: bool) -> None:
        """Upstream's EvaluatePod: enforce (pods only), then audit, then warn unless refused."""
        runtime_class = spec.get("runtimeClassName")
        if runtime_class and runtime_class in self.config.exempt_runtime_classes:
            _annotate(attributes, "exempt", "runtimeClass")
            return
        if causes:
            _annotate(attributes, "error", "Failed to parse policy: " + ", ".join(
                f"{c['field']}: {c['message']}" for c in causes))
        results = _Evaluations(meta, spec)
        refusal: errors.ApiError | None = None
        if enforce:
            _annotate(attributes, "enforce-policy", str(policy.enforce))
            result = results(policy.enforce)
            if not result.allowed:
                refusal = admission.forbidden(
                    attributes, f'violates PodSecurity "{policy.enforce}": {result.detail()}')
        audit = results(policy.audit)
        if not audit.allowed:
            _annotate(attributes, "audit-violations", f'would violate PodSecurity "{policy.audit}": {audit.detail()}')
        if refusal is not None:
            raise refusal  # no warnings on a request refused anyway
        warn = results(policy.warn)
        if not warn.allowed:
            attributes.warnings.append(f'would violate PodSecurity "{policy.warn}": {warn.detail()}')

    # --- namespaces ---------------------------------------------------------------------------

    async def _validate_namespace(self, attributes: admission.Attributes) -> None:
        if attributes.subresource:
            return
        obj = attributes.obj or {}
        name = str((obj.get("metadata") or {}).get("name") or attributes.name)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        policy, causes = self.policy(labels)
        if attributes.operation == admission.CREATE:
            if causes:
                raise errors.Invalid.for_object("Namespace", name, causes)
            self._exempt_namespace_warning(attributes, name, policy, labels)
            return
        old_policy, old_causes = self.policy(((attributes.old or {}).get("metadata") or {}).get("labels"))
        if causes and (not old_causes or causes != old_causes):
            raise errors.Invalid.for_object("Namespace", name, causes)
        if policy.enforce == old_policy.enforce or policy.enforce.level == pss.PRIVILEGED:
            return
        if policy.enforce.minor == old_policy.enforce.minor and \
                pss.strictness(policy.enforce.level) <= pss.strictness(old_policy.enforce.level):
            return  # relaxed at the same version: nothing running can newly violate it
        if name in self.config.exempt_namespaces:
            self._exempt_namespace_warning(attributes, name, policy, labels)
            return
        attributes.warnings.extend(self.check_existing(name, await self._pods(name), policy.enforce))

    def _exempt_namespace_warning(self, attributes: admission.Attributes, name: str, policy: pss.Policy,
                                  labels: Mapping[str, str]) -> None:
        if name not in self.config.exempt_namespaces or policy.fully_privileged() or \
                policy.equivalent(self.config.defaults):
            return
        shown = []
        for mode, level_version in (("enforce", policy.enforce), ("audit", policy.audit), ("warn", policy.warn)):
            if level_version.level != pss.PRIVILEGED and (pss.label(mode) in labels or
                                                          pss.label(mode, version=True) in labels):
                shown.append(f"{mode}={level_version}")
        attributes.warnings.append(f'namespace "{name}" is exempt from Pod Security, and the policy '
                                   f'({", ".join(shown)}) will be ignored')

    def check_existing(self, namespace: str, pods: Iterable[Mapping[str, Any]],
                       enforce: pss.LevelVersion) -> list[str]:
        """Upstream's EvaluatePodsInNamespace: warnings for the pods a new enforce level would refuse,
        one line per distinct violation (`web-1 (and 2 other pods): privileged`), replicas of one
        controller checked after every controller had one pod checked."""
        ordered = self._prioritized(pods)
        total = len(ordered)
        ordered = ordered[: self.max_pods]
        deadline = time.monotonic() + self.check_seconds
        by_reason: dict[str, list[Any]] = {}  # reason -> [first pod name, count]
        checked = len(ordered)
        for index, pod in enumerate(ordered):
            result = pss.evaluate(enforce, pod.get("metadata") or {}, pod.get("spec") or {})
            if not result.allowed:
                reason = result.reason()
                name = str((pod.get("metadata") or {}).get("name") or "")
                seen = by_reason.setdefault(reason, [name, 0])
                seen[0] = min(seen[0], name)
                seen[1] += 1
            if time.monotonic() > deadline:
                checked = index + 1
                break
        warnings = []
        if checked < total:
            warnings.append(f"new PodSecurity enforce level only checked against the first {checked} of {total} "
                            "existing pods")
        if by_reason:
            warnings.append(f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
                            f'"{enforce}"')
        lines = []
        for reason, (first, count) in by_reason.items():
            others = "" if count == 1 else " (and 1 other pod)" if count == 2 else f" (and {count - 1} other pods)"
            lines.append(f"{first}{others}: {reason}")
        return warnings + sorted(lines)

    def _prioritized(self, pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        first: list[Mapping[str, Any]] = []
        later: list[Mapping[str, Any]] = []
        controllers: set[str] = set()
        for pod in pods:
            if (pod.get("spec") or {}).get("runtimeClassName") in self.config.exempt_runtime_classes:
                continue
            owner = next((ref for ref in (pod.get("metadata") or {}).get("ownerReferences") or []
                          if isinstance(ref, Mapping) and ref.get("controller")), None)
            if owner is None:
                first.append(pod)
            elif owner.get("uid") in controllers:
                later.append(pod)
            else:
                controllers.add(str(owner.get("uid")))
                first.append(pod)
        return first + later


def significant_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether a pod update can change the policy's verdict: only images (and, for ephemeral
    containers, new ones) are mutable in what the checks read."""
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for key in ("containers", "initContainers"):
        new_list, old_list = new_spec.get(key) or [], old_spec.get(key) or []
        if len(new_list) != len(old_list):
            return True
        if any((a or {}).get("image") != (b or {}).get("image") for a, b in zip(new_list, old_list, strict=True)):
            return True
    old_ephemeral = {(c or {}).get("name"): c for c in old_spec.get("ephemeralContainers") or []}
    for container in new_spec.get("ephemeralContainers") or []:
        previous = old_ephemeral.get((container or {}).get("name"))
        if previous is None or (previous or {}).get("image") != (container or {}).get("image"):
            return True
    return False
