"""Chunked reads of raw traces: spike snippets, streamed templates and spike amplitudes.

Raw traces are reached only through ``read_raw(start_sample, end_sample)``, which returns
``(samples, channels)`` in the stored dtype (e.g. an int16 memmap slice); per-channel ``gains``
and ``offsets`` (float) convert to µV: ``uV = raw * gain + offset``. The kernels convert only
the samples they use, in float64, and round the result to float32.

Spikes are grouped by chunks of ``chunk_samples`` of spike time; each group is read once, as one
window that covers its first spike minus the left margin to its last spike plus the right
margin, clipped to the recording, so ``read_raw`` never returns more than
``chunk_samples + nbefore + nafter`` rows and memory does not grow with recording length.
Samples outside ``[0, num_samples)`` are 0 µV (snippets of spikes near the ends are zero
padded, as SpikeInterface does).

With ``n_jobs > 1`` chunks are processed by a thread pool (the numba kernels release the GIL);
``read_raw`` is only ever called from the calling thread, one chunk at a time, and at most
``n_jobs`` chunks are held at once.

Templates, peak channels and sparsity live in :mod:`spikeviz.compute.unit_templates` (not
``templates``: that name is the ``sv.compute.templates`` function) and are re-exported here.
"""

from __future__ import annotations

import operator
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numba
import numpy as np

from spikeviz.compute.spikes import order_by_unit, unit_offsets
from spikeviz.compute.unit_templates import (  # public names re-exported
    _split,
    compute_templates,
    moments,
    peak_amplitudes,
    peak_channels,
    peak_shifts,
    radius_sparsity,
    sparsity_from_templates,
    sparsity_mask,
)
from spikeviz.errors import InputError

__all__ = [
    "accumulate_templates", "compute_spike_amplitudes", "compute_templates",
    "extract_waveforms", "peak_amplitudes", "peak_channels", "peak_shifts", "radius_sparsity",
    "select_random_spikes", "sparsity_from_templates", "sparsity_mask",
]


# -- spike selection ----------------------------------------------------------------------------
def select_random_spikes(sample_index, unit_index, num_units, max_spikes_per_unit=500, seed=0,
                         start_sample=0, end_sample=None) -> np.ndarray:
    """Seeded uniform sample of up to ``max_spikes_per_unit`` spikes per unit.

    Only spikes with ``start_sample <= sample_index < end_sample`` (samples; ``end_sample=None``
    means no upper bound) are candidates: the caller passes the margin that keeps snippets
    inside the recording. Units are drawn in order 0..num_units-1 from one
    ``numpy.random.default_rng(seed)``, each without replacement among its candidates in
    spike-vector order, so the selection is the one SpikeInterface's
    ``random_spikes_selection(method="uniform", seed=seed)`` makes for the same spike vector
    (``margin_size=m`` there is ``start_sample=m, end_sample=num_samples - m`` here).

    Returns int64 positions into the spike vector, ascending.
    """
    sample_index = np.asarray(sample_index)
    unit_index = np.asarray(unit_index)
    num_units = _check_units(unit_index, num_units, sample_index.shape[0])
    max_spikes_per_unit = operator.index(max_spikes_per_unit)
    if max_spikes_per_unit < 0:
        raise InputError(f"max_spikes_per_unit must be >= 0, got {max_spikes_per_unit}",
                         field="max_spikes_per_unit")
    inside = sample_index >= start_sample
    if end_sample is not None:
        inside &= sample_index < end_sample
    if inside.all():  # the common case: no copy of the spike vector
        units = np.ascontiguousarray(unit_index)
        offsets = unit_offsets(units, num_units)
        candidates, _ = order_by_unit(units, sample_index, offsets)
    else:
        keep = np.flatnonzero(inside)
        units = unit_index[keep]
        offsets = unit_offsets(units, num_units)
        order, _ = order_by_unit(units, sample_index[keep], offsets)
        candidates = keep[order]
    rng = np.random.default_rng(seed)
    chosen = []
    for u in range(num_units):
        n = int(offsets[u + 1] - offsets[u])
        pick = rng.choice(n, size=min(max_spikes_per_unit, n), replace=False, shuffle=False)
        chosen.append(candidates[offsets[u] + pick].astype(np.int64))
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64, copy=False)


