"""A marimo notebook, run on a run directory, as one static HTML file that opens offline:
``python -m workbench.notebook_export notebooks/label_evolution.py --run runs/demo --out exports/``.

``marimo export html`` writes a page whose frontend comes from a CDN (blank offline), and marimo 0.25 cannot
inline it: pointing the page at the frontend shipped in the marimo package does not help, since its assets
are ES modules, which browsers refuse to load from ``file://``; ``export html-wasm --offline`` must be served
over HTTP and re-runs the notebook in Pyodide (no torch there).
So this runs the notebook with ``marimo export html``, reads the cell outputs that page carries (marimo's
session snapshot, schema version 1) and writes them as plain HTML: figures as inline PNGs, tables as
``<table>``, controls as their values at export time, the code folded under each cell. The page has no
script and loads nothing; absolute paths in it are written relative to the working directory (``~/...``
under the home folder), the folder the export was made from.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SESSION_VERSION = "1"
# A mimebundle's richest representation first (marimo's own bundle wraps another).
PREFERRED = ("application/vnd.marimo+mimebundle", "image/png", "image/svg+xml", "image/jpeg", "image/gif", "text/html", "text/markdown", "text/plain")
# marimo controls shown as "label: value" (their state when the export ran).
CONTROLS = {"text", "text-area", "number", "slider", "range-slider", "checkbox", "switch", "radio", "dropdown",
            "multiselect", "date", "datetime"}
BUTTONS = {"button", "refresh"}
# TeX commands drawn as Unicode in a static page (no KaTeX offline); others stay as TeX source.
TEX = {r"\alpha": "α", r"\beta": "β", r"\gamma": "γ", r"\delta": "δ", r"\epsilon": "ε", r"\lambda": "λ",
       r"\mu": "μ", r"\sigma": "σ", r"\theta": "θ", r"\tau": "τ", r"\phi": "φ", r"\Delta": "Δ", r"\Sigma": "Σ",
       r"\odot": "⊙", r"\cdot": "·", r"\times": "×", r"\le": "≤", r"\ge": "≥", r"\ne": "≠", r"\approx": "≈",
       r"\in": "∈", r"\to": "→", r"\infty": "∞", r"\sum": "∑", r"\partial": "∂", r"\nabla": "∇"}
_START = re.compile(r"<(marimo-[\w-]+)((?:\s+[\w-]+(?:=(?:'[^']*'|\"[^\"]*\"|[^\s>]+))?)*)\s*>")
_ATTR = re.compile(r"([\w-]+)=(?:'([^']*)'|\"([^\"]*)\"|([^\s>]+))")
# An absolute POSIX path not inside a word, URL, data: URL (base64 has + / =) or closing tag.
_ABS_PATH = re.compile(r"(?<![\w.~:/+=<-])/[\w.+@-]+(?:/[\w.+@-]+)+")


class NotebookExportError(RuntimeError):
    """The notebook failed to run, or marimo's export is not in the format read here."""


def display_path(path: str | Path, base: str | Path | None = None) -> str:
    """``path`` as the export shows it: relative to ``base`` (the working directory) inside it, ``~/...``
    under the home folder, else relative to ``base`` all the same (climbing with ``../``)."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    b = Path(os.path.abspath(base or Path.cwd()))
    home = Path.home()
    if p == b or b in p.parents:
        return os.path.relpath(p, b)
    if home in p.parents and home != Path("/"):
        return "~/" + p.relative_to(home).as_posix()
    return os.path.relpath(p, b)


def relative_paths(text: str, base: str | Path | None = None) -> str:
    """``text`` with every absolute path on this machine (its first folder exists) as :func:`display_path`
    writes it; other slashes (tags, URLs, base64) are left alone."""
    def rewrite(m: re.Match[str]) -> str:
        top = "/" + m.group(0).split("/")[1]
        return display_path(m.group(0), base) if os.path.isdir(top) else m.group(0)

    return _ABS_PATH.sub(rewrite, text)


@dataclass
class Export:
    """A written export: its file, and what it could not show without marimo's frontend (placeholders)."""

    path: Path
    unrendered: list[str] = field(default_factory=list)


