"""HDF5 spike files in the four layouts of SpikeLab's (braingeneers) generic HDF5
loader/exporter, read into a Session.

Layouts (dataset names are SpikeLab's defaults; other names can be given as keywords)
-------------------------------------------------------------------------------------
``raster``   ``raster``: (units, bins) integer counts, bin width in ms in the attribute
             ``bin_size_ms`` (on the dataset or the root). Lossy in time: spikes are read back
             evenly spaced inside their bin, as SpikeLab's ``SpikeData.from_raster`` places
             them (spike k of n at ``start + k * width / (n + 1)``, one spike at the centre),
             floored to whole samples. Bin ``j`` holds the samples ``s`` with
             ``j * B <= s < (j + 1) * B``, ``B = bin_size_ms * fs / 1000`` (half-open, from
             sample 0, as ``np.histogram``), so counts per bin round-trip exactly. (SpikeLab's
             ``SpikeData.raster`` bins float ms times as ``(a, b]``: a spike exactly on an
             edge falls one bin later here.)
``ragged``   ``spike_times`` (all units' times, unit after unit) and ``spike_times_index``:
             cumulative end of each unit (NWB's convention, length = units, last = spikes) or
             the same with a leading 0 (length = units + 1). Also found inside ``units/`` (the
             minimal NWB-like files SpikeLab's NWB exporter writes; ids from ``units/id``,
             seconds by the NWB spec).
``group``    one 1-D dataset of spike times per unit in the group ``units``; the units are in
             natural order of the dataset names (``unit2`` before ``unit10``) unless the file
             lists ``unit_ids``.
``paired``   ``idces`` (unit index of every spike; strings are taken as unit ids) and
             ``times`` (time of every spike), the same length.

Attributes (root): ``style``, ``time_unit`` (``s``, ``ms`` or ``samples``; also read from the
time dataset or the group), ``fs_Hz`` (sampling rate, SpikeLab's keyword; aliases
``sampling_frequency``, ``fs``, ``sampling_rate``, ``sample_rate``, ``samplerate``),
``length_ms``, ``start_time`` (ms, SpikeLab's time origin: sample 0 is ``start_time``),
``num_samples`` (spikeviz: the exact recording length), ``format`` = ``spikeviz.spikes`` and
``format_version``. Unit ids in the root dataset ``unit_ids`` (int or str), every unit-table
column (``label`` = curation label, properties, quality metrics) as a dataset in the group
``unit_table`` (root ``labels`` is accepted too).

How the layout is found: the keyword ``style``, else the ``style`` attribute, else the datasets
present; none or more than one match → InputError listing what the file holds.

Times → int64 samples: ``samples`` as they are (integers required); ``s`` as
``round(t * fs)``, ``ms`` as ``round(t * fs / 1000)``. spikeviz writes ``sample / fs`` (and
``sample * 1000 / fs``) in float64, so its files round-trip exactly for any sample index below
2**50 (over 1000 years at 30 kHz). The time unit is never guessed: a file that does not say it
needs ``time_unit=`` (SpikeLab's exporter writes seconds for ragged/group, ms for paired).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from natsort import natsorted

from ..errors import InputError
from ..model import Session, Sorting
from ..model.ids import id_key

FORMAT = "hdf5"
FORMAT_TAG = "spikeviz.spikes"
FORMAT_VERSION = 1
STYLES = ("raster", "ragged", "group", "paired")
TIME_UNITS = ("s", "ms", "samples")
SUFFIXES = (".h5", ".hdf5", ".hdf")
# Dataset/group names, SpikeLab's defaults, and the keywords of SpikeLab's loader that rename them.
NAMES = {"raster": "raster", "spike_times": "spike_times",
         "spike_times_index": "spike_times_index", "group": "units", "idces": "idces",
         "times": "times"}
NAME_KEYWORDS = {"raster_dataset": "raster", "spike_times_dataset": "spike_times",
                 "spike_times_index_dataset": "spike_times_index", "group_per_unit": "group",
                 "idces_dataset": "idces", "times_dataset": "times"}
UNIT_IDS, UNIT_TABLE = "unit_ids", "unit_table"
RATE_ATTRS = ("fs_Hz", "sampling_frequency", "fs", "sampling_rate", "sample_rate",
              "samplerate", "fs_hz")
BIN_ATTRS = ("bin_size_ms", "bin_ms", "raster_bin_size_ms")
BLOCK = 1 << 22  # elements per block when converting or binning


# -- shared with the writer ------------------------------------------------------------------
def bin_edges_samples(num_bins: int, bin_ms: float, fs: float) -> np.ndarray:
    """First sample of bins ``0..num_bins`` (int64): ``ceil(j * bin_ms * fs / 1000)``, with
    products within 1e-9 (relative) of an integer taken as that integer."""
    width = bin_ms * fs / 1000.0
    edges = np.arange(num_bins + 1, dtype=np.float64) * width
    nearest = np.rint(edges)
    snap = np.abs(edges - nearest) <= 1e-9 * np.maximum(1.0, np.abs(edges))
    return np.where(snap, nearest, np.ceil(edges)).astype(np.int64)


def bins_for(num_samples: int, bin_ms: float, fs: float) -> int:
    """Number of bins that cover samples ``0..num_samples-1``."""
    if num_samples <= 0:
        return 0
    num = max(1, int(np.ceil(num_samples / (bin_ms * fs / 1000.0))))
    while bin_edges_samples(num, bin_ms, fs)[-1] < num_samples:
        num += 1
    return num


def is_nwb(f: h5py.File) -> bool:
    return "nwb_version" in f.attrs or "neurodata_type" in f.attrs


def sniff(path: Path) -> bool:
    """An .h5/.hdf5 file (not NWB) with one of the four layouts or spikeviz's format tag."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in SUFFIXES:
        return False
    try:
        with h5py.File(path, "r") as f:
            if is_nwb(f):
                return False
            return _text(f.attrs.get("format")) == FORMAT_TAG or bool(_found_layouts(f, NAMES))
    except (OSError, ValueError):
        return False


