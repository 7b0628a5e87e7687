"""``semprior annotate``: display transforms, the annotation session (every change on disk at once, resume,
undo, suggestions), suggestions from a trained run, training on the result, and (browser) the Panel app
driven by Debian's chromium through Playwright."""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semprior_core.data.points import PointSet, centroid_points
from semprior_core.io import DataError, read_mask
from tests.fixtures_runs import tiny_run  # noqa: F401
from workbench.annotate import AnnotationSession, Progress, Suggestions
from workbench.annotate.app import default_paths, frame_size, train_command
from workbench.annotate.contrast import display, local_contrast, percentile_stretch
from workbench.annotate.session import order_ids
from workbench.annotate.suggest import suggest, suggested_points, uncertainty
from workbench.cli import main

# Four frames; a one-pixel bright target (row, col) on a dim background in each.
FRAMES = {"frame_1": (10, 20), "frame_2": (30, 60), "frame_10": (5, 70), "frame_3": (50, 5)}
SHAPE = (60, 80)


def _frame(target: tuple[int, int]) -> np.ndarray:
    img = np.full(SHAPE, 40, dtype=np.uint8)
    img[target] = 250
    return img


def _folder(root: Path, frames: dict[str, tuple[int, int]] = FRAMES) -> Path:
    images = root / "images"
    images.mkdir(parents=True)
    for sid, target in frames.items():
        Image.fromarray(_frame(target)).save(images / f"{sid}.png")
    return images


def _on_disk(path: Path) -> dict[str, list[list[int]]]:
    return {sid: pts.tolist() for sid, pts in PointSet.load(path).points.items()}


@pytest.fixture
def images(tmp_path) -> Path:
    return _folder(tmp_path)


@pytest.fixture
def session(images) -> AnnotationSession:
    points, split = default_paths(images)
    return AnnotationSession(images, points, split=split)


