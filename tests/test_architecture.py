"""The arrows that must never exist (shared ARCHITECTURE.md), checked on every import statement, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "semprior_core"
UI = ("workbench", "panel", "marimo", "ipywidgets", "holoviews", "bokeh")
# what the pure packages may not reach: networks, training, and anything that reads or writes files
IMPURE = ("semprior_core.models", "semprior_core.engine", "semprior_core.io", "semprior_core.store",
          "semprior_core.config.tree", "torch")


def imports(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against its package)."""
    package = package or ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return found


def reaches(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_the_workbench_or_a_ui_toolkit(path):
    assert not reaches(imports(path), UI)


@pytest.mark.parametrize(
    "path", sorted([*(CORE / "labels").rglob("*.py"), CORE / "evaluation" / "metrics.py", CORE / "config" / "check.py"]),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_label_evolution_and_metrics_stay_pure(path):
    assert not reaches(imports(path), IMPURE)


@pytest.mark.parametrize("path", sorted((CORE / "models").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_backbones_know_nothing_of_the_vfm_or_scam(path):
    assert not reaches(imports(path), ("semprior_core.vfm", "semprior_core.scam"))


def test_the_checker_sees_relative_and_lazy_imports(tmp_path):
    """The rule could pass vacuously if relative or in-function imports were missed."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..engine import train\n    import torch\n")
    found = reaches(imports(probe, package="semprior_core.labels"), IMPURE)
    assert found == ["semprior_core.engine", "semprior_core.engine.train", "torch"]


def test_every_core_module_can_be_imported_first():
    """No import cycle depends on which module a user imports first (``semprior_core.labels`` once failed)."""
    import subprocess
    import sys

    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in sorted(CORE.rglob("*.py"))]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'semprior_core']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        print(name, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout == ""