# -- chunk machinery ----------------------------------------------------------------------------
def _chunk_groups(sample_index, num_samples, chunk_samples):
    """[(i0, i1)] runs of spikes whose times fall in consecutive chunks of ``chunk_samples``.

    Spikes before 0 join the first chunk and spikes at or after ``num_samples`` the last, so
    the number of chunks never exceeds the recording's.
    """
    n = sample_index.shape[0]
    if n == 0:
        return []
    edges = np.arange(chunk_samples, max(num_samples, 1), chunk_samples, dtype=np.int64)
    bounds = np.concatenate(([0], np.searchsorted(sample_index, edges), [n]))
    return [(int(a), int(b)) for a, b in pairwise(bounds) if b > a]


def _run_chunks(read_raw, num_samples, num_channels, sample_index, groups, left, right,
                make_tasks, n_jobs, per_worker=False):
    """Read each group's window once and run ``make_tasks(i0, i1, traces, lo)``'s callables.

    Spike k of a group needs rows ``[s_k - left, s_k + right)``; the window read is their
    union clipped to ``[0, num_samples)`` and ``lo`` is its first sample (``traces`` is an
    empty array when the whole window lies outside the recording).

    With ``n_jobs > 1`` and ``per_worker=False`` the chunks' tasks go to a pool, at most
    ``n_jobs`` chunks in flight. With ``per_worker=True`` ``make_tasks`` returns one task per
    worker and worker j runs task j of every chunk, in chunk order, on its own thread (for
    tasks that own a slice of shared accumulators); each worker's queue holds at most two
    chunks, so a worker may lag behind without stopping the others.
    """
    def load(i0, i1):
        lo = max(int(sample_index[i0]) - left, 0)
        hi = min(int(sample_index[i1 - 1]) + right, num_samples)
        if hi <= lo:
            return np.zeros((0, num_channels), dtype=np.int16), lo
        traces = read_raw(lo, hi)
        if type(traces) is not np.ndarray:  # memmap, h5py, ...: a plain ndarray view
            traces = np.asarray(traces)
        if traces.ndim != 2 or traces.shape != (hi - lo, num_channels):
            raise InputError(f"read_raw({lo}, {hi}) returned shape {traces.shape}, expected "
                             f"({hi - lo}, {num_channels}) (samples, channels)", field="read_raw")
        return traces, lo

    if n_jobs == 1:
        for i0, i1 in groups:
            traces, lo = load(i0, i1)
            for task in make_tasks(i0, i1, traces, lo):
                task()
        return
    if per_worker:
        _run_per_worker(groups, load, make_tasks, n_jobs)
        return
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        pending = deque()
        for i0, i1 in groups:
            traces, lo = load(i0, i1)
            pending.extend(pool.submit(task) for task in make_tasks(i0, i1, traces, lo))
            while len(pending) >= n_jobs:
                pending.popleft().result()
        for f in pending:
            f.result()


def _run_per_worker(groups, load, make_tasks, n_jobs):
    queues = [queue.Queue(maxsize=2) for _ in range(n_jobs)]
    errors = []

    def work(j):
        while (tasks := queues[j].get()) is not None:
            if not errors:  # after an error, keep draining so the reader never blocks
                try:
                    tasks[j]()
                except BaseException as error:  # re-raised in the calling thread
                    errors.append(error)

    threads = [threading.Thread(target=work, args=(j,), daemon=True) for j in range(n_jobs)]
    for thread in threads:
        thread.start()
    try:
        for i0, i1 in groups:
            if errors:
                break
            traces, lo = load(i0, i1)
            tasks = make_tasks(i0, i1, traces, lo)
            for q in queues:
                q.put(tasks)
    finally:
        for q in queues:
            q.put(None)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


