"""The resourcequota controller's periodic recount: a charge that no stored object backs (admission
charged it, then the write failed) is released at the next resync."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import api
from tests import support
from tests.controllers import helpers
from tests.controllers.test_resourcequota import _pod, _quota, _status, _wait_used

RESYNC = 1.0


@pytest.fixture(scope="module")
def controller_manager(api_server: str) -> Iterator[helpers.ControllerManagerProcess]:
    process = helpers.ControllerManagerProcess(api_server, extra_args=("--resource-quota-sync-period", str(RESYNC)))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_a_charge_nothing_backs_is_released_at_resync(client: api.Client, ns: str, controller_manager: Any) -> None:
    client.create("v1", "resourcequotas", _quota("drift", {"pods": "3"}), namespace=ns)
    _wait_used(client, ns, "drift", {"pods": "0"})
    # as if admission charged three creates that then failed to be stored
    quota = client.get("v1", "resourcequotas", "drift", namespace=ns)
    quota["status"]["used"] = {"pods": "3"}
    client.replace("v1", "resourcequotas", quota, namespace=ns, subresource="status")
    released = support.wait_for(lambda: (status := _status(client, ns, "drift")).get("used") == {"pods": "0"}
                                and status, timeout=RESYNC * 20, what="the unbacked charges released")
    assert released["used"] == {"pods": "0"} and released["hard"] == {"pods": "3"}
    fits = client.create("v1", "pods", _pod("fits"), namespace=ns)  # admission sees the room again
    assert fits["metadata"]["name"] == "fits" and fits["metadata"]["uid"]
