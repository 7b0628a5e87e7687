"""What README.md tells a newcomer matches the code: CSV headers and the commands it lists."""

from __future__ import annotations

from pathlib import Path

from semprior_core.data.point_formats import CSV_COLUMNS
from semprior_core.evaluation.postprocess import TARGET_FIELDS
from workbench.cli import OPTIONAL_EXTRAS, build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_documented_csv_headers_are_the_written_ones():
    assert f"`{','.join(CSV_COLUMNS)}`" in README
    assert f"`{','.join(('frame', *TARGET_FIELDS))}`" in README


def test_every_subcommand_is_in_the_readme():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [name for name in sub.choices if f"semprior {name}" not in README]
    assert not missing, f"README.md does not show: {missing}"


def test_every_optional_extra_is_named_in_the_readme():
    for extra in set(OPTIONAL_EXTRAS.values()):
        assert f"[{extra}]" in README
