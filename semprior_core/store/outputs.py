"""Where per-image outputs go: one distinct file per input, never onto an input file.

Every output path is planned, and checked, before anything is written, so a refused command leaves the
output folder (which may be the input folder) as it was.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..io import DataError

NAMING = ("one <stem>.png per image; images whose stems collide (a.png, a.jpg) are named <stem>_<extension> "
          "(a_png.png, a_jpg.png)")


def output_names(files: Sequence[Path]) -> list[str]:
    """Output name (without ``.png``) of each input, as :data:`NAMING` says.

    Stems are compared ignoring case: ``A.png`` and ``a.jpg`` would be one file on macOS or Windows.
    """
    counts = Counter(f.stem.casefold() for f in files)
    return [f"{f.stem}_{f.suffix[1:]}" if counts[f.stem.casefold()] > 1 else f.stem for f in files]


def plan_outputs(files: Sequence[Path], out: str | Path, others: Sequence[str] = ()) -> list[Path]:
    """``out/<name>.png`` for each of ``files``; refused (:class:`DataError`) where two inputs would share an
    output or an output — these or the ``others`` files written into ``out`` — is one of the inputs."""
    out = Path(out)
    paths = [out / f"{name}.png" for name in output_names(files)]
    _refuse_shared(files, paths)
    refuse_inputs(files, [*paths, *(out / name for name in others)])
    return paths


def _refuse_shared(files: Sequence[Path], paths: Sequence[Path]) -> None:
    """A renamed collision can meet another file's name (a.png, a.jpg, a_png.bmp): refuse rather than guess."""
    first: dict[str, Path] = {}
    for src, dst in zip(files, paths):
        other = first.setdefault(dst.name.casefold(), src)
        if other != src:
            raise DataError(f"{dst}: both {other.name} and {src.name} would be written here; rename one of them")


def refuse_inputs(inputs: Sequence[Path], outputs: Sequence[Path]) -> None:
    """Refuse (:class:`DataError`) if any of ``outputs`` is one of ``inputs``: the same file by any path
    (the same folder, a symlink, a hard link, another letter case)."""
    ids = {fid: p for p in inputs if (fid := _file_id(p)) is not None}
    for dst in outputs:
        fid = _file_id(dst)
        if fid in ids:
            raise DataError(f"{dst}: is the input {ids[fid]}; refusing to overwrite an input (choose another --out)")


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` leads to; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
