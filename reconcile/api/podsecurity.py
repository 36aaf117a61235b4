"""Pod Security Standards: every baseline and restricted control, as pure functions over a pod's
metadata and spec (upstream's k8s.io/pod-security-admission `policy` and `api` packages).

A control has versions: `(minimum policy version, check)`; evaluating a level at a version runs,
of each control of that level (restricted includes baseline), the newest check not newer than the
version. Some restricted checks override a baseline one (restricted volumes replace the hostPath
check). A failed check gives a reason and a detail; a policy's message joins them, ordered by
check id (baseline ids first, then restricted), exactly as upstream so messages compare word for
word: `privileged (container "c" must not set securityContext.privileged=true), host namespaces
(hostNetwork=true)`.

Namespace labels pick the policy (`PolicyToEvaluate`): `pod-security.kubernetes.io/<mode>` and
`<mode>-version` for the modes enforce, audit and warn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from reconcile.core import errors

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
LATEST = None  # the version "latest": newer than any numbered one

Meta = Mapping[str, Any]
Spec = Mapping[str, Any]
Failure = tuple[str, str]  # (reason, detail)
CheckFn = Callable[[Meta, Spec], Failure | None]


# --- levels, versions, policies -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LevelVersion:
    level: str
    minor: int | None = LATEST  # v1.<minor>; None is latest

    def __str__(self) -> str:
        return f"{self.level}:{'latest' if self.minor is None else f'v1.{self.minor}'}"

    def equivalent(self, other: LevelVersion) -> bool:
        return (self.level == PRIVILEGED and other.level == PRIVILEGED) or self == other


@dataclass(frozen=True, slots=True)
class Policy:
    enforce: LevelVersion = LevelVersion(PRIVILEGED)
    audit: LevelVersion = LevelVersion(PRIVILEGED)
    warn: LevelVersion = LevelVersion(PRIVILEGED)

    def fully_privileged(self) -> bool:
        return self.enforce.level == self.audit.level == self.warn.level == PRIVILEGED

    def equivalent(self, other: Policy) -> bool:
        return (self.enforce.equivalent(other.enforce) and self.audit.equivalent(other.audit)
                and self.warn.equivalent(other.warn))


def strictness(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else -1


def parse_level(text: str) -> str:
    if text not in LEVELS:
        raise ValueError("must be one of privileged, baseline, restricted")
    return text


def parse_version(text: str) -> int | None:
    """`latest` or `v1.<minor>` (upstream's pattern: no leading zeros)."""
    if text == "latest":
        return LATEST
    digits = text[3:] if text.startswith("v1.") else ""
    if not digits.isascii() or not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
        raise ValueError('must be "latest" or "v1.x"')
    return int(digits)


def label(mode: str, *, version: bool = False) -> str:
    return f"{LABEL_PREFIX}{mode}{'-version' if version else ''}"


def policy_from_labels(labels: Mapping[str, str] | None, defaults: Policy = Policy()
                       ) -> tuple[Policy, list[dict[str, str]]]:
    """The policy a namespace's labels select over `defaults`, and the label errors (as causes).

    As upstream: a bad enforce level fails closed (restricted), bad audit and warn levels fail
    open (privileged), a bad version means latest; warn defaults to an enforce level set stricter
    than it (with its version, unless warn's version is set).
    """
    labels = labels or {}
    found: dict[str, LevelVersion] = {"enforce": defaults.enforce, "audit": defaults.audit, "warn": defaults.warn}
    causes: list[dict[str, str]] = []
    enforce_set = False
    for mode in MODES:
        current = found[mode]
        key = label(mode)
        if key in labels:
            try:
                current = replace(current, level=parse_level(labels[key]))
                enforce_set = enforce_set or mode == "enforce"
            except ValueError as exc:
                current = replace(current, level=RESTRICTED if mode == "enforce" else PRIVILEGED)
                causes.append(_label_cause(key, labels[key], str(exc)))
        vkey = label(mode, version=True)
        if vkey in labels:
            try:
                current = replace(current, minor=parse_version(labels[vkey]))
            except ValueError as exc:
                current = replace(current, minor=LATEST)
                causes.append(_label_cause(vkey, labels[vkey], str(exc)))
        found[mode] = current
    warn = found["warn"]
    if label("warn") not in labels and enforce_set and strictness(found["enforce"].level) > strictness(warn.level):
        warn = replace(warn, level=found["enforce"].level)
        if label("warn", version=True) not in labels:
            warn = replace(warn, minor=found["enforce"].minor)
    return Policy(found["enforce"], found["audit"], warn), causes


def _label_cause(key: str, value: str, why: str) -> dict[str, str]:
    return errors.cause(f"metadata.labels[{key}]", f"Invalid value: {_quote(value)}: {why}")


# --- helpers shared by the checks -----------------------------------------------------------------

def _quote(text: str) -> str:
    """Go's %q for the strings that occur here."""
    return json.dumps(text, ensure_ascii=False)


def _join_quote(items: Iterable[str]) -> str:
    items = list(items)
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _containers(spec: Spec) -> list[Mapping[str, Any]]:
    """Init containers, containers, then ephemeral containers (upstream's visit order)."""
    found: list[Mapping[str, Any]] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        found.extend(c for c in spec.get(key) or [] if isinstance(c, Mapping))
    return found


def _name(container: Mapping[str, Any]) -> str:
    return str(container.get("name") or "")


def _security(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return _dict(container.get("securityContext"))


def _pod_security(spec: Spec) -> Mapping[str, Any]:
    return _dict(spec.get("securityContext"))


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    setters = ["pod"] if pod_bad else []
    if containers:
        setters.append(f"{_plural('container', 'containers', len(containers))} {_join_quote(containers)}")
    return setters


def _windows(spec: Spec) -> bool:
    return _dict(spec.get("os")).get("name") == "windows"


def _user_namespaced(spec: Spec) -> bool:
    """hostUsers: false relaxes some restricted checks (since v1.35)."""
    return spec.get("hostUsers") is False


# --- baseline checks ------------------------------------------------------------------------------

def privileged(meta: Meta, spec: Spec) -> Failure | None:
    bad = [_name(c) for c in _containers(spec) if _security(c).get("privileged") is True]
    if bad:
        return ("privileged", f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
                              "must not set securityContext.privileged=true")
    return None


def host_namespaces(meta: Meta, spec: Spec) -> Failure | None:
    found = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field) is True]
    return ("host namespaces", ", ".join(found)) if found else None


