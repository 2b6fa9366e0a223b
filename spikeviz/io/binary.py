"""Raw binary traces (.dat / .bin / .raw): time-major, any dtype, optional header.

The file holds ``num_samples x num_channels`` values, sample after sample, after ``offset``
header bytes. It is opened as a read-only memmap; nothing is loaded until a window is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import Recording, Session, Sorting

FORMAT = "binary"
SUFFIXES = (".dat", ".bin", ".raw")


def sniff(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SUFFIXES


def memmap_traces(path: Path, num_channels: int, dtype, offset: int = 0,
                  expected_bytes: int | None = None) -> np.ndarray:
    """Read-only (samples, channels) memmap over ``path``; clear errors on a bad size.

    ``expected_bytes`` (e.g. from a SpikeGLX meta) is checked against the file size.
    """
    path = Path(path)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise InputError(f"unknown dtype {dtype!r}", path=path, field="dtype") from None
    if dtype.kind not in "iuf" or dtype.itemsize > 8:
        raise InputError(f"samples must be integers or floats (e.g. int16, float32), not "
                         f"{dtype}", path=path, field="dtype")
    if not path.is_file():
        raise InputError("raw data file not found", path=path)
    if int(num_channels) <= 0:
        raise InputError(f"num_channels must be positive, got {num_channels}", path=path,
                         field="num_channels")
    size = path.stat().st_size
    if expected_bytes is not None and size != expected_bytes:
        raise InputError(f"file has {size:,} bytes but its metadata declares "
                         f"{expected_bytes:,}; the recording is truncated or does not belong "
                         f"to this metadata", path=path, field="fileSizeBytes")
    if offset < 0 or offset > size:
        raise InputError(f"header offset {offset} is outside the file's {size} bytes",
                         path=path, field="offset")
    frame = int(num_channels) * dtype.itemsize
    payload = size - offset
    if payload % frame:
        raise InputError(f"{payload:,} data bytes are not a whole number of samples of "
                         f"{num_channels} channels x {dtype} ({frame} bytes); check "
                         f"num_channels, dtype and offset", path=path, field="num_channels")
    num_samples = payload // frame
    if num_samples == 0:
        return np.empty((0, int(num_channels)), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset,
                     shape=(num_samples, int(num_channels)))


def read_recording(path: Path, sampling_frequency: float | None = None,
                   num_channels: int | None = None, dtype="int16", offset: int = 0,
                   gain_to_uv=None, offset_to_uv=0.0, channel_locations=None,
                   channel_ids=None, **_ignored) -> Recording:
    """Raw binary as a lazy Recording. ``sampling_frequency`` (Hz) and ``num_channels`` are
    required; ``offset`` is the header size in bytes; ``gain_to_uv`` (µV per stored unit, one
    number or one per channel) is unknown by default: traces are then in stored units and
    ``gain_known`` is False."""
    path = Path(path)
    if sampling_frequency is None:
        raise InputError("a raw binary file does not say its sampling rate: pass "
                         "sampling_frequency= (--sampling-frequency; Hz)", path=path,
                         field="sampling_frequency")
    if num_channels is None:
        raise InputError("a raw binary file does not say its channel count: pass "
                         "num_channels= (--num-channels)", path=path, field="num_channels")
    traces = memmap_traces(path, int(num_channels), dtype, int(offset))
    return Recording(traces, sampling_frequency, channel_ids=channel_ids,
                     channel_locations_um=channel_locations,
                     gains_to_uv=1.0 if gain_to_uv is None else gain_to_uv,
                     offsets_to_uv=offset_to_uv, source=str(path),
                     gain_known=gain_to_uv is not None)


def empty_session(recording: Recording, fmt: str) -> Session:
    """A Session with the recording and no units (raw data opened on its own)."""
    sorting = Sorting.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int32),
                                  recording.sampling_frequency, unit_ids=np.zeros(0, np.int64),
                                  num_samples=recording.num_samples, source=recording.source)
    return Session(sorting, recording=recording, source=recording.source, format=fmt)


def read_session(path: Path, sampling_frequency: float | None = None, **kwargs) -> Session:
    """Raw binary opened on its own: a Session with the recording and no units."""
    return empty_session(read_recording(path, sampling_frequency=sampling_frequency, **kwargs),
                         FORMAT)
