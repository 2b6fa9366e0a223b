"""ISI and firing rate: inter-spike-interval histograms and firing rate over time.

For the selected units (selection order, at most ``max_units``), overlaid in the unit colours:

- the ISI histogram: linear bins are exactly :func:`spikeviz.compute.isi_histograms` on the
  current curated sorting (``isi_bin_ms`` wide over ``[0, isi_window_ms]``); log bins are
  ``num_log_bins`` geometric bins from ``min(isi_bin_ms, 0.1 ms)`` to ``isi_window_ms``,
  counted with ``numpy.histogram`` on the same intervals (consecutive spikes of a unit,
  samples / fs, in ms). The share of intervals shorter than ``refractory_ms`` (ISI
  violations, % of all intervals of the unit) is printed per unit, and the refractory period
  is shaded.
- the firing rate over time: :func:`spikeviz.compute.firing_rates` (``rate_bin_s`` bins over
  the whole recording), drawn as steps; its x range follows ``selection.time_window_s`` and
  its y range the rates inside it.

Each plot is one Bokeh figure built once (the ISI figure again only when ``log_bins`` flips the
x scale): every unit's histogram is a row group of one ``quad`` glyph and every rate curve a
line of one ``multi_line`` glyph, coloured by a colour column, so a new selection only
replaces the sources' data and the ranges.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import BoxAnnotation, ColumnDataSource, Range1d
from bokeh.plotting import figure

from .. import compute
from .base import View
from .colors import unit_colors
from .common import REFRACTORY_COLOR, compact_controls, present_units


def intervals_ms(sorting, unit_id) -> np.ndarray:
    """Intervals between consecutive spikes of ``unit_id`` (float64 ms)."""
    train = sorting.spike_train(unit_id)
    return np.diff(train).astype(np.float64) * (1e3 / sorting.sampling_frequency)


def isi_violation_percent(sorting, unit_id, refractory_ms: float) -> float:
    """Percentage of ``unit_id``'s inter-spike intervals shorter than ``refractory_ms``
    (NaN when the unit has fewer than 2 spikes)."""
    train = sorting.spike_train(unit_id)
    if train.size < 2:
        return float("nan")
    limit = refractory_ms * 1e-3 * sorting.sampling_frequency  # samples
    return float(np.count_nonzero(np.diff(train) < limit) * 100.0 / (train.size - 1))


class ISIView(View):
    """ISI histograms and firing rate over time of the selected units (reads only).

    Exposed for tests: :attr:`unit_ids`, :attr:`isi_counts` (int64 ``(k, bins)``),
    :attr:`isi_edges_ms`, :attr:`rates_hz` (``(k, bins)``), :attr:`rate_edges_s`,
    :attr:`violations_percent` (Series by unit id), :attr:`x_range_s`, :attr:`rate_y_max_hz`,
    the figures :attr:`isi_figure` / :attr:`rate_figure`, their sources :attr:`isi_source`
    (one row per bar: ``unit``, ``color``, ``left``/``right`` ms, ``top`` count) and
    :attr:`rate_source` (one row per unit: ``unit``, ``color``, step ``xs`` s / ``ys`` Hz),
    and the refractory band :attr:`isi_shade`.
    """

    isi_window_ms = param.Number(default=50.0, bounds=(1.0, 5000.0),
                                 doc="ISI histogram range [0, isi_window_ms], ms.")
    isi_bin_ms = param.Number(default=1.0, bounds=(0.05, 100.0),
                              doc="ISI bin width (linear bins), ms.")
    log_bins = param.Boolean(default=False, doc="Geometric ISI bins (log x axis).")
    num_log_bins = param.Integer(default=60, bounds=(5, 500),
                                 doc="Number of geometric ISI bins.")
    refractory_ms = param.Number(default=1.0, bounds=(0.0, 50.0), doc="""
        Refractory period, ms: shorter intervals are ISI violations (shaded, counted).""")
    rate_bin_s = param.Number(default=1.0, bounds=(0.001, 3600.0),
                              doc="Firing-rate bin width, s.")
    max_units = param.Integer(default=10, bounds=(1, 32),
                              doc="At most this many selected units are drawn.")

    def __init__(self, session, selection=None, curation=None, **params):
        super().__init__(session, selection, curation, **params)
        self.unit_ids: list = []
        self.isi_counts = np.zeros((0, 0), dtype=np.int64)
        self.isi_edges_ms = np.zeros(1)
        self.rates_hz = np.zeros((0, 0))
        self.rate_edges_s = np.zeros(1)
        self.violations_percent = pd.Series(dtype=float, name="isi_violations_percent")
        self.note = ""
        self.rate_y_max_hz = 1.0
        self.isi_source = ColumnDataSource({n: [] for n in ("unit", "color", "left", "right",
                                                             "bottom", "top")})
        self.rate_source = ColumnDataSource({n: [] for n in ("unit", "color", "xs", "ys")})
        self.isi_shade = BoxAnnotation(left=0, right=0, fill_color=REFRACTORY_COLOR,
                                       fill_alpha=0.6, line_color=None, visible=False)
        self.isi_figure = self._build_isi_figure()
        self.rate_figure = self._build_rate_figure()
        self._keys: dict = {}
        self._controls = compact_controls(self, {
            "isi_window_ms": "ISI window (ms)", "isi_bin_ms": "ISI bin (ms)",
            "refractory_ms": "refractory (ms)", "rate_bin_s": "rate bin (s)",
            "log_bins": "log bins"})
        self._info = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["spikeviz-isi-info"])
        self._isi_pane = pn.pane.Bokeh(self.isi_figure, sizing_mode="stretch_both",
                                       min_height=160, css_classes=["spikeviz-isi"])
        self._rate_pane = pn.pane.Bokeh(self.rate_figure, sizing_mode="stretch_both",
                                        min_height=160, css_classes=["spikeviz-rate"])
        self._layout = pn.Column(self._controls, self._info, self._isi_pane, self._rate_pane,
                                 sizing_mode="stretch_both")
        self._watch(self.selection, ["unit_ids", "time_window_s"], self._changed)
        self._watch(self.curation, "sorting", self._changed)
        self._watch(self, ["isi_window_ms", "isi_bin_ms", "log_bins", "num_log_bins",
                           "refractory_ms", "rate_bin_s", "max_units"], self._changed)
        self._start()

    # -- data ------------------------------------------------------------------------------
    def isi_histograms(self, unit_ids) -> tuple[np.ndarray, np.ndarray]:
        """(counts int64 (k, bins), edges ms) of ``unit_ids`` with the current bin settings."""
        sorting = self.sorting
        if self.log_bins:
            low = min(self.isi_bin_ms, 0.1)
            edges = np.geomspace(low, self.isi_window_ms, self.num_log_bins + 1)
            counts = np.zeros((len(unit_ids), self.num_log_bins), dtype=np.int64)
            for row, unit_id in enumerate(unit_ids):
                counts[row] = np.histogram(intervals_ms(sorting, unit_id), bins=edges)[0]
            return counts, edges
        if not unit_ids:
            return np.zeros((0, 0), dtype=np.int64), np.zeros(1)
        results = self.results
        if hasattr(results, "isi_histograms"):
            return results.isi_histograms(list(unit_ids), window_ms=self.isi_window_ms,
                                          bin_ms=self.isi_bin_ms)
        return compute.isi_histograms(sorting, window_ms=self.isi_window_ms,
                                      bin_ms=self.isi_bin_ms, unit_ids=list(unit_ids))

    def firing_rates(self, unit_ids) -> tuple[np.ndarray, np.ndarray]:
        """(rates Hz (k, bins), edges s) of ``unit_ids`` over the whole recording."""
        if not unit_ids:
            return np.zeros((0, 0)), np.zeros(1)
        results = self.results
        if hasattr(results, "firing_rates"):
            return results.firing_rates(list(unit_ids), bin_s=self.rate_bin_s)
        return compute.firing_rates(self.sorting, bin_s=self.rate_bin_s,
                                    unit_ids=list(unit_ids))

    @property
    def x_range_s(self) -> tuple[float, float]:
        """Time range (s) of the rate plot: ``selection.time_window_s`` or the whole session."""
        duration = float(self.sorting.duration_s) or 1.0
        window = self.selection.time_window_s
        if window is None:
            return (0.0, duration)
        start, end = max(window[0], 0.0), min(window[1], duration)
        return (start, end) if start < end else (0.0, duration)

    # -- drawing ---------------------------------------------------------------------------
    def refresh(self) -> None:
        units = present_units(self.sorting, self.selection.unit_ids)
        selected = len(units)
        units = units[:self.max_units]
        sorting = self.sorting
        isi_key = (sorting, tuple(units), self.isi_window_ms, self.isi_bin_ms, self.log_bins,
                   self.num_log_bins)
        if self._keys.get("isi") != isi_key:
            self.isi_counts, self.isi_edges_ms = self.isi_histograms(units)
            self._keys["isi"] = isi_key
        rate_key = (sorting, tuple(units), self.rate_bin_s)
        if self._keys.get("rate") != rate_key:
            self.rates_hz, self.rate_edges_s = self.firing_rates(units)
            self._keys["rate"] = rate_key
        self.unit_ids = units
        self.violations_percent = pd.Series(
            [isi_violation_percent(sorting, u, self.refractory_ms) for u in units],
            index=pd.Index(units, name="unit_id"), name="isi_violations_percent", dtype=float)
        self.note = "" if selected <= len(units) else \
            f"showing the first {len(units)} of {selected} selected units"
        self._update_isi()
        self._update_rate()
        self._info.object = self._info_html()

    def _changed(self, *events) -> None:
        self.refresh()

    def _info_html(self) -> str:
        if not self.unit_ids:
            return "<i>Select units to see their ISI and firing rate.</i>"
        colors = unit_colors(self.unit_ids, self.selection.unit_ids)
        parts = []
        for color, (unit_id, pct) in zip(colors, self.violations_percent.items(), strict=True):
            value = "n/a" if not np.isfinite(pct) else f"{pct:.2f}%"
            parts.append(f"<span style='color:{color}'>&#9632;</span> "
                         f"<b>{html.escape(str(unit_id))}</b>: {value}")
        text = (f"ISI violations (&lt; {self.refractory_ms:g} ms): " + " &middot; ".join(parts))
        if self.note:
            text = f"<b>{html.escape(self.note)}</b> &middot; " + text
        return f"<span class='spikeviz-isi-violations'>{text}</span>"

    def _figure(self, **params):
        fig = figure(sizing_mode="stretch_both", min_height=150, tools="pan,wheel_zoom,"
                     "box_zoom,reset,save", toolbar_location="above", x_range=Range1d(0, 1),
                     y_range=Range1d(0, 1), **params)
        fig.toolbar.logo = None
        return fig

    def _build_isi_figure(self):
        fig = self._figure(title="ISI", x_axis_type="log" if self.log_bins else "linear",
                           x_axis_label="inter-spike interval (ms)", y_axis_label="count")
        fig.add_layout(self.isi_shade)
        fig.quad(source=self.isi_source, left="left", right="right", bottom="bottom", top="top",
                 fill_color="color", fill_alpha=0.45, line_color="color", line_width=1,
                 legend_field="unit")
        fig.legend.location = "top_right"
        fig.legend.visible = False
        self._isi_log = self.log_bins
        return fig

    def _build_rate_figure(self):
        fig = self._figure(x_axis_label="time (s)", y_axis_label="firing rate (Hz)")
        fig.multi_line(source=self.rate_source, xs="xs", ys="ys", line_color="color",
                       line_width=1.5, legend_field="unit")
        fig.legend.location = "top_right"
        fig.legend.visible = False
        return fig

    def _update_isi(self) -> None:
        if self.log_bins != self._isi_log:  # a new x scale: the only rebuild
            self.isi_figure = self._build_isi_figure()
            self._isi_pane.object = self.isi_figure
        k = len(self.unit_ids)
        edges = np.asarray(self.isi_edges_ms, dtype=np.float64)
        colors = unit_colors(self.unit_ids, self.selection.unit_ids)
        bins = edges.size - 1 if k else 0
        counts = np.asarray(self.isi_counts, dtype=np.float64).reshape(k, bins)
        self.isi_source.data = {
            "unit": np.repeat(np.array([str(u) for u in self.unit_ids], dtype=object), bins),
            "color": np.repeat(np.array(colors, dtype=object), bins),
            "left": np.tile(edges[:-1], k) if k else np.zeros(0),
            "right": np.tile(edges[1:], k) if k else np.zeros(0),
            "bottom": np.zeros(k * bins), "top": counts.ravel()}
        low = min(self.isi_bin_ms, 0.1) if self.log_bins else 0.0  # = edges[0]
        self.isi_figure.x_range.update(start=low, end=self.isi_window_ms)
        peak = float(counts.max()) if counts.size else 0.0
        self.isi_figure.y_range.update(start=0.0, end=peak * 1.05 if peak > 0 else 1.0)
        self.isi_shade.update(left=low, right=max(self.refractory_ms, low),
                              visible=bool(k and self.refractory_ms > 0))
        self.isi_figure.legend.visible = k > 1

    def _update_rate(self) -> None:
        k = len(self.unit_ids)
        edges = np.asarray(self.rate_edges_s, dtype=np.float64)
        colors = unit_colors(self.unit_ids, self.selection.unit_ids)
        xs = np.repeat(edges, 2)[1:-1]  # steps: each bin's rate from its left to right edge
        rates = np.asarray(self.rates_hz, dtype=np.float64)
        self.rate_source.data = {
            "unit": [str(u) for u in self.unit_ids], "color": list(colors),
            "xs": [xs] * k, "ys": [np.repeat(rates[row], 2) for row in range(k)]}
        start, end = self.x_range_s
        inside = (edges[1:] > start) & (edges[:-1] < end) if k else np.zeros(0, bool)
        peak = float(rates[:, inside].max()) if k and inside.any() else 0.0
        self.rate_y_max_hz = peak * 1.05 if peak > 0 else 1.0
        self.rate_figure.x_range.update(start=start, end=end)
        self.rate_figure.y_range.update(start=0.0, end=self.rate_y_max_hz)
        self.rate_figure.title.text = f"firing rate ({self.rate_bin_s:g} s bins)"
        self.rate_figure.legend.visible = k > 1
