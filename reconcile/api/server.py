"""The API server: a Starlette app over the store, the registry and the watch caches."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import platform
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import reconcile
from reconcile.api import bootstrap, caches, discovery, handlers, http, openapi, registry, rest
from reconcile.core import errors
from reconcile.store import etcd

log = logging.getLogger("reconcile.api")


@dataclass
class ApiConfig:
    etcd_endpoints: list[str]
    etcd_prefix: str = "/registry"  # several clusters (and parallel tests) can share one etcd
    etcd_cacert: str | None = None  # TLS to etcd: CA bundle
    etcd_cert: str | None = None  # TLS to etcd: client certificate
    etcd_key: str | None = None  # TLS to etcd: client key
    bookmark_interval: float = 30.0  # idle watches with allowWatchBookmarks get one at least this often
    compaction_interval: float = 300.0  # etcd history kept (seconds); 0 disables compaction
    extra: dict[str, str] = field(default_factory=dict)


class ApiServer:
    """Owns the long-lived parts; the Starlette app calls into it."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        tls = None
        if config.etcd_cert or config.etcd_cacert:
            tls = etcd.TLSConfig(ca_file=config.etcd_cacert, cert_file=config.etcd_cert, key_file=config.etcd_key)
        self.store = etcd.EtcdStore(config.etcd_endpoints, prefix=config.etcd_prefix, tls=tls)
        self.registry = registry.Registry()
        self.caches = caches.CacheSet(self.store)
        self.rest = rest.Rest(self.store, self.registry, self.caches)
        self.crds = bootstrap.CrdSync(self.rest)
        self.rest.on_crd_stored = self.crds.stored
        self.rest.on_crd_removed = self.crds.removed
        self.caches.listeners[("apiextensions.k8s.io", "customresourcedefinitions")] = self.crds.on_cache_event
        self.handlers = handlers.ResourceHandlers(self.rest, bookmark_interval=config.bookmark_interval)
        self.ready = False
        self._compactor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.store.open()
        await bootstrap.install_builtins(self.rest, self.crds)
        await asyncio.gather(*(self.caches.ensure(r) for r in self.registry.resources()))
        await bootstrap.ensure_namespaces(self.rest)
        if self.config.compaction_interval > 0:
            self._compactor = asyncio.create_task(self._compact_forever())
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._compactor:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        await self.caches.stop()
        await self.store.close()

    async def _compact_forever(self) -> None:
        """Like kube-apiserver: every interval, compact to the revision seen one interval ago."""
        previous: int | None = None
        while True:
            await asyncio.sleep(self.config.compaction_interval)
            try:
                current = await self.store.current_revision()
                if previous:
                    await self.store.compact(previous)
                    self.caches.compacted(previous)
                previous = current
            except errors.Compacted:
                previous = None
            except Exception as exc:
                log.warning("compaction failed: %s", exc)


def create_app(config: ApiConfig) -> ResourceFastPath:
    server = ApiServer(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    def guarded(endpoint):  # type: ignore[no-untyped-def]
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except errors.ApiError as error:
                return http.status_response(error)
            except errors.StoreUnavailable as exc:
                return http.status_response(errors.ServiceUnavailable(f"storage is unavailable: {exc}"))
            except errors.StorageError as exc:
                return http.status_response(errors.InternalError(f"Internal error occurred: {exc}"))
            except Exception as exc:
                log.exception("internal error serving %s %s", request.method, request.url.path)
                return http.status_response(errors.InternalError(f"Internal error occurred: {exc}",
                                                                 details={"causes": [{"message": str(exc)}]}))

        return run

    async def version(request: Request) -> Response:
        return http.json_response(version_info())

    async def health(request: Request) -> Response:
        if not server.ready:
            return PlainTextResponse("not ready", status_code=503)
        return PlainTextResponse("ok")

    async def core_versions(request: Request) -> Response:
        if _wants_aggregated(request):
            return http.json_response(discovery.aggregated_discovery(server.registry, core=True),
                                      content_type=http.DISCOVERY_CONTENT_TYPE)
        return http.json_response(discovery.api_versions())

    async def group_list(request: Request) -> Response:
        if _wants_aggregated(request):
            return http.json_response(discovery.aggregated_discovery(server.registry, core=False),
                                      content_type=http.DISCOVERY_CONTENT_TYPE)
        return http.json_response(discovery.api_group_list(server.registry))

    async def group(request: Request) -> Response:
        name = request.path_params["group"]
        if name not in server.registry.group_versions():
            raise errors.NotFound("the server could not find the requested resource")
        return http.json_response(discovery.api_group(server.registry, name))

    async def openapi_index(request: Request) -> Response:
        return http.json_response(openapi.openapi_index(server.registry))

    async def openapi_document(request: Request) -> Response:
        group, version = openapi.parse_gv_path(request.path_params["path"])
        if version not in server.registry.group_versions().get(group, []):
            raise errors.NotFound("the server could not find the requested resource")
        return http.json_response(openapi.openapi_document(server.registry, group, version))

    async def not_found(request: Request) -> Response:
        raise errors.NotFound("the server could not find the requested resource")

    # Resource paths first (Starlette tries routes in order, one regex each); no two routes overlap
    # except /apis/{group} before /apis/{rest:path}.
    routes = [
        Route("/api", guarded(core_versions)),
        Route("/api/", guarded(core_versions)),
        Route("/api/{rest:path}", guarded(server.handlers.dispatch), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/apis", guarded(group_list)),
        Route("/apis/", guarded(group_list)),
        Route("/apis/{group}", guarded(group)),
        Route("/apis/{rest:path}", guarded(server.handlers.dispatch), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/version", guarded(version)),
        Route("/version/", guarded(version)),
        Route("/healthz", health),
        Route("/readyz", health),
        Route("/livez", health),
        Route("/openapi/v3", guarded(openapi_index)),
        Route("/openapi/v3/{path:path}", guarded(openapi_document)),
        Route("/openapi/v2", guarded(not_found)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return ResourceFastPath(app, guarded(server.handlers.dispatch))


RESOURCE_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class ResourceFastPath:
    """Resource requests (nearly all traffic) go straight to the dispatcher, skipping Starlette's
    router and middleware stack; the same handler and error mapping serve them as through the routes.
    Everything else (discovery, OpenAPI, health, lifespan) goes through the Starlette app."""

    def __init__(self, app: Starlette, dispatch: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = app
        self.dispatch = dispatch
        self.state = app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in RESOURCE_METHODS and _is_resource_path(scope["path"]):
            response = await self.dispatch(http.ApiRequest(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_resource_path(path: str) -> bool:
    """`/api/{version}/...` or `/apis/{group}/{version}/...` (not the group and version indexes above them)."""
    if path.startswith("/api/"):
        return len(path) > 5 and path[5] != "/"
    if path.startswith("/apis/"):
        return path.count("/") >= 3 and not path.endswith("/") or path.count("/") >= 4
    return False


def _wants_aggregated(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "as=APIGroupDiscoveryList" in accept and "v=v2" in accept


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": f"v1.32.0+reconcile.{reconcile.__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{_arch()}",
    }


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def serve(config: ApiConfig, *, host: str = "127.0.0.1", port: int = 6443) -> None:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Requests allocate many short-lived dicts; the default young-generation threshold (700) runs the
    # collector thousands of times a second, and each full pass walks every cached object.
    gc.set_threshold(50_000, 20, 100)
    from reconcile.api.httpserver import ApiHttpProtocol

    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False,
                loop="uvloop", http=ApiHttpProtocol, proxy_headers=False, server_header=False,
                timeout_graceful_shutdown=5)
