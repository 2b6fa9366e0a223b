"""The arrays behind a raster, shared read-only by every browser session of one server.

Spike times in seconds (float64, computed once per spike vector from the int64 samples, shared
by every curated sorting with the same spike times) and the row of every spike (per sorting and
row order). No Panel here: :mod:`spikeviz.views.raster` draws them.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model.curated import curated_analysis
from ..model.session import Session
from ..model.sorting import Sorting

#: ``order_by`` names with their unit_frame column; any other numeric column is its own name.
ORDER_COLUMNS = {"depth": "depth_um", "unit id": "unit_id", "firing rate": "firing_rate_hz",
                 "amplitude": "amplitude_uv", "spikes": "num_spikes"}
_NOT_ORDERS = {"peak_channel_id"}


def order_choices(frame: pd.DataFrame) -> list[str]:
    """``order_by`` values for a unit frame: the named orders, then every other numeric
    column (metrics)."""
    named = set(ORDER_COLUMNS.values())
    extra = [str(c) for c in frame.columns if str(c) not in named | _NOT_ORDERS and
             pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    return list(ORDER_COLUMNS) + extra


@dataclass(frozen=True, eq=False)
class RasterData:
    """Read-only arrays behind a raster of one Sorting in one row order.

    ``frame`` has one row per spike in spike-vector (time) order: ``time_s`` (float64 seconds,
    computed once from the int64 sample indices) and ``row`` (float32, the unit's row; row 0 is
    at the bottom). ``row_unit_ids[r]`` is the unit id drawn in row r. ``values`` is the sort
    key per unit_index (NaN unknown), ``depths_um`` the depth per unit_index (NaN unknown).
    """

    sorting: Sorting
    frame: pd.DataFrame
    time_s: np.ndarray
    row_of_unit: np.ndarray  # int64 row of each unit_index
    row_unit_ids: list
    depths_um: np.ndarray
    values: np.ndarray
    order: str  # the order in effect: the requested one, or "unit id" when it is unknown
    requested: str

    @property
    def num_rows(self) -> int:
        return len(self.row_unit_ids)

    @property
    def duration_s(self) -> float:
        return float(self.sorting.duration_s)


_LOCK = threading.Lock()
_TIMES: dict = {}  # (buffer address, size) -> (weakref to a sample_index array, time_s)
_DATA: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Sorting -> {order: data}


def spike_times_s(sorting: Sorting) -> np.ndarray:
    """Every spike's time in seconds (float64, read-only); computed once per spike vector and
    shared by the curated sortings that keep it (label, merge, split do)."""
    samples = sorting.sample_index
    key = (samples.__array_interface__["data"][0], samples.size,
           float(sorting.sampling_frequency))
    with _LOCK:
        for dead in [k for k, (ref, _) in _TIMES.items() if ref() is None]:
            del _TIMES[dead]
        hit = _TIMES.get(key)
        if hit is not None:
            return hit[1]
    times = samples / sorting.sampling_frequency
    times.flags.writeable = False
    owner = samples.base if samples.base is not None else samples
    try:
        ref = weakref.ref(owner)
    except TypeError:  # e.g. a memory map: keep it as long as this array lives
        ref = weakref.ref(samples)
    with _LOCK:
        _TIMES[key] = (ref, times)
    return times


def unit_frame_of(session: Session, curation) -> pd.DataFrame:
    return curated_analysis(session, curation).unit_frame()


def raster_data(session: Session, order_by: str = "depth", curation=None,
                frame: pd.DataFrame | None = None) -> RasterData:
    """RasterData of ``curation.sorting`` (default ``session.curation``) ordered by
    ``order_by`` (see :func:`order_choices`); built once per sorting and order, then shared.

    ``frame``: the curated unit frame (indexed by unit id) when the caller has it already.
    Rebuilt when the sort keys of that sorting changed (e.g. depths computed later).
    """
    curation = session.curation if curation is None else curation
    sorting = curation.sorting
    if frame is None:
        frame = unit_frame_of(session, curation)
    ids = pd.Index(sorting.unit_ids, name="unit_id")
    column = ORDER_COLUMNS.get(order_by, order_by)
    n = sorting.num_units
    if column == "unit_id":
        values = np.full(n, np.nan)
    elif column in frame:
        values = pd.to_numeric(frame[column].reindex(ids), errors="coerce").to_numpy(
            dtype=np.float64)
    else:
        raise ValueError(f"no column {column!r} to order the raster by")
    depths = frame["depth_um"].reindex(ids).to_numpy(dtype=np.float64) \
        if "depth_um" in frame else np.full(n, np.nan)
    with _LOCK:
        data = _DATA.get(sorting, {}).get(order_by)
    if data is not None and np.array_equal(data.values, values, equal_nan=True) and \
            np.array_equal(data.depths_um, depths, equal_nan=True):
        return data
    time_s = spike_times_s(sorting)
    known = np.isfinite(values)
    if known.any():
        # ascending from the bottom (row 0), unknown on top; ties by unit order
        order = np.lexsort((np.arange(n), np.where(known, values, np.inf), ~known))
        order_name = order_by
    else:
        order = np.argsort(sorting.unit_ids, kind="stable")
        order_name = "unit id"
    row_of_unit = np.empty(n, dtype=np.int64)
    row_of_unit[order] = np.arange(n)
    rows = row_of_unit.astype(np.float32)[sorting.unit_index]
    spikes = pd.DataFrame({"time_s": time_s, "row": rows}, copy=False)
    unit_ids = sorting.unit_ids.tolist()
    values.flags.writeable = False
    depths.flags.writeable = False
    data = RasterData(sorting=sorting, frame=spikes, time_s=time_s, row_of_unit=row_of_unit,
                      row_unit_ids=[unit_ids[i] for i in order.tolist()], depths_um=depths,
                      values=values, order=order_name, requested=order_by)
    with _LOCK:
        _DATA.setdefault(sorting, {})[order_by] = data
    return data
