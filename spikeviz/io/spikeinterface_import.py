"""SpikeInterface objects as spikeviz objects: a lazy Recording over a ``BaseRecording``
segment, a Sorting from a ``BaseSorting``'s spike vector (see :mod:`spikeviz.io.spikeinterface_`).
SpikeInterface objects are passed in; nothing here imports it."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import weakref
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Recording, Sorting


# -- segments -------------------------------------------------------------------------------
def _segment(obj, segment_index, what: str) -> int:
    n = obj.get_num_segments()
    if segment_index is None:
        if n != 1:
            raise InputError(f"this SpikeInterface {what} has {n} segments; spikeviz works on "
                             f"one: pass segment_index=0..{n - 1} (or concatenate them in "
                             f"SpikeInterface with si.concatenate_{what}s)",
                             field="segment_index")
        return 0
    if isinstance(segment_index, bool) or not isinstance(segment_index, int | np.integer) \
            or not 0 <= int(segment_index) < n:
        raise InputError(f"segment_index must be an integer in [0, {n}), got {segment_index!r}",
                         field="segment_index")
    return int(segment_index)


# -- ids --------------------------------------------------------------------------------------
def _ids(values, field: str) -> np.ndarray:
    """SpikeInterface ids as int64 or str (never object)."""
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind in "US":
        return values.astype(str)
    if values.dtype.kind == "O" and all(isinstance(v, str) for v in values):
        return values.astype(str)
    if values.dtype.kind == "O" and all(isinstance(v, int | np.integer) for v in values):
        return values.astype(np.int64)
    raise InputError(f"ids must be integers or strings, got dtype {values.dtype}", field=field)


# -- recordings -----------------------------------------------------------------------------
_MEMORY_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _memory_id(recording) -> str:
    """A random id per in-memory SpikeInterface object (the same object, the same id)."""
    try:
        return _MEMORY_IDS.setdefault(recording, "memory-" + uuid.uuid4().hex)
    except TypeError:
        return "memory-" + uuid.uuid4().hex


def _fingerprint_of(recording) -> str:
    """What identifies a SpikeInterface recording's traces: its JSON description plus the size
    and modification time of the files it names; a random id per object when it cannot be
    described (in-memory data: never matches a disk-cache entry of another process)."""
    try:
        if not recording.check_serializability("json"):
            return _memory_id(recording)
        description = recording.to_dict(include_annotations=False, include_properties=False,
                                        recursive=True)
    except Exception:  # any failure to describe it means "not describable"
        return _memory_id(recording)
    files: list = []

    def visit(value) -> None:
        if isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, list | tuple):
            for v in value:
                visit(v)
        elif isinstance(value, str | Path) and len(str(value)) < 4096 and os.path.exists(value):
            path = Path(value)
            found = [path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                          if p.is_file())[:2000]
            for p in found:
                stat = p.stat()
                files.append([str(p.resolve()), stat.st_size, stat.st_mtime_ns])

    visit(description)
    text = json.dumps({"si": description, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class SpikeInterfaceTraces:
    """A Recording backend over one segment of a SpikeInterface recording: indexing
    ``[sample_slice, columns]`` calls ``get_traces(start_frame, end_frame, channel_ids,
    return_in_uV=False)`` for that window only."""

    def __init__(self, recording, segment_index: int):
        self.recording = recording
        self.segment_index = int(segment_index)
        self.shape = (int(recording.get_num_samples(segment_index=self.segment_index)),
                      int(recording.get_num_channels()))
        self.dtype = np.dtype(recording.get_dtype())
        self._channel_ids = np.asarray(recording.channel_ids)
        self._fingerprint = None

    def __getitem__(self, key):
        rows, columns = key
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise IndexError("only contiguous sample windows are read")
        ids = None if isinstance(columns, slice) and columns == slice(None) else \
            self._channel_ids[columns]
        traces = self.recording.get_traces(segment_index=self.segment_index, start_frame=start,
                                           end_frame=max(stop, start), channel_ids=ids,
                                           return_in_uV=False)
        return np.asarray(traces)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = f"{_fingerprint_of(self.recording)}:{self.segment_index}"
        return self._fingerprint


def recording_from_si(recording, segment_index=None, sampling_frequency=None,
                      source: str = "") -> Recording:
    """A lazy :class:`Recording` over one segment of a SpikeInterface ``BaseRecording``.

    Gains/offsets to µV come from the ``gain_to_uV``/``offset_to_uV`` channel properties
    (``gain_known=False`` and gain 1 when absent); locations (µm, x/y of the probe's contacts;
    y/z dropped for 3-D probes: x and y are kept) from the attached probe; groups from the
    ``group`` property when integer; ``is_filtered`` from the recording's annotation.
    ``sampling_frequency`` (Hz) overrides the recording's rate when given.
    """
    segment_index = _segment(recording, segment_index, "recording")
    channel_ids = _ids(recording.channel_ids, "channel_ids")
    n = channel_ids.size
    scaleable = recording.has_scaleable_traces()
    gains = np.asarray(recording.get_channel_gains(), np.float64) if scaleable else 1.0
    offsets = np.asarray(recording.get_channel_offsets(), np.float64) if scaleable else 0.0
    locations = None
    if recording.has_probe():
        locations = np.asarray(recording.get_channel_locations(axes="xy"), np.float64)
    groups = recording.get_property("group")
    if groups is not None:
        groups = np.asarray(groups)
        groups = groups.astype(np.int64) if groups.dtype.kind in "iu" and groups.shape == (n,) \
            else None
    rate = recording.get_sampling_frequency() if sampling_frequency is None \
        else sampling_frequency
    return Recording(SpikeInterfaceTraces(recording, segment_index), rate,
                     channel_ids=channel_ids, channel_locations_um=locations,
                     channel_groups=groups, gains_to_uv=gains, offsets_to_uv=offsets,
                     gain_known=bool(scaleable), is_filtered=bool(recording.is_filtered()),
                     source=str(source))


# -- sortings -------------------------------------------------------------------------------
def _label_values(values) -> pd.Series:
    labels = pd.Series(np.asarray(values, dtype=object)).map(
        lambda v: v.strip().lower() if isinstance(v, str) and v.strip() else np.nan)
    return labels.astype(object)


def unit_table_from_properties(sorting, unit_ids: np.ndarray) -> pd.DataFrame:
    """Unit properties as columns (one row per unit): 1-D properties as they are, (units, k)
    properties as a column of length-k arrays; ``quality`` becomes ``label`` (lower-case,
    empty = unknown)."""
    columns = {}
    for key in sorting.get_property_keys():
        values = np.asarray(sorting.get_property(key))
        if values.ndim == 1:
            columns[key] = values
        else:
            columns[key] = pd.Series(list(values), dtype=object).to_numpy()
    if "quality" in columns:
        columns["label"] = _label_values(columns.pop("quality")).to_numpy()
    elif "label" in columns and np.asarray(columns["label"]).dtype.kind in "OUS":
        columns["label"] = _label_values(columns["label"]).to_numpy()
    return pd.DataFrame(columns, index=pd.Index(unit_ids, name="unit_id"))


def sorting_from_si(sorting, segment_index=None, sampling_frequency=None,
                    source: str = "") -> Sorting:
    """A :class:`Sorting` from one segment of a SpikeInterface ``BaseSorting``'s spike vector.

    Unit ids keep their type (integers as int64, strings as str); ``num_samples`` is the
    registered recording's length when the sorting has one.
    """
    segment_index = _segment(sorting, segment_index, "sorting")
    unit_ids = _ids(sorting.unit_ids, "unit_ids")
    spikes = sorting.to_spike_vector()
    if sorting.get_num_segments() > 1:
        spikes = spikes[spikes["segment_index"] == segment_index]
    num_samples = None
    if sorting.has_recording():
        num_samples = int(sorting.get_num_samples(segment_index=segment_index))
    rate = sorting.get_sampling_frequency() if sampling_frequency is None \
        else sampling_frequency
    # contiguous copies: the structured spike vector (24 bytes a spike) is not kept alive
    return Sorting.from_arrays(np.ascontiguousarray(spikes["sample_index"]),
                               spikes["unit_index"].astype(np.int32), rate,
                               unit_ids=unit_ids,
                               unit_table=unit_table_from_properties(sorting, unit_ids),
                               num_samples=num_samples, source=str(source))
