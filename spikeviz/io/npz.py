"""SpikeInterface's NPZ sorting format (``NpzSortingExtractor``).

Keys: ``unit_ids``, ``num_segment`` ([n]), ``sampling_frequency`` ([Hz]),
``spike_indexes_seg{k}`` (int64 samples) and ``spike_labels_seg{k}`` (the unit id of each
spike). Read with ``allow_pickle=False``: object arrays are refused, never unpickled.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from ..errors import InputError
from ..model import Session, Sorting

FORMAT = "npz"
_REQUIRED = ("unit_ids", "num_segment", "sampling_frequency")


def sniff(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".npz"


def _get(npz, path: Path, key: str) -> np.ndarray:
    if key not in npz.files:
        raise InputError(f"missing array {key!r}; a SpikeInterface NPZ sorting has "
                         f"{', '.join(_REQUIRED)} and spike_indexes_seg*/spike_labels_seg*",
                         path=path, field=key)
    try:
        return npz[key]
    except ValueError as err:  # object arrays need pickle, which we refuse
        raise InputError(f"cannot read array ({err}); object arrays are not accepted",
                         path=path, field=key) from None


def _scalar(values: np.ndarray, path: Path, key: str, kind):
    values = values.reshape(-1)
    if values.size != 1 or values.dtype.kind not in "iuf":
        raise InputError(f"expected one number, got {values.size} values of dtype "
                         f"{values.dtype}", path=path, field=key)
    value = kind(values[0])
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"expected a positive number, got {value}", path=path, field=key)
    return value


def read_sorting(path: Path, sampling_frequency: float | None = None,
                 segment_index: int = 0) -> Sorting:
    """One segment of an NPZ sorting (the first by default)."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):  # np.load would talk about pickles
        raise InputError("not a readable .npz archive (no zip structure): expected arrays "
                         "written by numpy.savez, as SpikeInterface's NpzSortingExtractor "
                         "writes them",
                         path=path)
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"not a readable .npz archive ({err})", path=path) from None
    with npz:
        unit_ids = _get(npz, path, "unit_ids")
        num_segments = _scalar(_get(npz, path, "num_segment"), path, "num_segment", int)
        fs = _scalar(_get(npz, path, "sampling_frequency"), path, "sampling_frequency", float)
        if num_segments > 1 and segment_index == 0:
            warnings.warn(f"{path}: the file has {num_segments} segments; only segment 0 is "
                          f"opened (pass segment_index= for another)", stacklevel=3)
        if not 0 <= segment_index < num_segments:
            raise InputError(f"segment {segment_index} requested but the file has "
                             f"{num_segments}", path=path, field="num_segment")
        times = _get(npz, path, f"spike_indexes_seg{segment_index}")
        labels = _get(npz, path, f"spike_labels_seg{segment_index}")
    if sampling_frequency is not None and abs(float(sampling_frequency) - fs) > 1e-9 * fs:
        raise InputError(f"the file says {fs:g} Hz but sampling_frequency={sampling_frequency} "
                         f"was given", path=path, field="sampling_frequency")
    if times.shape != labels.shape:
        raise InputError(f"{times.size} spike times but {labels.size} spike labels", path=path,
                         field=f"spike_labels_seg{segment_index}")
    try:
        return Sorting.from_unit_ids(times, labels, fs, unit_ids=unit_ids, source=str(path))
    except InputError as err:
        raise err.at(path) from None


def read_session(path: Path, sampling_frequency: float | None = None,
                 segment_index: int = 0, **_ignored) -> Session:
    sorting = read_sorting(path, sampling_frequency, segment_index)
    return Session(sorting, source=str(path), format=FORMAT)


def write_sorting(sorting: Sorting, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``sorting`` as a one-segment NPZ that SpikeInterface's reader opens; atomic."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError("an NPZ sorting file must end in .npz", path=path)
    arrays = {
        "unit_ids": np.asarray(sorting.unit_ids),
        "num_segment": np.array([1], dtype=np.int64),
        "sampling_frequency": np.array([sorting.sampling_frequency], dtype=np.float64),
        "spike_indexes_seg0": np.asarray(sorting.sample_index, dtype=np.int64),
        "spike_labels_seg0": np.asarray(sorting.unit_ids)[sorting.unit_index],
    }
    with atomic_file(path, overwrite=overwrite, suffix=".npz") as tmp:
        _savez_deterministic(tmp, arrays)
    return path


def _savez_deterministic(path: Path, arrays: dict) -> None:
    """Like ``np.savez`` but with fixed zip timestamps: same arrays → same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