# -- display transforms ----------------------------------------------------------------------------
def test_percentile_stretch_maps_the_percentiles_to_black_and_white():
    img = np.linspace(0, 1, 1001, dtype=np.float32).reshape(7, 143)
    out = percentile_stretch(img, 10, 90)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert np.count_nonzero(out == 0) == 101 and np.count_nonzero(out == 1) == 101  # the clipped tails
    np.testing.assert_allclose(out[np.argmin(np.abs(img - 0.5).ravel()) // 143].mean(), 0.5, atol=0.1)
    flat = np.full((4, 4), 0.3, dtype=np.float32)
    np.testing.assert_array_equal(percentile_stretch(flat), np.zeros((4, 4)))
    hot = np.zeros((10, 10), dtype=np.float32)
    hot[0, 0] = 1.0  # every percentile below 99 is 0: the full range is used instead
    assert percentile_stretch(hot, 1, 50)[0, 0] == 1.0
    with pytest.raises(ValueError, match="low < high"):
        percentile_stretch(img, 50, 50)


def test_local_contrast_makes_a_faint_target_on_a_bright_slope_the_brightest_pixel():
    img = np.add.outer(np.arange(60.0), np.arange(80.0)).astype(np.float32) / 400 + 0.2
    img[30, 60] += 0.1  # clearly above its surroundings, yet darker than the top of the slope
    assert np.unravel_index(np.argmax(percentile_stretch(img)), img.shape) != (30, 60)
    out = local_contrast(img)
    assert out.shape == img.shape and 0.0 <= out.min() and out.max() <= 1.0
    assert np.unravel_index(np.argmax(out), img.shape) == (30, 60)
    np.testing.assert_array_equal(display(img, "local contrast"), out)
    with pytest.raises(ValueError, match="unknown view"):
        display(img, "gamma")


def test_frame_size_keeps_pixels_square():
    assert frame_size((60, 80)) == (907, 680)
    assert frame_size((1000, 100), (960, 680)) == (68, 680)


def test_the_view_keeps_one_figure_and_fits_it_to_each_image(tmp_path):
    """One Bokeh figure per page, re-fitted per image (replacing it raced the browser's data updates)."""
    from workbench.annotate.app import AnnotatorView

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(_frame((10, 20))).save(images / "a.png")
    Image.fromarray(np.full((100, 40), 40, np.uint8)).save(images / "b.png")
    points, split = default_paths(images)
    view = AnnotatorView(AnnotationSession(images, points, split=split))
    fig = view.fig
    view.fig.x_range.update(start=5, end=9)  # zoomed in on the first image
    view.act("next")
    assert view.fig is fig and view.plot.object is fig
    assert (fig.frame_width, fig.frame_height) == frame_size((100, 40)) == (272, 680)
    assert (fig.x_range.start, fig.x_range.end, fig.x_range.bounds) == (0, 40, (0, 40))
    assert (fig.x_range.reset_start, fig.x_range.reset_end) == (0, 40)
    assert (fig.y_range.start, fig.y_range.end, fig.y_range.reset_start) == (100, 0, 100)
    assert view.image_source.data["image"][0].shape == (100, 40) and view.image_source.data["dh"] == [100]


# -- session ---------------------------------------------------------------------------------------
def test_images_come_in_natural_order_and_start_unannotated(session):
    assert session.ids == ["frame_1", "frame_2", "frame_3", "frame_10"]
    assert session.current == "frame_1" and not session.is_done()
    assert session.progress() == Progress(0, 4, 0)
    assert not session.points_path.exists()  # nothing is written before the first change


def test_every_change_is_on_disk_at_once(session):
    path, split = session.points_path, session.split_path
    assert session.click(10, 20) == "added"
    assert _on_disk(path) == {"frame_1": [[10, 20]]} and split.read_text() == "frame_1\n"
    assert session.click(11, 21, radius=2.0) == "removed"  # the nearest point within 2 px
    # Removing the last point leaves the image unannotated, not a confirmed negative.
    assert _on_disk(path) == {} and split.read_text() == ""
    assert session.click(10, 20) == "added" and session.click(20, 30, radius=2.0) == "added"
    assert _on_disk(path) == {"frame_1": [[10, 20], [20, 30]]}
    assert session.click(60, 5) is None and session.click(-1, 5) is None  # outside the 80x60 image
    assert _on_disk(path) == {"frame_1": [[10, 20], [20, 30]]}
    session.next()
    session.mark_no_target()
    assert _on_disk(path) == {"frame_1": [[10, 20], [20, 30]], "frame_2": []}
    assert split.read_text() == "frame_1\nframe_2\n" and session.progress() == Progress(2, 4, 2)
    ps = PointSet.load(path)
    assert ps.kind == "manual" and ps.sizes == {"frame_1": SHAPE, "frame_2": SHAPE}


def test_undo_steps_back_through_the_current_images_changes(session):
    path = session.points_path
    session.click(10, 20)
    session.click(40, 40)
    session.mark_no_target()  # clears the points: undoable
    assert _on_disk(path) == {"frame_1": []}
    assert session.undo() and _on_disk(path) == {"frame_1": [[10, 20], [40, 40]]}
    assert session.undo() and _on_disk(path) == {"frame_1": [[10, 20]]}
    assert session.undo() and _on_disk(path) == {}
    assert not session.undo()
    session.click(10, 20)
    session.next()
    assert not session.undo()  # undo is per image: frame_2 has no change
    assert _on_disk(path) == {"frame_1": [[10, 20]]}


def test_a_restart_resumes_at_the_first_unannotated_image(session, images):
    session.click(10, 20)
    session.go(2)
    session.click(50, 5)
    session.go(1)
    session.mark_no_target()
    again = AnnotationSession(images, session.points_path, split=session.split_path)
    assert again.current == "frame_10" and again.progress() == Progress(3, 4, 2)
    np.testing.assert_array_equal(again.points("frame_3"), [[50, 5]])
    again.click(5, 70)
    assert AnnotationSession(images, session.points_path).index == 0  # all annotated: back to the first


def test_a_stale_split_file_is_rewritten_from_the_points_file(session, images):
    session.click(10, 20)
    session.split_path.write_text("")  # as if killed between the two writes
    AnnotationSession(images, session.points_path, split=session.split_path)
    assert session.split_path.read_text() == "frame_1\n"


def test_entries_of_images_outside_the_folder_are_kept(images, tmp_path):
    path = tmp_path / "p.json"
    PointSet(kind="centroid", points={"elsewhere": np.array([[1, 1]])}, sizes={"elsewhere": (4, 4)}).save(path)
    s = AnnotationSession(images, path)
    assert s.progress() == Progress(0, 4, 0)
    s.click(10, 20)
    assert _on_disk(path) == {"elsewhere": [[1, 1]], "frame_1": [[10, 20]]}


def test_points_files_that_do_not_fit_the_images_are_errors(images, tmp_path):
    path = tmp_path / "p.json"
    PointSet(kind="manual", points={"frame_1": np.array([[1, 1]])}, sizes={"frame_1": (64, 64)}).save(path)
    with pytest.raises(DataError, match="is 64x64 in the points file but 80x60 in .*frame_1.png"):
        AnnotationSession(images, path)
    PointSet(kind="manual", points={"frame_1": np.array([[60, 1]])}).save(path)
    with pytest.raises(DataError, match=r"p.json\): image 'frame_1' has a point outside its 80x60 frame"):
        AnnotationSession(images, path)
    Image.fromarray(_frame((1, 1))).save(images / "frame_1.bmp")
    with pytest.raises(DataError, match="two images share the id 'frame_1'"):
        AnnotationSession(images, tmp_path / "new.json")
    with pytest.raises(DataError, match="image folder not found"):
        AnnotationSession(tmp_path / "missing", path)


# -- suggestions -----------------------------------------------------------------------------------
def _suggestions() -> Suggestions:
    return Suggestions(model="hand-made", threshold=0.5,
                       points={"frame_1": np.array([[10, 20], [40, 40], [55, 70]]), "frame_3": np.array([[50, 5]])},
                       uncertainty={"frame_1": 0.1, "frame_2": 0.9, "frame_3": 0.5})


def test_suggestions_are_accepted_or_rejected_one_at_a_time(images, tmp_path):
    s = AnnotationSession(images, tmp_path / "p.json", suggestions=_suggestions())
    assert s.pending() == [(10, 20), (40, 40), (55, 70)]
    assert s.accept_suggestion() and _on_disk(s.points_path) == {"frame_1": [[10, 20]]}
    assert s.reject_suggestion() and s.pending() == [(55, 70)]
    assert _on_disk(s.points_path) == {"frame_1": [[10, 20]]}  # a rejection changes no label
    assert s.undo() and s.pending() == [(40, 40), (55, 70)]
    s.click(54, 71)  # a click next to a suggestion labels that target: the suggestion is settled
    assert s.pending() == [(40, 40)]
    assert s.undo() and s.undo() and s.pending() == [(10, 20), (40, 40), (55, 70)] and not s.is_done()
    s.go(1)
    assert s.pending() == [] and not s.accept_suggestion() and not s.reject_suggestion()


def test_suggestions_already_labelled_are_not_offered_again(images, tmp_path):
    path = tmp_path / "p.json"
    PointSet(kind="manual", points={"frame_1": np.array([[41, 42]])}).save(path)
    s = AnnotationSession(images, path, suggestions=_suggestions())
    assert s.pending("frame_1") == [(10, 20), (55, 70)]  # (40, 40) is within 3 px of a point


def test_uncertainty_order_puts_the_least_certain_images_first():
    ids = ["frame_1", "frame_2", "frame_3", "frame_10"]
    assert order_ids(ids, "uncertainty", _suggestions()) == ["frame_2", "frame_3", "frame_1", "frame_10"]
    with pytest.raises(ValueError, match="needs a model"):
        order_ids(ids, "uncertainty", None)
    with pytest.raises(ValueError, match="unknown order 'random'"):
        order_ids(ids, "random", None)


def test_uncertainty_scores_the_most_ambiguous_candidate():
    prob = np.full((20, 20), 0.01, dtype=np.float32)
    prob[2:4, 2:4] = 0.99  # confident
    assert uncertainty(prob, 0.5) == pytest.approx(0.02)
    prob[10:12, 10:12] = 0.45  # a faint blob close to the threshold
    assert uncertainty(prob, 0.5) == pytest.approx(0.9)
    assert uncertainty(np.full((5, 5), 0.1, dtype=np.float32), 0.5) == pytest.approx(0.2)  # no candidate: the max


def test_suggested_points_are_the_nearest_pixels_to_target_centroids():
    prob = np.zeros((20, 20), dtype=np.float32)
    prob[2:4, 5:8] = 0.9  # centroid (2.5, 6): ties round up
    prob[10, 10] = 0.8
    prob[15, 15] = 0.3  # below the threshold
    np.testing.assert_array_equal(suggested_points(prob, 0.5), [[3, 6], [10, 10]])
    assert suggested_points(np.zeros((4, 4), dtype=np.float32), 0.5).shape == (0, 2)


def test_suggestions_from_a_trained_run_match_its_predictions(tiny_run):  # noqa: F811
    import torch

    from semprior_core.data.catalog import SampleRef
    from semprior_core.data.dataset import ImageBank
    from semprior_core.data.folder import DatasetFolder
    from semprior_core.evaluation.evaluate import load_run, predict_bank

    root = tiny_run.parent / "data"
    sids = ["syn_0010", "syn_0011", "syn_0012"]
    # The same student through the evaluation code path (checkpoint networks + image bank).
    run = load_run(tiny_run / "best.pt")
    probs = predict_bank(run, "student", ImageBank([SampleRef(DatasetFolder.open(root), s) for s in sids]), torch.device("cpu"))
    # The tiny student is unsure of everything (~0.01): a threshold under every image's peak gives targets.
    t = 0.9 * min(float(p.max()) for p in probs)
    frames = [(s, DatasetFolder.open(root).load_image(s)) for s in sids]
    sug = suggest(tiny_run, frames, threshold=t)
    assert sug.threshold == t and "student" in sug.model
    for sid, prob in zip(sids, probs):
        assert len(sug.points[sid]) >= 1
        np.testing.assert_array_equal(sug.points[sid], suggested_points(prob, t), err_msg=sid)
        assert sug.uncertainty[sid] == pytest.approx(uncertainty(prob, t), abs=1e-3)
    s = AnnotationSession(root / "images", tiny_run.parent / "annotate-points.json", suggestions=sug, order="uncertainty")
    assert s.current == max(sids, key=lambda k: sug.uncertainty[k])
    first = s.pending()[0]
    s.accept_suggestion()
    assert _on_disk(s.points_path) == {s.current: [list(first)]}
    with pytest.raises(DataError, match="checkpoint not found"):
        suggest(root, frames)


# -- command line and training ---------------------------------------------------------------------
def test_annotate_command_errors_exit_2(images, tmp_path, capsys):
    assert main(["annotate", "--images", str(tmp_path / "missing")]) == 2
    assert "image folder not found" in capsys.readouterr().out
    assert main(["annotate", "--images", str(images), "--order", "uncertainty"]) == 2
    assert "needs a model (--run)" in capsys.readouterr().out
    assert main(["annotate", "--images", str(images), "--host", "192.0.2.1"]) == 2
    assert "not a loopback address" in capsys.readouterr().out


def test_the_annotated_folder_trains_with_the_printed_command(tmp_path):
    from semprior_core.data.synthetic import SyntheticConfig, generate

    src = tmp_path / "syn"
    generate(src, SyntheticConfig(n_train=6, n_test=1, seed=5, height=64, width=64, size_range=None, max_targets=2),
             overwrite=True)
    root = tmp_path / "mine"
    shutil.copytree(src / "images", root / "images")  # a folder of frames: no masks, no split files
    points, split = default_paths(root / "images")
    s = AnnotationSession(root / "images", points, split=split)
    labelled = s.ids[:5]  # the sixth stays unannotated, so it must not be trained on
    for sid in labelled[1:]:  # one click per target
        s.go(s.ids.index(sid))
        for y, x in centroid_points(read_mask(src / "masks" / f"{sid}.png")):
            s.click(int(y), int(x), radius=0.5)
    s.go(0)
    s.mark_no_target()  # a negative image trains too
    command = train_command(root / "images", points, split)
    spec = command.split("'")[1]  # the data.datasets override, as a shell would pass it
    assert command.startswith("semprior train --supervision lesps 'data.datasets=[{root: ")
    out = tmp_path / "run"
    tiny = ["--train.epochs=1", "--data.crop=32", "--data.batch_size=2", "--data.val_fraction=0.2",
            "--model.options={widths: [4, 8, 16]}", "--train.device=cpu", "--train.threads=1"]
    assert main(["train", "--supervision", "lesps", spec, "--out", str(out), "--quiet", *tiny]) == 0
    trained = (out / "splits" / "train.txt").read_text().split() + (out / "splits" / "val.txt").read_text().split()
    assert sorted(trained) == sorted(f"mine/{sid}" for sid in labelled)
    assert (out / "splits" / "test.txt").read_text().strip() == ""
    assert (out / "best.pt").exists()


# -- browser ---------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
FIGURE = "Bokeh.index.query_one(v => v.model.constructor.__name__ === 'Figure' && v.el.isConnected)"
# Screen position (page coordinates) of a point given in image pixels (fractional: inside the pixel).
SCREEN_JS = f"""([y, x]) => {{ const v = {FIGURE}; const r = v.canvas_view.el.getBoundingClientRect();
    return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)]; }}"""
FRAME_JS = f"""() => {{ const v = {FIGURE}; const r = v.canvas_view.el.getBoundingClientRect(); const b = v.frame.bbox;
    return {{left: r.left + b.left, top: r.top + b.top, width: b.width, height: b.height,
             x: [v.model.x_range.start, v.model.x_range.end], y: [v.model.y_range.start, v.model.y_range.end]}}; }}"""
BROWSER_SUGGESTIONS = Suggestions(model="hand-made", threshold=0.5,
                                  points={"frame_3": np.array([[50, 5], [20, 40]])}, uncertainty={})


@pytest.fixture(scope="module")
def browser():
    from tests.test_dashboard import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed: run .ci/install-browser.sh")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1300, "height": 1100})
    page.problems = []
    page.on("console", lambda m: page.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_function(f"() => window.Bokeh && Bokeh.index && {FIGURE} !== null")
    return page


@contextmanager
def _serving(browser, session: AnnotationSession):
    """A server for ``session`` and a page on it; both closed even when the test fails (a live server thread
    would keep pytest from exiting)."""
    from workbench.annotate.app import serve

    server = serve(session)
    try:
        page = _open(browser, server.url)
        try:
            yield page
        finally:
            page.close()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def app(browser, tmp_path_factory):
    images = _folder(tmp_path_factory.mktemp("annotate"))
    points, split = default_paths(images)
    session = AnnotationSession(images, points, split=split, suggestions=BROWSER_SUGGESTIONS)
    with _serving(browser, session) as page:
        yield page, session


def _wait_on_disk(path: Path, expected: dict, timeout: float = 15.0) -> None:
    """Wait until the points file holds ``expected`` (the click is handled asynchronously by the server)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and _on_disk(path) == expected:
            return
        time.sleep(0.05)
    assert (_on_disk(path) if path.exists() else None) == expected


def _show(page, sid: str) -> None:
    page.locator(".annotate-status").get_by_text(sid, exact=True).wait_for()
    page.wait_for_timeout(200)  # the new image is drawn (the status and the image data change together)


def _bright_spot(page) -> tuple[float, float]:
    """Page coordinates of the centre of the bright target as the browser drew it (screenshot of the frame)."""
    f = page.evaluate(FRAME_JS)
    clip = {"x": f["left"], "y": f["top"], "width": f["width"], "height": f["height"]}
    import io

    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("L"), dtype=np.float64)
    m = 3  # the frame's fractional page position lets the white page show in its outermost screen pixels
    ys, xs = np.nonzero(shot[m:-m, m:-m] > 200)
    assert len(ys), "no bright target drawn in the frame"
    return f["left"] + m + (xs.min() + xs.max() + 1) / 2, f["top"] + m + (ys.min() + ys.max() + 1) / 2


def _goto(page, session: AnnotationSession, sid: str) -> None:
    """Navigate with the keyboard from the session's current image to ``sid``."""
    steps = session.ids.index(sid) - session.index
    for _ in range(abs(steps)):
        page.keyboard.press("n" if steps > 0 else "p")
    _show(page, sid)


def _others_on_disk(path: Path, *sids: str) -> dict:
    """The points file's entries of every image but ``sids`` (what a test on ``sids`` must leave alone)."""
    return {k: v for k, v in (_on_disk(path) if path.exists() else {}).items() if k not in sids}


@pytest.mark.browser
def test_browser_clicking_the_drawn_target_labels_its_pixel_and_clicking_again_removes_it(app):
    page, session = app
    path = session.points_path
    _goto(page, session, "frame_1")
    before = _others_on_disk(path, "frame_1")
    # Click where chromium drew the target: the image is drawn the right way up and the click maps back to it.
    x, y = _bright_spot(page)
    page.mouse.click(x, y)
    _wait_on_disk(path, {**before, "frame_1": [list(FRAMES["frame_1"])]})
    page.locator(".annotate-status").get_by_text("annotated: 1 point(s)").wait_for()
    page.screenshot(path=str(ARTIFACTS / "annotate_point.png"), full_page=True)
    page.mouse.click(x + 3, y - 3)  # a click on the point (within 8 screen pixels) removes it
    _wait_on_disk(path, before)
    page.locator(".annotate-status").get_by_text("not annotated").wait_for()
    page.keyboard.press("u")  # undo brings it back
    _wait_on_disk(path, {**before, "frame_1": [list(FRAMES["frame_1"])]})


@pytest.mark.browser
def test_browser_clicks_hit_the_right_pixel_when_zoomed(app):
    page, session = app
    path = session.points_path
    _goto(page, session, "frame_2")
    before = _others_on_disk(path, "frame_2")
    f = page.evaluate(FRAME_JS)
    page.mouse.move(f["left"] + 0.7 * f["width"], f["top"] + 0.5 * f["height"])  # near the target (30, 60)
    for _ in range(3):
        page.mouse.wheel(0, -240)
        page.wait_for_timeout(150)
    page.wait_for_function(f"() => {{ const v = {FIGURE}; return v.model.x_range.end - v.model.x_range.start < 40; }}")
    page.screenshot(path=str(ARTIFACTS / "annotate_zoomed.png"), full_page=True)
    # The drawn target is where the figure's scales put pixel (30, 60), at this zoom too.
    x, y = _bright_spot(page)
    tx, ty = page.evaluate(SCREEN_JS, [30.5, 60.5])
    assert abs(x - tx) < 2 and abs(y - ty) < 2
    # Clicks just inside two opposite corners of pixel (28, 57): the first labels it, the second removes it.
    page.mouse.click(*page.evaluate(SCREEN_JS, [28.1, 57.1]))
    _wait_on_disk(path, {**before, "frame_2": [[28, 57]]})
    page.mouse.click(*page.evaluate(SCREEN_JS, [28.9, 57.9]))
    _wait_on_disk(path, before)
    page.mouse.click(x, y)
    _wait_on_disk(path, {**before, "frame_2": [[30, 60]]})


@pytest.mark.browser
def test_browser_no_target_key_and_suggestion_acceptance(app):
    page, session = app
    path = session.points_path
    _goto(page, session, "frame_3")
    session_before = _others_on_disk(path, "frame_3", "frame_10")
    page.locator(".annotate-status").get_by_text("2 suggestion(s) to review").wait_for()
    page.keyboard.press("a")  # accept (50, 5)
    _wait_on_disk(path, {**session_before, "frame_3": [[50, 5]]})
    page.keyboard.press("r")  # reject (20, 40): no label changes
    page.locator(".annotate-status").get_by_text("annotated: 1 point(s)").wait_for()
    assert "suggestion(s) to review" not in page.locator(".annotate-status").inner_text()
    assert _on_disk(path) == {**session_before, "frame_3": [[50, 5]]}
    page.keyboard.press("ArrowRight")
    _show(page, "frame_10")
    page.keyboard.press("0")
    _wait_on_disk(path, {**session_before, "frame_3": [[50, 5]], "frame_10": []})
    page.locator(".annotate-status").get_by_text("annotated: no target").wait_for()
    page.keyboard.press("l")  # the local-contrast view keeps the figure
    page.locator(".bk-btn.bk-active", has_text="local contrast").wait_for()
    page.screenshot(path=str(ARTIFACTS / "annotate_local_contrast.png"), full_page=True)
    assert page.problems == []


@pytest.mark.browser
def test_browser_a_restarted_server_resumes_at_the_first_unannotated_image(browser, tmp_path):
    images = _folder(tmp_path)
    points, split = default_paths(images)
    with _serving(browser, AnnotationSession(images, points, split=split)) as page:
        _show(page, "frame_1")
        page.keyboard.press("0")
        _wait_on_disk(points, {"frame_1": []})
        page.keyboard.press("n")
        _show(page, "frame_2")
        page.mouse.click(*_bright_spot(page))
        _wait_on_disk(points, {"frame_1": [], "frame_2": [list(FRAMES["frame_2"])]})
    with _serving(browser, AnnotationSession(images, points, split=split)) as page:
        _show(page, "frame_3")
        page.locator(".annotate-status").get_by_text("2 / 4").wait_for()
        page.screenshot(path=str(ARTIFACTS / "annotate_resumed.png"), full_page=True)
        assert page.problems == []
