"""Unit depth: where on the probe each unit sits, in µm along the probe (y).

The depth of a unit is the y coordinate (µm) of its peak channel in the session's channel
locations, the same frame as ``Session.channel_locations_um``: y = 0 at the tip (the deepest
site), larger y = shallower. It comes from, first that applies:

1. the unit table's ``depth_um`` column (numeric, already in that frame);
2. its ``peak_channel_id`` column (a channel id of the probe, not an index) looked up in the
   session's channel locations;
3. templates in ``Session.results``: per-unit templates directly, or KiloSort templates (one
   per template, not per curated unit) through the ``template_index`` spike property, each unit
   taking the peak channel of the template most of its spikes use.

Unknown depths are NaN. The result is computed once per Session and shared by every view
(cached here, in the model, so that no view depends on another); the cache is keyed by the
identity of its inputs (sorting, channel ids and locations, templates), so replacing any of
them recomputes it.

Pure numpy/pandas: no UI library is imported here.
"""

from __future__ import annotations

import threading
import weakref
from typing import NamedTuple

import numpy as np
import pandas as pd

from .session import Session
from .waveforms import Templates

#: ``unit_table`` column with the depth of each unit (µm, same frame as the channel locations).
DEPTH_COLUMN = "depth_um"
#: ``unit_table`` column with the peak channel of each unit (a channel id of the probe).
PEAK_CHANNEL_COLUMN = "peak_channel_id"
#: ``Sorting.spike_properties`` entry with each spike's KiloSort template (row of Templates).
TEMPLATE_INDEX_PROPERTY = "template_index"
#: ``UnitDepths.source`` when depths come from templates in ``Session.results``.
TEMPLATES_SOURCE = "templates"


class UnitDepths(NamedTuple):
    """Depth (µm, y on the probe) of every unit in unit_index order, and where it came from.

    ``depths_um`` is float64, read-only, NaN where unknown. ``source`` is ``"depth_um"``,
    ``"peak_channel_id"``, ``"templates"``, or ``""`` when no unit's depth is known.
    """

    depths_um: np.ndarray
    source: str


def _key(value):
    """A hashable, type-normalised id: numpy scalars to Python, integral floats to int.

    Columns holding ids next to NaNs are float, so 101.0 and 101 must name the same channel.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float | np.floating) and np.isnan(value))


def _channel_depths_um(session: Session) -> dict | None:
    """{channel id: y position (µm)} for the session's probe, or None without geometry."""
    ids, locations = session.channel_ids, session.channel_locations_um
    if ids is None or locations is None:
        return None
    locations = np.asarray(locations, dtype=np.float64)
    ids = np.asarray(ids).tolist()
    if locations.ndim != 2 or locations.shape[0] != len(ids) or locations.shape[1] < 2:
        return None
    return {_key(c): float(y) for c, y in zip(ids, locations[:, 1], strict=True)}


def _depths_from_peak_channels(peak_channel_ids, channel_depths: dict) -> np.ndarray:
    """Depth of each peak channel id (NaN for a missing id or one not on the probe)."""
    out = np.full(len(peak_channel_ids), np.nan)
    for i, channel in enumerate(peak_channel_ids):
        if _is_missing(channel):
            continue
        try:
            out[i] = channel_depths.get(_key(channel), np.nan)
        except TypeError:  # an unhashable value in the column names no channel
            continue
    return out


