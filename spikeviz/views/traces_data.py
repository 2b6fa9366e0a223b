"""The data behind the Traces view: one frame = a window of every visible channel, reduced.

A frame is produced without any UI library: read only the window (plus a filter margin when
filtering) from the Recording, filter / re-reference at view time if asked, reduce to the exact
min/max of every pixel column, and, above ``max_line_channels`` channels, draw all envelopes
into one count image (:func:`spikeviz.compute.signal.envelope_image`). In the raw mode the
envelope is taken on the stored integers (a memmap slice, never copied or converted) and scaled
to µV afterwards.

Channel rows: row 0 at the bottom is the deepest channel (smallest y), as in the raster. A
channel's trace is drawn at ``y = row + (value_uv - center_uv) * scale`` (``scale`` in rows per
µV, ``gain / spacing_uv``).

Filtered / re-referenced frames are made of fixed chunks (:data:`CHUNK_S`, 0.5 s, or 4 filter
margins when longer): each chunk is read with its filter margin (5 periods
of the low edge, clipped to the recording), scaled to µV, zero-phase filtered and/or
re-referenced (:func:`spikeviz.compute.trace_chunks.process_chunk`), kept in a byte-bounded LRU
cache (:class:`ChunkCache`, shared by the process) and reduced to the window's envelope chunk by
chunk, on a thread per chunk. A sample's value therefore depends only on its chunk (and its
margins), never on where the window falls: panning and zooming out reuse the chunks already
made, and a second look at a window is a reduction only.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count

import numpy as np
import pandas as pd

from ..compute.signal import butter_sos, column_edges, envelope_image, minmax_envelope
from ..compute.trace_chunks import envelope_into, process_chunk
from ..model.recording import Recording
from ..model.sorting import Sorting

FILTERS = ("none", "highpass", "bandpass")


@dataclass(frozen=True, eq=False)
class TraceFrame:
    """What the Traces view shows for one window (all arrays in display order).

    - ``start_sample``/``end_sample``: the window ``[start, end)`` in samples;
    - ``channel_ids``: channel of each row, row 0 (bottom, deepest) first;
    - ``mins_uv``/``maxs_uv``: (columns, channels) float32, exact min/max of the processed
      (filtered / re-referenced) traces in µV over the samples ``edges[k]:edges[k+1]`` of the
      window (``edges`` relative to ``start_sample``);
    - ``center_uv``: per-channel value drawn on the row's baseline (the median of the column
      mid-points); ``scale``: rows per µV;
    - ``image``: (height, columns) uint32 count image (row 0 at ``y_range[0]``), or None when
      the channels are drawn as lines (``mode == "lines"``);
    - ``spikes``: the overlaid spikes, one row each: ``position`` (in the sorting's spike
      vector), ``sample_index``, ``time_s``, ``unit_id``, ``channel_id`` (the unit's peak
      channel), ``row``, ``color``.
    """

    start_sample: int
    end_sample: int
    sampling_frequency: float
    channel_ids: list
    mins_uv: np.ndarray
    maxs_uv: np.ndarray
    edges: np.ndarray
    center_uv: np.ndarray
    scale: float
    spacing_uv: float
    image: np.ndarray | None
    y_range: tuple[float, float]
    spikes: pd.DataFrame
    filter: str
    cmr: bool

    @property
    def mode(self) -> str:
        return "lines" if self.image is None else "image"

    @property
    def window_s(self) -> tuple[float, float]:
        fs = self.sampling_frequency
        return self.start_sample / fs, self.end_sample / fs

    @property
    def column_times_s(self) -> np.ndarray:
        """Centre (s) of every pixel column."""
        e = self.edges.astype(np.float64)
        return (self.start_sample + 0.5 * (e[:-1] + e[1:] - 1)) / self.sampling_frequency

    def row_of(self, channel_id) -> int:
        return self.channel_ids.index(channel_id)

    def line_paths(self) -> list[np.ndarray]:
        """One (2 * columns, 2) array of (time_s, y) per channel: the envelope as a zig-zag
        min, max, min, max ... (what the lines mode draws)."""
        t = np.repeat(self.column_times_s, 2)
        paths = []
        for r in range(len(self.channel_ids)):
            y = np.empty(2 * self.mins_uv.shape[0])
            y[0::2] = self.mins_uv[:, r]
            y[1::2] = self.maxs_uv[:, r]
            paths.append(np.column_stack([t, r + (y - self.center_uv[r]) * self.scale]))
        return paths


def channel_order(recording: Recording, channel_ids=None) -> list:
    """Channel ids bottom row first: by depth (y of the locations, smallest first), then x,
    then storage order; in storage order without locations. ``channel_ids``: the visible
    subset (default: all)."""
    ids = recording.channel_ids.tolist()
    columns = np.arange(len(ids)) if channel_ids is None else \
        recording.channel_indices(channel_ids)
    locations = recording.channel_locations_um
    if locations is None:
        order = np.sort(columns)
    else:
        y = np.nan_to_num(locations[columns, 1], nan=np.inf)
        x = np.nan_to_num(locations[columns, 0], nan=np.inf)
        order = columns[np.lexsort((columns, x, y))]
    return [ids[c] for c in order.tolist()]


def _margin_samples(filter_name: str, band_hz, fs: float) -> int:
    if filter_name == "none":
        return 0
    return round(5.0 * fs / float(band_hz[0]))  # 5 periods of the low edge


# -- processed chunks ----------------------------------------------------------------------------
#: chunk length (s): 0.5 s costs 7 % of margins at 300 Hz and keeps a zoomed-in first look to
#: one short chunk; a 1-s window spans 2-3 chunks, made on as many threads
CHUNK_S = 0.5
DEFAULT_CACHE_BYTES = 512 << 20


class ChunkCache:
    """Processed chunks (float32 arrays) by key, least recently used first out, bounded by
    ``max_bytes`` (the bytes of the arrays' buffers). Thread-safe. A chunk larger than the
    budget is not kept."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _size(array: np.ndarray) -> int:
        base = array.base if isinstance(array.base, np.ndarray) else array
        return int(base.nbytes)

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, array: np.ndarray) -> None:
        size = self._size(array)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= self._size(old)
            if size > self.max_bytes:
                return
            self._items[key] = array
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= self._size(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


#: the chunks of every Traces view of this process (512 MiB: a 10-s window of 384 channels,
#: the server's memory budget; set ``TRACE_CACHE.max_bytes`` to change it)
TRACE_CACHE = ChunkCache()
_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TOKEN_COUNTER = count()
_TOKEN_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def _recording_key(recording: Recording) -> tuple:
    """Identity of a Recording object in this process plus its scaling (a changed gain or
    offset never reuses old chunks)."""
    with _TOKEN_LOCK:
        token = _TOKENS.get(recording)
        if token is None:
            token = _TOKENS[recording] = next(_TOKEN_COUNTER)
    return token, recording.gains_to_uv.tobytes(), recording.offsets_to_uv.tobytes()


def _pool() -> ThreadPoolExecutor:
    """The threads that make chunks (one per core, at most 8; the kernels release the GIL)."""
    global _POOL
    with _TOKEN_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8)),
                                       thread_name_prefix="spikeviz-traces")
    return _POOL


