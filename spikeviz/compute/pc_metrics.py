"""PC-based quality metrics: isolation distance, L-ratio, d′ (SpikeInterface 0.105 definitions).

Inputs are the PC projections of a sample of spikes (e.g. from
:func:`spikeviz.compute.features.project_waveforms`): ``(m, n_components, K)`` for each spike on
the K channels of its unit (``unit_channels[unit]``, -1 padded).

Neighbourhood, as SpikeInterface does for a sparse analyzer: for unit ``u`` the feature space is
``n_components x`` u's channels, and the spikes used are those of every unit whose peak channel
is one of u's channels (u included). A spike of another unit is placed on u's channels with
zeros on the channels its own unit does not have. When every unit has every channel (dense),
this is all spikes on all channels, as SpikeInterface's dense case.

Everything is computed in float64. Given the same float64 features, the results equal
SpikeInterface's ``mahalanobis_metrics`` / ``d_prime_metric`` to ~1e-13. SpikeInterface itself
feeds them its float32 projections and takes the unit's mean (and fits the LDA) in float32, so
its ``compute_quality_metrics`` differs from ours by float32 rounding: measured ~1e-6 relative
for isolation distance and d′, up to ~1e-4 for L-ratio (whose terms are 1 - cdf of D²).
"""

from __future__ import annotations

import numpy as np

from spikeviz.compute.spikes import order_by_unit, unit_offsets
from spikeviz.errors import InputError

PC_METRIC_NAMES = ("isolation_distance", "l_ratio", "d_prime")

_LDA_TOL = 1e-4  # singular values of the scaled within-class data kept above this (as sklearn)


def mahalanobis_metrics(features, is_unit) -> tuple[float, float]:
    """Isolation distance and L-ratio of one unit (Schmitzer-Torbert et al. 2005).

    ``features`` (m, d): all spikes of the neighbourhood; ``is_unit`` (m,) bool marks the unit's
    own. With ``D²`` the squared Mahalanobis distances of the other spikes to the unit's mean
    under the inverse of the unit's covariance (ddof 1):

    - isolation distance = the n-th smallest ``D²``, n = min(own spikes, other spikes);
    - L-ratio = sum(1 - chi2.cdf(D², d)) / own spikes (``1 - cdf`` as SpikeInterface, so
      terms below ~1e-16 are 0).

    NaN when n < 2 or the covariance is singular. Deliberate difference: a unit with no more
    spikes than dimensions (``own <= d``, covariance singular in exact arithmetic) is NaN here;
    SpikeInterface returns whatever ``np.linalg.inv`` makes of the rank-deficient matrix.
    """
    from scipy.stats import chi2

    x = np.asarray(features, dtype=np.float64)
    is_unit = np.asarray(is_unit, dtype=bool)
    own, other = x[is_unit], x[~is_unit]
    n = min(own.shape[0], other.shape[0])
    dims = x.shape[1]
    if n < 2 or own.shape[0] <= dims:
        return np.nan, np.nan
    mean = own.mean(axis=0)
    try:
        inv_cov = np.linalg.inv(np.cov(own.T).reshape(dims, dims))
    except np.linalg.LinAlgError:
        return np.nan, np.nan
    diff = other - mean
    d2 = np.einsum("ij,ij->i", diff @ inv_cov, diff)
    isolation = float(np.partition(d2, n - 1)[n - 1])
    l_ratio = float(np.sum(1 - chi2.cdf(d2, dims)) / own.shape[0])
    return isolation, l_ratio


