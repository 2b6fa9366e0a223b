"""Correlograms: auto- (diagonal) and cross-correlograms of the selected units, as a grid.

The numbers are exactly :func:`spikeviz.compute.correlograms` on the current curated sorting
(``curation.sorting``) for the selected units, in selection order: cell (row i, column j) shows
``counts[i, j]``, the pairs (spike of unit i at t_i, spike of unit j at t_j) whose lag
``t_i - t_j`` (ms) lies in each half-open bin. A peak right of zero in cell (i, j) means unit i
tends to fire after unit j. In "rate" mode a cell shows ``counts[i, j] / (n_j * bin_s)``: the
firing rate (Hz) of unit i around a spike of unit j.

Auto-correlograms are drawn in the unit's colour (``views.colors``: by position in the
selection), cross-correlograms in grey; a pink band marks the refractory period
(``|lag| < refractory_ms``). Each cell is one ``hv.Histogram`` (one glyph renderer), so a
10 x 10 grid stays light. At most ``max_units`` units are shown (the first
selected ones), with a note when more are selected.
"""

from __future__ import annotations

import html

import holoviews as hv
import numpy as np
import panel as pn
import param

from .. import compute
from .base import View
from .colors import BACKGROUND_COLOR, unit_colors
from .common import REFRACTORY_COLOR, ensure_bokeh_backend, present_units


class Correlograms(View):
    """Auto/cross-correlogram grid of the selected units (reads only; writes nothing).

    Follows ``selection.unit_ids`` and ``curation.sorting``. What is drawn is exposed for
    tests: :attr:`unit_ids`, :attr:`counts` (int64 ``(k, k, bins)``), :attr:`bin_edges_ms`,
    :attr:`values` (counts or Hz, as drawn), :attr:`note`, :attr:`plot`.
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
    cell_px = param.Integer(default=130, bounds=(60, 400), doc="Size of one cell, px.")

    def __init__(self, session, selection=None, curation=None, **params):
        super().__init__(session, selection, curation, **params)
        ensure_bokeh_backend()
        self.unit_ids: list = []
        self.counts = np.zeros((0, 0, 0), dtype=np.int64)
        self.bin_edges_ms = np.zeros(1)
        self.values = np.zeros((0, 0, 0))
        self.note = ""
        self.plot = hv.Layout([])
        self._key = None
        self._controls = pn.Param(
            self.param, parameters=["window_ms", "bin_ms", "refractory_ms", "normalization",
                                    "max_units"],
            widgets={"normalization": pn.widgets.RadioButtonGroup},
            default_layout=pn.Row, show_name=False, sizing_mode="stretch_width")
        self._info = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["spikeviz-correlograms-info"])
        self._pane = pn.pane.HoloViews(None, sizing_mode="stretch_both",
                                       css_classes=["spikeviz-correlograms"])
        self._layout = pn.Column(self._controls, self._info, self._pane,
                                 sizing_mode="stretch_both")
        self._watch(self.selection, "unit_ids", self._changed)
        self._watch(self.curation, "sorting", self._changed)
        self._watch(self, ["window_ms", "bin_ms", "refractory_ms", "normalization",
                           "max_units", "cell_px"], self._changed)
        if self.active:
            self.refresh()
        else:
            self._stale = True

    def __panel__(self):
        return self._layout

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
        self.plot = self._draw()
        self._pane.object = self.plot if self.unit_ids else None  # an empty grid: nothing
        self._info.object = self._info_html()

    def _changed(self, *events) -> None:
        self.refresh()

    def _info_html(self) -> str:
        if not self.unit_ids:
            return "<i>Select units to see their correlograms.</i>"
        unit = "Hz" if self.normalization == "rate" else "pairs per bin"
        text = (f"cell (i, j): lag t<sub>i</sub> − t<sub>j</sub> (ms), {unit}; "
                f"refractory |lag| &lt; {self.refractory_ms:g} ms shaded")
        if self.note:
            text = f"<b>{html.escape(self.note)}</b> &middot; " + text
        return f"<span style='color:#555'>{text}</span>"

    def _draw(self):
        k = len(self.unit_ids)
        if k == 0:
            return hv.Layout([])
        edges = self.bin_edges_ms
        colors = unit_colors(self.unit_ids, self.selection.unit_ids)
        ylabel = "rate (Hz)" if self.normalization == "rate" else "count"
        size = self.cell_px
        cells = []
        for i, ui in enumerate(self.unit_ids):
            for j, uj in enumerate(self.unit_ids):
                auto = i == j
                title = f"{ui}" if auto else f"{ui} × {uj}"
                hist = hv.Histogram((edges, self.values[i, j]), kdims=["lag_ms"],
                                    vdims=[ylabel]).opts(
                    color=colors[i] if auto else BACKGROUND_COLOR, line_width=0, alpha=0.9)
                layers = [hist]
                if self.refractory_ms > 0:
                    r = self.refractory_ms
                    layers.insert(0, hv.VSpan(-r, r).opts(color=REFRACTORY_COLOR, alpha=0.6))
                cell = hv.Overlay(layers)
                cells.append(cell.opts(
                    hv.opts.Overlay(title=title, width=size, height=size, toolbar=None,
                                    xlabel="lag (ms)" if i == k - 1 else "",
                                    ylabel=ylabel if j == 0 else "", fontsize={"title": 9},
                                    shared_axes=False)))
        return hv.Layout(cells).cols(k).opts(shared_axes=False, toolbar=None)
