"""The ``semprior`` subcommands, each declared beside its handler, grouped by concern.

A module holds ``commands = Commands()`` and registers each handler with its arguments::

    def _labels_args(p):
        p.add_argument("--run", required=True)

    @commands.command("labels", "pseudo-mask quality per label update of a run", args=_labels_args)
    def cmd_labels(args, extra) -> int: ...

``workbench.cli.build_parser`` turns the modules' commands into the parser. Handlers import the core lazily,
so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

Handler = Callable[[argparse.Namespace, list[str]], int]

# Piped output (logs, CI) gets wide tables rather than wrapped columns.
console = Console(width=None if sys.stdout.isatty() else 160)


@dataclass(frozen=True)
class Command:
    name: str  # "train", or "points import" for a command nested under "points"
    help: str
    run: Handler | None  # None: a group whose nested commands do the work; alone it prints its help
    args: Callable[[argparse.ArgumentParser], None] | None = None
    overrides: bool = False  # takes ``--section.key=value`` config overrides besides its own options
    metavar: str | None = None  # how errors name its nested commands' argument (default: the dest, <name>_cmd)


class Commands:
    """The commands of one module, in the order they are declared (the order ``semprior --help`` lists them)."""

    def __init__(self) -> None:
        self._commands: list[Command] = []

    def command(self, name: str, help: str, *, args: Callable[[argparse.ArgumentParser], None] | None = None,
                overrides: bool = False, metavar: str | None = None) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self._commands.append(Command(name, help, fn, args, overrides, metavar))
            return fn

        return register

    def group(self, name: str, help: str) -> None:
        self._commands.append(Command(name, help, None))

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands)


def metrics_table(title: str, rows: list[tuple[str, dict[str, float]]]) -> Table:
    table = Table(title=title)
    table.add_column("model")
    for col in ("IoU", "nIoU", "Pd", "Fa (×1e-6)"):
        table.add_column(col, justify="right")
    for name, row in rows:
        table.add_row(name, f"{row['IoU']:.2f}", f"{row['nIoU']:.2f}", f"{row['Pd']:.2f}", f"{row['Fa']:.1f}")
    return table


def add_server_args(p: argparse.ArgumentParser, remote_risk: str) -> None:
    """Where a Panel app listens; ``remote_risk`` says what anyone reaching a non-loopback port could do."""
    p.add_argument("--port", type=int, default=5006, help="0 = any free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--allow-remote", action="store_true",
                   help=f"allow a non-loopback --host: no authentication, anyone who reaches the port {remote_risk}")
    p.add_argument("--show", action="store_true", help="open it in a browser")
