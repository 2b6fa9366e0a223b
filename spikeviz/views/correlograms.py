"""Correlograms: auto- (diagonal) and cross-correlograms of the selected units, as a grid.

The numbers are exactly :func:`spikeviz.compute.correlograms` on the current curated sorting
(``curation.sorting``) for the selected units, in selection order: cell (row i, column j) shows
``counts[i, j]``, the pairs (spike of unit i at t_i, spike of unit j at t_j) whose lag
``t_i - t_j`` (ms) lies in each half-open bin. A peak right of zero in cell (i, j) means unit i
tends to fire after unit j. In "rate" mode a cell shows ``counts[i, j] / (n_j * bin_s)``: the
firing rate (Hz) of unit i around a spike of unit j.

Auto-correlograms are drawn in the unit's colour (``views.colors``: by position in the
selection), cross-correlograms in grey; a pink band marks the refractory period
(``|lag| < refractory_ms``). At most ``max_units`` units are shown (the first selected
ones), with a note when more are selected.

The whole k x k grid is ONE Bokeh figure, built once: cell (i, j) is the box
``[j * pitch_x, j * pitch_x + window_ms] x [(k - 1 - i) * pitch_y, ... + 1]`` (``pitch_x`` =
window + a gap), bars are scaled to the cell's own peak (printed in the cell's corner, in
counts or Hz), the lag ticks of every column are labelled in ms. A new selection only replaces
the data of its ColumnDataSources (bars, refractory bands, cell frames, labels) and the
ranges, so a click costs no new figure.
"""

from __future__ import annotations

import html

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, LabelSet, Range1d
from bokeh.plotting import figure

from .. import compute
from .base import View
from .colors import BACKGROUND_COLOR, unit_colors
from .common import REFRACTORY_COLOR, compact_controls, present_units

GAP = 0.15  # horizontal gap between cells, fraction of the window
TITLE = 0.3  # vertical room above a cell for its title, fraction of the cell height


def nice_step(span: float) -> float:
    """The largest 1/2/5 x 10^n not above ``span`` (> 0)."""
    exponent = np.floor(np.log10(span))
    for mantissa in (5.0, 2.0, 1.0):
        if mantissa * 10 ** exponent <= span:
            return float(mantissa * 10 ** exponent)
    return float(10 ** (exponent - 1) * 5)


