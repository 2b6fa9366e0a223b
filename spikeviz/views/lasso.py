"""Exact point-in-polygon and point-in-box tests for lasso and box selections of spikes.

A lasso drawn over a datashaded scatter must select every spike inside it, not only the ones
that made it into a drawn subsample, so the test runs on the server over the full arrays. The
numba kernel uses the even-odd (crossing number) rule, the same rule as matplotlib's
``Path.contains_points`` for simple polygons, with a bounding-box pre-check so points far from
the lasso cost two comparisons. A point exactly on an edge may fall either side (as in any
floating-point polygon test); random data almost never puts one there.

:class:`LassoScatter` is the view both the amplitude and the feature views build on: the
selected units' spikes datashaded by unit (one colour each, ``views/colors.py``), a grey
background layer, the selected spikes drawn on top, and the lasso/box wired to
``Selection.spike_indices``.
"""

from __future__ import annotations

import html
import weakref
from dataclasses import dataclass
from functools import cached_property

import datashader as ds
import holoviews as hv
import numba
import numpy as np
import pandas as pd
import panel as pn
import param
from holoviews.operation.datashader import rasterize, shade

from ..errors import InputError
from .base import View
from .colors import unit_colors


@numba.njit(cache=True, nogil=True)
def _edge_strips(px, py, ymin, height, num_strips):  # pragma: no cover - compiled
    """CSR lists of the polygon edges crossing each of ``num_strips`` horizontal strips."""
    m = px.shape[0]
    counts = np.zeros(num_strips + 1, dtype=np.int64)
    lo = np.empty(m, dtype=np.int64)
    hi = np.empty(m, dtype=np.int64)
    j = m - 1
    for k in range(m):
        a = min(py[j], py[k])
        b = max(py[j], py[k])
        lo[k] = min(max(int((a - ymin) / height * num_strips), 0), num_strips - 1)
        hi[k] = min(max(int((b - ymin) / height * num_strips), 0), num_strips - 1)
        for s in range(lo[k], hi[k] + 1):
            counts[s + 1] += 1
        j = k
    for s in range(num_strips):
        counts[s + 1] += counts[s]
    fill = counts[:-1].copy()
    edges = np.empty(counts[-1], dtype=np.int64)
    for k in range(m):
        for s in range(lo[k], hi[k] + 1):
            edges[fill[s]] = k
            fill[s] += 1
    return counts, edges


@numba.njit(cache=True, nogil=True)
def _inside_polygon(x, y, px, py, out):  # pragma: no cover - compiled
    n = x.shape[0]
    m = px.shape[0]
    xmin, xmax = px.min(), px.max()
    ymin, ymax = py.min(), py.max()
    height = ymax - ymin
    if not height > 0:
        return
    num_strips = max(1, min(4 * m, 4096))
    starts, edges = _edge_strips(px, py, ymin, height, num_strips)
    for i in range(n):
        xi = x[i]
        yi = y[i]
        if not (xmin <= xi <= xmax and ymin <= yi <= ymax):
            continue
        s = min(int((yi - ymin) / height * num_strips), num_strips - 1)
        inside = False
        for e in range(starts[s], starts[s + 1]):
            k = edges[e]
            j = k - 1 if k > 0 else m - 1
            yk = py[k]
            yj = py[j]
            if (yk > yi) != (yj > yi):
                # x of the edge (j, k) at height yi
                xc = px[k] + (yi - yk) * (px[j] - px[k]) / (yj - yk)
                if xi < xc:
                    inside = not inside
        out[i] = inside


def _polygon(polygon) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) float64 of a polygon given as (n, 2) vertices or a pair of sequences."""
    if isinstance(polygon, dict):
        px, py = polygon.get("xs"), polygon.get("ys")
    else:
        arr = np.asarray(polygon, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == 2:
            px, py = arr[:, 0], arr[:, 1]
        elif arr.ndim == 2 and arr.shape[0] == 2:
            px, py = arr[0], arr[1]
        else:
            raise InputError(f"a lasso polygon is (n, 2) vertices, got shape {arr.shape}",
                             field="geometry")
    px = np.ascontiguousarray(px, dtype=np.float64).ravel()
    py = np.ascontiguousarray(py, dtype=np.float64).ravel()
    if px.shape != py.shape:
        raise InputError("a lasso polygon needs as many x as y coordinates", field="geometry")
    keep = np.isfinite(px) & np.isfinite(py)
    return px[keep], py[keep]


def points_in_polygon(x, y, polygon) -> np.ndarray:
    """Boolean mask: which points (x[i], y[i]) lie inside ``polygon`` (even-odd rule).

    ``polygon``: (n, 2) vertices (closed implicitly) or a dict with ``xs`` and ``ys``. Fewer
    than 3 vertices enclose nothing. NaN points are never inside.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"x and y must be 1-D of one length, got {x.shape} and {y.shape}",
                         field="points")
    px, py = _polygon(polygon)
    out = np.zeros(x.shape[0], dtype=np.bool_)
    if px.size < 3 or x.size == 0:
        return out
    _inside_polygon(x, y, px, py, out)
    return out


