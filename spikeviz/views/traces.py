"""Traces: every visible channel of a time window, ordered by depth, with spikes overlaid.

The data of a frame (see :mod:`.traces_data`) is produced on the server: the window (only it)
is read from the recording, optionally high-/band-pass filtered and common-median referenced,
and reduced to the exact min/max of every pixel column. Above ``max_line_channels`` channels the
browser gets ONE image (the envelopes drawn into a count image by a numba kernel); at or below
it, one multi-line of the envelopes. Spikes of the selected units (or of all units) are drawn
as markers in their unit colour (:mod:`.colors`) on their unit's peak channel; tapping one
selects its unit. Hover names the channel and the time.

The window is ``Selection.time_window_s`` (the first ``default_window_s`` seconds when it is
None, at most ``max_window_s`` long); panning/zooming the plot or moving the time slider writes
it back, so the raster and the other views follow.
"""

from __future__ import annotations

import weakref

import holoviews as hv
import numpy as np
import panel as pn
import param
from bokeh.models import CustomJSHover

from .base import View
from .colors import unit_colors
from .traces_data import FILTERS, TraceFrame, channel_order, make_frame, window_spikes

IMAGE_CMAP = ["#6e6e6e", "#3a3a3a", "#000000"]
NO_RECORDING = ("**No raw recording in this session.** Open it with its recording "
                "(`spikeviz serve PATH --recording RAW`) to see the traces.")
_HOVER_CHANNEL = ("const i = Math.round(value);"
                  "return (i >= 0 && i < labels.length) ? labels[i] : '';")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float | np.floating) and not np.isfinite(value))


def _ensure_bokeh_backend() -> None:
    if "bokeh" not in hv.Store.renderers:
        hv.renderer("bokeh")


