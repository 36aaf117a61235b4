"""The proxy's change tracker: after any sequence of Service and EndpointSlice events, the ports a
sync computes from only what changed equal `service_ports` over everything the stores hold."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.proxy import model

NAMES = ["web", "db", "dns"]
NAMESPACES = ["a", "b"]


def _service(namespace: str, name: str, port: int, ip_suffix: int, kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "ClusterIP", "clusterIP": f"10.96.0.{ip_suffix}",
                            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}
    if kind == "headless":
        spec["clusterIP"] = "None"
    elif kind == "external":
        spec = {"type": "ExternalName", "externalName": "example.invalid"}
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def _slice(namespace: str, name: str, service: str, ips: list[int], ready: bool, headless: bool) -> dict[str, Any]:
    labels = {model.SERVICE_NAME_LABEL: service, **({model.HEADLESS_LABEL: ""} if headless else {})}
    return {"metadata": {"namespace": namespace, "name": name, "labels": labels}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.232.0.{i}"], "conditions": {"ready": ready}} for i in ips]}


services = st.builds(_service, st.sampled_from(NAMESPACES), st.sampled_from(NAMES), st.integers(1, 3),
                     st.integers(2, 9), st.sampled_from(["plain", "plain", "headless", "external"]))
slices = st.builds(_slice, st.sampled_from(NAMESPACES), st.sampled_from(["s1", "s2", "s3"]), st.sampled_from(NAMES),
                   st.lists(st.integers(2, 9), max_size=3), st.booleans(), st.booleans())
events = st.lists(st.one_of(
    st.tuples(st.just("service"), st.booleans(), services),
    st.tuples(st.just("slice"), st.booleans(), slices),
    st.tuples(st.just("sync"), st.booleans(), st.none())), max_size=40)


class _Stores:
    """What two informers' stores hold, with the handler calls the proxier makes on each event."""

    def __init__(self, tracker: model.PortTracker) -> None:
        self.tracker = tracker
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.slices: dict[tuple[str, str], dict[str, Any]] = {}

    def put_or_delete(self, kind: str, delete: bool, obj: dict[str, Any]) -> None:
        store = self.services if kind == "service" else self.slices
        changed = self.tracker.service_changed if kind == "service" else self.tracker.slice_changed
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        old = store.get(key)
        if delete:
            if old is not None:
                del store[key]
                changed(old)
            return
        store[key] = obj
        changed(*([old, obj] if old is not None else [obj]))  # an update hands over both versions

    def slices_of(self, key: model.Key) -> list[dict[str, Any]]:
        return [sl for sl in self.slices.values() if model.slice_service(sl) == key]

    def sync(self, full: bool) -> list[model.ServicePort]:
        if full:
            self.tracker.reset()
        everything, inputs = self.tracker.take_changes(self.services.get, self.slices_of,
                                                       lambda: list(self.services.values()))
        return self.tracker.update(everything, self.tracker.ports_of(inputs))


@given(events)
@settings(max_examples=300, deadline=None)
def test_tracked_ports_equal_ports_computed_from_everything(sequence: list[tuple[str, bool, Any]]) -> None:
    stores = _Stores(model.PortTracker())
    for kind, flag, obj in sequence:
        if kind == "sync":
            stores.sync(full=flag)
        else:
            stores.put_or_delete(kind, flag, obj)
    expected = model.service_ports(list(stores.services.values()), list(stores.slices.values()))
    assert stores.sync(full=False) == expected
    assert not stores.tracker.pending


def test_a_sync_reads_only_the_services_that_changed() -> None:
    stores = _Stores(model.PortTracker())
    for i in range(50):
        stores.put_or_delete("service", False, _service("a", f"svc{i}", 1, 2, "plain"))
    assert len(stores.sync(full=False)) == 50  # the first sync: everything
    stores.put_or_delete("slice", False, _slice("a", "s1", "svc7", [3], True, False))
    everything, inputs = stores.tracker.take_changes(stores.services.get, stores.slices_of,
                                                     lambda: list(stores.services.values()))
    assert (everything, list(inputs)) == (False, [("a", "svc7")])


def test_a_failed_sync_gives_back_what_it_took() -> None:
    stores = _Stores(model.PortTracker())
    stores.sync(full=False)
    stores.put_or_delete("service", False, _service("a", "web", 1, 2, "plain"))
    taken = stores.tracker.take_changes(stores.services.get, stores.slices_of, lambda: list(stores.services.values()))
    assert not stores.tracker.pending
    stores.tracker.forget_pending(*taken)
    assert stores.tracker.pending and [sp.name for sp in stores.sync(full=False)] == ["web"]
