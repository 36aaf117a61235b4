"""The `reconcile` command: a click group; each subcommand family lives in its own module."""

from __future__ import annotations

import click

import reconcile
from reconcile.cli import common, server_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(reconcile.__version__, prog_name="reconcile")
@common.connection_options
def main() -> None:
    """A Kubernetes-style control plane on etcd and Docker."""


main.add_command(server_cmd.apiserver)


def _register_optional() -> None:
    """Attach command modules that exist (they are added as the project grows)."""
    import importlib

    for module_name in (
        "cluster",
        "resources",
        "apply",
        "operator_cmd",
        "controllers_cmd",
        "workloads_cmd",
        "scheduler_cmd",
        "node_cmd",
        "pods_cmd",
        "nodes_cmd",
        "secrets_cmd",
        "token_cmd",
        "certificate_cmd",
        "dns_cmd",
        "chart_cmd",
        "proxy_cmd",
        "portforward_cmd",
        "gitops_cmd",
    ):
        try:
            module = importlib.import_module(f"reconcile.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"reconcile.cli.{module_name}":
                raise
            continue
        module.register(main)


_register_optional()
