"""The pair view: one unit of each sorting side by side.

For the pair ``(unit1, unit2)`` of a :class:`~spikeviz.model.comparison_selection.
ComparisonSelection` (either may be None):

- **numbers**: spikes of each unit, coincident spikes (``Comparison.match_counts``), agreement,
  one-to-one matched spikes (``Comparison.matched_spikes``) and, in ground-truth mode, the
  ground-truth unit's performance when the pair is its match;
- **rasters** aligned in time, unit1 on the upper row and unit2 on the lower one: each spike a
  tick, green when matched one to one (``matched_spikes``), in the sorting's light colour when
  not. Above :data:`MAX_TICKS` spikes the rows are datashaded (categories counted per pixel);
- **templates** overlaid on the channels where unit1 (else unit2) is largest, from each
  session's ``compute("templates")`` (µV; computed once per session and cached); a side
  without a recording is named;
- **cross-correlogram** of the two trains: ``spikeviz.compute.correlograms`` of one spike
  vector holding both (unit 0 = unit1, unit 1 = unit2), cell ``[0, 1]``: pairs by lag
  ``t1 - t2`` (ms), half-open bins; the coincidence window ±delta is shaded.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from ..compute import ccg as ccg_kernels
from .comparison_base import (
    COLOR1,
    COLOR2,
    MATCHED_COLOR,
    UNMATCHED1,
    UNMATCHED2,
    ComparisonView,
    holoviews_pane,
    plain,
    side_label,
)

log = logging.getLogger(__name__)

#: Above this many spikes in the pair the rasters are datashaded instead of drawn as ticks.
MAX_TICKS = 40_000
KIND_COLORS = {"matched 1": MATCHED_COLOR, "unmatched 1": UNMATCHED1,
               "matched 2": MATCHED_COLOR, "unmatched 2": UNMATCHED2}


@dataclass
class PairData:
    """What the pair view shows for ``(unit1, unit2)`` (plain arrays)."""

    unit1: object = None
    unit2: object = None
    train1: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # samples
    train2: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    matched1: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # positions
    matched2: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    coincident: int | None = None  # Comparison.match_counts of the pair
    agreement: float | None = None
    ccg_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # t1 - t2
    ccg_edges_ms: np.ndarray = field(default_factory=lambda: np.zeros(1))
    templates: dict = field(default_factory=dict)  # side -> (S, K) µV on `channels`
    channels: list = field(default_factory=list)  # channel ids shown
    template_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    template_note: str = ""


def pair_correlogram(train1, train2, sampling_frequency, window_ms, bin_ms):
    """Cross-correlogram of two time-sorted trains (int64 samples): ``(counts, edges_ms)``
    with ``counts[b]`` the pairs (spike of train1 at t1, spike of train2 at t2) whose lag
    ``t1 - t2`` lies in ``[edges_ms[b], edges_ms[b + 1])`` (spikeviz.compute.correlograms of
    a spike vector holding both trains as units 0 and 1, cell [0, 1])."""
    t = np.concatenate([np.asarray(train1, np.int64), np.asarray(train2, np.int64)])
    u = np.repeat(np.array([0, 1], np.int32), [len(train1), len(train2)])
    order = np.argsort(t, kind="stable")
    counts, edges = ccg_kernels.compute_correlograms(t[order], u[order], 2, sampling_frequency,
                                                     window_ms=window_ms, bin_ms=bin_ms)
    return counts[0, 1], edges


def _templates_of(session, unit_id):
    """``(template (S, C) float32, channel_ids, nbefore, fs)`` of ``unit_id`` or a reason."""
    if session is None:
        return "no recording (a bare sorting)"
    if session.recording is None:
        return "no recording"
    try:
        tpl = session.compute("templates")
    except Exception as err:
        log.warning("templates of the comparison failed: %s: %s", type(err).__name__, err)
        return f"templates failed ({type(err).__name__})"
    ids = [plain(u) for u in np.asarray(tpl.unit_ids)]
    if unit_id not in ids:
        return "no template"
    row = ids.index(unit_id)
    return tpl.dense(row), np.asarray(tpl.channel_ids), int(tpl.nbefore or 0), \
        float(tpl.sampling_frequency or session.sorting.sampling_frequency)


class PairView(ComparisonView):
    """The two units of the selected pair side by side (reads the selection only)."""

    ccg_window_ms = param.Number(default=40.0, bounds=(1.0, 1000.0),
                                 doc="Full lag window of the cross-correlogram, ms.")
    ccg_bin_ms = param.Number(default=0.5, bounds=(0.05, 50.0), doc="Correlogram bin, ms.")
    num_channels = param.Integer(default=6, bounds=(1, 32), doc="""
        Template channels shown: the largest of unit1 (peak-to-peak), else of unit2.""")
    min_height = param.Integer(default=200, bounds=(80, None), doc="Raster height, px.")

    def __init__(self, comparison, selection=None, **params):
        super().__init__(comparison, selection, **params)
        self.data = PairData()
        self._version = hv.streams.Stream.define("Version", version=0)()
        self._caption = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                     css_classes=["spikeviz-pair-caption"])
        self._raster_mode = "ticks"
        self._raster = holoviews_pane(self._raster_plot(), sizing_mode="stretch_width",
                                      height=self.min_height, margin=(0, 5),
                                      css_classes=["spikeviz-pair-raster"])
        self._templates = holoviews_pane(
            hv.DynamicMap(self._template_element, streams=[self._version]),
            sizing_mode="stretch_both", min_height=260, min_width=260,
            css_classes=["spikeviz-pair-templates"])
        self._ccg = holoviews_pane(
            hv.DynamicMap(self._ccg_element, streams=[self._version]),
            sizing_mode="stretch_both", min_height=260, min_width=260,
            css_classes=["spikeviz-pair-ccg"])
        self._body = pn.Column(self._raster, pn.Row(self._templates, self._ccg,
                                                    sizing_mode="stretch_both"),
                               sizing_mode="stretch_both", visible=False)
        self._layout = pn.Column(self._caption, self._body, sizing_mode="stretch_both",
                                 min_height=self.min_height + 300)
        self._watch(self.selection, ["unit1", "unit2"], lambda *e: self.refresh())
        self._watch(self, ["ccg_window_ms", "ccg_bin_ms", "num_channels"],
                    lambda *e: self.refresh())
        self._start()

    # -- data --------------------------------------------------------------------------------
    def compute(self, unit1, unit2) -> PairData:
        """Everything shown for the pair (no drawing)."""
        c = self.comparison
        d = PairData(unit1=unit1, unit2=unit2)
        if unit1 is not None:
            d.train1 = c.sorting1.spike_train(unit1)
        if unit2 is not None:
            d.train2 = c.sorting2.spike_train(unit2)
        if unit1 is not None and unit2 is not None:
            d.matched1, d.matched2 = c.matched_spikes(unit1, unit2)
            i, j = c.sorting1.unit_index_of(unit1), c.sorting2.unit_index_of(unit2)
            d.coincident = int(c.match_count_values[i, j])
            d.agreement = float(c.agreement_values[i, j])
            d.ccg_counts, d.ccg_edges_ms = pair_correlogram(
                d.train1, d.train2, c.sampling_frequency, self.ccg_window_ms, self.ccg_bin_ms)
        self._add_templates(d)
        return d

    def _add_templates(self, d: PairData) -> None:
        c = self.comparison
        got = {}
        notes = []
        for side, session, unit in ((1, c.session1, d.unit1), (2, c.session2, d.unit2)):
            if unit is None:
                continue
            result = _templates_of(session, unit)
            if isinstance(result, str):
                notes.append(f"{side_label(c, side)}: {result}")
            else:
                got[side] = result
        if not got:
            d.template_note = "; ".join(notes) or "select a pair"
            d.template_note = "No templates: " + d.template_note + \
                " — waveforms need the recording."
            return
        ref = got.get(1) or got.get(2)
        data, channel_ids = ref[0], ref[1]
        shown = np.argsort(-np.ptp(data, axis=0), kind="stable")[:self.num_channels]
        shown = np.sort(shown)
        d.channels = [plain(x) for x in channel_ids[shown]]
        for side, (tpl, ids, nbefore, fs) in got.items():
            where = {plain(x): k for k, x in enumerate(ids)}
            cols = [where.get(ch) for ch in d.channels]
            if any(k is None for k in cols):
                notes.append(f"{side_label(c, side)}: other channels")
                continue
            d.templates[side] = tpl[:, cols]
            d.template_ms = (np.arange(tpl.shape[0]) - nbefore) / fs * 1e3
        d.template_note = "; ".join(notes)

    # -- drawing -----------------------------------------------------------------------------
    def refresh(self) -> None:
        unit1, unit2 = self.selection.pair
        self.data = self.compute(unit1, unit2)
        self._caption.object = self._caption_html()
        self._body.visible = unit1 is not None or unit2 is not None
        mode = "ticks" if self.data.train1.size + self.data.train2.size <= MAX_TICKS \
            else "density"
        if mode != self._raster_mode:
            self._raster_mode = mode
            self._raster.object = self._raster_plot()
        self._version.event(version=self._version.version + 1)

    def raster_frame(self) -> pd.DataFrame:
        """Spikes drawn in the rasters: time_s, row (1 = unit1, 0 = unit2), kind."""
        d, fs = self.data, self.comparison.sampling_frequency
        parts = []
        for row, train, matched, side in ((1, d.train1, d.matched1, 1),
                                          (0, d.train2, d.matched2, 2)):
            is_matched = np.zeros(train.size, dtype=bool)
            is_matched[matched] = True
            kind = np.where(is_matched, f"matched {side}", f"unmatched {side}")
            parts.append(pd.DataFrame({"time_s": train / fs, "row": float(row),
                                       "kind": kind}))
        frame = pd.concat(parts, ignore_index=True)
        frame["kind"] = pd.Categorical(frame["kind"], categories=list(KIND_COLORS))
        return frame

    def _raster_plot(self):
        if self._raster_mode == "density":
            import datashader as ds
            from holoviews.operation.datashader import datashade, dynspread

            points = hv.DynamicMap(lambda version=0: hv.Points(
                self.raster_frame(), kdims=["time_s", "row"], vdims=["kind"]),
                streams=[self._version])
            shaded = dynspread(datashade(points, aggregator=ds.count_cat("kind"),
                                         color_key=KIND_COLORS, min_alpha=200),
                               max_px=2, threshold=0.8)
            return shaded.opts(self._raster_opts())
        return hv.DynamicMap(self._segments, streams=[self._version]).opts(
            self._raster_opts())

    def _segments(self, version=0):
        f = self.raster_frame()
        t, row = f["time_s"].to_numpy(), f["row"].to_numpy()
        return hv.Segments((t, row - 0.35, t, row + 0.35, f["kind"].astype(str).to_numpy()),
                           kdims=["time_s", "row", "x1", "y1"], vdims=["kind"])

    def _raster_opts(self):
        c = self.comparison
        duration = max(c.sorting1.duration_s or 0, c.sorting2.duration_s or 0) or 1.0
        common = dict(responsive=True, height=self.min_height, xlabel="time (s)", ylabel="",
                      ylim=(-0.6, 1.6), xlim=(0, duration), yticks=[(1, "unit1"), (0, "unit2")],
                      toolbar="above", active_tools=["xwheel_zoom"],
                      default_tools=["save", "xpan", "xwheel_zoom", "box_zoom", "reset"],
                      hooks=[self._raster_hook])
        if self._raster_mode == "density":
            return hv.opts.RGB(**common)
        return hv.opts.Segments(color="kind", cmap=KIND_COLORS, line_width=1.2,
                                show_legend=False, **common)

    def _raster_hook(self, plot, element) -> None:
        plot.state.toolbar.logo = None
        c = self.comparison
        for axis in plot.state.yaxis:
            axis.major_label_overrides = {
                1: f"{side_label(c, 1)} {self.data.unit1}",
                0: f"{side_label(c, 2)} {self.data.unit2}"}

    def _template_element(self, version=0):
        d, c = self.data, self.comparison
        opts = dict(responsive=True, min_height=240, xlabel="time (ms)", ylabel="channel",
                    show_legend=True, toolbar="above", default_tools=["save", "pan",
                                                                      "wheel_zoom", "reset"],
                    title="templates (µV)", framewise=True)
        if not d.templates:
            return hv.Overlay([hv.Text(0, 0, d.template_note or "", fontsize=9)]).opts(
                hv.opts.Overlay(**{**opts, "show_legend": False, "xaxis": None,
                                   "yaxis": None, "title": "templates"}))
        stack = np.concatenate([v for v in d.templates.values()], axis=1)
        step = float(np.abs(stack).max()) * 1.2 or 1.0
        curves, labels = [], []
        for side, color in ((1, COLOR1), (2, COLOR2)):
            if side not in d.templates:
                continue
            tpl = d.templates[side]
            name = f"{side_label(c, side)} {d.unit1 if side == 1 else d.unit2}"
            xs, ys = [], []
            for k in range(tpl.shape[1]):
                xs += [*d.template_ms.tolist(), np.nan]
                ys += [*(tpl[:, k] + k * step).tolist(), np.nan]
            curves.append(hv.Curve((xs, ys), "time_ms", "offset", label=name).opts(
                color=color, line_width=2 if side == 1 else 1.5, framewise=True,
                line_dash="solid" if side == 1 else "dashed"))
        for k, ch in enumerate(d.channels):
            labels.append((float(d.template_ms[0]), k * step + step * 0.25, f"ch {ch}"))
        text = hv.Labels(labels, ["time_ms", "offset"], "text").opts(
            text_font_size="8pt", text_color="#777", text_align="left", framewise=True)
        title = f"templates (channels {step:.0f} µV apart)"
        if d.template_note:
            title += f" — {d.template_note}"
        lo, hi = float(np.nanmin(stack)), float(np.nanmax(stack))
        ylim = (lo - 0.1 * step, (len(d.channels) - 1) * step + hi + 0.1 * step)
        return hv.Overlay([*curves, text]).opts(
            hv.opts.Overlay(**{**opts, "title": title, "yaxis": None, "show_legend": False,
                               "ylim": ylim}))

    def _ccg_element(self, version=0):
        d, c = self.data, self.comparison
        opts = dict(responsive=True, min_height=240, toolbar="above", framewise=True,
                    default_tools=["save", "pan", "wheel_zoom", "reset"])
        if d.ccg_counts.size == 0:
            text = "cross-correlogram: select a unit of each sorting"
            return hv.Overlay([hv.Text(0, 0, text, fontsize=9)]).opts(
                hv.opts.Overlay(**opts, xaxis=None, yaxis=None, title="cross-correlogram"))
        edges = d.ccg_edges_ms
        delta = c.delta_samples / c.sampling_frequency * 1e3
        top = float(d.ccg_counts.max()) if d.ccg_counts.size else 1.0
        shade = hv.VSpan(-delta, delta).opts(color="#cfe8d4", alpha=0.6)
        bars = hv.Histogram((edges, d.ccg_counts), kdims="lag_ms", vdims="pairs").opts(
            color="#555555", line_color=None, tools=["hover"], framewise=True)
        title = f"cross-correlogram: lag t({d.unit1}) − t({d.unit2})"
        return hv.Overlay([shade, bars]).opts(hv.opts.Overlay(
            **opts, xlabel="lag (ms)", ylabel="pairs per bin", ylim=(0, max(top, 1) * 1.08),
            xlim=(float(edges[0]), float(edges[-1])), title=title))

    def _caption_html(self) -> str:
        d, c = self.data, self.comparison
        if d.unit1 is None and d.unit2 is None:
            return ("<i>Tap a cell of the agreement or confusion matrix, or a row of the "
                    "table, to compare two units.</i>")

        def unit(side, u, n, color):
            if u is None:
                return f"{html.escape(side_label(c, side))}: <i>none</i>"
            return (f"<span style='color:{color}'><b>{html.escape(side_label(c, side))} "
                    f"{html.escape(str(u))}</b></span> ({n:,} spikes)")

        parts = [unit(1, d.unit1, d.train1.size, COLOR1) + " ↔ " +
                 unit(2, d.unit2, d.train2.size, COLOR2)]
        if d.agreement is not None:
            parts.append(f"agreement <b>{d.agreement:.3f}</b>")
            parts.append(f"{d.coincident:,} coincident (±{c.delta_ms:g} ms)")
            parts.append(f"{d.matched1.size:,} matched one to one: "
                         f"{d.train1.size - d.matched1.size:,} only in {d.unit1}, "
                         f"{d.train2.size - d.matched2.size:,} only in {d.unit2}")
            match = c.matches.get(d.unit1) if d.unit1 is not None else None
            is_match = plain(match) == d.unit2
            parts.append("Hungarian match" if is_match else "<i>not matched to each other</i>")
            if c.ground_truth and is_match:
                row = c.performance.loc[d.unit1]
                parts.append(" · ".join(f"{k} {row[k]:.3f}"
                                        for k in ("accuracy", "recall", "precision")))
        legend = (f"spikes: <span style='color:{MATCHED_COLOR}'>▮ matched</span> "
                  f"<span style='color:{UNMATCHED1}'>▮</span>"
                  f"<span style='color:{UNMATCHED2}'>▮ unmatched</span> · templates: "
                  f"<span style='color:{COLOR1}'>━ {html.escape(side_label(c, 1))}</span> "
                  f"<span style='color:{COLOR2}'>╌ {html.escape(side_label(c, 2))}</span>")
        return (f"<div class='spikeviz-pair-text'>{' · '.join(parts)}</div>"
                f"<div style='color:#666;font-size:12px'>{legend}</div>")