# -- small readers -----------------------------------------------------------------------------
def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.reshape(-1)[0])
    return value if isinstance(value, str) else None


def _number(attrs, names, path, what):
    for name in names:
        if name in attrs:
            value = np.asarray(attrs[name]).reshape(-1)
            if value.size != 1 or value.dtype.kind not in "iuf" or not np.isfinite(value[0]) \
                    or value[0] <= 0:
                raise InputError(f"{what}: expected one positive number, got {value!r}",
                                 path=path, field=name)
            return float(value[0])
    return None


def _dataset(f, name, path, ndim=1) -> h5py.Dataset:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise InputError(f"expected a {ndim}-D dataset {name!r}", path=path, field=name)
    if obj.ndim != ndim:
        raise InputError(f"expected a {ndim}-D dataset, got shape {obj.shape}", path=path,
                         field=name)
    return obj


def _values(ds: h5py.Dataset, start=0, stop=None) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return np.asarray(ds.asstr()[start:stop], dtype=str)
    if ds.dtype.kind not in "biuf":
        raise InputError(f"unsupported dtype {ds.dtype}", path=ds.file.filename, field=ds.name)
    return ds[start:stop]


def _contents(f, limit=12) -> str:
    """The first ``limit`` objects of the file, for error messages."""
    items = []

    def visit(name, obj):
        items.append(f"{name} {obj.shape} {obj.dtype}" if isinstance(obj, h5py.Dataset)
                     else f"{name}/")
        return True if len(items) > limit else None  # a non-None return stops the walk

    f.visititems(visit)
    return "; ".join(items[:limit]) + ("; ..." if len(items) > limit else "") or "nothing"


# -- layout ------------------------------------------------------------------------------------
def _found_layouts(f, names) -> dict[str, dict]:
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


