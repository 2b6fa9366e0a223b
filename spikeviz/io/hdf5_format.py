"""What the HDF5 spike reader (:mod:`spikeviz.io.hdf5`, :mod:`spikeviz.io.hdf5_layouts`) and
writer (:mod:`spikeviz.io.hdf5_write`) share: names and tags of the format, the bin geometry
of rasters, the time conventions in both directions, and small checked readers of datasets and
attributes. The conventions themselves are described in :mod:`spikeviz.io.hdf5`.
"""

from __future__ import annotations

import h5py
import numpy as np

from ..errors import InputError

FORMAT_TAG = "spikeviz.spikes"
FORMAT_VERSION = 1
STYLES = ("raster", "ragged", "group", "paired")
TIME_UNITS = ("s", "ms", "samples")
SUFFIXES = (".h5", ".hdf5", ".hdf")
# Dataset/group names, SpikeLab's defaults.
NAMES = {"raster": "raster", "spike_times": "spike_times",
         "spike_times_index": "spike_times_index", "group": "units", "idces": "idces",
         "times": "times"}
UNIT_IDS, UNIT_TABLE = "unit_ids", "unit_table"
BLOCK = 1 << 22  # elements per block when converting or binning


def check_choice(value, allowed: tuple[str, ...], what: str, field: str, path=None) -> str:
    """``value`` when it is one of ``allowed``, else InputError naming ``field``."""
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}",
                         path=path, field=field)
    return value


# -- raster bins -------------------------------------------------------------------------------
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


# -- times, both ways --------------------------------------------------------------------------
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


def from_samples(samples: np.ndarray, time_unit: str, fs: float) -> np.ndarray:
    """int64 samples → the stored times: seconds or ms as float64, samples as int64."""
    if time_unit == "s":
        return samples / fs
    if time_unit == "ms":
        return samples * 1000.0 / fs
    return np.asarray(samples, dtype=np.int64)


def time_dtype(time_unit: str):
    """dtype of stored spike times in ``time_unit``."""
    return np.int64 if time_unit == "samples" else np.float64


# -- small checked readers ---------------------------------------------------------------------
def as_text(value):
    """An attribute as str (bytes decoded, one-element arrays unwrapped), else None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return as_text(value.reshape(-1)[0])
    return value if isinstance(value, str) else None


def positive_number(attrs, names, path, what):
    """The first of the attributes ``names`` present, as one positive float; None if none is."""
    for name in names:
        if name in attrs:
            value = np.asarray(attrs[name]).reshape(-1)
            if value.size != 1 or value.dtype.kind not in "iuf" or not np.isfinite(value[0]) \
                    or value[0] <= 0:
                raise InputError(f"{what}: expected one positive number, got {value!r}",
                                 path=path, field=name)
            return float(value[0])
    return None


def get_dataset(f, name, path, ndim=1) -> h5py.Dataset:
    """The ``ndim``-D dataset ``name`` of ``f``, else InputError."""
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise InputError(f"expected a {ndim}-D dataset {name!r}", path=path, field=name)
    if obj.ndim != ndim:
        raise InputError(f"expected a {ndim}-D dataset, got shape {obj.shape}", path=path,
                         field=name)
    return obj


def read_values(ds: h5py.Dataset, start=0, stop=None) -> np.ndarray:
    """``ds[start:stop]`` as numbers or str; InputError for other dtypes."""
    if h5py.check_string_dtype(ds.dtype) is not None:
        return np.asarray(ds.asstr()[start:stop], dtype=str)
    if ds.dtype.kind not in "biuf":
        raise InputError(f"unsupported dtype {ds.dtype}", path=ds.file.filename, field=ds.name)
    return ds[start:stop]


def describe_contents(f, limit=12) -> str:
    """The first ``limit`` objects of the file, for error messages."""
    items = []

    def visit(name, obj):
        items.append(f"{name} {obj.shape} {obj.dtype}" if isinstance(obj, h5py.Dataset)
                     else f"{name}/")
        return True if len(items) > limit else None  # a non-None return stops the walk

    f.visititems(visit)
    return "; ".join(items[:limit]) + ("; ..." if len(items) > limit else "") or "nothing"
