"""Merge suggestions: pairs of units that look like one neuron split in two.

Evidence per candidate pair (template similarity at least ``min_similarity``): the
cross-correlogram's refractory dip and its shape against the auto-correlograms (SpikeInterface's
auto-merge "correlogram" criterion); see :func:`suggest_merges` for the score.
"""

from __future__ import annotations

import numpy as np

from spikeviz.errors import InputError

# SpikeInterface auto-merge "correlogram" step defaults (sigma of the Gaussian smoothing and the
# adaptive-window threshold relative to the autocorrelogram's peak) and its merge threshold on
# the shape distance, which our score uses as its scale.
SHAPE_SIGMA_MS = 0.6
SHAPE_WINDOW_THRESHOLD = 0.5
SHAPE_DISTANCE_SCALE = 0.16


def suggest_merges(similarity, correlograms, bin_edges_ms, spike_counts, unit_indices=None,
                   min_similarity=0.5, refractory_ms=1.0, censored_ms=0.0,
                   max_suggestions=None) -> dict[str, np.ndarray]:
    """Candidate merges: pairs ``a < b`` (unit positions) ranked best first.

    ``similarity``: ``(units, units)`` from :func:`compute_template_similarity`.
    ``correlograms``: int ``(k, k, bins)`` with ``bin_edges_ms`` (bins + 1), counts[i, j, b]
    the pairs (spike of unit i at t_i, spike of unit j at t_j) with lag t_i - t_j in bin b
    (SpikeInterface's convention, see :mod:`.ccg`; the evidence used here is symmetric in the
    lag), for the units
    at positions ``unit_indices`` (k of them; None: all units). ``spike_counts``: ``(units,)``.
    Only pairs among those k units, both with spikes and ``similarity >= min_similarity``, are
    candidates.

    Returned parallel arrays (one entry per candidate):

    - ``unit_index_a``, ``unit_index_b`` (int64 positions, a < b), ``similarity``;
    - ``ccg_refractory_count``: cross-correlogram counts in the bins whose centre lies in
      ``censored_ms <= |lag| < refractory_ms``; ``ccg_refractory_expected``: what the pair's
      rates predict there, the mean count per ms in the flanks (``|lag| >=`` max(half the
      window / 2, refractory_ms)) times the refractory bins' width -- for independent trains
      that level is n_a·n_b/duration, and measuring it on the correlogram needs no duration
      and follows slow co-modulation;
    - ``ccg_refractory_ratio`` = count / expected (NaN when expected is 0): ~1 for
      independent neurons, ~0 when the two trains share a refractory period (one neuron);
    - ``ccg_shape_distance``: SpikeInterface's auto-merge ``correlogram`` criterion
      (``compute_correlogram_diff`` with sigma_smooth_ms 0.6, adaptive window threshold 0.5
      and ``censor_correlograms_ms = censored_ms``, i.e. bins whose left edge is in
      [-censored_ms, censored_ms) are zeroed): the spike-count weighted mean absolute
      difference between the mean-normalised, smoothed cross- and autocorrelograms within
      the units' adaptive windows; 0 = same shape (SI merges below 0.16);
    - ``score`` = max(similarity, 0) · (1 + R) / 2 · (1 + S) / 2, with
      R = 1 - min((count + 1) / (expected + 1), 1) and S = 0.5 ** (shape_distance / 0.16).

    Why this score: similarity is the prior (templates must match); each correlogram factor
    can only lower it, by at most half, so a pair is never promoted above a more similar one
    without correlogram evidence of being one neuron. R is 1 for an empty refractory window
    with many expected coincidences, 0 at or above chance; the +1 pseudo-count keeps pairs
    with few expected coincidences (little evidence either way) near R = 0 instead of
    rewarding an empty window that proves nothing. S is 1 for identical shapes and 0.5 at
    SI's merge threshold. Ties are broken by similarity, then by positions: deterministic.
    """
    sim, ccg, edges, counts, rows = _validate_merge_inputs(
        similarity, correlograms, bin_edges_ms, spike_counts, unit_indices)
    centres = 0.5 * (edges[:-1] + edges[1:])
    widths = np.diff(edges)
    refr = (np.abs(centres) >= censored_ms) & (np.abs(centres) < refractory_ms)
    half = max(abs(edges[0]), abs(edges[-1]))
    flank = np.abs(centres) >= max(half / 2.0, refractory_ms)
    if not refr.any():
        raise InputError(f"no correlogram bin centre lies in [{censored_ms}, {refractory_ms}) ms",
                         field="refractory_ms")
    if not flank.any():
        raise InputError(f"the correlogram window (±{half} ms) has no flank beyond "
                         f"refractory_ms={refractory_ms}", field="refractory_ms")

    # candidate pairs among the correlogram rows, by position
    order = np.argsort(rows, kind="stable")
    pos = rows[order]
    ra, rb = np.triu_indices(pos.size, 1)
    ra, rb = order[ra], order[rb]
    a, b = rows[ra], rows[rb]
    s = sim[a, b]
    keep = (counts[a] > 0) & (counts[b] > 0) & (s >= min_similarity)
    a, b, ra, rb, s = a[keep], b[keep], ra[keep], rb[keep], s[keep]

    cross = ccg[ra, rb].astype(np.float64)
    observed = cross[:, refr].sum(axis=1)
    expected = cross[:, flank].sum(axis=1) / widths[flank].sum() * widths[refr].sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(expected > 0, observed / expected, np.nan)
    shape = _shape_distance(ccg, edges, counts[rows], ra, rb, censored_ms)

    refr_score = 1.0 - np.minimum((observed + 1.0) / (expected + 1.0), 1.0)
    shape_score = 0.5 ** (shape / SHAPE_DISTANCE_SCALE)
    score = np.maximum(s, 0.0) * (1.0 + refr_score) / 2.0 * (1.0 + shape_score) / 2.0
    rank = np.lexsort((b, a, -s, -score))
    if max_suggestions is not None:
        rank = rank[:max(int(max_suggestions), 0)]
    return {
        "unit_index_a": a[rank].astype(np.int64), "unit_index_b": b[rank].astype(np.int64),
        "similarity": s[rank].astype(np.float64),
        "ccg_refractory_ratio": ratio[rank], "ccg_refractory_count": observed[rank],
        "ccg_refractory_expected": expected[rank],
        "ccg_shape_distance": shape[rank], "score": score[rank],
    }


