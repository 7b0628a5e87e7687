"""``semprior`` command line: thin subcommands that build configs and call the core.

Config overrides: any ``--section.key=value`` (or bare ``section.key=value``) argument,
value parsed as YAML, e.g. ``semprior train --config c.yaml --train.epochs=5 labels.rule=pal``.
Errors in user input print one line naming the file/key and exit with status 2.
The subcommands live in ``workbench.commands``, each declared beside its handler.
"""

from __future__ import annotations

import os

# Before torch loads libgomp, which reads it once. libgomp spins 300,000 times at each barrier: when other
# processes share the cores (a protocol with --jobs, a test run) a thread spins while the one it waits for is
# descheduled. Measured on 2 cores beside two busy trainers, a 2-thread ACM step: 0.24 steps/s by default,
# 0.78 at 20,000, and the same 8.6 steps/s on idle cores. OMP_WAIT_POLICY=PASSIVE (3.6 steps/s there) costs
# about 25 % on idle cores, so it is left to the user (README); a value the user set is kept.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

import argparse  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from workbench.commands import Command, console, data, deploy, evaluation, training, views  # noqa: E402

# Their order is the order `semprior --help` lists the commands in.
MODULES = (training, evaluation, deploy, data, views)


def all_commands() -> Iterator[Command]:
    return (c for module in MODULES for c in module.commands)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="semprior", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    declared: dict[str, tuple[Command, argparse.ArgumentParser]] = {}
    nested: dict[str, argparse._SubParsersAction] = {}
    for c in all_commands():
        parent, _, name = c.name.rpartition(" ")
        if parent:
            if parent not in nested:
                parent_cmd, parent_parser = declared[parent]
                nested[parent] = parent_parser.add_subparsers(dest=f"{parent}_cmd", metavar=parent_cmd.metavar)
            sp = nested[parent].add_parser(name, help=c.help)  # a nested command's --help has no description
        else:
            sp = sub.add_parser(name, help=c.help, description=c.help)
        sp.set_defaults(fn=c.run or (lambda a, e, sp=sp: sp.print_help() or 2))  # a group alone: its help
        if c.args:
            c.args(sp)
        declared[c.name] = c, sp
    return p


# Modules of the optional extras (pyproject.toml), so a missing one names what to install.
OPTIONAL_EXTRAS = {"panel": "app", "holoviews": "app", "plotly": "app", "bokeh": "app", "marimo": "app",
                   "pandas": "app", "ipywidgets": "app", "onnxruntime": "deploy"}


def main(argv: list[str] | None = None) -> int:
    from rich.markup import escape

    from semprior_core.config.tree import ConfigError
    from semprior_core.engine import TrainingError
    from semprior_core.io import DataError, WriteError
    from semprior_core.store.checkpoint import CheckpointError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.command_line = "semprior " + shlex.join(sys.argv[1:] if argv is None else argv)  # for written outputs
    if extra and args.cmd not in {c.name for c in all_commands() if c.overrides}:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    try:
        return int(args.fn(args, extra) or 0)
    except (ConfigError, DataError, CheckpointError, TrainingError, FileExistsError, WriteError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except ImportError as exc:
        extra_name = OPTIONAL_EXTRAS.get((exc.name or "").split(".")[0])
        hint = f" (semprior {args.cmd} needs the [{extra_name}] extra: pip install -e '.[{extra_name}]')" if extra_name else ""
        console.print(f"[red]error:[/] {escape(str(exc) + hint)}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: the last complete checkpoint is intact; continue with --resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