def _layout(f, path, style, names) -> tuple[str, dict]:
    found = _found_layouts(f, names)
    given = style or _text(f.attrs.get("style"))
    if given is not None:
        if given not in STYLES:
            raise InputError(f"unknown style {given!r}; expected one of {', '.join(STYLES)}",
                             path=path, field="style")
        if given not in found:
            need = {"raster": names["raster"] + " (2-D)",
                    "ragged": f"{names['spike_times']} and {names['spike_times_index']}",
                    "group": f"the group {names['group']}/ with one dataset per unit",
                    "paired": f"{names['idces']} and {names['times']}"}[given]
            raise InputError(f"style {given!r} needs {need}; the file holds: {_contents(f)}",
                             path=path, field="style")
        return given, found[given]
    if len(found) == 1:
        return next(iter(found.items()))
    if not found:
        raise InputError(f"no spike layout found (expected raster, spike_times + "
                         f"spike_times_index, a units/ group or idces + times); the file "
                         f"holds: {_contents(f)}", path=path, field="style")
    raise InputError(f"ambiguous layout: the file matches {' and '.join(found)}; pass style= "
                     f"one of them", path=path, field="style")


def _time_unit(f, path, given, *where) -> str:
    unit = given
    for obj in where:
        if unit is None and obj is not None:
            unit = _text(obj.attrs.get("time_unit"))
    if unit is None:
        unit = _text(f.attrs.get("time_unit"))
    if unit is None:
        raise InputError("the file does not say the unit of its spike times; pass "
                         "time_unit='s', 'ms' or 'samples' (SpikeLab's exporter writes seconds "
                         "for ragged and group files, milliseconds for paired ones)",
                         path=path, field="time_unit")
    if unit not in TIME_UNITS:
        raise InputError(f"unknown time unit {unit!r}; expected one of {', '.join(TIME_UNITS)}",
                         path=path, field="time_unit")
    return unit


def to_samples(values: np.ndarray, unit: str, fs: float, start_ms: float, path, field):
    """Spike times in ``unit`` → int64 samples counted from ``start_ms``."""
    values = np.asarray(values)
    if values.dtype.kind not in "iuf":
        raise InputError(f"expected numeric spike times, got dtype {values.dtype}", path=path,
                         field=field)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise InputError("spike times must be finite (found NaN or inf)", path=path, field=field)
    if unit == "samples":
        if values.dtype.kind == "f" and (values != np.round(values)).any():
            raise InputError("time_unit is 'samples' but the spike times are not whole numbers",
                             path=path, field=field)
        out = values.astype(np.int64)
        if start_ms:
            out -= round(start_ms * fs / 1000.0)
    else:
        times = values.astype(np.float64)
        if start_ms:
            times = times - (start_ms / 1000.0 if unit == "s" else start_ms)
        out = np.rint(times * fs if unit == "s" else times * fs / 1000.0).astype(np.int64)
    if out.size and int(out.min()) < 0:
        raise InputError(f"a spike lies before the start of the recording (sample "
                         f"{int(out.min())})", path=path, field=field)
    return out


def _read_times(ds, unit, fs, start_ms, path) -> np.ndarray:
    out = np.empty(ds.shape[0], dtype=np.int64)
    for lo in range(0, ds.shape[0], BLOCK):
        hi = min(lo + BLOCK, ds.shape[0])
        out[lo:hi] = to_samples(_values(ds, lo, hi), unit, fs, start_ms, path, ds.name)
    return out


# -- unit ids and table ------------------------------------------------------------------------
def _unit_ids(f, path, layout) -> np.ndarray | None:
    name = "units/id" if layout.get("nwb_like") else UNIT_IDS
    if name not in f:
        return None
    ids = _values(_dataset(f, name, path))
    if ids.dtype.kind not in "iuU":
        raise InputError(f"unit ids must be integers or strings, got dtype {ids.dtype}",
                         path=path, field=name)
    return ids


def _unit_table(f, path) -> pd.DataFrame | None:
    columns = {}
    group = f.get(UNIT_TABLE)
    if isinstance(group, h5py.Group):
        order = [_text(c) for c in np.atleast_1d(group.attrs.get("columns", []))]
        names = [c for c in order if c in group] + sorted(k for k in group if k not in order)
        for name in names:
            columns[name] = _values(_dataset(f, f"{UNIT_TABLE}/{name}", path))
    if "label" not in columns and isinstance(f.get("labels"), h5py.Dataset):
        columns["label"] = _values(_dataset(f, "labels", path))
        if columns["label"].dtype.kind != "U":
            raise InputError(f"expected label strings, got dtype {columns['label'].dtype}",
                             path=path, field="labels")
    rows = {name: values.shape[0] for name, values in columns.items()}
    if len(set(rows.values())) > 1:
        raise InputError(f"unit table columns differ in length: {rows}", path=path,
                         field=UNIT_TABLE)
    return pd.DataFrame(columns) if columns else None


