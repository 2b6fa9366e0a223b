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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..compute.signal import (
    butter_sos,
    common_median_reference,
    envelope_image,
    minmax_envelope,
    sosfiltfilt_f32,
)
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


def processed_window(recording: Recording, start: int, end: int, filter_name: str = "none",
                     band_hz=(300.0, 6000.0), cmr: bool = False, order: int = 5):
    """(traces, columns, gains, offsets) of ``[start, end)`` for reduction.

    Raw: the stored values (all channels, no copy) and the per-channel µV gains/offsets to
    apply to the envelope. Filtered / re-referenced: float32 µV of all channels (common median
    reference uses every channel of the probe), gains 1 and offsets 0.
    """
    n_ch = recording.num_channels
    if filter_name == "none" and not cmr:
        return (recording.traces(start, end, scaled=False), recording.gains_to_uv,
                recording.offsets_to_uv)
    fs = recording.sampling_frequency
    margin = _margin_samples(filter_name, band_hz, fs)
    lo, hi = max(start - margin, 0), min(end + margin, recording.num_samples)
    traces = recording.traces(lo, hi, scaled=True)
    if filter_name != "none" and traces.shape[0] > 1:
        band = (band_hz[0], None) if filter_name == "highpass" else band_hz
        traces = sosfiltfilt_f32(butter_sos(fs, band, order), traces)
    traces = traces[start - lo:end - lo]
    if cmr:
        traces = common_median_reference(traces)
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
               max_line_channels: int = 32, spikes: pd.DataFrame | None = None) -> TraceFrame:
    """The TraceFrame of ``[start, end)`` samples for ``channel_ids`` (display order)."""
    if filter_name not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter_name!r}")
    traces, gains, offsets = processed_window(recording, start, end, filter_name, band_hz, cmr)
    columns = recording.channel_indices(channel_ids)
    mins, maxs, edges = minmax_envelope(traces, n_columns, columns)
    g = gains[columns].astype(np.float32)
    o = offsets[columns].astype(np.float32)
    if np.all(g == 1) and not np.any(o):
        mins_uv, maxs_uv = mins.astype(np.float32), maxs.astype(np.float32)
    else:
        lo, hi = mins.astype(np.float32) * g + o, maxs.astype(np.float32) * g + o
        mins_uv, maxs_uv = np.minimum(lo, hi), np.maximum(lo, hi)  # a negative gain flips
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
