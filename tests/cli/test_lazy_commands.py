"""The CLI loads a command's module only when the command is asked for; the table that says which
module serves which command must match what the modules register."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click

import reconcile.cli
from reconcile.cli import main as cli_main


def _modules_with_register() -> list[str]:
    names = []
    for info in pkgutil.iter_modules(reconcile.cli.__path__):
        module = importlib.import_module(f"reconcile.cli.{info.name}")
        if callable(getattr(module, "register", None)):
            names.append(info.name)
    return names


def test_the_table_names_exactly_the_commands_each_module_registers() -> None:
    registered: dict[str, set[str]] = {}
    for module_name in _modules_with_register():
        group = click.Group()
        importlib.import_module(f"reconcile.cli.{module_name}").register(group)
        for command in group.commands:
            registered.setdefault(command, set()).add(module_name)
    table = {command: set(modules) for command, modules in cli_main.COMMAND_MODULES.items()}
    assert table == registered


def test_every_command_resolves_and_help_lists_them_all() -> None:
    ctx = click.Context(cli_main.main)
    names = cli_main.main.list_commands(ctx)
    assert set(cli_main.COMMAND_MODULES) | {"apiserver"} == set(names)
    for name in names:
        assert isinstance(cli_main.main.get_command(ctx, name), click.Command), name
    node = cli_main.main.get_command(ctx, "node")
    assert isinstance(node, click.Group) and {"join", "cordon", "uncordon", "drain"} <= set(node.commands)


def test_a_command_imports_only_its_own_module() -> None:
    """`reconcile get --help` in a fresh interpreter loads resources, not chart or gitops code."""
    probe = ("import sys; from reconcile.cli.main import main\n"
             "try:\n    main(['get', '--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('reconcile.cli.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = out.strip().splitlines()[-1]
    assert "reconcile.cli.resources" in loaded
    for other in ("chart_cmd", "gitops_cmd", "cluster", "node_cmd", "proxy_cmd"):
        assert f"reconcile.cli.{other}'" not in loaded, other