def host_path_volumes(meta: Meta, spec: Spec) -> Failure | None:
    bad = [str(v.get("name") or "") for v in spec.get("volumes") or [] if isinstance(v, Mapping)
           and v.get("hostPath") is not None]
    if bad:
        return ("hostPath volumes", f"{_plural('volume', 'volumes', len(bad))} {_join_quote(bad)}")
    return None


def host_ports(meta: Meta, spec: Spec) -> Failure | None:
    bad: list[str] = []
    ports: set[str] = set()
    for container in _containers(spec):
        used = [p.get("hostPort") for p in container.get("ports") or [] if isinstance(p, Mapping) and p.get("hostPort")]
        if used:
            bad.append(_name(container))
            ports.update(str(p) for p in used)
    if bad:
        return ("hostPort", f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
                            f"{_plural('uses', 'use', len(bad))} {_plural('hostPort', 'hostPorts', len(ports))} "
                            f"{', '.join(sorted(ports))}")
    return None


def _probe_hosts(handler: Any) -> list[str]:
    handler = _dict(handler)
    return [str(_dict(handler.get(kind)).get("host")) for kind in ("httpGet", "tcpSocket")
            if _dict(handler.get(kind)).get("host")]


def host_probes_and_lifecycle(meta: Meta, spec: Spec) -> Failure | None:
    bad: set[str] = set()
    hosts: set[str] = set()
    for container in _containers(spec):
        lifecycle = _dict(container.get("lifecycle"))
        handlers = [container.get("livenessProbe"), container.get("readinessProbe"), container.get("startupProbe"),
                    lifecycle.get("postStart"), lifecycle.get("preStop")]
        for handler in handlers:
            found = _probe_hosts(handler)
            if found:
                bad.add(_name(container))
                hosts.update(found)
    if bad:
        return ("probe or lifecycle host",
                f"{_plural('container', 'containers', len(bad))} {_join_quote(sorted(bad))} "
                f"{_plural('uses', 'use', len(bad))} "
                f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {_join_quote(sorted(hosts))}")
    return None


BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def capabilities_baseline(meta: Meta, spec: Spec) -> Failure | None:
    bad: list[str] = []
    added: set[str] = set()
    for container in _containers(spec):
        capabilities = _security(container).get("capabilities")
        if capabilities is None:
            continue
        extra = [str(c) for c in _dict(capabilities).get("add") or [] if c not in BASELINE_CAPABILITIES]
        if extra:
            bad.append(_name(container))
            added.update(extra)
    if bad:
        return ("non-default capabilities", f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
                                            f"must not include {_join_quote(sorted(added))} in securityContext.capabilities.add")
    return None


_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def app_armor_profile(meta: Meta, spec: Spec) -> Failure | None:
    values: set[str] = set()
    pod_profile = _pod_security(spec).get("appArmorProfile")
    pod_bad = False
    if pod_profile is not None and _dict(pod_profile).get("type") not in ("RuntimeDefault", "Localhost"):
        pod_bad = True
        values.add(str(_dict(pod_profile).get("type") or ""))
    bad: list[str] = []
    for container in _containers(spec):
        profile = _security(container).get("appArmorProfile")
        if profile is not None and _dict(profile).get("type") not in ("RuntimeDefault", "Localhost"):
            bad.append(_name(container))
            values.add(str(_dict(profile).get("type") or ""))
    setters = _setters(pod_bad, bad)
    shown = sorted(values)
    annotations = sorted(
        f"{key}={_quote(str(value))}" for key, value in _dict(meta.get("annotations")).items()
        if key.startswith(_APPARMOR_ANNOTATION_PREFIX)
        and not (not value or value == "runtime/default" or str(value).startswith("localhost/")))
    if annotations:
        shown += annotations
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if setters:
        return (_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(shown)),
                f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(shown)}")
    return None


_SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES_1_0 | {"container_engine_t"}


def _selinux(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Meta, spec: Spec) -> Failure | None:
        types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(options: Mapping[str, Any]) -> bool:
            ok = True
            kind = str(options.get("type") or "")
            if kind not in allowed:
                ok = False
                types.add(kind)
            for field in ("user", "role"):
                if options.get(field):
                    ok = False
                    flags[field] = True
            return ok

        pod_options = _pod_security(spec).get("seLinuxOptions")
        pod_bad = pod_options is not None and not valid(_dict(pod_options))
        bad = [_name(c) for c in _containers(spec)
               if _security(c).get("seLinuxOptions") is not None and not valid(_dict(_security(c)["seLinuxOptions"]))]
        setters = _setters(pod_bad, bad)
        if not setters:
            return None
        data = []
        if types:
            data.append(f"{_plural('type', 'types', len(types))} {_join_quote(sorted(types))}")
        data += [f"{field} may not be set" for field in ("user", "role") if flags[field]]
        return ("seLinuxOptions",
                f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}")

    return check


def proc_mount(meta: Meta, spec: Spec) -> Failure | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for container in _containers(spec):
        mount = _security(container).get("procMount")
        if mount is not None and mount != "Default":
            bad.append(_name(container))
            kinds.add(str(mount))
    if bad:
        return ("procMount", f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
                             f"must not set securityContext.procMount to {_join_quote(sorted(kinds))}")
    return None


