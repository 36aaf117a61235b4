"""Baseline for GET by name: a bare Starlette app on uvicorn serving objects from a dict.

Same uvicorn settings as `reconcile apiserver` (uvloop, httptools, no access log, one worker), so
the gap to it is the cost of our request handling. Usage: bare_starlette.py PORT OBJECTS_JSON
(a JSON object mapping name -> object; each is served as its orjson bytes).
"""

from __future__ import annotations

import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def build(objects: dict[str, bytes]) -> Starlette:
    """The app: GET /api/v1/namespaces/{namespace}/configmaps/{name} from `objects`, plus /readyz."""

    async def get(request: Request) -> Response:
        raw = objects.get(request.path_params["name"])
        if raw is None:
            return Response(b'{"kind":"Status","code":404}', status_code=404, media_type="application/json")
        return Response(raw, media_type="application/json")

    async def ready(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[
        Route("/api/v1/namespaces/{namespace}/configmaps/{name}", get),
        Route("/readyz", ready),
    ])


def main() -> None:
    port = int(sys.argv[1])
    with open(sys.argv[2], "rb") as f:
        objects = {name: orjson.dumps(obj) for name, obj in orjson.loads(f.read()).items()}
    uvicorn.run(build(objects), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools", workers=1)


if __name__ == "__main__":
    main()
