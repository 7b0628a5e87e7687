"""Which run a checkpoint belongs to.

Every trained run gets a random ``run_id`` in ``run.json`` when it is created, and every checkpoint it
writes carries it, so a checkpoint can be matched to its run even after being copied or renamed. Runs and
checkpoints written before run ids existed are matched by their config instead.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from ..config import RESUME_MAY_CHANGE, RunConfig, config_changes, load_config
from ..io import DataError, read_json
from .run_dir import RunDir


def new_run_id() -> str:
    return uuid.uuid4().hex


def read_run_record(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of a trained run; a missing or damaged one is a :class:`DataError` naming it."""
    path = RunDir(run_dir).info
    info = read_json(path, "run record")
    if not isinstance(info, dict):
        raise DataError(f"{path}: a JSON {type(info).__name__}, expected an object")
    return info


def check_checkpoint_of(run_dir: str | Path, path: str | Path, run_id: str | None, cfg: RunConfig) -> None:
    """Refuse checkpoint ``path`` (its ``run_id`` and config) unless the run in ``run_dir`` wrote it: used
    under this run's name, another run's model would be reported, or trained on, as this run's."""
    run_dir = Path(run_dir)
    own = read_run_record(run_dir).get("run_id")
    if run_id and own:
        if run_id != own:
            raise DataError(f"{path}: a checkpoint of another run (run id {run_id}), not of {run_dir} (run id {own})")
        return
    # A run or checkpoint from before run ids: the configs must agree on everything that defines a run.
    for c in config_changes(cfg, load_config(RunDir(run_dir).config)):
        if c.key not in RESUME_MAY_CHANGE:
            raise DataError(
                f"{path}: not a checkpoint of {run_dir}: {c.key} is {c.old!r} in the checkpoint but {c.new!r} in "
                "the run"
            )
