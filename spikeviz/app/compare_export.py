"""Exports of the comparison dashboard: matches and performance as CSV, the agreement matrix
as PNG.

Files are written atomically under one output folder chosen by the server (never a path from
the page), with a unique name per export; the panel offers each for download.

- :func:`matches_frame` / :func:`write_matches_csv`: one row per unit of sorting1 (its
  Hungarian match or empty, their agreement and coincident spikes, its best match and score,
  both spike counts), then one row per unit of sorting2 left unmatched.
- :func:`write_performance_csv`: the performance table as the dashboard shows it (ground
  truth only).
- :func:`write_agreement_png`: the agreement heatmap rendered by headless Chromium
  (Playwright, ``/usr/bin/chromium``) from a standalone HTML file, with
  :mod:`spikeviz.app.export_views`' :func:`save_view_html` and :func:`render_png`.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param

from ..atomic import atomic_file
from ..errors import InputError
from ..model.comparison import Comparison
from .export_jobs import unique_path
from .export_views import png_available, render_png, save_view_html

log = logging.getLogger(__name__)


def _plain(value):
    if value is None or value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def matches_frame(comparison: Comparison) -> pd.DataFrame:
    """Every unit of both sortings once: columns unit1, unit2 (missing when unmatched),
    agreement, coincident (spikes within delta), num_spikes1, num_spikes2, best_match_of_unit1,
    best_agreement_of_unit1."""
    c = comparison
    scores, counts = c.agreement_values, c.match_count_values
    m12, m21 = c.hungarian_positions
    n1 = c.sorting1.spike_counts().to_numpy()
    n2 = c.sorting2.spike_counts().to_numpy()
    ids1 = [_plain(u) for u in c.unit_ids1]
    ids2 = [_plain(u) for u in c.unit_ids2]
    rows = []
    for i, u in enumerate(ids1):
        j = int(m12[i])
        best = int(np.argmax(scores[i])) if scores.shape[1] else -1
        rows.append({"unit1": u, "unit2": ids2[j] if j >= 0 else None,
                     "agreement": float(scores[i, j]) if j >= 0 else None,
                     "coincident": int(counts[i, j]) if j >= 0 else None,
                     "num_spikes1": int(n1[i]), "num_spikes2": int(n2[j]) if j >= 0 else None,
                     "best_match_of_unit1": ids2[best] if best >= 0 and scores[i, best] > 0
                     else None,
                     "best_agreement_of_unit1": float(scores[i, best]) if best >= 0 else None})
    for j, v in enumerate(ids2):
        if m21[j] < 0:
            rows.append({"unit1": None, "unit2": v, "agreement": None, "coincident": None,
                         "num_spikes1": None, "num_spikes2": int(n2[j]),
                         "best_match_of_unit1": None, "best_agreement_of_unit1": None})
    frame = pd.DataFrame(rows, columns=["unit1", "unit2", "agreement", "coincident",
                                        "num_spikes1", "num_spikes2", "best_match_of_unit1",
                                        "best_agreement_of_unit1"])
    for name in ("coincident", "num_spikes1", "num_spikes2"):
        frame[name] = frame[name].astype("Int64")
    return frame.rename(columns={"unit1": c.names[0], "unit2": c.names[1]})


def _write_csv(frame: pd.DataFrame, path: Path, index: bool = False) -> Path:
    with atomic_file(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=index)
    return path


def write_matches_csv(comparison: Comparison, path) -> Path:
    return _write_csv(matches_frame(comparison), Path(path))


def write_performance_csv(table: pd.DataFrame | None, path) -> Path:
    """The per-ground-truth-unit performance table (``PerformanceView.table``)."""
    if table is None or "accuracy" not in table.columns:
        raise InputError("performance is computed in ground-truth mode only (--ground-truth)",
                         field="ground_truth")
    return _write_csv(table, Path(path))


def write_agreement_png(plot, path, width: int = 1000, height: int = 900) -> Path:
    """``plot`` (a HoloViews object: ``AgreementMatrix.static_plot()``) as a PNG."""
    if not png_available():
        raise InputError("PNG export needs Chromium (/usr/bin/chromium) and Playwright on "
                         "the server; use the save tool of the plot's toolbar", field="format")
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="spikeviz-compare-") as scratch:
        html_path = Path(scratch) / "agreement.html"
        save_view_html(plot, html_path, title="agreement matrix")
        with atomic_file(path, suffix=".png") as tmp:
            render_png(html_path, tmp, width=width, height=height)
    return path


def _stem(comparison: Comparison) -> str:
    text = f"{comparison.names[0]}_vs_{comparison.names[1]}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:100] or "comparison"


class CompareExport(pn.viewable.Viewer):
    """Buttons writing the CSVs and the PNG under ``output_dir``, with a download button.

    ``CompareExport(comparison, output_dir, performance=None, matrix=None)``: ``performance``
    is the PerformanceView (its table is exported), ``matrix`` the AgreementMatrix (its
    ``static_plot`` is rendered). The PNG renders in a thread; :meth:`run` writes one export
    synchronously (tests, scripts).
    """

    status = param.Selector(default="idle", objects=["idle", "running", "done", "error"])
    message = param.String(default="")
    path = param.Parameter(default=None, doc="The last file written.")

    def __init__(self, comparison: Comparison, output_dir, performance=None, matrix=None,
                 **params):
        super().__init__(**params)
        self.comparison, self.performance, self.matrix = comparison, performance, matrix
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir = self.output_dir.resolve()
        self._thread = None
        self._doc = None
        w = pn.widgets
        self.buttons = {
            "matches": w.Button(label="Matches CSV", color="primary"),
            "performance": w.Button(label="Performance CSV", color="primary",
                                    disabled=not comparison.ground_truth),
            "png": w.Button(label="Agreement matrix PNG", color="primary",
                            disabled=not png_available() or matrix is None),
        }
        for kind, button in self.buttons.items():
            button.on_click(partial(lambda kind, event: self.start(kind), kind))
        self.download = w.FileDownload(visible=False, color="success", embed=False)
        self.status_text = pn.pane.Markdown("", sizing_mode="stretch_width",
                                            css_classes=["spikeviz-compare-export-status"])
        note = "" if png_available() else " PNG needs Chromium and Playwright on the server."
        self._layout = pn.Column(
            pn.pane.Markdown(f"Files are written to `{self.output_dir}`.{note}"),
            pn.Row(*self.buttons.values()), self.status_text, self.download,
            sizing_mode="stretch_width", css_classes=["spikeviz-compare-export"])
        self.param.watch(self._render, ["status", "message", "path"])

    def __panel__(self):
        return self._layout

    def run(self, kind: str) -> Path:
        """Write one export now: 'matches', 'performance' or 'png'; the path."""
        stem = _stem(self.comparison)
        if kind == "matches":
            return write_matches_csv(self.comparison,
                                     unique_path(self.output_dir, f"{stem}_matches.csv"))
        if kind == "performance":
            table = None if self.performance is None else self.performance.table
            if table is None and self.comparison.ground_truth:
                from ..views.comparison_performance import performance_table
                table = performance_table(self.comparison)
            return write_performance_csv(
                table, unique_path(self.output_dir, f"{stem}_performance.csv"))
        if kind == "png":
            if self.matrix is None:
                raise InputError("no agreement matrix to render", field="matrix")
            return write_agreement_png(self.matrix.static_plot(),
                                       unique_path(self.output_dir, f"{stem}_agreement.png"))
        raise InputError(f"unknown export {kind!r}", field="kind")

    def start(self, kind: str):
        """Run an export in a thread (None when one is running)."""
        if self._thread is not None and self._thread.is_alive():
            return None
        self._doc = pn.state.curdoc
        self.param.update(status="running", message=f"Writing {kind}…", path=None)
        self._thread = threading.Thread(target=self._work, args=(kind,), daemon=True,
                                        name=f"spikeviz-compare-export-{kind}")
        self._thread.start()
        return self._thread

    def wait(self, timeout=None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self, kind: str) -> None:
        try:
            path = self.run(kind)
        except InputError as err:
            self._schedule(partial(self.param.update, status="error",
                                   message=f"Export failed: {err}"))
        except Exception as err:
            log.error("comparison export %s failed", kind, exc_info=err)
            self._schedule(partial(self.param.update, status="error", message=(
                f"Export failed ({type(err).__name__}: {err}); details in the server log")))
        else:
            self._schedule(partial(self.param.update, status="done", path=path,
                                   message=f"Wrote {path.name}"))

    def _schedule(self, fn) -> None:
        doc = self._doc
        if doc is not None and getattr(doc, "session_context", None) is not None:
            doc.add_next_tick_callback(fn)
        else:
            fn()

    def _render(self, *events) -> None:
        running = self.status == "running"
        for kind, button in self.buttons.items():
            button.disabled = running or (kind == "performance" and
                                          not self.comparison.ground_truth) or \
                (kind == "png" and (not png_available() or self.matrix is None))
        prefix = {"error": "**Error:** ", "done": "**Done:** "}.get(self.status, "")
        self.status_text.object = f"{prefix}{self.message}" if self.message else ""
        if self.path is not None and Path(self.path).is_file():
            self.download.file = str(self.path)
            self.download.filename = Path(self.path).name
            self.download.label = f"Download {Path(self.path).name}"
            self.download.visible = True
        else:
            self.download.visible = False
