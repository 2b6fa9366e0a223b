"""Kernels on the spike vector: ordering by unit, sortedness checks, id lookup.

All functions take and return numpy arrays; spike times are int64 sample indices.
"""

from __future__ import annotations

import numba
import numpy as np

# Ids at most this large are mapped through a dense lookup table (O(n)); larger or negative
# ids fall back to np.unique (a sort).
_DENSE_ID_LIMIT = 50_000_000


@numba.njit(cache=True, nogil=True)
def _first_unsorted(values):
    for i in range(1, values.shape[0]):
        if values[i] < values[i - 1]:
            return i
    return -1


def first_unsorted(values: np.ndarray) -> int:
    """Position of the first element smaller than its predecessor, or -1 if non-decreasing."""
    if values.shape[0] < 2:
        return -1
    return int(_first_unsorted(np.ascontiguousarray(values)))


@numba.njit(cache=True, nogil=True)
def _scatter_by_unit(unit_index, sample_index, offsets, order):
    trains = np.empty(unit_index.shape[0], dtype=np.int64)
    cursor = offsets[:-1].copy()
    for i in range(unit_index.shape[0]):
        u = unit_index[i]
        k = cursor[u]
        order[k] = i
        trains[k] = sample_index[i]
        cursor[u] = k + 1
    return trains


def unit_offsets(unit_index: np.ndarray, num_units: int) -> np.ndarray:
    """Start of each unit's block in the unit-ordered spike list: int64, length num_units + 1."""
    counts = np.bincount(unit_index, minlength=num_units)
    offsets = np.zeros(num_units + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def order_by_unit(unit_index: np.ndarray, sample_index: np.ndarray,
                  offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable counting sort of the spike vector by unit, in O(n).

    Returns ``(order, trains)``: ``order`` are spike-vector positions grouped by unit (time order
    kept within a unit; int32 when it fits, else int64) and ``trains = sample_index[order]``.
    ``offsets`` comes from :func:`unit_offsets`.
    """
    n = unit_index.shape[0]
    order = np.empty(n, dtype=np.int32 if n < np.iinfo(np.int32).max else np.int64)
    trains = _scatter_by_unit(np.ascontiguousarray(unit_index),
                              np.ascontiguousarray(sample_index), offsets, order)
    return order, trains


def ids_to_indices(spike_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map per-spike unit ids to (unit_ids sorted ascending, int32 unit_index per spike).

    Non-negative integer ids are mapped with a dense lookup table in O(n); anything else
    (strings, huge or negative ids) with ``np.unique``.
    """
    if spike_ids.size == 0:
        return np.asarray(spike_ids[:0]), np.zeros(0, dtype=np.int32)
    if np.issubdtype(spike_ids.dtype, np.integer):
        lo, hi = int(spike_ids.min()), int(spike_ids.max())
        if lo >= 0 and hi < _DENSE_ID_LIMIT:
            present = np.bincount(spike_ids, minlength=hi + 1) > 0
            unit_ids = np.flatnonzero(present).astype(spike_ids.dtype)
            lut = np.full(hi + 1, -1, dtype=np.int32)
            lut[unit_ids] = np.arange(unit_ids.size, dtype=np.int32)
            return unit_ids, lut[spike_ids]
    unit_ids, inverse = np.unique(spike_ids, return_inverse=True)
    return unit_ids, inverse.astype(np.int32).reshape(-1)
