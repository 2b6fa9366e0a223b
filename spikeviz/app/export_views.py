"""Exports of the dashboard's views: a standalone interactive HTML file, a PNG and SVGs
rendered by headless Chromium (Playwright) from that HTML. Split from
:mod:`spikeviz.app.export_jobs` (which dispatches to the writers here)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

from ..atomic import atomic_file
from ..errors import InputError
from .export_jobs import ExportResult, source_stem, unique_path

CHROMIUM = Path("/usr/bin/chromium")


def png_available() -> bool:
    """PNGs (and SVGs) of views are rendered by a headless Chromium through Playwright."""
    return CHROMIUM.exists() and importlib.util.find_spec("playwright") is not None


def _view(views, options):
    name = options.get("view")
    if not views or name not in views:
        known = ", ".join(map(str, views or {})) or "none"
        raise InputError(f"no view named {name!r} (views: {known})", field="view")
    return str(name), views[name]


def save_view_html(obj, path: Path, title: str, svg: bool = False) -> None:
    """A standalone HTML file of ``obj`` (a View, a Panel object or a HoloViews object) with
    BokehJS and Panel's scripts inlined: it opens offline and stays interactive (pan, zoom,
    hover); a few Panel stylesheets come from its CDN when online. ``svg``: every Bokeh plot
    of the file draws with the SVG backend (``output_backend="svg"``), for :func:`render_svgs`.
    """
    import panel as pn
    from bokeh.document import Document
    from bokeh.models import Plot
    from bokeh.resources import INLINE
    from panel.io.model import add_to_doc
    from panel.io.resources import set_resource_mode
    from pyviz_comms import Comm

    viewable = pn.panel(obj)
    before = set(getattr(viewable, "_models", {}))
    try:
        if not svg:
            viewable.save(str(path), resources=INLINE, title=title, embed=False)
            return
        doc = Document()  # built here (as panel.io.save does) to switch the plots' backend
        with set_resource_mode("inline"):
            model = viewable.get_root(doc, Comm())
        add_to_doc(model, doc, True)
        for plot in doc.select({"type": Plot}):
            plot.output_backend = "svg"
        pn.io.save.save(doc, str(path), resources=INLINE, title=title)
    finally:  # drop the models built for the file (they would follow the live session)
        models = getattr(viewable, "_models", {})
        for ref in set(models) - before:
            try:
                viewable._cleanup(models[ref][0])
            except Exception:
                pass


def _view_name(session, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "view"
    return f"{source_stem(session)}_{safe}"


def view_html(session, curation, curated, folder, options, report, views) -> ExportResult:
    name, obj = _view(views, options)
    path = unique_path(folder, f"{_view_name(session, name)}.html")
    with atomic_file(path, suffix=".html") as tmp:
        save_view_html(obj, tmp, title=name)
    return ExportResult("view_html", path, path,
                        f"view {name!r} as interactive HTML (opens offline)")


@contextmanager
def _rendered(html_path: Path, width: int = 1400, height: int = 900):
    """A headless Chromium page (Playwright) showing a standalone HTML file once BokehJS has
    rendered every root."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                       args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(html_path.resolve().as_uri())
            page.wait_for_function(
                "() => window.Bokeh && Bokeh.documents.length > 0 && "
                "Bokeh.documents.every(d => d.is_idle)", timeout=60_000)
            page.wait_for_timeout(300)
            yield page
        finally:
            browser.close()


def render_png(html_path: Path, png_path: Path, width: int = 1400, height: int = 900) -> None:
    """Screenshot of a standalone HTML file in headless Chromium (Playwright)."""
    with _rendered(html_path, width, height) as page:
        page.screenshot(path=str(png_path), full_page=True)


# What bokeh.io.export.get_svgs runs in the browser (bokeh/io/util.py, _SVGS_SCRIPT), over
# every view of the page (Panel's layouts nest plots in views that are not Bokeh layouts).
_SVGS_SCRIPT = """() => {
  const {PlotView} = Bokeh.require("models/plots/plot")
  const svgs = []
  for (const view of Bokeh.index.query((v) => v instanceof PlotView)) {
    if (view.model.output_backend == "svg") {
      const {ctx} = view.export("svg")
      svgs.push(ctx.get_serialized_svg(true))
    }
  }
  return svgs
}"""


def render_svgs(html_path: Path) -> list[str]:
    """The SVG text of every Bokeh plot of a standalone HTML file written with
    ``save_view_html(..., svg=True)``, in page order (datashaded images are embedded as
    ``<image>`` elements)."""
    with _rendered(html_path) as page:
        return list(page.evaluate(_SVGS_SCRIPT))


def view_png(session, curation, curated, folder, options, report, views) -> ExportResult:
    if not png_available():
        raise InputError("PNG export needs Chromium and Playwright on the server; use the "
                         "plot's save tool (toolbar) or export the view as HTML",
                         field="format")
    name, obj = _view(views, options)
    path = unique_path(folder, f"{_view_name(session, name)}.png")
    with tempfile.TemporaryDirectory(prefix="spikeviz-view-") as scratch:
        html = Path(scratch) / "view.html"
        save_view_html(obj, html, title=name)
        report("render", 0.3)
        with atomic_file(path, suffix=".png") as tmp:
            render_png(html, tmp)
    return ExportResult("view_png", path, path, f"view {name!r} as PNG")




def view_svg(session, curation, curated, folder, options, report, views) -> ExportResult:
    if not png_available():
        raise InputError("SVG export needs Chromium and Playwright on the server; export the "
                         "view as HTML", field="format")
    name, obj = _view(views, options)
    stem = _view_name(session, name)
    with tempfile.TemporaryDirectory(prefix="spikeviz-view-") as scratch:
        html = Path(scratch) / "view.html"
        save_view_html(obj, html, title=name, svg=True)
        report("render", 0.3)
        svgs = render_svgs(html)
    if not svgs:
        raise InputError(f"view {name!r} has no Bokeh plot to draw as SVG (export it as "
                         f"HTML or PNG)", field="view")
    report("write", 0.8)
    if len(svgs) == 1:
        path = unique_path(folder, f"{stem}.svg")
        with atomic_file(path, suffix=".svg") as tmp:
            tmp.write_text(svgs[0], encoding="utf-8")
        return ExportResult("view_svg", path, path, f"view {name!r} as SVG")
    path = unique_path(folder, f"{stem}_svg", also=(".zip",))
    zip_path = path.with_name(path.name + ".zip")
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-svg-", dir=folder))
    try:
        width = len(str(len(svgs)))
        for i, text in enumerate(svgs, 1):
            (scratch / f"plot_{i:0{width}d}.svg").write_text(text, encoding="utf-8")
        with atomic_file(zip_path, suffix=".zip") as tmp, \
                zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(scratch.iterdir()):
                archive.write(file, Path(path.name) / file.name)
        scratch.rename(path)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return ExportResult("view_svg", path, zip_path,
                        f"view {name!r} as {len(svgs)} SVG files, one per plot "
                        f"(download: zip)")
