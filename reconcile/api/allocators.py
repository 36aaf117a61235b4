"""Cluster IPs and node ports for Services, allocated in etcd so no two Services ever share one.

Upstream keeps one bitmap per range (a `RangeAllocation` object) and compare-and-swaps it; its
newer allocator creates one `IPAddress` object per address. We do the latter's shape without the
API object: one etcd key per allocated value (`_ranges/serviceips/<ip>`,
`_ranges/servicenodeports/<port>`), claimed with the store's create-if-absent transaction. Why:
  - every claim is one transaction on its own key, so 200 concurrent creates (or two API servers
    on one etcd) never retry against each other on a single hot bitmap key, and a claim can never
    be lost by a restart: etcd is the only state;
  - the value names the owner (namespace, name, uid), so a release removes only a claim that is
    still this Service's, and a repair pass can tell a leak (no such Service) from a live claim.
The `_` makes the prefix impossible as an API group, so no resource's keys can collide with it.

Dynamic choice follows upstream's bands: a random start in the upper part of the range
(`[offset, size)`), the lower part only when the upper is full, so static requests (which users
are told to take from the lower part) rarely collide with dynamic ones.
"""

from __future__ import annotations

import ipaddress
import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from reconcile.core import errors
from reconcile.store import etcd

IP_PREFIX = "_ranges/serviceips/"
PORT_PREFIX = "_ranges/servicenodeports/"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
RANDOM_TRIES = 16  # random picks before the whole range is listed to find a free value


class AllocationError(Exception):
    """A requested value cannot be had; the text is upstream's (ErrAllocated, ErrNotInRange, ErrFull)."""


class RangeFull(AllocationError):
    pass


@dataclass(frozen=True)
class Owner:
    """Whose claim a key is: the Service's namespace, name and uid."""

    namespace: str
    name: str
    uid: str

    def encode(self) -> bytes:
        return json.dumps({"namespace": self.namespace, "name": self.name, "uid": self.uid,
                           "allocated": time.time()}).encode()

    @staticmethod
    def decode(value: bytes) -> tuple[Owner, float] | None:
        try:
            data = json.loads(value)
            return Owner(str(data["namespace"]), str(data["name"]), str(data["uid"])), float(data["allocated"])
        except (ValueError, KeyError, TypeError):
            return None


