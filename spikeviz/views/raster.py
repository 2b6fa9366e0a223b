"""Raster: every spike of every unit, time (s) against unit, rendered server-side as an image.

The spikes go to HoloViews as one ``hv.Points(time_s, row)`` element and through
``holoviews.operation.datashader.rasterize``, so the browser receives one image (a few hundred
kB), never millions of glyphs. The aggregation grid is aligned to unit rows: while the visible
rows fit in the plot's pixel height every unit is exactly one image row (a band of pixels), so
a spike is drawn as a short vertical tick in its unit's band, as in a classic raster.

Selected units (``Selection.unit_ids``) are drawn again on top in colour (also rasterized) over
a tinted band. Hover names the unit under the pointer and the spike count of the pixel (0 for
an empty one); a tap selects the unit of the tapped row and a box-select selects every unit
with spikes in the box; both map rows to unit ids on the server, exactly.
``Selection.time_window_s`` zooms the time axis, and zooming or panning the time axis writes it
(``write_time_window``; the whole session is None).

The raster shows ``curation.sorting``, the current curated sorting: after every curation action
(and undo/redo) its rows are rebuilt in place (zoom kept). Rows are ordered by ``order_by``: a
column of ``CuratedAnalysis.unit_frame()`` (depth by default, deepest at the bottom; unit id,
firing rate, amplitude, spike count, any metric), ascending from the bottom, unknown values on
top by unit order, ties by unit order.

The arrays behind the raster (float64 seconds computed once from the int64 samples, shared by
every curated sorting with the same spike times; the row of every spike, per sorting and order)
are shared, read-only, by every browser session.
"""

from __future__ import annotations

import html
import weakref

import datashader as ds
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import BasicTicker, CustomJSHover, CustomJSTickFormatter
from holoviews.operation.datashader import rasterize

from ..model.session import Session
from .base import View
from .raster_data import (  # noqa: F401 (spike_times_s: re-exported for callers)
    ORDER_COLUMNS,
    RasterData,
    order_choices,
    raster_data,
    spike_times_s,
    unit_frame_of,
)


