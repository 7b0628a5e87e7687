"""Point labels in other tools' formats: NUAA-SIRST centroid XML, CSV and a plain JSON.

Each converts to and from :class:`~semprior_core.data.points.PointSet` (0-based integer (y, x) pixels).
An image listed with no point is an image *annotated as having no target*; an image not listed at all
was never annotated. Every format keeps that difference:

- ``nuaa-xml``: one ``<id>.xml`` per image as in open-sirst-v2 ``annotations/centroids``;
  ``<annotation><filename/><size><width/><height/><depth/></size>`` plus one
  ``<object><name>Target</name><centroid><yc/><xc/></centroid></object>`` per target. Its centroids are
  1-based floats (MATLAB); import takes the pixel whose centre is nearest, ``floor(c - 1 + 0.5)`` (ties go
  to the higher index), export writes that pixel back 1-based as an integer, so
  XML → import → export → import gives identical points. A file without object is a no-target image.
- ``csv``: header ``image,y,x,height,width`` (``height``/``width`` optional, may be empty); one row per
  point; a row with empty ``y`` and ``x`` marks an image with no target.
- ``json``: ``{"images": [{"image": id, "height": H, "width": W, "points": [{"y": .., "x": ..}]}]}``
  (``height``/``width`` optional); explicit keys so no reader confuses (y, x) with (x, y).
"""

from __future__ import annotations

import csv
import io
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io import DataError, atomic_write_json, atomic_write_text, read_json
from .points import PointSet, nearest_pixel

FORMATS = ("nuaa-xml", "csv", "json")
IMPORTED_KIND = "imported"
CSV_COLUMNS = ("image", "y", "x", "height", "width")


def _checked(ps: PointSet) -> PointSet:
    """``ps`` after checking every point is non-negative and inside its image's size when known."""
    for sid, pts in ps.points.items():
        if sid in ps.sizes:
            ps.check_against(sid, ps.sizes[sid])
        elif (pts < 0).any():
            raise DataError(f"{ps.source}: image {sid!r} has a negative point coordinate")
    return ps


# -- NUAA-SIRST centroid XML ---------------------------------------------------------------------
def _xml_number(path: Path, node: ET.Element, tag: str) -> float:
    text = node.findtext(tag)
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{path}: <{tag}> must hold a finite number, got {text!r}")
    return value


def read_nuaa_xml(path: str | Path) -> tuple[str, tuple[int, int] | None, np.ndarray]:
    """(image id, (H, W) or None, float (N, 2) 0-based (y, x) centroids) of one centroid XML file."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except ET.ParseError as exc:
        raise DataError(f"{path}: not valid XML ({exc})") from exc
    if root.tag != "annotation":
        raise DataError(f"{path}: root element is <{root.tag}>, expected <annotation> (NUAA-SIRST centroid XML)")
    name = (root.findtext("filename") or "").strip()
    if name and Path(name).stem != path.stem:
        raise DataError(f"{path}: <filename> {name!r} does not match the file name (the id is the file stem)")
    size_node = root.find("size")
    size = None
    if size_node is not None:
        size = (int(_xml_number(path, size_node, "height")), int(_xml_number(path, size_node, "width")))
    pts = []
    for k, obj in enumerate(root.findall("object"), 1):
        centroid = obj.find("centroid")
        if centroid is None:
            raise DataError(f"{path}: <object> {k} has no <centroid>")
        pts.append((_xml_number(path, centroid, "yc") - 1.0, _xml_number(path, centroid, "xc") - 1.0))
    return path.stem, size, np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def nuaa_xml_text(sid: str, size: tuple[int, int] | None, points: np.ndarray) -> str:
    """The centroid XML of one image: integer pixels written 1-based."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = sid
    if size is not None:
        node = ET.SubElement(root, "size")
        ET.SubElement(node, "width").text = str(size[1])
        ET.SubElement(node, "height").text = str(size[0])
        ET.SubElement(node, "depth").text = "1"
    for y, x in np.asarray(points, dtype=np.int64).reshape(-1, 2):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = "Target"
        centroid = ET.SubElement(obj, "centroid")
        ET.SubElement(centroid, "yc").text = str(int(y) + 1)
        ET.SubElement(centroid, "xc").text = str(int(x) + 1)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _import_nuaa(src: Path) -> PointSet:
    files = sorted(src.glob("*.xml")) if src.is_dir() else [src]
    if not files:
        raise DataError(f"{src}: no .xml files")
    ps = PointSet(kind=IMPORTED_KIND, source=str(src))
    for path in files:
        sid, size, centroids = read_nuaa_xml(path)
        ps.points[sid] = nearest_pixel(centroids)
        if size is not None:
            ps.sizes[sid] = size
            try:
                ps.check_against(sid, size)
            except DataError:
                raise DataError(f"{path}: a centroid lies outside the {size[1]}x{size[0]} image") from None
    return _checked(ps)


def _export_nuaa(ps: PointSet, dest: Path) -> list[Path]:
    if dest.suffix.lower() == ".xml":
        raise DataError(f"{dest}: nuaa-xml export writes one <id>.xml per image: give a folder")
    return [atomic_write_text(dest / f"{sid}.xml", nuaa_xml_text(sid, ps.sizes.get(sid), pts))
            for sid, pts in sorted(ps.points.items())]