class Correlograms(View):
    """Auto/cross-correlogram grid of the selected units (reads only; writes nothing).

    Follows ``selection.unit_ids`` and ``curation.sorting``. What is drawn is exposed for
    tests: :attr:`unit_ids`, :attr:`counts` (int64 ``(k, k, bins)``), :attr:`bin_edges_ms`,
    :attr:`values` (counts or Hz, as drawn), :attr:`note`, :attr:`figure` (the one Bokeh
    figure) and :attr:`sources` (its ColumnDataSources: ``bars`` — one row per bar with
    ``row``/``col`` (cell), ``lag_left_ms``/``lag_right_ms``, ``value``, ``color`` and the
    glyph's ``left``/``right``/``bottom``/``top``; ``shade`` — refractory bands; ``frames``
    and ``labels`` — one row per cell).
    """

    window_ms = param.Number(default=50.0, bounds=(1.0, 1000.0), doc="""
        Full width of the lag window, ms (lags cover [-window_ms/2, +window_ms/2)).""")
    bin_ms = param.Number(default=1.0, bounds=(0.05, 100.0), doc="Bin width, ms.")
    refractory_ms = param.Number(default=1.0, bounds=(0.0, 50.0), doc="""
        Shaded refractory period: lags with |lag| < refractory_ms.""")
    normalization = param.Selector(default="counts", objects=["counts", "rate"], doc="""
        'counts': pairs per bin; 'rate': Hz, counts[i, j] / (spikes of unit j x bin s).""")
    max_units = param.Integer(default=8, bounds=(1, 16), doc="""
        At most this many selected units are shown (the first ones, selection order).""")
    cell_px = param.Integer(default=130, bounds=(60, 400), doc="""
        Smallest size of one cell, px (the grid otherwise fills the available space).""")

    def __init__(self, session, selection=None, curation=None, **params):
        super().__init__(session, selection, curation, **params)
        self.unit_ids: list = []
        self.counts = np.zeros((0, 0, 0), dtype=np.int64)
        self.bin_edges_ms = np.zeros(1)
        self.values = np.zeros((0, 0, 0))
        self.note = ""
        self._key = None
        self._controls = compact_controls(self, {
            "window_ms": "window (ms)", "bin_ms": "bin (ms)", "refractory_ms": "refractory (ms)",
            "max_units": "max units", "normalization": ""})
        self._info = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["spikeviz-correlograms-info"])
        self.figure, self.sources = self._build_figure()
        self._pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_both",
                                   css_classes=["spikeviz-correlograms"])
        # shown/hidden through a holder: toggling the Bokeh pane's own ``visible`` makes Panel
        # copy the rendered figure's properties (stylesheet objects) back onto the pane
        self._plot_box = pn.Column(self._pane, visible=False, sizing_mode="stretch_both")
        self._layout = pn.Column(self._controls, self._info, self._plot_box,
                                 sizing_mode="stretch_both")
        self._watch(self.selection, "unit_ids", self._changed)
        self._watch(self.curation, "sorting", self._changed)
        self._watch(self, ["window_ms", "bin_ms", "refractory_ms", "normalization",
                           "max_units", "cell_px"], self._changed)
        self._start()

    # -- data ------------------------------------------------------------------------------
    def shown_units(self) -> tuple[list, int]:
        """(units drawn, number selected) — the first ``max_units`` selected units."""
        units = present_units(self.sorting, self.selection.unit_ids)
        return units[:self.max_units], len(units)

    def compute(self, unit_ids) -> tuple[np.ndarray, np.ndarray]:
        """``spikeviz.compute.correlograms`` of ``unit_ids`` on the current curated sorting."""
        if not unit_ids:
            return np.zeros((0, 0, 0), dtype=np.int64), np.zeros(1)
        results = self.results
        if hasattr(results, "correlograms"):
            return results.correlograms(list(unit_ids), window_ms=self.window_ms,
                                        bin_ms=self.bin_ms)
        return compute.correlograms(self.sorting, window_ms=self.window_ms,
                                    bin_ms=self.bin_ms, unit_ids=list(unit_ids))

    def _normalise(self, counts, edges, unit_ids) -> np.ndarray:
        if self.normalization == "counts" or not unit_ids:
            return counts.astype(np.float64)
        spikes = self.sorting.spike_counts().loc[unit_ids].to_numpy().astype(np.float64)
        bin_s = np.diff(edges) * 1e-3
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = counts / (spikes[None, :, None] * bin_s[None, None, :])
        return np.where(spikes[None, :, None] > 0, rate, 0.0)

    # -- drawing ---------------------------------------------------------------------------
    def refresh(self) -> None:
        units, selected = self.shown_units()
        key = (self.sorting, tuple(units), self.window_ms, self.bin_ms)
        if key != self._key:
            self.counts, self.bin_edges_ms = self.compute(units)
            self._key = key
        self.unit_ids = units
        self.values = self._normalise(self.counts, self.bin_edges_ms, units)
        self.note = "" if selected <= len(units) else \
            f"showing the first {len(units)} of {selected} selected units"
        self._update_figure()
        self._info.object = self._info_html()

    def _changed(self, *events) -> None:
        self.refresh()

    def _info_html(self) -> str:
        if not self.unit_ids:
            return "<i>Select units to see their correlograms.</i>"
        unit = "Hz" if self.normalization == "rate" else "pairs per bin"
        text = (f"cell (i, j): lag t<sub>i</sub> − t<sub>j</sub> (ms), {unit}, each cell "
                f"scaled to its peak (top right); refractory |lag| &lt; "
                f"{self.refractory_ms:g} ms shaded")
        if self.note:
            text = f"<b>{html.escape(self.note)}</b> &middot; " + text
        return f"<span style='color:#555'>{text}</span>"

    def _build_figure(self):
        """The figure and its (empty) sources, once; :meth:`_update_figure` fills them."""
        sources = {
            "bars": ColumnDataSource({name: [] for name in (
                "left", "right", "bottom", "top", "color", "row", "col", "pair",
                "lag_left_ms", "lag_right_ms", "value")}),
            "shade": ColumnDataSource({"left": [], "right": [], "bottom": [], "top": []}),
            "frames": ColumnDataSource({"left": [], "right": [], "bottom": [], "top": []}),
            "labels": ColumnDataSource({"x": [], "y": [], "title": [], "peak_x": [],
                                        "peak_y": [], "peak": []}),
        }
        fig = figure(sizing_mode="stretch_both", min_width=200, min_height=200,
                     x_range=Range1d(0, 1), y_range=Range1d(0, 1), tools="pan,box_zoom,reset",
                     toolbar_location="above", background_fill_color="white",
                     outline_line_color=None)
        fig.toolbar.logo = None
        fig.grid.visible = False
        fig.quad(source=sources["frames"], left="left", right="right", bottom="bottom",
                 top="top", fill_color=None, line_color="#dddddd", line_width=1)
        fig.quad(source=sources["shade"], left="left", right="right", bottom="bottom",
                 top="top", fill_color=REFRACTORY_COLOR, fill_alpha=0.6, line_color=None)
        bars = fig.quad(source=sources["bars"], left="left", right="right", bottom="bottom",
                        top="top", fill_color="color", fill_alpha=0.9, line_color=None)
        fig.add_layout(LabelSet(source=sources["labels"], x="x", y="y", text="title",
                                text_font_size="9pt", text_font_style="bold",
                                text_align="center", text_baseline="bottom"))
        fig.add_layout(LabelSet(source=sources["labels"], x="peak_x", y="peak_y", text="peak",
                                text_font_size="8pt", text_color="#666666",
                                text_align="right", text_baseline="top"))
        fig.add_tools(HoverTool(renderers=[bars], tooltips=[
            ("cell", "@pair"), ("lag (ms)", "[@lag_left_ms, @lag_right_ms)"),
            ("value", "@value{0.[00]}")]))
        fig.xaxis.axis_label = "lag (ms)"
        fig.xaxis.major_label_text_font_size = "8pt"
        fig.yaxis.major_tick_line_color = None
        fig.yaxis.minor_tick_line_color = None
        fig.yaxis.major_label_text_font_size = "0pt"
        fig.xaxis.minor_tick_line_color = None
        return fig, sources

    def _update_figure(self) -> None:
        """Replace the sources' data and the ranges (the figure and its glyphs stay)."""
        k = len(self.unit_ids)
        edges = np.asarray(self.bin_edges_ms, dtype=np.float64)
        if k == 0 or edges.size < 2:
            for source in self.sources.values():
                source.data = {name: [] for name in source.data}
            self._plot_box.visible = False
            return
        window = float(edges[-1] - edges[0])
        pitch_x, pitch_y = window * (1 + GAP), 1.0 + TITLE
        rows, cols = np.divmod(np.arange(k * k), k)  # cell n = (row, col)
        x0 = cols * pitch_x - edges[0]  # x of lag 0 in each cell
        y0 = (k - 1 - rows) * pitch_y  # bottom of each cell
        values = self.values.reshape(k * k, -1)
        peaks = values.max(axis=1) if values.size else np.zeros(k * k)
        scale = np.where(peaks > 0, 1.0 / np.where(peaks > 0, peaks, 1.0), 0.0)
        bins = edges.size - 1
        colors = unit_colors(self.unit_ids, self.selection.unit_ids)
        cell_color = np.where(rows == cols, np.array(colors, dtype=object)[rows],
                              BACKGROUND_COLOR)
        names = [str(u) for u in self.unit_ids]
        pair = np.array([f"{names[i]} × {names[j]}" for i, j in zip(rows, cols, strict=True)],
                        dtype=object)
        self.sources["bars"].data = {
            "left": (x0[:, None] + edges[None, :-1]).ravel(),
            "right": (x0[:, None] + edges[None, 1:]).ravel(),
            "bottom": np.repeat(y0, bins).astype(np.float64),
            "top": (y0[:, None] + values * scale[:, None]).ravel(),
            "color": np.repeat(cell_color, bins),
            "row": np.repeat(rows, bins), "col": np.repeat(cols, bins),
            "pair": np.repeat(pair, bins),
            "lag_left_ms": np.tile(edges[:-1], k * k), "lag_right_ms": np.tile(edges[1:], k * k),
            "value": values.ravel(),
        }
        cell_left, cell_right = x0 + edges[0], x0 + edges[-1]
        self.sources["frames"].data = {"left": cell_left, "right": cell_right,
                                       "bottom": y0.astype(np.float64), "top": y0 + 1.0}
        r = min(self.refractory_ms, window / 2)
        shade = {"left": x0 - r, "right": x0 + r, "bottom": y0.astype(np.float64),
                 "top": y0 + 1.0}
        self.sources["shade"].data = shade if r > 0 else {name: [] for name in shade}
        unit = " Hz" if self.normalization == "rate" else ""
        self.sources["labels"].data = {
            "x": (cell_left + cell_right) / 2, "y": y0 + 1.02,
            "title": [names[i] if i == j else f"{names[i]} × {names[j]}"
                      for i, j in zip(rows, cols, strict=True)],
            "peak_x": cell_right - 0.01 * window, "peak_y": y0 + 0.98,
            "peak": [f"{p:.3g}{unit}" for p in peaks]}
        margin = GAP * window / 2  # cell 0 starts at x = 0
        self.figure.x_range.update(start=-margin, end=(k - 1) * pitch_x + window + margin)
        self.figure.y_range.update(start=-0.02, end=k * pitch_y)
        step = nice_step(0.8 * window / 2)
        local = np.concatenate([-np.arange(step, window / 2 + 1e-9, step)[::-1], [0.0],
                                np.arange(step, window / 2 + 1e-9, step)])
        local = local[(local >= edges[0]) & (local < edges[-1] + 1e-9)]
        ticks = (np.arange(k)[:, None] * pitch_x - edges[0] + local[None, :]).ravel()
        self.figure.xaxis.ticker = FixedTicker(ticks=ticks.tolist())
        self.figure.xaxis.major_label_overrides = {
            float(t): f"{v:g}" for t, v in zip(ticks, np.tile(local, k), strict=True)}
        self.figure.yaxis.axis_label = "rate (Hz)" if self.normalization == "rate" else "count"
        size = self.cell_px
        self.figure.update(min_width=max(200, k * size), min_height=max(200, k * size))
        self._plot_box.visible = True
