"""The comparison dashboard: agreement and confusion matrices, the unit pair, per-unit
performance, exports — for one :class:`~spikeviz.model.comparison.Comparison`.

``CompareDashboard(comparison)`` builds the views over one
:class:`~spikeviz.model.comparison_selection.ComparisonSelection` (a tap on a matrix cell or
a click on a table row selects a pair; the pair view follows). ``build_compare_app`` wraps it
in the served template; ``show`` is the notebook entry point (``Comparison.show()``);
``serve_comparison`` serves it like ``spikeviz serve`` does a session (``spikeviz compare A B
--serve``): one address (127.0.0.1 by default), websockets only from the pages it served, no
path from the URL (the comparison is built from the command line's paths before the server
starts). ``shared_comparison`` is the per-process comparison of ``apps/compare.py``.

Layout: header (both sortings, matches, mean agreement, categories and mean performance in
ground-truth mode); left the matrices (tabs: agreement, confusion), right the pair; below, tabs
of the unit table, plots and export.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import panel as pn
import param

from ..errors import InputError
from ..model.comparison import Comparison
from ..model.comparison_selection import ComparisonSelection
from .compare_export import CompareExport
from .formatting import SUMMARY_CSS
from .formatting import summary_html as formatted_summary

log = logging.getLogger(__name__)

ACCENT = "#1f5f8b"
TITLE = "spikeviz compare"
#: Height of the matrices + pair row, px (the unit table and plots follow below).
BODY_HEIGHT = 700

def summary_items(comparison: Comparison) -> list[tuple[str, str]]:
    """(key, value) pairs of the header, as plain text."""
    s = comparison.summary()
    gt = comparison.ground_truth
    kinds = ("ground truth", "tested") if gt else ("sorting 1", "sorting 2")
    items = [(kinds[k], f"{s['names'][k]} — {s[f'num_units{k + 1}']:,} units, "
                        f"{s[f'num_spikes{k + 1}']:,} spikes") for k in (0, 1)]
    mean = s["mean_agreement_matched"]
    items += [("matched", f"{s['num_matched']:,}"),
              ("mean agreement", "n/a" if mean is None else f"{mean:.3f}"),
              ("coincidence", f"±{s['delta_ms']:g} ms")]
    if gt:
        for key, value in (s["category_counts"] or {}).items():
            if key not in ("num_gt", "num_sorter"):
                items.append((key.removeprefix("num_").replace("_", " "), f"{value:,}"))
        for name in ("accuracy", "recall", "precision"):
            value = s[f"mean_{name}"]
            items.append((f"mean {name}", "n/a" if value is None else f"{value:.3f}"))
    return items


def summary_html(comparison: Comparison) -> str:
    return formatted_summary(summary_items(comparison))


def default_output_dir(comparison: Comparison) -> Path:
    """``exports/`` in the cache folder of the tested (else first) session; a new temporary
    folder for bare sortings."""
    from .export_jobs import cache_exports_dir

    for session in (comparison.session2, comparison.session1):
        out = cache_exports_dir(session) if session is not None else None
        if out is not None:
            return out
    return Path(tempfile.mkdtemp(prefix="spikeviz-compare-"))


class CompareDashboard(pn.viewable.Viewer):
    """Every comparison view over one pair selection, a header and the export panel."""

    comparison = param.ClassSelector(class_=Comparison, constant=True)
    selection = param.ClassSelector(class_=ComparisonSelection, constant=True)
    title = param.String(default=TITLE)

    def __init__(self, comparison: Comparison, selection: ComparisonSelection | None = None,
                 output_dir=None, preselect: bool = True, **params):
        from ..views.comparison_matrix import AgreementMatrix, ConfusionMatrix
        from ..views.comparison_pair import PairView
        from ..views.comparison_performance import PerformanceView

        if selection is None:
            selection = ComparisonSelection(comparison)
        super().__init__(comparison=comparison, selection=selection, **params)
        if preselect and selection.pair == (None, None):
            first = self._first_match()
            if first is not None:
                selection.select(*first)
        sel = dict(selection=selection)
        self.agreement = AgreementMatrix(comparison, **sel)
        self.confusion = ConfusionMatrix(comparison, active=False, **sel)
        self.pair = PairView(comparison, **sel)
        self.performance = PerformanceView(comparison, **sel)
        self.views = {"agreement": self.agreement, "confusion": self.confusion,
                      "pair": self.pair, "performance": self.performance}
        self.export = CompareExport(comparison, output_dir or default_output_dir(comparison),
                                    performance=self.performance, matrix=self.agreement)
        self.summary = pn.pane.HTML(summary_html(comparison), sizing_mode="stretch_width",
                                    stylesheets=[SUMMARY_CSS], margin=(0, 10),
                                    css_classes=["spikeviz-compare-summary"])
        self.matrix_tabs = pn.Tabs(("Agreement", self.agreement), ("Confusion", self.confusion),
                                   dynamic=True, sizing_mode="stretch_both")
        self.matrix_tabs.param.watch(self._on_tab, ["active"])
        unit_tab = "Performance" if comparison.ground_truth else "Matches"
        self.bottom_tabs = pn.Tabs((unit_tab, self.performance.table_panel),
                                   ("Plots", self.performance.plots_panel),
                                   ("Export", self.export), dynamic=False,
                                   sizing_mode="stretch_width", min_height=380)
        left = pn.Column(self.matrix_tabs, sizing_mode="stretch_both", min_width=420,
                         styles={"flex": "0 0 44%"}, css_classes=["spikeviz-compare-left"])
        right = pn.Column(self.pair, sizing_mode="stretch_both", min_width=480,
                          css_classes=["spikeviz-compare-pair"])
        body = pn.Row(left, right, sizing_mode="stretch_width", height=BODY_HEIGHT, margin=0,
                      styles={"overflow": "hidden"}, css_classes=["spikeviz-compare-body"])
        self._layout = pn.Column(self.summary, body, self.bottom_tabs,
                                 sizing_mode="stretch_width", margin=0,
                                 css_classes=["spikeviz-compare"])

    def _first_match(self):
        """The pair of the ordered matrix's top-left cell, when it is a Hungarian match."""
        ordered = self.comparison.ordered_agreement()
        if ordered.shape[0] == 0 or ordered.shape[1] == 0:
            return None
        u1, u2 = ordered.index[0], ordered.columns[0]
        match = self.comparison.matches.get(u1)
        return (u1, u2) if match is not None and not _is_na(match) and match == u2 else None

    def _on_tab(self, event) -> None:
        self.agreement.active = event.new == 0
        self.confusion.active = event.new == 1

    def __panel__(self):
        return self._layout

    def template(self) -> pn.template.FastListTemplate:
        return pn.template.FastListTemplate(
            title=self.title, main=[self._layout], accent=ACCENT, header_background=ACCENT,
            main_layout=None, collapsed_sidebar=True, theme_toggle=False, main_max_width="")

    def dispose(self) -> None:
        for view in self.views.values():
            view.dispose()


