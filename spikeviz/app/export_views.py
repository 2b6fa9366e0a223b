"""Exports of the dashboard's views: a standalone interactive HTML file, a PNG and SVGs
rendered by headless Chromium (Playwright) from that HTML. Split from
:mod:`spikeviz.app.export_jobs` (which dispatches to the writers here)."""

from __future__ import annotations

import importlib.util
import re
import tempfile
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


def save_view_html(obj, path: Path, title: str) -> None:
    """A standalone HTML file of ``obj`` (a View, a Panel object or a HoloViews object) with
    BokehJS and Panel's scripts inlined: it opens offline and stays interactive (pan, zoom,
    hover); a few Panel stylesheets come from its CDN when online."""
    import panel as pn
    from bokeh.resources import INLINE

    viewable = pn.panel(obj)
    before = set(getattr(viewable, "_models", {}))
    try:
        viewable.save(str(path), resources=INLINE, title=title, embed=False)
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


def render_png(html_path: Path, png_path: Path, width: int = 1400, height: int = 900) -> None:
    """Screenshot of a standalone HTML file in headless Chromium (Playwright), once BokehJS
    has rendered every root."""
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
            page.screenshot(path=str(png_path), full_page=True)
        finally:
            browser.close()


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


