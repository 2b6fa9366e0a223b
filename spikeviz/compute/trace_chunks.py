"""Processed chunks of raw traces for display: zero-phase filter, common median reference and
the exact min/max envelope of float32 chunks, as fast numba kernels.

:func:`process_chunk` turns stored values (samples, channels) into float32 µV: scaled with the
per-channel gains/offsets, optionally zero-phase filtered with second-order sections and
optionally re-referenced to the median across channels. The filter is the same computation as
``scipy.signal.sosfiltfilt(sos, raw * gains + offsets, axis=0)`` (odd padding, scipy's
``padlen``, each pass starting from the sections' steady state ``sosfilt_zi`` scaled by the
first sample): the states are float64, only the samples between the two passes and the output
are float32, so the result is scipy's up to float32 rounding of the values (a relative error of
about 1e-7 of the window's amplitude). The cascade runs vectorised over channels (the inner
loop walks contiguous memory) and the input scaling is fused into the forward pass.

:func:`median_reference_inplace` subtracts the exact median across channels of every sample.
It first tries a bracket around the previous sample's median (one branch-free pass that counts
the values below the bracket and collects those inside it) and selects within the few collected
values when the median's rank falls inside; when the median left the bracket it tries twice
next to it, on the side it went, then runs a full quickselect of the row. Every path gives the
exact order statistic; the bracket only saves work.

:func:`envelope_into` reduces a float32 chunk into the min/max of the pixel columns it
overlaps, so a window made of several chunks is reduced chunk by chunk without being
assembled.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import signal

from ..errors import InputError
from .select import lower_middle, median_inplace, select_rank

# target number of values inside the median's bracket
_BRACKET_TARGET = 16
_NO_SCALE = np.zeros(0, np.float64)


def scipy_padlen(sos: np.ndarray) -> int:
    """``scipy.signal.sosfiltfilt``'s default ``padlen`` for ``sos``."""
    sos = np.asarray(sos)
    return 3 * (2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum())))


# -- filter --------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _scaled_row(raw, gains, offsets, i, x):
    row = raw[i]
    for c in range(x.shape[0]):
        x[c] = row[c] * gains[c] + offsets[c]


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _cascade(sos, z1, z2, x):
    """One sample of every channel (``x``, float64) through all sections, in place."""
    m = x.shape[0]
    for s in range(sos.shape[0]):
        b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
        za = z1[s]
        zb = z2[s]
        for c in range(m):
            xc = x[c]
            y = b0 * xc + za[c]
            za[c] = b1 * xc - a1 * y + zb[c]
            zb[c] = b2 * xc - a2 * y
            x[c] = y


@numba.njit(cache=True, nogil=True)
def _forward(raw, gains, offsets, sos, zi, padlen, out):
    """Forward pass over the odd extension of ``raw * gains + offsets`` into ``out``
    (``n + 2 * padlen`` rows, float32)."""
    n, m = raw.shape
    n_sec = sos.shape[0]
    x = np.empty(m, np.float64)
    first = np.empty(m, np.float64)
    last = np.empty(m, np.float64)
    _scaled_row(raw, gains, offsets, 0, first)
    _scaled_row(raw, gains, offsets, n - 1, last)
    # the first extended sample sets the initial state
    if padlen > 0:
        _scaled_row(raw, gains, offsets, padlen, x)
        for c in range(m):
            x[c] = 2.0 * first[c] - x[c]
    else:
        for c in range(m):
            x[c] = first[c]
    z1 = np.empty((n_sec, m), np.float64)
    z2 = np.empty((n_sec, m), np.float64)
    for s in range(n_sec):
        for c in range(m):
            z1[s, c] = zi[s, 0] * x[c]
            z2[s, c] = zi[s, 1] * x[c]
    for t in range(n + 2 * padlen):
        if t < padlen:
            _scaled_row(raw, gains, offsets, padlen - t, x)
            for c in range(m):
                x[c] = 2.0 * first[c] - x[c]
        elif t < padlen + n:
            _scaled_row(raw, gains, offsets, t - padlen, x)
        else:
            _scaled_row(raw, gains, offsets, 2 * n + padlen - 2 - t, x)
            for c in range(m):
                x[c] = 2.0 * last[c] - x[c]
        _cascade(sos, z1, z2, x)
        row = out[t]
        for c in range(m):
            row[c] = x[c]


@numba.njit(cache=True, nogil=True)
def _backward(data, sos, zi, stop):
    """Backward pass over ``data`` (float32, in place) from its last row down to ``stop``."""
    n, m = data.shape
    n_sec = sos.shape[0]
    x = np.empty(m, np.float64)
    z1 = np.empty((n_sec, m), np.float64)
    z2 = np.empty((n_sec, m), np.float64)
    for s in range(n_sec):
        for c in range(m):
            z1[s, c] = zi[s, 0] * data[n - 1, c]
            z2[s, c] = zi[s, 1] * data[n - 1, c]
    for t in range(n - 1, stop - 1, -1):
        row = data[t]
        for c in range(m):
            x[c] = row[c]
        _cascade(sos, z1, z2, x)
        for c in range(m):
            row[c] = x[c]