# -- marimo's export page ------------------------------------------------------------------------
def read_marimo_export(page: str) -> dict:
    """The mount config of a ``marimo export html`` page: ``notebook`` (cells' code and config), ``session``
    (their outputs), ``appConfig``, ``version``."""
    name = page.find('"__MARIMO_MOUNT_CONFIG__"')
    start = page.find("Object.freeze(", name) if name >= 0 else -1
    if start < 0:
        raise NotebookExportError("the page has no __MARIMO_MOUNT_CONFIG__ = Object.freeze({...}): a marimo "
                                  "version whose export format this module does not read")
    config = json.JSONDecoder().raw_decode(page, start + len("Object.freeze("))[0]
    session = config.get("session") or {}
    if session.get("version") != SESSION_VERSION:
        raise NotebookExportError(f"marimo {config.get('version')}'s session snapshot has version "
                                  f"{session.get('version')!r}; this module reads version {SESSION_VERSION}")
    return config


# -- outputs as plain HTML -----------------------------------------------------------------------
class _Renderer:
    """marimo outputs as HTML without its frontend; ``unrendered`` names what had to become a placeholder."""

    def __init__(self) -> None:
        self.unrendered: list[str] = []

    def mime(self, mimetype: str, data, meta: dict | None = None) -> str:
        if mimetype in ("text/html", "text/markdown"):  # marimo's markdown outputs are HTML already
            return self.components(data)
        if mimetype == "text/plain":
            return f"<pre>{html.escape(data)}</pre>" if data else ""
        if mimetype.startswith("image/"):
            if not data.startswith("data:"):
                raw = data.encode() if mimetype == "image/svg+xml" else base64.b64decode(data)
                data = f"data:{mimetype};base64,{base64.b64encode(raw).decode()}"
            # marimo draws figures at twice their size (sharp on HiDPI screens); the metadata has the size
            size = "".join(f' {k}="{int(meta[k])}"' for k in ("width", "height") if k in (meta or {}))
            return f'<img src="{html.escape(data)}"{size} alt="figure">'
        if mimetype == "application/vnd.marimo+mimebundle":
            return self.bundle(json.loads(data) if isinstance(data, str) else data)
        if mimetype == "application/vnd.marimo+error":
            return "".join(self.error(e.get("type", "error"), e.get("msg", "")) for e in data)
        return self.placeholder(mimetype, "")

    def bundle(self, bundle: dict) -> str:
        for mimetype in PREFERRED:
            if mimetype in bundle:
                return self.mime(mimetype, bundle[mimetype], bundle.get("__metadata__", {}).get(mimetype))
        shown = [m for m in bundle if not m.startswith("__")]
        return self.placeholder(shown[0], "") if shown else ""

    def error(self, name: str, message: str) -> str:
        return f'<pre class="error">{html.escape(name)}: {html.escape(message)}</pre>'

    def placeholder(self, what: str, inner: str) -> str:
        self.unrendered.append(what)
        return (f'<span class="unrendered" title="needs marimo\'s frontend: open the notebook in marimo">'
                f"{inner or html.escape(what)}</span>")

    def components(self, text: str) -> str:
        """marimo's custom elements in ``text`` replaced by plain HTML (innermost first)."""
        text = re.sub(r"</?marimo-ui-element\b[^>]*>", "", text)
        out, pos = [], 0
        for m in _START.finditer(text):
            if m.start() < pos:
                continue
            end = text.find(f"</{m.group(1)}>", m.end())
            if end < 0:
                continue
            out += [text[pos:m.start()], self.element(m.group(1)[len("marimo-"):], _attrs(m.group(2)),
                                                      self.components(text[m.end():end]))]
            pos = end + len(f"</{m.group(1)}>")
        return "".join(out) + text[pos:]

    def element(self, name: str, attrs: dict, inner: str) -> str:
        label = attrs.get("label") or ""
        if name in CONTROLS:
            value = attrs.get("initial-value")
            shown = ", ".join(map(str, value)) if isinstance(value, list) else _scalar(value)
            if "start" in attrs and "stop" in attrs:
                shown += f" (of {_scalar(attrs['start'])}–{_scalar(attrs['stop'])})"
            return f'<span class="control">{label} <b>{html.escape(shown)}</b></span>'
        if name in BUTTONS:
            return f'<span class="control button">{label or name}</span>'
        if name == "table":
            return self.table(attrs)
        if name == "tex":
            return _tex(inner)
        if name == "mime-renderer":
            return self.mime(attrs.get("mime", ""), attrs.get("data", ""))
        return self.placeholder(f"marimo-{name}", inner)

    def table(self, attrs: dict) -> str:
        data = attrs.get("data")
        rows = json.loads(data) if isinstance(data, str) and data.lstrip().startswith("[") else None
        if rows is None:
            return self.placeholder("marimo-table (data not in the page)", "")
        columns = list(dict.fromkeys(k for r in rows for k in r))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(_td(r.get(c, "")) for c in columns) + "</tr>" for r in rows)
        total = attrs.get("total-rows")
        note = (f'<p class="note">first {len(rows)} of {total} rows (the others are paged in by marimo)</p>'
                if isinstance(total, int) and total > len(rows) else "")
        return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}'


