"""Every reader checked: damaged versions of each file kind the project reads either give a valid result or
one clear error naming the file (DataError, ConfigError for configs, CheckpointError for checkpoints).

Any other exception, a traceback from deep inside a library, fails. Damage is generated with hypothesis:
truncation at a random byte, flipped bytes, inserted and deleted junk, values of the wrong JSON type, and the
encodings users save text in. The hand-written cases are in ``test_bad_inputs.py``; docs/inputs.md lists both.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from semprior_core.classical.run import classical_run_dir
from semprior_core.config import RunConfig, config_dict, load_config
from semprior_core.config.tree import ConfigError
from semprior_core.data.catalog import check_points
from semprior_core.data.folder import DatasetFolder, read_split_file
from semprior_core.data.points import PointSet
from semprior_core.io import DataError, read_image, read_mask
from semprior_core.store.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from semprior_core.store.label_history import LabelHistory, update_path, write_update
from semprior_core.store.runs import Run
from workbench.cli import main
from workbench.inspect import compare_runs, curves, metrics_table
from workbench.live import LiveTraining
from workbench.results import collect

# Each example rewrites the same files in the test's tmp_path, so a function-scoped fixture is fine.
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- damage ----------------------------------------------------------------------------------------------------
@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` after 1-3 of: truncation, a flipped byte, inserted junk, a deleted slice."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("truncate", "flip", "insert", "delete")))
        i = draw(st.integers(0, len(out)))
        if op == "truncate":
            del out[i:]
        elif op == "flip" and i < len(out):
            out[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del out[i:i + draw(st.integers(1, 16))]
    return bytes(out)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.just(10**400) | st.floats() | st.text(max_size=6),  # 10**400: past float
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys / indices) to a node of a JSON-like tree, the root included."""
    out = [prefix]
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for k, v in items:
        out += _paths(v, (*prefix, k))
    return out


@st.composite
def mistyped(draw: st.DrawFn, tree: Any) -> Any:
    """``tree`` with one node replaced by a random JSON value (often of the wrong type) or deleted."""
    tree = copy.deepcopy(tree)
    path = draw(st.sampled_from(_paths(tree)))
    value = draw(JSON_VALUES)
    if not path:
        return value
    parent = tree
    for k in path[:-1]:
        parent = parent[k]
    if draw(st.booleans()):
        parent[path[-1]] = value
    else:
        del parent[path[-1]]
    return tree


def reads_or_names_file(read: Callable[[Path], Any], path: Path, errors: tuple = (DataError,),
                        names: str | None = None) -> Any:
    """``read(path)``, or None after checking the error is one of ``errors`` and names the file."""
    try:
        return read(path)
    except errors as exc:
        assert (names or path.name) in str(exc), f"error does not name {names or path.name}: {exc}"
        return None


# -- images and masks ------------------------------------------------------------------------------------------
def _encoded(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format=fmt)
    return buf.getvalue()


_GREY = (np.arange(20 * 24).reshape(20, 24) % 251).astype(np.uint8)
IMAGES = {
    "grey.png": _encoded(_GREY, "PNG"),
    "grey16.png": _encoded(_GREY.astype(np.uint16) * 257, "PNG"),
    "rgb.png": _encoded(np.dstack([_GREY, _GREY[::-1], _GREY[:, ::-1]]), "PNG"),
    "grey.bmp": _encoded(_GREY, "BMP"),
    "grey.tif": _encoded(_GREY, "TIFF"),
    "grey.jpg": _encoded(_GREY, "JPEG"),
}


def _patched(data: bytes, offset: int, byte: int) -> bytes:
    return data[:offset] + bytes([byte]) + data[offset + 1:]


@FAST
@given(st.sampled_from(sorted(IMAGES)).flatmap(lambda name: st.tuples(st.just(name), damaged(IMAGES[name]))))
@example(("grey.bmp", _patched(IMAGES["grey.bmp"], 21, 1)))  # found: width 2^24, Pillow's DecompressionBombError
def test_damaged_image(tmp_path, case):
    name, data = case
    (tmp_path / name).write_bytes(data)
    image = reads_or_names_file(read_image, tmp_path / name)
    if image is not None:
        assert image.ndim == 2 and image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1


_MASK = np.zeros((20, 24), np.uint8)
_MASK[5:8, 3:9] = 255
MASK = _encoded(_MASK, "PNG")


@FAST
@given(damaged(MASK))
@example(_patched(MASK, 11, 12))  # found: an IHDR chunk one byte short, Pillow's ValueError
def test_damaged_mask(tmp_path, data):
    (tmp_path / "m.png").write_bytes(data)
    mask = reads_or_names_file(read_mask, tmp_path / "m.png")
    if mask is not None:
        assert mask.ndim == 2 and mask.dtype == bool


