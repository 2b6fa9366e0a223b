"""The NWB Units table, built column by column from whole arrays (no ``add_unit`` loop).

Imported only by :func:`spikeviz.io.nwb_write.write_nwb` (hdmf/pynwb at module level).

Conventions:

- ``spike_times``: seconds, float64, ``sample_index / sampling_frequency`` in unit order;
  ``round(spike_times * sampling_frequency)`` gives back the sample indices exactly: division
  and product are each correctly rounded (relative error <= 2**-53 each), so the error stays
  below half a sample while ``sample_index < 2**51`` (~2,000 years at 30 kHz).
  ``resolution`` = 1 / sampling_frequency.
- Ids: non-negative integer unit ids are the table's ``id``; any other ids (strings,
  negative integers) are written as strings in a ``unit_name`` column with ``id`` 0..n-1
  (SpikeInterface's NWB reader takes ``unit_name`` as the unit ids when present). When the
  ids are strings, the column's description ends with :data:`STRING_IDS_MARK`, so that our
  reader keeps "12" a string (unmarked canonical-integer names, as SpikeInterface writes for
  integer ids, are read as integers).
- ``obs_intervals``: the unit table's ``obs_intervals_s`` (per unit a (k, 2) array of
  [start, stop] seconds, as our reader gives it) when present; units where it is missing, and
  every unit without that column, get [[0, duration_s]] when the recording length is known.
- ``electrodes`` (a ragged region of the electrodes table): with templates, the channels of
  each unit's ``waveform_mean`` third axis (same order); without templates, the unit table's
  ``electrodes`` column (per unit the channel ids, as our reader gives it) mapped to
  electrode rows.
- ``electrode_group``: the unit table's ``electrode_group`` (group names, as our reader gives
  them) as references to the file's electrode groups, when every unit names one of them.
- With templates in µV: ``waveform_mean``/``waveform_sd`` in volts, (units, samples, K):
  dense templates over every channel of the templates (K channels, the same electrodes for
  every unit); sparse templates without padding keep their per-unit channels (each unit lists
  its K electrodes, as NWB allows); padded sparse templates are written dense, zero outside a
  unit's channels (as KiloSort/Phy templates are). ``waveform_rate`` / the time before the
  peak are written only when the templates' sampling rate is known.
- The curation label is the ``quality`` column (good / mua / noise / unsorted): the name
  SpikeInterface gives the curation label it reads from Phy, and the name the Allen
  Institute's NWB files use. Every other unit-table column is a described column; columns
  that cannot be written as one scalar per unit are left out with a warning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hdmf.common import DynamicTableRegion, ElementIdentifiers, VectorData, VectorIndex

from ..errors import InputError
from ..model import Sorting
from .nwb_read_tables import STRING_IDS_MARK

LABEL_COLUMN = "quality"
# Unit-table columns the writer turns into NWB's own Units columns (no warning for them).
HANDLED = ("obs_intervals_s", "electrodes", "electrode_group")

# Units columns with a meaning in the NWB schema, or used by the writer itself.
RESERVED = ("id", "spike_times", "spike_times_index", "obs_intervals", "obs_intervals_index",
            "electrodes", "electrodes_index", "electrode_group", "waveform_mean",
            "waveform_sd", "waveforms", "waveforms_index", "waveforms_index_index",
            "unit_name", LABEL_COLUMN)

DESCRIPTIONS = {
    LABEL_COLUMN: "Curation label of the unit: good (single unit), mua (multi-unit activity), "
                  "noise (not neural) or unsorted (not curated).",
    "num_spikes": "Number of spikes of the unit (count).",
    "firing_rate": "Mean firing rate over the recording, in Hz (spikes per second).",
    "presence_ratio": "Fraction (0-1) of 60 s bins of the recording in which the unit fires.",
    "isi_violations_ratio": "ISI violation ratio (Hill et al. 2011, SpikeInterface "
                            "definition): rate of inter-spike intervals below 1.5 ms "
                            "relative to the rate expected by chance (dimensionless).",
    "isi_violations_count": "Number of inter-spike intervals below 1.5 ms (count).",
    "firing_range": "Range between the 5th and 95th percentiles of the firing rate in 5 s "
                    "bins, in Hz.",
    "snr": "Signal-to-noise ratio: absolute template value at the peak channel divided by "
           "that channel's noise level (dimensionless).",
    "amplitude_cutoff": "Estimated fraction (0-1) of the unit's spikes missing below the "
                        "detection threshold (Hill et al. 2011).",
    "amplitude_median": "Median spike amplitude at the peak channel, in microvolts (signed).",
    "isolation_distance": "Mahalanobis isolation distance in principal-component space "
                          "(dimensionless).",
    "l_ratio": "L-ratio of the unit's cluster in principal-component space (dimensionless).",
    "d_prime": "LDA d-prime between the unit and the other spikes in principal-component "
               "space (dimensionless).",
}


def _index_dtype(total: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if total <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def spike_times_s(sorting: Sorting, t0_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(flat spike times in seconds in unit order, cumulative end index per unit); ``t0_s``:
    the time of sample 0 in the file's clock (seconds from session_start_time)."""
    fs = float(sorting.sampling_frequency)
    counts = sorting.spike_counts().to_numpy()
    ends = np.cumsum(counts, dtype=np.int64)
    times = np.empty(int(ends[-1]) if ends.size else 0, dtype=np.float64)
    start = 0
    for uid, end in zip(sorting.unit_ids.tolist(), ends.tolist(), strict=True):
        if end > start:
            np.divide(sorting.spike_train(uid), fs, out=times[start:end])
        start = end
    if t0_s:
        times += t0_s
    return times, ends