def _is_na(value) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _extension() -> None:
    from .dashboard import _show_error

    pn.extension("tabulator", notifications=True, exception_handler=_show_error)


def build_compare_app(comparison: Comparison, title: str = TITLE,
                      output_dir=None) -> pn.template.FastListTemplate:
    """A new comparison dashboard in the served template (its views are disposed of when the
    browser session ends)."""
    _extension()
    dashboard = CompareDashboard(comparison, title=title, output_dir=output_dir)
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        pn.state.on_session_destroyed(lambda context: dashboard.dispose())
    template = dashboard.template()
    template.dashboard = dashboard
    return template


def show(comparison: Comparison, **params) -> CompareDashboard:
    """The comparison dashboard for a notebook cell (``Comparison.show()``)."""
    _extension()
    return CompareDashboard(comparison, **params)


# -- loading and serving --------------------------------------------------------------------
def load_comparison(path_a, path_b, ground_truth: bool = False, exhaustive_gt: bool = False,
                    delta_ms: float = 0.4, sampling_frequency=None) -> Comparison:
    """The comparison of two sortings on disk (what ``spikeviz compare`` builds); each side
    is named by its file or folder name."""
    from .. import compare, load

    sessions = [load(p, sampling_frequency=sampling_frequency) for p in (path_a, path_b)]
    names = [Path(p).name or str(p) for p in (path_a, path_b)]
    if names[0] == names[1]:
        names = [str(path_a), str(path_b)]
    return compare(*sessions, delta_ms=delta_ms, ground_truth=ground_truth, names=names,
                   exhaustive_gt=exhaustive_gt)


