"""The four layouts of an HDF5 spike file: which one a file holds, and how each is read into
the spike vector (int64 samples, unit indices or ids). The layouts and their conventions are
described in :mod:`spikeviz.io.hdf5`, which calls these readers.
"""

from __future__ import annotations

import re
import warnings

import h5py
import numpy as np
from natsort import natsorted

from ..errors import InputError
from ..model.ids import id_key
from .hdf5_format import (
    BLOCK,
    STYLES,
    TIME_UNITS,
    UNIT_IDS,
    as_text,
    bin_edges_samples,
    check_choice,
    describe_contents,
    get_dataset,
    positive_number,
    read_values,
    to_samples,
)

BIN_ATTRS = ("bin_size_ms", "bin_ms", "raster_bin_size_ms")


# -- which layout ------------------------------------------------------------------------------
def found_layouts(f, names) -> dict[str, dict]:
    """Layouts whose datasets are present, each with the names to read it by."""
    def dataset(name, ndim=None):
        obj = f.get(name)
        return isinstance(obj, h5py.Dataset) and (ndim is None or obj.ndim == ndim)

    found = {}
    if dataset(names["raster"], 2):
        found["raster"] = dict(names)
    if dataset(names["spike_times"]) and dataset(names["spike_times_index"]):
        found["ragged"] = dict(names)
    group = f.get(names["group"])
    if isinstance(group, h5py.Group):
        inner = {k: f"{names['group']}/{names[k]}" for k in ("spike_times", "spike_times_index")}
        if dataset(inner["spike_times"]) and dataset(inner["spike_times_index"]):
            found.setdefault("ragged", {**names, **inner, "nwb_like": True})
        elif len(group):
            found["group"] = dict(names)
    if dataset(names["idces"]) and dataset(names["times"]):
        found["paired"] = dict(names)
    return found


def choose_layout(f, path, style, names) -> tuple[str, dict]:
    """(style, names) from ``style``, else the file's ``style`` attribute, else the datasets."""
    found = found_layouts(f, names)
    given = style or as_text(f.attrs.get("style"))
    if given is not None:
        check_choice(given, STYLES, "style", "style", path)
        if given not in found:
            need = {"raster": names["raster"] + " (2-D)",
                    "ragged": f"{names['spike_times']} and {names['spike_times_index']}",
                    "group": f"the group {names['group']}/ with one dataset per unit",
                    "paired": f"{names['idces']} and {names['times']}"}[given]
            raise InputError(f"style {given!r} needs {need}; the file holds: "
                             f"{describe_contents(f)}", path=path, field="style")
        return given, found[given]
    if len(found) == 1:
        return next(iter(found.items()))
    if not found:
        raise InputError(f"no spike layout found (expected raster, spike_times + "
                         f"spike_times_index, a units/ group or idces + times); the file "
                         f"holds: {describe_contents(f)}", path=path, field="style")
    raise InputError(f"ambiguous layout: the file matches {' and '.join(found)}; pass style= "
                     f"one of them", path=path, field="style")


def _time_unit(f, path, given, *where) -> str:
    unit = given
    for obj in where:
        if unit is None and obj is not None:
            unit = as_text(obj.attrs.get("time_unit"))
    if unit is None:
        unit = as_text(f.attrs.get("time_unit"))
    if unit is None:
        raise InputError("the file does not say the unit of its spike times; pass "
                         "time_unit='s', 'ms' or 'samples' (SpikeLab's exporter writes seconds "
                         "for ragged and group files, milliseconds for paired ones)",
                         path=path, field="time_unit")
    return check_choice(unit, TIME_UNITS, "time unit", "time_unit", path)


def _read_times(ds, unit, fs, start_ms, path) -> np.ndarray:
    out = np.empty(ds.shape[0], dtype=np.int64)
    for lo in range(0, ds.shape[0], BLOCK):
        hi = min(lo + BLOCK, ds.shape[0])
        out[lo:hi] = to_samples(read_values(ds, lo, hi), unit, fs, start_ms, path, ds.name)
    return out


def _cat(parts, dtype):
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


