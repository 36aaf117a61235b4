"""Requests to the real API server, each answer checked against the properties every answer has.

Every request the suite sends (the fuzzed one, and the setup, read-back and cleanup around it) goes
through `Session.send`, so none escapes the checks: never a 5xx; a non-2xx answer is a well-formed
`Status` (kind Status, apiVersion v1, status Failure, a reason, a message, `code` equal to the HTTP
status; a 422 lists its causes); a 2xx answer is a JSON object. A failing check names the request
as a runnable httpx call, so any finding reproduces outside hypothesis.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from tests import support
from tests.fuzz import bodies, tally, targets

TRACE = os.environ.get("RECONCILE_FUZZ_TRACE")  # a file to append every fuzzed request and its answer to
WATCH_DEADLINE = 10.0  # a watch asked to end after 1s that is still open after this has hung


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    body: bodies.Body | None = None

    def reproduction(self, base_url: str) -> str:
        headers = dict(self.headers, **(self.body.headers() if self.body else {}))
        content = self.body.content if self.body else None
        shown = content if content is None or len(content) <= 2000 else content[:2000] + b"...<cut>"
        how = f"  # body: {self.body.how}, {len(content or b'')} bytes" if self.body else ""
        return (f"httpx.request({self.method!r}, {base_url + self.path!r}, params={list(self.params)!r}, "
                f"headers={headers!r}, content={shown!r}){how}")


def _raw(headers: dict[str, str]) -> dict[str, bytes]:
    """Header values as UTF-8 bytes: httpx would refuse a str beyond ASCII on our side of the wire."""
    return {name: value.encode() for name, value in headers.items()}


def segment(name: str) -> str:
    """A name as one path segment (whatever it holds)."""
    return quote(name, safe="")


class PropertyFailure(AssertionError):
    pass


def check_answer(response: httpx.Response, request: Request, base_url: str, *, streamed: bool = False) -> Any:
    """The properties of every answer; returns the decoded body (None for a watch stream)."""
    code = response.status_code

    def fail(why: str) -> PropertyFailure:
        text = "" if streamed and code < 300 else response.text[:3000]
        return PropertyFailure(f"{why}\n  request: {request.reproduction(base_url)}\n  answer: {code} "
                               f"{response.headers.get('content-type')!r} {text}")

    if code >= 500:
        raise fail("a 5xx answer")
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        raise fail("the answer is not JSON")
    if streamed and code < 300:
        return None
    try:
        body = response.json()
    except ValueError:
        raise fail("the answer's body is not valid JSON") from None
    if not isinstance(body, dict):
        raise fail("the answer is not a JSON object")
    if code >= 300:
        check_status(body, code, fail)
    return body


def check_status(status: Any, code: int, fail: Any) -> None:
    """A metav1.Status failure whose code is `code`."""
    if not isinstance(status, dict):
        raise fail("the error is not an object")
    if status.get("kind") != "Status" or status.get("apiVersion") != "v1" or status.get("status") != "Failure":
        raise fail("the error is not a Status failure")
    if status.get("code") != code:
        raise fail(f"the Status code {status.get('code')!r} is not the HTTP status")
    if not isinstance(status.get("reason"), str) or not status["reason"]:
        raise fail("the Status has no reason")
    if not isinstance(status.get("message"), str) or not status["message"]:
        raise fail("the Status has no message")
    if status["reason"] == "Invalid":
        causes = (status.get("details") or {}).get("causes")
        if code != 422 or not causes or not all(isinstance(c, dict) and isinstance(c.get("message"), str) for c in causes):
            raise fail("an Invalid Status without its causes")


class Session:
    """One API server and one namespace, shared by a test module's examples."""

    def __init__(self, base_url: str, namespace: str) -> None:
        self.base_url = base_url
        self.namespace = namespace
        self.client = support.connection(base_url).http_client(timeout=30.0)  # the admin, over TLS
        self._names = itertools.count()

    def close(self) -> None:
        self.client.close()

    def fresh_name(self) -> str:
        return f"fz{next(self._names)}"

    # --- sending ---

    def send(self, request: Request, *, operation: str | None = None) -> tuple[httpx.Response, Any]:
        """Send, check the answer's properties, count it; (response, decoded body)."""
        headers = _raw(dict(request.headers, **(request.body.headers() if request.body else {})))
        try:
            response = self.client.request(request.method, request.path, params=list(request.params),
                                           headers=headers, content=request.body.content if request.body else None)
        except httpx.TransportError as exc:  # a dropped connection or a timeout is an answer too, a wrong one
            raise PropertyFailure(f"no answer ({type(exc).__name__}: {exc})\n  request: "
                                  f"{request.reproduction(self.base_url)}") from None
        if TRACE and operation:
            with open(TRACE, "a") as trace:
                trace.write(f"{operation}: {request.reproduction(self.base_url)}\n  -> {response.status_code} "
                            f"{response.text[:600]}\n")
        body = check_answer(response, request, self.base_url)
        tally.TALLY.answer(operation, response.status_code, body if response.status_code >= 300 else None)
        return response, body

    def watch(self, request: Request, *, operation: str) -> tuple[int, list[Any]]:
        """A watch that should end by itself: (status, events), each event line checked."""
        headers = _raw(request.headers)
        timeout = httpx.Timeout(5.0, read=WATCH_DEADLINE)
        with self.client.stream(request.method, request.path, params=list(request.params), headers=headers,
                                timeout=timeout) as response:
            tally.TALLY.answer(operation, response.status_code)
            if response.status_code >= 300:
                response.read()
                check_answer(response, request, self.base_url)
                return response.status_code, []
            check_answer(response, request, self.base_url, streamed=True)
            try:
                events = [json.loads(line) for line in response.iter_lines() if line.strip()]
            except httpx.ReadTimeout:
                raise PropertyFailure(f"the watch did not end within {WATCH_DEADLINE}s\n  request: "
                                      f"{request.reproduction(self.base_url)}") from None
        return response.status_code, events

    def expect(self, request: Request, *codes: int) -> Any:
        response, body = self.send(request)
        if response.status_code not in codes:
            raise PropertyFailure(f"setup request got {response.status_code}, not {codes}: {response.text[:2000]}\n"
                                  f"  request: {request.reproduction(self.base_url)}")
        return body

    # --- objects ---

    def create(self, target: targets.Target, obj: dict[str, Any]) -> dict[str, Any]:
        """Create `obj` (it must be accepted); the object as the server answered, which is the stored
        one (test_create checks that round trip)."""
        body = bodies.Body(bodies.to_json(obj), "application/json", "setup")
        return self.expect(Request("POST", target.collection(self.namespace), body=body), 201)

    def subject(self, target: targets.Target, name: str, *, terminating: bool = False) -> dict[str, Any]:
        """A fresh object to aim writes at, as stored; `terminating`: held by a finalizer while being
        deleted (writes to it meet the rules of deletion: no new finalizers, and it goes when the
        last finalizer does)."""
        obj = target.base(name)
        if not terminating:
            return self.create(target, obj)
        obj["metadata"]["finalizers"] = ["example.com/hold"]
        self.create(target, obj)
        self.expect(Request("DELETE", target.item(self.namespace, name)), 200)
        stored = self.stored(target, name)
        assert stored is not None and stored["metadata"].get("deletionTimestamp"), stored
        return stored

    def stored(self, target: targets.Target, name: str) -> dict[str, Any] | None:
        """The object as stored now (a consistent read), or None."""
        response, body = self.send(Request("GET", target.item(self.namespace, segment(name))))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PropertyFailure(f"reading back {target.plural}/{name} got {response.status_code}: {response.text}")
        return body

    def table_of(self, target: targets.Target, name: str) -> None:
        """GET the object as a Table (kubectl get): printing columns reads fields a write just set."""
        request = Request("GET", target.item(self.namespace, segment(name)),
                          headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
        table = self.expect(request, 200)
        if table.get("kind") != "Table" or len(table.get("rows") or ()) != 1:
            raise PropertyFailure(f"a GET as Table answered {table!r}\n  request: {request.reproduction(self.base_url)}")

    def listed(self, target: targets.Target) -> list[dict[str, Any]]:
        return self.expect(Request("GET", target.collection(self.namespace)), 200)["items"]

    def remove(self, target: targets.Target, name: str, current: Any = ...) -> None:
        """Best effort: drop finalizers, then delete without grace (a pod already terminating stays).
        `current` is the object as last read (None: absent), when the caller has it."""
        path = target.item(self.namespace, segment(name))
        if current is ...:
            current = self.stored(target, name)
        if current is None:
            return
        if current["metadata"].get("finalizers"):
            patch = bodies.Body(b'{"metadata":{"finalizers":null}}', "application/merge-patch+json", "cleanup")
            self.send(Request("PATCH", path, body=patch))
        self.send(Request("DELETE", path, params=(("gracePeriodSeconds", "0"),)))

    def healthy(self) -> bool:
        return self.client.get("/healthz").status_code == 200


def without(obj: dict[str, Any], *paths: tuple[str, ...]) -> dict[str, Any]:
    """A copy of `obj` without the fields at `paths` (for comparing all but what a write may change)."""
    out = json.loads(json.dumps(obj))
    for path in paths:
        node = out
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out
