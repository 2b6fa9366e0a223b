"""The spikes a scatter view draws, and exact point-in-polygon / point-in-box selection over them.

A lasso drawn over a datashaded scatter must select every spike inside it, not only the ones
that made it into a drawn subsample, so the test runs on the server over the full arrays. The
numba kernel uses the even-odd (crossing number) rule, the same rule as matplotlib's
``Path.contains_points`` for simple polygons, with a bounding-box pre-check so points far from
the lasso cost two comparisons. A point exactly on an edge may fall either side (as in any
floating-point polygon test); random data almost never puts one there.

:class:`SpikeCloud` holds the spikes (positions in the curated spike vector, coordinates, unit
codes) that :class:`spikeviz.views.lasso.LassoScatter` draws and selects. No plotting here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import datashader as ds
import numba
import numpy as np
import pandas as pd

from ..errors import InputError


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