# -- split lists -----------------------------------------------------------------------------------------------
IDS = st.lists(st.text(st.sampled_from("abcXYZ019_-.éüßñ中"), min_size=1, max_size=8), min_size=1, max_size=5,
               unique=True)
LINE_END = st.sampled_from(["\n", "\r\n"])
# What editors save: with these the ids must come back exactly (latin-1 where it can hold the names).
READABLE = ("utf-8", "utf-8-sig", "utf-16", "latin-1")


@st.composite
def split_file(draw: st.DrawFn) -> tuple[list[str], str]:
    """(ids, text) with trailing spaces, blank lines and CRLF or LF line ends."""
    ids = draw(IDS)
    lines = []
    for sid in ids:
        lines += [""] * draw(st.integers(0, 2)) + [sid + " " * draw(st.integers(0, 2))]
    return ids, draw(LINE_END).join(lines) + draw(st.sampled_from(["", "\n", "\r\n\r\n"]))


def _readable(text: str, encoding: str) -> bool:
    """Whether ``text`` saved as ``encoding`` must read back exactly: latin-1 bytes that happen to be
    valid UTF-8 are read as UTF-8 (the ambiguity every reader has)."""
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:  # 中 has no latin-1 byte
        return False
    if encoding != "latin-1" or data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@FAST
@given(split_file(), st.sampled_from(READABLE))
def test_split_file_encodings_give_the_ids(tmp_path, case, encoding):
    ids, text = case
    assume(_readable(text, encoding))
    (tmp_path / "s.txt").write_bytes(text.encode(encoding))
    assert read_split_file(tmp_path / "s.txt") == ids


DAMAGED_SPLIT = st.tuples(split_file(), st.sampled_from(("utf-8", "utf-16", "utf-16-le", "utf-32", "cp1252"))).flatmap(
    lambda c: damaged(c[0][1].encode(c[1], "replace")))


@FAST
@given(DAMAGED_SPLIT)
def test_damaged_split_file(tmp_path, data):
    (tmp_path / "s.txt").write_bytes(data)
    ids = reads_or_names_file(read_split_file, tmp_path / "s.txt")
    if ids is not None:
        assert ids and all(s and s == s.strip() and s.isprintable() for s in ids) and len(set(ids)) == len(ids)


# -- YAML configs ----------------------------------------------------------------------------------------------
CONFIG = config_dict(load_config(None, []))
CONFIG_TEXT = yaml.safe_dump(CONFIG, sort_keys=False)


def _load_config(path: Path) -> RunConfig | None:
    return reads_or_names_file(load_config, path, (ConfigError, DataError))


@FAST
@given(damaged(CONFIG_TEXT.encode()))
def test_damaged_config_bytes(tmp_path, data):
    (tmp_path / "c.yaml").write_bytes(data)
    _load_config(tmp_path / "c.yaml")


@FAST
@given(mistyped(CONFIG))
def test_config_with_wrong_types(tmp_path, tree):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tree))
    _load_config(tmp_path / "c.yaml")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(READABLE + ("utf-16-be",)))
def test_config_encodings_read_the_same(tmp_path, encoding):
    text = CONFIG_TEXT if encoding != "utf-16-be" else "\ufeff" + CONFIG_TEXT  # UTF-16 needs its BOM
    (tmp_path / "c.yaml").write_bytes(text.encode(encoding))
    assert config_dict(load_config(tmp_path / "c.yaml")) == CONFIG


# -- points files ----------------------------------------------------------------------------------------------
POINTS = PointSet(kind="manual", points={"a": np.array([[1, 2], [9, 11]]), "b": np.zeros((0, 2), np.int64),
                                         "c": np.array([[0, 0]])},
                  sizes={"a": (10, 12), "b": (5, 6)}).to_json()


@pytest.fixture
def points_folder(tmp_path) -> DatasetFolder:
    """A dataset folder holding the images that POINTS names."""
    (tmp_path / "d" / "images").mkdir(parents=True)
    for sid in POINTS["images"]:
        Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "d" / "images" / f"{sid}.png")
    return DatasetFolder.open(tmp_path / "d")


def _check_points_file(path: Path, folder: DatasetFolder) -> None:
    ps = reads_or_names_file(lambda p: check_points(PointSet.load(p), folder), path)
    if ps is None:
        return
    for sid, pts in ps.points.items():
        assert pts.dtype == np.int64 and pts.ndim == 2 and pts.shape[1] == 2 and (pts >= 0).all()
        if sid in ps.sizes:
            assert (pts < np.array(ps.sizes[sid])).all()


@FAST
@given(damaged(json.dumps(POINTS, indent=1).encode()))
def test_damaged_points_bytes(tmp_path, points_folder, data):
    (tmp_path / "p.json").write_bytes(data)
    _check_points_file(tmp_path / "p.json", points_folder)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mistyped(POINTS))
