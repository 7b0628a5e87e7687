"""Inspection views (workbench.inspect): pure helpers on hand-made inputs, views on the tiny fixture runs checked
against what the run directory and the core code say."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from matplotlib.figure import Figure

import workbench.inspect as wi
from semprior_core.config import config_dict, load_config
from semprior_core.data.points import centroid_points
from semprior_core.store.label_history import LabelHistory
from semprior_core.store.runs import Run
from tests.fixtures_runs import tiny_classical_run, tiny_run, tiny_supervised_run  # noqa: F401
from workbench.inspect import figures
from workbench.inspect.compare import flatten, group_labels
from workbench.inspect.imaging import contour, outline_segments, overlay, thumbnail, to_unit, window_around
from workbench.inspect.overview import POINT_F1, VAL_SPLIT


# -- pure helpers --------------------------------------------------------------------------------
def test_contour_is_the_masks_4_connected_boundary():
    mask = np.zeros((6, 6))
    mask[1:4, 1:4] = 1  # 3x3 square: all but the centre touch the background
    c = contour(mask)
    assert len(c) == 8 and [2, 2] not in c.tolist()
    assert contour(np.zeros((4, 4))).shape == (0, 2)
    assert len(contour(np.ones((3, 3)))) == 8  # the image border counts as background


def test_overlay_colours_mask_outline_and_points():
    img = np.array([[0.0, 1.0], [0.5, 0.5]] * 2)[:3, :2].repeat(3, axis=1)  # 3x6, values 0..1
    mask = np.zeros((3, 6))
    mask[0, 0] = 1
    rgb = overlay(img, mask, outline=np.array([[2, 5]]), points=np.array([[1, 3]]), alpha=1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 6, 3)
    assert rgb[0, 0].tolist() == [255, 140, 0]  # fully orange
    assert rgb[2, 5].tolist() == [0, 230, 255]  # outline cyan
    assert rgb[1, 3].tolist() == rgb[0, 3].tolist() == [26, 255, 51]  # cross of green around the point
    assert rgb[0, 1].tolist() == [0, 0, 0]  # untouched: grey value 0 after min-max scaling


def test_outline_segments_run_along_pixel_edges_outside_the_mask():
    mask = np.zeros((4, 5))
    mask[1, 1] = 1  # one pixel: its four edges
    assert sorted(map(tuple, outline_segments(mask))) == [(1, 1, 1, 2), (1, 1, 2, 1), (1, 2, 2, 2), (2, 1, 2, 2)]
    mask[1, 2] = 1  # two pixels side by side: the shared edge is inside, 6 edges remain
    edges = outline_segments(mask)
    assert len(edges) == 6 and (1, 2, 2, 2) not in map(tuple, edges)
    mask[:] = 1  # the image border bounds the mask: 2 * (4 + 5) edges
    assert len(outline_segments(mask)) == 18 and outline_segments(np.zeros((3, 3))).shape == (0, 4)


def test_window_around_centres_and_clips():
    assert window_around((10, 10), (64, 64), 8) == (slice(6, 14), slice(6, 14))
    assert window_around((1, 62), (64, 64), 8) == (slice(0, 8), slice(56, 64))
    assert window_around((3, 3), (5, 5), 8) == (slice(0, 8), slice(0, 8))  # larger than the image: all of it


def test_rounded_rounds_floats_only():
    assert wi.rounded([{"iou": 0.123456789, "area": 12, "key": "a", "none": None}], 3) == [
        {"iou": 0.123, "area": 12, "key": "a", "none": None}]


def test_thumbnail_takes_block_means_and_to_unit_scales():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(thumbnail(a, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert thumbnail(a, 8) is not None and thumbnail(a, 8).shape == (4, 4)
    np.testing.assert_allclose(to_unit(np.array([2.0, 4.0, 3.0])), [0, 1, 0.5])
    assert to_unit(np.full(3, 7.0)).tolist() == [0, 0, 0]


# -- run comparison ------------------------------------------------------------------------------
def _fake_run(root: Path, name: str, overrides: list[str], iou: float | None, val_iou: float = 0.5) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(config_dict(load_config(None, overrides + [f"name={name}"]))))
    (d / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "select_score": 0.2, "val_student_iou": val_iou}) + "\n")
    (d / "run.json").write_text(json.dumps({"eval_models": ["student"]}))
    if iou is not None:
        row = {"IoU": iou, "nIoU": iou - 2, "Pd": 90.0, "Fa": 10.0}
        (d / "eval").mkdir()
        (d / "eval" / "test_student_best.json").write_text(
            json.dumps({"split": "test", "model": "student", "checkpoint": "best", "epoch": 1, "row": row,
                        "per_image": []}))
    return d


def test_compare_groups_runs_that_differ_only_in_the_seed(tmp_path):
    _fake_run(tmp_path, "lesps_s0", ["train.seed=0", "labels.rule=lesps"], 70.0)
    _fake_run(tmp_path, "lesps_s1", ["train.seed=1", "labels.rule=lesps", "train.threads=4"], 72.0)
    _fake_run(tmp_path, "lesps_s2", ["train.seed=2", "labels.rule=lesps"], 74.0)
    _fake_run(tmp_path, "pal_s0", ["train.seed=0", "labels.rule=pal"], 60.0)
    _fake_run(tmp_path, "fixed_s0", ["train.seed=0", "labels.rule=fixed"], None, val_iou=0.25)
    rows = {r["group"]: r for r in wi.compare_runs([tmp_path])}
    assert set(rows) == {"labels.rule=lesps", "labels.rule=pal", "labels.rule=fixed"}
    lesps = rows["labels.rule=lesps"]
    assert (lesps["split"], lesps["model"], lesps["n"]) == ("test", "student", 3)
    assert sorted(lesps["seeds"]) == [0, 1, 2]
    assert lesps["IoU_mean"] == pytest.approx(72.0) and lesps["IoU_std"] == pytest.approx(2.0)  # sample std
    assert lesps["nIoU_mean"] == pytest.approx(70.0)
    assert rows["labels.rule=pal"]["IoU_std"] is None  # one run: no spread
    fixed = rows["labels.rule=fixed"]  # no saved evaluation: its validation score, labelled as such
    assert fixed["split"] == VAL_SPLIT and fixed["IoU_mean"] == pytest.approx(25.0)


def test_group_labels_name_only_the_keys_that_differ_within_a_run_kind():
    trained = [{"method.name": '"semprior"', "train.lr": "0.1", "data.datasets": '[{"root": "a/NUAA"}]'},
               {"method.name": '"semprior"', "train.lr": "0.2", "data.datasets": '[{"root": "b/NUDT"}]'}]
    classical = {"classical.method": '"tophat"', "classical.grid": "{}", "data.datasets": '[{"root": "a/NUAA"}]'}
    # data.datasets has its own column; the classical config shares no key with the trained ones but data
    assert group_labels([*trained, classical], ["trained", "trained", "classical"]) == [
        "method.name=semprior, train.lr=0.1", "method.name=semprior, train.lr=0.2", "classical.method=tophat"]
    assert group_labels(trained, ["trained", "trained"]) == ["train.lr=0.1", "train.lr=0.2"]


def test_compare_puts_datasets_in_a_column_and_warns_when_they_differ(tiny_run, tiny_classical_run, tmp_path):  # noqa: F811
    rows = wi.compare_runs([tiny_run, tiny_classical_run])
    assert {r["group"] for r in rows} == {"method.name=semprior", "classical.method=tophat"}
    assert {r["data"] for r in rows} == {"data"} and wi.dataset_warning(rows) is None  # the fixtures' folder
    other = _fake_run(tmp_path, "other", ['data.datasets=[{root: somewhere/NUDT-SIRST}]'], 60.0)
    rows = wi.compare_runs([tiny_run, other])
    assert {r["data"] for r in rows} == {"data", "NUDT-SIRST"}
    assert "different datasets (NUDT-SIRST, data)" in wi.dataset_warning(rows)


def test_compare_labels_a_single_group_and_formats_mean_std(tmp_path):
    _fake_run(tmp_path, "a", ["train.seed=0"], 70.0)
    _fake_run(tmp_path, "b", ["train.seed=5"], 71.0)
    rows = wi.compare_runs([tmp_path / "a", tmp_path / "b", tmp_path])  # duplicates are counted once
    assert len(rows) == 1 and rows[0]["group"] == "all runs" and rows[0]["n"] == 2
    assert wi.format_mean_std(72.104, 1.3) == "72.10 ± 1.30"
    assert wi.format_mean_std(72.1, None) == "72.10"
    assert wi.format_mean_std(None, None) == "–"
    from workbench.inspect.compare import format_values

    # mean 2, sample std sqrt(((1-2)² + (3-2)²) / 1) = 1.414…
    assert format_values([1.0, 3.0]) == "2.00 ± 1.41" and format_values([2.5], 1) == "2.5" and format_values([]) == "–"
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": "1", "a.c": "[1, 2]", "d": "{}"}


# -- overview ------------------------------------------------------------------------------------
def test_metrics_table_names_splits_and_matches_the_saved_evaluation(tiny_run):  # noqa: F811
    rows = wi.metrics_table(tiny_run)
    saved = json.loads((tiny_run / "eval" / "test_teacher_best.json").read_text())["row"]
    test_teacher = next(r for r in rows if r["split"] == "test" and r["model"] == "teacher")
    assert test_teacher["IoU"] == pytest.approx(saved["IoU"]) and test_teacher["Fa"] == pytest.approx(saved["Fa"])
    hist = Run.open(tiny_run).history()
    best = max(hist, key=lambda r: r["select_score"])
    val_student = next(r for r in rows if r["split"] == VAL_SPLIT and r["model"] == "student")
    assert val_student["epoch"] == best["epoch"]
    assert val_student["IoU"] == pytest.approx(100 * best["val_student_iou"])
    assert val_student[POINT_F1] == pytest.approx(100 * best["val_student_point_f1"])  # in %, as IoU
    assert [r["split"] for r in rows].count("test") == 2


def test_curves_are_the_logged_series(tiny_run):  # noqa: F811
    series = {s["name"]: s for s in wi.curves(tiny_run)}
    hist = Run.open(tiny_run).history()
    assert series["loss"]["epoch"] == [1, 2, 3] and series["loss"]["value"] == [r["loss"] for r in hist]
    assert {"val_student_iou", "val_teacher_point_f1"} <= set(series)
    assert "val_student_pd" not in series and series["val_student_iou"]["group"] == "validation"
    assert "val_student_pd" in {s["name"] for s in wi.curves(tiny_run, validation=("pd",))}
    percent = {s["name"]: s for s in wi.curves(tiny_run, percent=True)}
    assert percent["val_student_iou"]["value"] == pytest.approx([100 * v for v in series["val_student_iou"]["value"]])
    assert (percent["val_student_iou"]["unit"], series["val_student_iou"]["unit"], percent["loss"]["unit"]) == (
        "%", "fraction", "loss")
    assert percent["loss"]["value"] == series["loss"]["value"]


def test_a_classical_run_has_scores_but_no_curves(tiny_classical_run):  # noqa: F811
    assert wi.curves(tiny_classical_run) == []  # tuned, not trained: its one record is no curve
    rows = wi.metrics_table(tiny_classical_run)
    assert [(r["split"], r["model"]) for r in rows] == [(VAL_SPLIT, "tophat")] and rows[0]["IoU"] is not None


# -- labels --------------------------------------------------------------------------------------
def test_label_frame_reads_the_update_points_and_contour(tiny_run):  # noqa: F811
    h = wi.open_run(tiny_run)
    f = wi.label_frame(h, 1, 1)
    hist = LabelHistory(tiny_run)
    assert (f["update"], f["updates"], f["epoch"]) == (1, 3, hist.epochs[1])
    assert f["caption"] == f"update 1/2 · after {hist.epochs[1]} training epoch" + ("" if hist.epochs[1] == 1 else "s")
    assert f["key"] == hist.update(1).keys[1]
    np.testing.assert_array_equal(f["pseudo_mask"], hist.label(1, f["key"]))
    gt = h.bank("train").mask(1) > 0
    np.testing.assert_array_equal(f["points"], centroid_points(gt))  # the run's points are mask centroids
    np.testing.assert_array_equal(f["gt_outline"], outline_segments(gt))
    ys, xs = f["zoom"]
    y, x = f["points"][0]
    assert ys.stop - ys.start == xs.stop - xs.start == 24 and ys.start <= y < ys.stop and xs.start <= x < xs.stop
    assert f["image"].shape == f["pseudo_mask"].shape == gt.shape
    assert set(f["predictions"]) == {"student", "teacher"}
    assert wi.label_frame(h, f["key"], -1)["update"] == 2
    with pytest.raises(IndexError):
        wi.label_frame(h, 0, 3)


def test_label_frame_predictions_match_the_core_prediction_path(tiny_run):  # noqa: F811
    from semprior_core.evaluation.evaluate import load_run, predict_bank, run_bank

    loaded = load_run(tiny_run / "best.pt")
    bank = run_bank(loaded, tiny_run, "train")
    want = predict_bank(loaded, "teacher", bank, torch.device("cpu"))[2]
    got = wi.label_frame(tiny_run, 2, 0)["predictions"]["teacher"]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_update_captions_name_the_initial_labels_and_the_epochs_before_an_update():
    assert wi.update_caption(0, 7, 0) == "update 0/6 · initial point labels"
    assert wi.update_caption(6, 7, 21) == "update 6/6 · after 21 training epochs"
    assert wi.update_caption(1, 7, 1) == "update 1/6 · after 1 training epoch"


def test_the_label_view_opens_on_the_image_whose_pseudo_mask_changed_most(tiny_run, tiny_classical_run):  # noqa: F811
    hist = LabelHistory(tiny_run)
    first, last = hist.update(0), hist.update(-1)
    change = {k: np.abs(last.label(k) - first.label(k)).sum() for k in first.keys}
    assert wi.label_change(tiny_run) == pytest.approx(change)
    key = wi.most_changed_image(tiny_run)
    assert change[key] == max(change.values()) > 0
    assert wi.most_changed_image(tiny_classical_run) is None and wi.label_change(tiny_classical_run) == {}


def test_label_quality_tables(tiny_run):  # noqa: F811
    assert wi.label_quality(tiny_run) == LabelHistory(tiny_run).table()
    rows = wi.image_label_history(tiny_run, 0)
    hist = LabelHistory(tiny_run)
    assert [r["update"] for r in rows] == [0, 1, 2]
    assert [r["area"] for r in rows] == [hist.update(n).summary["images"][0]["area"] for n in range(3)]
    assert wi.label_updates(tiny_run) == [{"update": n, "epoch": e} for n, e in enumerate(hist.epochs)]


# -- clusters ------------------------------------------------------------------------------------
def test_cluster_views_follow_the_assignment_and_weight_records(tiny_run):  # noqa: F811
    assignment = json.loads((tiny_run / "clusters" / "assignment.json").read_text())
    records = [json.loads(line) for line in (tiny_run / "clusters" / "weights.jsonl").read_text().splitlines()]
    rows = wi.cluster_weights(tiny_run)
    assert len(rows) == len(records) * assignment["k"]
    assert rows[1]["weight"] == records[0]["weights"][1] and rows[1]["step"] == records[0]["step"]
    summary = wi.cluster_summary(tiny_run)
    assert [s["size"] for s in summary] == assignment["sizes"]
    assert summary[0]["last_weight"] == records[-1]["weights"][0]
    gallery = wi.cluster_gallery(tiny_run, 1, size=32)
    members = [k for k, c in zip(assignment["ids"], assignment["labels"]) if c == 1]
    assert [g["key"] for g in gallery] == members
    assert gallery[0]["image"].shape == (32, 32)  # 64x64 images, halved
    latest = LabelHistory(tiny_run).label(-1, members[0])
    np.testing.assert_allclose(gallery[0]["pseudo_mask"], thumbnail(latest, 32))
    with pytest.raises(ValueError, match="no cluster 2"):
        wi.cluster_gallery(tiny_run, 2)


# -- SCAM ----------------------------------------------------------------------------------------
def test_scam_maps_are_channel_means_of_the_gated_modulation(tiny_run):  # noqa: F811
    h = wi.open_run(tiny_run)
    layers = wi.scam_maps(h, 0, "test")
    assert [(lay["stage"], lay["stride"], lay["vfm_layer"]) for lay in layers] == [(0, 1, 1), (1, 2, 2)]
    assert [lay["gate"].shape for lay in layers] == [(4,), (8,)]  # U-Net widths 4 and 8
    assert layers[0]["gamma"].shape == (64, 64) and layers[1]["gamma"].shape == (32, 32)
    batch = h.batch("test", 0)
    maps = h.loaded().networks["teacher"].modulation_maps(batch["image"], batch["feats"])[1]
    want = (maps["gate"][None, :, None, None] * maps["beta"]).mean(dim=1)[0, :32, :32].numpy()
    np.testing.assert_allclose(layers[1]["beta"], want, rtol=1e-5, atol=1e-8)
    assert all((lay["change"] >= 0).all() for lay in layers)


def test_scam_toggle_compares_the_teacher_with_and_without_scam(tiny_run):  # noqa: F811
    h = wi.open_run(tiny_run)
    d = wi.scam_toggle(h, 1, "test")
    np.testing.assert_allclose(d["difference"], d["with_scam"] - d["without_scam"])
    np.testing.assert_array_equal(d["points"], h.points("test", 1))  # the targets, to relate the maps to
    np.testing.assert_array_equal(d["gt_outline"], outline_segments(h.bank("test").mask(1)))
    teacher = h.loaded().networks["teacher"]
    batch = h.batch("test", 1)
    with torch.no_grad():
        off = torch.sigmoid(teacher(batch["image"], scam=False))[0, 0, :64, :64].numpy()
        student = torch.sigmoid(h.loaded().networks["student"](batch["image"]))[0, 0, :64, :64].numpy()
    np.testing.assert_allclose(d["without_scam"], off, atol=1e-6)
    np.testing.assert_allclose(d["student"], student, atol=1e-6)
    assert np.abs(d["difference"]).max() > 0  # a trained SCAM changes the prediction


def test_supervised_runs_have_no_scam_and_no_clusters(tiny_supervised_run):  # noqa: F811
    assert wi.scam_maps(tiny_supervised_run, 0) == []
    with pytest.raises(ValueError, match="no SCAM teacher"):
        wi.scam_toggle(tiny_supervised_run, 0)
    assert wi.cluster_weights(tiny_supervised_run) == [] and wi.cluster_summary(tiny_supervised_run) == []
    assert list(wi.label_frame(tiny_supervised_run, 0)["predictions"]) == ["student"]


# -- attributions --------------------------------------------------------------------------------
def test_attributions_default_to_the_first_point_and_crop_to_the_image(tiny_run):  # noqa: F811
    h = wi.open_run(tiny_run)
    y, x = (int(v) for v in h.points("test", 0)[0])
    d = wi.attributions(h, 0, method="saliency", radius=1)
    assert d["target"] == (y, x) and d["model"] == "student"
    assert d["map"].shape == d["window"].shape == (64, 64)
    assert d["window"].sum() == len(range(max(0, y - 1), min(64, y + 2))) * len(range(max(0, x - 1), min(64, x + 2)))
    assert 0 <= d["mass_inside"] <= 1 and (d["map"] >= 0).all()  # saliency is a magnitude
    v = wi.attributions(h, 0, (10, 12), "integrated_gradients", "teacher", wrt="vfm")
    assert set(v["layers"]) == {1, 2} and v["target"] == (10, 12)  # VFM blocks feeding the two SCAMs
    np.testing.assert_allclose(v["map"], v["layers"][1] + v["layers"][2], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="no network"):
        wi.attributions(h, 0, model="critic")


def test_attribution_inputs_offer_only_valid_combinations(tiny_run, tiny_supervised_run):  # noqa: F811
    h = wi.open_run(tiny_run)
    assert wi.attribution_inputs(h, "teacher", "saliency") == ["image", "vfm"]
    assert wi.attribution_inputs(h, "teacher", "gradcam") == ["image"]  # Grad-CAM explains a layer, not an input
    assert wi.attribution_inputs(h, "student", "integrated_gradients") == ["image"]
    assert wi.attribution_inputs(tiny_supervised_run, "teacher", "saliency") == ["image"]  # no SCAM teacher
    with pytest.raises(ValueError, match="gradcam cannot explain the teacher w.r.t. 'vfm'"):
        wi.attributions(h, 0, method="gradcam", model="teacher", wrt="vfm")
    with pytest.raises(ValueError, match="unknown attribution method"):
        wi.attribution_inputs(h, "teacher", "lime")
    d = wi.attributions(h, 0, method="gradcam", model="teacher")
    assert (d["method"], d["model"], d["wrt"]) == ("gradcam", "teacher", "image") and d["map"].shape == (64, 64)


# -- the handle ----------------------------------------------------------------------------------
def test_handle_resolves_images_and_reloads_a_rewritten_checkpoint(tiny_run):  # noqa: F811
    h = wi.open_run(tiny_run)
    assert wi.open_run(h) is h and wi.open_run(str(tiny_run)) is h
    keys = h.keys("test")
    assert h.index("test", keys[2]) == 2 and h.index("test", -1) == len(keys) - 1
    with pytest.raises(KeyError):
        h.index("test", "nope")
    with pytest.raises(IndexError):
        h.index("test", len(keys))
    first = h.loaded()
    assert h.loaded() is first
    ckpt = tiny_run / "best.pt"
    st = ckpt.stat()
    os.utime(ckpt, (st.st_atime, st.st_mtime + 10))  # as a live run rewriting it would
    assert h.loaded() is not first
    assert h.networks() == ["student", "teacher"] and h.has_scam()


def test_default_run_path_prefers_the_environment_then_finds_the_demo_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMPRIOR_RUN", "/some/run")
    assert wi.default_run_path() == "/some/run"
    monkeypatch.delenv("SEMPRIOR_RUN")
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    (tmp_path / "runs" / "demo" / "config.yaml").write_text("name: demo\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where Jupyter starts a notebook's kernel
    assert wi.default_run_path() == os.path.join("..", "runs", "demo")  # relative: no absolute path in exports
    monkeypatch.chdir(tmp_path / "runs")
    (tmp_path / "runs" / "demo" / "config.yaml").unlink()
    assert wi.default_run_path() == str(Path("runs") / "demo")


# -- figures (notebook layout) -------------------------------------------------------------------
def test_figures_lay_out_the_views(tiny_run):  # noqa: F811
    h = wi.open_run(tiny_run)
    frame = wi.label_frame(h, 0, 2)
    fig = figures.label_figure(frame)
    titles = [a.get_title() for a in fig.axes]
    # overlay, close-up, pseudo-mask, student, teacher, and a colour bar for each of the three maps
    assert isinstance(fig, Figure) and len(fig.axes) == 8 and frame["caption"] in titles[0]
    assert [a.get_ylabel() for a in fig.axes[5:]] == ["pseudo-mask value", "probability", "probability"]
    assert {t.get_text() for t in fig.axes[1].get_legend().get_texts()} == {
        "pseudo-mask", "ground truth (diagnostic)", "point label"}
    scam = figures.scam_figure(wi.scam_maps(h, 0))
    assert len(scam.axes) == 8 + 6  # 2 stages x 4 panels, colour bars on the 3 maps of each stage
    assert (scam.axes[3].get_xlabel(), scam.axes[3].get_ylabel()) == ("channel", "gate g")
    toggle = figures.toggle_figure(wi.scam_toggle(h, 0))
    assert len(toggle.axes) == 5 + 4 and toggle.axes[0].images[0].get_cmap().name == "gray"  # the input in grey
    assert len(figures.cluster_weights_figure(wi.cluster_weights(h), selected=1).axes[0].lines) == 3  # 2 + y=1
    assert len(figures.gallery_figure(wi.cluster_gallery(h, 0)).axes) == 6
    assert len(figures.curves_figure(wi.curves(h)).axes) == 2
    quality = figures.quality_figure(wi.label_quality(h), current=1)
    assert quality.axes[0].get_ylim() == (0, 1) and "mean over 8 training images" in quality.axes[0].get_title()
    att = figures.attribution_figure(wi.attributions(h, 0, method="saliency"))
    assert "% of positive mass" in att.axes[1].get_title() and att.axes[2].get_ylabel() == "attribution"


def test_target_window_centres_on_the_largest_target_and_stays_inside():
    import numpy as np

    from workbench.inspect.predictions import target_window

    mask = np.zeros((100, 120))
    mask[10:12, 10:12] = 1  # small target
    mask[70:76, 110:116] = 1  # largest target (centre 72.5, 112.5), near the right edge
    ys, xs = target_window(mask, 32)
    assert (ys.start, ys.stop) == (56, 88) and (xs.start, xs.stop) == (88, 120)  # clipped at the right edge
    ys, xs = target_window(np.zeros((100, 120)), 32)
    assert (ys.start, xs.start) == (34, 44)  # no target: the centre
