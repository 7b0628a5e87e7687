"""Classical baselines as first-class runs: tune on validation, store a run directory, segment later.

``run_classical(cfg, out)`` carves the validation split exactly as training does (``data.val_fraction`` and
``data.val_seed`` of the run's :class:`DataConfig`), tunes the method's parameters and threshold policy on the
validation images and their **dense** masks, and writes a run directory readable by :mod:`semprior_core.store.runs`:

```
config.yaml    name, data (DataConfig) and the ``classical`` section (ClassicalConfig)
run.json       kind "classical", method, chosen params and policy, selection rule, validation metrics
splits/*.txt   train / val / test keys (evaluation checks them, as for trained runs)
tune.csv       one row per (parameter setting, threshold policy) with its validation metrics
metrics.jsonl  one record: the chosen setting's validation metrics (``select_score`` = val IoU)
```
``run.json`` is written last, so its presence marks a finished run. Only validation images and masks are
read while tuning; the test split's ids are listed (``splits/test.txt``) but none of its files is opened.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import DataConfig, RunConfig
from ..config.tree import ConfigError, apply_overrides, from_dict, load_yaml, naming_file, to_dict
from ..data.catalog import build_splits
from ..data.dataset import ImageBank
from ..io import DataError, atomic_write_text, read_json
from ..runtime.environment import environment
from ..store.fields import STRING, check_fields
from ..store.run_dir import SPLITS, RunDir
from .registry import get_method
from .threshold import ThresholdPolicy
from .tune import TuneResult, segment, tune

KIND = "classical"
SELECTION_RULE = "val IoU (dense validation masks)"
CLASSICAL_FIELDS = {"method": STRING, "params": (lambda v: isinstance(v, dict), "an object"),
                    "policy": (lambda v: isinstance(v, dict), "an object")}


@dataclass
class ClassicalConfig:
    """The ``classical`` section: which detector, and what is tuned or fixed.

    ``grid`` replaces entries of the method's default grid (``METHODS[method].grid``); ``params`` fixes
    keyword arguments of the score function, which are then not tuned (e.g. ``{max_iter: 10}`` for a faster
    IPI). ``tune`` names the data the setting is chosen on; only the validation split carved from training
    data is allowed, so the test split can never select a setting.
    """

    method: str = "tophat"
    tune: Literal["val"] = "val"
    grid: dict[str, list[Any]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            spec = get_method(self.method)
        except ValueError as exc:
            raise ConfigError(f"classical.method: {exc}") from None
        accepted = list(inspect.signature(spec.score).parameters)[1:]  # the first parameter is the image
        for section, keys in (("grid", self.grid), ("params", self.params)):
            unknown = [k for k in keys if k not in accepted]
            if unknown:
                raise ConfigError(
                    f"classical.{section}: {self.method} has no parameter(s) {unknown}; accepted: {accepted}"
                )
        both = sorted(set(self.grid) & set(self.params))
        if both:
            raise ConfigError(f"classical: {both} are both tuned (grid) and fixed (params); keep one")
        empty = [k for k, v in self.grid.items() if not isinstance(v, (list, tuple)) or not v]
        if empty:
            raise ConfigError(f"classical.grid: entries {empty} must be non-empty lists of values")

    def search_grid(self) -> dict[str, list[Any]]:
        """The grid tuned: the default grid overridden by ``grid``; each fixed parameter a one-value entry."""
        grid = {k: list(v) for k, v in get_method(self.method).grid.items()} | self.grid
        return grid | {k: [v] for k, v in self.params.items()}


@dataclass
class ClassicalRunConfig:
    """What ``config.yaml`` of a classical run holds."""

    name: str = "run"  # the default of RunConfig.name
    data: DataConfig = field(default_factory=DataConfig)
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)


def load_classical_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ClassicalRunConfig:
    """Config from a YAML file (optional) plus ``key.sub=value`` overrides.

    The file may be a classical run's ``config.yaml`` or a training config: its ``classical`` section
    configures the detector, everything else is validated as a :class:`RunConfig` (so a typo is still an
    error) and only ``name`` and ``data`` are used. Overrides starting with ``classical.`` go to that section.
    """
    tree = load_yaml(path) if path else {}
    section = tree.pop("classical", None) or {}
    overrides = list(overrides or [])
    ours = [o.removeprefix("classical.") for o in overrides if o.startswith("classical.")]
    others = [o for o in overrides if not o.startswith("classical.")]
    with naming_file(path):
        run, classical = from_dict(RunConfig, tree), from_dict(ClassicalConfig, section, "classical")
    run, classical = apply_overrides(run, others), apply_overrides(classical, ours)
    return ClassicalRunConfig(name=run.name, data=run.data, classical=classical)


@dataclass(frozen=True)
class ClassicalRun:
    """A finished classical run: its config and the setting chosen on validation."""

    path: Path
    cfg: ClassicalRunConfig
    method: str
    params: dict[str, Any]
    policy: ThresholdPolicy

    @classmethod
    def open(cls, path: str | Path) -> ClassicalRun:
        """Open a classical run from its directory or its ``run.json``."""
        run_dir = classical_run_dir(path)
        if run_dir is None:
            raise DataError(f"{path}: not a finished classical run (no run.json of kind {KIND!r})")
        files = RunDir(run_dir)
        where = files.info
        info = check_fields(str(where), read_json(where, "run file"), CLASSICAL_FIELDS)
        with naming_file(files.config):
            cfg = from_dict(ClassicalRunConfig, load_yaml(files.config))
        try:
            policy = ThresholdPolicy(**info["policy"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: field 'policy' is not a threshold policy ({exc})") from None
        return cls(run_dir, cfg, info["method"], dict(info["params"]), policy)

    def segment(self, image: np.ndarray) -> np.ndarray:
        """Boolean target mask of ``image`` with the tuned setting."""
        return segment(image, self.method, self.params, self.policy)

    def check_model(self, which: str | None = None, checkpoint: str = "best") -> str:
        """The model name evaluation reports (the method); errors for a network or checkpoint it lacks."""
        if which not in (None, self.method):
            raise ValueError(f"{self.path}: a {self.method} run has no network {which!r}")
        if checkpoint != "best":
            raise ValueError(
                f"{self.path}: a classical run has no checkpoint {checkpoint!r}; its one setting, chosen on "
                "validation, is 'best'"
            )
        return self.method


def classical_run_dir(path: str | Path) -> Path | None:
    """Directory of the finished classical run ``path`` (the directory or its ``run.json``); else None."""
    path = Path(path)
    info = path if path.name == RunDir(path).info.name else RunDir(path).info  # the run.json itself, or its folder
    if not info.is_file():
        return None
    data = read_json(info, "run file")  # a damaged run.json is an error, not a trained run
    return info.parent if isinstance(data, dict) and data.get("kind") == KIND else None


def _table_csv(table: list[dict[str, Any]]) -> str:
    """CSV text of the tuning table; lists and None (e.g. MPCM scales, IPI's default lam) as JSON."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: json.dumps(v) if v is None or isinstance(v, (list, tuple)) else v
                         for k, v in row.items()})
    return buf.getvalue()