def points_in_box(x, y, bounds) -> np.ndarray:
    """Boolean mask of the points inside the closed box ``bounds = (x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = (float(v) for v in bounds)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    x = np.asarray(x)
    y = np.asarray(y)
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def sorted_unique(positions) -> np.ndarray:
    """Positions as a sorted int64 array without duplicates (no hashing: input that is
    already sorted and unique, as a mask of sorted positions gives, is returned as is)."""
    a = np.asarray(positions, dtype=np.int64).ravel()
    if a.size > 1 and not (a[1:] > a[:-1]).all():
        a = np.sort(a)
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


def combine(current, chosen, mode: str = "replace") -> np.ndarray | None:
    """A new spike selection (sorted unique int64 positions, or None for none) from the
    ``current`` one and the ``chosen`` positions: "replace", "add" (union) or "subtract"."""
    if mode not in ("replace", "add", "subtract"):
        raise InputError(f"selection mode must be replace, add or subtract, got {mode!r}",
                         field="mode")
    chosen = sorted_unique(chosen)
    if mode == "replace" or current is None:
        result = chosen if mode != "subtract" else chosen[:0]
    else:
        current = sorted_unique(current)
        if mode == "add":
            result = sorted_unique(np.concatenate([current, chosen]))
        else:
            result = current[~member_mask(current, chosen)]
    return result if result.size else None


def member_mask(positions: np.ndarray, selected) -> np.ndarray:
    """Which of the sorted ``positions`` are in the sorted ``selected`` positions."""
    positions = np.asarray(positions)
    if selected is None or positions.size == 0:
        return np.zeros(positions.size, dtype=bool)
    selected = np.asarray(selected)
    if selected.size == 0:
        return np.zeros(positions.size, dtype=bool)
    at = np.searchsorted(selected, positions)
    at[at == selected.size] = 0
    return selected[at] == positions


def warm_up() -> None:
    """Compile the polygon kernel and datashader's categorical count (server start), so the
    first lasso and the first draw are not slow."""
    points_in_polygon(np.zeros(2), np.zeros(2), [(0, 0), (1, 0), (0, 1)])
    frame = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0],
                          "unit": pd.Categorical.from_codes([0, 1], categories=[0, 1])})
    ds.Canvas(plot_width=4, plot_height=4, x_range=(0, 1), y_range=(0, 1)).points(
        frame, "x", "y", agg=ds.count_cat("unit"))


# -- spikes drawn by a scatter view ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SpikeCloud:
    """Every spike a scatter view draws and can select.

    ``positions``: int64, ascending, positions in the curated sorting's spike vector;
    ``x``/``y``: float64 coordinates (data units of the view); ``codes``: int32, index of each
    spike's unit in ``unit_ids``; ``x_sorted``: whether x ascends with position (time axes).
    ``background``: (x, y) of spikes drawn in grey behind, never selectable, or None.
    """

    positions: np.ndarray
    x: np.ndarray
    y: np.ndarray
    codes: np.ndarray
    unit_ids: list
    x_sorted: bool = False
    background: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def num_spikes(self) -> int:
        return int(self.positions.size)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """x, y and ``unit`` (categorical code) — what datashader aggregates."""
        codes = pd.Categorical.from_codes(self.codes, categories=range(len(self.unit_ids)))
        return pd.DataFrame({"x": self.x, "y": self.y, "unit": codes}, copy=False)

    def data_range(self, axis: str) -> tuple[float, float]:
        """(lo, hi) of ``axis`` over the spikes (and background), padded by 3%."""
        values = [getattr(self, axis)]
        if self.background is not None:
            values.append(self.background[0 if axis == "x" else 1])
        values = [v[np.isfinite(v)] for v in values if v.size]
        values = [v for v in values if v.size]
        if not values:
            return (0.0, 1.0)
        lo = float(min(v.min() for v in values))
        hi = float(max(v.max() for v in values))
        pad = 0.03 * (hi - lo) if hi > lo else max(abs(lo), 1.0) * 0.5
        return (lo - pad, hi + pad)


def make_cloud(sorting, unit_ids, positions, x, y, *, x_sorted=False,
               background=None) -> SpikeCloud:
    """A SpikeCloud of the spikes at ``positions`` (any order) of ``sorting`` with their
    coordinates; the units come from the sorting and are coded by their place in
    ``unit_ids``."""
    positions = np.asarray(positions, dtype=np.int64)
    order = None if positions.size < 2 or (np.diff(positions) > 0).all() else \
        np.argsort(positions, kind="stable")
    if order is not None:
        positions, x, y = positions[order], np.asarray(x)[order], np.asarray(y)[order]
    lut = np.full(sorting.num_units, -1, dtype=np.int32)
    lut[[sorting.unit_index_of(u) for u in unit_ids]] = np.arange(len(unit_ids))
    codes = lut[sorting.unit_index[positions]] if positions.size else np.zeros(0, np.int32)
    if (codes < 0).any():
        raise InputError("spikes of units outside the shown ones", field="positions")
    return SpikeCloud(positions, np.asarray(x, dtype=np.float64), np.asarray(y, np.float64),
                      codes, list(unit_ids), x_sorted, background)


# -- the shared view ------------------------------------------------------------------------------
def _ramp(start: str, end: str, n: int = 64) -> list[str]:
    a = np.array([int(start[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    b = np.array([int(end[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    steps = np.rint(a + (b - a) * np.linspace(0.0, 1.0, n)[:, None]).astype(int)
    return [f"#{r:02x}{g:02x}{b_:02x}" for r, g, b_ in steps]


HIGHLIGHT_CMAP = _ramp("#303030", "#000000")
BACKGROUND_CMAP = _ramp("#dddddd", "#8a8a8a")
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
        self._readout = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self._clear = pn.widgets.Button(label="Clear spike selection", color="light",
                                        width=170)
        self._clear.on_click(lambda event: self.clear_selection())
        self._mode = pn.widgets.RadioButtonGroup.from_param(self.param.mode, width=220)
        self._pane = pn.pane.HoloViews(self.plot, sizing_mode="stretch_both",
                                       min_height=self.min_height, margin=(0, 5))
        bar = pn.Row(*self.controls(), self._mode, self._clear, sizing_mode="stretch_width")
        self._layout = pn.Column(self._readout, bar, self._pane, sizing_mode="stretch_both",
                                 min_height=self.min_height + 80)
        self._watch(self.selection, "unit_ids", lambda *e: self.refresh())
        self._watch(self.curation, "sorting", lambda *e: self.refresh())
        self._watch(self.selection, "spike_indices", lambda *e: self._on_spikes())
        if self.active:
            self.refresh()
        else:
            self._stale = True

    def __panel__(self):
        return self._layout

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
        units = list(self.selection.unit_ids)
        result = self.load(units) if units else "Select one or more units."
        if isinstance(result, str):
            self._cloud, self._message = None, result
        else:
            self._cloud, self._message = result, ""
        self._update_selected()
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

    def _count(self, frame, x_range, y_range, w, h, aggregator):
        points = hv.Points(frame, kdims=self._dims(), vdims=list(frame.columns[2:]))
        return rasterize(points, dynamic=False, aggregator=aggregator, x_range=x_range,
                         y_range=y_range, width=w, height=h, pixel_ratio=1)

    def _base_element(self, x_range=None, y_range=None, width=None, height=None, scale=None):
        xr, yr, w, h = self._grid(x_range, y_range, width, height)
        cloud = self._cloud
        empty = hv.RGB((np.linspace(*xr, 2), np.linspace(*yr, 2), np.zeros((2, 2, 4), np.uint8)),
                       kdims=self._dims(), group="Spikes")
        if cloud is None or cloud.num_spikes == 0:
            self.counts = np.zeros((h, w, 0), dtype=np.uint32)
            return empty
        frame = cloud.frame.iloc[self._visible(cloud.x, xr, cloud.x_sorted)]
        agg = self._count(frame, xr, yr, w, h, ds.count_cat("unit"))
        self.counts = self._stack(agg)
        colors = unit_colors(cloud.unit_ids)
        return shade(agg, color_key=colors, min_alpha=80).relabel(group="Spikes")

    @staticmethod
    def _stack(agg) -> np.ndarray:
        """(height, width, units) counts of a categorical aggregate (ImageStack)."""
        data = agg.data
        if hasattr(data, "data_vars"):  # a Dataset: one variable per unit
            return np.stack([np.asarray(data[v.name]) for v in agg.vdims], axis=-1)
        return np.asarray(data)

    def _image(self, xs, ys, group, xr, yr, w, h):
        frame = pd.DataFrame({"x": xs, "y": ys}, copy=False)
        image = self._count(frame, xr, yr, w, h, ds.count())
        counts = image.data[image.vdims[0].name].to_numpy()
        values = counts.astype(np.float32)
        values[values == 0] = np.nan
        xs_c = image.data.coords["x"].to_numpy()
        ys_c = image.data.coords["y"].to_numpy()
        dim = hv.Dimension("spikes")
        if not np.isfinite(values).any():
            dim = dim.clone(range=(1, 2))
        return counts, hv.Image((xs_c, ys_c, values), kdims=self._dims(), vdims=[dim],
                                group=group)

    def _highlight_element(self, x_range=None, y_range=None, width=None, height=None,
                           scale=None, token=None):
        xr, yr, w, h = self._grid(x_range, y_range, width, height)
        cloud = self._cloud
        mask = self._selected_mask
        if cloud is None or mask.size != cloud.num_spikes:
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