def d_prime(features, is_unit) -> float:
    """d′ of one unit against its neighbourhood along the Fisher LDA axis (Hill et al. 2011).

    The axis is that of a two-class linear discriminant analysis as SpikeInterface fits it
    (scikit-learn's ``LinearDiscriminantAnalysis``, SVD solver): features scaled by the pooled
    within-class standard deviation, the within-class scatter inverted on the singular values
    above 1e-4 (collinear directions dropped). With ``p`` the projections,
    d′ = (mean p_unit - mean p_other) / sqrt((var p_unit + var p_other) / 2) (ddof 0).

    The axis is oriented so that the unit's mean projects above the others', so d′ >= 0;
    scikit-learn's sign is that of an SVD vector and is not defined (SpikeInterface's values are
    positive on the data we tested). NaN without spikes on either side, or with fewer than 3
    spikes in all.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(is_unit, dtype=bool)
    m = x.shape[0]
    n_own = int(y.sum())
    if n_own == 0 or n_own == m or m < 3:
        return np.nan
    mu_own, mu_other = x[y].mean(axis=0), x[~y].mean(axis=0)
    centred = np.where(y[:, None], x - mu_own, x - mu_other)
    std = centred.std(axis=0)
    std[std == 0] = 1.0
    scaled = centred / std * np.sqrt(1.0 / (m - 2))
    eigval, eigvec = np.linalg.eigh(scaled.T @ scaled)  # singular values squared
    keep = eigval > _LDA_TOL ** 2
    if not keep.any():
        return np.nan
    v = eigvec[:, keep]
    delta = (mu_own - mu_other) / std
    axis = (v @ ((v.T @ delta) / eigval[keep])) / std
    p = x @ axis
    p_own, p_other = p[y], p[~y]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((p_own.mean() - p_other.mean())
                     / np.sqrt((p_own.var() + p_other.var()) / 2))


def pc_metrics(pc_projections, pc_unit_index, unit_channels, peak_channels, num_units,
               metric_names=PC_METRIC_NAMES) -> dict[str, np.ndarray]:
    """Isolation distance, L-ratio and d′ for every unit, float64 (num_units,).

    Parameters
    ----------
    pc_projections : (m, n_components, K) float, projections of m sampled spikes; slot k is
        channel ``unit_channels[pc_unit_index[j], k]`` (slots with -1 are ignored).
    pc_unit_index : (m,) unit position of each projected spike.
    unit_channels : (num_units, K) int channel indices per unit, -1 padded.
    peak_channels : (num_units,) peak (main) channel of each unit: defines the neighbours.
    metric_names : subset of :data:`PC_METRIC_NAMES`.

    d′ is NaN for every unit when there is a single unit (as SpikeInterface).
    """
    proj = np.asarray(pc_projections)
    labels = np.ascontiguousarray(pc_unit_index, dtype=np.int32)
    chans = np.asarray(unit_channels)
    peaks = np.asarray(peak_channels)
    num_units = int(num_units)
    if proj.ndim != 3 or proj.shape[0] != labels.shape[0]:
        raise InputError(f"pc_projections {proj.shape} must be (spikes, components, channels) "
                         f"with one row per pc spike ({labels.shape[0]})",
                         field="pc_projections")
    if chans.shape != (num_units, proj.shape[2]):
        raise InputError(f"unit_channels {chans.shape} must be ({num_units}, {proj.shape[2]})",
                         field="pc_unit_channels")
    if peaks.shape != (num_units,):
        raise InputError(f"peak_channels {peaks.shape} must be ({num_units},)",
                         field="peak_channels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_units):
        raise InputError("pc spike units out of range", field="pc_spike_indices")
    unknown = set(metric_names) - set(PC_METRIC_NAMES)
    if unknown:
        raise InputError(f"unknown PC metrics {sorted(unknown)}", field="metric_names")

    num_channels = int(max(chans.max(initial=-1), peaks.max(initial=-1))) + 1
    slot = np.full((num_units, num_channels), -1, dtype=np.int64)  # channel -> slot per unit
    for u in range(num_units):
        valid = np.flatnonzero(chans[u] >= 0)
        slot[u, chans[u, valid]] = valid
    offsets = unit_offsets(labels, num_units)
    order, _ = order_by_unit(labels, np.arange(labels.size, dtype=np.int64), offsets)

    out = {name: np.full(num_units, np.nan) for name in metric_names}
    for u in range(num_units):
        own_chans = np.sort(chans[u][chans[u] >= 0])
        neighbours = np.flatnonzero(np.isin(peaks, own_chans))
        features, is_unit = _neighbourhood(proj, order, offsets, slot, u, own_chans,
                                           neighbours)
        if "isolation_distance" in out or "l_ratio" in out:
            iso, lr = mahalanobis_metrics(features, is_unit)
            if "isolation_distance" in out:
                out["isolation_distance"][u] = iso
            if "l_ratio" in out:
                out["l_ratio"][u] = lr
        if "d_prime" in out and num_units > 1:
            out["d_prime"][u] = d_prime(features, is_unit)
    return out


def _neighbourhood(proj, order, offsets, slot, unit, own_chans, neighbours):
    """Flattened features (spikes, components * channels) of the neighbours on unit's channels."""
    sizes = offsets[neighbours + 1] - offsets[neighbours]
    features = np.zeros((int(sizes.sum()), proj.shape[1], own_chans.size), dtype=proj.dtype)
    is_unit = np.zeros(features.shape[0], dtype=bool)
    row = 0
    for v, size in zip(neighbours, sizes, strict=True):
        if size == 0:
            continue
        rows = order[offsets[v]:offsets[v + 1]]
        slots = slot[v, own_chans]
        present = slots >= 0
        features[row:row + size][:, :, present] = proj[rows][:, :, slots[present]]
        is_unit[row:row + size] = v == unit
        row += size
    return features.reshape(features.shape[0], -1), is_unit
