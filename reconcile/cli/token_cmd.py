"""`reconcile token create|list|delete`: bootstrap tokens, as `kubeadm token` manages them.

A token is a Secret `kube-system/bootstrap-token-<id>` (`reconcile.core.bootstraptoken`); `create`
prints `<id>.<secret>` and nothing else, so `TOKEN=$(reconcile token create)` works. The API server
accepts them with `--enable-bootstrap-token-auth` (which `reconcile up` sets); the controller-manager's
tokencleaner deletes them once expired.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import click

from reconcile.cli import common
from reconcile.core import bootstraptoken, errors

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


def parse_duration(text: str) -> datetime.timedelta:
    """A Go duration (`24h`, `1h30m`, `90s`, `0`), as kubeadm's `--ttl` takes it."""
    text = text.strip()
    if text in ("0", ""):
        return datetime.timedelta(0)
    pos, total = 0, 0.0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    for found in _DURATION.finditer(text):
        if found.start() != pos:
            break
        total += float(found.group(1)) * units[found.group(2)]
        pos = found.end()
    if pos != len(text) or pos == 0:
        raise click.BadParameter(f"invalid duration {text!r} (e.g. 24h, 1h30m, 10m, 0 for never)")
    return datetime.timedelta(seconds=total)


def register(main: click.Group) -> None:
    main.add_command(token)


@click.group()
def token() -> None:
    """Bootstrap tokens for `reconcile node join` (kubeadm token)."""


@token.command()
@click.option("--ttl", default="24h", show_default=True,
              help="How long the token is valid (a duration: 24h, 30m; 0: it never expires).")
@click.option("--description", default="", help="A human-friendly description of the token's use.")
@click.option("--usages", default="signing,authentication", show_default=True,
              help="What the token may be used for: authentication, signing (comma-separated).")
@click.option("--groups", default=bootstraptoken.DEFAULT_EXTRA_GROUP, show_default=True,
              help="Extra groups the token authenticates as (each system:bootstrappers:...), comma-separated.")
@common.connection_options
@common.handle_errors
def create(ttl: str, description: str, usages: str, groups: str) -> None:
    """Create a token and print it as <id>.<secret>."""
    lifetime = parse_duration(ttl)
    usage_list = tuple(u.strip() for u in usages.split(",") if u.strip())
    for usage in usage_list:
        if usage not in ("authentication", "signing"):
            raise click.BadParameter(f"unknown usage {usage!r} (authentication, signing)", param_hint="--usages")
    session = common.Session()
    for _attempt in range(3):  # an id already taken (1 in 2 billion): draw again
        new = bootstraptoken.generate()
        try:
            secret = bootstraptoken.new_secret(new, ttl=lifetime or None, description=description,
                                               extra_groups=tuple(g.strip() for g in groups.split(",") if g.strip()),
                                               usages=usage_list)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--groups") from None
        try:
            session.client.create("v1", "secrets", secret, namespace=bootstraptoken.NAMESPACE)
        except errors.AlreadyExists:
            continue
        click.echo(str(new))
        return
    common.fail("could not find a free token id")


@token.command("list")
@common.connection_options
@common.handle_errors
def list_tokens() -> None:
    """List the bootstrap tokens (kubeadm's columns; the secrets are not shown)."""
    session = common.Session()
    found = session.client.list("v1", "secrets", namespace=bootstraptoken.NAMESPACE)
    rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
    now = datetime.datetime.now(datetime.UTC)
    for secret in found.get("items") or []:
        if secret.get("type") == bootstraptoken.SECRET_TYPE:
            rows.append(_row(secret, now))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def _row(secret: dict[str, Any], now: datetime.datetime) -> list[str]:
    token_id = bootstraptoken.data_value(secret, bootstraptoken.ID_KEY)
    ends = bootstraptoken.expiration(secret)
    if ends is None:
        ttl, expires = "<forever>", "<never>"
    else:
        left = max(0, int((ends - now).total_seconds()))
        ttl = "<invalid>" if left == 0 else (f"{left // 3600}h" if left >= 3600 else f"{left // 60}m")
        expires = bootstraptoken.rfc3339(ends)
    usages = ",".join(u for u in ("authentication", "signing")
                      if bootstraptoken.data_value(secret, f"usage-bootstrap-{u}") == "true")
    return [f"{token_id}.<secret>", ttl, expires, usages or "<none>",
            bootstraptoken.data_value(secret, bootstraptoken.DESCRIPTION_KEY) or "<none>",
            bootstraptoken.data_value(secret, bootstraptoken.EXTRA_GROUPS_KEY) or "<none>"]


@token.command()
@click.argument("tokens", nargs=-1, required=True)
@common.connection_options
@common.handle_errors
def delete(tokens: tuple[str, ...]) -> None:
    """Delete tokens, given as <id> or <id>.<secret>."""
    session = common.Session()
    for given in tokens:
        token_id = given.split(".", 1)[0]
        if not bootstraptoken.ID_RE.match(token_id):
            common.fail(f"given token or token id {given!r} didn't match pattern [a-z0-9]{{6}} or "
                        f"[a-z0-9]{{6}}.[a-z0-9]{{16}}")
        session.client.delete("v1", "secrets", bootstraptoken.secret_name(token_id),
                              namespace=bootstraptoken.NAMESPACE)
        click.echo(f"bootstrap token {token_id!r} deleted")