def _attrs(text: str) -> dict:
    """An element's attributes, ``data-`` dropped, values JSON-decoded (marimo writes them as JSON)."""
    out = {}
    for name, *values in _ATTR.findall(text):
        raw = html.unescape(next((v for v in values if v), ""))
        try:
            out[name.removeprefix("data-")] = json.loads(raw)
        except ValueError:
            out[name.removeprefix("data-")] = raw
    return out


def _tex(source: str) -> str:
    """A formula of ``mo.md`` (marimo wraps it in ``||( ||)`` inline, ``||[ ||]`` displayed) as text."""
    display = source.startswith("||[")
    body = re.sub(r"^\|\|[(\[]|\|\|[)\]]$", "", source.strip())
    body = re.sub(r"\\[A-Za-z]+", lambda m: TEX.get(m.group(0), m.group(0)), body)
    return f'<{"div" if display else "span"} class="tex">{body}</{"div" if display else "span"}>'


def _td(v) -> str:
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    return f'<td{" class=num" if num else ""}>{html.escape(_scalar(v))}</td>'


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return "" if v is None else str(v)


_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #1f2328; background: #fff; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
img { max-width: 100%; height: auto; }
.banner { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .6rem .9rem; }
.cell { margin: 1.2rem 0; }
.cell > div[style*="flex"] { flex-wrap: wrap !important; }
details > summary { color: #57606a; cursor: pointer; font-size: 13px; }
pre { background: #f6f8fa; padding: .5rem .8rem; overflow-x: auto; font-size: 13px; }
pre.error { background: #ffebe9; border: 1px solid #ff8182; }
pre.console { border-left: 3px solid #d0d7de; }
.control { display: inline-block; border: 1px solid #d0d7de; border-radius: 4px; padding: .15rem .5rem;
           margin: .1rem .3rem .1rem 0; }
.control .paragraph, .control .markdown { display: inline; }
.button { background: #f6f8fa; color: #57606a; }
.tex { font-family: "Latin Modern Math", "STIX Two Math", serif; font-style: italic; }
div.tex { text-align: center; margin: .5rem 0; }
.unrendered { display: inline-block; border: 1px dashed #bf8700; padding: .1rem .4rem; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: .2rem .5rem; text-align: left; }
td.num { text-align: right; }
th { background: #f6f8fa; }
.note { color: #57606a; font-size: 13px; }
"""


def render_page(config: dict, *, notebook: str, run: str | None, code: bool = True) -> tuple[str, list[str]]:
    """The static page of an exported notebook's mount config (:func:`read_marimo_export`) and the names of
    the outputs it shows as placeholders."""
    r = _Renderer()
    outputs = {c["id"]: c for c in config["session"]["cells"]}
    title = config.get("appConfig", {}).get("app_title") or Path(notebook).stem.replace("_", " ").capitalize()
    on = f" on the run <code>{html.escape(run)}</code>" if run else ""
    parts = [f'<p class="banner">A static export of the marimo notebook <code>{html.escape(Path(notebook).name)}'
             f"</code>{on}, made with marimo {html.escape(str(config.get('version')))}: every output as it was "
             "when the export ran; controls show their values then, nothing re-runs. To change them, open the "
             f"notebook with <code>marimo edit</code>. Paths are relative to the folder the export was made "
             "from.</p>"]
    for cell in config["notebook"]["cells"]:
        body = []
        if code and not cell.get("config", {}).get("hide_code"):
            body.append(f"<details><summary>code</summary><pre><code>{html.escape(cell['code'])}</code></pre>"
                        "</details>")
        snap = outputs.get(cell["id"], {})
        for out in snap.get("outputs", []):
            if out.get("type") == "error":
                body.append(r.error(out.get("ename", "error"), out.get("evalue", "")))
            elif out.get("type") == "data":
                body.append(r.bundle(out.get("data", {})))
        for con in snap.get("console", []):
            if con.get("type") == "stream" and con.get("text"):
                body.append(f'<pre class="console">{html.escape(con["text"])}</pre>')
            elif con.get("type") == "streamMedia":
                body.append(r.mime(con.get("mimetype", ""), con.get("data", "")))
        if any(body):
            parts.append(f'<section class="cell">{"".join(body)}</section>')
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
            f"<body><main>{''.join(parts)}</main></body></html>\n")
    return page, r.unrendered


# -- the command ---------------------------------------------------------------------------------
def export_notebook(notebook: str | Path, out: str | Path, run: str | Path | None = None, *, code: bool = True,
                    timeout: float = 600) -> Export:
    """Run ``notebook`` on ``run`` (default: the notebook's own, ``$SEMPRIOR_RUN`` or the demo run) with
    ``marimo export html`` and write ``out/<name>.html`` (static, offline). The run is passed relative to the
    working directory, where the notebook runs (a run's config may name dataset folders relative to it)."""
    notebook, out = Path(notebook), Path(out)
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook}: no such notebook")
    env = dict(os.environ)
    shown_run = None
    if run is not None:
        if not (Path(run) / "config.yaml").is_file():
            raise FileNotFoundError(f"{run}: not a run directory (no config.yaml)")
        shown_run = env["SEMPRIOR_RUN"] = display_path(run)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "marimo.html"
        proc = subprocess.run([sys.executable, "-m", "marimo", "export", "html", str(notebook.resolve()), "-o",
                               str(page), "-f"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout)
        log = proc.stdout.decode(errors="replace")
        if proc.returncode != 0 or not page.is_file():
            raise NotebookExportError(f"{notebook}: a cell failed (marimo export html exited with "
                                      f"{proc.returncode}):\n{relative_paths(log[-4000:])}")
        config = read_marimo_export(page.read_text(encoding="utf-8"))
    text, unrendered = render_page(config, notebook=str(notebook), run=shown_run, code=code)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{notebook.stem}.html"
    path.write_text(relative_paths(text), encoding="utf-8")
    return Export(path, unrendered)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workbench.notebook_export", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="+", help="marimo notebooks (.py), e.g. notebooks/label_evolution.py")
    ap.add_argument("--run", help="run directory the notebooks open (default: theirs: $SEMPRIOR_RUN or runs/demo)")
    ap.add_argument("--out", default="exports", help="folder to write <notebook>.html into (default: exports)")
    ap.add_argument("--no-code", dest="code", action="store_false", help="leave the cells' code out")
    args = ap.parse_args(argv)
    status = 0
    for nb in args.notebooks:
        try:
            done = export_notebook(nb, args.out, args.run, code=args.code)
        except (NotebookExportError, FileNotFoundError, subprocess.TimeoutExpired) as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(display_path(done.path))
        if done.unrendered:
            print(f"  warning: shown as placeholders (need marimo's frontend): {', '.join(done.unrendered)}",
                  file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