def _ramp(start: str, end: str, n: int = 256) -> list[str]:
    """``n`` colours linearly interpolated (in RGB) from ``start`` to ``end`` (hex)."""
    a = np.array([int(start[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    b = np.array([int(end[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    steps = np.rint(a + (b - a) * np.linspace(0.0, 1.0, n)[:, None]).astype(int)
    return [f"#{r:02x}{g:02x}{b_:02x}" for r, g, b_ in steps]


#: Colours: unselected spikes light grey to black, selected spikes orange to dark red over a
#: pale yellow band; spike density per pixel is mapped by histogram equalisation.
BASE_CMAP = _ramp("#c8c8c8", "#000000")
HIGHLIGHT_CMAP = _ramp("#ffa040", "#a00000")
BAND_COLOR = "#ffe08a"

#: Hover formatter (Bokeh CustomJSHover code, args ``source``: the image's data source) for the
#: spike count of the pixel under the pointer. Empty pixels hold NaN in the image (so that they
#: are transparent), as do the blank separator lines between tall unit rows, and Bokeh prints a
#: NaN field as "NaN" without calling its formatter. So the count is read here from the pixel's
#: ``$image_index`` (Bokeh's ImageIndex: image ``index``, column ``i``, row ``j``, ``flat_index``)
#: and an empty pixel shows 0.
SPIKE_COUNT_HOVER_CODE = """
const ix = value;
const column = source.data.image;
if (ix == null || column == null || column[ix.index] == null) { return '0'; }
const image = column[ix.index];
const raw = Array.isArray(image[0]) ? image[ix.j][ix.i] : image[ix.flat_index];
const n = Number(raw);
return (raw != null && Number.isFinite(n)) ? Math.round(n).toLocaleString('en-US') : '0';
"""


def _ensure_bokeh_backend() -> None:
    if "bokeh" not in hv.Store.renderers:
        hv.renderer("bokeh")  # loads the backend without notebook side effects


def _sub_rows(row_px: float) -> tuple[int, tuple[int, ...]] | None:
    """(sub-rows per unit row, blank sub-rows) for rows ``row_px`` device pixels tall.

    Tall rows get a symmetric gap of 1/4 of the row; short rows a 1/4 gap at the bottom;
    rows under 4 px none (a blank line there could hide a whole unit).
    """
    if row_px >= 8:
        return 8, (0, 7)
    if row_px >= 4:
        return 4, (0,)
    return None


def _format_count(n: int) -> str:
    return f"{n:,} spike" + ("" if n == 1 else "s")


# -- the view -----------------------------------------------------------------------------------
_TICK_CODE = ("const i = Math.round(tick);"
              "return (Math.abs(tick - i) < 1e-6 && i >= 0 && i < labels.length)"
              " ? labels[i] : '';")
_HOVER_CODE = ("const i = Math.round(value);"
               "return (i >= 0 && i < labels.length) ? labels[i] : '';")


class Raster(View):
    """Spike raster of every unit of the curated sorting (datashaded), linked to a Selection.

    ``Raster(session, selection=None, curation=None, **params)``. Writes only
    ``selection.unit_ids`` (tap, box-select) and ``selection.time_window_s`` (zoom/pan, when
    ``write_time_window``); follows ``selection.unit_ids`` (highlight),
    ``selection.time_window_s`` (x zoom) and ``curation.sorting`` (rows).
    """

    min_height = param.Integer(default=420, bounds=(100, None), doc="Minimum plot height, px.")
    order_by = param.Selector(default="depth", objects=list(ORDER_COLUMNS), doc="""
        Row order, ascending from the bottom: depth (deepest at the bottom), unit id, firing
        rate, amplitude, spikes, or any numeric column of the unit table (metrics).""")
    write_time_window = param.Boolean(default=True, doc="""
        Zooming/panning the time axis writes selection.time_window_s (None: whole session).""")

    def __init__(self, session: Session, selection=None, curation=None, **params):
        order_by = params.pop("order_by", "depth")  # any unit_frame column: checked below
        super().__init__(session, selection, curation, **params)
        _ensure_bokeh_backend()
        frame = unit_frame_of(session, self.curation)
        self.param.order_by.objects = order_choices(frame)
        self.order_by = order_by
        self._data = raster_data(session, self.order_by, self.curation, frame)
        self._highlight_key: tuple | None = None
        self._highlight_frame = self._data.frame.iloc[0:0]
        self._x_ranges: weakref.WeakSet = weakref.WeakSet()
        self._y_ranges: weakref.WeakSet = weakref.WeakSet()
        self._y_axes: weakref.WeakSet = weakref.WeakSet()
        self._range = hv.streams.RangeXY()
        self._size = hv.streams.PlotSize()
        self._units_stream = hv.streams.Stream.define("Units", unit_ids=[])(
            unit_ids=list(self.selection.unit_ids))
        self._tick_formatter = CustomJSTickFormatter(args={"labels": []}, code=_TICK_CODE)
        self._hover_formatter = CustomJSHover(args={"labels": []}, code=_HOVER_CODE)
        self._set_labels()

        base = hv.DynamicMap(self._base_image, streams=[self._range, self._size])
        highlight = hv.DynamicMap(self._highlight_image,
                                  streams=[self._range, self._size, self._units_stream])
        bands = hv.DynamicMap(self._bands, streams=[self._units_stream])
        self._tap = hv.streams.Tap(source=base)
        self._tap.add_subscriber(self._on_tap)
        self._box = hv.streams.BoundsXY(source=base)
        self._box.add_subscriber(self._on_box)
        self._range.add_subscriber(self._on_range)

        self.plot = (bands * base * highlight).opts(self._overlay_opts())
        self._watch(self.selection, "unit_ids", self._on_units)
        self._watch(self.selection, "time_window_s", self._on_window)
        self._watch(self.curation, "sorting", lambda *_: self.refresh())
        self.param.watch(lambda *_: self.refresh(), ["order_by"])
        self._info = pn.pane.HTML(self._info_html(), sizing_mode="stretch_width",
                                  css_classes=["spikeviz-raster-info"], margin=(0, 10))
        self.order_select = pn.widgets.Select.from_param(
            self.param.order_by, name="", width=150, margin=(0, 10),
            css_classes=["spikeviz-raster-order"])
        self._pane = pn.pane.HoloViews(self.plot, sizing_mode="stretch_both",
                                       min_height=self.min_height, margin=(0, 5),
                                       css_classes=["spikeviz-raster"])
        self._layout = pn.Column(pn.Row(self._info, self.order_select,
                                        sizing_mode="stretch_width"),
                                 self._pane, sizing_mode="stretch_both",
                                 min_height=self.min_height + 40)

    # -- public, read-only facts (used by tests and other code) --------------------------------
    @property
    def data(self) -> RasterData:
        return self._data

    @property
    def row_unit_ids(self) -> list:
        """Unit id drawn in each row, bottom (row 0) to top."""
        return list(self._data.row_unit_ids)

    @property
    def order(self) -> str:
        """The row order in effect: ``order_by``, or "unit id" when its values are unknown."""
        return self._data.order

    def row_of(self, unit_id) -> int:
        """Row (0 = bottom) of ``unit_id``."""
        return int(self._data.row_of_unit[self._data.sorting.unit_index_of(unit_id)])

    def unit_at(self, y: float):
        """Unit id of the row at y (data coordinates), or None outside the rows."""
        if y is None or not np.isfinite(y):
            return None
        row = int(np.floor(y + 0.5))
        if 0 <= row < self._data.num_rows:
            return self._data.row_unit_ids[row]
        return None

    def spikes_of(self, unit_id) -> pd.DataFrame:
        """The raster's points (time_s, row) for ``unit_id``, in time order."""
        return self._data.frame.iloc[self._data.sorting.spike_indices(unit_id)]

    @property
    def highlight(self) -> pd.DataFrame:
        """Points (time_s, row) of the selected units, drawn on top; time-sorted."""
        return self._highlight_for(self.selection.unit_ids)

    @property
    def x_range_s(self) -> tuple[float, float]:
        """The time range (s) the raster is set to show."""
        return self._x_default()

    # -- curation, order -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the rows for the current curated sorting and ``order_by``; keep the zoom."""
        data = self._data
        frame = unit_frame_of(self.session, self.curation)
        self.param.order_by.objects = order_choices(frame)
        self._data = raster_data(self.session, self.order_by, self.curation, frame)
        if self._data is data:  # same rows: only the selection may have moved while hidden
            self._info.object = self._info_html()
            self._units_stream.event(unit_ids=list(self.selection.unit_ids))
            return
        self._set_labels()
        n = max(self._data.num_rows, 1)
        for y_range in list(self._y_ranges):
            y_range.update(bounds=(-0.5, n - 0.5), start=-0.5, end=n - 0.5)
        for axis in list(self._y_axes):
            axis.axis_label = self._ylabel()
        self._info.object = self._info_html()
        self._units_stream.event(unit_ids=list(self.selection.unit_ids))
        self._range.event(y_range=(-0.5, n - 0.5))

    def _set_labels(self) -> None:
        data = self._data
        labels = [str(u) for u in data.row_unit_ids]
        depths = data.depths_um[np.argsort(data.row_of_unit)] if data.num_rows else np.zeros(0)
        hover = [f"{label} ({depth:.0f} µm)" if np.isfinite(depth) else label
                 for label, depth in zip(labels, depths.tolist(), strict=True)]
        self._tick_formatter.args = {"labels": labels}
        self._hover_formatter.args = {"labels": hover}

    def _ylabel(self) -> str:
        if self.order == "depth":
            return "unit (by depth, deepest at bottom)"
        if self.order == "unit id":
            return "unit"
        return f"unit (by {self.order}, lowest at bottom)"

    # -- rendering -----------------------------------------------------------------------------
    def _x_default(self) -> tuple[float, float]:
        """Selection.time_window_s clipped to the session, or the whole session (s)."""
        duration = self._data.duration_s
        whole = (0.0, duration if duration > 0 else 1.0)
        window = self.selection.time_window_s
        if window is None:
            return whole
        start, end = max(window[0], 0.0), min(window[1], whole[1])
        return (start, end) if start < end else whole

    def _overlay_opts(self) -> list:
        n = self._data.num_rows
        # every layer's default tools: the overlay merges them (and would keep a 2-D wheel zoom)
        default_tools = ["save", "pan", "xwheel_zoom", "box_zoom", "reset"]
        return [
            hv.opts.Image(
                "Base", cmap=BASE_CMAP, cnorm="eq_hist", colorbar=False,
                default_tools=default_tools,
                tools=["hover", "tap", "box_select"],
                hover_tooltips=[("unit", "$y{custom}"), ("time (s)", "$x{0.000}"),
                                ("spikes in pixel", "$image_index{custom}")],
                hover_formatters={"$y": self._hover_formatter},
                hooks=[self._count_hover_hook]),
            hv.opts.Image("Highlight", cmap=HIGHLIGHT_CMAP, cnorm="eq_hist", colorbar=False,
                          default_tools=default_tools),
            hv.opts.HSpans(color=BAND_COLOR, alpha=0.45, line_alpha=0,
                           default_tools=default_tools),
            hv.opts.Overlay(
                responsive=True, min_height=self.min_height, xlabel="time (s)",
                ylabel=self._ylabel(), xlim=self._x_default(), ylim=(-0.5, max(n, 1) - 0.5),
                yticks=BasicTicker(min_interval=1, num_minor_ticks=0, desired_num_ticks=25),
                yformatter=self._tick_formatter, active_tools=["pan", "xwheel_zoom"],
                default_tools=default_tools,
                show_grid=False, show_legend=False, toolbar="above",
                hooks=[self._plot_hook]),
        ]

    @staticmethod
    def _count_hover_hook(plot, element) -> None:
        """Give the hover's spike-count formatter the base image's data source (see
        ``SPIKE_COUNT_HOVER_CODE``); once per plot, not on every re-render."""
        hover, source = plot.handles.get("hover"), plot.handles.get("source")
        if hover is None or source is None:
            return
        current = hover.formatters.get("$image_index")
        if isinstance(current, CustomJSHover) and current.args.get("source") is source:
            return
        hover.formatters = {**hover.formatters, "$image_index": CustomJSHover(
            args={"source": source}, code=SPIKE_COUNT_HOVER_CODE)}

    def _plot_hook(self, plot, element) -> None:
        """Keep the axes' handles (to follow time_window_s and the curation) and bound pan/zoom
        to the data."""
        x_range = plot.handles.get("x_range")
        y_range = plot.handles.get("y_range")
        duration = self._data.duration_s
        plot.state.toolbar.logo = None
        if x_range is not None:
            self._x_ranges.add(x_range)
            if duration > 0:
                x_range.bounds = (0.0, duration)
        if y_range is not None:
            self._y_ranges.add(y_range)
            if self._data.num_rows:
                y_range.bounds = (-0.5, self._data.num_rows - 0.5)
        for axis in plot.state.yaxis:
            self._y_axes.add(axis)

    def _grid(self, x_range, y_range, width, height):
        """Aggregation grid: (x0, x1), (y0, y1) snapped to row edges, width and height in bins,
        and the height of one row in device pixels."""
        n = self._data.num_rows
        x0, x1 = x_range if x_range is not None else self._x_default()
        if not (np.isfinite(x0) and np.isfinite(x1)) or x1 <= x0:
            x0, x1 = self._x_default()
        y0, y1 = y_range if y_range is not None else (-0.5, n - 0.5)
        r0 = max(0, int(np.floor(y0 + 0.5)))
        r1 = min(n - 1, int(np.ceil(y1 - 0.5)))
        if n == 0 or r1 < r0:
            r0, r1 = 0, max(n - 1, 0)
        rows = r1 - r0 + 1
        ratio = getattr(pn.state.browser_info, "device_pixel_ratio", None) \
            if pn.state.browser_info is not None else None
        ratio = min(float(ratio), 2.0) if isinstance(ratio, int | float) and ratio > 0 else 1.0
        width_px = max(int((width or 800) * ratio), 1)
        height_px = max(int((height or self.min_height) * ratio), 1)
        return (float(x0), float(x1)), (r0 - 0.5, r1 + 0.5), width_px, \
            max(min(rows, height_px), 1), height_px / rows

    def _rasterize(self, frame: pd.DataFrame, group: str, x_range, y_range, width, height):
        (x0, x1), (y0, y1), w, h, row_px = self._grid(x_range, y_range, width, height)
        # spikes are time-sorted: only the visible slice goes to datashader
        lo, hi = np.searchsorted(frame["time_s"].to_numpy(), [x0, x1], side="left")
        points = hv.Points(frame.iloc[lo:hi + 1], kdims=["time_s", "row"])
        image = rasterize(points, dynamic=False, aggregator=ds.count(), x_range=(x0, x1),
                          y_range=(y0, y1), width=w, height=h, pixel_ratio=1)
        counts = image.data[image.vdims[0].name]  # dims (row, time_s), rows ascending
        xs = counts.coords["time_s"].to_numpy()
        values = counts.to_numpy().astype(np.float32)
        values[values == 0] = np.nan  # no spike: transparent
        sub = _sub_rows(row_px) if h == round(y1 - y0) else None
        if sub is None:
            ys = counts.coords["row"].to_numpy()
        else:
            # one unit per image row: split each row in k sub-rows, blank the gap ones, so
            # neighbouring units are separated by a thin white line
            k, gaps = sub
            values = np.repeat(values, k, axis=0)
            for g in gaps:
                values[g::k] = np.nan
            ys = y0 + (np.arange(values.shape[0]) + 0.5) / k
        spikes = hv.Dimension("spikes")
        if not np.isfinite(values).any():
            # nothing to draw; a fixed range spares HoloViews a min/max over all-NaN data
            spikes = spikes.clone(range=(1, 2))
        return hv.Image((xs, ys, values), kdims=["time_s", "row"], vdims=[spikes],
                        group=group)

    def _base_image(self, x_range=None, y_range=None, width=None, height=None, scale=None):
        return self._rasterize(self._data.frame, "Base", x_range, y_range, width, height)

    def _highlight_image(self, x_range=None, y_range=None, width=None, height=None,
                         scale=None, unit_ids=None):
        # unit_ids comes from the stream, so the highlight never lags behind the selection
        units = self.selection.unit_ids if unit_ids is None else unit_ids
        return self._rasterize(self._highlight_for(units), "Highlight", x_range, y_range, width,
                               height)

    def _bands(self, unit_ids=None):
        rows = sorted(self.row_of(u) for u in self._known(self.selection.unit_ids))
        return hv.HSpans(([r - 0.5 for r in rows], [r + 0.5 for r in rows]))

    # -- selection -------------------------------------------------------------------------------
    def _known(self, unit_ids) -> list:
        """``unit_ids`` that are units of the shown sorting (a selection may lag behind)."""
        sorting = self._data.sorting
        out = []
        for u in unit_ids:
            try:
                sorting.unit_index_of(u)
            except (KeyError, ValueError):
                continue
            out.append(u)
        return out

    def _highlight_for(self, unit_ids) -> pd.DataFrame:
        """Points of ``unit_ids`` in time order (the last result is kept)."""
        units = tuple(self._known(unit_ids))
        key = (id(self._data), units)
        if key != self._highlight_key:
            sorting = self._data.sorting
            if units:
                positions = np.sort(np.concatenate([sorting.spike_indices(u) for u in units]))
            else:
                positions = np.zeros(0, dtype=np.int64)
            self._highlight_frame = self._data.frame.iloc[positions]
            self._highlight_key = key
        return self._highlight_frame

    def _info_html(self) -> str:
        units = self._known(self.selection.unit_ids)
        sorting = self._data.sorting
        n = self._data.num_rows
        if n == 0:
            return "<span class='spikeviz-selected'>No units in this sorting.</span>"
        if not units:
            what = "Selected: none"
            hint = " &mdash; tap a unit in the raster or a row in the table"
        else:
            counts = sorting.spike_counts()
            spikes = int(sum(int(counts.loc[u]) for u in units))
            shown = ", ".join(html.escape(str(u)) for u in units[:12])
            more = f" and {len(units) - 12} more" if len(units) > 12 else ""
            noun = "unit" if len(units) == 1 else f"{len(units)} units:"
            what = f"Selected: {noun} {shown}{more}"
            hint = f" &middot; {_format_count(spikes)}"
            if len(units) == 1:
                depth = self._data.depths_um[sorting.unit_index_of(units[0])]
                if np.isfinite(depth):
                    hint += f" &middot; depth {depth:.0f} µm"
        order = f"by {self.order}"
        return (f"<span class='spikeviz-selected'><b>{what}</b>{hint}</span>"
                f"<span style='float:right;color:#666'>{n} units {order} &middot; "
                f"{_format_count(sorting.num_spikes)}</span>")

    def _on_units(self, event) -> None:
        self._info.object = self._info_html()
        self._units_stream.event(unit_ids=list(event.new))  # re-renders highlight and bands

    def _on_window(self, event) -> None:
        start, end = self._x_default()
        for x_range in list(self._x_ranges):
            x_range.update(start=start, end=end)
        if self._range.x_range is None or not np.allclose(self._range.x_range, (start, end)):
            self._range.event(x_range=(start, end))

    def _window_of(self, x_range) -> tuple[float, float] | None:
        """The time window (s) for a visible x range: clipped to the session; None when it
        covers the whole session (or is not a valid range)."""
        duration = self._data.duration_s
        if x_range is None or duration <= 0:
            return None
        start, end = max(float(x_range[0]), 0.0), min(float(x_range[1]), duration)
        if not (np.isfinite(start) and np.isfinite(end)) or end <= start:
            return None
        tolerance = 1e-9 * max(duration, 1.0)
        if start <= tolerance and end >= duration - tolerance:
            return None
        return (start, end)

    def _on_range(self, x_range=None, **_) -> None:
        """Zoom/pan of the time axis (RangeXY): write selection.time_window_s when it differs
        from the window the raster already follows (so no loop: the echo is equal)."""
        if not self.write_time_window or x_range is None or not self.active:
            return
        window = self._window_of(x_range)
        current = self.selection.time_window_s
        if window is None and current is None:
            return
        if window is not None and current is not None and np.allclose(window, current):
            return
        if window is None and self._window_of(self._x_default()) is None:
            return  # the selection's window is clipped to the whole session already
        self.selection.time_window_s = window

    def _on_tap(self, x=None, y=None, **_) -> None:
        if x is None or y is None:
            return
        unit = self.unit_at(y)
        self.selection.unit_ids = [] if unit is None else [unit]

    def _on_box(self, bounds=None, **_) -> None:
        if bounds is None:
            return
        x0, y0, x1, y1 = bounds
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        n = self._data.num_rows
        first = max(0, int(np.floor(y0 - 0.5)) + 1)
        last = min(n - 1, int(np.ceil(y1 + 0.5)) - 1)
        sorting = self._data.sorting
        units = [u for u in self._data.row_unit_ids[first:last + 1]
                 if sorting.spike_train_s(u, x0, np.nextafter(x1, np.inf)).size]
        self.selection.unit_ids = units