def proc_mount_1_35(meta: Meta, spec: Spec) -> Failure | None:
    return None if _user_namespaced(spec) else proc_mount(meta, spec)


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def seccomp_baseline_1_0(meta: Meta, spec: Spec) -> Failure | None:
    annotations = _dict(meta.get("annotations"))
    forbidden: set[str] = set()

    def valid(value: Any) -> bool:
        return value in ("runtime/default", "docker/default") or str(value).startswith("localhost/")

    keys = [_SECCOMP_POD_ANNOTATION] + [_SECCOMP_CONTAINER_ANNOTATION + _name(c) for c in _containers(spec)]
    for key in keys:
        if key in annotations and not valid(annotations[key]):
            forbidden.add(f"{key}={_quote(str(annotations[key]))}")
    if forbidden:
        return ("seccompProfile", f"forbidden {_plural('annotation', 'annotations', len(forbidden))} "
                                  f"{', '.join(sorted(forbidden))}")
    return None


def _seccomp_valid(profile: Any) -> bool:
    return _dict(profile).get("type") in ("Localhost", "RuntimeDefault")


def _seccomp(require: bool) -> CheckFn:
    """Baseline (1.19): no explicit Unconfined profile. Restricted (1.19): that, and every
    container has a RuntimeDefault or Localhost profile, its own or the pod's."""

    def check(meta: Meta, spec: Spec) -> Failure | None:
        values: set[str] = set()
        pod_profile = _pod_security(spec).get("seccompProfile")
        pod_bad = pod_profile is not None and not _seccomp_valid(pod_profile)
        pod_set = pod_profile is not None and not pod_bad
        if pod_bad:
            values.add(str(_dict(pod_profile).get("type") or ""))
        explicit: list[str] = []
        implicit: list[str] = []
        for container in _containers(spec):
            profile = _security(container).get("seccompProfile")
            if profile is not None:
                if not _seccomp_valid(profile):
                    explicit.append(_name(container))
                    values.add(str(_dict(profile).get("type") or ""))
            elif not pod_set:
                implicit.append(_name(container))
        setters = _setters(pod_bad, explicit)
        if setters:
            return ("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type "
                                      f"to {_join_quote(sorted(values))}")
        if require and implicit:
            return ("seccompProfile", f"pod or {_plural('container', 'containers', len(implicit))} "
                                      f"{_join_quote(implicit)} must set securityContext.seccompProfile.type to "
                                      '"RuntimeDefault" or "Localhost"')
        return None

    return check


_SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                          "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                                 "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
_SYSCTLS_1_37 = _SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Meta, spec: Spec) -> Failure | None:
        bad = [str(s.get("name")) for s in _pod_security(spec).get("sysctls") or []
               if isinstance(s, Mapping) and s.get("name") not in allowed]
        return ("forbidden sysctls", ", ".join(bad)) if bad else None

    return check


def windows_host_process(meta: Meta, spec: Spec) -> Failure | None:
    bad = [_name(c) for c in _containers(spec) if _dict(_security(c).get("windowsOptions")).get("hostProcess") is True]
    pod_bad = _dict(_pod_security(spec).get("windowsOptions")).get("hostProcess") is True
    setters = _setters(pod_bad, bad)
    if setters:
        return ("hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")
    return None


# --- restricted checks ----------------------------------------------------------------------------

def allow_privilege_escalation_1_8(meta: Meta, spec: Spec) -> Failure | None:
    bad = [_name(c) for c in _containers(spec) if _security(c).get("allowPrivilegeEscalation") is not False]
    if bad:
        return ("allowPrivilegeEscalation != false", f"{_plural('container', 'containers', len(bad))} "
                                                     f"{_join_quote(bad)} must set securityContext.allowPrivilegeEscalation=false")
    return None


def allow_privilege_escalation_1_25(meta: Meta, spec: Spec) -> Failure | None:
    return None if _windows(spec) else allow_privilege_escalation_1_8(meta, spec)


