"""LassoScatter: the view the amplitude and feature views build on.

The selected units' spikes datashaded by unit (one colour each, ``views/colors.py``), a grey
background layer, the selected spikes drawn on top, and a lasso/box wired to
``Selection.spike_indices`` through the exact selection of ``views/scatter.py`` (over every
spike of the shown units, never only the drawn pixels).

The figure is built once: the three layers are DynamicMaps on the plot's range and size
streams, rasterized with datashader directly (no HoloViews operation per layer), and a new
unit selection only sends new images and new axis ranges to the same Bokeh models. Layers with
nothing to draw (no selected spikes, no background, no data at all) skip datashader.
"""

from __future__ import annotations

import html
import weakref

import datashader as ds
import datashader.transfer_functions as tf
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from scipy import ndimage

from .base import View
from .colors import unit_colors
from .scatter import (  # noqa: F401 - re-exported: the lasso's selection functions
    SpikeCloud,
    combine,
    make_cloud,
    member_mask,
    points_in_box,
    points_in_polygon,
    sorted_unique,
    warm_up,
)


# -- the shared view ------------------------------------------------------------------------------
def _ramp(start: str, end: str, n: int = 64) -> list[str]:
    a = np.array([int(start[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    b = np.array([int(end[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    steps = np.rint(a + (b - a) * np.linspace(0.0, 1.0, n)[:, None]).astype(int)
    return [f"#{r:02x}{g:02x}{b_:02x}" for r, g, b_ in steps]


HIGHLIGHT_CMAP = _ramp("#303030", "#000000")
BACKGROUND_CMAP = _ramp("#dddddd", "#8a8a8a")
#: Below this fraction of non-empty pixels a layer is sparse: each spike is drawn
#: SPREAD_PX pixels wider on every side (display only).
SPARSE_FRACTION = 0.02
SPREAD_PX = 1
_Redraw = hv.streams.Stream.define("Redraw", token=0)


def _ensure_bokeh_backend() -> None:
    if "bokeh" not in hv.Store.renderers:
        hv.renderer("bokeh")


class LassoScatter(View):
    """A datashaded scatter of the selected units' spikes with exact lasso/box selection.

    Subclasses implement :meth:`load` (the :class:`SpikeCloud` to draw, or a message saying
    why there is none) and may add controls. A lasso or box selects, on the server, every
    spike inside it among *all* spikes of the shown units, and writes their positions to
    ``selection.spike_indices`` ("replace", "add" or "subtract" ``mode``); an empty lasso
    clears the selection. Selected spikes are drawn on top in black.
    """

    mode = param.Selector(default="replace", objects=["replace", "add", "subtract"], doc="""
        What a lasso or box does to the current spike selection.""")
    min_height = param.Integer(default=360, bounds=(100, None), doc="Minimum plot height, px.")

    xlabel = "x"
    ylabel = "y"

    def __init__(self, session, selection=None, curation=None, **params):
        super().__init__(session, selection=selection, curation=curation, **params)
        _ensure_bokeh_backend()
        self._cloud: SpikeCloud | None = None
        self._message = ""
        self._selected_mask = np.zeros(0, dtype=bool)
        self.loads = 0
        self.counts: np.ndarray | None = None
        self.highlight_counts: np.ndarray | None = None
        self.background_counts: np.ndarray | None = None
        self._handles = {"x": weakref.WeakSet(), "y": weakref.WeakSet()}  # Bokeh ranges
        self._range = hv.streams.RangeXY()
        self._size = hv.streams.PlotSize()
        self._spikes_token = _Redraw()
        streams = [self._range, self._size]
        base = hv.DynamicMap(self._base_element, streams=streams)
        background = hv.DynamicMap(self._background_element, streams=streams)
        highlight = hv.DynamicMap(self._highlight_element,
                                  streams=[*streams, self._spikes_token])
        self._lasso = hv.streams.Lasso(source=base)
        self._lasso.add_subscriber(self._on_lasso)
        self._box = hv.streams.BoundsXY(source=base)
        self._box.add_subscriber(self._on_box)
        self.plot = (background * base * highlight).opts(self._opts())
        self._readout = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                     css_classes=["spikeviz-lasso-readout"])
        self._clear = pn.widgets.Button(label="Clear spike selection", color="light",
                                        width=170)
        self._clear.on_click(lambda event: self.clear_selection())
        self._mode = pn.widgets.RadioButtonGroup.from_param(self.param.mode, width=220)
        self._pane = pn.pane.HoloViews(self.plot, sizing_mode="stretch_both",
                                       min_height=self.min_height, margin=(0, 5),
                                       css_classes=[f"spikeviz-{type(self).__name__.lower()}"])
        bar = pn.FlexBox(*self.controls(), self._mode, self._clear, flex_wrap="wrap",
                         align_items="end", sizing_mode="stretch_width")
        self._layout = pn.Column(self._readout, bar, self._pane, sizing_mode="stretch_both",
                                 min_height=self.min_height + 80)
        self._watch(self.selection, "unit_ids", lambda *e: self.refresh())
        self._watch(self.curation, "sorting", lambda *e: self.refresh())
        self._watch(self.selection, "spike_indices", lambda *e: self._on_spikes())
        self._start()

    # -- for subclasses -------------------------------------------------------------------------
    def load(self, unit_ids: list) -> SpikeCloud | str:
        """The spikes of ``unit_ids`` to draw, or a message saying why there are none."""
        raise NotImplementedError

    def controls(self) -> list:
        """Extra widgets shown above the plot."""
        return []

    def default_x_range(self) -> tuple[float, float]:
        return self._cloud.data_range("x") if self._cloud is not None else (0.0, 1.0)

    def default_y_range(self) -> tuple[float, float]:
        return self._cloud.data_range("y") if self._cloud is not None else (0.0, 1.0)

    # -- public facts ---------------------------------------------------------------------------
    @property
    def cloud(self) -> SpikeCloud | None:
        """The spikes drawn (None with a :attr:`message`)."""
        return self._cloud

    @property
    def message(self) -> str:
        """Why nothing is drawn ("" when something is)."""
        return self._message

    @property
    def selected_mask(self) -> np.ndarray:
        """Which spikes of :attr:`cloud` are in ``selection.spike_indices``."""
        return self._selected_mask

    @property
    def num_selected(self) -> int:
        return int(self._selected_mask.sum())

    def spikes_of_unit_selected(self, unit_id) -> np.ndarray:
        """Positions (curated spike vector) of the selected spikes of ``unit_id``: what
        ``curation.split(unit_id, ...)`` takes."""
        selected = self.selection.spike_indices
        positions = self.sorting.spike_indices(unit_id)
        return np.asarray(positions[member_mask(positions, selected)], dtype=np.int64)

    # -- selecting ------------------------------------------------------------------------------
    def select_polygon(self, polygon) -> np.ndarray:
        """Select the shown spikes inside ``polygon`` ((n, 2) vertices, data units), combined
        with the current selection by :attr:`mode`; returns the positions inside."""
        cloud = self._cloud
        if cloud is None:
            return np.zeros(0, dtype=np.int64)
        chosen = cloud.positions[points_in_polygon(cloud.x, cloud.y, polygon)]
        self.selection.spike_indices = combine(self.selection.spike_indices, chosen, self.mode)
        return chosen

    def select_box(self, bounds) -> np.ndarray:
        """As :meth:`select_polygon` for the box ``(x0, y0, x1, y1)``."""
        cloud = self._cloud
        if cloud is None:
            return np.zeros(0, dtype=np.int64)
        chosen = cloud.positions[points_in_box(cloud.x, cloud.y, bounds)]
        self.selection.spike_indices = combine(self.selection.spike_indices, chosen, self.mode)
        return chosen

    def clear_selection(self) -> None:
        self.selection.spike_indices = None

    def _on_lasso(self, geometry=None, **_) -> None:
        if geometry is not None and len(geometry):
            self.select_polygon(geometry)

    def _on_box(self, bounds=None, **_) -> None:
        if bounds is not None:
            self.select_box(bounds)

    # -- state ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.loads += 1
        was_empty = self._cloud is None
        units = list(self.selection.unit_ids)
        result = self.load(units) if units else "Select one or more units."
        if isinstance(result, str):
            self._cloud, self._message = None, result
        else:
            self._cloud, self._message = result, ""
        self._update_selected()
        if self._cloud is None and was_empty:
            return  # nothing drawn before and nothing now (e.g. no recording): no redraw
        self._reset_ranges()

    def _update_selected(self) -> None:
        cloud = self._cloud
        self._selected_mask = np.zeros(0, bool) if cloud is None else \
            member_mask(cloud.positions, self.selection.spike_indices)
        self._readout.object = self._readout_html()

    def _on_spikes(self) -> None:
        self._update_selected()
        self._spikes_token.event(token=self._spikes_token.token + 1)

    def _reset_ranges(self) -> None:
        x0, x1 = self.default_x_range()
        y0, y1 = self.default_y_range()
        for axis, (lo, hi) in (("x", (x0, x1)), ("y", (y0, y1))):
            for handle in list(self._handles[axis]):
                handle.update(start=lo, end=hi)
        self._range.event(x_range=(x0, x1), y_range=(y0, y1))

    def _readout_html(self) -> str:
        if self._cloud is None:
            return f"<span style='color:#555'>{html.escape(self._message)}</span>"
        n, m = self.num_selected, self._cloud.num_spikes
        selected = self.selection.spike_indices
        other = 0 if selected is None else int(selected.size) - n
        more = f" (+{other:,} in other units)" if other > 0 else ""
        return (f"<b>{n:,} spikes selected of {m:,}</b>{more} &middot; lasso or box to "
                f"select, exactly over every spike of the shown units")

    # -- rendering ------------------------------------------------------------------------------
    def _opts(self) -> list:
        tools = ["save", "pan", "wheel_zoom", "box_zoom", "reset"]
        return [
            hv.opts.RGB("Spikes", default_tools=tools, tools=["lasso_select", "box_select"]),
            hv.opts.Image("Highlight", cmap=HIGHLIGHT_CMAP, cnorm="eq_hist", colorbar=False,
                          default_tools=tools),
            hv.opts.Image("Background", cmap=BACKGROUND_CMAP, cnorm="eq_hist", colorbar=False,
                          default_tools=tools),
            hv.opts.Overlay(responsive=True, min_height=self.min_height,
                            active_tools=["lasso_select", "wheel_zoom"],
                            default_tools=tools, show_legend=False, toolbar="above",
                            hooks=[self._plot_hook]),
        ]

    def _plot_hook(self, plot, element) -> None:
        plot.state.toolbar.logo = None
        for axis in ("x", "y"):
            handle = plot.handles.get(f"{axis}_range")
            if handle is not None:
                self._handles[axis].add(handle)

    def _grid(self, x_range, y_range, width, height):
        x0, x1 = x_range if x_range is not None else self.default_x_range()
        if not (np.isfinite(x0) and np.isfinite(x1)) or x1 <= x0:
            x0, x1 = self.default_x_range()
        y0, y1 = y_range if y_range is not None else self.default_y_range()
        if not (np.isfinite(y0) and np.isfinite(y1)) or y1 <= y0:
            y0, y1 = self.default_y_range()
        return (float(x0), float(x1)), (float(y0), float(y1)), \
            max(int(width or 800), 1), max(int(height or self.min_height), 1)

    def _visible(self, x, x_range, x_sorted):
        if not x_sorted:
            return slice(None)
        lo, hi = np.searchsorted(x, x_range)
        return slice(int(lo), int(hi) + 1)

    def _dims(self) -> list:
        """The x and y dimensions, labelled with what the axes show."""
        return [hv.Dimension("x", label=self.xlabel), hv.Dimension("y", label=self.ylabel)]

    @staticmethod
    def _canvas(x_range, y_range, w, h) -> ds.Canvas:
        return ds.Canvas(plot_width=w, plot_height=h, x_range=x_range, y_range=y_range)

    @staticmethod
    def _bounds(xr, yr) -> tuple[float, float, float, float]:
        return (xr[0], yr[0], xr[1], yr[1])

    def _base_element(self, x_range=None, y_range=None, width=None, height=None, scale=None):
        """The selected units' spikes, one colour per unit (RGB); sets :attr:`counts`
        ((height, width, units) spikes per pixel and unit)."""
        xr, yr, w, h = self._grid(x_range, y_range, width, height)
        cloud = self._cloud
        if cloud is None or cloud.num_spikes == 0:
            self.counts = np.zeros((h, w, 0), dtype=np.uint32)
            return hv.RGB(np.zeros((2, 2, 4), np.uint8), bounds=self._bounds(xr, yr),
                          kdims=self._dims(), group="Spikes")
        frame = cloud.frame.iloc[self._visible(cloud.x, xr, cloud.x_sorted)]
        agg = self._canvas(xr, yr, w, h).points(frame, "x", "y", agg=ds.count_cat("unit"))
        self.counts = np.asarray(agg.data)
        colors = unit_colors(cloud.unit_ids)
        shaded = tf.shade(agg, color_key=colors, how="eq_hist", min_alpha=80,
                          rescale_discrete_levels=True)
        # sparse clouds: isolated spikes grow to up to 5 x 5 px so they stay visible (display
        # only; counts and selections are per spike)
        rgba = tf.dynspread(shaded, threshold=0.5, max_px=2).data  # uint32, row 0 = y min
        rgba = np.flipud(np.ascontiguousarray(rgba).view(np.uint8).reshape(h, w, 4))
        return hv.RGB(rgba, bounds=self._bounds(xr, yr), kdims=self._dims(), group="Spikes")

    def _image(self, xs, ys, group, xr, yr, w, h):
        """(counts (h, w), Image of the counts, NaN where 0) of the points ``xs``, ``ys``; no
        points: zero counts and a 2 x 2 empty image (datashader skipped)."""
        dim = hv.Dimension("spikes")
        if xs.size == 0:
            empty = np.full((2, 2), np.nan, np.float32)
            return np.zeros((h, w), np.uint32), hv.Image(
                empty, bounds=self._bounds(xr, yr), kdims=self._dims(),
                vdims=[dim.clone(range=(1, 2))], group=group)
        frame = pd.DataFrame({"x": xs, "y": ys}, copy=False)
        agg = self._canvas(xr, yr, w, h).points(frame, "x", "y", agg=ds.count())
        counts = np.asarray(agg.data)
        values = counts.astype(np.float32)
        if 0 < np.count_nonzero(counts) < SPARSE_FRACTION * counts.size:
            # sparse: empty pixels next to a spike show it too (display only; the counts
            # returned stay exact)
            values = np.where(counts > 0, values,
                              ndimage.maximum_filter(values, size=2 * SPREAD_PX + 1))
        values[values == 0] = np.nan
        if not np.isfinite(values).any():
            dim = dim.clone(range=(1, 2))
        return counts, hv.Image(np.flipud(values), bounds=self._bounds(xr, yr),
                                kdims=self._dims(), vdims=[dim], group=group)

    def _highlight_element(self, x_range=None, y_range=None, width=None, height=None,
                           scale=None, token=None):
        xr, yr, w, h = self._grid(x_range, y_range, width, height)
        cloud = self._cloud
        mask = self._selected_mask
        if cloud is None or mask.size != cloud.num_spikes or not mask.any():
            xs = ys = np.zeros(0)
        else:
            xs, ys = cloud.x[mask], cloud.y[mask]
        self.highlight_counts, image = self._image(xs, ys, "Highlight", xr, yr, w, h)
        return image

    def _background_element(self, x_range=None, y_range=None, width=None, height=None,
                            scale=None):
        xr, yr, w, h = self._grid(x_range, y_range, width, height)
        cloud = self._cloud
        xs = ys = np.zeros(0)
        if cloud is not None and cloud.background is not None:
            xs, ys = cloud.background
        self.background_counts, image = self._image(xs, ys, "Background", xr, yr, w, h)
        return image

    def render(self, x_range=None, y_range=None, width=400, height=300) -> hv.Overlay:
        """The three layers for a plot of ``width`` x ``height`` px (sets :attr:`counts`,
        :attr:`highlight_counts`, :attr:`background_counts`) — what the browser is sent."""
        kw = {"x_range": x_range, "y_range": y_range, "width": width, "height": height}
        return self._background_element(**kw) * self._base_element(**kw) * \
            self._highlight_element(**kw)
