"""Plumbing every command shares: connection options, the client, and kubectl-style errors.

Client modules are imported lazily so `reconcile --help` and `reconcile apiserver` start fast
and keep working even while a command module's dependencies are broken.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from reconcile.core import errors

F = TypeVar("F", bound=Callable[..., Any])

_META = "reconcile.connection"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Group-level and command-level flags land in one place; the later (command) one wins."""
    if value is not None:
        ctx.meta.setdefault(_META, {})[param.name] = value
    return value


def connection_options(fn: F) -> F:
    """`--server`, `--kubeconfig`, `--context`: accepted on the group and on every command."""
    fn = click.option("--context", "context", default=None, expose_value=False, callback=_remember,
                      help="kubeconfig context to use.")(fn)
    fn = click.option("--kubeconfig", "kubeconfig", default=None, expose_value=False, callback=_remember,
                      help="Path to a kubeconfig (default: $KUBECONFIG, then the one `reconcile up` wrote).")(fn)
    fn = click.option("--server", "server", default=None, expose_value=False, callback=_remember,
                      help="API server URL (default: $RECONCILE_SERVER, then the kubeconfig).")(fn)
    return fn


class Session:
    """The resolved config and a client for it; `refresh()` forgets cached discovery."""

    def __init__(self) -> None:
        from reconcile.client import config as client_config

        opts = click.get_current_context().meta.get(_META, {})
        try:
            self.config = client_config.load_config(
                server=opts.get("server"), kubeconfig=opts.get("kubeconfig"), context=opts.get("context")
            )
        except client_config.ConfigError as exc:
            fail(str(exc))
        self.client = self._new_client()

    def _new_client(self) -> Any:
        from reconcile.client import api as client_api

        return client_api.Client(self.config)

    def refresh(self) -> None:
        """A new client: discovery is cached per client, and a CRD just created must show up."""
        close = getattr(self.client, "close", None)
        if callable(close):
            close()
        self.client = self._new_client()

    @property
    def namespace(self) -> str:
        return self.config.namespace or "default"


def resolve(session: Session, name: str) -> Any:
    """A kind name to its resource; an unknown one is a client-side error, as in kubectl."""
    try:
        return session.client.resolve(name)
    except errors.NotFound as exc:
        fail(exc.message)
        raise


def resolve_kinds(session: Session, names: list[str]) -> list[Any]:
    """Kind names to resources; a category such as `all` stands for every resource in it (as kubectl)."""
    found: list[Any] = []
    for name in names:
        try:
            found.append(session.client.resolve(name))
            continue
        except errors.NotFound as exc:
            members = [r for r in session.client.discover() if name.lower() in r.categories and "/" not in r.plural]
            if not members:
                fail(exc.message)
                raise
        found.extend(sorted(members, key=lambda r: _CATEGORY_ORDER.get(r.plural, len(_CATEGORY_ORDER))))
    return found


# kubectl lists `all` in this order.
_CATEGORY_ORDER = {"pods": 0, "services": 1, "daemonsets": 2, "deployments": 3, "replicasets": 4,
                   "statefulsets": 5, "jobs": 6, "cronjobs": 7}


def api_version_of(res: Any) -> str:
    """`apps/v1` or `v1` for a discovery ApiResource."""
    return f"{res.group}/{res.version}" if res.group else res.version


def kind_ref(res: Any) -> str:
    """`deployment.apps` / `configmap`: how kubectl names a kind in its messages."""
    kind = res.kind.lower()
    return f"{kind}.{res.group}" if res.group else kind


def format_api_error(exc: errors.ApiError, *, action: str | None = None) -> str:
    """kubectl's wording: `Error from server (NotFound): ...`; Invalid lists each cause."""
    if isinstance(exc, errors.Invalid) and exc.causes:
        details = exc.details or {}
        lines = [f'The {details.get("kind", "object")} "{details.get("name", "")}" is invalid: ']
        for c in exc.causes:
            lines.append(f"* {c.get('field')}: {c.get('message')}" if c.get("field") else f"* {c.get('message')}")
        return "\n".join(lines)
    prefix = f"{action}: " if action else ""
    if isinstance(exc, errors.ServiceUnavailable) and exc.message.startswith("cannot reach"):
        return f"error: {prefix}{exc.message}"  # no server answered: not an error *from* the server
    return f"Error from server ({exc.reason}): {prefix}{exc.message}"


def handle_errors(fn: F) -> F:
    """Expected failures print one kubectl-like line to stderr and exit 1; no tracebacks.

    Set RECONCILE_DEBUG=1 to see the traceback of an unexpected error.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except errors.ApiError as exc:
            click.echo(format_api_error(exc), err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - the CLI boundary: report, don't dump a traceback
            if os.environ.get("RECONCILE_DEBUG"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> None:
    """Print `error: message` and exit 1, as kubectl does for client-side errors."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def group_server() -> str | None:
    """The `--server` given on the `reconcile` group itself, if any."""
    return (click.get_current_context().find_root().meta.get(_META) or {}).get("server")


def run_component(main: Callable[[], Awaitable[None]]) -> None:
    """Run a long-lived component in the foreground: SIGTERM/SIGINT cancel it; a lost leader lease
    exits 1 (as client-go's deposed leaders do; the supervisor restarts it as a standby)."""
    from reconcile.engine import leader

    async def until_signalled() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        await main()

    try:
        asyncio.run(until_signalled())
    except asyncio.CancelledError:
        pass
    except leader.LeaderElectionLost as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
