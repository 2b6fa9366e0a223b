"""Auto/cross-correlograms and ISI histograms from the spike vector.

Conventions (the same as SpikeInterface's ``compute_correlograms`` and
``compute_isi_histograms``, checked bin for bin in the tests):

- Milliseconds become samples with Python's ``round``: the half window is
  ``round(fs * window_ms / 2 * 1e-3)`` samples, the bin ``round(fs * bin_ms * 1e-3)`` samples,
  and the half window is cut down to a multiple of the bin. Bin edges (ms) are
  ``k * bin_samples * 1e3 / fs`` for ``k = -num_bins/2 .. num_bins/2``.
- ``counts[i, j, b]`` counts the ordered pairs (spike ``a`` of unit ``i``, spike ``c`` of unit
  ``j``, ``a != c``) whose lag ``t_a - t_c`` (samples) lies in the half-open bin
  ``[edge_b, edge_b+1)``. So a peak in the positive half of ``counts[i, j]`` means unit ``i``
  fires *after* unit ``j``; ``counts[i, j, b] == counts[j, i, -1 - b]`` except at exact bin
  edges, where the half-open convention breaks the mirror symmetry.
  Lags cover ``[-half_window, +half_window)``: ``-half_window`` is counted (first bin),
  ``+half_window`` is not. Two distinct spikes at the same sample have lag 0 in both orders,
  so they land in the first non-negative bin of ``counts[i, j]`` and of ``counts[j, i]``
  (twice in an auto-correlogram). A spike is never paired with itself.
- ISI histograms use the *full* window (``round(fs * window_ms * 1e-3)`` samples, cut to a
  multiple of the bin) and ``numpy.histogram`` bins: half-open, except that the last bin also
  holds intervals equal to the window.

Algorithm: every pair is visited once, scanning forward from each reference spike. The pair
is recorded in an int32 accumulator ``acc[i, j, slot]`` where ``slot = 2 * (lag // bin)`` for a
lag that is an exact multiple of the bin and ``2 * (lag // bin) + 1`` otherwise, so that both
the pair's own bin (floor of ``+lag``) and its mirror bin (floor of ``-lag``, i.e. minus the
ceiling of ``+lag``) can be rebuilt exactly when the accumulator is folded into the int64
counts. Reference units are processed in blocks whose accumulator rows fit in ~2 MB of cache,
each block's spikes in time order; blocks go to worker threads (``n_jobs``), and since a block
owns its rows they fold into disjoint parts of the shared output without locks. The int32
accumulator is folded before it has seen 2**31 pairs, so it cannot overflow.

Memory: the result is ``k * k * num_bins`` int64 (1000 units x 100 bins = 800 MB: ask for a
subset with ``unit_indices`` when ``k`` is large), plus a ``k * k`` int64 zero-lag table,
4 bytes per spike (spike positions grouped by block) and one ~2 MB accumulator per running
block (one unit row, ``4 * k * (num_bins + 1)`` bytes, when that is larger).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ..errors import InputError
from .spikes import first_unsorted

# An int32 accumulator cannot overflow while it has seen fewer pairs than this; one spike has
# fewer than _MAX_SPIKES partners.
_PAIR_LIMIT = _MAX_SPIKES = int(np.iinfo(np.int32).max)
# Size of one block's int32 accumulator: small enough to stay in cache (at least one unit row
# is always allowed). Units are processed in blocks of rows of this size.
_ACCUMULATOR_BYTES = 2 * 2**20


# -- input checks shared with rates.py --------------------------------------------------------
def _positive(value, field: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"expected a number, got {value!r}", field=field) from None
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"must be a finite number > 0, got {value!r}", field=field)
    return value


def _spike_vector(sample_index, unit_index, num_units, require_sorted=True):
    """Validated contiguous (int64 sample_index, int32 unit_index, num_units)."""
    sample_index = np.asarray(sample_index)
    unit_index = np.asarray(unit_index)
    if sample_index.ndim != 1 or (sample_index.size and sample_index.dtype.kind not in "iu"):
        raise InputError(f"expected a 1-D integer array of samples, got dtype "
                         f"{sample_index.dtype} shape {sample_index.shape}", field="sample_index")
    if unit_index.ndim != 1 or (unit_index.size and unit_index.dtype.kind not in "iu"):
        raise InputError(f"expected a 1-D integer array of unit positions, got dtype "
                         f"{unit_index.dtype} shape {unit_index.shape}", field="unit_index")
    if unit_index.shape != sample_index.shape:
        raise InputError(f"has {unit_index.size} entries but sample_index has "
                         f"{sample_index.size}", field="unit_index")
    if isinstance(num_units, bool) or not isinstance(num_units, int | np.integer) \
            or num_units < 0:
        raise InputError(f"expected an integer >= 0, got {num_units!r}", field="num_units")
    num_units = int(num_units)
    if unit_index.size:
        lo, hi = int(unit_index.min()), int(unit_index.max())
        if lo < 0 or hi >= num_units:
            raise InputError(f"unit positions must lie in [0, {num_units}), found "
                             f"{lo if lo < 0 else hi}", field="unit_index")
    sample_index = np.ascontiguousarray(sample_index, dtype=np.int64)
    unit_index = np.ascontiguousarray(unit_index, dtype=np.int32)
    if require_sorted:
        bad = first_unsorted(sample_index)
        if bad >= 0:
            raise InputError(f"must be sorted by time; sample_index[{bad}] < "
                             f"sample_index[{bad - 1}]", field="sample_index")
    return sample_index, unit_index, num_units


def _select_units(sample_index, unit_index, num_units, unit_indices):
    """Keep the spikes of ``unit_indices`` (in that order) and renumber them 0..k-1."""
    if unit_indices is None:
        return sample_index, unit_index, num_units
    chosen = np.asarray(unit_indices)
    if chosen.ndim != 1 or (chosen.size and chosen.dtype.kind not in "iu"):
        raise InputError("expected a 1-D sequence of integer unit positions",
                         field="unit_indices")
    chosen = chosen.astype(np.int64)
    if chosen.size and (chosen.min() < 0 or chosen.max() >= num_units):
        raise InputError(f"unit positions must lie in [0, {num_units})", field="unit_indices")
    if np.unique(chosen).size != chosen.size:
        raise InputError("unit positions must not repeat", field="unit_indices")
    new_position = np.full(num_units, -1, dtype=np.int32)
    new_position[chosen] = np.arange(chosen.size, dtype=np.int32)
    if chosen.size == num_units:
        return sample_index, new_position[unit_index], num_units
    mapped = new_position[unit_index]
    keep = mapped >= 0
    return sample_index[keep], mapped[keep], int(chosen.size)


def gather_units(sample_index, unit_positions) -> tuple[np.ndarray, np.ndarray, int]:
    """The spikes of a few units taken by their positions: ``(sample_index, unit_index, k)``.

    ``unit_positions``: one int array per unit (in the order wanted) of its positions in the
    spike vector ``sample_index``. The result keeps the spike-vector order (positions
    ascending) and numbers the units ``0 .. k-1`` in the order given, so it equals what
    ``unit_indices`` selects by masking the whole vector, in O(selected spikes · log).
    """
    k = len(unit_positions)
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), 0
    sizes = [int(np.asarray(p).size) for p in unit_positions]
    positions = np.concatenate([np.asarray(p, dtype=np.int64) for p in unit_positions])
    labels = np.repeat(np.arange(k, dtype=np.int32), sizes)
    order = np.argsort(positions, kind="stable")
    sample_index = np.asarray(sample_index)
    return (np.ascontiguousarray(sample_index[positions[order]], dtype=np.int64),
            labels[order], k)


def _n_workers(n_jobs) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs == 0 \
            or n_jobs < -1:
        raise InputError(f"expected a positive integer or -1 (all cores), got {n_jobs!r}",
                         field="n_jobs")
    return (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)


# -- bins ------------------------------------------------------------------------------------
def correlogram_bins(sampling_frequency: float, window_ms: float = 50.0, bin_ms: float = 1.0
                     ) -> tuple[int, int, np.ndarray]:
    """Correlogram bins: ``(window_samples, bin_samples, bin_edges_ms)``.

    ``window_samples`` is the full width (twice the half window, a multiple of
    ``bin_samples``), so lags cover ``[-window_samples // 2, window_samples // 2)`` samples and
    ``num_bins = window_samples // bin_samples``. ``bin_edges_ms`` is float64 of length
    ``num_bins + 1``. Rounding follows SpikeInterface (see the module docstring).
    """
    fs = _positive(sampling_frequency, "sampling_frequency")
    window_ms = _positive(window_ms, "window_ms")
    bin_ms = _positive(bin_ms, "bin_ms")
    half = round(fs * window_ms / 2 * 1e-3)
    bin_samples = round(fs * bin_ms * 1e-3)
    if bin_samples < 1:
        raise InputError(f"{bin_ms} ms is less than half a sample at {fs} Hz", field="bin_ms")
    half -= half % bin_samples
    if half < bin_samples:
        raise InputError(f"a {window_ms} ms window holds no {bin_ms} ms bin on each side of "
                         f"zero", field="window_ms")
    num_half = half // bin_samples
    edges = np.arange(-num_half, num_half + 1, dtype=np.int64) * bin_samples * 1e3 / fs
    return 2 * half, bin_samples, edges


def _slot_table(half: int, bin_samples: int) -> np.ndarray:
    lag = np.arange(half + 1, dtype=np.int64)
    return (2 * (lag // bin_samples) + (lag % bin_samples != 0)).astype(np.uint32)


# -- kernels ---------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _forward_pairs(sample_index, unit_index, half, num_units):
    """Per unit: number of (spike of this unit, later spike within ``half`` samples) pairs."""
    n = sample_index.shape[0]
    pairs = np.zeros(num_units, dtype=np.int64)
    end = 0
    for a in range(n):
        ta = sample_index[a]
        if end <= a:
            end = a + 1
        while end < n and sample_index[end] - ta <= half:
            end += 1
        pairs[unit_index[a]] += end - a - 1
    return pairs


@numba.njit(cache=True, nogil=True)
def _fold(acc, rows, num_units, num_half, counts, zero_lag):
    """Add the accumulator rows into counts / zero_lag, then clear them.

    ``acc[r, j, slot]`` holds pairs (earlier spike of unit ``rows[r]``, later spike of ``j``).
    """
    num_slots = 2 * num_half + 1
    for r in range(rows.shape[0]):
        i = rows[r]
        for j in range(num_units):
            base = (r * num_units + j) * num_slots
            zero_lag[i, j] += acc[base]
            for m in range(1, num_half + 1):  # lag t_i - t_j = -d, floor = -ceil(d / bin)
                counts[i, j, num_half - m] += acc[base + 2 * m - 1] + acc[base + 2 * m]
            for b in range(num_half):  # lag t_j - t_i = +d, floor(d / bin), d < half
                counts[j, i, num_half + b] += acc[base + 2 * b] + acc[base + 2 * b + 1]
            for s in range(num_slots):
                acc[base + s] = 0


@numba.njit(cache=True, nogil=True)
def _group_by_block(unit_index, block_of_unit, num_blocks):
    """Spike positions grouped by block (time order kept inside a block) and block offsets.

    Spikes of units in no block (``block_of_unit == -1``) are left out.
    """
    offsets = np.zeros(num_blocks + 1, dtype=np.int64)
    for i in range(unit_index.shape[0]):
        b = block_of_unit[unit_index[i]]
        if b >= 0:
            offsets[b + 1] += 1
    for b in range(num_blocks):
        offsets[b + 1] += offsets[b]
    order = np.empty(offsets[num_blocks], dtype=np.int32)
    cursor = offsets[:-1].copy()
    for i in range(unit_index.shape[0]):
        b = block_of_unit[unit_index[i]]
        if b >= 0:
            order[cursor[b]] = i
            cursor[b] += 1
    return order, offsets


@numba.njit(cache=True, nogil=True)
def _scan(sample_index, unit_index, order, row_of_unit, rows, half, num_half, slot_of_lag,
          acc, counts, zero_lag, pair_limit):
    """Count every pair whose earlier spike is one of ``order`` (the spikes of ``rows``).

    The int32 accumulator is folded into the int64 counts before it has seen more than
    ``pair_limit`` pairs, so it cannot overflow.
    """
    n = sample_index.shape[0]
    num_units = counts.shape[0]
    num_slots = np.uint64(2 * num_half + 1)
    row_size = np.uint64(num_units) * num_slots
    end = 0
    pairs = 0
    for p in range(order.shape[0]):
        a = order[p]
        ta = sample_index[a]
        if end <= a:
            end = a + 1
        while end < n and sample_index[end] - ta <= half:
            end += 1
        if pairs > 0 and pairs + (end - a - 1) > pair_limit:
            _fold(acc, rows, num_units, num_half, counts, zero_lag)
            pairs = 0
        pairs += end - a - 1
        row = acc[np.uint64(row_of_unit[unit_index[a]]) * row_size:]
        for c in range(np.uint64(a + 1), np.uint64(end)):
            row[np.uint64(unit_index[c]) * num_slots
                + slot_of_lag[np.uint64(sample_index[c] - ta)]] += np.int32(1)
    _fold(acc, rows, num_units, num_half, counts, zero_lag)


@numba.njit(cache=True, nogil=True)
def _isi_kernel(sample_index, unit_index, window, bin_of_interval, hist):
    last = np.full(hist.shape[0], -1, dtype=np.int64)
    seen = np.zeros(hist.shape[0], dtype=np.bool_)
    for i in range(sample_index.shape[0]):
        u = unit_index[i]
        t = sample_index[i]
        if seen[u]:
            d = t - last[u]
            if d <= window:
                hist[u, bin_of_interval[d]] += 1
        seen[u] = True
        last[u] = t


# -- planning --------------------------------------------------------------------------------
def _blocks(pairs_per_unit: np.ndarray, workers: int, max_rows: int) -> list[np.ndarray]:
    """Units with pairs, in blocks of at most ``max_rows``, balanced by pair count."""
    active = np.flatnonzero(pairs_per_unit)
    num_blocks = max(-(-active.size // max_rows), min(workers, active.size))
    loads = np.zeros(num_blocks, dtype=np.int64)
    members: list[list[int]] = [[] for _ in range(num_blocks)]
    for unit in active[np.argsort(-pairs_per_unit[active], kind="stable")]:
        room = [b for b in range(num_blocks) if len(members[b]) < max_rows]
        b = min(room, key=lambda b: loads[b])
        members[b].append(int(unit))
        loads[b] += pairs_per_unit[unit]
    return [np.sort(np.asarray(m, dtype=np.int64)) for m in members if m]


def compute_correlograms(sample_index, unit_index, num_units, sampling_frequency,
                         window_ms=50.0, bin_ms=1.0, unit_indices=None, n_jobs=1
                         ) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs auto/cross-correlograms, identical to SpikeInterface's.

    ``sample_index``: int64 spike samples, sorted by time; ``unit_index``: int unit positions
    in ``[0, num_units)``; ``sampling_frequency`` in Hz; ``window_ms`` is the full window
    (lags from ``-window_ms / 2`` to ``+window_ms / 2``), ``bin_ms`` the bin width.
    ``unit_indices``: optional unit positions (a subset, in the order wanted); default all.
    ``n_jobs``: worker threads (-1 = all cores).

    Returns ``(counts, bin_edges_ms)``: ``counts`` int64 ``(k, k, num_bins)`` where
    ``counts[i, j, b]`` is the number of pairs (spike ``a`` of unit ``i``, spike ``c`` of unit
    ``j``, ``a != c``) with ``t_a - t_c`` in ``[bin_edges_ms[b], bin_edges_ms[b + 1])``
    (SpikeInterface's lag sign); ``bin_edges_ms`` float64 ``(num_bins + 1,)``. Memory is
    ``8 * k * k * num_bins`` bytes for the result plus a bounded accumulator per thread.
    """
    window_samples, bin_samples, edges = correlogram_bins(sampling_frequency, window_ms, bin_ms)
    workers = _n_workers(n_jobs)
    t, u, k = _spike_vector(sample_index, unit_index, num_units)
    t, u, k = _select_units(t, u, k, unit_indices)
    half = window_samples // 2
    num_half = half // bin_samples
    num_slots = 2 * num_half + 1
    counts = np.zeros((k, k, 2 * num_half), dtype=np.int64)
    if t.size < 2:
        return counts, edges
    if t.size > _MAX_SPIKES:
        raise InputError(f"{t.size} spikes: at most {_MAX_SPIKES} are supported",
                         field="sample_index")
    pairs = _forward_pairs(t, u, half, k)
    if not pairs.any():
        return counts, edges
    if k * num_slots >= 2**32:
        raise InputError(f"{k} units x {num_slots} lag slots is too many; ask for a subset",
                         field="unit_indices")
    zero_lag = np.zeros((k, k), dtype=np.int64)
    slot_of_lag = _slot_table(half, bin_samples)
    max_rows = max(1, _ACCUMULATOR_BYTES // (4 * k * num_slots))
    blocks = _blocks(pairs, workers, max_rows)
    block_of_unit = np.full(k, -1, dtype=np.int32)
    row_of_unit = np.zeros(k, dtype=np.int32)
    for b, rows in enumerate(blocks):
        block_of_unit[rows] = b
        row_of_unit[rows] = np.arange(rows.size)
    order, offsets = _group_by_block(u, block_of_unit, len(blocks))

    def work(b):
        rows = blocks[b]
        acc = np.zeros(rows.size * k * num_slots, dtype=np.int32)
        _scan(t, u, order[offsets[b]:offsets[b + 1]], row_of_unit, rows, half, num_half,
              slot_of_lag, acc, counts, zero_lag, _PAIR_LIMIT)

    if workers == 1 or len(blocks) == 1:
        for b in range(len(blocks)):
            work(b)
    else:
        with ThreadPoolExecutor(min(workers, len(blocks))) as pool:
            list(pool.map(work, range(len(blocks))))
    counts[:, :, num_half] += zero_lag
    return counts, edges


# -- ISI histograms --------------------------------------------------------------------------
def _isi_bins(sampling_frequency, window_ms, bin_ms) -> tuple[int, int, np.ndarray]:
    fs = _positive(sampling_frequency, "sampling_frequency")
    window_ms = _positive(window_ms, "window_ms")
    bin_ms = _positive(bin_ms, "bin_ms")
    if bin_ms * 1e-3 < 1 / fs:
        raise InputError(f"must be at least one sample ({1e3 / fs} ms)", field="bin_ms")
    if bin_ms > window_ms:
        raise InputError(f"bin_ms={bin_ms} is larger than the window", field="window_ms")
    window = round(fs * window_ms * 1e-3)
    bin_samples = round(fs * bin_ms * 1e-3)
    window -= window % bin_samples
    edges = np.arange(0, window + bin_samples, bin_samples, dtype=np.int64) * 1e3 / fs
    return window, bin_samples, edges


def compute_isi_histograms(sample_index, unit_index, num_units, sampling_frequency,
                           window_ms=50.0, bin_ms=1.0, unit_indices=None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Inter-spike-interval histograms, identical to SpikeInterface's.

    Inputs as for :func:`compute_correlograms`. Intervals between consecutive spikes of a
    unit (samples) are binned from 0 to the full ``window_ms``; bins are half-open except the
    last, which also holds intervals equal to the window (``numpy.histogram``). Returns
    ``(counts, bin_edges_ms)``: int64 ``(k, num_bins)`` and float64 ``(num_bins + 1,)``.
    """
    window, bin_samples, edges = _isi_bins(sampling_frequency, window_ms, bin_ms)
    t, u, k = _spike_vector(sample_index, unit_index, num_units)
    t, u, k = _select_units(t, u, k, unit_indices)
    num_bins = window // bin_samples
    hist = np.zeros((k, num_bins), dtype=np.int64)
    bin_of_interval = np.minimum(np.arange(window + 1, dtype=np.int64) // bin_samples,
                                 num_bins - 1)
    if t.size > 1:
        _isi_kernel(t, u, window, bin_of_interval, hist)
    return hist, edges