def _check_count(ids, num_units, path, field):
    if ids is not None and ids.size != num_units:
        raise InputError(f"the file lists {ids.size} unit ids but {field} holds {num_units} "
                         f"units", path=path, field=UNIT_IDS)


# -- the four layouts --------------------------------------------------------------------------
def _read_raster(f, path, names, fs, start_ms, bin_ms, num_samples):
    ds = _dataset(f, names["raster"], path, ndim=2)
    if ds.dtype.kind not in "biuf":
        raise InputError(f"expected integer counts, got dtype {ds.dtype}", path=path,
                         field=ds.name)
    bin_ms = bin_ms or _number(ds.attrs, BIN_ATTRS, path, "bin width (ms)") or \
        _number(f.attrs, BIN_ATTRS, path, "bin width (ms)")
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


def _cat(parts, dtype):
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _check_index(index, num_spikes, num_units, path, field) -> np.ndarray:
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


def _read_ragged(f, path, names, fs, start_ms, time_unit, num_units):
    times = _dataset(f, names["spike_times"], path)
    index = _values(_dataset(f, names["spike_times_index"], path))
    unit = _time_unit(f, path, time_unit or ("s" if names.get("nwb_like") and
                                             "time_unit" not in f.attrs else None), times)
    ends = _check_index(index, times.shape[0], num_units, path, names["spike_times_index"])
    counts = np.diff(ends, prepend=0)
    units = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    return _read_times(times, unit, fs, start_ms, path), units, int(counts.size)


def _read_group(f, path, names, fs, start_ms, time_unit, file_ids):
    group = f[names["group"]]
    members = natsorted(group.keys())
    for name in members:
        if not isinstance(group[name], h5py.Dataset) or group[name].ndim != 1:
            raise InputError(f"expected one 1-D dataset of spike times per unit, found "
                             f"{group[name]!r}", path=path, field=f"{group.name}/{name}")
    keys = {}
    for name in members:
        uid = group[name].attrs.get("unit_id", name)
        keys[str(id_key(_text(uid) if isinstance(uid, bytes) else uid))] = name
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


def _read_paired(f, path, names, fs, start_ms, time_unit, file_ids):
    idces = _dataset(f, names["idces"], path)
    times = _dataset(f, names["times"], path)
    if idces.shape != times.shape:
        raise InputError(f"{names['idces']} has {idces.shape[0]} entries but {names['times']} "
                         f"has {times.shape[0]}; paired arrays must have the same length",
                         path=path, field=names["idces"])
    unit = _time_unit(f, path, time_unit, times)
    samples = _read_times(times, unit, fs, start_ms, path)
    which = _values(idces)
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