# -- kernels -----------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _snippets_dense(traces, lo, samples, i0, i1, nbefore, gains, offsets, out):
    n_rows = traces.shape[0]
    num_t = out.shape[1]
    num_c = out.shape[2]
    for k in range(i0, i1):
        start = samples[k] - nbefore - lo
        for t in range(num_t):
            r = start + t
            if r < 0 or r >= n_rows:
                for c in range(num_c):
                    out[k, t, c] = 0.0
            else:
                for c in range(num_c):
                    out[k, t, c] = traces[r, c] * gains[c] + offsets[c]


@numba.njit(cache=True, nogil=True)
def _snippets_sparse(traces, lo, samples, units, i0, i1, nbefore, gains, offsets, channels,
                     out):
    n_rows = traces.shape[0]
    num_t = out.shape[1]
    num_k = out.shape[2]
    for k in range(i0, i1):
        start = samples[k] - nbefore - lo
        chans = channels[units[k]]
        for t in range(num_t):
            r = start + t
            for j in range(num_k):
                c = chans[j]
                if c < 0 or r < 0 or r >= n_rows:
                    out[k, t, j] = 0.0
                else:
                    out[k, t, j] = traces[r, c] * gains[c] + offsets[c]


@numba.njit(cache=True, nogil=True)
def _accumulate(traces, lo, samples, units, i0, i1, nbefore, gains, offsets, c0, c1,
                sums, squares):
    n_rows = traces.shape[0]
    num_t = sums.shape[1]
    gain = gains[c0:c1]
    offset = offsets[c0:c1]
    for k in range(i0, i1):
        u = units[k]
        start = samples[k] - nbefore - lo
        for t in range(max(0, -start), min(num_t, n_rows - start)):
            # 1-D views of one row: lets LLVM vectorise the channel loop
            row = traces[start + t, c0:c1]
            total = sums[u, t, c0:c1]
            square = squares[u, t, c0:c1]
            for c in range(c1 - c0):
                v = row[c] * gain[c] + offset[c]
                total[c] += v
                square[c] += v * v


@numba.njit(cache=True, nogil=True)
def _amplitudes(traces, lo, samples, units, i0, i1, channel, shift, gains, offsets, out):
    n_rows = traces.shape[0]
    for k in range(i0, i1):
        u = units[k]
        r = samples[k] + shift[u] - lo
        c = channel[u]
        if r < 0 or r >= n_rows:
            out[k] = 0.0
        else:
            out[k] = traces[r, c] * gains[c] + offsets[c]


# -- validation --------------------------------------------------------------------------------
def _check_units(unit_index, num_units, num_spikes):
    num_units = operator.index(num_units)
    if num_units < 0:
        raise InputError(f"num_units must be >= 0, got {num_units}", field="num_units")
    if unit_index.ndim != 1 or unit_index.shape[0] != num_spikes:
        raise InputError(f"unit_index must be 1-D with one entry per spike ({num_spikes}), got "
                         f"shape {unit_index.shape}", field="unit_index")
    if not np.issubdtype(unit_index.dtype, np.integer) and num_spikes:
        raise InputError(f"unit_index must be integers, got {unit_index.dtype}",
                         field="unit_index")
    if num_spikes and (unit_index.min() < 0 or unit_index.max() >= num_units):
        raise InputError(f"unit_index must lie in [0, {num_units}), got "
                         f"[{unit_index.min()}, {unit_index.max()}]", field="unit_index")
    return num_units


def _prepare(num_samples, sample_index, gains, offsets, chunk_samples, n_jobs,
             field="spike_sample_index"):
    num_samples = operator.index(num_samples)
    chunk_samples = operator.index(chunk_samples)
    n_jobs = operator.index(n_jobs)
    if num_samples < 0:
        raise InputError(f"num_samples must be >= 0, got {num_samples}", field="num_samples")
    if chunk_samples < 1:
        raise InputError(f"chunk_samples must be >= 1, got {chunk_samples}",
                         field="chunk_samples")
    if n_jobs < 1:
        raise InputError(f"n_jobs must be >= 1, got {n_jobs}", field="n_jobs")
    sample_index = np.ascontiguousarray(sample_index, dtype=np.int64)
    if sample_index.ndim != 1:
        raise InputError(f"{field} must be 1-D, got shape {sample_index.shape}", field=field)
    if sample_index.shape[0] > 1 and np.any(sample_index[1:] < sample_index[:-1]):
        raise InputError(f"{field} must be sorted ascending (the spike vector's time order)",
                         field=field)
    gains = np.ascontiguousarray(gains, dtype=np.float64)
    offsets = np.ascontiguousarray(offsets, dtype=np.float64)
    if gains.ndim != 1 or offsets.shape != gains.shape:
        raise InputError(f"gains and offsets must be 1-D with one value per channel, got shapes "
                         f"{gains.shape} and {offsets.shape}", field="gains")
    return num_samples, sample_index, gains, offsets, chunk_samples, n_jobs


