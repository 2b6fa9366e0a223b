"""Tables of an NWB file read for :mod:`spikeviz.io.nwb`: the Units table and the electrodes
table, column by column, straight from their HDF5 datasets.

Ragged columns (``spike_times``, ``obs_intervals``, a ragged ``electrodes`` region, any custom
ragged column) are read with one read of the flat data and one of the cumulative-end index,
validated, then split by position — never one ``units[i]`` call per unit.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Templates

# Curation labels: our writer's column first, then SpikeInterface's / phy's name.
LABEL_COLUMNS = ("label", "quality")
# Volts-like units of waveform_mean / waveform_sd → factor to µV.
_TO_UV = {"volts": 1e6, "volt": 1e6, "v": 1e6, "millivolts": 1e3, "mv": 1e3,
          "microvolts": 1.0, "uv": 1.0, "µv": 1.0}
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]{0,17})")
# In the description of a ``unit_name`` column: the names are string ids, keep "12" a string
# (our writer adds it; see :func:`unit_ids`).
STRING_IDS_MARK = "spikeviz: unit ids are strings"


def decode(values) -> np.ndarray:
    """Column values as a numpy array: bytes → str, containers (e.g. ElectrodeGroup
    references) → their name; numeric arrays unchanged."""
    if isinstance(values, np.ndarray) and values.dtype.kind not in "OS":
        return values
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = [v.decode("utf-8", "replace") if isinstance(v, bytes) else
           v if isinstance(v, str | int | float | np.generic) or v is None else
           getattr(v, "name", v) for v in items]
    return np.asarray(out, dtype=object)


def ids_from_names(names: np.ndarray) -> np.ndarray:
    """String ids as written by SpikeInterface/neuroconv (``unit_name``, ``channel_name``):
    int64 when every name is a canonical decimal integer ("12", not "012" or "1.0"), else str.
    """
    names = np.asarray([str(n) for n in names], dtype=str)
    if names.size and all(_CANONICAL_INT.fullmatch(n) for n in names.tolist()):
        return names.astype(np.int64)
    return names


# -- ragged columns ---------------------------------------------------------------------------
def ragged_bounds(index_dataset, num_rows: int, data_length: int, path: Path,
                  field: str) -> np.ndarray:
    """Validated row boundaries (num_rows + 1, int64, leading 0) of a VectorIndex."""
    index = np.asarray(index_dataset[:])
    if index.ndim != 1 or index.shape[0] != num_rows:
        raise InputError(f"expected one entry per row ({num_rows}), got shape {index.shape}",
                         path=path, field=field)
    if index.size and index.dtype.kind not in "iu":
        raise InputError(f"expected integer end offsets, got dtype {index.dtype}", path=path,
                         field=field)
    bounds = np.concatenate(([0], index.astype(np.int64)))
    steps = np.diff(bounds)
    if steps.size and steps.min() < 0:
        row = int(np.argmax(steps < 0))
        raise InputError(f"the index decreases at row {row} ({int(bounds[row])} → "
                         f"{int(bounds[row + 1])}); it must hold non-decreasing cumulative end "
                         f"offsets", path=path, field=field)
    if bounds[-1] > data_length:
        row = int(np.argmax(bounds[1:] > data_length))
        raise InputError(f"row {row} ends at offset {int(bounds[row + 1])} but the data it "
                         f"indexes has only {data_length} values (index past the end)",
                         path=path, field=field)
    return bounds


def read_ragged(column, num_rows: int, path: Path, field: str) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, bounds) of a ragged hdmf column (a VectorIndex over its target)."""
    data = column.target.data
    bounds = ragged_bounds(column.data, num_rows, len(data), path, f"{field}_index")
    flat = np.asarray(data[:int(bounds[-1])]) if bounds[-1] else np.asarray(data[:0])
    return flat, bounds


def split(flat: np.ndarray, bounds: np.ndarray) -> list[np.ndarray]:
    """Per-row views of a flat array (one numpy split, no per-row reads)."""
    return np.split(flat, bounds[1:-1]) if bounds.size > 1 else []


