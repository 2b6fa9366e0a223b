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

import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Session, Sorting
from .hdf5_format import (
    FORMAT_TAG,
    NAMES,
    SUFFIXES,
    UNIT_IDS,
    UNIT_TABLE,
    as_text,
    bin_edges_samples,
    bins_for,
    get_dataset,
    positive_number,
    read_values,
    to_samples,
)
from .hdf5_layouts import (
    choose_layout,
    found_layouts,
    read_group,
    read_paired,
    read_ragged,
    read_raster,
)

# Public here: the entry points and the raster/time helpers; the format's names and
# the writer's helpers live in hdf5_format.
__all__ = ["FORMAT", "bin_edges_samples", "bins_for", "is_nwb", "read_session", "sniff",
           "to_samples"]

FORMAT = "hdf5"
# The keywords of SpikeLab's loader that rename the datasets of NAMES.
NAME_KEYWORDS = {"raster_dataset": "raster", "spike_times_dataset": "spike_times",
                 "spike_times_index_dataset": "spike_times_index", "group_per_unit": "group",
                 "idces_dataset": "idces", "times_dataset": "times"}
RATE_ATTRS = ("fs_Hz", "sampling_frequency", "fs", "sampling_rate", "sample_rate",
              "samplerate", "fs_hz")


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
            return as_text(f.attrs.get("format")) == FORMAT_TAG or bool(found_layouts(f, NAMES))
    except (OSError, ValueError):
        return False


# -- unit ids and table ------------------------------------------------------------------------
def _unit_ids(f, path, layout) -> np.ndarray | None:
    name = "units/id" if layout.get("nwb_like") else UNIT_IDS
    if name not in f:
        return None
    ids = read_values(get_dataset(f, name, path))
    if ids.dtype.kind not in "iuU":
        raise InputError(f"unit ids must be integers or strings, got dtype {ids.dtype}",
                         path=path, field=name)
    return ids


def _unit_table(f, path) -> pd.DataFrame | None:
    columns = {}
    group = f.get(UNIT_TABLE)
    if isinstance(group, h5py.Group):
        order = [as_text(c) for c in np.atleast_1d(group.attrs.get("columns", []))]
        names = [c for c in order if c in group] + sorted(k for k in group if k not in order)
        for name in names:
            columns[name] = read_values(get_dataset(f, f"{UNIT_TABLE}/{name}", path))
    if "label" not in columns and isinstance(f.get("labels"), h5py.Dataset):
        columns["label"] = read_values(get_dataset(f, "labels", path))
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
        style, layout = choose_layout(f, path, style, names)
        time_unit = time_unit or kw.get(unit_keyword.get(style, ""))
        try:
            fs = positive_number(f.attrs, RATE_ATTRS, path, "sampling rate (Hz)")
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
            samples, units, count, num_samples = read_raster(
                f, path, layout, fs, start_ms, bin_ms, num_samples)
            _check_count(file_ids, count, path, layout["raster"])
        elif style == "ragged":
            known = file_ids.size if file_ids is not None else num_units
            samples, units, count = read_ragged(f, path, layout, fs, start_ms, time_unit, known)
        elif style == "group":
            samples, units, ids = read_group(f, path, layout, fs, start_ms, time_unit, file_ids)
            count = ids.size
        else:
            samples, units, count = read_paired(f, path, layout, fs, start_ms, time_unit,
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
