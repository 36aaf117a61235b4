"""The fuzz suite's fixtures: a real API server per test module (the root conftest's `api_server`),
one namespace in it, the Gadget CRD installed there; and the figures printed at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import support
from tests.fuzz import bodies, tally, targets, wire


@pytest.fixture(scope="module")
def session(api_server: str) -> Iterator[wire.Session]:
    """The module's server with a namespace and the Gadget CRD; checks /healthz after the module."""
    fuzz = wire.Session(api_server, namespace="fuzz")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fuzz.namespace}}
    fuzz.expect(wire.Request("POST", "/api/v1/namespaces", body=bodies.Body(bodies.to_json(namespace),
                                                                             "application/json", "setup")), 201)
    crd = bodies.Body(bodies.to_json(targets.gadget_crd()), "application/json", "setup")
    fuzz.expect(wire.Request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd), 201)

    def served() -> bool:
        response = fuzz.client.get(f"/apis/{targets.GADGET_GROUP}/v1")
        return response.status_code == 200 and any(r["name"] == "gadgets" for r in response.json()["resources"])

    support.wait_for(served, timeout=10, what="the Gadget CRD served")
    try:
        yield fuzz
        assert fuzz.healthy(), "the API server's /healthz is not 200 after fuzzing"
    finally:
        fuzz.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not tally.TALLY.examples:
        return
    for line in tally.TALLY.lines():
        terminalreporter.write_line(line)
    report = os.environ.get("RECONCILE_FUZZ_REPORT")
    if report:
        tally.TALLY.write(Path(report))