def test_points_with_wrong_types(tmp_path, points_folder, tree):
    (tmp_path / "p.json").write_text(json.dumps(tree))
    _check_points_file(tmp_path / "p.json", points_folder)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(READABLE + ("utf-16-be",)))
def test_points_encodings_read_the_same(tmp_path, encoding):
    text = json.dumps(POINTS, ensure_ascii=False) if encoding != "utf-16-be" else "\ufeff" + json.dumps(POINTS)
    (tmp_path / "p.json").write_bytes(text.encode(encoding))
    assert PointSet.load(tmp_path / "p.json").to_json()["images"] == POINTS["images"]


# -- checkpoints -----------------------------------------------------------------------------------------------
def _checkpoint_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / "c.pt", {"epoch": 1, "networks": {"student": {"w": torch.ones(4)}}})
        return path.read_bytes()


CHECKPOINT = _checkpoint_bytes()


@FAST
@given(damaged(CHECKPOINT))
def test_damaged_checkpoint(tmp_path, data):
    (tmp_path / "best.pt").write_bytes(data)
    payload = reads_or_names_file(load_checkpoint, tmp_path / "best.pt", (CheckpointError,))
    if payload is not None:
        assert payload["epoch"] == 1  # what survives the damage is the checksummed payload itself


OUTER_VALUES = st.one_of(JSON_VALUES, st.builds(torch.zeros, st.integers(0, 4)),
                         st.builds(lambda n: torch.zeros(n, dtype=torch.uint8), st.integers(0, 4)))


@FAST
@given(st.fixed_dictionaries({}, optional={"format": st.just("semprior-checkpoint") | JSON_VALUES,
                                          "version": st.just(1) | JSON_VALUES, "sha256": JSON_VALUES,
                                          "blob": OUTER_VALUES}) | JSON_VALUES)
def test_checkpoint_with_wrong_fields(tmp_path, outer):
    torch.save(outer, tmp_path / "best.pt")
    assert reads_or_names_file(load_checkpoint, tmp_path / "best.pt", (CheckpointError,)) is None


# -- label history: labels/update_*.npz, read by the dashboard, notebooks and reports ----------------------------
LABEL_KEYS = ["data/a", "data/b"]
LABEL_SUMMARY = {"epoch": 3, "rule": "lesps", "pool_size": 1, "events": {"grew_past_bound": 1},
                 "images": [{"area": 4, "iou_vs_gt": 0.5, "n_points": 1}, {"area": 1, "iou_vs_gt": None, "n_points": 1}]}


def _label_update(folder: Path, summary: Any = LABEL_SUMMARY, replace: dict[str, np.ndarray] | None = None) -> Path:
    labels = [np.eye(3, dtype=np.float32), np.zeros((2, 5), np.float32)]
    path = write_update(folder, 3, LABEL_KEYS, labels, summary)
    if replace:  # members swapped for arrays of the wrong kind
        with np.load(path) as z:
            members = dict(z)
        np.savez_compressed(path, **(members | replace))
    return path


def _read_labels(run: Path) -> list[np.ndarray]:
    """What the dashboard's label views and the report read: the table and every pseudo-mask."""
    history = LabelHistory(run)
    history.table()
    update = history.update(-1)
    return [update.label(k) for k in update.keys]


def _check_labels(run: Path) -> None:
    labels = reads_or_names_file(_read_labels, run, names="update_00003.npz")
    for label in labels or []:
        assert label.ndim == 2 and label.dtype == np.float32 and 0 <= label.min() <= label.max() <= 1


def _label_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return _label_update(Path(tmp)).read_bytes()


@FAST
@given(damaged(_label_bytes()))
def test_damaged_label_update(tmp_path, data):
    (tmp_path / "labels").mkdir(exist_ok=True)
    update_path(tmp_path / "labels", 3).write_bytes(data)
    _check_labels(tmp_path)


@FAST
@given(mistyped(LABEL_SUMMARY))
def test_label_update_with_wrong_summary(tmp_path, summary):
    _label_update(tmp_path / "labels", summary)
    _check_labels(tmp_path)


@pytest.mark.parametrize("members", [
    {"keys": np.array([1, 2])},  # keys that are not strings
    {"keys": np.array(["data/a"])},  # fewer keys than the summary's images
    {"l0": np.ones((2, 2, 3), np.uint8)},  # a pseudo-mask that is not 2-D
    {"l1": np.ones((2, 2), np.float64)},  # nor uint8
    {"summary": np.array("{not json")},
])
def test_label_update_with_wrong_members(tmp_path, members):
    _label_update(tmp_path / "labels", replace=members)
    with pytest.raises(DataError, match="update_00003.npz"):
        _read_labels(tmp_path)


