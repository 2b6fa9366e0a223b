"""Comparing two sortings: coincident spikes, agreement scores, Hungarian and best matching.

Pure functions on spike vectors (int64 ``sample_index`` sorted in time, int32 ``unit_index``)
and on unit-by-unit matrices; every unit is a *position* (``unit_index``), ``-1`` meaning
"no unit". The definitions are SpikeInterface's (``spikeinterface.comparison``) so that the
numbers are identical to its ``compare_two_sorters`` / ``compare_sorter_to_ground_truth``:

- two spikes coincide when ``|t1 - t2| <= delta_samples`` with
  ``delta_samples = int(delta_ms / 1000 * sampling_frequency)``;
- the match count of a unit pair is SpikeInterface's greedy count: spikes of sorting 1 are
  visited in time order and each is paired with the first spike of the other unit in its
  window that is not the pair's previous partner (:func:`match_counts`); the symmetric
  count (two sorters, no ground truth) is the larger of both directions; counts are clipped
  to the spike count of unit 2;
- agreement = matches / (n1 + n2 - matches) (0 when both units are empty);
- Hungarian matching (``scipy.optimize.linear_sum_assignment``) on the scores below
  ``match_score`` set to 0, keeping pairs scoring at least ``match_score``; best matching
  takes each unit's highest score when it is at least ``chance_score``.

Ground-truth counts, performance and unit categories are in :mod:`.comparison_gt`, the
multi-sorter consensus in :mod:`.comparison_multi`.
"""

from __future__ import annotations

import numba
import numpy as np

from ..errors import InputError


def delta_samples(delta_ms: float, sampling_frequency: float) -> int:
    """The coincidence window in samples, as SpikeInterface rounds it (down)."""
    if not np.isfinite(delta_ms) or delta_ms < 0:
        raise InputError(f"delta_ms must be a finite number of ms >= 0, got {delta_ms}",
                         field="delta_ms")
    return int(delta_ms / 1000 * sampling_frequency)


@numba.njit(cache=True, nogil=True)
def _greedy_counts(t1, u1, t2, u2, num_units1, num_units2, delta):  # pragma: no cover (jit)
    """Greedy match counts (num_units1, num_units2), int64, not clipped.

    For each spike i of train 1 (time order) and each spike j of train 2 with
    ``|t1[i] - t2[j]| <= delta`` (time order), the pair of units (a, b) counts one match when
    spike i has not matched unit b yet and j is not the last spike of b matched with a.
    ``state[a, b]`` holds that last partner j (+1, 0 = none) and the count side by side, so
    that one cache line serves both; ``stamp[b] == i`` marks units b already matched by i.
    """
    state = np.zeros((num_units1, num_units2, 2), dtype=np.int64)
    stamp = np.full(num_units2, -1, dtype=np.int64)
    n2 = t2.size
    start = 0
    for i in range(t1.size):
        time1 = t1[i]
        while start < n2 and t2[start] < time1 - delta:
            start += 1
        a = u1[i]
        j = start
        while j < n2 and t2[j] <= time1 + delta:
            b = u2[j]
            if stamp[b] != i and state[a, b, 0] != j + 1:
                stamp[b] = i
                state[a, b, 0] = j + 1
                state[a, b, 1] += 1
            j += 1
    counts = np.empty((num_units1, num_units2), dtype=np.int64)
    for a in range(num_units1):
        for b in range(num_units2):
            counts[a, b] = state[a, b, 1]
    return counts


def _check_vector(sample_index, unit_index, num_units, which):
    sample_index = np.ascontiguousarray(sample_index, dtype=np.int64)
    unit_index = np.ascontiguousarray(unit_index, dtype=np.int32)
    if sample_index.ndim != 1 or unit_index.shape != sample_index.shape:
        raise InputError(f"sample_index and unit_index of sorting {which} must be 1-D arrays "
                         f"of the same length", field=f"sample_index{which}")
    if sample_index.size > 1 and np.any(sample_index[1:] < sample_index[:-1]):
        raise InputError(f"spikes of sorting {which} must be sorted in time",
                         field=f"sample_index{which}")
    if unit_index.size and (unit_index.min() < 0 or unit_index.max() >= num_units):
        raise InputError(f"unit_index of sorting {which} must lie in [0, {num_units})",
                         field=f"unit_index{which}")
    return sample_index, unit_index


def spike_counts(unit_index, num_units: int) -> np.ndarray:
    """Spikes per unit (int64, length ``num_units``)."""
    return np.bincount(np.asarray(unit_index), minlength=num_units).astype(np.int64)


def match_counts(sample_index1, unit_index1, num_units1, sample_index2, unit_index2,
                 num_units2, delta_samples: int, symmetric: bool = False,
                 counts2=None) -> np.ndarray:
    """Coincident-spike counts between every unit pair, int64 (num_units1, num_units2).

    SpikeInterface's ``make_match_count_matrix`` exactly: the greedy count of sorting 1
    against sorting 2 (``symmetric``: the element-wise maximum with the count of 2 against 1,
    as ``compare_two_sorters`` does; not for ground truth), clipped to the spike count of
    each unit of sorting 2 (``counts2``, computed when not given). One linear sweep over both
    time-sorted vectors per direction: O(spikes + coincident pairs).
    """
    t1, u1 = _check_vector(sample_index1, unit_index1, num_units1, 1)
    t2, u2 = _check_vector(sample_index2, unit_index2, num_units2, 2)
    delta = int(delta_samples)
    if delta < 0:
        raise InputError(f"delta_samples must be >= 0, got {delta}", field="delta_samples")
    counts = _greedy_counts(t1, u1, t2, u2, int(num_units1), int(num_units2), delta)
    if symmetric:
        reverse = _greedy_counts(t2, u2, t1, u1, int(num_units2), int(num_units1), delta)
        np.maximum(counts, reverse.T, out=counts)
    if counts2 is None:
        counts2 = spike_counts(u2, num_units2)
    np.minimum(counts, np.asarray(counts2, dtype=np.int64)[None, :], out=counts)
    return counts