def capabilities_restricted_1_22(meta: Meta, spec: Spec) -> Failure | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    forbidden: set[str] = set()
    for container in _containers(spec):
        capabilities = _security(container).get("capabilities")
        if capabilities is None:
            missing_drop.append(_name(container))
            continue
        capabilities = _dict(capabilities)
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(_name(container))
        extra = [str(c) for c in capabilities.get("add") or [] if c != "NET_BIND_SERVICE"]
        if extra:
            adding.append(_name(container))
            forbidden.update(extra)
    details = []
    if missing_drop:
        details.append(f"{_plural('container', 'containers', len(missing_drop))} {_join_quote(missing_drop)} "
                       'must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_plural('container', 'containers', len(adding))} {_join_quote(adding)} must not include "
                       f"{_join_quote(sorted(forbidden))} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def capabilities_restricted_1_25(meta: Meta, spec: Spec) -> Failure | None:
    return None if _windows(spec) else capabilities_restricted_1_22(meta, spec)


def restricted_volumes(meta: Meta, spec: Spec) -> Failure | None:
    allowed = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim",
               "projected", "secret")
    known = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
             "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
             "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos")
    bad: list[str] = []
    kinds: set[str] = set()
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, Mapping) or any(volume.get(k) is not None for k in allowed):
            continue
        bad.append(str(volume.get("name") or ""))
        kinds.add(next((k for k in known if volume.get(k) is not None), "unknown"))
    if bad:
        return ("restricted volume types",
                f"{_plural('volume', 'volumes', len(bad))} {_join_quote(bad)} {_plural('uses', 'use', len(bad))} "
                f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} {_join_quote(sorted(kinds))}")
    return None


def run_as_non_root_1_0(meta: Meta, spec: Spec) -> Failure | None:
    pod_value = _pod_security(spec).get("runAsNonRoot")
    pod_bad, pod_true = pod_value is False, pod_value is True
    explicit: list[str] = []
    implicit: list[str] = []
    for container in _containers(spec):
        value = _security(container).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(_name(container))
        elif not pod_true:
            implicit.append(_name(container))
    setters = _setters(pod_bad, explicit)
    if setters:
        return ("runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return ("runAsNonRoot != true", f"pod or {_plural('container', 'containers', len(implicit))} "
                                        f"{_join_quote(implicit)} must set securityContext.runAsNonRoot=true")
    return None


def run_as_non_root_1_35(meta: Meta, spec: Spec) -> Failure | None:
    return None if _user_namespaced(spec) else run_as_non_root_1_0(meta, spec)


