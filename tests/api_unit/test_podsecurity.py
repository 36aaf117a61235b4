"""Pod Security Standards, pure: every baseline and restricted control refused and allowed, with
upstream's reasons and details word for word (the expected strings are the ones upstream's own
policy tests expect), versions, overrides, and the namespace labels that pick a policy."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.api import admission, authn, registry
from reconcile.api import podsecurity as pss
from reconcile.api import podsecurity_admission as psa
from reconcile.core import errors

LATEST_BASELINE = pss.LevelVersion(pss.BASELINE)
LATEST_RESTRICTED = pss.LevelVersion(pss.RESTRICTED)

RESTRICTED_CONTEXT = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                      "seccompProfile": {"type": "RuntimeDefault"}}


def restricted_pod(*names: str) -> dict[str, Any]:
    """A pod every level admits; each case breaks exactly one control of it."""
    return {"metadata": {"name": "p", "annotations": {}},
            "spec": {"containers": [{"name": n, "image": "busybox", "securityContext": copy.deepcopy(RESTRICTED_CONTEXT)}
                                    for n in (names or ("a",))]}}


def ctx(pod: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return pod["spec"]["containers"][index]["securityContext"]


def pod_ctx(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"].setdefault("securityContext", {})


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any, index: int = 0) -> Mutation:
    def mutate(pod: dict[str, Any]) -> None:
        target = ctx(pod, index)
        *parents, last = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return mutate


def _spec(**fields: Any) -> Mutation:
    return lambda pod: pod["spec"].update(copy.deepcopy(fields))


def _pod_ctx(**fields: Any) -> Mutation:
    return lambda pod: pod_ctx(pod).update(copy.deepcopy(fields))


def _annotate(**annotations: str) -> Mutation:
    return lambda pod: pod["metadata"]["annotations"].update(annotations)


def _all(*mutations: Mutation) -> Mutation:
    def mutate(pod: dict[str, Any]) -> None:
        for m in mutations:
            m(pod)
    return mutate


def _probe(kind: str, host: str, container: int = 0, probe: str = "livenessProbe") -> Mutation:
    def mutate(pod: dict[str, Any]) -> None:
        handler = {"port": 80, "host": host} if kind == "tcpSocket" else {"path": "/", "port": 80, "host": host}
        pod["spec"]["containers"][container][probe] = {kind: handler}
    return mutate


def _lifecycle(when: str, host: str) -> Mutation:
    return lambda pod: pod["spec"]["containers"][0].setdefault("lifecycle", {}).update(
        {when: {"httpGet": {"path": "/", "port": 80, "host": host}}})


def _ports(*hosts: int, container: int = 0) -> Mutation:
    return lambda pod: pod["spec"]["containers"][container].update(
        {"ports": [{"containerPort": 80 + i, "hostPort": h} for i, h in enumerate(hosts)]})


def _volume(name: str, **source: Any) -> Mutation:
    return lambda pod: pod["spec"].setdefault("volumes", []).append({"name": name, **copy.deepcopy(source)})


# (control, level, names of the pod's containers, mutation, reason, detail)
REFUSED = [
    # --- baseline ---
    ("privileged", pss.BASELINE, ("a",), _set("privileged", True),
     "privileged", 'container "a" must not set securityContext.privileged=true'),
    ("privileged", pss.BASELINE, ("a", "b"), _all(_set("privileged", True), _set("privileged", True, 1)),
     "privileged", 'containers "a", "b" must not set securityContext.privileged=true'),
    ("hostNamespaces", pss.BASELINE, ("a",), _spec(hostNetwork=True, hostPID=True, hostIPC=True),
     "host namespaces", "hostNetwork=true, hostPID=true, hostIPC=true"),
    ("hostNamespaces", pss.BASELINE, ("a",), _spec(hostPID=True), "host namespaces", "hostPID=true"),
    ("hostPathVolumes", pss.BASELINE, ("a",), _all(_volume("h", hostPath={"path": "/etc"}),
                                                   _volume("e", emptyDir={}), _volume("i", hostPath={"path": "/"})),
     "hostPath volumes", 'volumes "h", "i"'),
    ("hostPorts", pss.BASELINE, ("a", "b", "c"), _all(_ports(0, 10, 20, container=1), _ports(0, 10, 30, container=2)),
     "hostPort", 'containers "b", "c" use hostPorts 10, 20, 30'),
    ("hostPorts", pss.BASELINE, ("a",), _ports(8080), "hostPort", 'container "a" uses hostPort 8080'),
    ("hostProbesAndHostLifecycle", pss.BASELINE, ("a",),
     _all(_probe("httpGet", "localhost"), _probe("tcpSocket", "127.0.0.1", probe="readinessProbe"),
          _probe("httpGet", "::1", probe="startupProbe")),
     "probe or lifecycle host", 'container "a" uses probe or lifecycle hosts "127.0.0.1", "::1", "localhost"'),
    ("hostProbesAndHostLifecycle", pss.BASELINE, ("a",), _lifecycle("preStop", "invalid.host"),
     "probe or lifecycle host", 'container "a" uses probe or lifecycle host "invalid.host"'),
    ("capabilities_baseline", pss.BASELINE, ("a", "b"),
     _all(_set("capabilities.add", ["NET_ADMIN", "CHOWN"]), _set("capabilities.add", ["SYS_ADMIN"], 1)),
     "non-default capabilities",
     'containers "a", "b" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add'),
    ("appArmorProfile", pss.BASELINE, ("a",), _pod_ctx(appArmorProfile={"type": "Unconfined"}),
     "forbidden AppArmor profile", 'pod must not set AppArmor profile type to "Unconfined"'),
    ("appArmorProfile", pss.BASELINE, ("foo",), _set("appArmorProfile", {"type": "Unconfined"}),
     "forbidden AppArmor profile", 'container "foo" must not set AppArmor profile type to "Unconfined"'),
    ("appArmorProfile", pss.BASELINE, ("a",),
     _annotate(**{"container.apparmor.security.beta.kubernetes.io/a": "unconfined"}),
     "forbidden AppArmor profile",
     'annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/a="unconfined""'),
    ("seLinuxOptions", pss.BASELINE, ("a",), _pod_ctx(seLinuxOptions={"type": "foo", "user": "u", "role": "r"}),
     "seLinuxOptions", 'pod set forbidden securityContext.seLinuxOptions: type "foo"; user may not be set; '
                       "role may not be set"),
    ("seLinuxOptions", pss.BASELINE, ("e", "f"), _all(_set("seLinuxOptions", {"type": "bar"}),
                                                      _set("seLinuxOptions", {"type": "spc_t"}, 1)),
     "seLinuxOptions", 'containers "e", "f" set forbidden securityContext.seLinuxOptions: types "bar", "spc_t"'),
    ("procMount", pss.BASELINE, ("a",), _set("procMount", "Unmasked"),
     "procMount", 'container "a" must not set securityContext.procMount to "Unmasked"'),
    ("seccompProfile_baseline", pss.BASELINE, ("c",), _set("seccompProfile", {"type": "Unconfined"}),
     "seccompProfile", 'container "c" must not set securityContext.seccompProfile.type to "Unconfined"'),
    ("seccompProfile_baseline", pss.BASELINE, ("a",), _pod_ctx(seccompProfile={"type": "Unconfined"}),
     "seccompProfile", 'pod must not set securityContext.seccompProfile.type to "Unconfined"'),
    ("sysctls", pss.BASELINE, ("a",), _pod_ctx(sysctls=[{"name": "kernel.msgmax", "value": "1"},
                                                       {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                                                       {"name": "vm.swappiness", "value": "1"}]),
     "forbidden sysctls", "kernel.msgmax, vm.swappiness"),
    ("windowsHostProcess", pss.BASELINE, ("e", "f"),
     _all(_pod_ctx(windowsOptions={"hostProcess": True}), _set("windowsOptions.hostProcess", True),
          _set("windowsOptions.hostProcess", True, 1)),
     "hostProcess", 'pod and containers "e", "f" must not set securityContext.windowsOptions.hostProcess=true'),
    # --- restricted ---
    ("allowPrivilegeEscalation", pss.RESTRICTED, ("a", "b"),
     _all(_set("allowPrivilegeEscalation", True), lambda pod: ctx(pod, 1).pop("allowPrivilegeEscalation")),
     "allowPrivilegeEscalation != false", 'containers "a", "b" must set securityContext.allowPrivilegeEscalation=false'),
    ("capabilities_restricted", pss.RESTRICTED, ("a", "b", "c"),
     _all(_set("capabilities", {"add": ["FOO", "BAR"]}), _set("capabilities", {"drop": [], "add": ["BAZ"]}, 1),
          _set("capabilities.add", ["CHOWN", "NET_BIND_SERVICE"], 2)),
     "unrestricted capabilities",
     'containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" must not '
     'include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add'),
    ("procMount_restricted", pss.RESTRICTED, ("a",), _all(_set("procMount", "Unmasked"), _spec(hostUsers=False)),
     "procMount", 'container "a" must not set securityContext.procMount to "Unmasked"'),
    ("restrictedVolumes", pss.RESTRICTED, ("a",),
     _all(_volume("ok", configMap={"name": "c"}), _volume("h", hostPath={"path": "/srv"}), _volume("n", nfs={}),
          _volume("g", gitRepo={}), _volume("x", somethingNew={})),
     "restricted volume types",
     'volumes "h", "n", "g", "x" use restricted volume types "gitRepo", "hostPath", "nfs", "unknown"'),
    ("runAsNonRoot", pss.RESTRICTED, ("a",), lambda pod: ctx(pod).pop("runAsNonRoot"),
     "runAsNonRoot != true", 'pod or container "a" must set securityContext.runAsNonRoot=true'),
    ("runAsNonRoot", pss.RESTRICTED, ("a",), _pod_ctx(runAsNonRoot=False),
     "runAsNonRoot != true", "pod must not set securityContext.runAsNonRoot=false"),
    ("runAsNonRoot", pss.RESTRICTED, ("c", "d"), _all(_set("runAsNonRoot", False), _set("runAsNonRoot", False, 1)),
     "runAsNonRoot != true", 'containers "c", "d" must not set securityContext.runAsNonRoot=false'),
    ("runAsUser", pss.RESTRICTED, ("a",), _pod_ctx(runAsUser=0), "runAsUser=0", "pod must not set runAsUser=0"),
    ("runAsUser", pss.RESTRICTED, ("c", "d"), _all(_set("runAsUser", 0), _set("runAsUser", 0, 1)),
     "runAsUser=0", 'containers "c", "d" must not set runAsUser=0'),
    ("seccompProfile_restricted", pss.RESTRICTED, ("a",), lambda pod: ctx(pod).pop("seccompProfile"),
     "seccompProfile", 'pod or container "a" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
                       '"Localhost"'),
]

# (control, level, names, mutation): what the control lets through
ALLOWED = [
    ("privileged", pss.BASELINE, ("a",), _set("privileged", False)),
    ("hostNamespaces", pss.BASELINE, ("a",), _spec(hostNetwork=False, hostPID=False, hostIPC=False)),
    ("hostPathVolumes", pss.BASELINE, ("a",), _volume("e", emptyDir={})),
    ("hostPorts", pss.BASELINE, ("a",), _ports(0)),
    ("hostProbesAndHostLifecycle", pss.BASELINE, ("a",), _all(_probe("httpGet", ""), _lifecycle("postStart", ""))),
    ("capabilities_baseline", pss.BASELINE, ("a",), _set("capabilities.add", sorted(pss.BASELINE_CAPABILITIES))),
    ("appArmorProfile", pss.BASELINE, ("a",),
     _all(_pod_ctx(appArmorProfile={"type": "RuntimeDefault"}), _set("appArmorProfile", {"type": "Localhost"}),
          _annotate(**{"container.apparmor.security.beta.kubernetes.io/a": "localhost/p"}))),
    ("seLinuxOptions", pss.BASELINE, ("a",),
     _all(_pod_ctx(seLinuxOptions={"type": "container_t", "level": "s0:c1"}),
          _set("seLinuxOptions", {"type": "container_engine_t"}))),
    ("procMount", pss.BASELINE, ("a",), _set("procMount", "Default")),
    ("procMount", pss.BASELINE, ("a",), _all(_set("procMount", "Unmasked"), _spec(hostUsers=False))),
    ("seccompProfile_baseline", pss.BASELINE, ("a",), _set("seccompProfile", {"type": "Localhost",
                                                                               "localhostProfile": "p.json"})),
    ("sysctls", pss.BASELINE, ("a",), _pod_ctx(sysctls=[{"name": "net.ipv4.tcp_notsent_lowat", "value": "1"},
                                                       {"name": "net.ipv4.ip_local_port_range", "value": "1 2"}])),
    ("windowsHostProcess", pss.BASELINE, ("a",), _set("windowsOptions", {"hostProcess": False})),
    ("allowPrivilegeEscalation", pss.RESTRICTED, ("a",),
     _all(_spec(os={"name": "windows"}), _set("allowPrivilegeEscalation", True))),
    ("capabilities_restricted", pss.RESTRICTED, ("a",), _set("capabilities", {"drop": ["ALL"],
                                                                               "add": ["NET_BIND_SERVICE"]})),
    ("procMount_restricted", pss.RESTRICTED, ("a",), _all(_set("procMount", "Default"), _spec(hostUsers=False))),
    ("restrictedVolumes", pss.RESTRICTED, ("a",),
     _all(*(_volume(k, **{k: {}}) for k in ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                                            "persistentVolumeClaim", "projected", "secret")))),
    ("runAsNonRoot", pss.RESTRICTED, ("a",), _all(lambda pod: ctx(pod).pop("runAsNonRoot"),
                                                  _pod_ctx(runAsNonRoot=True))),
    ("runAsNonRoot", pss.RESTRICTED, ("a",), _all(lambda pod: ctx(pod).pop("runAsNonRoot"), _spec(hostUsers=False))),
    ("runAsUser", pss.RESTRICTED, ("a",), _all(_pod_ctx(runAsUser=1000), _set("runAsUser", 1))),
    ("runAsUser", pss.RESTRICTED, ("a",), _all(_set("runAsUser", 0), _spec(hostUsers=False))),
    ("seccompProfile_restricted", pss.RESTRICTED, ("a",),
     _all(lambda pod: ctx(pod).pop("seccompProfile"), _pod_ctx(seccompProfile={"type": "RuntimeDefault"}))),
]

CONTROLS = {c.id for c in pss.CHECKS}
OVERRIDDEN = {o for c in pss.CHECKS for o in c.overrides}


def test_the_tables_cover_every_control() -> None:
    assert {case[0] for case in REFUSED} == CONTROLS
    assert {case[0] for case in ALLOWED} == CONTROLS


def test_the_base_pod_passes_every_level() -> None:
    for level in pss.LEVELS:
        assert pss.evaluate(pss.LevelVersion(level), **_parts(restricted_pod())).allowed


def _parts(pod: dict[str, Any]) -> dict[str, Any]:
    return {"meta": pod["metadata"], "spec": pod["spec"]}


def _ids(cases: list[tuple]) -> list[str]:
    return [f"{c[0]}-{i}" for i, c in enumerate(cases)]


@pytest.mark.parametrize(("control", "level", "names", "mutate", "reason", "detail"), REFUSED, ids=_ids(REFUSED))
def test_control_refuses(control: str, level: str, names: tuple[str, ...], mutate: Mutation, reason: str,
                         detail: str) -> None:
    pod = restricted_pod(*names)
    mutate(pod)
    result = pss.evaluate(pss.LevelVersion(level), **_parts(pod))
    assert result.failures == ((reason, detail),)
    assert result.detail() == f"{reason} ({detail})"
    if level == pss.BASELINE and control not in OVERRIDDEN:
        # restricted holds every baseline control it does not replace with a stricter one
        assert (reason, detail) in pss.evaluate(LATEST_RESTRICTED, **_parts(pod)).failures
    if level == pss.RESTRICTED:
        assert (reason, detail) not in pss.evaluate(LATEST_BASELINE, **_parts(pod)).failures
    assert not pss.evaluate(pss.LevelVersion(pss.PRIVILEGED), **_parts(pod)).failures


@pytest.mark.parametrize(("control", "level", "names", "mutate"), ALLOWED, ids=_ids(ALLOWED))
def test_control_allows(control: str, level: str, names: tuple[str, ...], mutate: Mutation) -> None:
    pod = restricted_pod(*names)
    mutate(pod)
    assert pss.evaluate(pss.LevelVersion(level), **_parts(pod)).allowed


def test_hostpath_under_restricted_is_a_restricted_volume_type() -> None:
    pod = restricted_pod()
    _volume("h", hostPath={"path": "/etc"})(pod)
    assert pss.evaluate(LATEST_RESTRICTED, **_parts(pod)).failures == (
        ("restricted volume types", 'volume "h" uses restricted volume type "hostPath"'),)
    assert pss.evaluate(LATEST_BASELINE, **_parts(pod)).failures == (("hostPath volumes", 'volume "h"'),)


def test_failures_are_ordered_by_control_id_baseline_first() -> None:
    pod = restricted_pod()
    _all(_set("privileged", True), _spec(hostNetwork=True), _set("runAsUser", 0),
         lambda p: ctx(p).pop("allowPrivilegeEscalation"))(pod)
    result = pss.evaluate(LATEST_RESTRICTED, **_parts(pod))
    assert [reason for reason, _ in result.failures] == [
        "host namespaces", "privileged", "allowPrivilegeEscalation != false", "runAsUser=0"]
    assert result.detail() == (
        'host namespaces (hostNetwork=true), privileged (container "a" must not set securityContext.privileged=true), '
        'allowPrivilegeEscalation != false (container "a" must set securityContext.allowPrivilegeEscalation=false), '
        'runAsUser=0 (container "a" must not set runAsUser=0)')
    assert result.reason() == "host namespaces, privileged, allowPrivilegeEscalation != false, runAsUser=0"


def test_init_and_ephemeral_containers_are_checked() -> None:
    pod = restricted_pod()
    pod["spec"]["initContainers"] = [{"name": "init", "image": "b", "securityContext": {"privileged": True}}]
    pod["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "b", "securityContext": {"privileged": True}}]
    assert pss.evaluate(LATEST_BASELINE, **_parts(pod)).failures == (
        ("privileged", 'containers "init", "debug" must not set securityContext.privileged=true'),)


# --- versions --------------------------------------------------------------------------------------

def test_versions_pick_the_check_of_their_time() -> None:
    pod = restricted_pod()
    _pod_ctx(sysctls=[{"name": "net.ipv4.tcp_keepalive_time", "value": "1"}])(pod)
    assert not pss.evaluate(pss.LevelVersion(pss.BASELINE, 28), **_parts(pod)).allowed  # allowed since 1.29
    assert pss.evaluate(pss.LevelVersion(pss.BASELINE, 29), **_parts(pod)).allowed
    probe = restricted_pod()
    _probe("httpGet", "example.com")(probe)
    assert pss.evaluate(pss.LevelVersion(pss.BASELINE, 33), **_parts(probe)).allowed  # the check begins at 1.34
    assert not pss.evaluate(pss.LevelVersion(pss.BASELINE, 34), **_parts(probe)).allowed
    engine = restricted_pod()
    _set("seLinuxOptions", {"type": "container_engine_t"})(engine)
    assert not pss.evaluate(pss.LevelVersion(pss.BASELINE, 30), **_parts(engine)).allowed
    assert pss.evaluate(pss.LevelVersion(pss.BASELINE, 31), **_parts(engine)).allowed


def test_old_versions_have_fewer_restricted_controls() -> None:
    pod = restricted_pod()
    _set("runAsUser", 0)(pod)
    assert pss.evaluate(pss.LevelVersion(pss.RESTRICTED, 22), **_parts(pod)).allowed  # runAsUser begins at 1.23
    assert not pss.evaluate(pss.LevelVersion(pss.RESTRICTED, 23), **_parts(pod)).allowed
    # before 1.19 seccomp was annotations only, and restricted used the baseline check
    unconfined = restricted_pod()
    ctx(unconfined).pop("seccompProfile")
    _annotate(**{"seccomp.security.alpha.kubernetes.io/pod": "unconfined"})(unconfined)
    assert pss.evaluate(pss.LevelVersion(pss.RESTRICTED, 18), **_parts(unconfined)).failures == (
        ("seccompProfile", 'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined"'),)
    # before 1.22 restricted checked capabilities at the baseline's list
    caps = restricted_pod()
    ctx(caps)["capabilities"] = {"add": ["CHOWN"]}
    assert pss.evaluate(pss.LevelVersion(pss.RESTRICTED, 21), **_parts(caps)).allowed
    assert not pss.evaluate(pss.LevelVersion(pss.RESTRICTED, 22), **_parts(caps)).allowed


def test_windows_pods_skip_linux_only_restricted_controls_since_1_25() -> None:
    pod = {"metadata": {}, "spec": {"os": {"name": "windows"}, "containers": [
        {"name": "a", "image": "x", "securityContext": {"runAsNonRoot": True}}]}}
    assert pss.evaluate(pss.LevelVersion(pss.RESTRICTED, 25), **_parts(pod)).allowed
    assert {r for r, _ in pss.evaluate(pss.LevelVersion(pss.RESTRICTED, 24), **_parts(pod)).failures} == {
        "allowPrivilegeEscalation != false", "unrestricted capabilities", "seccompProfile"}


def test_versions_beyond_the_newest_check_evaluate_as_latest() -> None:
    assert pss.checks_for(pss.RESTRICTED, 999) == pss.checks_for(pss.RESTRICTED, None)
    assert pss.checks_for(pss.PRIVILEGED, None) == []
    assert str(pss.LevelVersion(pss.BASELINE, 99)) == "baseline:v1.99"
    assert str(LATEST_RESTRICTED) == "restricted:latest"


# --- labels to policy --------------------------------------------------------------------------------

def test_labels_pick_levels_and_versions() -> None:
    policy, causes = pss.policy_from_labels({
        "pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.29",
        "pod-security.kubernetes.io/audit": "restricted", "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest"})
    assert not causes
    assert policy == pss.Policy(pss.LevelVersion(pss.BASELINE, 29), pss.LevelVersion(pss.RESTRICTED),
                                pss.LevelVersion(pss.RESTRICTED))


def test_no_labels_means_the_defaults() -> None:
    defaults = pss.Policy(enforce=pss.LevelVersion(pss.BASELINE))
    assert pss.policy_from_labels({}, defaults) == (defaults, [])
    assert pss.policy_from_labels(None)[0].fully_privileged()


def test_warn_follows_a_stricter_enforce() -> None:
    policy, _ = pss.policy_from_labels({"pod-security.kubernetes.io/enforce": "restricted",
                                        "pod-security.kubernetes.io/enforce-version": "v1.30"})
    assert policy.warn == pss.LevelVersion(pss.RESTRICTED, 30)
    policy, _ = pss.policy_from_labels({"pod-security.kubernetes.io/enforce": "baseline",
                                        "pod-security.kubernetes.io/warn": "privileged"})
    assert policy.warn.level == pss.PRIVILEGED


def test_bad_labels_fail_closed_for_enforce_and_open_for_warn_and_audit() -> None:
    policy, causes = pss.policy_from_labels({
        "pod-security.kubernetes.io/enforce": "bogus", "pod-security.kubernetes.io/warn": "nope",
        "pod-security.kubernetes.io/audit-version": "v2.0"})
    assert policy.enforce.level == pss.RESTRICTED
    assert policy.warn.level == pss.PRIVILEGED
    assert policy.audit == pss.LevelVersion(pss.PRIVILEGED)
    assert [c["field"] for c in causes] == ["metadata.labels[pod-security.kubernetes.io/enforce]",
                                            "metadata.labels[pod-security.kubernetes.io/audit-version]",
                                            "metadata.labels[pod-security.kubernetes.io/warn]"]
    assert causes[0]["message"] == 'Invalid value: "bogus": must be one of privileged, baseline, restricted'
    assert causes[1]["message"] == 'Invalid value: "v2.0": must be "latest" or "v1.x"'


@pytest.mark.parametrize(("text", "minor"), [("latest", None), ("v1.0", 0), ("v1.9", 9), ("v1.32", 32)])
def test_versions_parse(text: str, minor: int | None) -> None:
    assert pss.parse_version(text) == minor


@pytest.mark.parametrize("text", ["v1.05", "v2.1", "1.30", "v1.", "v1.x", "", "Latest", "v1.٣"])
def test_bad_versions_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match='must be "latest" or "v1.x"'):
        pss.parse_version(text)


# --- properties ---------------------------------------------------------------------------------------

_context = st.fixed_dictionaries({}, optional={
    "privileged": st.booleans(), "allowPrivilegeEscalation": st.booleans(), "runAsNonRoot": st.booleans(),
    "runAsUser": st.sampled_from([0, 1000]), "procMount": st.sampled_from(["Default", "Unmasked"]),
    "capabilities": st.fixed_dictionaries({}, optional={
        "add": st.lists(st.sampled_from(["CHOWN", "NET_BIND_SERVICE", "SYS_ADMIN", "NET_RAW"]), max_size=2),
        "drop": st.lists(st.sampled_from(["ALL", "NET_RAW"]), max_size=2)}),
    "seccompProfile": st.fixed_dictionaries({"type": st.sampled_from(["RuntimeDefault", "Unconfined", "Localhost"])}),
})
_pods = st.builds(
    lambda contexts, host_network, volumes: {"metadata": {}, "spec": {
        "hostNetwork": host_network,
        "containers": [{"name": f"c{i}", "image": "x", "securityContext": c} for i, c in enumerate(contexts)],
        "volumes": volumes}},
    st.lists(_context, min_size=1, max_size=3), st.booleans(),
    st.lists(st.sampled_from([{"name": "h", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}}]), max_size=2,
             unique_by=lambda v: v["name"]))


@settings(max_examples=300, deadline=None)
@given(_pods, st.sampled_from([None, 0, 19, 22, 25, 29, 35]))
def test_restricted_admits_only_what_baseline_admits(pod: dict[str, Any], minor: int | None) -> None:
    """Levels nest: whatever restricted allows, baseline allows; whatever baseline refuses, restricted refuses."""
    restricted = pss.evaluate(pss.LevelVersion(pss.RESTRICTED, minor), **_parts(pod))
    baseline = pss.evaluate(pss.LevelVersion(pss.BASELINE, minor), **_parts(pod))
    if restricted.allowed:
        assert baseline.allowed
    assert pss.evaluate(pss.LevelVersion(pss.PRIVILEGED, minor), **_parts(pod)).allowed


@settings(max_examples=200, deadline=None)
@given(_pods)
def test_the_message_holds_every_failure_once_in_order(pod: dict[str, Any]) -> None:
    result = pss.evaluate(LATEST_RESTRICTED, **_parts(pod))
    detail = result.detail()
    position = -1
    for reason, text in result.failures:
        found = detail.index(f"{reason} ({text})", position + 1)
        assert found > position
        position = found
    assert result.allowed == (detail == "")


# --- the admission plugin, over fake lookups --------------------------------------------------------


REGISTRY = registry.with_builtins()
USER = authn.UserInfo("alice", groups=("system:authenticated",))


def _resource(group: str, plural: str) -> registry.Resource:
    found = REGISTRY.get(group, "v1", plural)
    assert found is not None
    return found


def _namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {f"pod-security.kubernetes.io/{k.replace('_', '-')}": v
                                                  for k, v in labels.items()}}}


def _plugin(namespaces: dict[str, dict[str, Any]], pods: list[dict[str, Any]] | None = None,
            **config: Any) -> psa.PodSecurity:
    async def namespace(name: str) -> dict[str, Any] | None:
        return namespaces.get(name)

    async def list_pods(name: str) -> list[dict[str, Any]]:
        return [p for p in pods or [] if p["metadata"].get("namespace") == name]

    return psa.PodSecurity(namespace, list_pods, configuration=psa.Configuration(**config))


def _attributes(resource: registry.Resource, obj: dict[str, Any] | None, *, namespace: str | None = "ns",
                operation: str = admission.CREATE, old: dict[str, Any] | None = None,
                subresource: str | None = None, user: authn.UserInfo = USER) -> admission.Attributes:
    name = ((obj or old or {}).get("metadata") or {}).get("name", "")
    return admission.Attributes(operation, resource, subresource, namespace, name, obj, old, user, False)


def _privileged_pod(name: str = "p", namespace: str = "ns") -> dict[str, Any]:
    pod = restricted_pod("c")
    pod["metadata"].update(name=name, namespace=namespace)
    ctx(pod)["privileged"] = True
    return pod


PODS = _resource("", "pods")
DEPLOYMENTS = _resource("apps", "deployments")
NAMESPACES = _resource("", "namespaces")


async def test_enforce_refuses_a_pod_with_upstreams_status() -> None:
    plugin = _plugin({"ns": _namespace("ns", enforce="baseline")})
    attributes = _attributes(PODS, _privileged_pod())
    with pytest.raises(errors.Forbidden) as caught:
        await plugin.validate(attributes)
    status = caught.value.to_status()
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    assert status["message"] == ('pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged '
                                 '(container "c" must not set securityContext.privileged=true)')
    assert status["details"] == {"name": "p", "kind": "pods"}
    assert attributes.warnings == []  # a refused request gets no warnings
    assert attributes.audit_annotations == {"pod-security.kubernetes.io/enforce-policy": "baseline:latest"}


async def test_warn_and_audit_let_the_pod_in_and_say_why() -> None:
    plugin = _plugin({"ns": _namespace("ns", warn="baseline", audit="baseline", audit_version="v1.30")})
    attributes = _attributes(PODS, _privileged_pod())
    await plugin.validate(attributes)
    detail = 'privileged (container "c" must not set securityContext.privileged=true)'
    assert attributes.warnings == [f'would violate PodSecurity "baseline:latest": {detail}']
    assert attributes.audit_annotations == {
        "pod-security.kubernetes.io/enforce-policy": "privileged:latest",
        "pod-security.kubernetes.io/audit-violations": f'would violate PodSecurity "baseline:v1.30": {detail}'}


async def test_workloads_are_warned_never_refused() -> None:
    plugin = _plugin({"ns": _namespace("ns", enforce="restricted")})
    pod = _privileged_pod()
    deployment = {"metadata": {"name": "web", "namespace": "ns"},
                  "spec": {"template": {"metadata": {}, "spec": pod["spec"]}}}
    attributes = _attributes(DEPLOYMENTS, deployment)
    await plugin.validate(attributes)  # enforce is for pods only
    assert attributes.warnings == ['would violate PodSecurity "restricted:latest": privileged (container "c" must '
                                   'not set securityContext.privileged=true)']
    scale = _attributes(DEPLOYMENTS, deployment, operation=admission.UPDATE, old=deployment, subresource="scale")
    await plugin.validate(scale)
    assert scale.warnings == []


async def test_exemptions_skip_the_policy() -> None:
    namespaces = {"ns": _namespace("ns", enforce="restricted"), "tools": _namespace("tools", enforce="restricted")}
    plugin = _plugin(namespaces, exempt_namespaces=frozenset({"tools"}), exempt_usernames=frozenset({"ci-bot"}),
                     exempt_runtime_classes=frozenset({"gvisor"}))
    by_namespace = _attributes(PODS, _privileged_pod(namespace="tools"), namespace="tools")
    await plugin.validate(by_namespace)
    by_user = _attributes(PODS, _privileged_pod(), user=authn.UserInfo("ci-bot"))
    await plugin.validate(by_user)
    sandboxed = _privileged_pod()
    sandboxed["spec"]["runtimeClassName"] = "gvisor"
    by_runtime = _attributes(PODS, sandboxed)
    await plugin.validate(by_runtime)
    assert [a.audit_annotations["pod-security.kubernetes.io/exempt"] for a in (by_namespace, by_user, by_runtime)] \
        == ["namespace", "user", "runtimeClass"]
    with pytest.raises(errors.Forbidden):
        await plugin.validate(_attributes(PODS, _privileged_pod()))


async def test_defaults_apply_to_unlabelled_namespaces() -> None:
    plugin = _plugin({"ns": {"metadata": {"name": "ns"}}},
                     defaults=pss.Policy(enforce=pss.LevelVersion(pss.BASELINE)))
    with pytest.raises(errors.Forbidden, match='violates PodSecurity "baseline:latest"'):
        await plugin.validate(_attributes(PODS, _privileged_pod()))


async def test_pod_updates_are_judged_only_when_an_image_changes() -> None:
    plugin = _plugin({"ns": _namespace("ns", enforce="baseline")})
    old = _privileged_pod()
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"a": "b"}
    await plugin.validate(_attributes(PODS, relabelled, operation=admission.UPDATE, old=old))
    await plugin.validate(_attributes(PODS, relabelled, operation=admission.UPDATE, old=old, subresource="status"))
    new_image = copy.deepcopy(old)
    new_image["spec"]["containers"][0]["image"] = "busybox:2"
    with pytest.raises(errors.Forbidden):
        await plugin.validate(_attributes(PODS, new_image, operation=admission.UPDATE, old=old))


async def test_missing_namespace_is_an_internal_error_for_pods() -> None:
    with pytest.raises(errors.InternalError, match='failed to lookup namespace "ns"'):
        await _plugin({}).validate(_attributes(PODS, _privileged_pod()))


async def test_bad_namespace_labels_are_refused_on_create() -> None:
    plugin = _plugin({})
    bad = _namespace("team", enforce="superstrict")
    with pytest.raises(errors.Invalid) as caught:
        await plugin.validate(_attributes(NAMESPACES, bad, namespace=None))
    assert caught.value.message == ('Namespace "team" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
                                    'Invalid value: "superstrict": must be one of privileged, baseline, restricted')
    # an update that leaves the same bad labels alone is let through (only changes are judged)
    await plugin.validate(_attributes(NAMESPACES, bad, namespace=None, operation=admission.UPDATE, old=bad))


async def test_a_stricter_enforce_level_warns_about_existing_pods() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-1", "controller": True}
    pods = []
    for name in ("web-b", "web-a", "web-c"):
        pod = _privileged_pod(name)
        pod["metadata"]["ownerReferences"] = [owner]
        pods.append(pod)
    loner = restricted_pod("c")
    loner["metadata"].update(name="loner", namespace="ns")
    loner["spec"]["hostNetwork"] = True
    pods.append(loner)
    fine = restricted_pod("c")
    fine["metadata"].update(name="fine", namespace="ns")
    pods.append(fine)
    plugin = _plugin({}, pods)
    old, new = _namespace("ns"), _namespace("ns", enforce="baseline")
    attributes = _attributes(NAMESPACES, new, namespace=None, operation=admission.UPDATE, old=old)
    await plugin.validate(attributes)
    assert attributes.warnings == [
        'existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:latest"',
        "loner: host namespaces",
        "web-a (and 2 other pods): privileged",
    ]
    relaxed = _attributes(NAMESPACES, old, namespace=None, operation=admission.UPDATE, old=new)
    await plugin.validate(relaxed)
    assert relaxed.warnings == []  # relaxing cannot break what runs


async def test_the_existing_pod_check_is_bounded() -> None:
    pods = [_privileged_pod(f"p{i}") for i in range(5)]
    plugin = _plugin({}, pods)
    plugin.max_pods = 2
    warnings = plugin.check_existing("ns", pods, LATEST_BASELINE)
    assert warnings == ["new PodSecurity enforce level only checked against the first 2 of 5 existing pods",
                        'existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:latest"',
                        "p0 (and 1 other pod): privileged"]


async def test_labelling_an_exempt_namespace_warns_that_it_is_ignored() -> None:
    plugin = _plugin({}, exempt_namespaces=frozenset({"kube-system"}))
    attributes = _attributes(NAMESPACES, _namespace("kube-system", enforce="baseline", warn="restricted"),
                             namespace=None)
    await plugin.validate(attributes)
    assert attributes.warnings == ['namespace "kube-system" is exempt from Pod Security, and the policy '
                                   '(enforce=baseline:latest, warn=restricted:latest) will be ignored']


def test_configuration_documents_parse() -> None:
    config = psa.parse_configuration({
        "apiVersion": "pod-security.admission.config.k8s.io/v1", "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": "baseline", "enforce-version": "v1.30", "warn": "restricted"},
        "exemptions": {"usernames": ["ci"], "namespaces": ["kube-system"], "runtimeClasses": []}})
    assert config.defaults == pss.Policy(pss.LevelVersion(pss.BASELINE, 30), pss.LevelVersion(pss.PRIVILEGED),
                                         pss.LevelVersion(pss.RESTRICTED))
    assert config.exempt_namespaces == {"kube-system"} and config.exempt_usernames == {"ci"}
    with pytest.raises(ValueError, match="defaults.audit: must be one of"):
        psa.parse_configuration({"apiVersion": "pod-security.admission.config.k8s.io/v1",
                                 "kind": "PodSecurityConfiguration", "defaults": {"audit": "loud"}})
    with pytest.raises(ValueError, match="expected a pod-security.admission.config.k8s.io/v1"):
        psa.parse_configuration({"apiVersion": "v1", "kind": "ConfigMap"})


def test_admission_configuration_files_load(tmp_path: Any) -> None:
    (tmp_path / "pss.yaml").write_text("apiVersion: pod-security.admission.config.k8s.io/v1\n"
                                       "kind: PodSecurityConfiguration\nexemptions: {namespaces: [ops]}\n")
    main = tmp_path / "admission.yaml"
    main.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
                    "- name: PodSecurity\n  path: pss.yaml\n"
                    "- name: Other\n  configuration: {kind: X}\n")
    loaded = admission.load_configuration(main)
    assert psa.parse_configuration(loaded["PodSecurity"]).exempt_namespaces == {"ops"}
    assert loaded["Other"] == {"kind": "X"}
    main.write_text("kind: Something\n")
    with pytest.raises(ValueError, match="AdmissionConfiguration"):
        admission.load_configuration(main)