_SHARED: dict[tuple, Comparison] = {}
_SHARED_LOCK = threading.Lock()


def shared_comparison(path_a, path_b, warm: bool = True, **options) -> Comparison:
    """The comparison of ``path_a`` and ``path_b`` for this server process: built (and
    warmed) once, then shared by every browser session (``apps/compare.py``). Only the paths
    of the server's command line reach this function."""
    key = (os.path.realpath(path_a), os.path.realpath(path_b),
           tuple(sorted(options.items())))
    with _SHARED_LOCK:
        comparison = _SHARED.get(key)
        if comparison is None:
            comparison = load_comparison(path_a, path_b, **options)
            if warm:
                seconds = warm_up(comparison)
                print(f"spikeviz: prepared {comparison!r} in {seconds:.1f} s", flush=True)
            _SHARED[key] = comparison
        return comparison


def warm_up(comparison: Comparison, views: bool = True) -> float:
    """Kernels, each session's templates and noise levels (pair view, SNR), one dashboard
    built and rendered offscreen; returns the seconds taken. A failure is logged only."""
    from ..compute import warm_up_kernels

    start = time.perf_counter()
    warm_up_kernels()
    for session in (comparison.session1, comparison.session2):
        if session is not None and session.recording is not None:
            try:
                session.compute("templates")
                session.compute("noise_levels")
            except Exception as err:
                log.warning("templates for the comparison failed: %s: %s",
                            type(err).__name__, err)
    if views:
        try:
            _extension()
            dashboard = CompareDashboard(comparison)
            dashboard.confusion.active = True
            pn.panel(dashboard).get_root()
            dashboard.dispose()
        except Exception as err:
            log.warning("warming the comparison dashboard failed: %s: %s",
                        type(err).__name__, err)
    return time.perf_counter() - start


def serve_comparison(comparison: Comparison, port: int = 5006, address: str = "127.0.0.1",
                     show: bool = False, title: str = TITLE, warm: bool = True,
                     allow_websocket_origin=(), output_dir=None) -> None:
    """Serve the comparison dashboard at http://address:port/ until SIGINT or SIGTERM.

    Binds ``address`` only; websockets only from :func:`spikeviz.app.serve.websocket_origins`
    (plus ``allow_websocket_origin``). Blocks; returns after a clean shutdown."""
    from .serve import websocket_origins

    if not isinstance(comparison, Comparison):
        raise InputError(f"expected a spikeviz Comparison, got {type(comparison).__name__}",
                         field="comparison")
    if warm:
        seconds = warm_up(comparison)
        print(f"spikeviz: prepared {comparison!r} in {seconds:.1f} s", flush=True)
    folder = output_dir or default_output_dir(comparison)

    def app():
        return build_compare_app(comparison, title=title, output_dir=folder)

    import errno

    try:
        server = pn.serve({"/": app}, port=port, address=address,
                          websocket_origin=websocket_origins(address, port,
                                                             allow_websocket_origin),
                          show=show, start=False, title=title, verbose=False,
                          threaded=False)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {address} is already in use; choose another "
                             f"with --port", field="port") from None
        raise
    loop = server.io_loop

    def _stop(signum, frame):
        loop.asyncio_loop.call_soon_threadsafe(loop.stop)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{port}/"
    try:
        server.start()
        loop.add_callback(lambda: print(f"spikeviz: serving at {url} (Ctrl+C to stop)",
                                        flush=True))
        loop.start()
    finally:
        print("spikeviz: shutting down", file=sys.stderr, flush=True)
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