def _validate_merge_inputs(similarity, correlograms, bin_edges_ms, spike_counts, unit_indices):
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise InputError(f"similarity must be square (units, units), got {sim.shape}",
                         field="similarity")
    num_units = sim.shape[0]
    counts = np.asarray(spike_counts)
    if counts.shape != (num_units,) or (counts.size and counts.min() < 0):
        raise InputError(f"spike_counts must be ({num_units},) and >= 0, got {counts.shape}",
                         field="spike_counts")
    rows = (np.arange(num_units) if unit_indices is None
            else np.asarray(unit_indices, dtype=np.int64).ravel())
    if rows.size and (rows.min() < 0 or rows.max() >= num_units
                      or np.unique(rows).size != rows.size):
        raise InputError(f"unit_indices must be distinct positions in [0, {num_units})",
                         field="unit_indices")
    ccg = np.asarray(correlograms)
    edges = np.asarray(bin_edges_ms, dtype=np.float64)
    if ccg.ndim != 3 or ccg.shape[:2] != (rows.size, rows.size):
        raise InputError(f"correlograms must be ({rows.size}, {rows.size}, bins), "
                         f"got {ccg.shape}", field="correlograms")
    if edges.shape != (ccg.shape[2] + 1,) or not np.all(np.diff(edges) > 0):
        raise InputError(f"bin_edges_ms must be {ccg.shape[2] + 1} increasing values",
                         field="bin_edges_ms")
    return sim, ccg, edges, counts, rows


def _shape_distance(ccg, edges, row_counts, ra, rb, censor_ms):
    """SpikeInterface's auto-merge correlogram distance for the row pairs (ra, rb)."""
    from scipy.signal import fftconvolve, find_peaks

    num_bins = ccg.shape[2]
    mid = num_bins // 2
    censored = (edges[:-1] >= -censor_ms) & (edges[:-1] < censor_ms)
    kernel = np.exp(-(edges ** 2) / (2.0 * SHAPE_SIGMA_MS ** 2))
    kernel /= kernel.sum()

    def smooth(x):
        x = x.astype(np.float64)
        x[:, censored] = 0.0
        if x.shape[0] == 0:
            return x
        return fftconvolve(x, kernel[None, :], mode="same", axes=1)

    def normalise(x):
        mean = x.mean(axis=1, keepdims=True)
        return x / np.where(mean == 0, 1.0, mean)

    k = ccg.shape[0]
    used = np.unique(np.concatenate([ra, rb]))
    auto = np.zeros((k, num_bins))
    auto[used] = smooth(ccg[used, used])
    windows = np.zeros(k)
    for r in used:  # the adaptive window: the last 2nd-derivative peak before the centre
        windows[r] = _adaptive_window(auto[r], find_peaks)
    n1, n2 = row_counts[ra].astype(np.float64), row_counts[rb].astype(np.float64)
    win = np.rint((n1 * windows[ra] + n2 * windows[rb]) / (n1 + n2)).astype(np.int64)
    win = np.clip(win, 1, max(mid, 1))
    cross = normalise(smooth(ccg[ra, rb]))
    auto = normalise(auto)
    inside = np.abs(np.arange(num_bins)[None, :] - mid + 0.5) < win[:, None]
    d1 = (np.abs(cross - auto[ra]) * inside).sum(axis=1) / (2 * win)
    d2 = (np.abs(cross - auto[rb]) * inside).sum(axis=1) / (2 * win)
    return (n1 * d1 + n2 * d2) / (n1 + n2)


def _adaptive_window(auto, find_peaks):
    """Half-width in bins of the centre of a smoothed autocorrelogram (SI's definition)."""
    if np.abs(auto).sum() == 0:
        return 20.0
    curvature = -np.gradient(np.gradient(auto))
    peaks = find_peaks(curvature)[0]
    peaks = peaks[peaks < auto.shape[0] // 2]
    threshold = auto.max() * SHAPE_WINDOW_THRESHOLD
    while True:
        found = peaks[auto[peaks] >= threshold]
        if found.size:
            return float(auto.shape[0] // 2 - found[-1])
        if threshold < 1e-5:
            return 1.0
        threshold /= 2.0