def _templates_depths(session: Session, channel_depths: dict) -> np.ndarray | None:
    """Depth of each unit's peak channel from templates in ``session.results``.

    Templates computed per unit (their ``unit_ids`` cover every unit) are used directly;
    KiloSort templates (one per template, not per curated unit) are used through the
    ``template_index`` spike property: each unit takes the template most of its spikes have
    (ties: the lowest template index). Units without spikes get NaN.
    """
    sorting = session.sorting
    units = [_key(u) for u in sorting.unit_ids.tolist()]
    for tpl in (t for t in session.results.values() if isinstance(t, Templates)):
        peaks = tpl.peak_channel_indices()
        channel_ids = np.asarray(tpl.channel_ids).tolist()
        peak_ids = [channel_ids[p] if p >= 0 else None for p in peaks.tolist()]
        position = {_key(u): i for i, u in enumerate(np.asarray(tpl.unit_ids).tolist())}
        if units and all(u in position for u in units):
            return _depths_from_peak_channels([peak_ids[position[u]] for u in units],
                                              channel_depths)
        spike_template = sorting.spike_properties.get(TEMPLATE_INDEX_PROPERTY)
        if spike_template is None or sorting.num_spikes == 0:
            continue
        spike_template = np.asarray(spike_template)
        n_templates = len(peak_ids)
        if spike_template.shape != (sorting.num_spikes,) or spike_template.dtype.kind not in "iu" \
                or spike_template.min() < 0 or spike_template.max() >= n_templates:
            continue
        pair = sorting.unit_index.astype(np.int64) * n_templates + \
            spike_template.astype(np.int64, copy=False)
        counts = np.bincount(pair, minlength=sorting.num_units * n_templates)
        counts = counts.reshape(sorting.num_units, n_templates)
        dominant = counts.argmax(axis=1)
        depths = _depths_from_peak_channels([peak_ids[t] for t in dominant.tolist()],
                                            channel_depths)
        depths[counts.sum(axis=1) == 0] = np.nan
        return depths
    return None


def compute_unit_depths_um(session: Session) -> UnitDepths:
    """``unit_depths_um`` without the cache (a new, writable array every call)."""
    sorting = session.sorting
    table = sorting.unit_table
    n = sorting.num_units
    if DEPTH_COLUMN in table and pd.api.types.is_numeric_dtype(table[DEPTH_COLUMN]) and \
            not pd.api.types.is_bool_dtype(table[DEPTH_COLUMN]):
        depths = table[DEPTH_COLUMN].to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        depths[~np.isfinite(depths)] = np.nan
        if np.isfinite(depths).any():
            return UnitDepths(depths, DEPTH_COLUMN)
    channel_depths = _channel_depths_um(session)
    if channel_depths is None or n == 0:
        return UnitDepths(np.full(n, np.nan), "")
    if PEAK_CHANNEL_COLUMN in table:
        depths = _depths_from_peak_channels(table[PEAK_CHANNEL_COLUMN].tolist(), channel_depths)
        if np.isfinite(depths).any():
            return UnitDepths(depths, PEAK_CHANNEL_COLUMN)
    depths = _templates_depths(session, channel_depths)
    if depths is not None and np.isfinite(depths).any():
        return UnitDepths(depths, TEMPLATES_SOURCE)
    return UnitDepths(np.full(n, np.nan), "")


# -- the per-Session cache ----------------------------------------------------------------------
_LOCK = threading.Lock()
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Session -> (inputs, depths)


def _inputs(session: Session) -> tuple:
    """What the depths depend on, compared by identity (the model's objects are immutable)."""
    templates = tuple(t for t in session.results.values() if isinstance(t, Templates))
    return (session.sorting, session.sorting.unit_table, session.channel_ids,
            session.channel_locations_um, *templates)


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def unit_depths_um(session: Session) -> UnitDepths:
    """Depth (µm, y on the probe: 0 = tip, larger = shallower) of every unit, unit_index order.

    Returns ``UnitDepths(depths_um, source)`` (a named tuple: ``depths, source =
    unit_depths_um(session)`` works): float64 depths, NaN where unknown, and the source used —
    ``"depth_um"``, ``"peak_channel_id"``, ``"templates"``, or ``""`` when no depth is known at
    all. Computed once per Session and shared: the array is read-only.
    """
    inputs = _inputs(session)
    with _LOCK:
        cached = _CACHE.get(session)
        if cached is not None and _same(cached[0], inputs):
            return cached[1]
    result = compute_unit_depths_um(session)
    result.depths_um.flags.writeable = False
    with _LOCK:
        cached = _CACHE.get(session)
        if cached is not None and _same(cached[0], inputs):
            return cached[1]  # another thread won the race: share its array
        _CACHE[session] = (inputs, result)
    return result