def parse_cidr(text: str) -> ipaddress.IPv4Network:
    """--service-cluster-ip-range: an IPv4 CIDR with at least 8 addresses (upstream's minimum)."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"invalid CIDR {text!r}: {exc}") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError("only IPv4 service ranges are supported")
    if network.num_addresses < 8:
        raise ValueError("the service cluster IP range must be at least 8 IP addresses")
    return network


def parse_port_range(text: str) -> tuple[int, int]:
    """--service-node-port-range: `30000-32767` (both ends included) or a single port."""
    low, sep, high = text.strip().partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: want FIRST-LAST") from None
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"invalid port range {text!r}: ports 1-65535, first <= last")
    return first, last


def _band(size: int, *, lo: int, hi: int, div: int) -> int:
    """Upstream's calculateRangeOffset: the static (lower) band of a range of `size` values."""
    return 0 if size <= lo else min(max(lo, size // div), hi)


class KeyRange:
    """One range of values (offsets 0..size-1), each claimed by creating its key."""

    def __init__(self, store: etcd.EtcdStore, prefix: str, size: int, offset: int) -> None:
        self.store, self.prefix, self.size, self.offset = store, prefix, size, offset

    def name(self, index: int) -> str:
        raise NotImplementedError

    def index(self, name: str) -> int | None:
        raise NotImplementedError

    async def claim(self, index: int, owner: Owner) -> bool:
        try:
            await self.store.create(self.prefix + self.name(index), owner.encode())
        except errors.KeyExists:
            return False
        return True

    async def claim_any(self, owner: Owner) -> int:
        """A free value from the upper band (random start), else the lower band; RangeFull if none."""
        bands = [(self.offset, self.size), (0, self.offset)]
        for start, end in bands:
            for _ in range(RANDOM_TRIES if end - start > RANDOM_TRIES else 0):
                candidate = random.randrange(start, end)
                if await self.claim(candidate, owner):
                    return candidate
        taken = {i for i in (self.index(k) for k in await self.names()) if i is not None}
        for start, end in bands:
            free = [i for i in range(start, end) if i not in taken]
            random.shuffle(free)
            for candidate in free:
                if await self.claim(candidate, owner):
                    return candidate
        raise RangeFull("range is full")

    async def names(self) -> list[str]:
        result, after = [], None
        while True:
            page = await self.store.list(self.prefix, limit=1000, start_after=after)
            result += [kv.key[len(self.prefix):] for kv in page.items]
            if not page.more or not page.items:
                return result
            after = page.items[-1].key

    async def owners(self) -> dict[str, tuple[Owner | None, float, int]]:
        """Every claim: name -> (owner, when, mod_revision)."""
        found: dict[str, tuple[Owner | None, float, int]] = {}
        after = None
        while True:
            page = await self.store.list(self.prefix, limit=1000, start_after=after)
            for kv in page.items:
                decoded = Owner.decode(kv.value)
                found[kv.key[len(self.prefix):]] = (decoded[0], decoded[1]) + (kv.mod_revision,) if decoded \
                    else (None, 0.0, kv.mod_revision)
            if not page.more or not page.items:
                return found
            after = page.items[-1].key

    async def release(self, name: str, owner: Owner) -> bool:
        """Delete the claim if it is still `owner`'s (never someone else's newer claim)."""
        kv, _ = await self.store.get(self.prefix + name)
        if kv is None:
            return False
        decoded = Owner.decode(kv.value)
        if decoded is not None and decoded[0].uid != owner.uid:
            return False
        try:
            await self.store.delete(self.prefix + name, expected_revision=kv.mod_revision)
        except (errors.RevisionConflict, errors.KeyMissing):
            return False
        return True

    async def drop(self, name: str, mod_revision: int) -> None:
        """Repair: remove a leaked claim exactly as it was read."""
        try:
            await self.store.delete(self.prefix + name, expected_revision=mod_revision)
        except (errors.RevisionConflict, errors.KeyMissing):
            pass


class ClusterIPRange(KeyRange):
    """The service CIDR: network+1 .. broadcast-1; network+1 is the `kubernetes` Service's."""

    def __init__(self, store: etcd.EtcdStore, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.network = parse_cidr(cidr)
        self.base = int(self.network.network_address) + 1
        size = self.network.num_addresses - 2
        super().__init__(store, IP_PREFIX, size, _band(size, lo=16, hi=256, div=16))

    def name(self, index: int) -> str:
        return str(ipaddress.IPv4Address(self.base + index))

    def index(self, name: str) -> int | None:
        try:
            value = int(ipaddress.IPv4Address(name)) - self.base
        except ValueError:
            return None
        return value if 0 <= value < self.size else None

    @property
    def first(self) -> str:
        """network+1: upstream hard-wires it as the ClusterIP of default/kubernetes."""
        return self.name(0)

    def not_in_range(self, ip: str) -> str:
        return f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {self.network}"

    async def allocate(self, ip: str, owner: Owner) -> None:
        index = self.index(ip)
        if index is None:
            raise AllocationError(self.not_in_range(ip))
        if not await self.claim(index, owner):
            raise AllocationError("provided IP is already allocated")

    async def allocate_next(self, owner: Owner) -> str:
        return self.name(await self.claim_any(owner))


class NodePortRange(KeyRange):
    """--service-node-port-range; dynamic ports prefer the part above the static band (86 ports)."""

    def __init__(self, store: etcd.EtcdStore, ports: str = DEFAULT_NODE_PORT_RANGE) -> None:
        self.first, self.last = parse_port_range(ports)
        size = self.last - self.first + 1
        super().__init__(store, PORT_PREFIX, size, _band(size, lo=16, hi=128, div=32))

    def name(self, index: int) -> str:
        return str(self.first + index)

    def index(self, name: str) -> int | None:
        try:
            value = int(name) - self.first
        except ValueError:
            return None
        return value if 0 <= value < self.size else None

    @property
    def text(self) -> str:
        return f"{self.first}-{self.last}"

    async def allocate(self, port: int, owner: Owner) -> None:
        index = self.index(str(port))
        if index is None:
            raise AllocationError(f"provided port is not in the valid range. The range of valid ports is {self.text}")
        if not await self.claim(index, owner):
            raise AllocationError("provided port is already allocated")

    async def allocate_next(self, owner: Owner) -> int:
        return self.first + await self.claim_any(owner)


def service_values(services: Iterable[dict]) -> tuple[dict[str, str], dict[str, str]]:
    """(cluster IP -> service uid, node port -> service uid) that live Services hold: what repair keeps."""
    ips: dict[str, str] = {}
    ports: dict[str, str] = {}
    for svc in services:
        uid = str((svc.get("metadata") or {}).get("uid") or "")
        spec = svc.get("spec") or {}
        for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
            if ip and ip != "None":
                ips[ip] = uid
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and port.get("nodePort"):
                ports[str(port["nodePort"])] = uid
    return ips, ports
