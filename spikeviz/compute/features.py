"""PCA features of spike snippets, one PCA per channel (SpikeInterface ``principal_components``,
``mode="by_channel_local"``).

Each channel gets its own PCA, fitted on the time course (T samples) of every sampled snippet
whose unit has that channel (all units when dense). A snippet's projection on slot k of its
unit's channels uses the PCA of that channel.

Conventions and deliberate differences from SpikeInterface:

- As SpikeInterface, snippets of units with fewer snippets than ``n_components`` are not used
  for fitting (they are projected).
- The PCA is exact: mean and covariance (ddof 1) accumulated in float64 over the snippets,
  then an eigendecomposition. SpikeInterface fits scikit-learn's ``IncrementalPCA`` unit by
  unit (``partial_fit``), an approximation of the same PCA: the means are equal, the leading
  component is close, trailing ones differ (measured in the tests).
- Component signs follow scikit-learn's rule: the entry of largest magnitude of each component
  is positive.
- ``whiten=True`` divides each projection by sqrt(explained variance), as scikit-learn.
- Projections are 0 on padded slots (channel index -1), like SpikeInterface's sparse storage,
  and on channels whose PCA could not be fitted (fewer than 2 snippets); components with zero
  variance project to 0 instead of dividing by 0.

The fitted model is a dict of plain arrays (``mean``, ``components``, ``explained_variance``,
``explained_variance_ratio``, ``scale``, ``num_samples``, ``whiten``) that can be saved with
``np.savez``.
"""

from __future__ import annotations

import numba
import numpy as np

from spikeviz.compute.spikes import order_by_unit, unit_offsets
from spikeviz.errors import InputError

_DENSE_BLOCK_VALUES = 1 << 24  # snippet values per block in the dense case (128 MB in float64)


def _unit_labels(spike_unit_index, n, num_units):
    labels = np.ascontiguousarray(spike_unit_index, dtype=np.int32)
    if labels.shape != (n,):
        raise InputError(f"spike_unit_index {labels.shape} must have one unit per snippet "
                         f"({n})", field="spike_unit_index")
    if n and (labels.min() < 0 or (num_units is not None and labels.max() >= num_units)):
        raise InputError(f"spike_unit_index must be in [0, {num_units})",
                         field="spike_unit_index")
    return labels