def agreement_scores(counts, num_spikes1, num_spikes2) -> np.ndarray:
    """matches / (n1 + n2 - matches), float64 (units1, units2); 0 where both are empty."""
    counts = np.asarray(counts, dtype=np.int64)
    denom = (np.asarray(num_spikes1, dtype=np.int64)[:, None]
             + np.asarray(num_spikes2, dtype=np.int64)[None, :] - counts).astype(np.float64)
    denom[denom == 0] = -1.0  # then counts is 0 too: score 0
    return counts / denom


def hungarian_match(scores, match_score: float):
    """Optimal one-to-one matching of units above ``match_score``.

    Returns ``(match12, match21)``: int64 arrays, the matched unit index on the other side or
    -1. As SpikeInterface: ``linear_sum_assignment`` maximises the total of the scores with
    those below ``match_score`` set to 0, and only pairs scoring >= ``match_score`` are kept.
    """
    from scipy.optimize import linear_sum_assignment

    scores = np.asarray(scores, dtype=np.float64)
    n1, n2 = scores.shape
    match12 = np.full(n1, -1, dtype=np.int64)
    match21 = np.full(n2, -1, dtype=np.int64)
    if n1 == 0 or n2 == 0:
        return match12, match21
    thresholded = scores.copy()
    thresholded[thresholded < match_score] = 0
    rows, cols = linear_sum_assignment(-thresholded)
    keep = scores[rows, cols] >= match_score
    match12[rows[keep]] = cols[keep]
    match21[cols[keep]] = rows[keep]
    return match12, match21


def best_match(scores, min_score: float):
    """Each unit's best partner (first highest score) when it scores >= ``min_score``, else
    -1: ``(best12, best21)`` int64 (not one-to-one; SpikeInterface uses ``chance_score``)."""
    scores = np.asarray(scores, dtype=np.float64)
    n1, n2 = scores.shape
    best12 = np.full(n1, -1, dtype=np.int64)
    best21 = np.full(n2, -1, dtype=np.int64)
    if n1 and n2:
        j = np.argmax(scores, axis=1)
        ok = scores[np.arange(n1), j] >= min_score
        best12[ok] = j[ok]
        i = np.argmax(scores, axis=0)
        ok = scores[i, np.arange(n2)] >= min_score
        best21[ok] = i[ok]
    return best12, best21


def ordered_agreement(scores):
    """Row and column orders that put the best matches on the diagonal.

    SpikeInterface's ``get_ordered_agreement_scores``: rows by decreasing best score (numpy's
    default argsort of the row maxima, reversed), then each row in turn takes the
    highest-scoring column not taken yet (first in column order on ties); the columns left
    over follow in their order. Returns ``(rows, cols)`` int64 positions.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n1, n2 = scores.shape
    if n1 == 0:
        return np.zeros(0, np.int64), np.arange(n2, dtype=np.int64)
    rows = np.argsort(scores.max(axis=1) if n2 else np.zeros(n1))[::-1].astype(np.int64)
    taken = np.zeros(n2, dtype=bool)
    cols = []
    for r in rows[:n2]:
        row = np.where(taken, -np.inf, scores[r])
        c = int(np.argmax(row))
        taken[c] = True
        cols.append(c)
    cols = np.concatenate([np.asarray(cols, dtype=np.int64),
                           np.flatnonzero(~taken).astype(np.int64)])
    return rows, cols


@numba.njit(cache=True, nogil=True)
def _pair_spikes(train1, train2, delta):  # pragma: no cover (jit)
    n1, n2 = train1.size, train2.size
    out1 = np.empty(min(n1, n2), dtype=np.int64)
    out2 = np.empty(min(n1, n2), dtype=np.int64)
    i = j = k = 0
    while i < n1 and j < n2:
        d = train1[i] - train2[j]
        if d > delta:
            j += 1
        elif d < -delta:
            i += 1
        else:
            out1[k] = i
            out2[k] = j
            k += 1
            i += 1
            j += 1
    return out1[:k], out2[:k]


def matched_spikes(train1, train2, delta_samples: int):
    """One-to-one coincident spikes of two time-sorted trains: ``(idx1, idx2)`` int64
    positions in each train, paired earliest first (each spike used at most once; a maximum
    matching of spikes within ``delta_samples``). Its size can be below SpikeInterface's
    greedy match count in bursts, where that count pairs one spike twice."""
    train1 = np.ascontiguousarray(train1, dtype=np.int64)
    train2 = np.ascontiguousarray(train2, dtype=np.int64)
    return _pair_spikes(train1, train2, int(delta_samples))
