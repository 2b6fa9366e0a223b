"""Template similarity: SpikeInterface's ``template_similarity`` definition (checked against
it in the tests), with a lag search in both directions. Merge suggestions built on it are in
:mod:`spikeviz.compute.merges`."""

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
