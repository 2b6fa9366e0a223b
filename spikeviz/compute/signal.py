"""Filtering of raw traces, window by window, for computations on unfiltered recordings.

Templates, amplitudes, noise levels and PCA of a raw (wide-band) recording are dominated by
the LFP unless the traces are band-passed first, as phy and SpikeInterface's preprocessing do.
:func:`filtered_reader` wraps a ``read_raw(start, end)`` so that every window it returns is
band-passed and in µV: it reads ``margin`` extra samples on each side (clipped to the
recording), filters forward and backward (zero phase) with a Butterworth filter in
second-order sections, and cuts the margins off. Results therefore do not depend on where
the windows fall, up to the filter's decay over the margin (documented per parameter).

Display helpers (used by the Traces view, pure numpy/numba): :func:`column_edges` and
:func:`minmax_envelope` reduce a window to the exact min/max of every pixel column;
:func:`sosfiltfilt_f32` is a float32 zero-phase Butterworth (same result as
``scipy.signal.sosfiltfilt`` with odd padding, several times faster);
:func:`common_median_reference` subtracts the exact median across channels of every sample
(both run the kernels of :mod:`spikeviz.compute.trace_chunks`);
:func:`envelope_image` draws envelopes of many channels into one count image.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import signal

from ..errors import InputError
from .trace_chunks import median_reference_inplace, process_chunk

# SpikeInterface's bandpass_filter defaults.
DEFAULT_BAND_HZ = (300.0, 6000.0)
DEFAULT_ORDER = 5
# Extra time read on each side of a window so that the zero-phase filter settles, in periods
# of the low edge: 5 (16.7 ms at 300 Hz), SpikeInterface's recommended minimum.
MARGIN_PERIODS = 5.0


def butter_sos(sampling_frequency: float, band_hz=DEFAULT_BAND_HZ,
               order: int = DEFAULT_ORDER) -> np.ndarray:
    """Second-order sections of a Butterworth band-pass (or high-pass when the upper edge is
    None or at/above Nyquist). ``band_hz``: (low, high) in Hz."""
    low, high = band_hz
    nyquist = sampling_frequency / 2.0
    if low is None or not 0 < float(low) < nyquist:
        raise InputError(f"the filter's low edge must lie in (0, {nyquist:g}) Hz, got {low}",
                         field="filter_band_hz")
    if high is None or float(high) >= nyquist:
        return signal.butter(order, float(low), btype="highpass", fs=sampling_frequency,
                             output="sos")
    if float(high) <= float(low):
        raise InputError(f"the filter's band must have low < high, got {band_hz}",
                         field="filter_band_hz")
    return signal.butter(order, [float(low), float(high)], btype="bandpass",
                         fs=sampling_frequency, output="sos")


def filtered_reader(read_raw, num_samples: int, sampling_frequency: float, gains, offsets,
                    band_hz=DEFAULT_BAND_HZ, order: int = DEFAULT_ORDER,
                    margin_ms: float | None = None):
    """``read(start_sample, end_sample) -> float32 µV (samples, channels)``, band-passed.

    ``read_raw`` returns stored values; ``gains``/``offsets`` (per channel) scale them to µV
    before filtering. Use the returned reader with gains 1 and offsets 0. ``margin_ms``:
    extra time read on each side (default 5 periods of the low edge).
    """
    sos = butter_sos(sampling_frequency, band_hz, order)
    if margin_ms is None:
        margin_ms = MARGIN_PERIODS * 1000.0 / float(band_hz[0])
    margin = round(margin_ms * sampling_frequency / 1000.0)
    gains = np.asarray(gains, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.float64)

    def read(start_sample: int, end_sample: int) -> np.ndarray:
        lo = max(int(start_sample) - margin, 0)
        hi = min(int(end_sample) + margin, int(num_samples))
        raw = np.asarray(read_raw(lo, hi))
        if raw.shape[0] == 0:
            return np.zeros((0, raw.shape[1]), np.float32)
        # scipy's sosfiltfilt (odd padding, clipped for tiny windows), float64 states
        return process_chunk(raw, gains, offsets, sos,
                             keep=(start_sample - lo, end_sample - lo))

    return read


# -- display helpers ----------------------------------------------------------------------------
def column_edges(num_samples: int, n_columns: int) -> np.ndarray:
    """Sample edges (int64, ``n_columns + 1`` values from 0 to ``num_samples``) of pixel
    columns: column k holds samples ``[edges[k], edges[k + 1])``. ``n_columns`` is clipped to
    ``[1, num_samples]`` so that every column holds at least one sample."""
    n_columns = max(1, min(int(n_columns), int(num_samples))) if num_samples > 0 else 1
    return (np.arange(n_columns + 1, dtype=np.int64) * int(num_samples)) // n_columns


@numba.njit(cache=True, nogil=True)
def _envelope(traces, edges, mins, maxs):
    n_cols = edges.shape[0] - 1
    n_ch = traces.shape[1]
    for k in range(n_cols):
        a, b = edges[k], edges[k + 1]
        lo = mins[k]
        hi = maxs[k]
        for j in range(n_ch):
            lo[j] = traces[a, j]
            hi[j] = traces[a, j]
        for t in range(a + 1, b):
            row = traces[t]
            for j in range(n_ch):
                v = row[j]
                lo[j] = min(lo[j], v)
                hi[j] = max(hi[j], v)


def minmax_envelope(traces: np.ndarray, n_columns: int, columns=None):
    """Exact min and max of every pixel column of ``traces`` (samples, channels).

    Returns ``(mins, maxs, edges)``: two (columns, channels) arrays of ``traces``' dtype and the
    column edges of :func:`column_edges` (column k covers samples ``edges[k]:edges[k+1]``).
    ``columns``: channel positions to reduce, in output order (default: all). Works on a
    memmap slice without copying it; no sample is skipped, so a one-sample spike always
    reaches its column's min or max.
    """
    traces = np.asarray(traces)
    if traces.ndim != 2:
        raise InputError(f"traces must be (samples, channels), got shape {traces.shape}",
                         field="traces")
    columns = np.arange(traces.shape[1], dtype=np.int64) if columns is None else \
        np.asarray(columns, dtype=np.int64)
    n = traces.shape[0]
    edges = column_edges(n, n_columns)
    k = edges.size - 1
    mins = np.zeros((k if n else 0, columns.size), dtype=traces.dtype)
    maxs = mins.copy()
    if n == 0 or columns.size == 0:
        return mins, maxs, edges if n else np.zeros(1, np.int64)
    # reduce in storage order (a contiguous block is a view, never a copy), then reorder
    order = np.argsort(columns, kind="stable")
    stored = columns[order]
    if stored[0] >= 0 and np.all(np.diff(stored) == 1):
        block = traces[:, stored[0]:stored[-1] + 1]
    else:
        block = traces[:, stored]
    if not block.dtype.isnative:
        block = block.astype(block.dtype.newbyteorder("="))
    if block.strides[1] != block.itemsize:
        block = np.ascontiguousarray(block)
    _envelope(block, edges, mins, maxs)
    if np.any(order != np.arange(order.size)):
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        mins, maxs = mins[:, inverse], maxs[:, inverse]
    return mins, maxs, edges


def sosfiltfilt_f32(sos: np.ndarray, traces: np.ndarray, padlen: int | None = None) -> np.ndarray:
    """Zero-phase filter of ``traces`` (samples, channels) along time, float32 out.

    Same result (up to float32 rounding of the values) as ``scipy.signal.sosfiltfilt(sos,
    traces, axis=0, padtype="odd", padlen=padlen)``; ``padlen`` defaults to scipy's and is
    clipped to the window. ``sos``: e.g. :func:`butter_sos`. Kernel:
    :func:`spikeviz.compute.trace_chunks.process_chunk` (float64 states, vectorised over
    channels).
    """
    x = np.asarray(traces)
    if x.ndim != 2:
        raise InputError(f"traces must be (samples, channels), got shape {x.shape}",
                         field="traces")
    if x.dtype.kind not in "fiu":
        x = x.astype(np.float32)
    return process_chunk(x, 1.0, 0.0, sos, padlen=padlen)


def common_median_reference(traces: np.ndarray) -> np.ndarray:
    """``traces`` (samples, channels) minus, at every sample, the median across channels;
    float32 out (SpikeInterface's ``common_reference(reference="global",
    operator="median")``). Exact: the median is selected, not approximated."""
    x = np.array(traces, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise InputError(f"traces must be (samples, channels), got shape {x.shape}",
                         field="traces")
    return median_reference_inplace(x)


@numba.njit(cache=True, nogil=True)
def _draw_envelopes(mins, maxs, baseline, scale, y0, y1, image):
    height = image.shape[0]
    n_cols, n_ch = mins.shape
    per_y = height / (y1 - y0)
    for c in range(n_ch):
        prev_lo = 0
        prev_hi = -1
        for k in range(n_cols):
            lo = int(np.floor((baseline[c] + mins[k, c] * scale - y0) * per_y))
            hi = int(np.floor((baseline[c] + maxs[k, c] * scale - y0) * per_y))
            if k > 0:  # join the previous column: no gap in a steep edge
                lo, hi = min(lo, prev_hi), max(hi, prev_lo)
            prev_lo = int(np.floor((baseline[c] + mins[k, c] * scale - y0) * per_y))
            prev_hi = int(np.floor((baseline[c] + maxs[k, c] * scale - y0) * per_y))
            lo = max(lo, 0)
            hi = min(hi, height - 1)
            for j in range(lo, hi + 1):
                image[j, k] += 1


def envelope_image(mins, maxs, baseline, scale: float, y_range, height: int) -> np.ndarray:
    """Draw the envelopes of many channels into one (height, columns) uint32 count image.

    Channel c is drawn at ``y = baseline[c] + value * scale``; image row 0 is at the bottom
    (``y_range[0]``), row ``height - 1`` at the top. A pixel counts the channels whose
    envelope covers it in that column; each column is joined to the previous one so steep
    edges stay connected. ``mins``/``maxs``: (columns, channels) from :func:`minmax_envelope`.
    """
    mins = np.asarray(mins, dtype=np.float32)
    maxs = np.asarray(maxs, dtype=np.float32)
    image = np.zeros((max(int(height), 1), mins.shape[0]), dtype=np.uint32)
    y0, y1 = float(y_range[0]), float(y_range[1])
    if mins.size and y1 > y0:
        _draw_envelopes(mins, maxs, np.asarray(baseline, dtype=np.float64), float(scale),
                        y0, y1, image)
    return image
