"""Per-unit numbers of a comparison: a table, scatter plots, unit category counts.

Ground-truth mode: one row per ground-truth unit — ``Comparison.performance`` (accuracy,
recall, precision, false discovery rate, miss rate, tp / fn / fp, spikes of both units) with
the unit's firing rate and, when the ground truth comes with a recording, its SNR (|template
extremum on the peak channel| / that channel's noise, SpikeInterface's ``snr``); scatter plots
of accuracy against SNR and against firing rate; the unit category counts as bars.
Two-sorter mode: one row per unit of sorting1 — its Hungarian match, their agreement and
coincident spikes, both spike counts — and best agreement against firing rate.

A click on a table row (or a point) selects the pair (the unit and its match).
"""

from __future__ import annotations

import logging

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from ..compute import metrics, unit_templates
from .comparison_base import (
    COLOR1,
    COLOR2,
    ComparisonView,
    holoviews_pane,
    plain,
    side_label,
)

log = logging.getLogger(__name__)

#: Performance columns shown, in order (table column -> header).
PERFORMANCE_TITLES = {
    "gt_unit_id": "GT unit", "tested_id": "tested unit", "accuracy": "accuracy",
    "recall": "recall", "precision": "precision", "false_discovery_rate": "FDR",
    "miss_rate": "miss rate", "tp": "TP", "fn": "FN", "fp": "FP", "num_gt": "GT spikes",
    "num_tested": "tested spikes", "firing_rate_hz": "rate (Hz)", "snr": "SNR"}
CATEGORY_COLORS = {"well detected": "#2a9d4b", "overmerged": "#e9a23b",
                   "redundant": "#8c6bb1", "false positive": "#d62728", "bad": "#7f7f7f"}


def unit_snr(session) -> pd.Series | None:
    """SNR per unit of ``session`` (index unit_id): |template extremum on the peak channel| /
    the noise level of that channel (both µV; SpikeInterface's ``snr``, peak sign 'neg').
    None without a recording (or when it cannot be computed: the reason is logged)."""
    if session is None or session.recording is None or session.sorting.num_spikes == 0:
        return None
    try:
        templates = session.compute("templates")
        noise = np.asarray(session.compute("noise_levels"), dtype=np.float64)
    except Exception as err:  # the table is still useful without it
        log.warning("no SNR for the comparison table: %s: %s", type(err).__name__, err)
        return None
    average = np.asarray(templates.data, dtype=np.float32)
    nbefore = int(templates.nbefore)
    peaks = unit_templates.peak_amplitudes(average, nbefore, "neg")
    channels = unit_templates.peak_channels(average, nbefore, "neg")
    values = metrics.snr(peaks, noise, channels)
    return pd.Series(values, index=pd.Index(templates.unit_ids, name="unit_id"), name="snr")


def firing_rates_hz(sorting) -> pd.Series:
    """Spikes per second of each unit over the sorting's duration (NaN when it is 0)."""
    duration = float(sorting.duration_s or 0.0)
    counts = sorting.spike_counts().astype(np.float64)
    return counts / duration if duration > 0 else counts * np.nan


def performance_table(comparison, snr: pd.Series | None = None) -> pd.DataFrame:
    """Ground truth: ``comparison.performance`` as shown (one row per ground-truth unit,
    ``gt_unit_id`` a column, plus firing_rate_hz and snr when given). Two sorters: one row
    per unit of sorting1 with its match, agreement, coincident spikes and spike counts."""
    c = comparison
    if c.ground_truth:
        perf = c.performance.reset_index()
        perf["tested_id"] = perf["tested_id"].astype(object).where(perf["tested_id"].notna(),
                                                                    None)
        rates = firing_rates_hz(c.sorting1)
        perf["firing_rate_hz"] = rates.to_numpy()
        if snr is not None:
            perf["snr"] = snr.reindex(c.unit_ids1).to_numpy()
        columns = [k for k in PERFORMANCE_TITLES if k in perf.columns]
        return perf[columns]
    matches = c.matches
    scores, counts = c.agreement.to_numpy(), c.match_counts.to_numpy()
    col = {plain(u): j for j, u in enumerate(c.unit_ids2)}
    partner = [plain(v) if not pd.isna(v) else None for v in matches.tolist()]
    j = np.array([col.get(p, -1) if p is not None else -1 for p in partner], dtype=np.int64)
    rows = np.arange(len(partner))
    ok = j >= 0
    agreement = np.where(ok, scores[rows, np.where(ok, j, 0)], np.nan) if rows.size else \
        np.zeros(0)
    coincident = np.where(ok, counts[rows, np.where(ok, j, 0)], 0) if rows.size else \
        np.zeros(0, np.int64)
    n2 = c.sorting2.spike_counts().to_numpy()
    best = scores.max(axis=1) if scores.size else np.zeros(len(partner))
    return pd.DataFrame({
        "unit1": [plain(u) for u in c.unit_ids1], "unit2": pd.Series(partner, dtype=object),
        "agreement": agreement, "best_agreement": best, "coincident": coincident,
        "num_spikes1": c.sorting1.spike_counts().to_numpy(),
        "num_spikes2": np.where(ok, n2[np.where(ok, j, 0)] if n2.size else 0, 0),
        "firing_rate_hz1": firing_rates_hz(c.sorting1).to_numpy()})


