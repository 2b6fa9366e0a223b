"""Write a session as an HDF5 spike file in one of SpikeLab's four layouts.

The layouts, attributes and time conventions are described in :mod:`spikeviz.io.hdf5`, which
reads every file written here (and SpikeLab's ``load_spikedata_from_hdf5`` reads the spikes
with the matching dataset names and time unit). Besides the spikes, every file holds:

- root attributes ``format`` (``spikeviz.spikes``), ``format_version``, ``style``,
  ``time_unit`` (not for rasters), ``fs_Hz``, ``length_ms``, ``start_time`` (0.0 ms),
  ``num_samples`` (when the recording length is known), ``num_units``, ``num_spikes``;
- ``unit_ids`` (int64 or UTF-8 strings) and the group ``unit_table`` with one dataset per
  column of :func:`spikeviz.io._results.unit_columns` (``label``, properties, quality metrics;
  numbers, booleans and strings — other columns are skipped with a warning).

Datasets are chunked and compressed (gzip level 4 with shuffle by default); spikes are written
block by block from the spike vector or unit by unit (views of the sorting), never spike by
spike, and the file appears only when complete (atomic rename).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..atomic import atomic_file
from ..errors import InputError
from ..model import Session, Sorting
from . import _results
from .hdf5_format import (
    BLOCK,
    FORMAT_TAG,
    FORMAT_VERSION,
    NAMES,
    STYLES,
    SUFFIXES,
    TIME_UNITS,
    UNIT_IDS,
    UNIT_TABLE,
    bin_edges_samples,
    bins_for,
    check_choice,
    from_samples,
    time_dtype,
)

CHUNK = 1 << 18  # elements per chunk of 1-D datasets
_GZIP_LEVEL = 4


def _compression(compression) -> dict:
    """h5py keywords for ``compression``: 'gzip', 'lzf', a gzip level 0-9, or None."""
    if compression is None:
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": _GZIP_LEVEL, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    if isinstance(compression, int) and not isinstance(compression, bool) and \
            0 <= compression <= 9:
        return {"compression": "gzip", "compression_opts": compression, "shuffle": True}
    raise InputError(f"compression must be 'gzip', 'lzf', a gzip level 0-9 or None, got "
                     f"{compression!r}", field="compression")


def _create(parent, name, shape, dtype, storage, chunks):
    """A dataset, chunked and compressed unless empty (HDF5 cannot chunk a 0-size shape)."""
    if storage and all(shape):
        return parent.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, **storage)
    return parent.create_dataset(name, shape=shape, dtype=dtype)


def _column(values: pd.Series):
    """A unit-table column as (array, h5py dtype), or None when it cannot be stored."""
    kind = values.dtype
    missing = bool(values.isna().any())
    if pd.api.types.is_bool_dtype(kind) and not missing:
        return values.to_numpy(dtype=bool), bool
    if pd.api.types.is_integer_dtype(kind) and not missing:
        return values.to_numpy(dtype=np.int64), np.int64
    if pd.api.types.is_float_dtype(kind) or (pd.api.types.is_integer_dtype(kind) and missing):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.float64
    items = values.tolist()
    if all(isinstance(v, str) for v in items):
        return np.array(items, dtype=object), h5py.string_dtype("utf-8")
    return None


def _table_columns(table: pd.DataFrame) -> dict:
    columns, skipped = {}, []
    for name in table.columns:
        converted = _column(table[name])
        key = str(name)
        if converted is None or "/" in key or key in ("", "."):
            skipped.append(key)
        else:
            columns[key] = converted
    if skipped:
        warnings.warn(f"unit-table columns not written to HDF5 (not numbers, booleans or "
                      f"strings without missing values, or not valid names): {skipped}",
                      stacklevel=3)
    return columns


def _ids_array(unit_ids: np.ndarray):
    if unit_ids.dtype.kind in "iu":
        return np.asarray(unit_ids, dtype=np.int64), np.int64
    return np.array([str(u) for u in unit_ids.tolist()], dtype=object), h5py.string_dtype()


def _group_names(unit_ids: np.ndarray) -> list[str]:
    """Dataset names of the ``group`` layout: the unit ids when they make valid, distinct
    names, else ``unit0``, ``unit1``, ... (each dataset also carries a ``unit_id`` attribute)."""
    names = [str(u) for u in unit_ids.tolist()]
    if all(n not in ("", ".") and "/" not in n for n in names) and len(set(names)) == len(names):
        return names
    return [f"unit{i}" for i in range(len(names))]


# -- the four layouts -----------------------------------------------------------------------
def _write_ragged(f, sorting, time_unit, storage, report):
    fs, n = sorting.sampling_frequency, sorting.num_spikes
    counts = sorting.spike_counts().to_numpy(dtype=np.int64)
    times = _create(f, NAMES["spike_times"], (n,), time_dtype(time_unit), storage,
                    (min(n, CHUNK),))
    times.attrs["time_unit"] = time_unit
    position = 0
    for i, unit_id in enumerate(sorting.unit_ids):  # one slice per unit, not per spike
        train = sorting.spike_train(unit_id)
        if train.size:
            times[position:position + train.size] = from_samples(train, time_unit, fs)
            position += train.size
            report("hdf5: spike times", position / max(n, 1))
        elif i % 256 == 0:
            report("hdf5: spike times", position / max(n, 1))
    index = np.cumsum(counts, dtype=np.int64)
    _create(f, NAMES["spike_times_index"], index.shape, np.int64, storage,
            (min(index.size, CHUNK),))[...] = index


def _write_group(f, sorting, time_unit, storage, report):
    fs = sorting.sampling_frequency
    group = f.create_group(NAMES["group"], track_order=True)
    group.attrs["time_unit"] = time_unit
    ids = sorting.unit_ids
    for i, (unit_id, name) in enumerate(zip(ids, _group_names(ids), strict=True)):
        train = sorting.spike_train(unit_id)
        ds = _create(group, name, train.shape, time_dtype(time_unit), storage,
                     (min(train.size, CHUNK),))
        if train.size:
            ds[...] = from_samples(train, time_unit, fs)
        ds.attrs["unit_id"] = unit_id.item() if hasattr(unit_id, "item") else unit_id
        report("hdf5: units", (i + 1) / ids.size)


def _write_paired(f, sorting, time_unit, storage, report):
    fs, n = sorting.sampling_frequency, sorting.num_spikes
    idces = _create(f, NAMES["idces"], (n,), np.int32, storage, (min(n, CHUNK),))
    times = _create(f, NAMES["times"], (n,), time_dtype(time_unit), storage, (min(n, CHUNK),))
    times.attrs["time_unit"] = time_unit
    for lo in range(0, n, BLOCK):
        hi = min(lo + BLOCK, n)
        idces[lo:hi] = sorting.unit_index[lo:hi]
        times[lo:hi] = from_samples(sorting.sample_index[lo:hi], time_unit, fs)
        report("hdf5: spikes", hi / n)


def _count_dtype(max_count: int):
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_count <= np.iinfo(dtype).max:
            return dtype
    return np.uint64


def _write_raster(f, sorting, bin_ms, num_samples, storage, report):
    fs, num_units = sorting.sampling_frequency, sorting.num_units
    num_bins = bins_for(num_samples, bin_ms, fs)
    edges = bin_edges_samples(num_bins, bin_ms, fs)
    max_count = int(sorting.spike_counts().max()) if num_units else 0
    unit_chunk = max(1, min(num_units, 64))
    bin_chunk = max(1, min(num_bins, (1 << 20) // unit_chunk))
    ds = _create(f, NAMES["raster"], (num_units, num_bins), _count_dtype(max_count), storage,
                 (unit_chunk, bin_chunk))
    ds.attrs["bin_size_ms"] = float(bin_ms)
    step = max(bin_chunk, BLOCK // max(num_units, 1) // bin_chunk * bin_chunk)
    samples, units = sorting.sample_index, sorting.unit_index
    for b0 in range(0, num_bins, step):
        b1 = min(b0 + step, num_bins)
        lo, hi = np.searchsorted(samples, edges[[b0, b1]], side="left")
        which = np.searchsorted(edges, samples[lo:hi], side="right") - 1 - b0
        flat = units[lo:hi].astype(np.int64) * (b1 - b0) + which
        counts = np.bincount(flat, minlength=num_units * (b1 - b0))
        ds[:, b0:b1] = counts.reshape(num_units, b1 - b0)
        report("hdf5: raster", b1 / num_bins)


# -- entry point -----------------------------------------------------------------------------
def write_hdf5(session_or_sorting, path, style: str = "ragged", time_unit: str = "s",
               bin_ms: float = 1.0, overwrite: bool = False, compute: bool = False,
               progress: Callable[[str, float], None] | None = None,
               compression="gzip") -> Path:
    """Write ``session_or_sorting`` (a Session or a Sorting) to the HDF5 file ``path``.

    ``style``: ``ragged`` (default), ``raster``, ``group`` or ``paired``. ``time_unit``: ``s``
    (float64 seconds, default), ``ms`` (float64) or ``samples`` (int64); rasters store counts
    per bin of ``bin_ms`` milliseconds (at least one sample wide) instead. ``compute``: include
    quality metrics the session can compute, not only those already available (see
    :mod:`spikeviz.io._results`). ``progress(step, fraction)`` is called as blocks are written,
    last as ``("hdf5", 1.0)`` once the file is complete and closed but before it is renamed into
    place (so an exception raised by ``progress`` leaves no file).
    ``compression``: ``gzip`` (level 4), ``lzf``, a gzip level 0-9, or None. Refuses an existing
    ``path`` unless ``overwrite``; atomic. Returns ``path``.
    """
    if isinstance(session_or_sorting, Sorting):
        session = Session(session_or_sorting, cache_dir=None)
    elif isinstance(session_or_sorting, Session):
        session = session_or_sorting
    else:
        raise InputError(f"expected a spikeviz Session or Sorting, got "
                         f"{type(session_or_sorting).__name__}", field="session")
    path = Path(path)
    sorting = session.sorting
    fs = sorting.sampling_frequency
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"an HDF5 spike file must end in {' or '.join(SUFFIXES)}", path=path)
    check_choice(style, STYLES, "style", "style")
    check_choice(time_unit, TIME_UNITS, "time unit", "time_unit")
    if style == "raster" and not (isinstance(bin_ms, numbers.Real) and math.isfinite(bin_ms)
                                  and bin_ms * fs / 1000.0 >= 1):
        raise InputError(f"bin_ms must be a number of ms covering at least one sample "
                         f"({1000.0 / fs:.4g} ms at {fs:g} Hz), got {bin_ms!r}", field="bin_ms")
    storage = _compression(compression)
    columns = _table_columns(_results.unit_columns(session, compute))
    ids, ids_dtype = _ids_array(np.asarray(sorting.unit_ids))
    last = int(sorting.sample_index[-1]) + 1 if sorting.num_spikes else 0
    num_samples = sorting.num_samples if sorting.num_samples is not None else last
    report = progress or (lambda step, fraction: None)

    with atomic_file(path, overwrite=overwrite, suffix=path.suffix) as tmp:
        with h5py.File(tmp, "w", rdcc_nbytes=32 << 20, rdcc_w0=1.0) as f:
            report("hdf5", 0.0)
            attrs = {"format": FORMAT_TAG, "format_version": FORMAT_VERSION, "style": style,
                     "fs_Hz": float(fs), "length_ms": num_samples * 1000.0 / fs,
                     "start_time": 0.0, "num_units": sorting.num_units,
                     "num_spikes": sorting.num_spikes}
            if style != "raster":
                attrs["time_unit"] = time_unit
            if sorting.num_samples is not None:
                attrs["num_samples"] = np.int64(sorting.num_samples)
            f.attrs.update(attrs)
            f.create_dataset(UNIT_IDS, data=ids, dtype=ids_dtype)
            table = f.create_group(UNIT_TABLE, track_order=True)
            table.attrs["columns"] = np.array(list(columns), dtype=h5py.string_dtype())
            for name, (values, dtype) in columns.items():
                table.create_dataset(name, data=values, dtype=dtype)
            if style == "raster":
                _write_raster(f, sorting, float(bin_ms), num_samples, storage, report)
            elif style == "ragged":
                _write_ragged(f, sorting, time_unit, storage, report)
            elif style == "group":
                _write_group(f, sorting, time_unit, storage, report)
            else:
                _write_paired(f, sorting, time_unit, storage, report)
        # the file is complete and closed; only the rename is left. Reporting 1.0 here means
        # an exception from the callback still leaves nothing behind.
        report("hdf5", 1.0)
    return path