def _chosen_row(result: TuneResult) -> dict[str, Any]:
    """The tuning-table row of the chosen setting (its validation niou, pd and fa)."""
    for row in result.table:
        if (row["policy"], row["value"]) == (result.policy.kind, result.policy.value) and all(
            row[k] == v for k, v in result.params.items()
        ):
            return row
    raise AssertionError("tune() chose a setting missing from its own table")


def run_classical(cfg: ClassicalRunConfig, out: str | Path) -> ClassicalRun:
    """Tune ``cfg.classical`` on the validation split of ``cfg.data`` and write the run directory ``out``."""
    out = Path(out)
    files = RunDir(out)
    if files.info.exists():
        raise FileExistsError(f"{out}: already holds a run (run.json); use another output directory")
    splits = build_splits(cfg.data)
    files.write_config(to_dict(cfg))
    files.write_environment(environment())
    files.write_splits({name: [r.key for r in splits.get(name)] for name in SPLITS})

    method = cfg.classical.method
    val = ImageBank(splits.val)
    start = time.perf_counter()
    images = [val.image(i) for i in range(len(val))]
    result = tune(method, images, [val.mask(i) for i in range(len(val))], cfg.classical.search_grid())
    seconds = time.perf_counter() - start
    atomic_write_text(out / "tune.csv", _table_csv(result.table))

    row = _chosen_row(result)
    val_metrics = {"iou": row["iou"], "niou": row["niou"], "pd": row["pd"], "fa": row["fa"] / 1e6}
    record = {"epoch": 0, "select_score": result.iou, "tune_seconds": seconds} | {
        f"val_{method}_{k}": v for k, v in val_metrics.items()
    }
    files.write_metrics([record])
    files.write_info(
        {
            "kind": KIND,
            "method": method,
            "params": result.params,
            "policy": {"kind": result.policy.kind, "value": result.policy.value},
            "selection": {"metric": "iou", "uses_dense_val_masks": True, "rule": SELECTION_RULE},
            "supervision": "none",
            "eval_models": [method],
            "val": val_metrics | {"n_images": len(val)},
            "tune_seconds": seconds,
        },
    )
    return ClassicalRun.open(out)