def _check_window(nbefore, nafter):
    nbefore, nafter = operator.index(nbefore), operator.index(nafter)
    if nbefore < 0 or nafter < 0 or nbefore + nafter < 1:
        raise InputError(f"nbefore and nafter must be >= 0 with a positive sum, got {nbefore} "
                         f"and {nafter}", field="nbefore")
    return nbefore, nafter


def _unit_vector(unit_index, num_spikes, num_units):
    unit_index = np.ascontiguousarray(unit_index)
    num_units = _check_units(unit_index, num_units, num_spikes)
    return unit_index.astype(np.int64, copy=False), num_units


# -- public wrappers ---------------------------------------------------------------------------
def extract_waveforms(read_raw, num_samples, spike_sample_index, nbefore, nafter, gains, offsets,
                      spike_unit_index=None, sparse_channel_indices=None,
                      chunk_samples=30000, n_jobs=1) -> np.ndarray:
    """Snippets around spikes, float32 µV, shape ``(n_spikes, nbefore + nafter, C)``.

    Snippet k covers samples ``[s_k - nbefore, s_k + nafter)`` (``spike_sample_index``, int
    samples, ascending). Dense (C = all channels, ``len(gains)``) when
    ``sparse_channel_indices`` is None; otherwise C = ``sparse_channel_indices.shape[1]`` and
    spike k takes channels ``sparse_channel_indices[spike_unit_index[k]]`` (-1 pads give zeros).
    Samples outside ``[0, num_samples)`` are 0 µV. ``chunk_samples`` bounds each read (see the
    module docstring); ``n_jobs`` threads process chunks.
    """
    num_samples, samples, gains, offsets, chunk_samples, n_jobs = _prepare(
        num_samples, spike_sample_index, gains, offsets, chunk_samples, n_jobs)
    nbefore, nafter = _check_window(nbefore, nafter)
    n, num_channels = samples.shape[0], gains.shape[0]
    if sparse_channel_indices is None:
        out = np.empty((n, nbefore + nafter, num_channels), dtype=np.float32)

        def make_tasks(i0, i1, traces, lo):
            return [lambda: _snippets_dense(traces, lo, samples, i0, i1, nbefore, gains,
                                            offsets, out)]
    else:
        if spike_unit_index is None:
            raise InputError("spike_unit_index is needed with sparse_channel_indices",
                             field="spike_unit_index")
        channels = np.ascontiguousarray(sparse_channel_indices, dtype=np.int64)
        if channels.ndim != 2 or (channels.size and (channels.min() < -1
                                                     or channels.max() >= num_channels)):
            raise InputError(f"sparse_channel_indices must be (units, K) channel positions in "
                             f"[0, {num_channels}) or -1", field="sparse_channel_indices")
        units, _ = _unit_vector(spike_unit_index, n, channels.shape[0])
        out = np.empty((n, nbefore + nafter, channels.shape[1]), dtype=np.float32)

        def make_tasks(i0, i1, traces, lo):
            return [lambda: _snippets_sparse(traces, lo, samples, units, i0, i1, nbefore, gains,
                                             offsets, channels, out)]
    groups = _chunk_groups(samples, num_samples, chunk_samples)
    _run_chunks(read_raw, num_samples, num_channels, samples, groups, nbefore, nafter,
                make_tasks, n_jobs)
    return out