# -- entry point -------------------------------------------------------------------------------
def read_session(path, sampling_frequency: float | None = None, style: str | None = None,
                 time_unit: str | None = None, bin_ms: float | None = None,
                 num_units: int | None = None, **kw) -> Session:
    """Read an HDF5 spike file (any of the four layouts) as a Session.

    ``sampling_frequency`` (Hz) completes or overrides the file's ``fs_Hz``; ``style``,
    ``time_unit`` and ``bin_ms`` override the file's attributes; ``num_units`` settles a
    ``spike_times_index`` that starts with 0 in a file without unit ids. SpikeLab's loader
    keywords are accepted: ``raster_dataset``, ``raster_bin_size_ms``, ``spike_times_dataset``,
    ``spike_times_index_dataset``, ``group_per_unit``, ``idces_dataset``, ``times_dataset``,
    ``fs_Hz``, ``spike_times_unit`` / ``group_time_unit`` / ``times_unit``.
    """
    path = Path(path)
    names = dict(NAMES)
    names.update({NAME_KEYWORDS[k]: v for k, v in kw.items() if k in NAME_KEYWORDS and v})
    bin_ms = bin_ms or kw.get("raster_bin_size_ms")
    sampling_frequency = sampling_frequency or kw.get("fs_Hz")
    unit_keyword = {"ragged": "spike_times_unit", "group": "group_time_unit",
                    "paired": "times_unit"}
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise InputError(f"not a readable HDF5 file ({err})", path=path) from None
    with f:
        if is_nwb(f):
            raise InputError("this is an NWB file; open it with the NWB reader", path=path)
        style, layout = _layout(f, path, style, names)
        time_unit = time_unit or kw.get(unit_keyword.get(style, ""))
        try:
            fs = _number(f.attrs, RATE_ATTRS, path, "sampling rate (Hz)")
        except InputError:
            if sampling_frequency is None:
                raise
            fs = None
        if sampling_frequency is not None:
            if fs is not None and abs(float(sampling_frequency) - fs) > 1e-9 * fs:
                warnings.warn(f"{path}: the file says {fs:g} Hz; sampling_frequency="
                              f"{sampling_frequency} overrides it", stacklevel=2)
            fs = float(sampling_frequency)
        if fs is None:
            raise InputError("the file does not give the sampling rate (attribute fs_Hz); "
                             "pass sampling_frequency= (Hz)", path=path, field="fs_Hz")
        start_ms = _start_ms(f, path)
        num_samples = _num_samples(f, path, fs)
        file_ids = _unit_ids(f, path, layout)
        ids = file_ids
        if style == "raster":
            samples, units, count, num_samples = _read_raster(
                f, path, layout, fs, start_ms, bin_ms, num_samples)
            _check_count(file_ids, count, path, layout["raster"])
        elif style == "ragged":
            known = file_ids.size if file_ids is not None else num_units
            samples, units, count = _read_ragged(f, path, layout, fs, start_ms, time_unit, known)
        elif style == "group":
            samples, units, ids = _read_group(f, path, layout, fs, start_ms, time_unit, file_ids)
            count = ids.size
        else:
            samples, units, count = _read_paired(f, path, layout, fs, start_ms, time_unit,
                                                 file_ids)
        if ids is None and count is not None:
            ids = np.arange(count, dtype=np.int64)
        table = _unit_table(f, path)
    if num_samples is not None and samples.size and int(samples.max()) >= num_samples:
        if int(samples.max()) > num_samples:
            warnings.warn(f"{path}: spikes after the recording length the file gives "
                          f"({num_samples} samples); the length is ignored", stacklevel=2)
        num_samples = int(samples.max()) + 1 if int(samples.max()) == num_samples else None
    try:
        if units.dtype.kind == "U":
            sorting = Sorting.from_unit_ids(samples, units, fs, unit_ids=ids,
                                            num_samples=num_samples, source=str(path))
        else:
            sorting = Sorting.from_arrays(samples, units, fs, unit_ids=ids,
                                          num_samples=num_samples, source=str(path))
    except InputError as err:
        raise err.at(path) from None
    if table is not None:
        if len(table) != sorting.num_units:
            raise InputError(f"has {len(table)} rows but there are {sorting.num_units} units",
                             path=path, field=UNIT_TABLE)
        sorting = sorting.with_unit_table(table.set_axis(pd.Index(sorting.unit_ids)))
    return Session(sorting, source=str(path), format=FORMAT)


def _start_ms(f, path) -> float:
    value = np.asarray(f.attrs.get("start_time", 0.0)).reshape(-1)
    if value.size != 1 or value.dtype.kind not in "iuf" or not np.isfinite(value[0]):
        raise InputError(f"expected one number of ms, got {value!r}", path=path,
                         field="start_time")
    return float(value[0])


def _num_samples(f, path, fs) -> int | None:
    if "num_samples" in f.attrs:
        value = np.asarray(f.attrs["num_samples"]).reshape(-1)
        if value.size != 1 or value.dtype.kind not in "iu" or value[0] < 0:
            raise InputError(f"expected one integer >= 0, got {value!r}", path=path,
                             field="num_samples")
        return int(value[0])
    length = f.attrs.get("length_ms")
    if length is not None:
        length = float(np.asarray(length).reshape(-1)[0])
        if np.isfinite(length) and length > 0:
            return round(length * fs / 1000.0)
    return None