def column_values(values: pd.Series) -> np.ndarray | list | None:
    """One scalar per unit in an HDF5-friendly dtype, or None when it cannot be written."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        if values.isna().any():
            return values.astype("float64").to_numpy()  # NaN where missing, 1.0/0.0 else
        return values.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(dtype):
        if values.isna().any():
            return values.astype("float64").to_numpy()
        return values.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) or \
            pd.api.types.is_object_dtype(dtype):
        items = values.astype(object).tolist()
        if all(isinstance(v, str) or v is None or (isinstance(v, float) and np.isnan(v))
               or v is pd.NA for v in items):
            return ["" if not isinstance(v, str) else v for v in items]
        if all(isinstance(v, bool | np.bool_) for v in items):
            return np.asarray(items, dtype=bool)
        if all(isinstance(v, int | float | np.integer | np.floating)
               and not isinstance(v, bool | np.bool_) for v in items):
            return np.asarray(items, dtype=np.float64)
    return None


def unit_columns(table: pd.DataFrame, format_name: str = "") -> list:
    """Described ``VectorData`` for the label and every writable unit-table column (the
    columns in :data:`HANDLED` are written by :func:`build_units` itself)."""
    columns, dropped, renamed = [], [], []
    labels = table["label"].fillna("unsorted").astype(str) if "label" in table else None
    taken = {str(c) for c in table.columns}
    for name in table.columns:
        if name == "label" or name in HANDLED:
            continue
        key = str(name)
        if key in RESERVED or "/" in key or not key:
            dropped.append((key, "its name is reserved by NWB or not a valid column name"))
            continue
        if key.endswith("_index"):  # readers take "<x>_index" for the index of a column x
            new = key[:-len("_index")] + "_idx"
            if new in taken:
                dropped.append((key, "a name ending in '_index' is read as a column index"))
                continue
            renamed.append((key, new))
            key = new
        data = column_values(table[name])
        if data is None:
            dropped.append((key, f"values of dtype {table[name].dtype} are not one number, "
                                 f"boolean or string per unit"))
            continue
        description = DESCRIPTIONS.get(key) or (
            f"Unit property {key!r} of the source" + (f" ({format_name})" if format_name else "")
            + "; its unit of measurement was not recorded.")
        columns.append(VectorData(name=key, description=description, data=data))
    if labels is not None:
        columns.insert(0, VectorData(name=LABEL_COLUMN, description=DESCRIPTIONS[LABEL_COLUMN],
                                     data=labels.tolist()))
    if renamed:
        warnings.warn("NWB export: unit columns renamed (readers take a name ending in "
                      "'_index' for the index of a ragged column): " + ", ".join(
                          f"{a!r} -> {b!r}" for a, b in renamed), UserWarning, stacklevel=3)
    if dropped:
        warnings.warn("NWB export: unit columns left out: " + "; ".join(
            f"{n!r} ({why})" for n, why in dropped), UserWarning, stacklevel=3)
    return columns


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _ends(pieces: list[np.ndarray]) -> np.ndarray:
    """Cumulative end offset of each piece (int64)."""
    return np.cumsum([len(p) for p in pieces], dtype=np.int64).reshape(len(pieces))


def obs_intervals(table: pd.DataFrame, num_samples: int | None,
                  sampling_frequency: float,
                  t0_s: float = 0.0) -> tuple[np.ndarray, np.ndarray] | None:
    """(flat (m, 2) float64 [start, stop] seconds, cumulative end per unit) for the
    ``obs_intervals`` column, or None when nothing is known (see the module docstring).
    InputError when an ``obs_intervals_s`` value is not a (k, 2) array of finite seconds with
    start <= stop."""
    default = None
    if num_samples is not None:
        default = np.array([[t0_s, t0_s + num_samples / float(sampling_frequency)]])
    if "obs_intervals_s" not in table:
        if default is None:
            return None
        values = [None] * len(table)
    else:
        values = table["obs_intervals_s"].tolist()
    pieces = []
    for unit_id, value in zip(table.index.tolist(), values, strict=True):
        if _missing(value):
            pieces.append(default if default is not None else np.zeros((0, 2)))
            continue
        try:
            intervals = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            intervals = None
        if intervals is not None and intervals.size == 0:
            intervals = intervals.reshape(0, 2)
        elif intervals is not None and intervals.shape == (2,):
            intervals = intervals[None]
        if intervals is None or intervals.ndim != 2 or intervals.shape[1] != 2 or \
                not np.isfinite(intervals).all() or (intervals[:, 1] < intervals[:, 0]).any():
            raise InputError(f"unit {unit_id!r}: expected a (k, 2) array of [start, stop] "
                             f"times in seconds (finite, start <= stop), got {value!r}",
                             field="unit_table.obs_intervals_s")
        pieces.append(intervals)
    flat = np.concatenate(pieces) if pieces else np.zeros((0, 2))
    return flat.astype(np.float64), _ends(pieces)


def unit_electrodes(table: pd.DataFrame, channel_ids) -> tuple[np.ndarray, np.ndarray] | None:
    """(flat electrode rows, cumulative end per unit) from the unit table's ``electrodes``
    column (per unit the channel ids: an array, a single id, or missing = none), or None with a
    warning when they cannot be written (no channels, unknown channel ids)."""
    if "electrodes" not in table:
        return None
    why = None
    if channel_ids is None:
        why = "the session has no channels (no electrodes table is written)"
    else:
        known = pd.Index(np.asarray(channel_ids))
        pieces, unknown = [], []
        for value in table["electrodes"].tolist():
            if np.ndim(value) == 0 and _missing(value):
                pieces.append(np.zeros(0, np.int64))
                continue
            ids = np.atleast_1d(np.asarray(value)).ravel()
            try:
                rows = known.get_indexer(ids) if ids.size else np.zeros(0, np.int64)
            except (TypeError, ValueError):
                rows = np.full(ids.size, -1)
            unknown += ids[rows < 0].tolist()
            pieces.append(rows.astype(np.int64))
        if unknown:
            why = f"channel ids {sorted(set(map(str, unknown)))[:5]} are not the session's"
    if why is not None:
        warnings.warn(f"NWB export: unit column 'electrodes' left out: {why}", UserWarning,
                      stacklevel=3)
        return None
    flat = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    return flat, _ends(pieces)


def unit_groups(table: pd.DataFrame, groups: list[str] | None) -> list[str] | None:
    """The unit table's ``electrode_group`` names when every unit names one of ``groups`` (the
    file's electrode groups), else None with a warning."""
    if "electrode_group" not in table:
        return None
    names = table["electrode_group"].tolist()
    why = None
    if groups is None:
        why = "the session has no channels (no electrode groups are written)"
    elif any(not isinstance(n, str) for n in names):
        why = "some units have no group name"
    elif set(names) - set(groups):
        why = (f"groups {sorted(set(names) - set(groups))[:5]} are not the channels' groups "
               f"{sorted(set(groups))[:5]}")
    if why is not None:
        warnings.warn(f"NWB export: unit column 'electrode_group' left out: {why}",
                      UserWarning, stacklevel=3)
        return None
    return names


