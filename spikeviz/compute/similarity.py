"""Template similarity and merge suggestions.

Similarity follows SpikeInterface's ``template_similarity`` definition (checked against it in
the tests); merge suggestions rank similar pairs by correlogram evidence that the two units are
one neuron (a shared refractory period; a cross-correlogram shaped like the autocorrelograms).
"""

from __future__ import annotations

import numba
import numpy as np

from spikeviz.errors import InputError

_METHODS = ("cosine", "l1", "l2")
_SUPPORTS = ("union", "intersection", "dense")


def compute_template_similarity(templates, sparse_channel_indices=None, method="cosine",
                                max_lag_samples=0, support="union", n_jobs=1) -> np.ndarray:
    """Similarity of every pair of templates: float64 ``(units, units)``, symmetric.

    ``templates``: dense ``(units, samples, channels)`` in µV. ``sparse_channel_indices``:
    ``(units, K)`` int, each unit's channels padded with -1 (None: every unit on every channel).
    As in SpikeInterface's sparse templates, a unit's values outside its channels count as 0.

    Same definition as SpikeInterface 0.105 ``compute_template_similarity``: with ``a``, ``b``
    the two templates restricted to the support channels,

    - ``"cosine"``: ``a·b / (|a|₂ |b|₂)`` (0 when a norm is 0);
    - ``"l1"`` / ``"l2"``: ``1 - |a - b|ₚ / (|a|ₚ + |b|ₚ)`` (0 when both norms are 0).

    ``support``: ``"union"`` (channels of either unit; 0 when the units share no channel),
    ``"intersection"`` (shared channels only; 0 when none) or ``"dense"`` (all channels).

    ``max_lag_samples`` = n > 0: the best value over lags s in [-n, n], comparing samples
    ``[n, T - n)`` of the lower-index unit with ``[n + s, T - n + s)`` of the other (SI's
    windows; SI's ``max_lag_ms`` is ``int(max_lag_ms * fs / 1000)`` samples). SI's own
    symmetric computation only searches s <= 0 (a quirk: a copy delayed by k samples is found
    only when it has the lower index); we search both directions, which equals SI's
    ``compute_similarity_with_templates_array(templates[a:a+1], templates)`` for each pair.
    ``n_jobs``: threads for the sparse/l1 pair kernel (dense cosine/l2 is BLAS, threaded).
    """
    x, mask, method, support, n = _validate(templates, sparse_channel_indices, method,
                                            max_lag_samples, support)
    num_units = x.shape[0]
    out = np.zeros((num_units, num_units), dtype=np.float64)
    if num_units == 0:
        return out
    if mask.all() and method != "l1":
        best = _similarity_blas(np.asarray(x, dtype=np.float64), n, method)
    else:
        best = _similarity_pairs(x, mask, n, method, support, n_jobs)
    upper = np.triu(best)
    out[:] = upper + np.triu(upper, 1).T
    return out


def _validate(templates, sparse_channel_indices, method, max_lag_samples, support):
    if method == "cosine_similarity":
        method = "cosine"
    if method not in _METHODS:
        raise InputError(f"method must be one of {_METHODS}, got {method!r}", field="method")
    if support not in _SUPPORTS:
        raise InputError(f"support must be one of {_SUPPORTS}, got {support!r}",
                         field="support")
    x = np.asarray(templates)
    if x.ndim != 3 or not (np.issubdtype(x.dtype, np.floating)
                           or np.issubdtype(x.dtype, np.integer)):
        raise InputError("templates must be real numbers (units, samples, channels), got "
                         f"{x.dtype} {x.shape}", field="templates")
    if not np.isfinite(x).all():
        raise InputError("templates contain NaN or inf (use zeros for units without spikes)",
                         field="templates")
    num_units, num_samples, num_channels = x.shape
    n = int(max_lag_samples)
    if n != max_lag_samples or n < 0 or 2 * n >= num_samples:
        raise InputError(f"max_lag_samples must be an integer in [0, {(num_samples - 1) // 2}] "
                         f"for {num_samples}-sample templates, got {max_lag_samples!r}",
                         field="max_lag_samples")
    mask = np.ones((num_units, num_channels), dtype=bool)
    if sparse_channel_indices is not None:
        idx = np.asarray(sparse_channel_indices)
        if idx.ndim != 2 or idx.shape[0] != num_units or not np.issubdtype(idx.dtype, np.integer):
            raise InputError(f"sparse_channel_indices must be integer (units={num_units}, K), "
                             f"got {idx.dtype} {idx.shape}", field="sparse_channel_indices")
        if idx.size and (idx.min() < -1 or idx.max() >= num_channels):
            raise InputError(f"sparse_channel_indices must be in [-1, {num_channels}) "
                             "(-1 pads)", field="sparse_channel_indices")
        mask[:] = False
        rows = np.repeat(np.arange(num_units), idx.shape[1])
        flat = idx.ravel()
        mask[rows[flat >= 0], flat[flat >= 0]] = True
    return x, mask, method, support, n


