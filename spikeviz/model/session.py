"""Session: a sorting, optionally its recording, and what is derived from them."""

from __future__ import annotations

import numpy as np
import param

from ..errors import InputError
from .recording import Recording
from .sorting import Sorting

# Relative difference tolerated between the sorting's and the recording's sampling rates
# (SpikeGLX reports a calibrated rate such as 30000.27 Hz where params.py says 30000).
_RATE_TOLERANCE = 1e-3


class Session(param.Parameterized):
    """What one analysis works on: a Sorting, an optional Recording, derived results."""

    sorting = param.ClassSelector(class_=Sorting, doc="The spike sorting.")
    recording = param.ClassSelector(class_=Recording, default=None, allow_None=True,
                                    doc="Raw traces, when available.")
    source = param.String(default="", doc="Path the session was loaded from.")
    format = param.String(default="memory", doc="Format of the source (phy, npz, ...).")
    channel_ids = param.Array(default=None, allow_None=True, doc="""
        Channel ids of the probe; the recording's when there is one, else from the sorting's
        own files (e.g. Phy's channel_map.npy), else None.""")
    channel_locations_um = param.Array(default=None, allow_None=True,
                                       doc="(channels, 2) x/y in µm matching channel_ids.")
    results = param.Dict(default={}, doc="""
        Derived results by name, e.g. 'kilosort_templates' (Templates) read from a Phy
        folder.""")

    def __init__(self, sorting: Sorting, recording: Recording | None = None, **params):
        if not isinstance(sorting, Sorting):
            raise InputError(f"expected a spikeviz Sorting, got {type(sorting).__name__}",
                             field="sorting")
        if recording is not None:
            if not isinstance(recording, Recording):
                raise InputError(f"expected a spikeviz Recording, got "
                                 f"{type(recording).__name__}", field="recording")
            rate_s, rate_r = sorting.sampling_frequency, recording.sampling_frequency
            if abs(rate_s - rate_r) > _RATE_TOLERANCE * rate_r:
                raise InputError(f"the sorting's sampling frequency ({rate_s:g} Hz) differs "
                                 f"from the recording's ({rate_r:g} Hz)",
                                 path=recording.source or None, field="sampling_frequency")
            if sorting.num_spikes and int(sorting.sample_index[-1]) >= recording.num_samples:
                raise InputError(f"the sorting has spikes up to sample "
                                 f"{int(sorting.sample_index[-1])} but the recording has only "
                                 f"{recording.num_samples} samples",
                                 path=recording.source or None, field="num_samples")
            if sorting.num_samples != recording.num_samples:
                sorting = sorting.with_num_samples(recording.num_samples)
            params.setdefault("channel_ids", recording.channel_ids)
            params.setdefault("channel_locations_um", recording.channel_locations_um)
        super().__init__(sorting=sorting, recording=recording, **params)

    @property
    def num_channels(self) -> int | None:
        return None if self.channel_ids is None else int(np.asarray(self.channel_ids).size)

    def info(self) -> dict:
        """Summary used by ``spikeviz info``: JSON-serialisable."""
        s = self.sorting
        labels = s.labels.value_counts().sort_index()
        return {
            "source": self.source,
            "format": self.format,
            "num_units": s.num_units,
            "num_spikes": s.num_spikes,
            "sampling_frequency": s.sampling_frequency,
            "duration_s": s.duration_s,
            "num_channels": self.num_channels,
            "has_recording": self.recording is not None,
            "labels": {str(k): int(v) for k, v in labels.items()},
            "unit_properties": [str(c) for c in s.unit_table.columns],
        }

    def __repr__(self) -> str:
        rec = repr(self.recording) if self.recording is not None else "no recording"
        return f"Session({self.format}: {self.sorting!r}, {rec})"

    __str__ = __repr__
