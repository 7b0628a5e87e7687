"""The parser built from the command registry: every subcommand's help renders, and the commands, their order and
their options are the ones the CLI had when its parser was one function (a change here is a change for users)."""

from __future__ import annotations

import argparse

import pytest

from workbench.cli import all_commands, build_parser, main

# {command: sorted option strings, then positional arguments}, in the order `semprior --help` lists them.
EXPECTED = {
    "": [],
    "train": ["--config", "--data", "--method", "--model", "--out", "--quiet", "--resume", "--supervision"],
    "demo": ["--config", "--data", "--method", "--model", "--out", "--quiet", "--resume", "--supervision"],
    "sweep": ["--ablate", "--config", "--data", "--method", "--model", "--out", "--quiet", "--resume", "--seeds",
              "--supervision"],
    "reproduce": ["--datasets", "--jobs", "--methods", "--out", "--quiet", "--root", "--seeds", "--status", "protocol"],
    "cache": ["--config", "--data", "--method", "--model", "--out", "--quiet", "--resume", "--supervision"],
    "classical": ["--config", "--data", "--method", "--out", "--tune"],
    "eval": ["--checkpoint", "--data", "--device", "--json", "--run", "--split", "--which"],
    "predict": ["--checkpoint", "--device", "--images", "--out", "--which"],
    "export": ["--checkpoint", "--device", "--format", "--fp16", "--int8", "--out", "--quantization", "--threshold",
               "--which"],
    "infer": ["--device", "--images", "--min-area", "--model", "--out", "--overlap", "--quiet", "--threshold", "--tile",
              "--video"],
    "points": ["--data", "--kind", "--out", "--seed"],
    "points import": ["--format", "--out", "src"],
    "points export": ["--format", "--out", "points"],
    "annotate": ["--allow-remote", "--device", "--host", "--images", "--order", "--points", "--port", "--run", "--show",
                 "--split", "--threshold"],
    "data": [],
    "data check": ["dir"],
    "labels": ["--run"],
    "report": ["--no-figures", "--note", "--out", "runs"],
    "dashboard": ["--allow-remote", "--data", "--host", "--port", "--run", "--show"],
    "bench": ["--backbones", "--batch", "--cache", "--checkpoint", "--crops", "--dashboard", "--deploy", "--label-windows",
              "--margins", "--method-backbones", "--methods", "--metrics-data", "--out", "--run", "--size", "--steps",
              "--teacher"],
}


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command, its options and positionals) for the parser and every nested one, depth first in declared order."""
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    yield " ".join(path), sorted(o for a in actions for o in a.option_strings) + [
        a.dest for a in actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
    for a in actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _walk(sub, (*path, name))


def test_commands_and_options_are_unchanged():
    assert list(_walk(build_parser())) == list(EXPECTED.items())


def test_only_config_commands_take_overrides(capsys):
    assert {c.name for c in all_commands() if c.overrides} == {"train", "demo", "sweep", "cache", "classical"}
    with pytest.raises(SystemExit) as exc:
        main(["labels", "--run", "r", "--train.epochs=5"])
    assert exc.value.code == 2
    assert "unrecognised arguments: --train.epochs=5" in capsys.readouterr().err


@pytest.mark.parametrize("command", list(EXPECTED))
def test_every_help_renders(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command.split(), "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: semprior {command}".rstrip())
    assert "-h, --help" in out


def test_a_group_alone_prints_its_help(capsys):
    assert main(["data"]) == 2
    assert capsys.readouterr().out.startswith("usage: semprior data [-h] {check} ...")


def test_dashboard_refuses_a_missing_data_folder_before_serving(tmp_path, capsys):
    missing = tmp_path / "NUDT-typo"
    assert main(["dashboard", "--run", str(tmp_path), "--data", str(missing), "--port", "0"]) == 2
    assert f"{missing}: dataset folder not found" in capsys.readouterr().out.replace("\n", "")


@pytest.mark.parametrize(("given", "expected"), [(None, "20000"), ("300000", "300000")])
def test_the_cli_sets_libgomp_spinning_before_torch_loads(given, expected):
    """Spinning at barriers makes shared cores 3x slower; the CLI lowers it unless the user chose a value,
    and must do so before torch (and with it libgomp) is imported."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | ({"GOMP_SPINCOUNT": given} if given else {})
    code = "import sys, os, workbench.cli; print(os.environ['GOMP_SPINCOUNT'], 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [expected, "False"]


def test_reproduce_refuses_to_select_runs_of_a_tuning_protocol(capsys):
    assert main(["reproduce", "cpu-tune", "--methods", "lesps"]) == 2
    assert "protocol cpu-tune is a tuning protocol" in capsys.readouterr().out