def _window_totals(per_t, n):
    """Sums of ``per_t`` (units, samples) over the source window and each lag's target
    window: ``(src (units,), tgt (lags, units))``."""
    num_samples = per_t.shape[1]
    length = num_samples - 2 * n
    cs = np.zeros((per_t.shape[0], num_samples + 1))
    np.cumsum(per_t, axis=1, out=cs[:, 1:])
    src = per_t[:, n:n + length].sum(axis=1)
    starts = np.arange(2 * n + 1)  # target window for lag s starts at n + s = starts[s + n]
    tgt = (cs[:, starts + length] - cs[:, starts]).T.copy()  # (lags, units)
    return src, np.maximum(tgt, 0.0)


def _similarity_blas(x, n, method):
    """Dense channels, cosine/l2: one matrix product per lag (BLAS)."""
    num_units, num_samples, num_channels = x.shape
    length = num_samples - 2 * n
    flat = x.reshape(num_units, -1)
    src = flat[:, n * num_channels:(n + length) * num_channels]
    src_sq, tgt_sq = _window_totals(np.einsum("utc,utc->ut", x, x), n)
    na = np.sqrt(src_sq)
    best = np.full((num_units, num_units), -np.inf)
    for lag in range(2 * n + 1):
        tgt = flat[:, lag * num_channels:(lag + length) * num_channels]
        dot = src @ tgt.T
        nb = np.sqrt(tgt_sq[lag])
        if method == "cosine":
            denom = na[:, None] * nb[None, :]
            sim = np.divide(dot, denom, out=np.zeros_like(dot), where=denom > 0)
            np.clip(sim, -1.0, 1.0, out=sim)
        else:
            d2 = src_sq[:, None] + tgt_sq[lag][None, :] - 2.0 * dot
            denom = na[:, None] + nb[None, :]
            sim = np.divide(np.sqrt(np.maximum(d2, 0.0)), denom, out=np.ones_like(dot),
                            where=denom > 0)
            sim = np.clip(1.0 - sim, 0.0, 1.0)
        np.maximum(best, sim, out=best)
    return best


