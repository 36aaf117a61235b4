"""The `reconcile` command: a click group; each subcommand family lives in its own module."""

from __future__ import annotations

import importlib
from typing import Any

import click

import reconcile
from reconcile.cli import common, server_cmd

# The command modules contributing each top-level command, in registration order (`node` gets its
# group from node_cmd and its cordon/uncordon/drain from nodes_cmd). Importing all of them takes
# about half a second: a command loads only its own, so `reconcile get` (and every component a
# cluster starts, and the API server's spawned body decoders, which import this module again)
# starts that much sooner. tests/cli/test_lazy_commands.py checks the table against the modules.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "up": ("cluster",), "down": ("cluster",), "status": ("cluster",),
    "get": ("resources",), "delete": ("resources",), "api-resources": ("resources",), "create": ("resources",),
    "describe": ("resources",), "explain": ("resources",),
    "apply": ("apply",),
    "operator": ("operator_cmd",),
    "controller-manager": ("controllers_cmd",),
    "scale": ("workloads_cmd",), "rollout": ("workloads_cmd",), "events": ("workloads_cmd",),
    "scheduler": ("scheduler_cmd",),
    "node": ("node_cmd", "nodes_cmd"),
    "logs": ("pods_cmd",), "exec": ("pods_cmd",),
    "secrets": ("secrets_cmd",),
    "token": ("token_cmd",),
    "certificate": ("certificate_cmd",),
    "dns": ("dns_cmd",),
    "chart": ("chart_cmd",),
    "proxy": ("proxy_cmd",),
    "port-forward": ("portforward_cmd",),
    "gitops": ("gitops_cmd",),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module when the command is asked for (click's
    documented pattern for lazily loaded subcommands)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module_name in COMMAND_MODULES.get(cmd_name, ()):
            self.load(module_name)
        return super().get_command(ctx, cmd_name)

    def load(self, module_name: str) -> None:
        """Import `reconcile.cli.<module_name>` once and let it register its commands here."""
        if module_name not in self._loaded:
            self._loaded.add(module_name)
            importlib.import_module(f"reconcile.cli.{module_name}").register(self)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(reconcile.__version__, prog_name="reconcile")
@common.connection_options
def main() -> None:
    """A Kubernetes-style control plane on etcd and Docker."""


main.add_command(server_cmd.apiserver)