# -- electrodes table -------------------------------------------------------------------------
def read_electrodes(table, path: Path) -> tuple[pd.DataFrame, str | None]:
    """The electrodes table as a DataFrame indexed by ``channel_id``, and the geometry source.

    Channel ids: the ``channel_name`` column when present (see :func:`ids_from_names`), else the
    table's ``id``. Columns ``x_um``/``y_um``(/``z_um``) come from ``rel_x``/``rel_y``
    (/``rel_z``, the position on the probe) when present, else from ``x``/``y``/``z`` (the
    schema's brain coordinates); NWB says both are in µm. ``group`` holds the ElectrodeGroup's
    name; every other 1-D column is kept as it is (bytes decoded).
    """
    num_rows = len(table.id.data)
    columns = {}
    for name in table.colnames:
        column = table[name]
        if type(column).__name__ == "VectorIndex":
            continue  # ragged electrode properties are not channel facts we use
        data = column.data
        if getattr(data, "ndim", 1) != 1 or len(data) != num_rows:
            continue
        columns[name] = decode(data[:] if not isinstance(data, list | tuple) else data)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(num_rows))
    if "channel_name" in frame:
        ids = ids_from_names(frame["channel_name"].to_numpy())
        field = "channel_name"
    else:
        ids = np.asarray(table.id.data[:], dtype=np.int64)
        field = "id"
    if len(pd.unique(ids)) != ids.size:
        raise InputError("channel ids repeat in the electrodes table", path=path,
                         field=f"electrodes/{field}")
    source = None
    for prefix in ("rel_", ""):
        if f"{prefix}x" in frame and f"{prefix}y" in frame and all(
                np.asarray(frame[f"{prefix}{a}"]).dtype.kind in "iuf" for a in "xy"):
            source = f"{prefix}x/{prefix}y"
            for axis in "xyz":
                if f"{prefix}{axis}" in frame:
                    frame[f"{axis}_um"] = np.asarray(frame[f"{prefix}{axis}"], dtype=np.float64)
            break
    frame.index = pd.Index(ids, name="channel_id")
    return frame, source


# -- units table ------------------------------------------------------------------------------
def unit_ids(units, path: Path, where: str) -> np.ndarray:
    """``unit_name`` (SpikeInterface's) when present, else the table's ``id``.

    Names become int64 when every one is a canonical integer (SpikeInterface writes
    ``str(id)`` for integer ids) unless the column's description carries
    :data:`STRING_IDS_MARK` (our writer's mark for string ids such as "12"): then str.
    """
    if "unit_name" in units.colnames:
        column = units["unit_name"]
        names = decode(column.data[:])
        if STRING_IDS_MARK in str(getattr(column, "description", "") or ""):
            ids = np.asarray([str(n) for n in names.tolist()], dtype=str)
        else:
            ids = ids_from_names(names)
        field = "unit_name"
    else:
        ids = np.asarray(units.id.data[:], dtype=np.int64)
        field = "id"
    if len(pd.unique(ids)) != ids.size:
        repeated = pd.Series(ids)[pd.Series(ids).duplicated()].unique()[:5].tolist()
        raise InputError(f"unit ids repeat: {repeated}", path=path, field=f"{where}/{field}")
    return ids


