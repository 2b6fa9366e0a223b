"""The raw recording as an NWB ``ElectricalSeries``, written chunk by chunk.

Imported only by :func:`spikeviz.io.nwb_write.write_nwb` (it imports hdmf/pynwb at module
level). Traces are written in the stored dtype through a subclass of hdmf's
``GenericDataChunkIterator`` that reads ``Recording.traces(start, end, scaled=False)``
windows of whole rows, so memory is bounded by the buffer (not the recording length).

Scaling to volts (``data * conversion * channel_conversion + offset``):

- ``conversion`` = gain × 1e-6 (V per stored unit) when every channel has the same gain;
  otherwise ``conversion`` = 1e-6 and ``channel_conversion`` = the per-channel gains (µV).
- ``offset`` = the channels' offset in V when they share one. Different per-channel offsets
  cannot be said by ``ElectricalSeries.offset``: it is then 0 and the electrodes table gets an
  ``offset`` column in volts (read by SpikeInterface's NWB reader).
- A recording whose gain is unknown is refused before writing (NWB data are volts).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from hdmf.data_utils import GenericDataChunkIterator

from ..errors import InputError
from ..model import Recording

# One buffer of rows (read from the recording at once) holds at most this many chunks and
# this many MB.
BUFFER_CHUNKS = 8
BUFFER_MB = 128.0


def check_recording(recording: Recording | None) -> None:
    """InputError when ``recording`` cannot be written as an ElectricalSeries."""
    if recording is None:
        raise InputError("include_recording=True but the session has no recording",
                         field="include_recording")
    if not recording.gain_known:
        raise InputError("the recording's gain to µV is unknown, and NWB stores volts: give "
                         "the gain when loading it (gain_to_uv) or export without "
                         "include_recording", path=recording.source or None,
                         field="gains_to_uv")
    if recording.num_samples == 0 or recording.num_channels == 0:
        raise InputError(f"the recording is empty ({recording.num_samples} samples, "
                         f"{recording.num_channels} channels)", path=recording.source or None,
                         field="traces")
    gains = np.asarray(recording.gains_to_uv)
    if not np.all(np.isfinite(gains)) or not np.all(np.isfinite(recording.offsets_to_uv)):
        raise InputError("gains and offsets to µV must be finite", field="gains_to_uv")


def offsets_per_channel(recording: Recording) -> np.ndarray | None:
    """Offsets in volts for an electrodes ``offset`` column, when they differ between
    channels (None when one ``ElectricalSeries.offset`` says it)."""
    offsets = np.asarray(recording.offsets_to_uv, dtype=np.float64)
    if np.all(offsets == offsets[0]):
        return None
    return offsets * 1e-6


class TracesIterator(GenericDataChunkIterator):
    """Whole-row windows of a Recording in its stored dtype; calls
    ``progress("recording", fraction)`` after each window is read."""

    def __init__(self, recording: Recording, chunk_mb: float = 10.0,
                 progress: Callable[[str, float], None] | None = None):
        self._recording = recording
        self._progress = progress
        self._rows_done = 0
        channels = recording.num_channels
        row_bytes = channels * recording.dtype.itemsize
        rows = max(1, min(recording.num_samples, int(chunk_mb * 1e6 // row_bytes)))
        # a few chunks per buffer: bounded memory and progress reported often enough
        per_buffer = max(1, min(BUFFER_CHUNKS, int(BUFFER_MB * 1e6 // (rows * row_bytes))))
        buffer_rows = min(recording.num_samples, rows * per_buffer)
        super().__init__(chunk_shape=(rows, channels), buffer_shape=(buffer_rows, channels))

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        rows, columns = selection
        data = self._recording.traces(int(rows.start), int(rows.stop), scaled=False)
        if (columns.start or 0) != 0 or columns.stop != data.shape[1]:
            data = data[:, columns]
        self._rows_done += data.shape[0]
        if self._progress is not None:
            self._progress("recording", self._rows_done / self._recording.num_samples)
        return np.ascontiguousarray(data)

    def _get_maxshape(self) -> tuple[int, int]:
        return (self._recording.num_samples, self._recording.num_channels)

    def _get_dtype(self) -> np.dtype:
        return self._recording.dtype


def electrical_series(recording: Recording, electrodes_region, options: dict,
                      data_io: Callable, chunk_mb: float = 10.0, progress=None,
                      source: str = "", starting_time_s: float = 0.0):
    """The ``ElectricalSeries`` (not yet written) for ``recording`` over ``electrodes_region``;
    ``starting_time_s``: seconds from session_start_time to its first sample.

    ``options`` is the validated ``Ecephys.ElectricalSeries`` metadata (name, description);
    ``data_io(iterator)`` wraps the iterator with the compression options.
    """
    from pynwb.ecephys import ElectricalSeries

    gains = np.asarray(recording.gains_to_uv, dtype=np.float64)
    offsets = np.asarray(recording.offsets_to_uv, dtype=np.float64)
    uniform = bool(np.all(gains == gains[0]))
    kwargs = {}
    if uniform:
        conversion = float(gains[0]) * 1e-6
    else:
        conversion = 1e-6
        kwargs["channel_conversion"] = gains.astype(np.float32)
    offset = float(offsets[0]) * 1e-6 if offsets_per_channel(recording) is None else 0.0
    if offsets_per_channel(recording) is not None:
        warnings.warn("NWB export: the recording's offsets differ between channels; NWB's "
                      "ElectricalSeries has one offset, so they go to an electrodes 'offset' "
                      "column (volts) that SpikeInterface and spikeviz apply but the plain "
                      "NWB formula (data * conversion + offset) does not", stacklevel=4)
    description = options.get("description") or (
        f"Extracellular traces as stored ({recording.dtype}, {recording.num_channels} "
        f"channels), written by spikeviz" + (f" from {source}" if source else "") + ". Volts = "
        "data * conversion" + ("" if uniform else " * channel_conversion") + " + offset"
        + (" (offset per channel: electrodes.offset)" if offset == 0.0 and
           offsets_per_channel(recording) is not None else "") + ".")
    if recording.is_filtered:
        kwargs["filtering"] = "High-pass filtered before storage (details not recorded)."
    return ElectricalSeries(
        name=options.get("name", "ElectricalSeries"), description=description,
        data=data_io(TracesIterator(recording, chunk_mb, progress)),
        electrodes=electrodes_region, rate=float(recording.sampling_frequency),
        starting_time=float(starting_time_s), conversion=conversion, offset=offset, **kwargs)
