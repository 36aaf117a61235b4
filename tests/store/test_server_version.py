"""The store reads each etcd member's version from its `/version`, and refuses what it cannot serve."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from reconcile.core import errors
from reconcile.store import etcd
from tests import support


async def test_server_version_is_what_etcd_reports(etcd_endpoint: str, key_prefix: str) -> None:
    def read() -> dict[str, str]:
        with urllib.request.urlopen(etcd_endpoint + "/version", timeout=5) as response:
            return json.loads(response.read())

    reported = await asyncio.to_thread(read)
    async with etcd.EtcdStore([etcd_endpoint], prefix=key_prefix) as store:
        version = await store.server_version()
    assert version == etcd.ServerVersion(server=reported["etcdserver"], cluster=reported["etcdcluster"])


@contextlib.asynccontextmanager
async def _serve(version: dict[str, str] | None) -> AsyncIterator[str]:
    """A real HTTP server on a free port that answers `/version` with `version` (404 if None)."""

    async def answer(request: web.Request) -> web.Response:
        if version is None:
            return web.Response(status=404, text="not etcd")
        return web.json_response(version)

    app = web.Application()
    app.router.add_get("/version", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = support.free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def old_etcd() -> AsyncIterator[str]:
    async with _serve({"etcdserver": "3.3.27", "etcdcluster": "3.3.0"}) as url:
        yield url


@pytest.fixture
async def not_etcd() -> AsyncIterator[str]:
    async with _serve(None) as url:
        yield url


async def test_a_member_older_than_the_minimum_is_refused(old_etcd: str) -> None:
    async with etcd.EtcdStore([old_etcd]) as store:
        with pytest.raises(errors.StorageError, match=r"3\.3\.27.*3\.4\.0"):
            await store.get("k")


async def test_an_endpoint_without_etcd_version_is_unavailable(not_etcd: str) -> None:
    async with etcd.EtcdStore([not_etcd], request_timeout=5) as store:
        with pytest.raises(errors.StoreUnavailable, match="/version"):
            await store.create("k", b"x")


async def test_fails_over_past_an_endpoint_without_etcd_version(not_etcd: str, etcd_endpoint: str,
                                                                key_prefix: str) -> None:
    """Nothing reached a gateway there, so even a write (never retried once sent) moves on."""
    async with etcd.EtcdStore([not_etcd, etcd_endpoint], prefix=key_prefix) as store:
        revision = await store.create("k", b"x")
        assert store.stats["failovers"] == 1
        assert (await store.get("k"))[0].mod_revision == revision  # type: ignore[union-attr]
