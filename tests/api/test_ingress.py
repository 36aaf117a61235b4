"""Ingresses and IngressClasses through a real API server (real etcd): upstream's validation (422
naming the field), the DefaultIngressClass admission, /status, and `kubectl get ing` columns.
Nothing routes traffic: the objects are stored and validated."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.api import helpers

NET = "/apis/networking.k8s.io/v1"
CLASSES = f"{NET}/ingressclasses"
DEFAULT = "ingressclass.kubernetes.io/is-default-class"


def ingresses(ns: str, name: str | None = None) -> str:
    return f"{NET}/namespaces/{ns}/ingresses" + (f"/{name}" if name else "")


def backend(name: str = "svc", port: int | str = 80) -> dict[str, Any]:
    return {"service": {"name": name, "port": {"number": port} if isinstance(port, int) else {"name": port}}}


def ingress(name: str, *, host: str | None = "foo.com", path: str = "/bar", path_type: str | None = "Exact",
            **spec: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "backend": backend()}
    if path_type is not None:
        entry["pathType"] = path_type
    rule: dict[str, Any] = {"http": {"paths": [entry]}}
    if host is not None:
        rule["host"] = host
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"rules": [rule], **spec}}


def ingress_class(name: str, controller: str = "example.com/ingress", *, default: bool = False,
                  **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if default:
        metadata["annotations"] = {DEFAULT: "true"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": metadata,
            "spec": {"controller": controller, **spec}}


def _causes(response: httpx.Response) -> list[tuple[str, str]]:
    return [(c.get("field", ""), c["message"]) for c in response.json()["details"]["causes"]]


def test_an_ingress_is_stored_with_an_empty_status(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, ingresses(ns), ingress("web", tls=[{"hosts": ["foo.com"], "secretName": "tls"}]))
    assert created["status"] == {"loadBalancer": {}}
    assert created["spec"]["rules"][0]["http"]["paths"][0] == {"path": "/bar", "pathType": "Exact",
                                                               "backend": backend()}
    assert "ingressClassName" not in created["spec"]  # no default class in this namespace's cluster yet
    status = {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}, {"hostname": "lb.example.com"}]}}
    written = client.patch(ingresses(ns, "web") + "/status", json={"status": status}, headers=helpers.MERGE)
    assert written.status_code == 200 and written.json()["status"] == status, written.text
    spec_change = client.patch(ingresses(ns, "web") + "/status", json={"spec": {"rules": None}}, headers=helpers.MERGE)
    assert spec_change.json()["spec"]["rules"] == created["spec"]["rules"]  # /status writes only the status
    bad = client.patch(ingresses(ns, "web") + "/status", headers=helpers.MERGE,
                       json={"status": {"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}}})
    helpers.assert_status(bad, 422, "Invalid")
    assert _causes(bad) == [("status.loadBalancer.ingress[0].ip", 'Invalid value: "not-an-ip": must be a valid IP '
                                                                  "address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]


def _rule_path(body: dict[str, Any]) -> dict[str, Any]:
    return body["spec"]["rules"][0]["http"]["paths"][0]


def _with(change: Any) -> dict[str, Any]:
    body = ingress("bad")
    change(body)
    return body


SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
             "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
P = "spec.rules[0].http.paths[0]"


@pytest.mark.parametrize("body, field, message", [
    (ingress("bad", path_type=None), f"{P}.pathType", "Required value: pathType must be specified"),
    (ingress("bad", path_type="Regex"), f"{P}.pathType",
     'Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"'),
    (ingress("bad", path="bar"), f"{P}.path", 'Invalid value: "bar": must be an absolute path'),
    (ingress("bad", path="/a//b", path_type="Prefix"), f"{P}.path", "Invalid value: \"/a//b\": must not contain '//'"),
    (ingress("bad", path="x", path_type="ImplementationSpecific"), f"{P}.path",
     'Invalid value: "x": must be an absolute path'),
    (ingress("bad", host="Foo.com"), "spec.rules[0].host", f'Invalid value: "Foo.com": {SUBDOMAIN}'),
    (ingress("bad", host="10.0.0.1"), "spec.rules[0].host",
     'Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
    (ingress("bad", host="foo.*.com"), "spec.rules[0].host",
     "Invalid value: \"foo.*.com\": a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
     "subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric "
     "character (e.g. '*.example.com', regex used for validation is "
     "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    (_with(lambda b: _rule_path(b).update(backend={})), f"{P}.backend",
     'Invalid value: "": resource or service backend is required'),
    (_with(lambda b: _rule_path(b).update(backend={"service": {"name": "svc", "port": {}}})), f"{P}.backend",
     "Required value: port name or number is required"),
    (_with(lambda b: _rule_path(b).update(backend={"service": {"name": "svc", "port": {"number": 70000}}})),
     f"{P}.backend.service.port.number", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    (_with(lambda b: _rule_path(b).update(backend={"service": {"name": "svc", "port": {"number": 80, "name": "h"}}})),
     f"{P}.backend", 'Invalid value: "": cannot set both port name & port number'),
    (_with(lambda b: _rule_path(b).update(backend={"service": {"name": "1svc", "port": {"number": 80}}})),
     f"{P}.backend.service.name", "Invalid value: \"1svc\": a DNS-1035 label must consist of lower case "
     "alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character "
     "(e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
    (_with(lambda b: _rule_path(b).update(backend={"service": {"name": "svc", "port": {"name": "HTTP"}}})),
     f"{P}.backend.service.port.name",
     'Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'),
    (_with(lambda b: _rule_path(b).update(backend={"resource": {"kind": "Bucket"}})), f"{P}.backend.resource.name",
     "Required value: name is required"),
    (_with(lambda b: _rule_path(b).update(backend={"resource": {"kind": "B", "name": "n"}, **backend()})),
     f"{P}.backend", 'Invalid value: "": cannot set both resource and service backends'),
    (_with(lambda b: b["spec"].pop("rules")), "spec",
     "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"),
    (_with(lambda b: b["spec"].update(tls=[{"hosts": ["Bad_Host"]}])), "spec.tls[0].hosts[0]",
     f'Invalid value: "Bad_Host": {SUBDOMAIN}'),
    (_with(lambda b: b["spec"].update(ingressClassName="Nope")), "spec.ingressClassName",
     f'Invalid value: "Nope": {SUBDOMAIN}'),
    (_with(lambda b: b.update(metadata={"name": "bad", "annotations": {"kubernetes.io/ingress.class": "a"}},
                              spec={**b["spec"], "ingressClassName": "b"})),
     "annotations.kubernetes.io/ingress.class", 'Invalid value: "a": must match `ingressClassName` when both are '
                                                "specified"),
], ids=["no-path-type", "unknown-path-type", "relative-exact-path", "double-slash", "relative-specific-path",
        "uppercase-host", "ip-host", "inner-wildcard", "no-backend", "no-port", "port-out-of-range", "name-and-number",
        "bad-service-name", "bad-port-name", "resource-without-name", "service-and-resource", "no-rules-no-default",
        "bad-tls-host", "bad-class-name", "annotation-disagrees"])
def test_bad_ingresses_are_422_naming_the_field(client: httpx.Client, ns: str, body: dict, field: str,
                                                message: str) -> None:
    refused = client.post(ingresses(ns), json=body)
    helpers.assert_status(refused, 422, "Invalid")
    assert (field, message) in _causes(refused), refused.json()
    assert client.get(ingresses(ns, "bad")).status_code == 404


def test_good_hosts_paths_and_backends_are_stored(client: httpx.Client, ns: str) -> None:
    body = ingress("wild", host="*.foo.com", path="/", path_type="Prefix",
                   defaultBackend={"resource": {"apiGroup": "example.com", "kind": "Bucket", "name": "static"}})
    body["spec"]["rules"].append({"http": {"paths": [{"pathType": "ImplementationSpecific",
                                                      "backend": backend("api", "https")}]}})
    created = helpers.create(client, ingresses(ns), body)
    assert created["spec"]["defaultBackend"]["resource"]["name"] == "static"
    wider = copy.deepcopy(created)
    wider["spec"]["rules"][0]["host"] = "bar.com"
    replaced = client.put(ingresses(ns, "wild"), json=wider)
    assert replaced.status_code == 200, replaced.text
    worse = replaced.json()
    _rule_path(worse).pop("pathType")
    refused = client.put(ingresses(ns, "wild"), json=worse)
    helpers.assert_status(refused, 422, "Invalid")
    assert _causes(refused) == [(f"{P}.pathType", "Required value: pathType must be specified")]


@pytest.mark.parametrize("body, field, message", [
    (ingress_class("bad", "nginx"), "spec.controller",
     'Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")'),
    (ingress_class("bad", ""), "spec.controller", "Required value"),
    (ingress_class("bad", "example.com/" + "x" * 250), "spec.controller",
     "Too long: may not be more than 250 bytes"),
    (ingress_class("bad", parameters={"kind": "Params", "name": "p", "scope": "Namespace"}),
     "spec.parameters.namespace", "Required value: `parameters.scope` is set to 'Namespace'"),
    (ingress_class("bad", parameters={"kind": "Params", "name": "p", "namespace": "x"}),
     "spec.parameters.namespace", "Forbidden: `parameters.scope` is set to 'Cluster'"),
    (ingress_class("bad", parameters={"kind": "Params", "name": "p", "scope": "World"}), "spec.parameters.scope",
     'Unsupported value: "World": supported values: "Cluster", "Namespace"'),
    (ingress_class("bad", parameters={"name": "p"}), "spec.parameters.kind", "Required value: kind is required"),
], ids=["not-domain-prefixed", "empty", "too-long", "namespace-scope-without-namespace",
        "cluster-scope-with-namespace", "unknown-scope", "no-kind"])
def test_bad_ingress_classes_are_422_naming_the_field(client: httpx.Client, body: dict, field: str,
                                                      message: str) -> None:
    refused = client.post(CLASSES, json=body)
    helpers.assert_status(refused, 422, "Invalid")
    assert (field, message) in _causes(refused), refused.json()


def test_a_class_controller_is_immutable_and_parameters_default_to_cluster(client: httpx.Client) -> None:
    name = helpers.unique("ic")
    created = helpers.create(client, CLASSES, ingress_class(name, parameters={
        "apiGroup": "k8s.example.com", "kind": "Params", "name": "p"}))
    assert created["spec"]["parameters"]["scope"] == "Cluster"
    try:
        refused = client.patch(f"{CLASSES}/{name}", json={"spec": {"controller": "example.com/other"}},
                               headers=helpers.MERGE)
        helpers.assert_status(refused, 422, "Invalid")
        assert ("spec.controller", 'Invalid value: "example.com/other": field is immutable') in _causes(refused)
    finally:
        client.delete(f"{CLASSES}/{name}")


def test_the_newest_default_class_is_given_to_ingresses_without_one(client: httpx.Client, ns: str) -> None:
    older, newer = helpers.unique("ic-old"), helpers.unique("ic-new")
    helpers.create(client, CLASSES, ingress_class(older, default=True))
    try:
        assert helpers.create(client, ingresses(ns), ingress("one"))["spec"]["ingressClassName"] == older
        helpers.create(client, CLASSES, ingress_class(newer, default=True))
        try:
            stamps = {n: client.get(f"{CLASSES}/{n}").json()["metadata"]["creationTimestamp"] for n in (older, newer)}
            # the newest; two made within one second (timestamps have seconds): the first by name
            expected = newer if stamps[newer] > stamps[older] else min(older, newer)
            assert helpers.create(client, ingresses(ns), ingress("four"))["spec"]["ingressClassName"] == expected
            explicit = helpers.create(client, ingresses(ns), ingress("two", ingressClassName="mine"))
            assert explicit["spec"]["ingressClassName"] == "mine"
            legacy = ingress("three")
            legacy["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
            assert "ingressClassName" not in helpers.create(client, ingresses(ns), legacy)["spec"]
        finally:
            client.delete(f"{CLASSES}/{newer}")
    finally:
        client.delete(f"{CLASSES}/{older}")
    updated = client.patch(ingresses(ns, "one"), json={"spec": {"ingressClassName": None}}, headers=helpers.MERGE)
    assert "ingressClassName" not in updated.json()["spec"]  # an update never gains the default


def test_ingresses_and_classes_print_upstreams_columns(client: httpx.Client, ns: str) -> None:
    many = ingress("many", ingressClassName="nginx", tls=[{"hosts": ["a.com"]}])
    many["spec"]["rules"] = [{"host": h} for h in ("a.com", "b.com", "c.com", "d.com", "e.com")]
    helpers.create(client, ingresses(ns), many)
    helpers.create(client, ingresses(ns), ingress("catchall", host=None))
    client.patch(ingresses(ns, "many") + "/status", headers=helpers.MERGE, json={"status": {"loadBalancer": {
        "ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.example.com"}, {"ip": "10.0.0.2"}]}}})
    table = client.get(ingresses(ns), headers={"Accept": helpers.TABLE_ACCEPT}).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    rows = {r["cells"][0]: r["cells"][:5] for r in table["rows"]}
    assert rows["many"] == ["many", "nginx", "a.com,b.com,c.com + 2 more...", "10.0.0.2,lb.example.com", "80, 443"]
    assert rows["catchall"] == ["catchall", "<none>", "*", "", "80"]
    name = helpers.unique("ic")
    helpers.create(client, CLASSES, ingress_class(name, parameters={"apiGroup": "k8s.example.com", "kind": "Params",
                                                                    "name": "p"}))
    try:
        table = client.get(CLASSES, headers={"Accept": helpers.TABLE_ACCEPT}).json()
        assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Controller", "Parameters", "Age"]
        row = next(r["cells"] for r in table["rows"] if r["cells"][0] == name)
        assert row[1:3] == ["example.com/ingress", "Params.k8s.example.com/p"]
    finally:
        client.delete(f"{CLASSES}/{name}")