def _groups(waveforms, spike_unit_index, sparse_channel_indices, num_channels,
            min_snippets=1):
    """Yield (rows, slots, channels): snippet rows sharing the same channels.

    Units with fewer than ``min_snippets`` snippets are left out.
    """
    n, _, k = waveforms.shape
    if sparse_channel_indices is None:
        if k != num_channels:
            raise InputError(f"dense waveforms must have {num_channels} channels, got {k}",
                             field="waveforms")
        rows = np.arange(n)
        if min_snippets > 1 and spike_unit_index is not None:
            labels = _unit_labels(spike_unit_index, n, None)
            rows = rows[np.bincount(labels)[labels] >= min_snippets]
        slots = np.arange(k)
        block = max(1, _DENSE_BLOCK_VALUES // max(waveforms.shape[1] * k, 1))
        for start in range(0, rows.size, block):
            yield rows[start:start + block], slots, slots
        return
    chans = np.asarray(sparse_channel_indices)
    if chans.ndim != 2 or chans.shape[1] != k:
        raise InputError(f"sparse_channel_indices {chans.shape} must be (units, {k})",
                         field="sparse_channel_indices")
    if chans.max(initial=-1) >= num_channels:
        raise InputError(f"channel indices must be < num_channels={num_channels}",
                         field="sparse_channel_indices")
    num_units = chans.shape[0]
    labels = _unit_labels(spike_unit_index, n, num_units)
    offsets = unit_offsets(labels, num_units)
    order, _ = order_by_unit(labels, np.arange(n, dtype=np.int64), offsets)
    for u in range(num_units):
        if offsets[u + 1] - offsets[u] < max(min_snippets, 1):
            continue
        slots = np.flatnonzero(chans[u] >= 0)
        if slots.size:
            yield order[offsets[u]:offsets[u + 1]], slots, chans[u, slots]


def _check_waveforms(waveforms):
    w = np.asarray(waveforms)
    if w.ndim != 3:
        raise InputError(f"waveforms must be (snippets, samples, channels), got {w.shape}",
                         field="waveforms")
    return w


def fit_pca(waveforms, spike_unit_index, sparse_channel_indices, num_channels,
            n_components=5, whiten=True) -> dict[str, np.ndarray]:
    """Fit one PCA per channel on the sampled snippets that include that channel.

    Parameters
    ----------
    waveforms : (n, T, K) float snippets (µV); slot k of a snippet of unit u is channel
        ``sparse_channel_indices[u, k]``, or channel k when ``sparse_channel_indices`` is None
        (dense, K == num_channels).
    spike_unit_index : (n,) unit position of each snippet (dense: only used to leave out units
        with fewer than ``n_components`` snippets; may be None).
    sparse_channel_indices : (num_units, K) int, -1 padded, or None.
    num_channels : channels of the recording.
    n_components : components kept per channel (<= T).
    whiten : divide projections by sqrt(explained variance).

    Returns
    -------
    dict of arrays: ``mean`` (channels, T) float32; ``components`` (channels, n_components, T)
    float32, unit-norm rows by decreasing variance; ``explained_variance`` (channels,
    n_components) float64 (eigenvalues of the covariance, ddof 1);
    ``explained_variance_ratio`` (same, over the total variance); ``scale`` (channels,
    n_components) float32 multiplier applied after projection (1/sqrt(variance) when whitened,
    0 where the variance is 0 or the channel is unfitted); ``num_samples`` (channels,) int64
    snippets used per channel; ``whiten`` 0-d bool.
    """
    w = _check_waveforms(waveforms)
    num_channels = int(num_channels)
    t = w.shape[1]
    n_components = int(n_components)
    if not 1 <= n_components <= t:
        raise InputError(f"n_components must be in [1, {t}], got {n_components}",
                         field="n_components")
    sums = np.zeros((num_channels, t))
    counts = np.zeros(num_channels, dtype=np.int64)
    groups = list(_groups(w, spike_unit_index, sparse_channel_indices, num_channels,
                          min_snippets=n_components))
    for rows, slots, chans in groups:
        block = w[rows][:, :, slots].astype(np.float64)          # (n_u, T, k)
        sums[chans] += block.sum(axis=0).T
        counts[chans] += rows.size
    mean = np.divide(sums, counts[:, None], out=np.zeros_like(sums), where=counts[:, None] > 0)
    scatter = np.zeros((num_channels, t, t))
    for rows, slots, chans in groups:
        centred = w[rows][:, :, slots].astype(np.float64).transpose(2, 0, 1)  # (k, n_u, T)
        centred -= mean[chans][:, None, :]
        scatter[chans] += centred.transpose(0, 2, 1) @ centred

    components = np.zeros((num_channels, n_components, t))
    variance = np.zeros((num_channels, n_components))
    ratio = np.zeros((num_channels, n_components))
    for c in np.flatnonzero(counts >= 2):
        eigval, eigvec = np.linalg.eigh(scatter[c] / (counts[c] - 1))
        top = np.argsort(eigval)[::-1][:n_components]
        comps = eigvec[:, top].T
        biggest = np.argmax(np.abs(comps), axis=1)
        comps *= np.sign(comps[np.arange(n_components), biggest])[:, None]
        components[c] = comps
        variance[c] = np.clip(eigval[top], 0.0, None)
        total = max(float(np.sum(np.clip(eigval, 0.0, None))), 0.0)
        ratio[c] = variance[c] / total if total > 0 else 0.0
    if whiten:
        # variances below float64 noise of the channel's largest are treated as 0
        floor = 1e-12 * variance[:, :1]
        good = (variance > floor) & (variance > 0)
        scale = np.divide(1.0, np.sqrt(variance), out=np.zeros_like(variance), where=good)
    else:
        scale = (counts >= 2)[:, None] * np.ones((1, n_components))
    return {"mean": mean.astype(np.float32), "components": components.astype(np.float32),
            "explained_variance": variance, "explained_variance_ratio": ratio,
            "scale": scale.astype(np.float32), "num_samples": counts,
            "whiten": np.array(bool(whiten))}


def project_waveforms(waveforms, spike_unit_index, sparse_channel_indices,
                      pca) -> np.ndarray:
    """Project snippets on their channels' PCA: float32 (n, n_components, K).

    ``out[i, :, k] = scale[c] * (components[c] @ (waveforms[i, :, k] - mean[c]))`` with
    ``c`` the channel of slot k of snippet i's unit (see :func:`fit_pca`); 0 on padded slots
    and unfitted channels.
    """
    w = _check_waveforms(waveforms)
    mean = np.asarray(pca["mean"], dtype=np.float32)
    comps = np.asarray(pca["components"], dtype=np.float32)
    scale = np.asarray(pca["scale"], dtype=np.float32)
    num_channels, n_components, t = comps.shape
    if w.shape[1] != t or mean.shape != (num_channels, t):
        raise InputError(f"waveforms have {w.shape[1]} samples, the PCA expects {t}",
                         field="waveforms")
    out = np.zeros((w.shape[0], n_components, w.shape[2]), dtype=np.float32)
    for rows, slots, chans in _groups(w, spike_unit_index, sparse_channel_indices,
                                      num_channels):
        centred = w[rows][:, :, slots].astype(np.float32).transpose(2, 0, 1)  # (k, n_u, T)
        centred -= mean[chans][:, None, :]
        proj = centred @ comps[chans].transpose(0, 2, 1)          # (k, n_u, n_components)
        proj *= scale[chans][:, None, :]
        out[rows[:, None], :, slots[None, :]] = proj.transpose(1, 0, 2)
    return out


# -- band-passed snippets, read window by window (bit for bit the chunked filtered read) --------
def filtered_snippets(read_raw, num_samples, spike_sample_index, nbefore, nafter, gains, offsets,
                      sos=None, margin_samples=0, chunk_samples=30000) -> np.ndarray:
    """Snippets ``(n, nbefore + nafter, C)`` float32 µV of band-passed traces, on the C
    channels ``read_raw(start, end)`` returns (stored values; ``uV = raw * gain + offset``).

    Bit for bit what :func:`spikeviz.compute.waveforms.extract_waveforms` gives (same
    ``chunk_samples`` groups of spikes, one window per group, samples outside the recording
    0 µV) when it reads through :func:`spikeviz.compute.signal.filtered_reader` (``sos``, a
    ``margin_samples`` margin on each side of a window, clipped to the recording): each window
    is filtered by the same kernel (:func:`spikeviz.compute.trace_chunks.process_chunk`) and
    the snippets are cut from it directly. ``sos`` None: no filter (a plain scaled gather).
    ``spike_sample_index``: int samples, ascending.
    """
    from spikeviz.compute import waveforms
    from spikeviz.compute.trace_chunks import process_chunk

    if sos is None:
        return waveforms.extract_waveforms(read_raw, num_samples, spike_sample_index, nbefore,
                                           nafter, gains, offsets, chunk_samples=chunk_samples)
    num_samples, samples, gains, offsets, chunk_samples, _ = waveforms._prepare(
        num_samples, spike_sample_index, gains, offsets, chunk_samples, 1)
    nbefore, nafter = waveforms._check_window(nbefore, nafter)
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
        raise InputError(f"sos must be (sections, 6), got {sos.shape}", field="sos")
    margin = int(margin_samples)
    if margin < 0:
        raise InputError(f"margin_samples must be >= 0, got {margin}", field="margin_samples")
    num_c = gains.shape[0]
    out = np.zeros((samples.shape[0], nbefore + nafter, num_c), dtype=np.float32)
    for i0, i1 in waveforms._chunk_groups(samples, num_samples, chunk_samples):
        lo = max(int(samples[i0]) - nbefore, 0)
        hi = min(int(samples[i1 - 1]) + nafter, num_samples)
        if hi <= lo:
            continue  # the whole window lies outside the recording: zeros
        lo2, hi2 = max(lo - margin, 0), min(hi + margin, num_samples)
        raw = read_raw(lo2, hi2)
        if type(raw) is not np.ndarray:
            raw = np.asarray(raw)
        if raw.shape != (hi2 - lo2, num_c):
            raise InputError(f"read_raw({lo2}, {hi2}) returned shape {raw.shape}, expected "
                             f"({hi2 - lo2}, {num_c}) (samples, channels)", field="read_raw")
        window = process_chunk(raw, gains, offsets, sos, keep=(lo - lo2, hi - lo2))
        _cut_snippets(window, hi - lo, samples, i0, i1, nbefore + lo, out)
    return out


@numba.njit(cache=True, nogil=True)
def _cut_snippets(window, n_rows, samples, i0, i1, shift, out):
    """Spike k's snippet from the rows ``[0, n_rows)`` of ``window`` (float32, the window
    read without its margins); rows outside it are 0. ``shift``: nbefore + the window's first
    sample."""
    num_t = out.shape[1]
    num_c = out.shape[2]
    for k in range(i0, i1):
        start = samples[k] - shift
        for t in range(num_t):
            r = start + t
            if r < 0 or r >= n_rows:
                continue
            for c in range(num_c):
                out[k, t, c] = window[r, c]