# -- CSV -----------------------------------------------------------------------------------------
def _csv_int(path: Path, line: int, column: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{path}: line {line}: {column} must be an integer pixel, got {text!r}") from None


def _import_csv(path: Path) -> PointSet:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS[:3] if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (header must be {','.join(CSV_COLUMNS)})")
    pts: dict[str, list[tuple[int, int]]] = {}
    empty: set[str] = set()
    ps = PointSet(kind=IMPORTED_KIND, source=str(path))
    for row in reader:
        line = reader.line_num
        sid = (row["image"] or "").strip()
        if not sid:
            raise DataError(f"{path}: line {line}: empty image id")
        y, x = (row["y"] or "").strip(), (row["x"] or "").strip()
        if bool(y) != bool(x):
            raise DataError(f"{path}: line {line}: give both y and x, or neither (an image with no target)")
        if y:
            pts.setdefault(sid, []).append((_csv_int(path, line, "y", y), _csv_int(path, line, "x", x)))
        else:
            empty.add(sid)
        if sid in empty and sid in pts:
            raise DataError(f"{path}: line {line}: image {sid!r} is listed both with points and with no target")
        h, w = (row.get("height") or "").strip(), (row.get("width") or "").strip()
        if h or w:
            size = (_csv_int(path, line, "height", h), _csv_int(path, line, "width", w))
            if ps.sizes.setdefault(sid, size) != size:
                raise DataError(f"{path}: line {line}: image {sid!r} has size {size[1]}x{size[0]} here but "
                                f"{ps.sizes[sid][1]}x{ps.sizes[sid][0]} on an earlier line")
    for sid in sorted(set(pts) | empty):
        ps.points[sid] = np.asarray(pts.get(sid, []), dtype=np.int64).reshape(-1, 2)
    return _checked(ps)


def csv_text(ps: PointSet) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for sid, pts in sorted(ps.points.items()):
        h, w = ps.sizes.get(sid, ("", ""))
        rows = [(int(y), int(x)) for y, x in pts] or [("", "")]
        writer.writerows((sid, y, x, h, w) for y, x in rows)
    return buf.getvalue()


# -- plain JSON ----------------------------------------------------------------------------------
def _import_json(path: Path) -> PointSet:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{path}: expected an object with an \"images\" list")
    ps = PointSet(kind=IMPORTED_KIND, source=str(path))
    for k, entry in enumerate(data["images"]):
        sid = entry.get("image") if isinstance(entry, dict) else None
        if not isinstance(sid, str) or not sid:
            raise DataError(f"{path}: images[{k}] needs a non-empty \"image\" id")
        if sid in ps.points:
            raise DataError(f"{path}: image {sid!r} is listed twice")
        try:
            pts = [(p["y"], p["x"]) for p in entry.get("points", [])]
            if not all(isinstance(v, int) and not isinstance(v, bool) for p in pts for v in p):
                raise TypeError
        except (TypeError, KeyError):
            raise DataError(f"{path}: image {sid!r}: points must be objects with integer \"y\" and \"x\"") from None
        ps.points[sid] = np.asarray(pts, dtype=np.int64).reshape(-1, 2)
        if "height" in entry or "width" in entry:
            h, w = entry.get("height"), entry.get("width")
            if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
                raise DataError(f"{path}: image {sid!r}: height and width must both be positive integers")
            ps.sizes[sid] = (h, w)
    return _checked(ps)


def json_doc(ps: PointSet) -> dict:
    images = []
    for sid, pts in sorted(ps.points.items()):
        entry: dict = {"image": sid}
        if sid in ps.sizes:
            entry["height"], entry["width"] = ps.sizes[sid]
        entry["points"] = [{"y": int(y), "x": int(x)} for y, x in pts]
        images.append(entry)
    return {"images": images}


# -- entry points --------------------------------------------------------------------------------
_IMPORTERS: dict[str, Callable[[Path], PointSet]] = {"nuaa-xml": _import_nuaa, "csv": _import_csv, "json": _import_json}


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown point format {fmt!r}; use one of {', '.join(FORMATS)}")


def import_points(src: str | Path, fmt: str) -> PointSet:
    """Read ``src`` (a folder of XML files or one file) in format ``fmt`` as a :class:`PointSet`."""
    _check_format(fmt)
    src = Path(src).expanduser()
    if not src.exists():
        raise DataError(f"{src}: not found")
    if src.is_dir() and fmt != "nuaa-xml":
        raise DataError(f"{src}: is a folder; {fmt} import reads one file")
    return _IMPORTERS[fmt](src)


def export_points(ps: PointSet, dest: str | Path, fmt: str) -> list[Path]:
    """Write ``ps`` in format ``fmt`` to ``dest`` (a folder for nuaa-xml, else a file); atomic per file."""
    _check_format(fmt)
    dest = Path(dest).expanduser()
    if fmt == "nuaa-xml":
        return _export_nuaa(ps, dest)
    if fmt == "csv":
        return [atomic_write_text(dest, csv_text(ps))]
    return [atomic_write_json(dest, json_doc(ps))]