@dataclass(frozen=True)
class _Plan:
    """How the chunks of one setting are made."""

    recording: Recording
    key: tuple
    sos: np.ndarray | None
    cmr: bool
    margin: int
    chunk: int
    channels: np.ndarray | None  # storage positions processed (None: all)

    def bounds(self, j: int) -> tuple[int, int]:
        a = j * self.chunk
        return a, min(a + self.chunk, self.recording.num_samples)

    def compute(self, j: int) -> np.ndarray:
        rec = self.recording
        c0, c1 = self.bounds(j)
        lo, hi = max(c0 - self.margin, 0), min(c1 + self.margin, rec.num_samples)
        ids = None if self.channels is None else rec.channel_ids[self.channels]
        raw = rec.traces(lo, hi, channel_ids=ids, scaled=False)
        gains, offsets = rec.gains_to_uv, rec.offsets_to_uv
        if self.channels is not None:
            gains, offsets = gains[self.channels], offsets[self.channels]
        return process_chunk(raw, gains, offsets, self.sos, (c0 - lo, c1 - lo), self.cmr)

    def get(self, j: int, cache: ChunkCache | None) -> np.ndarray:
        if cache is None:
            return self.compute(j)
        key = (*self.key, j)
        data = cache.get(key)
        if data is None:
            data = self.compute(j)
            cache.put(key, data)
        return data


