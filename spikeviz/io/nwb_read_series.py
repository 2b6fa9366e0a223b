"""The ElectricalSeries side of :mod:`spikeviz.io.nwb`: its clock (rate or timestamps) and
a lazy Recording over its HDF5 dataset (see that module's docstring for the conventions)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Recording
from . import nwb_read_tables as tables

RATE_ESTIMATION_SAMPLES = 100_000


# -- clock ------------------------------------------------------------------------------------
def series_clock(series, where: str, path: Path) -> tuple[float, float, str]:
    """(rate Hz, start time s, how) of an ElectricalSeries: its rate, else its timestamps."""
    rate = getattr(series, "rate", None)
    if rate is not None:
        rate = float(rate)
        if not np.isfinite(rate) or rate <= 0:
            raise InputError(f"rate must be a positive number of Hz, got {rate}", path=path,
                             field=f"{where}/starting_time")
        start = float(series.starting_time or 0.0)
        return rate, start, f"{where} rate"
    timestamps = series.timestamps
    if timestamps is None or len(timestamps) < 2:
        raise InputError("the series has neither a rate nor two timestamps", path=path,
                         field=f"{where}/timestamps")
    head = np.asarray(timestamps[:RATE_ESTIMATION_SAMPLES], dtype=np.float64)
    step = float(np.median(np.diff(head)))
    if not np.isfinite(step) or step <= 0:
        raise InputError("timestamps must increase", path=path, field=f"{where}/timestamps")
    rate, start = 1.0 / step, float(head[0])
    last = float(timestamps[len(timestamps) - 1])
    drift = abs(last - (start + (len(timestamps) - 1) * step))
    if drift > step:
        warnings.warn(f"{path}: {where}/timestamps are irregular (the last one is {drift:.3g} s "
                      f"away from a {rate:g} Hz clock); sample indices use that estimated rate",
                      stacklevel=3)
    return rate, start, f"{where} timestamps (median interval)"


# -- recording --------------------------------------------------------------------------------
class _Column:
    """A 1-D dataset seen as (samples, 1), read in windows."""

    def __init__(self, dataset):
        self._dataset = dataset
        self.shape = (dataset.shape[0], 1)
        self.dtype = dataset.dtype
        self.file, self.name = getattr(dataset, "file", None), getattr(dataset, "name", "")

    def __getitem__(self, key):
        rows, _ = key
        return np.asarray(self._dataset[rows])[:, None]


def recording(series, where: str, electrodes: pd.DataFrame | None, clock, path: Path,
               sampling_frequency=None) -> Recording:
    data = series.data
    if getattr(data, "ndim", 0) == 1:
        data = _Column(data)
    elif getattr(data, "ndim", 0) != 2:
        raise InputError(f"expected (samples, channels) data, got shape "
                         f"{getattr(data, 'shape', None)}", path=path, field=f"{where}/data")
    if data.dtype.kind not in "iuf":
        raise InputError(f"expected numeric samples, got {data.dtype}", path=path,
                         field=f"{where}/data")
    n = data.shape[1]
    rows = np.asarray(series.electrodes.data[:], dtype=np.int64)
    if rows.shape != (n,):
        raise InputError(f"lists {rows.size} electrodes but the data has {n} channels",
                         path=path, field=f"{where}/electrodes")
    if electrodes is None or (rows.size and (rows.min() < 0 or rows.max() >= len(electrodes))):
        raise InputError("refers to rows outside the electrodes table", path=path,
                         field=f"{where}/electrodes")
    table = electrodes.iloc[rows]
    locations = table[["x_um", "y_um"]].to_numpy() if "x_um" in table else None
    groups = _group_numbers(electrodes)
    groups = None if groups is None else groups[rows]
    conversion = float(getattr(series, "conversion", 1.0) or 1.0)
    per_channel = getattr(series, "channel_conversion", None)
    per_channel = np.ones(n) if per_channel is None else np.asarray(per_channel[:], float)
    if per_channel.shape != (n,):
        raise InputError(f"has {per_channel.size} values but the data has {n} channels",
                         path=path, field=f"{where}/channel_conversion")
    offsets = np.full(n, float(getattr(series, "offset", 0.0) or 0.0))
    if not offsets.any() and "offset" in table and table["offset"].dtype.kind in "iuf":
        offsets = table["offset"].to_numpy(dtype=np.float64)  # per channel, V (SpikeInterface)
    rate = clock[0]
    if sampling_frequency is not None:
        if abs(float(sampling_frequency) - rate) > 1e-6 * rate:
            warnings.warn(f"{path}: {where} rate {rate:g} Hz overridden by "
                          f"sampling_frequency={float(sampling_frequency):g}", stacklevel=3)
        rate = float(sampling_frequency)
    parent = type(getattr(series, "parent", None)).__name__
    try:
        return Recording(data, rate, channel_ids=table.index.to_numpy(),
                         channel_locations_um=locations, channel_groups=groups,
                         gains_to_uv=conversion * per_channel * 1e6,
                         offsets_to_uv=offsets * 1e6, source=str(path),
                         is_filtered=parent == "FilteredEphys")
    except InputError as err:
        raise InputError(err.message, path=path, field=f"{where}/{err.field}") from None


def _group_numbers(electrodes: pd.DataFrame) -> np.ndarray | None:
    """Channel group of every electrode as an int: the ElectrodeGroup's name when it is an
    integer ("0", "1", as SpikeInterface and our writer name them), else the position of the
    name in order of first appearance (``results["nwb_channel_groups"]`` lists them)."""
    column = "group" if "group" in electrodes else "group_name" if "group_name" in \
        electrodes else None
    if column is None:
        return None
    names = tables.ids_from_names(electrodes[column].astype(str).to_numpy())
    if names.dtype.kind == "i":
        return names
    return pd.factorize(names, sort=False)[0]
