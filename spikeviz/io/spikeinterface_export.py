"""spikeviz objects as SpikeInterface objects (SpikeInterface imported inside functions).

- Recording -> a lazy ``BaseRecording`` whose one segment's ``get_traces`` reads
  ``Recording.traces(scaled=False)`` window by window. ``gain_to_uV``/``offset_to_uV`` are set
  when the gain is known (else the recording has no scaling, as in the source); locations (µm)
  become a dummy probe (circles of radius 1 µm) when every channel has one (a sync channel
  without a position leaves the recording without probe); groups are the ``group`` property;
  ``is_filtered`` is annotated. The object lives in memory only (not JSON/pickle-serialisable:
  use ``recording.save(folder=...)`` to make a copy SpikeInterface can reopen).
- Sorting -> ``NumpySorting`` built from the spike vector; unit-table columns become unit
  properties (``label`` -> ``quality``; unknown labels -> ``""``; a column of equal-length
  arrays -> a (units, k) property).
- Session -> an in-memory ``SortingAnalyzer`` (dense, no extension computed) when it has a
  recording, else its ``BaseSorting`` with nothing registered.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Recording, Session, Sorting


@functools.cache
def _classes():
    from spikeinterface.core import BaseRecording, BaseRecordingSegment

    class SpikevizRecordingSegment(BaseRecordingSegment):
        def __init__(self, recording: Recording):
            BaseRecordingSegment.__init__(self, sampling_frequency=recording.sampling_frequency)
            self._recording = recording
            self._channel_ids = np.asarray(recording.channel_ids)

        def get_num_samples(self) -> int:
            return self._recording.num_samples

        def get_traces(self, start_frame=None, end_frame=None, channel_indices=None):
            start = 0 if start_frame is None else int(start_frame)
            end = self._recording.num_samples if end_frame is None else int(end_frame)
            ids = None if channel_indices is None else self._channel_ids[channel_indices]
            if ids is not None and ids.ndim == 0:
                ids = ids.reshape(1)
            return self._recording.traces(start, end, channel_ids=ids, scaled=False)

    class SpikevizRecording(BaseRecording):
        """A spikeviz Recording seen as a one-segment SpikeInterface recording (lazy)."""

        def __init__(self, recording: Recording):
            BaseRecording.__init__(self, recording.sampling_frequency,
                                   list(np.asarray(recording.channel_ids).tolist()),
                                   recording.dtype)
            self._serializability["json"] = False
            self._serializability["pickle"] = False
            self.add_recording_segment(SpikevizRecordingSegment(recording))
            self._kwargs = {"recording": recording}

    return SpikevizRecording


def recording_to_si(recording: Recording):
    """A lazy SpikeInterface ``BaseRecording`` over ``recording`` (see the module docstring)."""
    si_recording = _classes()(recording)
    if recording.gain_known:
        si_recording.set_channel_gains(np.asarray(recording.gains_to_uv, np.float64))
        si_recording.set_channel_offsets(np.asarray(recording.offsets_to_uv, np.float64))
    locations = recording.channel_locations_um
    if locations is not None and np.isfinite(locations).all():
        si_recording.set_dummy_probe_from_locations(np.asarray(locations, np.float64))
    if recording.channel_groups is not None:
        si_recording.set_channel_groups(np.asarray(recording.channel_groups, np.int64))
    si_recording.annotate(is_filtered=bool(recording.is_filtered))
    return si_recording


def _property_values(name: str, column: pd.Series) -> np.ndarray:
    values = column.to_numpy()
    if values.dtype.kind == "O":
        cells = [np.asarray(v) for v in values]
        if cells and all(c.ndim == 1 for c in cells) and len({c.shape for c in cells}) == 1:
            return np.stack(cells)
        if all(isinstance(v, str) or v is None or (isinstance(v, float) and np.isnan(v))
               for v in values):
            return np.array(["" if not isinstance(v, str) else v for v in values])
    return values


def sorting_to_si(sorting: Sorting):
    """A ``NumpySorting`` with the same spikes, ids and unit-table columns as properties."""
    from spikeinterface.core import NumpySorting
    from spikeinterface.core.base import minimum_spike_dtype

    spikes = np.zeros(sorting.num_spikes, dtype=minimum_spike_dtype)
    spikes["sample_index"] = sorting.sample_index
    spikes["unit_index"] = sorting.unit_index
    unit_ids = np.asarray(sorting.unit_ids)
    si_sorting = NumpySorting(spikes, sorting.sampling_frequency, unit_ids)
    table = sorting.unit_table
    for name in table.columns:
        key = "quality" if name == "label" else str(name)
        if name == "quality" and "label" in table.columns:
            continue  # "label" is written as "quality"
        try:
            si_sorting.set_property(key, _property_values(key, table[name]))
        except Exception as err:
            raise InputError(f"unit-table column {name!r} cannot be a SpikeInterface "
                             f"property: {err}", field=str(name)) from None
    return si_sorting


def session_to_si(session: Session):
    """An in-memory ``SortingAnalyzer`` (dense, no extension computed; SpikeInterface still
    estimates each unit's main channel from ~100 spikes) when the session has a recording,
    else the ``BaseSorting``."""
    si_sorting = sorting_to_si(session.sorting)
    if session.recording is None:
        return si_sorting
    from spikeinterface.core import create_sorting_analyzer

    si_recording = recording_to_si(session.recording)
    return create_sorting_analyzer(si_sorting, si_recording, format="memory", sparse=False,
                                   return_in_uV=session.recording.gain_known)