def build_units(sorting: Sorting, table: pd.DataFrame, data_io, templates=None,
                electrode_rows: np.ndarray | None = None, electrodes_table=None,
                format_name: str = "", intervals=None, electrodes=None,
                groups: list[str] | None = None, group_objects: dict | None = None,
                t0_s: float = 0.0):
    """The pynwb ``Units`` table for ``sorting`` with the columns of ``table``.

    ``templates`` (spikeviz Templates in µV, rows in the sorting's unit order, dense over their
    K channels) and ``electrode_rows`` (electrodes-table rows of those channels: (K,) for every
    unit, or (units, K) per unit) add waveform_mean / waveform_sd and electrodes.
    ``intervals`` / ``electrodes``: (flat, ends) from :func:`obs_intervals` /
    :func:`unit_electrodes` (the templates' electrodes win). ``groups``: per unit the name of
    its group in ``group_objects`` (the file's ElectrodeGroups, by name), from
    :func:`unit_groups`. ``data_io(array)`` wraps large arrays with compression. ``t0_s``:
    the time of sample 0 in seconds from session_start_time (spike times are
    ``t0_s + sample / fs``).
    """
    from pynwb.misc import Units

    fs = float(sorting.sampling_frequency)
    n = sorting.num_units
    ids = np.asarray(sorting.unit_ids)
    integer_ids = ids.dtype.kind in "iu" and (ids.size == 0 or int(ids.min()) >= 0)
    columns = []
    times, ends = spike_times_s(sorting, t0_s)
    spike_times = VectorData(name="spike_times", data=data_io(times),
                             description="Spike times of each unit, in seconds from the start "
                                         "of the recording (sample index / sampling rate).")
    columns += [spike_times, VectorIndex(name="spike_times_index", target=spike_times,
                                         data=ends.astype(_index_dtype(times.size)))]
    if intervals is not None:
        flat, bounds = intervals
        column = VectorData(name="obs_intervals", data=flat,
                            description="Observation intervals of each unit, [start, stop] in "
                                        "seconds (the whole recording unless the source said "
                                        "otherwise).")
        columns += [column, VectorIndex(name="obs_intervals_index", target=column,
                                        data=bounds.astype(_index_dtype(len(flat))))]
    kwargs = {}
    description = "Electrodes of each unit, as given by the source."
    if templates is not None:
        rows = np.asarray(electrode_rows, dtype=np.int64)
        rows = np.broadcast_to(rows, (n, rows.shape[-1]))
        electrodes = rows.ravel(), np.arange(1, n + 1, dtype=np.int64) * rows.shape[1]
        description = ("Electrodes of each unit's waveform_mean / waveform_sd (third axis, "
                       "same order).")
        columns.append(VectorData(
            name="waveform_mean", data=data_io(_volts(templates.data)),
            description="Mean waveform of each unit, in volts, (samples, electrodes)."))
        if templates.std is not None:
            columns.append(VectorData(
                name="waveform_sd", data=data_io(_volts(templates.std)),
                description="Standard deviation of each unit's waveforms, in volts, "
                            "(samples, electrodes)."))
        kwargs = {"waveform_unit": "volts"}
        rate = templates.sampling_frequency
        if rate is not None:
            kwargs["waveform_rate"] = float(rate)
            if templates.nbefore is not None:
                kwargs["waveform_time_before_peak_in_ms"] = templates.nbefore / rate * 1e3
    if electrodes is not None:
        flat, bounds = electrodes
        region = DynamicTableRegion(name="electrodes", table=electrodes_table,
                                    description=description, data=flat.astype(np.int64))
        columns += [region, VectorIndex(name="electrodes_index", target=region,
                                        data=bounds.astype(_index_dtype(len(flat))))]
    if groups is not None:
        columns.append(VectorData(name="electrode_group", description="Electrode group of "
                                  "each unit.", data=[group_objects[g] for g in groups]))
    if not integer_ids:
        note = f" ({STRING_IDS_MARK})" if ids.dtype.kind in "US" else ""
        columns.append(VectorData(name="unit_name", data=[str(u) for u in ids.tolist()],
                                  description=f"Unit id as given by the spike sorting{note}."))
    columns += unit_columns(table, format_name)
    id_data = ids.astype(np.int64) if integer_ids else np.arange(n, dtype=np.int64)
    return Units(name="units", id=ElementIdentifiers(name="id", data=id_data), columns=columns,
                 resolution=1.0 / fs, description="Spike-sorted units exported by spikeviz.",
                 **kwargs)


def _volts(values_uv) -> np.ndarray:
    return (np.asarray(values_uv, dtype=np.float64) * 1e-6).astype(np.float32)