def accumulate_templates(read_raw, num_samples, spike_sample_index, spike_unit_index, num_units,
                         nbefore, nafter, gains, offsets, chunk_samples=30000, n_jobs=1
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Dense templates streamed from the recording without keeping the snippets.

    Returns ``(mean, std)``, float32 µV ``(num_units, nbefore + nafter, channels)``: per unit
    the mean and the population standard deviation (ddof=0, as SpikeInterface's templates
    extension) of its snippets, accumulated in float64 (sum and sum of squares). Units
    without spikes are zeros. Snippets are defined as in :func:`extract_waveforms` (zero
    outside the recording). ``n_jobs`` threads each own a slice of the channels (and of the
    accumulators) and go through every chunk, so memory is two float64 accumulators
    ``(num_units, T, channels)`` whatever ``n_jobs``.
    """
    num_samples, samples, gains, offsets, chunk_samples, n_jobs = _prepare(
        num_samples, spike_sample_index, gains, offsets, chunk_samples, n_jobs)
    nbefore, nafter = _check_window(nbefore, nafter)
    n, num_channels = samples.shape[0], gains.shape[0]
    units, num_units = _unit_vector(spike_unit_index, n, num_units)
    shape = (num_units, nbefore + nafter, num_channels)
    sums = np.zeros(shape, dtype=np.float64)
    squares = np.zeros(shape, dtype=np.float64)
    slices = _split(num_channels, n_jobs)

    def make_tasks(i0, i1, traces, lo):
        return [lambda c0=c0, c1=c1: _accumulate(traces, lo, samples, units, i0, i1, nbefore,
                                                 gains, offsets, c0, c1, sums, squares)
                for c0, c1 in slices]
    groups = _chunk_groups(samples, num_samples, chunk_samples)
    _run_chunks(read_raw, num_samples, num_channels, samples, groups, nbefore, nafter,
                make_tasks, len(slices), per_worker=True)
    return moments(sums, squares, np.bincount(units, minlength=num_units))


def compute_spike_amplitudes(read_raw, num_samples, sample_index, unit_index,
                             peak_channel_per_unit, peak_shift_per_unit, gains, offsets,
                             chunk_samples=30000, n_jobs=1) -> np.ndarray:
    """Amplitude of every spike, float32 µV ``(n_spikes,)``.

    The trace value on the unit's peak channel (channel position) at sample
    ``sample_index + peak_shift_per_unit[unit]`` (the template's peak offset from the spike
    sample, in samples): SpikeInterface's ``spike_amplitudes`` definition, signed, not
    absolute. 0 when that sample is outside ``[0, num_samples)``.
    """
    num_samples, samples, gains, offsets, chunk_samples, n_jobs = _prepare(
        num_samples, sample_index, gains, offsets, chunk_samples, n_jobs, field="sample_index")
    n, num_channels = samples.shape[0], gains.shape[0]
    channel = np.ascontiguousarray(peak_channel_per_unit, dtype=np.int64)
    shift = np.ascontiguousarray(peak_shift_per_unit, dtype=np.int64)
    if channel.ndim != 1 or shift.shape != channel.shape:
        raise InputError("peak_channel_per_unit and peak_shift_per_unit must be 1-D, one value "
                         "per unit", field="peak_channel_per_unit")
    if channel.size and (channel.min() < 0 or channel.max() >= num_channels):
        raise InputError(f"peak channels must lie in [0, {num_channels})",
                         field="peak_channel_per_unit")
    units, _ = _unit_vector(unit_index, n, channel.shape[0])
    out = np.empty(n, dtype=np.float32)
    if n == 0:
        return out
    left = max(0, -int(shift.min())) if shift.size else 0
    right = max(0, int(shift.max())) + 1 if shift.size else 1

    def make_tasks(i0, i1, traces, lo):
        return [lambda: _amplitudes(traces, lo, samples, units, i0, i1, channel, shift, gains,
                                    offsets, out)]
    groups = _chunk_groups(samples, num_samples, chunk_samples)
    _run_chunks(read_raw, num_samples, num_channels, samples, groups, left, right, make_tasks,
                n_jobs)
    return out
