"""Max requests in flight: API Priority and Fairness in its simplest form.

Upstream's `--max-requests-inflight` and `--max-mutating-requests-inflight`: two pools of seats, one
for reads (get, list; non-resource GETs) and one for writes. A request takes a seat for as long as it
is served (until its response is sent) or is refused at once with 429 TooManyRequests and
`Retry-After: 1`, upstream's answer. Long-running requests (watches, exec, attach, port-forward,
proxy, logs) take no seat, as upstream: they would hold one for hours.

Beyond upstream's plain limits, two protections a flood needs:
- system components keep a reserved share of each pool: requests of the users and groups configured
  as system (node agents `system:nodes`, the controller-manager, the scheduler, kube-system's service
  accounts) may use every seat, everyone else only the seats outside the reserved share. A flood by
  one user can fill the shared seats, never the reserved ones, so node heartbeats keep going through.
- a per-user cap (for users that are not system components): one user cannot take every shared seat.
Members of an exempt group (`system:masters`, as upstream's max-in-flight filter exempts it: a
super-user or the server's own loopback client always gets an answer) are neither counted nor refused.

Counts are kept on the event loop (no locks); a seat is released in the pipeline's `finally`, so a
request that fails, raises or loses its client still gives its seat back.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconcile.api import authn
from reconcile.core import errors

READ_ONLY, MUTATING = "readOnly", "mutating"
READ_VERBS = frozenset({"get", "list", "watch", "head"})
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy", "log"})
DEFAULT_SYSTEM_USERS = ("system:kube-controller-manager", "system:kube-scheduler",
                        "system:serviceaccount:kube-system:*")
DEFAULT_SYSTEM_GROUPS = ("system:nodes",)
DEFAULT_EXEMPT_GROUPS = ("system:masters",)
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True, slots=True)
class Settings:
    max_read_only: int = 0  # seats for reads; 0: no limit (upstream's default is 400)
    max_mutating: int = 0  # seats for writes; 0: no limit (upstream's default is 200)
    max_per_user: int = 0  # seats one non-system user may hold across both pools; 0: no cap
    system_reserved_fraction: float = 0.25  # of each pool, only for system components
    system_users: tuple[str, ...] = DEFAULT_SYSTEM_USERS  # a trailing * is a prefix
    system_groups: tuple[str, ...] = DEFAULT_SYSTEM_GROUPS
    exempt_groups: tuple[str, ...] = DEFAULT_EXEMPT_GROUPS

    @property
    def enabled(self) -> bool:
        return bool(self.max_read_only or self.max_mutating or self.max_per_user)


def is_long_running(verb: str, subresource: str | None) -> bool:
    """Upstream's `BasicLongRunningRequestCheck`: these hold their connection open by design."""
    return verb in LONG_RUNNING_VERBS or subresource in LONG_RUNNING_SUBRESOURCES


class Pool:
    """Seats of one kind. Invariant: `others <= in_flight`; with a limit, `in_flight <= limit` and
    `others <= limit - reserved` (a system request may take any seat, another only a shared one)."""

    def __init__(self, kind: str, limit: int, reserved_fraction: float) -> None:
        self.kind = kind
        self.limit = limit
        self.reserved = min(limit - 1, max(1, int(limit * reserved_fraction))) if limit and reserved_fraction > 0 else 0
        self.in_flight = 0
        self.others = 0  # held by requests that are not system components'
        self.rejected = 0

    def admits(self, *, system: bool) -> bool:
        if not self.limit:
            return True
        if self.in_flight >= self.limit:
            return False
        return system or self.others < self.limit - self.reserved


class Seat:
    """One admitted request's seat; `release` gives it back (once, however often it is called)."""

    __slots__ = ("_limiter", "pool", "user", "system", "_held")

    def __init__(self, limiter: Limiter, pool: Pool, user: str | None, system: bool) -> None:
        self._limiter = limiter
        self.pool = pool
        self.user = user  # counted against the per-user cap (None: not counted)
        self.system = system
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limiter._release(self)


class Limiter:
    """The pipeline's in-flight stage."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pools = {READ_ONLY: Pool(READ_ONLY, settings.max_read_only, settings.system_reserved_fraction),
                      MUTATING: Pool(MUTATING, settings.max_mutating, settings.system_reserved_fraction)}
        self.per_user: dict[str, int] = {}  # only users holding seats: an entry goes when its count is 0
        self.rejected_per_user_cap = 0
        self._exact_users = frozenset(u for u in settings.system_users if not u.endswith("*"))
        self._user_prefixes = tuple(u[:-1] for u in settings.system_users if u.endswith("*"))
        self._system_groups = frozenset(settings.system_groups)
        self._exempt_groups = frozenset(settings.exempt_groups)

    def is_system(self, user: authn.UserInfo) -> bool:
        return (user.name in self._exact_users or user.name.startswith(self._user_prefixes)
                or any(group in self._system_groups for group in user.groups))

    def acquire(self, user: authn.UserInfo, verb: str) -> Seat | None:
        """A seat for a request that is not long-running (None: exempt); `errors.TooManyRequests` if none is free."""
        if self._exempt_groups and any(group in self._exempt_groups for group in user.groups):
            return None
        pool = self.pools[READ_ONLY if verb in READ_VERBS else MUTATING]
        system = self.is_system(user)
        if not pool.admits(system=system):
            pool.rejected += 1
            raise _too_many()
        counted = None
        if self.settings.max_per_user and not system:
            held = self.per_user.get(user.name, 0)
            if held >= self.settings.max_per_user:
                self.rejected_per_user_cap += 1
                raise _too_many()
            self.per_user[user.name] = held + 1
            counted = user.name
        pool.in_flight += 1
        if not system:
            pool.others += 1
        return Seat(self, pool, counted, system)

    def _release(self, seat: Seat) -> None:
        pool = seat.pool
        pool.in_flight -= 1
        if not seat.system:
            pool.others -= 1
        if seat.user is not None:
            left = self.per_user[seat.user] - 1
            if left:
                self.per_user[seat.user] = left
            else:
                del self.per_user[seat.user]

    def metrics(self) -> list[tuple[str, dict[str, str], int]]:
        """(name, labels, value) in upstream's metric names where there is one."""
        out: list[tuple[str, dict[str, str], int]] = []
        for kind, pool in self.pools.items():
            out.append(("apiserver_current_inflight_requests", {"request_kind": kind}, pool.in_flight))
        for kind, pool in self.pools.items():
            out.append(("apiserver_dropped_requests_total", {"request_kind": kind}, pool.rejected))
        out.append(("reconcile_inflight_rejected_per_user_total", {}, self.rejected_per_user_cap))
        out.append(("reconcile_inflight_users", {}, len(self.per_user)))
        return out


def _too_many() -> errors.TooManyRequests:
    return errors.TooManyRequests("Too many requests, please try again later.",
                                  details={"retryAfterSeconds": RETRY_AFTER_SECONDS})
