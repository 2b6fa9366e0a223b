"""Recording: lazy access to raw traces plus channel geometry and gains.

Traces live in a backend that is indexed ``backend[sample_slice, channel_selection]`` with
time on the first axis: a numpy array, a ``numpy.memmap`` or an ``h5py.Dataset``. Only the
requested window is ever read. Any other object with ``shape``, ``dtype`` and that indexing
(a slice of samples, then a slice or an increasing int array of columns) works too, e.g. a
reader over a SpikeInterface recording; such a backend defines ``fingerprint() -> str``, what
identifies its traces in cache keys (its content is never hashed: it may be hours long).
"""

from __future__ import annotations

import operator
import os

import numpy as np
import param

from ..errors import InputError
from .cache import hash_arrays, hash_json
from .ids import id_key


def _as_channel_vector(values, n: int, name: str, dtype) -> np.ndarray:
    values = np.asarray(values, dtype=dtype)
    if values.ndim == 0:
        values = np.full(n, values, dtype=dtype)
    if values.shape != (n,):
        raise InputError(f"expected one value per channel ({n}), got shape {values.shape}",
                         field=name)
    return values


class Recording(param.Parameterized):
    """Multi-channel extracellular traces, read lazily in windows.

    ``traces(start_sample, end_sample, channel_ids)`` returns (samples, channels); scaled to µV
    (float32) with ``gains_to_uv``/``offsets_to_uv``, or the raw stored values.
    """

    sampling_frequency = param.Number(default=None, allow_None=True, bounds=(0, None),
                                      inclusive_bounds=(False, True), constant=True,
                                      doc="Samples per second, Hz.")
    channel_ids = param.Array(default=None, allow_None=True, doc="Channel labels, one per column.")
    channel_locations_um = param.Array(default=None, allow_None=True, doc="""
        (channels, 2) x/y position of each contact in µm; NaN rows for channels without a
        position (e.g. a sync channel). None when the geometry is unknown.""")
    channel_groups = param.Array(default=None, allow_None=True,
                                 doc="Shank / group of each channel (int), or None.")
    gains_to_uv = param.Array(default=None, allow_None=True,
                              doc="µV per stored unit, per channel (float64).")
    offsets_to_uv = param.Array(default=None, allow_None=True,
                                doc="µV added after the gain, per channel (float64).")
    source = param.String(default="", doc="File the traces are read from, if any.")
    gain_known = param.Boolean(default=True, doc="""
        False when the file did not say how stored values convert to µV (e.g. a raw .dat
        without metadata): gains are then 1 and traces are in stored units, not µV.""")
    is_filtered = param.Boolean(default=False, doc="""
        True when the stored traces are already high-pass filtered (e.g. Phy's hp_filtered).""")

    def __init__(self, backend, sampling_frequency, channel_ids=None, channel_locations_um=None,
                 channel_groups=None, gains_to_uv=1.0, offsets_to_uv=0.0, **params):
        shape = getattr(backend, "shape", None)
        if shape is None or len(shape) != 2:
            raise InputError(f"traces must be 2-D (samples, channels), got shape {shape}",
                             path=params.get("source") or None, field="traces")
        if sampling_frequency is None or not np.isfinite(float(sampling_frequency)) or \
                float(sampling_frequency) <= 0:
            raise InputError(f"sampling_frequency must be a positive number of Hz, got "
                             f"{sampling_frequency}", path=params.get("source") or None,
                             field="sampling_frequency")
        n_channels = int(shape[1])
        if channel_ids is None:
            channel_ids = np.arange(n_channels, dtype=np.int64)
        channel_ids = np.asarray(channel_ids)
        if channel_ids.shape != (n_channels,):
            raise InputError(f"expected {n_channels} channel ids, got shape {channel_ids.shape}",
                             field="channel_ids")
        if len(np.unique(channel_ids)) != n_channels:
            raise InputError("channel ids must be unique", field="channel_ids")
        if channel_locations_um is not None:
            channel_locations_um = np.asarray(channel_locations_um, dtype=np.float64)
            if channel_locations_um.shape != (n_channels, 2):
                raise InputError(f"channel locations must have shape ({n_channels}, 2) in µm, "
                                 f"got {channel_locations_um.shape}", field="channel_locations")
        if channel_groups is not None:
            channel_groups = _as_channel_vector(channel_groups, n_channels, "channel_groups",
                                                np.int64)
        gains = _as_channel_vector(gains_to_uv, n_channels, "gains_to_uv", np.float64)
        offsets = _as_channel_vector(offsets_to_uv, n_channels, "offsets_to_uv", np.float64)
        super().__init__(sampling_frequency=float(sampling_frequency), channel_ids=channel_ids,
                         channel_locations_um=channel_locations_um,
                         channel_groups=channel_groups, gains_to_uv=gains,
                         offsets_to_uv=offsets, **params)
        self._backend = backend
        self._column = {id_key(c): i for i, c in enumerate(channel_ids.tolist())}

    @classmethod
    def from_array(cls, traces, sampling_frequency, channel_locations=None, **kwargs):
        """Recording over an in-memory (samples, channels) array (not copied)."""
        return cls(np.asarray(traces), sampling_frequency, channel_locations_um=channel_locations,
                   **kwargs)

    # -- facts ------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return int(self._backend.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self._backend.shape[1])

    @property
    def dtype(self) -> np.dtype:
        """dtype of the stored (unscaled) values."""
        return np.dtype(self._backend.dtype)

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sampling_frequency

    def channel_indices(self, channel_ids) -> np.ndarray:
        """Column positions of ``channel_ids`` (int64)."""
        try:
            return np.array([self._column[id_key(c)] for c in channel_ids], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"no channel with id {err.args[0]!r} in {self.source or 'recording'}"
                           ) from None

    def fingerprint(self) -> str:
        """sha256 (hex) identifying the traces and their scaling, for cache keys.

        File-backed traces (memmap, h5py) are identified by file path, size, modification time,
        byte offset, dtype and shape; a backend with a ``fingerprint()`` method by what it
        returns; in-memory arrays by their content. Gains, offsets, channel ids and the rate
        are always included.
        """
        backend = self._backend
        filename = getattr(backend, "filename", None)
        if isinstance(filename, bytes):
            filename = filename.decode()
        file = getattr(backend, "file", None)
        if filename is None and file is not None and hasattr(file, "filename"):
            filename = file.filename  # h5py dataset
        ids = self.channel_ids.astype("U") if self.channel_ids.dtype.kind in "OUS" \
            else self.channel_ids
        scaling = (self.gains_to_uv.tobytes(), self.offsets_to_uv.tobytes(), ids.tobytes(),
                   self.sampling_frequency)
        custom = getattr(backend, "fingerprint", None)
        if callable(custom):
            ident = str(custom())
            memo = (("custom", ident), scaling)
        elif filename:
            stat = os.stat(filename)
            ident = {"file": os.path.abspath(filename), "size": stat.st_size,
                     "mtime_ns": stat.st_mtime_ns,
                     "offset": int(getattr(backend, "offset", 0) or 0),
                     "dataset": str(getattr(backend, "name", ""))}
            memo = (tuple(ident.values()), scaling)
        else:
            # in-memory traces are hashed once per Recording (they are not expected to change)
            memo = ("memory", scaling)
        cached = getattr(self, "_fingerprint_memo", None)
        if cached is not None and cached[0] == memo:
            return cached[1]
        if not filename and not callable(custom):
            ident = hash_arrays(np.asarray(backend))
        value = hash_json({"traces": ident, "dtype": self.dtype.str,
                           "shape": list(self._backend.shape),
                           "scaling": hash_arrays(self.gains_to_uv, self.offsets_to_uv, ids),
                           "fs": self.sampling_frequency})
        self._fingerprint_memo = (memo, value)
        return value

    # -- data -------------------------------------------------------------------------------
    def traces(self, start_sample: int = 0, end_sample: int | None = None, channel_ids=None,
               scaled: bool = True) -> np.ndarray:
        """Traces in [start_sample, end_sample) for ``channel_ids`` (all by default).

        Returns (samples, channels): float32 µV when ``scaled``, else the stored dtype. Reads
        only that window from the backend.
        """
        n = self.num_samples
        try:
            start_sample = operator.index(start_sample)
            end_sample = n if end_sample is None else operator.index(end_sample)
        except TypeError:
            raise InputError(f"start_sample and end_sample must be integers (samples), got "
                             f"{start_sample!r} and {end_sample!r}", field="traces") from None
        if channel_ids is not None and (isinstance(channel_ids, str | bytes)
                                        or np.ndim(channel_ids) != 1):
            raise InputError(f"channel_ids must be a list of channel ids, got {channel_ids!r}",
                             field="channel_ids")
        if not 0 <= start_sample <= end_sample <= n:
            raise InputError(f"window [{start_sample}, {end_sample}) is outside the recording's "
                             f"[0, {n}) samples", path=self.source or None, field="traces")
        columns = None if channel_ids is None else self.channel_indices(channel_ids)
        raw = self._read(start_sample, end_sample, columns)
        if not scaled:
            return raw
        gains = self.gains_to_uv if columns is None else self.gains_to_uv[columns]
        offsets = self.offsets_to_uv if columns is None else self.offsets_to_uv[columns]
        out = raw.astype(np.float32)
        out *= gains.astype(np.float32)
        if np.any(offsets):
            out += offsets.astype(np.float32)
        return out

    def _read(self, start: int, end: int, columns: np.ndarray | None) -> np.ndarray:
        rows = slice(start, end)
        if columns is None:
            return np.asarray(self._backend[rows, :])
        if columns.size == 0:
            return np.empty((end - start, 0), dtype=self.dtype)
        step = np.diff(columns)
        if columns.size == 1 or (np.all(step == step[0]) and step[0] > 0):
            stop = int(columns[-1]) + 1
            return np.asarray(self._backend[rows, int(columns[0]):stop:int(step[0]) if
                                            columns.size > 1 else 1])
        if isinstance(self._backend, np.ndarray):
            return self._backend[rows][:, columns]
        # h5py and similar want increasing, unique indices
        unique, inverse = np.unique(columns, return_inverse=True)
        return np.asarray(self._backend[rows, unique])[:, inverse]

    def __repr__(self) -> str:
        return (f"Recording({self.num_channels} channels, {self.num_samples:,} samples, "
                f"{self.sampling_frequency:g} Hz, {self.duration_s:.1f} s, {self.dtype})")

    __str__ = __repr__