def _similarity_pairs(x, mask, n, method, support, n_jobs):
    """Sparse channels (or l1): a numba kernel over pairs sharing at least one channel."""
    num_units, num_samples, num_channels = x.shape
    counts = mask.sum(axis=1)
    width = max(int(counts.max()), 1)
    chans = np.full((num_units, width), -1, dtype=np.int64)
    slot = np.full((num_units, num_channels), -1, dtype=np.int64)
    data = np.zeros((num_units, width, num_samples))  # each unit's channels only
    for u in range(num_units):  # per unit, not per spike: 1000 iterations at most ~ms
        ch = np.flatnonzero(mask[u])
        chans[u, :ch.size] = ch
        slot[u, ch] = np.arange(ch.size)
        data[u, :ch.size] = x[u][:, ch].T
    m = mask.astype(np.float32)
    shared = (m @ m.T) > 0
    pi, pj = np.nonzero(np.triu(shared))
    per_t = np.abs(data).sum(axis=1) if method == "l1" else np.einsum("ukt,ukt->ut", data, data)
    src, tgt = _window_totals(per_t, n)
    best = np.zeros((num_units, num_units))
    if support == "dense" and method == "l2":
        # Pairs with no shared channel: |a - b|² = |a|² + |b|²; the kernel overwrites the rest.
        for lag in range(2 * n + 1):
            num = np.sqrt(src[:, None] + tgt[lag][None, :])
            denom = np.sqrt(src)[:, None] + np.sqrt(tgt[lag])[None, :]
            sim = 1.0 - np.divide(num, denom, out=np.ones_like(num), where=denom > 0)
            np.maximum(best, sim, out=best)
    values = np.empty(pi.size)
    code = _METHODS.index(method)
    inter = support == "intersection"
    chunks = np.array_split(np.arange(pi.size), max(1, int(n_jobs)) * 4) if pi.size else []
    args = (data, chans, slot, n, code, inter, src, tgt)

    def run(idx):
        values[idx] = _pair_kernel(pi[idx], pj[idx], *args)

    if n_jobs > 1 and len(chunks) > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(int(n_jobs)) as pool:
            list(pool.map(run, chunks))
    else:
        run(np.arange(pi.size))
    best[pi, pj] = values
    return best


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _pair_kernel(pi, pj, data, chans, slot, n, code, inter, src, tgt):
    """Best similarity over lags for each pair (pi[p], pj[p]) on their channels.

    code 0 cosine / 1 l1 / 2 l2. Sums run over the shared channels; for union/dense support the
    rest of each unit's norm comes from the window totals ``src`` (units,) and ``tgt``
    (lags, units) (sums of squares, or of |x| for l1).
    """
    num_lags = 2 * n + 1
    length = data.shape[2] - 2 * n
    out = np.empty(pi.shape[0])
    cross = np.empty(num_lags)
    sa = np.empty(num_lags)
    sb = np.empty(num_lags)
    for p in range(pi.shape[0]):
        i = pi[p]
        j = pj[p]
        cross[:] = 0.0
        sa[:] = 0.0
        sb[:] = 0.0
        for k in range(chans.shape[1]):
            c = chans[i, k]
            if c < 0:
                break
            q = slot[j, c]
            if q < 0:
                continue
            a = data[i, k]
            b = data[j, q]
            for lag in range(num_lags):
                acc = 0.0
                na = 0.0
                nb = 0.0
                for t in range(length):
                    u = a[n + t]
                    v = b[lag + t]
                    if code == 0:
                        acc += u * v
                        na += u * u
                        nb += v * v
                    elif code == 1:
                        acc += abs(u - v)
                        na += abs(u)
                        nb += abs(v)
                    else:
                        acc += (u - v) * (u - v)
                        na += u * u
                        nb += v * v
                cross[lag] += acc
                sa[lag] += na
                sb[lag] += nb
        best = -np.inf
        for lag in range(num_lags):
            if inter:
                ta = sa[lag]
                tb = sb[lag]
                d = cross[lag]
            else:
                ta = src[i]
                tb = tgt[lag, j]
                # the non-shared channels contribute their whole norm to the distance
                d = cross[lag] + max(ta - sa[lag], 0.0) + max(tb - sb[lag], 0.0)
            if code == 0:
                denom = np.sqrt(ta) * np.sqrt(tb)
                sim = min(max(cross[lag] / denom, -1.0), 1.0) if denom > 0 else 0.0
            elif code == 1:
                denom = ta + tb
                sim = 1.0 - d / denom if denom > 0 else 0.0
            else:
                denom = np.sqrt(ta) + np.sqrt(tb)
                sim = 1.0 - np.sqrt(max(d, 0.0)) / denom if denom > 0 else 0.0
            if code != 0:
                sim = min(max(sim, 0.0), 1.0)
            if sim > best:
                best = sim
        out[p] = best
    return out


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
    the spikes of unit j at lag t_j - t_i in bin b (SpikeInterface's convention), for the units
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
