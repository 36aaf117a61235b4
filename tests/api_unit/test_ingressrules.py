"""Ingress and IngressClass validation (`api.ingressrules`), pure: hosts, paths by pathType,
backends, the domain-prefixed controller and the default class; properties where they fit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.api import ingressrules
from reconcile.core import names

LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
SUBDOMAIN = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
SERVICE = {"service": {"name": "svc", "port": {"number": 80}}}


def _rule(host: str) -> list:
    return ingressrules.rule_causes({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                                       "backend": SERVICE}]}}, "r")


@given(SUBDOMAIN)
def test_subdomains_and_their_leftmost_wildcards_are_hosts(host: str) -> None:
    assert _rule(host) == [] or ingressrules._is_ip(host)
    assert _rule(f"*.{host}") == []


@given(SUBDOMAIN, SUBDOMAIN)
def test_a_wildcard_anywhere_but_the_leftmost_label_is_refused(left: str, right: str) -> None:
    causes = _rule(f"{left}.*.{right}")
    assert [c["field"] for c in causes] == ["r.host"]
    assert "a wildcard DNS-1123 subdomain must start with '*.'" in causes[0]["message"]
    assert [c["field"] for c in _rule("*")] == ["r.host"]


@pytest.mark.parametrize("host", ["10.0.0.1", "::1"])
def test_an_ip_is_not_a_host(host: str) -> None:
    assert any("must be a DNS name, not an IP address" in c["message"] for c in _rule(host))


@given(st.text(alphabet="/ab.%2fF", max_size=12), st.sampled_from(["Exact", "Prefix"]))
def test_exact_and_prefix_paths_are_clean_absolute_paths(path: str, kind: str) -> None:
    causes = ingressrules.http_path_causes({"path": path, "pathType": kind, "backend": SERVICE}, "p")
    clean = (path.startswith("/") and not any(bad in path for bad in ("//", "/./", "/../", "%2f", "%2F"))
             and not path.endswith(("/..", "/.")))
    assert (causes == []) == clean
    assert all(c["field"] == "p.path" for c in causes)


@given(st.text(alphabet="/ab.", max_size=8))
def test_implementation_specific_paths_may_be_empty_or_anything_absolute(path: str) -> None:
    causes = ingressrules.http_path_causes({"path": path, "pathType": "ImplementationSpecific",
                                            "backend": SERVICE}, "p")
    assert (causes == []) == (path == "" or path.startswith("/"))


@given(st.integers(min_value=-70000, max_value=140000))
def test_port_numbers_are_one_to_65535(number: int) -> None:
    causes = ingressrules.backend_causes({"service": {"name": "svc", "port": {"number": number}}}, "b")
    if number == 0:
        assert causes[0]["message"] == "Required value: port name or number is required"
    else:
        assert (causes == []) == (1 <= number <= 65535)


def test_a_path_type_is_required_and_one_of_three() -> None:
    assert ingressrules.http_path_causes({"path": "/", "backend": SERVICE}, "p") == [
        {"field": "p.pathType", "reason": "FieldValueRequired", "message": "Required value: pathType must be specified"}]
    assert ingressrules.http_path_causes({"path": "/", "pathType": "exact", "backend": SERVICE}, "p")[0]["reason"] == \
        "FieldValueNotSupported"


@given(SUBDOMAIN, st.from_regex(r"[A-Za-z0-9._~-]{1,10}", fullmatch=True))
def test_controllers_are_domain_prefixed_paths(domain: str, path: str) -> None:
    assert ingressrules.controller_causes(f"{domain}/{path}", "c") == []
    assert ingressrules.controller_causes(domain, "c")[0]["message"].endswith(
        'must be a domain-prefixed path (such as "acme.io/foo")')


def test_the_default_class_is_the_newest_annotated_then_first_by_name() -> None:
    def cls(name: str, stamp: str, default: bool = True) -> dict:
        annotations = {ingressrules.DEFAULT_CLASS_ANNOTATION: "true" if default else "false"}
        return {"metadata": {"name": name, "creationTimestamp": stamp, "annotations": annotations}}
    assert ingressrules.default_class([cls("a", "2026-01-01T00:00:00Z", default=False)]) is None
    newest = ingressrules.default_class([cls("a", "2026-01-01T00:00:00Z"), cls("b", "2026-01-02T00:00:00Z"),
                                         cls("c", "2026-01-03T00:00:00Z", default=False)])
    assert newest is not None and newest["metadata"]["name"] == "b"
    tied = ingressrules.default_class([cls("z", "2026-01-01T00:00:00Z"), cls("m", "2026-01-01T00:00:00Z")])
    assert tied is not None and tied["metadata"]["name"] == "m"


def test_wildcard_hosts_have_the_subdomain_length_limit() -> None:
    long = "*." + ".".join(["a" * 60] * 5)
    assert names.max_len_error(253) in ingressrules.wildcard_subdomain_errors(long)
