"""Paths, parameters, error mapping and watch-line parsing (no server needed)."""

from __future__ import annotations

import json

import httpx
import pytest

from reconcile.client import api, wire
from reconcile.client import options as options_mod
from reconcile.core import errors
from tests import support


def test_paths_core_and_groups() -> None:
    assert wire.collection_path("v1", "pods") == "/api/v1/pods"
    assert wire.collection_path("v1", "pods", namespace="ns") == "/api/v1/namespaces/ns/pods"
    assert wire.collection_path("apps/v1", "deployments") == "/apis/apps/v1/deployments"
    assert (
        wire.object_path("apps/v1", "deployments", "web", namespace="prod", subresource="scale")
        == "/apis/apps/v1/namespaces/prod/deployments/web/scale"
    )
    assert wire.object_path("v1", "namespaces", "kube-system") == "/api/v1/namespaces/kube-system"


def test_path_segments_cannot_escape() -> None:
    assert (
        wire.object_path("v1", "configmaps", "a/b", namespace="n") == "/api/v1/namespaces/n/configmaps/a%2Fb"
    )
    with pytest.raises(errors.BadRequest):
        wire.object_path("v1", "configmaps", "..", namespace="n")
    with pytest.raises(errors.BadRequest):
        wire.object_path("v1", "configmaps", "", namespace="n")


def test_list_and_watch_params() -> None:
    options = options_mod.ListOptions(label_selector="app in (a,b)", field_selector="status.phase=Running", limit=5,
                          continue_="tok", resource_version="0", resource_version_match="NotOlderThan")
    spec = wire.list_request("v1", "pods", namespace="n", options=options)
    assert spec.params == {
        "labelSelector": "app in (a,b)",
        "fieldSelector": "status.phase=Running",
        "limit": "5",
        "continue": "tok",
        "resourceVersion": "0",
        "resourceVersionMatch": "NotOlderThan",
    }
    # the same options on a watch: no paging, no resourceVersionMatch (upstream rejects them there)
    assert wire.watch_request("v1", "pods", options=options).params == {
        "labelSelector": "app in (a,b)",
        "fieldSelector": "status.phase=Running",
        "watch": "true",
        "resourceVersion": "0",
        "allowWatchBookmarks": "true",
    }
    watch = wire.watch_request("v1", "pods", options=options_mod.ListOptions(resource_version="12", timeout_seconds=5))
    assert watch.stream and watch.params == {
        "watch": "true",
        "resourceVersion": "12",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "5",
    }
    assert watch.read_timeout == 35.0
    assert wire.watch_request("v1", "pods", options=options_mod.ListOptions(allow_bookmarks=False)).read_timeout is None
    collection = wire.delete_collection_request("v1", "pods", options=options)
    assert collection.params == {"labelSelector": "app in (a,b)", "fieldSelector": "status.phase=Running"}


def test_write_params_and_namespace_from_object() -> None:
    obj = {"metadata": {"name": "x", "namespace": "from-obj"}}
    spec = wire.create_request(
        "v1", "configmaps", obj, dry_run=True, field_manager="me", field_validation="Strict"
    )
    assert spec.path == "/api/v1/namespaces/from-obj/configmaps"
    assert spec.params == {"dryRun": "All", "fieldManager": "me", "fieldValidation": "Strict"}
    assert (
        wire.replace_request("v1", "configmaps", obj, namespace="arg").path
        == "/api/v1/namespaces/arg/configmaps/x"
    )


def test_patch_content_types() -> None:
    for patch_type, content_type in wire.PATCH_CONTENT_TYPES.items():
        spec = wire.patch_request(
            "v1",
            "pods",
            "p",
            {"a": 1},
            namespace="n",
            patch_type=patch_type,  # type: ignore[arg-type]
            field_manager="m",
            force=patch_type == "apply",
        )
        assert spec.headers["Content-Type"] == content_type
        assert json.loads(spec.content or b"") == {"a": 1}
    assert wire.patch_request(
        "v1", "pods", "p", [], patch_type="apply", field_manager="m", force=True
    ).params == {
        "fieldManager": "m",
        "force": "true",
    }
    with pytest.raises(errors.BadRequest, match="fieldManager is required"):
        wire.patch_request("v1", "pods", "p", {}, patch_type="apply")
    with pytest.raises(errors.BadRequest, match="unknown patch type"):
        wire.patch_request("v1", "pods", "p", {}, patch_type="xml")  # type: ignore[arg-type]


def test_delete_params() -> None:
    spec = wire.delete_request(
        "apps/v1",
        "deployments",
        "web",
        namespace="n",
        propagation_policy="Foreground",
        grace_period_seconds=0,
        preconditions={"uid": "u1"},
    )
    assert spec.params == {"propagationPolicy": "Foreground", "gracePeriodSeconds": "0"}
    assert spec.json["preconditions"] == {"uid": "u1"}


def response(code: int, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.Response(
        code,
        content=body,
        headers={"content-type": content_type},
        request=httpx.Request("GET", "http://x/api/v1/pods"),
    )


def test_status_bodies_map_to_typed_errors() -> None:
    status = errors.Conflict.for_resource("deployments", "web", "apps").to_status()
    err = wire.error_for(response(409, json.dumps(status).encode()))
    assert isinstance(err, errors.Conflict) and "has been modified" in err.message
    exists = errors.AlreadyExists.for_resource("configmaps", "c").to_status()
    assert isinstance(wire.error_for(response(409, json.dumps(exists).encode())), errors.AlreadyExists)


def test_non_json_error_bodies_map_by_code() -> None:
    err = wire.error_for(response(404, b"404 page not found", "text/plain"))
    assert isinstance(err, errors.NotFound) and err.code == 404 and "page not found" in err.message
    assert isinstance(wire.error_for(response(503, b"")), errors.ServiceUnavailable)
    assert isinstance(wire.error_for(response(422, b'{"not": "a status"}')), errors.Invalid)
    with pytest.raises(errors.Gone):
        wire.decode(response(410, b"gone"))


def test_watch_lines() -> None:
    assert wire.parse_watch_line(b"") is None
    event = wire.parse_watch_line(b'{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n')
    assert event == {"type": "ADDED", "object": {"metadata": {"name": "a"}}}
    expired = {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "code": 410,
            "reason": "Expired",
            "message": "too old resource version: 1 (5)",
        },
    }
    with pytest.raises(errors.Gone, match="too old"):
        wire.parse_watch_line(json.dumps(expired))
    with pytest.raises(errors.InternalError):
        wire.parse_watch_line(json.dumps({"type": "ERROR", "object": {"code": 500, "message": "boom"}}))
    with pytest.raises(errors.InternalError, match="malformed"):
        wire.parse_watch_line("{not json")


def test_unreachable_server_is_service_unavailable_naming_it() -> None:
    url = f"http://127.0.0.1:{support.free_port()}"
    with api.Client(url) as client, pytest.raises(errors.ServiceUnavailable, match=url.replace(".", r"\.")):
        client.get("v1", "namespaces", "default")


async def test_unreachable_server_async() -> None:
    from reconcile.client import aio

    url = f"http://127.0.0.1:{support.free_port()}"
    async with aio.AsyncClient(url) as client:
        with pytest.raises(errors.ServiceUnavailable, match="cannot reach the API server"):
            await client.list("v1", "pods")
