"""Point label formats: NUAA-SIRST centroid XML (the real files), CSV and JSON round trips, the errors bad
files give, and the ``semprior points import`` / ``export`` commands."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from semprior_core.data.point_formats import (
    csv_text,
    export_points,
    import_points,
    nearest_pixel,
    read_nuaa_xml,
)
from semprior_core.data.points import PointSet, centroid_points
from semprior_core.io import DataError, read_mask
from workbench.cli import main

NUAA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "NUAA-SIRST"
needs_nuaa = pytest.mark.skipif(not (NUAA / "centroids").is_dir(), reason="NUAA-SIRST centroids not in ../shared/data")


def _same(a: PointSet, b: PointSet) -> None:
    assert sorted(a.points) == sorted(b.points)
    for sid in a.points:
        np.testing.assert_array_equal(a.points[sid], b.points[sid], err_msg=sid)
    assert a.sizes == b.sizes


def _example() -> PointSet:
    """Two targets, an image annotated as having no target, an image without a known size."""
    ps = PointSet(kind="manual")
    ps.points = {"a": np.array([[1, 2], [9, 11]]), "b": np.zeros((0, 2), dtype=np.int64), "c": np.array([[0, 0]])}
    ps.sizes = {"a": (10, 12), "b": (5, 6)}
    return ps


def test_nearest_pixel_rounds_half_up():
    np.testing.assert_array_equal(nearest_pixel([0.5, 1.49, 1.5, -0.5, 2.0]), [1, 1, 2, 0, 2])


# -- NUAA-SIRST centroid XML, the real files --------------------------------------------------------
@needs_nuaa
def test_nuaa_import_turns_one_based_centroids_into_pixels():
    ps = import_points(NUAA / "centroids", "nuaa-xml")
    assert len(ps.points) == 427 and ps.num_points() == 533  # counts documented in shared/data/README.md
    # Misc_1.xml: (yc, xc) = (75.494, 71.509) and (134.334, 220.973), 1-based, in a 320x240 image.
    np.testing.assert_array_equal(ps.points["Misc_1"], [[74, 71], [133, 220]])
    assert ps.sizes["Misc_1"] == (240, 320)


@needs_nuaa
def test_nuaa_points_match_the_mask_centroids_within_a_pixel():
    # The XML centroids are grey-weighted, the mask centroids binary: the pixels differ by at most one.
    ps = import_points(NUAA / "centroids", "nuaa-xml")
    identical = 0
    for sid, pts in ps.points.items():
        ref = centroid_points(read_mask(NUAA / "masks" / f"{sid}.png"))
        assert len(ref) == len(pts), sid
        dist = np.abs(pts[:, None, :] - ref[None]).max(axis=2).min(axis=1)  # Chebyshev distance to nearest
        assert dist.max() <= 1, sid
        identical += int((dist == 0).sum())
    assert identical / ps.num_points() > 0.75


@needs_nuaa
def test_nuaa_round_trip_xml_import_export_gives_the_same_points(tmp_path):
    first = import_points(NUAA / "centroids", "nuaa-xml")
    files = export_points(first, tmp_path / "xml", "nuaa-xml")
    assert len(files) == 427
    again = import_points(tmp_path / "xml", "nuaa-xml")
    _same(first, again)
    # Each exported centroid is the original's nearest pixel, 1-based: within half a pixel per axis.
    for sid in ("Misc_1", "Misc_10", "Misc_111"):
        _, size, original = read_nuaa_xml(NUAA / "centroids" / f"{sid}.xml")
        _, size2, exported = read_nuaa_xml(tmp_path / "xml" / f"{sid}.xml")
        assert size == size2
        np.testing.assert_array_equal(exported, first.points[sid])  # read back 0-based, integer valued
        assert np.abs(exported - original).max() <= 0.5
    root = ET.parse(tmp_path / "xml" / "Misc_1.xml").getroot()
    assert [o.findtext("centroid/yc") for o in root.findall("object")] == ["75", "134"]
    assert root.findtext("size/width") == "320" and root.findtext("filename") == "Misc_1"


def test_nuaa_xml_without_object_is_an_image_with_no_target(tmp_path):
    files = export_points(_example(), tmp_path, "nuaa-xml")
    assert sorted(p.name for p in files) == ["a.xml", "b.xml", "c.xml"]
    assert ET.parse(tmp_path / "b.xml").getroot().find("object") is None
    assert ET.parse(tmp_path / "c.xml").getroot().find("size") is None  # size unknown: not written
    _same(_example(), import_points(tmp_path, "nuaa-xml"))


# -- CSV and JSON ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_csv_and_json_round_trip_keeps_points_sizes_and_no_target_images(tmp_path, fmt):
    (path,) = export_points(_example(), tmp_path / f"p.{fmt}", fmt)
    back = import_points(path, fmt)
    _same(_example(), back)
    assert back.points["b"].shape == (0, 2)


def test_csv_marks_no_target_images_with_an_empty_row():
    assert csv_text(_example()).splitlines() == [
        "image,y,x,height,width", "a,1,2,10,12", "a,9,11,10,12", "b,,,5,6", "c,0,0,,"]


def test_csv_needs_only_image_y_x(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x,image,y\n4,f1,3\n5,f1,6\n,f2,\n")
    ps = import_points(path, "csv")
    np.testing.assert_array_equal(ps.points["f1"], [[3, 4], [6, 5]])
    assert ps.points["f2"].shape == (0, 2) and ps.sizes == {}


# -- bad input -----------------------------------------------------------------------------------------
XML_HEAD = "<annotation><filename>{sid}</filename><size><width>8</width><height>6</height><depth>1</depth></size>"
BAD_XML = [  # (content, expected message)
    ("<annotation><object>", "not valid XML"),
    ("<root/>", "expected <annotation>"),
    (XML_HEAD.format(sid="other") + "</annotation>", "does not match the file name"),
    (XML_HEAD.format(sid="im") + "<object><centroid><yc>abc</yc><xc>2</xc></centroid></object></annotation>",
     "<yc> must hold a finite number"),
    (XML_HEAD.format(sid="im") + "<object><name>Target</name></object></annotation>", "has no <centroid>"),
    (XML_HEAD.format(sid="im") + "<object><centroid><yc>7.2</yc><xc>2</xc></centroid></object></annotation>",
     "lies outside the 8x6 image"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "message"), BAD_XML, ids=[m for _, m in BAD_XML])
def test_bad_xml_names_the_file_and_the_problem(tmp_path, content, message):
    (tmp_path / "im.xml").write_text(content)
    with pytest.raises(DataError, match=message) as err:
        import_points(tmp_path, "nuaa-xml")
    assert str(tmp_path / "im.xml") in str(err.value)


BAD_CSV = [
    ("image,x\na,1\n", "missing column\\(s\\) y"),
    ("image,y,x\na,1.5,2\n", "line 2: y must be an integer pixel"),
    ("image,y,x\na,1,2\nb,3,\n", "line 3: give both y and x"),
    ("image,y,x\na,1,2\na,,\n", "line 3: image 'a' is listed both with points and with no target"),
    ("image,y,x,height,width\na,1,2,4,4\na,2,2,5,4\n", "line 3: image 'a' has size 4x5 here but 4x4"),
    ("image,y,x,height,width\na,4,2,4,4\n", "image 'a' has a point outside its 4x4 frame"),
    ("image,y,x\na,-1,2\n", "image 'a' has a negative point coordinate"),
    ("image,y,x\n,1,2\n", "line 2: empty image id"),
]  # fmt: skip


BAD_JSON = [
    ("[1, 2]", "expected an object with an \"images\" list"),
    ('{"images": [{"image": "a", "points": [{"y": 1.5, "x": 2}]}]}', "points must be objects with integer"),
    ('{"images": [{"image": "a", "points": [[1, 2]]}]}', "points must be objects with integer"),
    ('{"images": [{"image": "a"}, {"image": "a"}]}', "image 'a' is listed twice"),
    ('{"images": [{"points": []}]}', "images\\[0\\] needs a non-empty"),
    ('{"images": [{"image": "a", "height": 4}]}', "height and width must both be positive integers"),
    ('{"images": [{"image": "a", "height": 4, "width": 4, "points": [{"y": 1, "x": 4}]}]}', "outside its 4x4 frame"),
    ('{"images": ', "not valid JSON"),
]  # fmt: skip


BAD_FILES = [("csv", content, message) for content, message in BAD_CSV] + [
    ("json", content, message) for content, message in BAD_JSON]


@pytest.mark.parametrize(("fmt", "content", "message"), BAD_FILES, ids=[f"{f}: {m}" for f, _, m in BAD_FILES])
def test_bad_file_names_the_file_and_the_problem(tmp_path, fmt, content, message):
    path = tmp_path / f"p.{fmt}"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        import_points(path, fmt)
    assert str(path) in str(err.value)


def test_wrong_source_or_destination_kinds_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown point format 'voc'"):
        import_points(tmp_path, "voc")
    with pytest.raises(DataError, match="is a folder; csv import reads one file"):
        import_points(tmp_path, "csv")
    with pytest.raises(DataError, match="no .xml files"):
        import_points(tmp_path, "nuaa-xml")
    with pytest.raises(DataError, match="missing.csv: not found"):
        import_points(tmp_path / "missing.csv", "csv")
    with pytest.raises(DataError, match="give a folder"):
        export_points(_example(), tmp_path / "one.xml", "nuaa-xml")


# -- command line --------------------------------------------------------------------------------------
@needs_nuaa
def test_points_import_and_export_commands(tmp_path):
    for sid in ("Misc_1", "Misc_10", "Misc_100"):
        shutil.copy(NUAA / "centroids" / f"{sid}.xml", tmp_path / f"{sid}.xml")
    out = tmp_path / "points.json"
    assert main(["points", "import", str(tmp_path), "--format", "nuaa-xml", "--out", str(out)]) == 0
    ps = PointSet.load(out)  # the format semprior train reads
    assert sorted(ps.points) == ["Misc_1", "Misc_10", "Misc_100"] and ps.kind == "imported"
    np.testing.assert_array_equal(ps.points["Misc_1"], [[74, 71], [133, 220]])
    assert main(["points", "export", str(out), "--format", "csv", "--out", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().splitlines()[1:3] == ["Misc_1,74,71,240,320", "Misc_1,133,220,240,320"]
    assert main(["points", "export", str(out), "--format", "nuaa-xml", "--out", str(tmp_path / "xml")]) == 0
    _same(ps, import_points(tmp_path / "xml", "nuaa-xml"))


def test_points_command_errors_exit_2(tmp_path, capsys):
    assert main(["points"]) == 2
    assert "give --data DIR" in capsys.readouterr().out
    (tmp_path / "bad.csv").write_text("image,y\n")
    assert main(["points", "import", str(tmp_path / "bad.csv"), "--format", "csv", "--out", str(tmp_path / "o.json")]) == 2
    assert "missing column(s) x" in capsys.readouterr().out
    assert not (tmp_path / "o.json").exists()
