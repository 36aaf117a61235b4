"""The RBAC objects as the authorizer needs them: bindings indexed by subject, roles by name.

The index is built from the API server's own watch caches (a `Source`), never from etcd, and
rebuilt only after an RBAC object changed (the caches' event listeners call `changed`), so a
decision costs O(bindings of the user), not O(every rule in the cluster).

Invariant: `_snapshot` reflects every RBAC object the caches held when it was built, and
`_dirty` is True whenever a cache may hold something the snapshot lacks (set by `changed`, and
kept set while one of the four caches is not running yet).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from reconcile.api import authn
from reconcile.api.rbac import rules as rules_mod

GROUP = "rbac.authorization.k8s.io"
PLURALS = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

# plural -> the objects stored now, or None while that resource's cache is not running
Source = Callable[[str], Iterable[dict[str, Any]] | None]


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


@dataclass(frozen=True, slots=True)
class Binding:
    """One RoleBinding or ClusterRoleBinding, as far as authorization reads it."""

    kind: str  # "RoleBinding" | "ClusterRoleBinding"
    name: str
    namespace: str  # "" for a ClusterRoleBinding
    role_kind: str  # "Role" | "ClusterRole"
    role_name: str
    subjects: tuple[dict[str, str], ...]

    def first_subject(self, user: authn.UserInfo) -> dict[str, str] | None:
        """The first subject that names `user` (upstream's `appliesTo`), or None."""
        for subject in self.subjects:
            if subject_applies(subject, user, self.namespace):
                return subject
        return None

    def describe(self, subject: dict[str, str]) -> str:
        """Upstream's `RoleBinding "name/ns" of ClusterRole "view" to User "alice"`."""
        where = f'{self.kind} "{self.name}/{self.namespace}"' if self.namespace else f'{self.kind} "{self.name}"'
        return f'{where} of {self.role_kind} "{self.role_name}" to {describe_subject(subject, self.namespace)}'


def subject_applies(subject: dict[str, str], user: authn.UserInfo, namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or namespace
        return bool(sa_namespace) and user.name == service_account_username(sa_namespace, name)
    return False


def describe_subject(subject: dict[str, str], namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or namespace}"'
    return f'{kind} "{name}"'


def _subject_keys(subject: dict[str, str], namespace: str) -> list[tuple[str, str]]:
    """Index keys of a subject: ("User", name) or ("Group", name); a ServiceAccount is the user it
    authenticates as."""
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind in ("User", "Group"):
        return [(kind, name)]
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or namespace
        if sa_namespace:
            return [("User", service_account_username(sa_namespace, name))]
    return []


def user_keys(user: authn.UserInfo) -> list[tuple[str, str]]:
    return [("User", user.name), *(("Group", g) for g in user.groups)]


@dataclass(slots=True)
class Snapshot:
    cluster_roles: dict[str, tuple[rules_mod.PolicyRule, ...]] = field(default_factory=dict)
    roles: dict[tuple[str, str], tuple[rules_mod.PolicyRule, ...]] = field(default_factory=dict)
    # ("User"|"Group", name) -> ClusterRoleBindings naming it
    cluster_bindings: dict[tuple[str, str], list[Binding]] = field(default_factory=dict)
    # (namespace, "User"|"Group", name) -> RoleBindings of that namespace naming it
    namespace_bindings: dict[tuple[str, str, str], list[Binding]] = field(default_factory=dict)


def _binding(obj: dict[str, Any], kind: str) -> Binding | None:
    metadata = obj.get("metadata") or {}
    ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
    subjects = tuple(s for s in obj.get("subjects") or () if isinstance(s, dict))
    if not metadata.get("name") or not ref:
        return None
    return Binding(kind, metadata["name"], metadata.get("namespace", "") if kind == "RoleBinding" else "",
                   str(ref.get("kind", "")), str(ref.get("name", "")), subjects)


def build(source: Source) -> tuple[Snapshot, bool]:
    """A snapshot of what `source` holds now, and whether every cache was there to read."""
    snap = Snapshot()
    complete = True
    listed: dict[str, list[dict[str, Any]]] = {}
    for plural in PLURALS:
        objects = source(plural)
        if objects is None:
            complete = False
            objects = ()
        listed[plural] = [o for o in objects if isinstance(o, dict)]
    for obj in listed["clusterroles"]:
        snap.cluster_roles[(obj.get("metadata") or {}).get("name", "")] = rules_mod.parse_rules(obj.get("rules"))
    for obj in listed["roles"]:
        metadata = obj.get("metadata") or {}
        snap.roles[(metadata.get("namespace", ""), metadata.get("name", ""))] = rules_mod.parse_rules(obj.get("rules"))
    for obj in sorted(listed["clusterrolebindings"], key=lambda o: (o.get("metadata") or {}).get("name", "")):
        binding = _binding(obj, "ClusterRoleBinding")
        if binding is None or binding.role_kind != "ClusterRole":
            continue
        for subject in binding.subjects:
            for key in _subject_keys(subject, ""):
                _add_once(snap.cluster_bindings.setdefault(key, []), binding)
    for obj in sorted(listed["rolebindings"], key=lambda o: (o.get("metadata") or {}).get("name", "")):
        binding = _binding(obj, "RoleBinding")
        if binding is None:
            continue
        for subject in binding.subjects:
            for kind, name in _subject_keys(subject, binding.namespace):
                _add_once(snap.namespace_bindings.setdefault((binding.namespace, kind, name), []), binding)
    return snap, complete


def _add_once(bindings: list[Binding], binding: Binding) -> None:
    if not bindings or bindings[-1] is not binding:
        bindings.append(binding)


@dataclass(frozen=True, slots=True)
class Grant:
    """A binding that applies to a user, with the rules its role holds (or why it holds none)."""

    binding: Binding
    subject: dict[str, str]
    rules: tuple[rules_mod.PolicyRule, ...]
    error: str = ""  # the role is missing


class RuleIndex:
    """Answers "which rules apply to this user in this namespace" from a snapshot of the caches."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._snapshot = Snapshot()
        self._dirty = True

    def changed(self, *_: Any) -> None:
        """An RBAC object changed (a watch cache listener): rebuild before the next decision."""
        self._dirty = True

    def snapshot(self) -> Snapshot:
        if self._dirty:
            self._dirty = False
            self._snapshot, complete = build(self.source)
            if not complete:
                self._dirty = True
        return self._snapshot

    def grants(self, user: authn.UserInfo, namespace: str) -> Iterator[Grant]:
        """Upstream's `VisitRulesFor` order: ClusterRoleBindings, then the namespace's RoleBindings;
        each applying binding once."""
        snap = self.snapshot()
        keys = user_keys(user)
        yield from self._grants(snap, _candidates(snap.cluster_bindings, keys), user)
        if namespace:
            scoped = [(namespace, kind, name) for kind, name in keys]
            yield from self._grants(snap, _candidates(snap.namespace_bindings, scoped), user)

    def _grants(self, snap: Snapshot, bindings: list[Binding], user: authn.UserInfo) -> Iterator[Grant]:
        for binding in bindings:
            subject = binding.first_subject(user)
            if subject is None:
                continue
            if binding.role_kind == "ClusterRole":
                found = snap.cluster_roles.get(binding.role_name)
                missing = f'clusterrole.rbac.authorization.k8s.io "{binding.role_name}" not found'
            elif binding.role_kind == "Role" and binding.namespace:
                found = snap.roles.get((binding.namespace, binding.role_name))
                missing = f'role.rbac.authorization.k8s.io "{binding.role_name}" not found'
            else:
                found, missing = None, f"unsupported role reference kind: {binding.role_kind!r}"
            if found is None:
                yield Grant(binding, subject, (), missing)
            else:
                yield Grant(binding, subject, found)

    def rules_for(self, user: authn.UserInfo, namespace: str) -> tuple[list[rules_mod.PolicyRule], list[str]]:
        """Every rule that applies to `user` in `namespace` ("" = cluster-wide only), and the errors
        met on the way (a binding to a missing role): upstream's `RulesFor`."""
        found: list[rules_mod.PolicyRule] = []
        problems: list[str] = []
        for grant in self.grants(user, namespace):
            if grant.error:
                problems.append(grant.error)
            found.extend(grant.rules)
        return found, problems

    def role_rules(self, kind: str, name: str, namespace: str) -> tuple[rules_mod.PolicyRule, ...] | None:
        """The rules of a referenced role (None: no such role): what a binding would grant."""
        snap = self.snapshot()
        if kind == "ClusterRole":
            return snap.cluster_roles.get(name)
        if kind == "Role":
            return snap.roles.get((namespace, name))
        return None


def _candidates(index: dict[Any, list[Binding]], keys: Iterable[Any]) -> list[Binding]:
    """The bindings under any of `keys`, each once, by name."""
    seen: dict[int, Binding] = {}
    for key in keys:
        for binding in index.get(key, ()):
            seen.setdefault(id(binding), binding)
    if len(seen) <= 1:
        return list(seen.values())
    return sorted(seen.values(), key=lambda b: b.name)