class PerformanceView(ComparisonView):
    """Table, plots and category counts of a comparison; a row click selects the pair."""

    snr = param.Boolean(default=True, doc="""
        Compute each ground-truth unit's SNR when the ground truth has a recording (needs its
        templates and noise levels: computed once and cached).""")
    min_height = param.Integer(default=340, bounds=(150, None), doc="Table height, px.")

    def __init__(self, comparison, selection=None, **params):
        super().__init__(comparison, selection, **params)
        self.snr_values = unit_snr(comparison.session1) if (self.snr and
                                                             comparison.ground_truth) else None
        self.table = performance_table(comparison, self.snr_values)
        self.id_columns = ("gt_unit_id", "tested_id") if comparison.ground_truth else \
            ("unit1", "unit2")
        self.tabulator = pn.widgets.Tabulator(
            self._display_frame(), show_index=False, disabled=True, selectable=1,
            pagination=None, sizing_mode="stretch_width", height=self.min_height,
            layout="fit_data_fill", titles=self._titles(), formatters=self._formatters(),
            header_filters=False, css_classes=["spikeviz-performance-table"])
        self.tabulator.on_click(self._on_click)
        self._info = pn.pane.HTML(self._info_html(), sizing_mode="stretch_width",
                                  margin=(0, 10), css_classes=["spikeviz-performance-info"])
        self.plots = holoviews_pane(self._scatter_plots(), sizing_mode="stretch_width",
                                    min_height=280, css_classes=["spikeviz-performance-plots"])
        self.categories = holoviews_pane(self._category_plot(), sizing_mode="stretch_width",
                                         min_height=220,
                                         css_classes=["spikeviz-category-counts"])
        self.table_panel = pn.Column(self._info, self.tabulator, sizing_mode="stretch_width",
                                     name="Units")
        self.plots_panel = pn.Column(self.plots, self.categories, sizing_mode="stretch_width",
                                     name="Plots")
        self._layout = pn.Tabs(("Units", self.table_panel), ("Plots", self.plots_panel),
                               sizing_mode="stretch_width", dynamic=False)
        self._watch(self.selection, ["unit1", "unit2"], self._on_pair)
        self._start()

    # -- table -------------------------------------------------------------------------------
    def _display_frame(self) -> pd.DataFrame:
        frame = self.table.copy()
        for name in self.id_columns:  # ids as text: an unmatched unit shows "–"
            frame[name] = ["–" if v is None or (isinstance(v, float) and np.isnan(v))
                           else str(v) for v in frame[name]]
        return frame

    def _titles(self) -> dict:
        if self.comparison.ground_truth:
            return {k: v for k, v in PERFORMANCE_TITLES.items() if k in self.table.columns}
        n1, n2 = self.comparison.names
        return {"unit1": n1, "unit2": f"{n2} (match)", "agreement": "agreement",
                "best_agreement": "best agreement", "coincident": "coincident",
                "num_spikes1": f"{n1} spikes", "num_spikes2": f"{n2} spikes",
                "firing_rate_hz1": "rate (Hz)"}

    def _formatters(self) -> dict:
        three = {"type": "money", "precision": 3, "thousand": ","}
        one = {"type": "money", "precision": 1, "thousand": ","}
        out = {k: three for k in ("accuracy", "recall", "precision", "false_discovery_rate",
                                   "miss_rate", "agreement", "best_agreement")}
        out.update({k: one for k in ("firing_rate_hz", "snr", "firing_rate_hz1")})
        return {k: v for k, v in out.items() if k in self.table.columns}

    def pair_of_row(self, row: int) -> tuple:
        a, b = self.id_columns
        return plain(self.table[a].iloc[row]), plain(self.table[b].iloc[row])

    def click_row(self, row: int) -> None:
        """What a click on table row ``row`` does: select its unit and that unit's match."""
        if 0 <= row < len(self.table):
            self.selection.select(*self.pair_of_row(row))

    def _on_click(self, event) -> None:
        self.click_row(int(event.row))

    def _on_pair(self, *events) -> None:
        unit1 = self.selection.unit1
        column = self.table[self.id_columns[0]]
        rows = [i for i, v in enumerate(column.tolist()) if plain(v) == unit1]
        if self.tabulator.selection != rows[:1]:
            self.tabulator.selection = rows[:1]

    def refresh(self) -> None:
        self._on_pair()

    def _info_html(self) -> str:
        c = self.comparison
        if c.ground_truth:
            perf = c.performance
            means = " · ".join(f"mean {k} {perf[k].mean():.3f}" for k in
                               ("accuracy", "recall", "precision")) if len(perf) else ""
            snr = "" if self.snr_values is not None else " · SNR: the ground truth has no " \
                "recording"
            return (f"<span style='color:#555'>One row per ground-truth unit (its Hungarian "
                    f"match) · {means}{snr} · click a row to compare the pair</span>")
        return ("<span style='color:#555'>One row per unit of "
                f"{c.names[0]} with its Hungarian match · click a row to compare the "
                "pair</span>")

    # -- plots -------------------------------------------------------------------------------
    def _scatter_plots(self):
        c, t = self.comparison, self.table
        opts = dict(size=7, alpha=0.8, tools=["hover"], default_tools=["save", "reset"],
                    responsive=True, height=260, show_grid=True, toolbar="above")
        if c.ground_truth:
            ids = [str(u) for u in t["gt_unit_id"]]
            frame = pd.DataFrame({"unit": ids, "accuracy": t["accuracy"].to_numpy(),
                                  "rate": t["firing_rate_hz"].to_numpy(),
                                  "spikes": t["num_gt"].to_numpy()})
            plots = []
            if "snr" in t.columns:
                frame["snr"] = t["snr"].to_numpy()
                plots.append(hv.Scatter(frame, "snr", ["accuracy", "unit", "rate"]).opts(
                    color=COLOR1, xlabel="SNR (ground truth)", ylim=(-0.05, 1.05),
                    title="accuracy vs SNR", **opts))
            plots.append(hv.Scatter(frame, "rate", ["accuracy", "unit", "spikes"]).opts(
                color=COLOR1, xlabel="firing rate (Hz, ground truth)", ylim=(-0.05, 1.05),
                title="accuracy vs firing rate", logx=bool((frame["rate"] > 0).all()),
                **opts))
            return hv.Layout(plots).cols(len(plots)).opts(shared_axes=False)
        frame = pd.DataFrame({"unit": [str(u) for u in t["unit1"]],
                              "best": t["best_agreement"].to_numpy(),
                              "rate": t["firing_rate_hz1"].to_numpy()})
        return hv.Scatter(frame, "rate", ["best", "unit"]).opts(
            color=COLOR1, xlabel=f"firing rate (Hz, {c.names[0]})",
            ylabel="best agreement", ylim=(-0.05, 1.05), title="best agreement vs rate",
            **opts)

    def category_counts(self) -> dict:
        """Unit categories (ground truth): name -> number of tested units."""
        counts = self.comparison.category_counts or {}
        return {k.removeprefix("num_").replace("_", " "): v for k, v in counts.items()
                if k not in ("num_gt", "num_sorter")}

    def _category_plot(self):
        c = self.comparison
        counts = self.category_counts()
        if not counts:
            return hv.Text(0, 0, "unit categories: ground-truth mode only").opts(
                responsive=True, height=120, xaxis=None, yaxis=None, toolbar=None)
        names = list(counts)
        frame = pd.DataFrame({"category": names, "units": [counts[n] for n in names],
                              "color": [CATEGORY_COLORS.get(n, COLOR2) for n in names]})
        note = "" if c.exhaustive_gt else " (exhaustive_gt off: only well detected)"
        return hv.Bars(frame, "category", ["units", "color"]).opts(
            color="color", responsive=True, height=200, tools=["hover"],
            default_tools=["save"], toolbar=None, ylabel=f"{side_label(c, 2)} units",
            title=f"unit categories of {c.sorting2.num_units} tested units{note}")
