"""`reconcile certificate approve|deny NAME...`: decide CertificateSigningRequests, as
`kubectl certificate` does (kubectl's own command sends protobuf, which this server does not read).

Each request gets an Approved (or Denied) condition through the `/approval` subresource, reason
`KubectlApprove` / `KubectlDeny` as kubectl writes them; `--force` is not needed to repeat a decision
(a request already so decided is left alone) and a request decided the other way is refused by the
server (Approved and Denied exclude each other).
"""

from __future__ import annotations

import click

from reconcile.cli import common
from reconcile.core import errors

API_VERSION, PLURAL = "certificates.k8s.io/v1", "certificatesigningrequests"
DECISIONS = {"approve": ("Approved", "KubectlApprove", "This CSR was approved by reconcile certificate approve."),
             "deny": ("Denied", "KubectlDeny", "This CSR was denied by reconcile certificate deny.")}


def register(main: click.Group) -> None:
    main.add_command(certificate)


@click.group()
def certificate() -> None:
    """Approve or deny CertificateSigningRequests."""


def _decide(verb: str, names: tuple[str, ...]) -> None:
    from reconcile.pki import csr as csr_mod

    kind, reason, message = DECISIONS[verb]
    session = common.Session()
    for name in names:
        current = session.client.get(API_VERSION, PLURAL, name)
        if csr_mod.has_condition(current, kind):
            click.echo(f"certificatesigningrequest.certificates.k8s.io/{name} {kind.lower()}")
            continue
        current["status"] = {**(current.get("status") or {}), "conditions": [
            *csr_mod.conditions(current), csr_mod.condition(kind, reason, message)]}
        try:
            session.client.replace(API_VERSION, PLURAL, current, subresource="approval")
        except errors.Invalid as exc:
            common.fail(exc.message)
        click.echo(f"certificatesigningrequest.certificates.k8s.io/{name} {kind.lower()}")


@certificate.command()
@click.argument("names", nargs=-1, required=True)
@common.connection_options
@common.handle_errors
def approve(names: tuple[str, ...]) -> None:
    """Approve the named requests."""
    _decide("approve", names)


@certificate.command()
@click.argument("names", nargs=-1, required=True)
@common.connection_options
@common.handle_errors
def deny(names: tuple[str, ...]) -> None:
    """Deny the named requests."""
    _decide("deny", names)