# -- the four layouts --------------------------------------------------------------------------
def read_raster(f, path, names, fs, start_ms, bin_ms, num_samples):
    """(samples, unit indices, number of units, num_samples) from a units × bins raster."""
    ds = get_dataset(f, names["raster"], path, ndim=2)
    if ds.dtype.kind not in "biuf":
        raise InputError(f"expected integer counts, got dtype {ds.dtype}", path=path,
                         field=ds.name)
    bin_ms = bin_ms or positive_number(ds.attrs, BIN_ATTRS, path, "bin width (ms)") or \
        positive_number(f.attrs, BIN_ATTRS, path, "bin width (ms)")
    if bin_ms is None:
        raise InputError("the raster's bin width is not given (attribute bin_size_ms); pass "
                         "bin_ms=", path=path, field=ds.name)
    if bin_ms * fs / 1000.0 < 1:
        raise InputError(f"bins of {bin_ms} ms are shorter than one sample at {fs:g} Hz",
                         path=path, field="bin_size_ms")
    num_units, num_bins = ds.shape
    edges = bin_edges_samples(num_bins, bin_ms, fs)
    if start_ms:
        warnings.warn(f"{path}: start_time={start_ms} ms; bins are counted from it",
                      stacklevel=4)
    end = int(edges[-1]) if num_samples is None else min(num_samples, int(edges[-1]))
    samples, units = [], []
    step = max(1, BLOCK // max(1, num_units))
    if ds.chunks:  # whole chunks per block: each is decompressed once
        step = max(ds.chunks[1], step // ds.chunks[1] * ds.chunks[1])
    for b0 in range(0, num_bins, step):
        counts = ds[:, b0:b0 + step]
        if counts.dtype.kind == "f" and not (np.isfinite(counts).all()
                                             and (counts == np.round(counts)).all()):
            raise InputError("raster counts must be whole numbers", path=path, field=ds.name)
        if counts.size and counts.min() < 0:
            raise InputError("raster counts must be >= 0", path=path, field=ds.name)
        u, b = np.nonzero(counts)
        n = counts[u, b].astype(np.int64)
        b = b.astype(np.int64) + b0
        lo, hi = edges[b], np.minimum(edges[b + 1], end)
        if (hi <= lo).any():
            raise InputError(f"spikes counted in bins after the end of the recording "
                             f"({end} samples)", path=path, field=ds.name)
        rank = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 1  # 1..n in each bin
        width, total = np.repeat(hi - lo, n), np.repeat(n, n)
        samples.append(np.repeat(lo, n) + width * rank // (total + 1))
        units.append(np.repeat(u.astype(np.int32), n))
    if num_samples is None:
        num_samples = end if num_bins else None
    return _cat(samples, np.int64), _cat(units, np.int32), num_units, num_samples


def check_index(index, num_spikes, num_units, path, field) -> np.ndarray:
    """Cumulative ends (length num_units) from either index convention, or InputError."""
    if index.size and index.dtype.kind not in "iu":
        raise InputError(f"expected integer indices, got dtype {index.dtype}", path=path,
                         field=field)
    index = index.astype(np.int64)
    if index.size and index[0] < 0:
        raise InputError(f"entries must be >= 0, found {index[0]} at position 0", path=path,
                         field=field)
    drops = np.flatnonzero(np.diff(index) < 0)
    if drops.size:
        i = int(drops[0]) + 1
        raise InputError(f"must not decrease, but goes from {index[i - 1]} to {index[i]} at "
                         f"position {i}", path=path, field=field)
    last = int(index[-1]) if index.size else 0
    if last > num_spikes:
        raise InputError(f"points past the end: last value {last} but there are only "
                         f"{num_spikes} spike times", path=path, field=field)
    if last != num_spikes:
        raise InputError(f"last value {last} should equal the number of spike times "
                         f"({num_spikes}); the last {num_spikes - last} belong to no unit",
                         path=path, field=field)
    if num_units is None:  # SpikeLab's rule: a leading 0 followed by a non-zero entry
        if index.size >= 2 and index[0] == 0 and last > 0:
            warnings.warn(f"{path}: {field} starts with 0 and the file does not say how many "
                          f"units it has: read as the leading-zero convention "
                          f"({index.size - 1} units); pass num_units={index.size} if the "
                          f"first unit has no spikes", stacklevel=5)
            return index[1:]
        return index
    if index.size == num_units:
        return index
    if index.size == num_units + 1 and index[0] == 0:
        return index[1:]
    raise InputError(f"has {index.size} entries; for {num_units} units expected {num_units} "
                     f"(cumulative ends) or {num_units + 1} starting with 0", path=path,
                     field=field)


def read_ragged(f, path, names, fs, start_ms, time_unit, num_units):
    """(samples, unit indices, number of units) from flat times + a cumulative index."""
    times = get_dataset(f, names["spike_times"], path)
    index = read_values(get_dataset(f, names["spike_times_index"], path))
    unit = _time_unit(f, path, time_unit or ("s" if names.get("nwb_like") and
                                             "time_unit" not in f.attrs else None), times)
    ends = check_index(index, times.shape[0], num_units, path, names["spike_times_index"])
    counts = np.diff(ends, prepend=0)
    units = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    return _read_times(times, unit, fs, start_ms, path), units, int(counts.size)


def read_group(f, path, names, fs, start_ms, time_unit, file_ids):
    """(samples, unit indices, unit ids) from one dataset per unit in a group."""
    group = f[names["group"]]
    members = natsorted(group.keys())
    for name in members:
        if not isinstance(group[name], h5py.Dataset) or group[name].ndim != 1:
            raise InputError(f"expected one 1-D dataset of spike times per unit, found "
                             f"{group[name]!r}", path=path, field=f"{group.name}/{name}")
    keys = {}
    for name in members:
        uid = group[name].attrs.get("unit_id", name)
        keys[str(id_key(as_text(uid) if isinstance(uid, bytes) else uid))] = name
    if len(keys) != len(members):
        raise InputError(f"two datasets of {group.name}/ name the same unit (by name or "
                         f"unit_id attribute)", path=path, field=group.name)
    if file_ids is not None:
        missing = [u for u in file_ids.tolist() if str(u) not in keys]
        if missing or len(keys) != file_ids.size:
            raise InputError(f"{UNIT_IDS} does not match the datasets of {group.name}/ "
                             f"(unmatched ids: {missing[:5]})", path=path, field=UNIT_IDS)
        ordered = [keys[str(u)] for u in file_ids.tolist()]
        ids = file_ids
    else:
        ordered = list(keys.values())
        labels = list(keys)
        whole = all(re.fullmatch(r"0|-?[1-9][0-9]{0,17}", k) for k in labels)
        ids = np.array([int(k) for k in labels], np.int64) if whole and labels else \
            np.array(labels, dtype=str)
    unit = _time_unit(f, path, time_unit, group)
    trains = [_read_times(group[name], unit, fs, start_ms, path) for name in ordered]
    counts = np.array([t.size for t in trains], dtype=np.int64)
    units = np.repeat(np.arange(len(trains), dtype=np.int32), counts)
    return _cat(trains, np.int64), units, ids


def read_paired(f, path, names, fs, start_ms, time_unit, file_ids):
    """(samples, unit indices or ids, number of units or None) from parallel arrays."""
    idces = get_dataset(f, names["idces"], path)
    times = get_dataset(f, names["times"], path)
    if idces.shape != times.shape:
        raise InputError(f"{names['idces']} has {idces.shape[0]} entries but {names['times']} "
                         f"has {times.shape[0]}; paired arrays must have the same length",
                         path=path, field=names["idces"])
    unit = _time_unit(f, path, time_unit, times)
    samples = _read_times(times, unit, fs, start_ms, path)
    which = read_values(idces)
    if which.dtype.kind == "U":
        if file_ids is not None and which.size and not np.isin(which, file_ids).all():
            raise InputError(f"spikes carry unit ids not listed in {UNIT_IDS}", path=path,
                             field=names["idces"])
        return samples, which, None
    if which.size and which.dtype.kind not in "iu":
        raise InputError(f"expected integer unit indices, got dtype {which.dtype}", path=path,
                         field=names["idces"])
    num_units = file_ids.size if file_ids is not None else \
        (int(which.max()) + 1 if which.size else 0)
    if which.size and (int(which.min()) < 0 or int(which.max()) >= num_units):
        raise InputError(f"unit indices must lie in [0, {num_units}), found "
                         f"{int(which.min())}..{int(which.max())}", path=path,
                         field=names["idces"])
    return samples, which.astype(np.int32), num_units