def _plan(recording: Recording, filter_name: str, band_hz, cmr: bool, order: int,
          stored: np.ndarray) -> _Plan:
    fs = recording.sampling_frequency
    sos = None
    if filter_name != "none":
        band = (band_hz[0], None) if filter_name == "highpass" else band_hz
        sos = butter_sos(fs, band, order)
    margin = _margin_samples(filter_name, band_hz, fs)
    chunk = max(round(CHUNK_S * fs), 4 * margin, 1)
    n_ch = recording.num_channels
    # the median needs every channel; a filter alone only the shown ones when they are few
    channels = None if cmr or 2 * stored.size >= n_ch else stored
    settings = (filter_name, None if sos is None else sos.tobytes(), bool(cmr), chunk, margin,
                None if channels is None else channels.tobytes())
    return _Plan(recording, (*_recording_key(recording), settings), sos, bool(cmr), margin,
                 chunk, channels)


def processed_envelope(recording: Recording, start: int, end: int, columns, n_columns: int,
                       filter_name: str = "none", band_hz=(300.0, 6000.0), cmr: bool = False,
                       order: int = 5, cache: ChunkCache | None = TRACE_CACHE):
    """Exact min/max (float32 µV, (columns, len(columns))) of every pixel column of the
    filtered / re-referenced window ``[start, end)`` for the storage positions ``columns`` (in
    output order), and the column edges. Chunks come from ``cache`` (None: not cached)."""
    columns = np.asarray(columns, dtype=np.int64)
    stored, inverse = np.unique(columns, return_inverse=True)
    plan = _plan(recording, filter_name, band_hz, cmr, order, stored)
    within = stored if plan.channels is None else np.arange(stored.size)
    n = end - start
    edges = column_edges(n, n_columns)
    mins = np.full((edges.size - 1 if n else 0, stored.size), np.inf, np.float32)
    maxs = np.full_like(mins, -np.inf)
    if n <= 0 or stored.size == 0:
        return mins[:, inverse], maxs[:, inverse], edges if n else np.zeros(1, np.int64)

    def task(j):
        c0, c1 = plan.bounds(j)
        a, b = max(start, c0), min(end, c1)
        data = plan.get(j, cache)
        return envelope_into(data[a - c0:b - c0], a - start, edges, within)

    chunks = range(start // plan.chunk, (end - 1) // plan.chunk + 1)
    parts = [task(j) for j in chunks] if len(chunks) == 1 else \
        list(_pool().map(task, chunks))
    for k0, part_min, part_max in parts:
        k1 = k0 + part_min.shape[0]
        np.minimum(mins[k0:k1], part_min, out=mins[k0:k1])
        np.maximum(maxs[k0:k1], part_max, out=maxs[k0:k1])
    return mins[:, inverse], maxs[:, inverse], edges


def processed_window(recording: Recording, start: int, end: int, filter_name: str = "none",
                     band_hz=(300.0, 6000.0), cmr: bool = False, order: int = 5,
                     cache: ChunkCache | None = TRACE_CACHE):
    """(traces, gains, offsets) of ``[start, end)`` for reduction.

    Raw: the stored values (all channels, no copy) and the per-channel µV gains/offsets to
    apply to the envelope. Filtered / re-referenced: float32 µV of all channels assembled from
    the processed chunks (what :func:`processed_envelope` reduces), gains 1 and offsets 0.
    """
    n_ch = recording.num_channels
    if filter_name == "none" and not cmr:
        return (recording.traces(start, end, scaled=False), recording.gains_to_uv,
                recording.offsets_to_uv)
    plan = _plan(recording, filter_name, band_hz, cmr, order, np.arange(n_ch))
    pieces = []
    for j in range(start // plan.chunk, (end - 1) // plan.chunk + 1 if end > start else 0):
        c0, c1 = plan.bounds(j)
        pieces.append(plan.get(j, cache)[max(start, c0) - c0:min(end, c1) - c0])
    traces = np.concatenate(pieces) if pieces else np.zeros((0, n_ch), np.float32)
    return traces, np.ones(n_ch), np.zeros(n_ch)


def auto_spacing_uv(mins_uv: np.ndarray, maxs_uv: np.ndarray, center_uv: np.ndarray) -> float:
    """Distance (µV) between channel rows: twice the median over channels of the 95th
    percentile of the envelope's excursion from the baseline (at least 1e-3)."""
    if mins_uv.size == 0:
        return 1.0
    excursion = np.maximum(np.abs(mins_uv - center_uv), np.abs(maxs_uv - center_uv))
    value = 2.0 * float(np.median(np.percentile(excursion, 95, axis=0)))
    return value if np.isfinite(value) and value > 1e-3 else 1.0


SPIKE_COLUMNS = ("position", "sample_index", "time_s", "unit_id", "channel_id", "row", "color")


def empty_spikes() -> pd.DataFrame:
    return pd.DataFrame({c: np.zeros(0, dtype=np.int64 if c in ("position", "sample_index", "row")
                                     else np.float64 if c == "time_s" else object)
                         for c in SPIKE_COLUMNS})


def window_spikes(sorting: Sorting, start: int, end: int, unit_ids, peak_channels: dict,
                  rows: dict, fs: float, colors: dict) -> pd.DataFrame:
    """Spikes of ``unit_ids`` in ``[start, end)`` samples, at their unit's peak channel row.

    Units whose peak channel is unknown or not visible are left out."""
    shown = [u for u in unit_ids if rows.get(peak_channels.get(u)) is not None]
    if not shown or sorting.num_spikes == 0:
        return empty_spikes()
    lo, hi = np.searchsorted(sorting.sample_index, [start, end], side="left")
    unit_index = sorting.unit_index[lo:hi]
    wanted = np.full(sorting.num_units, -1, dtype=np.int64)
    for i, u in enumerate(shown):
        wanted[sorting.unit_index_of(u)] = i
    which = wanted[unit_index]
    keep = np.flatnonzero(which >= 0)
    which = which[keep]
    samples = sorting.sample_index[lo:hi][keep]
    unit_col = np.array(shown, dtype=object)[which]
    channel_col = np.array([peak_channels[u] for u in shown], dtype=object)[which]
    row_col = np.array([rows[peak_channels[u]] for u in shown], dtype=np.int64)[which]
    color_col = np.array([colors[u] for u in shown], dtype=object)[which]
    return pd.DataFrame({"position": keep + lo, "sample_index": samples,
                         "time_s": samples / fs, "unit_id": unit_col,
                         "channel_id": channel_col, "row": row_col, "color": color_col})


def make_frame(recording: Recording, start: int, end: int, channel_ids: list, n_columns: int,
               height_px: int, filter_name: str = "none", band_hz=(300.0, 6000.0),
               cmr: bool = False, gain: float = 1.0, spacing_uv: float | None = None,
               max_line_channels: int = 32, spikes: pd.DataFrame | None = None,
               cache: ChunkCache | None = TRACE_CACHE) -> TraceFrame:
    """The TraceFrame of ``[start, end)`` samples for ``channel_ids`` (display order).

    Filtered / re-referenced windows are reduced from processed chunks kept in ``cache``
    (default: the process-wide :data:`TRACE_CACHE`; None: nothing kept)."""
    if filter_name not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter_name!r}")
    columns = recording.channel_indices(channel_ids)
    if filter_name == "none" and not cmr:
        # raw: the envelope of the stored values (a memmap slice, not copied), then scaled
        mins, maxs, edges = minmax_envelope(recording.traces(start, end, scaled=False),
                                            n_columns, columns)
        g = recording.gains_to_uv[columns].astype(np.float32)
        o = recording.offsets_to_uv[columns].astype(np.float32)
        lo, hi = mins.astype(np.float32) * g + o, maxs.astype(np.float32) * g + o
        mins_uv, maxs_uv = np.minimum(lo, hi), np.maximum(lo, hi)  # a negative gain flips
    else:
        mins_uv, maxs_uv, edges = processed_envelope(recording, start, end, columns, n_columns,
                                                     filter_name, band_hz, cmr, cache=cache)
    # baseline and spacing are display estimates: every few columns is plenty
    step = max(1, mins_uv.shape[0] // 256)
    sub_min, sub_max = mins_uv[::step], maxs_uv[::step]
    center = np.median(0.5 * (sub_min + sub_max), axis=0) if mins_uv.shape[0] else \
        np.zeros(len(channel_ids), np.float32)
    center = np.asarray(center, dtype=np.float32)
    spacing = auto_spacing_uv(sub_min, sub_max, center) if spacing_uv is None else \
        float(spacing_uv)
    scale = float(gain) / spacing
    n = len(channel_ids)
    y_range = (-1.0, float(n))
    image = None
    if n > max_line_channels:
        baseline = np.arange(n, dtype=np.float64) - center.astype(np.float64) * scale
        image = envelope_image(mins_uv, maxs_uv, baseline, scale, y_range, height_px)
    if spikes is None:
        spikes = empty_spikes()
    return TraceFrame(start_sample=int(start), end_sample=int(end),
                      sampling_frequency=recording.sampling_frequency,
                      channel_ids=list(channel_ids), mins_uv=mins_uv, maxs_uv=maxs_uv,
                      edges=edges, center_uv=center, scale=scale, spacing_uv=spacing,
                      image=image, y_range=y_range, spikes=spikes, filter=filter_name, cmr=cmr)