@numba.njit(cache=True, nogil=True)
def _scale(raw, gains, offsets, out):
    for t in range(raw.shape[0]):
        row = raw[t]
        dst = out[t]
        for c in range(row.shape[0]):
            dst[c] = row[c] * gains[c] + offsets[c]


# -- common median reference ---------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _bracket_half_width(buf, m, med):
    """Half-width of a bracket around ``med`` holding about the target count of ``buf[:m]``
    (a full row already partitioned around its median by quickselect)."""
    k = m // 2
    above = min(k + _BRACKET_TARGET // 2, m - 1)
    below = max(k - _BRACKET_TARGET // 2, 0)
    hi = select_rank(buf[k:], m - k, above - k) if above > k else buf[k]
    lo = select_rank(buf[:k], k, below) if k > 0 and below < k else buf[k]
    h = max(hi - med, med - lo)
    return h if h > 0 else 1e-6 * max(abs(med), 1.0)


@numba.njit(cache=True, nogil=True)
def _median_reference(x, raw, gains, offsets, from_raw):
    """float32 ``x`` minus the median of every row, in place; with ``from_raw`` each row is
    first set to ``raw * gains + offsets`` (fused: the row is still in cache when its median is
    taken). The bracket [lo, hi] only decides which path finds the median; every path selects
    the exact order statistics."""
    n, m = x.shape
    buf = np.empty(m, np.float32)
    k_hi = m // 2
    k_lo = k_hi - 1 if m % 2 == 0 else k_hi
    lo = np.float32(np.inf)
    hi = np.float32(-np.inf)
    h = 0.0
    for t in range(n):
        row = x[t]
        if from_raw:
            src = raw[t]
            for c in range(m):
                row[c] = src[c] * gains[c] + offsets[c]
        found = False
        below = 0
        inside = 0
        for _ in range(3):
            below = 0
            inside = 0
            for c in range(m):  # branch-free: count below, collect inside
                v = row[c]
                below += v < lo
                buf[inside] = v
                inside += (v >= lo) & (v <= hi)
            if below <= k_lo and k_hi < below + inside:
                found = True
                break
            if not h > 0.0:
                break
            # the median left the bracket: look next to it, on the side it went
            if below > k_lo:
                hi = lo
                lo = np.float32(lo - 2.0 * h)
            else:
                lo = hi
                hi = np.float32(hi + 2.0 * h)
            h *= 1.5
        if found:
            r = k_hi - below
            med = select_rank(buf, inside, r)
            if m % 2 == 0:
                med = (lower_middle(buf, r) + med) * np.float32(0.5)
            if inside > 4 * _BRACKET_TARGET:
                h *= 0.5
            elif inside < _BRACKET_TARGET // 2:
                h *= 1.5
        else:
            for c in range(m):
                buf[c] = row[c]
            med = median_inplace(buf, m)
            h = _bracket_half_width(buf, m, med)
        # the median of float32 values is a float32 value (a mean of two is halved exactly)
        med32 = np.float32(med)
        lo = np.float32(med32 - h)
        hi = np.float32(med32 + h)
        for c in range(m):
            row[c] = row[c] - med32


def median_reference_inplace(traces: np.ndarray) -> np.ndarray:
    """Subtract from ``traces`` (samples, channels; float32, C-contiguous) the median across
    channels of every sample, in place, and return it (an even channel count uses the mean of
    the two middle values, as ``numpy.median``)."""
    if traces.dtype != np.float32 or not traces.flags.c_contiguous or traces.ndim != 2:
        raise InputError("traces must be a C-contiguous float32 (samples, channels) array",
                         field="traces")
    if traces.size:
        _median_reference(traces, traces, _NO_SCALE, _NO_SCALE, False)
    return traces


# -- a processed chunk ---------------------------------------------------------------------------
def process_chunk(raw: np.ndarray, gains, offsets, sos: np.ndarray | None = None,
                  keep: tuple[int, int] | None = None, cmr: bool = False,
                  padlen: int | None = None) -> np.ndarray:
    """float32 µV of ``raw`` (stored values, (samples, channels)) rows ``keep = (lo, hi)``.

    ``raw * gains + offsets`` (per channel) is zero-phase filtered with ``sos`` (None: not
    filtered) over all of ``raw`` (the rows outside ``keep`` are its margins), then the rows
    ``[lo, hi)`` are kept and, with ``cmr``, re-referenced to the median across channels.
    Equals ``scipy.signal.sosfiltfilt(sos, raw * gains + offsets, axis=0)[lo:hi]`` up to
    float32 rounding; ``padlen`` (default scipy's) is clipped to ``len(raw) - 1``. The result
    is C-contiguous (possibly a view into a slightly larger buffer).
    """
    raw = np.asarray(raw)
    if raw.ndim != 2:
        raise InputError(f"raw must be (samples, channels), got shape {raw.shape}", field="raw")
    if raw.dtype.kind not in "iuf":
        raise InputError(f"raw must hold integers or floats, got dtype {raw.dtype}",
                         field="raw")
    n, m = raw.shape
    lo, hi = (0, n) if keep is None else (int(keep[0]), int(keep[1]))
    if not 0 <= lo <= hi <= n:
        raise InputError(f"keep must lie within [0, {n}], got {keep}", field="keep")
    if not raw.dtype.isnative:
        raw = raw.astype(raw.dtype.newbyteorder("="))
    if raw.strides[1] != raw.itemsize:
        raw = np.ascontiguousarray(raw)
    gains = np.broadcast_to(np.asarray(gains, dtype=np.float64), (m,)).copy()
    offsets = np.broadcast_to(np.asarray(offsets, dtype=np.float64), (m,)).copy()
    if sos is None or n == 0:
        out = np.empty((hi - lo, m), np.float32)
        if cmr and out.size:
            _median_reference(out, raw[lo:hi], gains, offsets, True)
            return out
        _scale(raw[lo:hi], gains, offsets, out)
    else:
        sos = np.ascontiguousarray(sos, dtype=np.float64)
        if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
            raise InputError(f"sos must be (sections, 6), got shape {sos.shape}", field="sos")
        padlen = scipy_padlen(sos) if padlen is None else int(padlen)
        padlen = max(0, min(padlen, n - 1))
        ext = np.empty((n + 2 * padlen, m), np.float32)
        zi = signal.sosfilt_zi(sos)
        _forward(raw, gains, offsets, sos, zi, padlen, ext)
        _backward(ext, sos, zi, padlen + lo)
        out = ext[padlen + lo:padlen + hi]
    if cmr and out.size:
        _median_reference(out, out, _NO_SCALE, _NO_SCALE, False)
    return out


# -- envelope ------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _envelope_into(data, first, edges, k0, mins, maxs, c0, c1):
    """Rows of ``data`` are window samples ``first + i``; columns ``k0 + r`` of the window
    (``edges``) accumulate into ``mins[r]``/``maxs[r]`` over channels ``c0:c1``."""
    n = data.shape[0]
    for r in range(mins.shape[0]):
        k = k0 + r
        a = max(edges[k], first) - first
        b = min(edges[k + 1], first + n) - first
        lo = mins[r]
        hi = maxs[r]
        for t in range(a, b):
            row = data[t, c0:c1]
            for j in range(c1 - c0):
                v = row[j]
                lo[j] = min(lo[j], v)
                hi[j] = max(hi[j], v)


@numba.njit(cache=True, nogil=True)
def _envelope_into_gather(data, first, edges, k0, mins, maxs, columns):
    n = data.shape[0]
    for r in range(mins.shape[0]):
        k = k0 + r
        a = max(edges[k], first) - first
        b = min(edges[k + 1], first + n) - first
        lo = mins[r]
        hi = maxs[r]
        for t in range(a, b):
            row = data[t]
            for j in range(columns.shape[0]):
                v = row[columns[j]]
                lo[j] = min(lo[j], v)
                hi[j] = max(hi[j], v)


def envelope_into(data: np.ndarray, first: int, edges: np.ndarray, columns=None):
    """Min/max of the window's pixel columns that the chunk ``data`` overlaps.

    ``data`` (rows, channels) holds window samples ``first .. first + rows`` (relative to the
    window start, as ``edges`` from :func:`spikeviz.compute.signal.column_edges`);
    ``columns``: sorted channel positions within ``data`` (default all). Returns
    ``(k0, mins, maxs)``: the first column touched and float32 (columns touched, channels)
    arrays, +inf/-inf where a column has none of its samples in the chunk (combine chunks
    with ``numpy.minimum``/``maximum``).
    """
    edges = np.asarray(edges, dtype=np.int64)
    n = data.shape[0]
    k0 = max(int(np.searchsorted(edges, first, side="right")) - 1, 0)
    k1 = min(int(np.searchsorted(edges, first + n, side="left")), edges.size - 1)
    width = data.shape[1] if columns is None else len(columns)
    mins = np.full((max(k1 - k0, 0), width), np.inf, np.float32)
    maxs = np.full_like(mins, -np.inf)
    if n == 0 or width == 0 or k1 <= k0:
        return k0, mins, maxs
    columns = None if columns is None else np.asarray(columns, dtype=np.int64)
    if columns is None or np.all(np.diff(columns) == 1):
        c0 = 0 if columns is None else int(columns[0])
        _envelope_into(data, int(first), edges, k0, mins, maxs, c0, c0 + width)
    else:
        _envelope_into_gather(data, int(first), edges, k0, mins, maxs, columns)
    return k0, mins, maxs


def warm_up() -> None:
    """Run every kernel once on tiny inputs (loads them from numba's on-disk cache, or compiles
    them on the very first run) for int16 recordings, so no click pays for it."""
    raw = np.arange(-40, 40, dtype=np.int16).reshape(20, 4)
    sos = signal.butter(2, [0.1, 0.5], btype="bandpass", output="sos")
    for filtered in (None, sos):
        out = process_chunk(raw, 0.5, 0.0, filtered, (2, 18), cmr=True)
        envelope_into(out, 0, np.array([0, 8, 16], dtype=np.int64))
        envelope_into(out, 0, np.array([0, 8, 16], dtype=np.int64), [0, 2])
