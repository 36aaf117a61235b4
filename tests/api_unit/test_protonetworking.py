"""The networking.k8s.io/v1 protobuf tables: an Ingress and an IngressClass read back as their
JSON shapes (the rule's embedded IngressRuleValue in the rule, pointer fields kept), and the raw
bytes of a rule as gogo writes them (field numbers of upstream's networking/v1 generated.proto)."""

from __future__ import annotations

import pytest

from reconcile.api import protobodies
from reconcile.core import errors
from tests.api_unit import protoencode as pe

NET = "networking.k8s.io/v1"
INGRESS = {"metadata": {"name": "simple"}, "spec": {
    "ingressClassName": "nginx",
    "defaultBackend": {"service": {"name": "def", "port": {"number": 80}}},
    "tls": [{"hosts": ["foo.com"], "secretName": "secret"}],
    "rules": [{"host": "foo.com", "http": {"paths": [
        {"path": "/bar", "pathType": "Exact", "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}},
        {"path": "/", "pathType": "Prefix", "backend": {"resource": {"apiGroup": "", "kind": "B", "name": "b"}}}]}}]}}


def _read(kind: str, body: bytes) -> dict:
    read = protobodies.decoder_for(NET, kind)
    assert read is not None
    return read(body)


def test_an_ingress_reads_back() -> None:
    assert _read("Ingress", pe.body(NET, "Ingress", INGRESS)) == {"apiVersion": NET, "kind": "Ingress", **INGRESS}


def test_a_rule_as_gogo_writes_it() -> None:
    """IngressRule {host 1, ingressRuleValue 2 {http 1 {paths 1 {path 1, backend 2 {service 4 {name 1,
    port 2 {name 1, number 2}}}, pathType 3}}}}: `http` lands in the rule (an embedded struct)."""
    port = pe.length_delimited(1, b"") + pe.tag(2, 0) + pe.varint(8080)
    backend = pe.length_delimited(4, pe.length_delimited(1, b"svc1") + pe.length_delimited(2, port))
    path = pe.length_delimited(1, b"/bar") + pe.length_delimited(2, backend) + pe.length_delimited(3, b"Exact")
    rule = pe.length_delimited(1, b"foo.com") + pe.length_delimited(2, pe.length_delimited(1, pe.length_delimited(
        1, path)))
    raw = pe.length_delimited(1, pe.length_delimited(1, b"simple")) + pe.length_delimited(2, pe.length_delimited(
        3, rule)) + pe.length_delimited(3, pe.length_delimited(1, b""))
    assert _read("Ingress", pe.envelope(NET, "Ingress", raw))["spec"] == {"rules": [{"host": "foo.com", "http": {
        "paths": [{"path": "/bar", "pathType": "Exact",
                   "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}]}}]}


def test_an_ingress_class_reads_back() -> None:
    obj = {"metadata": {"name": "c"}, "spec": {"controller": "example.com/c", "parameters": {
        "apiGroup": "example.com", "kind": "P", "name": "p", "scope": "Namespace", "namespace": "n"}}}
    assert _read("IngressClass", pe.body(NET, "IngressClass", obj)) == {"apiVersion": NET, "kind": "IngressClass",
                                                                       **obj}


def test_a_hostile_ingress_is_a_400_naming_the_field() -> None:
    """A port number sent as a string (wire type 2) and a truncated body: 400s, never a crash."""
    port = pe.length_delimited(2, b"80")
    backend = pe.length_delimited(4, pe.length_delimited(2, port))
    raw = pe.length_delimited(2, pe.length_delimited(1, backend))
    with pytest.raises(errors.BadRequest, match=r"spec\.defaultBackend\.service\.port\.number: expected a varint"):
        _read("Ingress", pe.envelope(NET, "Ingress", raw))
    whole = pe.encode(protobodies.MESSAGES[(NET, "Ingress")], INGRESS)
    with pytest.raises(errors.BadRequest, match="malformed protobuf"):
        _read("Ingress", pe.envelope(NET, "Ingress", whole[:-3]))