class Traces(View):
    """Raw traces of all visible channels (by depth) with the selected units' spikes.

    Reads ``selection.time_window_s``, ``unit_ids``, ``channel_ids`` and ``curation.sorting``;
    writes ``selection.time_window_s`` (pan, zoom, slider) and ``selection.unit_ids`` (tap on a
    spike). ``frame`` is the last :class:`~.traces_data.TraceFrame` made (None before the
    first, or without a recording); ``frames_made`` counts them.
    """

    filter = param.Selector(default="none", objects=list(FILTERS), doc="""
        View-time filter: none, highpass (above ``band_hz[0]``) or bandpass (``band_hz``);
        zero-phase Butterworth of order 5.""")
    band_hz = param.Range(default=(300.0, 6000.0), bounds=(0.1, None),
                          doc="Filter band (low, high), Hz.")
    cmr = param.Boolean(default=False, doc="Common median reference (across all channels).")
    gain = param.Number(default=1.0, bounds=(0.05, 50.0), softbounds=(0.1, 10.0),
                        doc="Display gain (1: rows spaced by the automatic spacing).")
    show_all_units = param.Boolean(default=False, doc="""
        Overlay the spikes of every unit (unselected units in their id colour), not only of
        the selected ones.""")
    default_window_s = param.Number(default=1.0, bounds=(1e-3, None),
                                    doc="Window shown when the selection has none, s.")
    max_window_s = param.Number(default=20.0, bounds=(1e-3, None),
                                doc="Longest window read at once, s.")
    max_line_channels = param.Integer(default=32, bounds=(0, None), doc="""
        Up to this many channels are drawn as lines; above, as one image.""")
    min_height = param.Integer(default=500, bounds=(100, None), doc="Plot height, px.")

    def __init__(self, session, selection=None, curation=None, **params):
        super().__init__(session, selection, curation, **params)
        self.frame: TraceFrame | None = None
        self.frames_made = 0
        self._size = (1000, self.min_height)
        self._spacing: dict = {}
        self._x_ranges: weakref.WeakSet = weakref.WeakSet()
        self._y_ranges: weakref.WeakSet = weakref.WeakSet()
        recording = session.recording
        if recording is None:
            self._layout = pn.Column(pn.pane.Alert(NO_RECORDING, alert_type="info"),
                                     sizing_mode="stretch_width")
            return
        if recording.is_filtered and "filter" not in params:
            self.filter = "none"
        _ensure_bokeh_backend()
        self._pipe = hv.streams.Pipe(data=None)
        image = hv.DynamicMap(self._image_element, streams=[self._pipe])
        lines = hv.DynamicMap(self._lines_element, streams=[self._pipe])
        spikes = hv.DynamicMap(self._spikes_element, streams=[self._pipe])
        self._range = hv.streams.RangeX(source=image)
        self._range.add_subscriber(self._on_range)
        self._plot_size = hv.streams.PlotSize(source=image)
        self._plot_size.add_subscriber(self._on_size)
        self._tap = hv.streams.Tap(source=spikes)
        self._tap.add_subscriber(self._on_tap)
        self.plot = (image * lines * spikes).opts(
            hv.opts.Overlay(responsive=True, min_height=self.min_height, xlabel="time (s)",
                            ylabel="channel (by depth, deepest at bottom)",
                            active_tools=["xpan", "xwheel_zoom"], show_legend=False,
                            toolbar="above", hooks=[self._plot_hook]))
        self._slider = pn.widgets.FloatSlider(label="start (s)", start=0.0,
                                              end=max(recording.duration_s, 1e-3),
                                              step=0.01, value=0.0, sizing_mode="stretch_width")
        self._slider.param.watch(self._on_slider, "value_throttled")
        back = pn.widgets.Button(label="◀", width=40)
        forward = pn.widgets.Button(label="▶", width=40)
        back.on_click(lambda _: self.step(-1))
        forward.on_click(lambda _: self.step(+1))
        controls = pn.Column(
            pn.FlexBox(
                pn.widgets.RadioButtonGroup.from_param(self.param.filter, width=230),
                pn.widgets.Checkbox.from_param(self.param.cmr, name="CMR", width=60),
                pn.widgets.FloatSlider.from_param(self.param.gain, width=160),
                pn.widgets.Checkbox.from_param(self.param.show_all_units, name="all units",
                                               width=90),
                flex_wrap="wrap", align_items="center", sizing_mode="stretch_width"),
            pn.Row(back, forward, self._slider, sizing_mode="stretch_width"),
            sizing_mode="stretch_width", margin=0, css_classes=["spikeviz-traces-controls"])
        self._info = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self._pane = pn.pane.HoloViews(self.plot, sizing_mode="stretch_both",
                                       min_height=self.min_height,
                                       css_classes=["spikeviz-traces"])
        self._layout = pn.Column(controls, self._info, self._pane, sizing_mode="stretch_both",
                                 min_height=self.min_height + 80)
        self._watch(self.selection, ["time_window_s", "unit_ids", "channel_ids"],
                    lambda *e: self.refresh())
        self._watch(self.curation, ["sorting"], lambda *e: self.refresh())
        self._watch(self, ["filter", "band_hz", "cmr", "gain", "show_all_units",
                           "max_line_channels"], lambda *e: self.refresh())
        self._start()

    # -- what is shown (read by tests) ---------------------------------------------------------
    @property
    def has_recording(self) -> bool:
        return self.session.recording is not None

    @property
    def window_s(self) -> tuple[float, float]:
        """The window (s) shown: the selection's, clipped to the recording and to
        ``max_window_s``; the first ``default_window_s`` when the selection has none."""
        duration = self.session.recording.duration_s
        window = self.selection.time_window_s
        if window is None:
            return 0.0, min(self.default_window_s, duration)
        start = min(max(window[0], 0.0), duration)
        end = min(window[1], duration, start + self.max_window_s)
        if end <= start:  # a window past the end: show the last bit of the recording
            start = max(0.0, duration - min(window[1] - window[0], self.max_window_s))
            end = duration
        return start, end

    @property
    def channel_ids(self) -> list:
        """Visible channel ids, bottom row (deepest) first."""
        return channel_order(self.session.recording, self.selection.channel_ids)

    def peak_channels(self, unit_ids) -> dict:
        """{unit id: peak channel id} for ``unit_ids``: the curated results' peak channel
        (``results.peak_channel_ids``, shared with the other views), else the unit table's
        ``peak_channel_id``; units without one on this probe are left out."""
        unit_ids = list(unit_ids)
        if not unit_ids:
            return {}
        peaks = self.results.peak_channel_ids(unit_ids)
        values = [None] * len(unit_ids) if peaks is None else np.asarray(peaks).tolist()
        table = self.sorting.unit_table
        if "peak_channel_id" in table:
            column = table["peak_channel_id"]
            values = [column.loc[u] if _missing(v) else v
                      for u, v in zip(unit_ids, values, strict=True)]
        known = set(self.session.recording.channel_ids.tolist())
        out = {}
        for u, v in zip(unit_ids, values, strict=True):
            if _missing(v):
                continue
            v = v.item() if isinstance(v, np.generic) else v
            v = int(v) if isinstance(v, float) and v.is_integer() else v
            if v in known:
                out[u] = v
        return out

    def compute_frame(self, start_s: float, end_s: float, width_px: int | None = None,
                      height_px: int | None = None) -> TraceFrame:
        """The frame of ``[start_s, end_s)`` at the current settings (no side effect)."""
        rec = self.session.recording
        fs = rec.sampling_frequency
        start = int(np.clip(round(start_s * fs), 0, rec.num_samples))
        end = int(np.clip(round(end_s * fs), start, rec.num_samples))
        width, height = self._pixels(width_px, height_px)
        channels = self.channel_ids
        sorting = self.sorting
        units = sorting.unit_ids.tolist() if self.show_all_units else self.selection.unit_ids
        colors = dict(zip(units, unit_colors(units, self.selection.unit_ids), strict=True))
        rows = {c: r for r, c in enumerate(channels)}
        spikes = window_spikes(sorting, start, end, units, self.peak_channels(units), rows,
                               fs, colors)
        key = (self.filter, tuple(self.band_hz), self.cmr)
        frame = make_frame(rec, start, end, channels, width, height, self.filter,
                           self.band_hz, self.cmr, self.gain, self._spacing.get(key),
                           self.max_line_channels, spikes)
        self._spacing.setdefault(key, frame.spacing_uv)
        return frame

    def _pixels(self, width_px, height_px) -> tuple[int, int]:
        ratio = getattr(pn.state.browser_info, "device_pixel_ratio", None) \
            if pn.state.browser_info is not None else None
        ratio = min(float(ratio), 2.0) if isinstance(ratio, int | float) and ratio > 0 else 1.0
        w = width_px if width_px is not None else int(self._size[0] * ratio)
        h = height_px if height_px is not None else int(self._size[1] * ratio)
        return max(int(w), 1), max(int(h), 1)

    # -- updating --------------------------------------------------------------------------------
    def refresh(self) -> None:
        if not self.has_recording:
            return
        start_s, end_s = self.window_s
        self.frame = self.compute_frame(start_s, end_s)
        self.frames_made += 1
        self._slider.param.update(value=start_s)
        self._info.object = self._info_html()
        for x_range in list(self._x_ranges):
            if (x_range.start, x_range.end) != (start_s, end_s):
                x_range.update(start=start_s, end=end_s)
        self._pipe.send(self.frame)
        for y_range in list(self._y_ranges):
            self._fit_y(y_range)

    def step(self, direction: int) -> None:
        """Move the window by its own length (``direction`` -1 back, +1 forward)."""
        start, end = self.window_s
        width = end - start
        duration = self.session.recording.duration_s
        new_start = float(np.clip(start + direction * width, 0.0, max(duration - width, 0.0)))
        self.selection.time_window_s = (new_start, new_start + width)

    def _info_html(self) -> str:
        f = self.frame
        what = {"none": "raw", "highpass": f"high-pass {self.band_hz[0]:g} Hz",
                "bandpass": f"band-pass {self.band_hz[0]:g}–{self.band_hz[1]:g} Hz"}
        spikes = f"{len(f.spikes):,} spikes shown"
        return (f"<span style='color:#555'>{len(f.channel_ids)} channels &middot; "
                f"{f.window_s[0]:.3f}–{f.window_s[1]:.3f} s &middot; {what[self.filter]}"
                f"{' + CMR' if self.cmr else ''} &middot; {f.spacing_uv / self.gain:.0f} µV "
                f"between rows &middot; {spikes}</span>")

    # -- elements ---------------------------------------------------------------------------------
    def _hover_opts(self, frame) -> dict:
        labels = [str(c) for c in (frame.channel_ids if frame is not None else [])]
        return dict(hover_tooltips=[("channel", "$y{custom}"), ("time (s)", "$x{0.0000}")],
                    hover_formatters={"$y": CustomJSHover(args={"labels": labels},
                                                          code=_HOVER_CHANNEL)})

    def _image_element(self, data=None):
        frame = data
        if frame is None or frame.image is None:
            return hv.Image(np.full((1, 1), np.nan), bounds=(0, -1, 1, 0), vdims=["count"])
        img = frame.image.astype(np.float32)
        img[img == 0] = np.nan
        t0, t1 = frame.window_s
        y0, y1 = frame.y_range
        # bounds: rows of the array top first
        return hv.Image(img[::-1], bounds=(t0, y0, t1, y1), kdims=["time_s", "y"],
                        vdims=[hv.Dimension("count", range=(1, 3))]).opts(
            cmap=IMAGE_CMAP, clipping_colors={"NaN": (0, 0, 0, 0)}, tools=["hover"],
            **self._hover_opts(frame))

    def _lines_element(self, data=None):
        frame = data
        if frame is None or frame.image is not None:
            return hv.Path([], kdims=["time_s", "y"])
        return hv.Path(frame.line_paths(), kdims=["time_s", "y"]).opts(
            color="black", line_width=1, tools=["hover"], **self._hover_opts(frame))

    def _spikes_element(self, data=None):
        frame = data
        spikes = frame.spikes if frame is not None else None
        if spikes is None or spikes.empty:
            return hv.Points([], kdims=["time_s", "row"], vdims=["unit_id", "color"])
        table = spikes[["time_s", "row", "unit_id", "color"]].astype({"unit_id": str})
        return hv.Points(table, kdims=["time_s", "row"], vdims=["unit_id", "color"]).opts(
            color="color", size=9, marker="circle", fill_alpha=0.25, line_width=1.5,
            tools=["hover", "tap"], hover_tooltips=[("unit", "@unit_id"),
                                                   ("time (s)", "@time_s{0.0000}")])

    # -- interaction ------------------------------------------------------------------------------
    def _plot_hook(self, plot, element) -> None:
        x_range, y_range = plot.handles.get("x_range"), plot.handles.get("y_range")
        plot.state.toolbar.logo = None
        if x_range is not None and self.has_recording:
            self._x_ranges.add(x_range)
            x_range.bounds = (0.0, self.session.recording.duration_s)
        if y_range is not None:
            self._y_ranges.add(y_range)
            self._fit_y(y_range)

    def _fit_y(self, y_range) -> None:
        """Every channel row in view (the y range is not zoomable; the first frame drawn in a
        hidden tab is a placeholder whose range HoloViews would otherwise keep)."""
        if self.frame is None:
            return
        y0, y1 = (float(v) for v in self.frame.y_range)
        if (y_range.start, y_range.end, y_range.bounds) != (y0, y1, (y0, y1)):
            y_range.update(bounds=(y0, y1), start=y0, end=y1)

    def _on_range(self, x_range=None, **_) -> None:
        if x_range is None or self.frame is None:
            return
        x0, x1 = (float(v) for v in x_range)
        if not (np.isfinite(x0) and np.isfinite(x1)) or x1 <= x0:
            return
        current = self.window_s
        if abs(x0 - current[0]) < 1e-6 and abs(x1 - current[1]) < 1e-6:
            return
        duration = self.session.recording.duration_s
        x0 = max(x0, 0.0)
        x1 = min(x1, duration, x0 + self.max_window_s)
        if x1 > x0:
            self.selection.time_window_s = (x0, x1)

    def _on_size(self, width=None, height=None, **_) -> None:
        if width and height and (width, height) != self._size:
            self._size = (int(width), int(height))
            if self.active:
                self.refresh()
            else:
                self._stale = True

    def _on_slider(self, event) -> None:
        start, end = self.window_s
        if abs(event.new - start) > 1e-9:
            width = end - start
            self.selection.time_window_s = (float(event.new), float(event.new) + width)

    def spike_at(self, time_s: float, row: float, tolerance_s: float | None = None):
        """Unit id of the overlaid spike nearest (time_s, row), or None (within half a row and
        ``tolerance_s``, default 1% of the window)."""
        frame = self.frame
        if frame is None or frame.spikes.empty or time_s is None or row is None:
            return None
        start, end = frame.window_s
        tol = 0.01 * (end - start) if tolerance_s is None else tolerance_s
        s = frame.spikes
        dt = np.abs(s["time_s"].to_numpy() - time_s) / max(tol, 1e-12)
        dr = np.abs(s["row"].to_numpy() - row) / 0.5
        score = np.maximum(dt, dr)
        best = int(np.argmin(score))
        return s["unit_id"].iloc[best] if score[best] <= 1 else None

    def _on_tap(self, x=None, y=None, **_) -> None:
        unit = self.spike_at(x, y)
        if unit is not None and unit not in self.selection.unit_ids[:1]:
            self.selection.unit_ids = [unit]