def spike_times_s(units, path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(flat spike times in seconds as float64, bounds per unit) from one read of each."""
    num_units = len(units.id.data)
    if "spike_times" not in units.colnames and num_units == 0:
        return np.zeros(0), np.zeros(1, dtype=np.int64)  # an empty sorting
    if "spike_times" not in units.colnames:
        raise InputError("the Units table has no spike_times column; spike times in seconds "
                         "are needed", path=path, field=f"{where}/spike_times")
    column = units["spike_times"]
    if type(column).__name__ != "VectorIndex":
        raise InputError("spike_times has no spike_times_index; a Units table stores spike "
                         "times as a ragged column", path=path,
                         field=f"{where}/spike_times_index")
    flat, bounds = read_ragged(column, num_units, path, f"{where}/spike_times")
    if flat.ndim != 1 or flat.dtype.kind not in "iuf":
        raise InputError(f"expected 1-D numeric spike times in seconds, got {flat.dtype} "
                         f"shape {flat.shape}", path=path, field=f"{where}/spike_times")
    flat = flat.astype(np.float64, copy=False)
    if flat.size and not np.isfinite(flat).all():
        raise InputError(f"{int((~np.isfinite(flat)).sum())} spike times are NaN or infinite",
                         path=path, field=f"{where}/spike_times")
    return flat, bounds


def _label(values: np.ndarray) -> np.ndarray:
    out = []
    for v in values.tolist():
        text = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
        out.append(text.lower() or "unsorted")
    return np.asarray(out, dtype=object)


def unit_table(units, ids: np.ndarray, channel_ids: np.ndarray | None, path: Path,
               where: str, skipped: list[str]) -> pd.DataFrame:
    """Every Units column except spike_times / unit_name / waveforms as a unit-table column.

    ``electrodes``: per unit an int/str array of channel ids (the electrodes table's ids, see
    :func:`read_electrodes`); ``electrode_group``: the group's name; ``obs_intervals`` →
    ``obs_intervals_s``: per unit a (k, 2) float64 array in seconds; other ragged columns: per
    unit an array; 2-D+ columns: per unit an array. ``label`` from ``label`` else ``quality``
    (which it then replaces), stripped, lower-cased, 'unsorted' where empty. Column names that
    cannot be read are appended to ``skipped``.
    """
    n = ids.size
    table = pd.DataFrame(index=pd.Index(ids, name="unit_id"))
    own = {"spike_times", "unit_name", "waveform_mean", "waveform_sd", "waveforms"}
    for name in units.colnames:
        if name in own:
            if name == "waveforms":
                skipped.append(name)
            continue
        field = f"{where}/{name}"
        column = units[name]
        kind = type(column).__name__
        if kind == "VectorIndex":
            if type(column.target).__name__ == "VectorIndex":
                skipped.append(name)  # doubly ragged
                continue
            flat, bounds = read_ragged(column, n, path, field)
            if type(column.target).__name__ == "DynamicTableRegion":
                flat = _region_values(column.target, flat, channel_ids, path, field)
            values = split(flat, bounds)
            if name == "obs_intervals":
                values = [np.asarray(v, dtype=np.float64).reshape(-1, 2) for v in values]
                name = "obs_intervals_s"
            table[name] = pd.Series(values, index=table.index, dtype=object)
            continue
        data = column.data
        if len(data) != n:
            raise InputError(f"has {len(data)} rows but the Units table has {n}", path=path,
                             field=field)
        if kind == "DynamicTableRegion":
            rows = np.asarray(data[:])
            values = _region_values(column, rows, channel_ids, path, field)
            table[name] = pd.Series([values[i:i + 1] for i in range(n)], index=table.index,
                                    dtype=object)
            continue
        values = data[:]
        values = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
        if values.ndim > 1:
            table[name] = pd.Series(list(values), index=table.index, dtype=object)
        else:
            table[name] = decode(values)
    for name in LABEL_COLUMNS:
        if name in table:
            label = _label(np.asarray(table[name], dtype=object))
            table = table.drop(columns=[name])  # the normalised label replaces its source
            table["label"] = label
            break
    return table


def _region_values(region, rows: np.ndarray, channel_ids, path: Path, field: str):
    """Rows of a DynamicTableRegion → channel ids (electrodes table) or row indices."""
    rows = np.asarray(rows, dtype=np.int64)
    size = len(region.table.id.data)
    if rows.size and (rows.min() < 0 or rows.max() >= size):
        raise InputError(f"refers to row {int(rows.max())} but table {region.table.name!r} "
                         f"has {size} rows", path=path, field=field)
    if region.table.name == "electrodes" and channel_ids is not None:
        return np.asarray(channel_ids)[rows]
    return rows


# -- templates --------------------------------------------------------------------------------
def templates(units, ids: np.ndarray, table: pd.DataFrame, channel_ids: np.ndarray | None,
              path: Path) -> Templates | None:
    """``waveform_mean`` (and ``waveform_sd``) as Templates in µV, or None (with a warning when
    the file has them but their channels cannot be told).

    Channels: dense over the electrodes table when the last axis has one entry per electrode;
    else sparse over each unit's ``electrodes`` when every unit lists that many; 2-D
    (units, samples) means one channel. ``nbefore`` from ``waveform_time_before_peak_in_ms``
    and ``waveform_rate`` when both are given (NWB 2.9+), else None.
    """
    if "waveform_mean" not in units.colnames:
        return None
    mean = np.asarray(units["waveform_mean"].data[:], dtype=np.float32)
    sd = None
    if "waveform_sd" in units.colnames:
        sd = np.asarray(units["waveform_sd"].data[:], dtype=np.float32)
        if sd.shape != mean.shape:
            warnings.warn(f"{path}: waveform_sd has shape {sd.shape} but waveform_mean has "
                          f"{mean.shape}; the standard deviation is not read", stacklevel=3)
            sd = None
    if mean.ndim == 2:
        mean = mean[:, :, None]
        sd = None if sd is None else sd[:, :, None]
    if mean.ndim != 3 or mean.shape[0] != ids.size:
        warnings.warn(f"{path}: waveform_mean has shape {mean.shape}, expected (units, samples"
                      f"[, channels]); templates are not read", stacklevel=3)
        return None
    unit = str(getattr(units, "waveform_unit", None) or "volts").strip().lower()
    factor = _TO_UV.get(unit)
    if factor is None:
        warnings.warn(f"{path}: waveform_mean unit {unit!r} is not a voltage; templates are "
                      f"kept in stored units", stacklevel=3)
    else:
        mean *= np.float32(factor)
        if sd is not None:
            sd *= np.float32(factor)
    rate = getattr(units, "waveform_rate", None)
    before_ms = getattr(units, "waveform_time_before_peak_in_ms", None)
    nbefore = None
    if rate is not None and before_ms is not None and np.isfinite(before_ms) and before_ms >= 0:
        nbefore = round(float(before_ms) * float(rate) / 1000.0)
    common = dict(std=sd, sampling_frequency=None if rate is None else float(rate),
                  units="uV" if factor is not None else "raw", nbefore=nbefore)
    k = mean.shape[2]
    if channel_ids is not None and k == np.asarray(channel_ids).size:
        return Templates(mean, ids, channel_ids, **common)
    if channel_ids is not None and "electrodes" in table and all(
            np.size(e) == k for e in table["electrodes"]):
        position = pd.Index(channel_ids).get_indexer(np.concatenate(
            [np.asarray(e) for e in table["electrodes"]]))
        return Templates(mean, ids, channel_ids,
                         sparse_channel_indices=position.reshape(ids.size, k), **common)
    warnings.warn(f"{path}: waveform_mean has {k} channels per unit, which matches neither "
                  f"the electrodes table nor the units' electrodes; templates are not read",
                  stacklevel=3)
    return None


NWBFILE_FIELDS = ("session_description", "session_start_time", "experimenter", "institution",
                  "lab", "experiment_description", "session_id", "keywords")
SUBJECT_FIELDS = ("subject_id", "species", "sex", "age", "description", "strain", "genotype",
                  "date_of_birth", "weight")


def file_metadata(nwbfile) -> dict:
    """The file's session and subject facts, shaped like the writer's metadata (``NWBFile``,
    ``Subject``), so that an NWB → NWB conversion keeps them. Datetimes as ISO strings."""
    def plain(value):
        if hasattr(value, "isoformat"):
            return value.isoformat()
        if isinstance(value, (tuple, list, np.ndarray)):
            return [str(v) for v in value]
        return value

    out = {"NWBFile": {}, "Subject": {}}
    for key in NWBFILE_FIELDS:
        value = getattr(nwbfile, key, None)
        if value is not None and not (hasattr(value, "__len__") and len(value) == 0):
            out["NWBFile"][key] = plain(value)
    subject = getattr(nwbfile, "subject", None)
    for key in SUBJECT_FIELDS if subject is not None else ():
        value = getattr(subject, key, None)
        if value is not None and value != "":
            out["Subject"][key] = plain(value)
    return out