def test_intact_label_update_reads_back(tmp_path):
    _label_update(tmp_path / "labels")
    labels = _read_labels(tmp_path)
    assert np.array_equal(labels[0], np.eye(3)) and labels[1].shape == (2, 5)


# -- run folders: report, eval, compare and the dashboard read them ------------------------------------------------
def _run_template(root: Path) -> Path:
    """A minimal evaluated run: the files report, compare and the dashboard overview read."""
    run = root / "template"
    (run / "eval").mkdir(parents=True)
    (run / "splits").mkdir()
    cfg = load_config(None, [f"data.datasets=[{{root: {json.dumps(str(root / 'data'))}}}]"])
    (run / "config.yaml").write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False))
    (run / "run.json").write_text(json.dumps({
        "kind": "trained", "method": "supervised", "eval_models": ["student"], "supervision": "full",
        "selection": {"metric": "iou", "uses_dense_val_masks": True}}, indent=1))
    records = [{"epoch": e, "loss": 1.0 / e, "select_score": 0.1 * e, "val_student_iou": 0.1 * e} for e in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "eval" / "test_student_best.json").write_text(json.dumps({
        "split": "test", "model": "student", "checkpoint": "best", "epoch": 2,
        "row": {"IoU": 20.0, "nIoU": 18.0, "Pd": 50.0, "Fa": 3.0},
        "per_image": [{"key": "data/a", "intersection": 2, "union": 10}]}, indent=1))
    (run / "environment.json").write_text(json.dumps({"git_commit": "abc1234"}))
    (run / "splits" / "test.txt").write_text("data/a\ndata/b\n")
    return run


RUN_FILES = ("run.json", "metrics.jsonl", "eval/test_student_best.json", "config.yaml", "environment.json",
             "splits/test.txt")
JSON_FILES = ("run.json", "eval/test_student_best.json", "environment.json")


@pytest.fixture
def template(tmp_path) -> Path:
    return _run_template(tmp_path)


@st.composite
def damaged_run_file(draw: st.DrawFn, template: Path) -> tuple[str, bytes]:
    """(file of the run, its damaged bytes): byte damage, or for JSON files a value of the wrong type."""
    name = draw(st.sampled_from(RUN_FILES))
    original = (template / name).read_bytes()
    if name in JSON_FILES and draw(st.booleans()):
        return name, json.dumps(draw(mistyped(json.loads(original)))).encode()
    if name == "metrics.jsonl" and draw(st.booleans()):
        records = [json.loads(line) for line in original.decode().splitlines()]
        i = draw(st.integers(0, len(records) - 1))
        records[i] = draw(mistyped(records[i]))
        return name, "".join(json.dumps(r) + "\n" for r in records).encode()
    return name, draw(damaged(original))


def _damaged_run(tmp_path: Path, template: Path, name: str, data: bytes) -> Path:
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(template, run)
    (run / name).write_bytes(data)
    return run


def _read_everything(run: Path) -> None:
    """What report, eval, compare and the dashboard overview read of a run folder."""
    r = Run.open(run)
    r.info(), r.history(), r.evaluations(), r.config(), r.split("test"), r.environment()
    classical_run_dir(run)
    metrics_table(run), curves(run), compare_runs([run]), collect([run])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_run_folder_readers(tmp_path, template, data):
    name, damaged_bytes = data.draw(damaged_run_file(template))
    run = _damaged_run(tmp_path, template, name, damaged_bytes)
    reads_or_names_file(_read_everything, run, (DataError, ConfigError), names=Path(name).name)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_run_folder_report_command(tmp_path, template, capsys, data):
    """``semprior report`` on a damaged run: a report, or exit status 2 with one line naming the file."""
    name, damaged_bytes = data.draw(damaged_run_file(template))
    run = _damaged_run(tmp_path, template, name, damaged_bytes)
    capsys.readouterr()
    status = main(["report", str(run), "--out", str(tmp_path / "report.md"), "--no-figures"])
    out = capsys.readouterr().out
    assert status in (0, 2) and "Traceback" not in out
    if status == 2:
        assert Path(name).name in out.replace("\n", "")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_run_folder_live_training_status(tmp_path, template, data):
    """A notebook's live view of a run whose metrics or config are damaged: a status, or one clear error."""
    name = data.draw(st.sampled_from(("metrics.jsonl", "config.yaml")))
    original = (template / name).read_bytes()
    run = _damaged_run(tmp_path, template, name, data.draw(damaged(original)))
    status = reads_or_names_file(lambda r: LiveTraining(r).poll(), run, (DataError, ConfigError), names=name)
    if status is not None:  # no process and no checkpoint: a new run, or finished if damage cut the epochs
        assert status.state in ("new", "finished") and status.epoch in (0, 1, 2)
