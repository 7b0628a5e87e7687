"""Outputs never cost an input: ``predict`` and ``infer`` refuse to write over an input image, give every
input its own map, and files are created with the umask's mode like any other tool's."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semprior_core.evaluation.evaluate import predict_folder
from semprior_core.io import DataError, atomic_write_text, save_png
from semprior_core.store.checkpoint import save_checkpoint
from semprior_core.store.outputs import output_names, plan_outputs
from workbench.cli import main
from workbench.infer import InferConfig, infer_images, infer_video

# Distinct sizes, so each output's size shows which input it came from.
SIZES = {"a.png": (24, 24), "a.jpg": (32, 40), "a.bmp": (40, 24), "b.png": (24, 32)}


@pytest.fixture(scope="module")
def checkpoint(tiny_full_run) -> Path:
    return tiny_full_run / "best.pt"


def write_images(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        h, w = SIZES[name]
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(folder / name)
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_line(text: str) -> str:
    """The console wraps long lines: judge the message, not the wrapping."""
    return " ".join(text.split())


# -- an output onto an input ------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", ["predict", "infer"])
@pytest.mark.parametrize("spelling", ["same", "symlink"])
def test_out_equal_to_images_is_refused_and_leaves_the_inputs_byte_identical(checkpoint, tmp_path, capsys, cmd,
                                                                               spelling):
    images = write_images(tmp_path / "images", ["a.png", "a.jpg", "b.png"])
    out = images
    if spelling == "symlink":
        out = tmp_path / "link"
        out.symlink_to(images, target_is_directory=True)
    before = contents(images)
    model = ["--checkpoint" if cmd == "predict" else "--model", str(checkpoint)]
    rc = main([cmd, *model, "--images", str(images), "--out", str(out), *(["--quiet"] if cmd == "infer" else [])])
    printed = capsys.readouterr().out
    assert rc == 2 and "Traceback" not in printed and printed.count("error:") == 1
    assert f"{out / 'b.png'}: is the input {images / 'b.png'}; refusing to overwrite an input" in one_line(printed)
    assert contents(images) == before  # nothing written, not even the outputs that clash with no input


def test_library_calls_refuse_before_writing(checkpoint, tmp_path):
    images = write_images(tmp_path / "images", ["a.jpg", "b.png"])
    before = contents(images)
    with pytest.raises(DataError, match="b.png: is the input"):
        predict_folder(checkpoint, images, images, device="cpu", progress=False)
    with pytest.raises(DataError, match="b.png: is the input"):
        infer_images(checkpoint, images, images, InferConfig(progress=False))
    assert contents(images) == before


@pytest.mark.parametrize("name", ["targets.csv", "frame_000000.png"])
def test_a_video_named_like_an_output_is_not_written_over(checkpoint, tmp_path, name):
    video = tmp_path / name
    video.write_bytes(b"the user's only copy")
    with pytest.raises(DataError, match=f"{name}: is the input"):
        infer_video(checkpoint, video, tmp_path, InferConfig(progress=False))
    assert video.read_bytes() == b"the user's only copy" and list(tmp_path.iterdir()) == [video]


# -- two inputs, one output -------------------------------------------------------------------------
def test_colliding_stems_get_their_extension_in_the_name():
    files = [Path(n) for n in ("a.bmp", "a.jpg", "a.png", "b.png", "C.png", "c.tif")]
    assert output_names(files) == ["a_bmp", "a_jpg", "a_png", "b", "C_png", "c_tif"]


def test_a_renamed_collision_meeting_another_name_is_refused(tmp_path):
    files = [tmp_path / n for n in ("a.png", "a.jpg", "a_png.bmp")]
    with pytest.raises(DataError, match="a_png.png: both a.png and a_png.bmp would be written here"):
        plan_outputs(files, tmp_path / "out")


def test_predict_writes_one_map_per_input_when_stems_collide(checkpoint, tmp_path, capsys):
    images = write_images(tmp_path / "images", list(SIZES))
    assert main(["predict", "--checkpoint", str(checkpoint), "--images", str(images), "--out",
                 str(tmp_path / "out")]) == 0
    assert "wrote 4 probability maps" in capsys.readouterr().out
    outs = {p.name: Image.open(p).size[::-1] for p in (tmp_path / "out").iterdir()}
    assert outs == {"a_png.png": SIZES["a.png"], "a_jpg.png": SIZES["a.jpg"], "a_bmp.png": SIZES["a.bmp"],
                    "b.png": SIZES["b.png"]}


def test_infer_names_frames_as_their_maps_when_stems_collide(checkpoint, tmp_path):
    images = write_images(tmp_path / "images", list(SIZES))
    summary = infer_images(checkpoint, images, tmp_path / "out", InferConfig(progress=False))
    assert [(f.name, (f.height, f.width)) for f in summary.frames] == [
        ("a_bmp", SIZES["a.bmp"]), ("a_jpg", SIZES["a.jpg"]), ("a_png", SIZES["a.png"]), ("b", SIZES["b.png"])]
    for f in summary.frames:
        assert Image.open(tmp_path / "out" / f"{f.name}.png").size[::-1] == (f.height, f.width)


# -- file modes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    (tmp_path / "old.txt").write_text("replaced below")
    old = os.umask(umask)
    try:
        written = [atomic_write_text(tmp_path / "report.md", "x"), atomic_write_text(tmp_path / "old.txt", "y"),
                   save_png(tmp_path / "map.png", np.zeros((2, 2), np.uint8)),
                   save_checkpoint(tmp_path / "last.pt", {"epoch": 1})]
    finally:
        os.umask(old)
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {p.name: oct(mode) for p in written}