def _root(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


def run_as_user_1_23(meta: Meta, spec: Spec) -> Failure | None:
    pod_bad = _root(_pod_security(spec).get("runAsUser"))
    bad = [_name(c) for c in _containers(spec) if _root(_security(c).get("runAsUser"))]
    setters = _setters(pod_bad, bad)
    if setters:
        return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")
    return None


def run_as_user_1_35(meta: Meta, spec: Spec) -> Failure | None:
    return None if _user_namespaced(spec) else run_as_user_1_23(meta, spec)


def seccomp_restricted_1_25(meta: Meta, spec: Spec) -> Failure | None:
    return None if _windows(spec) else _seccomp(True)(meta, spec)


# --- the registry ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Check:
    id: str
    level: str
    versions: tuple[tuple[int, CheckFn], ...]  # (minimum minor version, check), increasing
    overrides: tuple[str, ...] = ()  # baseline checks this restricted one replaces (at any version)

    def at(self, minor: int) -> CheckFn | None:
        chosen = None
        for minimum, fn in self.versions:
            if minimum <= minor:
                chosen = fn
        return chosen


CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", BASELINE, ((0, app_armor_profile),)),
    Check("capabilities_baseline", BASELINE, ((0, capabilities_baseline),)),
    Check("hostNamespaces", BASELINE, ((0, host_namespaces),)),
    Check("hostPathVolumes", BASELINE, ((0, host_path_volumes),)),
    Check("hostPorts", BASELINE, ((0, host_ports),)),
    Check("hostProbesAndHostLifecycle", BASELINE, ((34, host_probes_and_lifecycle),)),
    Check("privileged", BASELINE, ((0, privileged),)),
    Check("procMount", BASELINE, ((0, proc_mount), (35, proc_mount_1_35))),
    Check("seLinuxOptions", BASELINE, ((0, _selinux(_SELINUX_TYPES_1_0)), (31, _selinux(_SELINUX_TYPES_1_31)))),
    Check("seccompProfile_baseline", BASELINE, ((0, seccomp_baseline_1_0), (19, _seccomp(False)))),
    Check("sysctls", BASELINE, ((0, _sysctls(_SYSCTLS_1_0)), (27, _sysctls(_SYSCTLS_1_27)),
                                (29, _sysctls(_SYSCTLS_1_29)), (32, _sysctls(_SYSCTLS_1_32)),
                                (37, _sysctls(_SYSCTLS_1_37)))),
    Check("windowsHostProcess", BASELINE, ((0, windows_host_process),)),
    Check("allowPrivilegeEscalation", RESTRICTED, ((8, allow_privilege_escalation_1_8),
                                                   (25, allow_privilege_escalation_1_25))),
    Check("capabilities_restricted", RESTRICTED, ((22, capabilities_restricted_1_22),
                                                  (25, capabilities_restricted_1_25)), ("capabilities_baseline",)),
    Check("procMount_restricted", RESTRICTED, ((35, proc_mount),), ("procMount",)),
    Check("restrictedVolumes", RESTRICTED, ((0, restricted_volumes),), ("hostPathVolumes",)),
    Check("runAsNonRoot", RESTRICTED, ((0, run_as_non_root_1_0), (35, run_as_non_root_1_35))),
    Check("runAsUser", RESTRICTED, ((23, run_as_user_1_23), (35, run_as_user_1_35))),
    Check("seccompProfile_restricted", RESTRICTED, ((19, _seccomp(True)), (25, seccomp_restricted_1_25)),
          ("seccompProfile_baseline",)),
)
# The newest version any check knows: later versions, and latest, evaluate as this one.
MAX_MINOR = max(minimum for check in CHECKS for minimum, _ in check.versions)


def checks_for(level: str, minor: int | None) -> list[tuple[str, CheckFn]]:
    """The (id, check) pairs that make up `level` at version v1.`minor`, in message order."""
    if level == PRIVILEGED:
        return []
    version = MAX_MINOR if minor is None else min(minor, MAX_MINOR)
    chosen: list[tuple[Check, CheckFn]] = []
    for check in CHECKS:
        if check.level == RESTRICTED and level != RESTRICTED:
            continue
        fn = check.at(version)
        if fn is not None:
            chosen.append((check, fn))
    overridden = {o for check, _ in chosen for o in check.overrides} if level == RESTRICTED else set()
    kept = [(check, fn) for check, fn in chosen if check.id not in overridden]
    kept.sort(key=lambda pair: (pair[0].level != BASELINE, pair[0].id))
    return [(check.id, fn) for check, fn in kept]


@dataclass(frozen=True, slots=True)
class Result:
    failures: tuple[Failure, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.failures

    def reason(self) -> str:
        """Upstream's ForbiddenReason: the reasons, comma separated (namespace warnings use it)."""
        return ", ".join(reason or "unknown forbidden reason" for reason, _ in self.failures)

    def detail(self) -> str:
        """Upstream's ForbiddenDetail: `reason (detail), reason (detail)`."""
        return ", ".join(f"{reason or 'unknown forbidden reason'} ({detail})" if detail else
                         (reason or "unknown forbidden reason") for reason, detail in self.failures)


def evaluate(level_version: LevelVersion, meta: Meta | None, spec: Spec | None) -> Result:
    """Run the level's checks on a pod (or a pod template's) metadata and spec."""
    meta, spec = meta or {}, spec or {}
    failures = []
    for _, check in checks_for(level_version.level, level_version.minor):
        found = check(meta, spec)
        if found is not None:
            failures.append(found)
    return Result(tuple(failures))
