"""Firing rate over time: spike counts per unit in consecutive time bins.

Bins tile ``[0, num_samples)``: edge ``k`` lies at ``k * bin_s * fs`` samples (snapped to the
nearest integer when ``bin_s * fs`` is within 1e-9 of one, so that the usual bins are exact
sample counts) and the last edge is ``num_samples``, so the last bin may be shorter. A spike
at sample ``s`` falls in bin ``b`` when ``edge_b <= s < edge_b+1`` (half-open). Rates divide
each count by its bin's true width in seconds.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..errors import InputError
from .ccg import _positive, _select_units, _spike_vector


@numba.njit(cache=True, nogil=True)
def _bin_counts(sample_index, unit_index, edges_samples, bin_samples, counts):
    num_bins = counts.shape[1]
    for i in range(sample_index.shape[0]):
        s = sample_index[i]
        b = min(int(s / bin_samples), num_bins - 1)
        while b > 0 and s < edges_samples[b]:
            b -= 1
        while b < num_bins - 1 and s >= edges_samples[b + 1]:
            b += 1
        counts[unit_index[i], b] += 1


def rate_bin_edges(sampling_frequency: float, num_samples: int, bin_s: float = 1.0
                   ) -> np.ndarray:
    """Bin edges in samples (float64, integral values in the usual case) over [0, num_samples).

    Empty when ``num_samples`` is 0, else ``num_bins + 1`` edges ending at ``num_samples``.
    """
    fs = _positive(sampling_frequency, "sampling_frequency")
    bin_s = _positive(bin_s, "bin_s")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer) \
            or num_samples < 0:
        raise InputError(f"expected an integer >= 0, got {num_samples!r}", field="num_samples")
    num_samples = int(num_samples)
    if num_samples == 0:
        return np.zeros(1)
    bin_samples = bin_s * fs
    nearest = round(bin_samples)
    if nearest >= 1 and abs(bin_samples - nearest) <= 1e-9 * bin_samples:
        bin_samples = float(nearest)
        num_bins = -(-num_samples // nearest)
    else:
        num_bins = max(1, math.ceil(num_samples / bin_samples))
        # a float quotient a hair above an integer must not add an empty sliver of a bin
        while num_bins > 1 and (num_bins - 1) * bin_samples >= num_samples - 1e-6:
            num_bins -= 1
    edges = np.arange(num_bins + 1, dtype=np.float64) * bin_samples
    edges[-1] = num_samples
    return edges


def compute_firing_rates(sample_index, unit_index, num_units, sampling_frequency, num_samples,
                         bin_s=1.0, unit_indices=None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Firing rate of each unit in consecutive ``bin_s``-second bins over ``[0, num_samples)``.

    ``sample_index``: int spike samples (any order) in ``[0, num_samples)``; ``unit_index``:
    unit positions in ``[0, num_units)``; ``sampling_frequency`` in Hz; ``unit_indices``:
    optional unit positions (subset, in the order wanted). Returns ``(rates_hz, counts,
    bin_edges_s)``: float64 ``(k, num_bins)`` spikes per second, int64 ``(k, num_bins)``
    spike counts, float64 ``(num_bins + 1,)`` edges in seconds from the start of the
    recording. The last bin may be shorter than ``bin_s``; its rate uses its true width.
    """
    edges_samples = rate_bin_edges(sampling_frequency, num_samples, bin_s)
    fs = float(sampling_frequency)
    t, u, k = _spike_vector(sample_index, unit_index, num_units, require_sorted=False)
    if t.size and (int(t.min()) < 0 or int(t.max()) >= num_samples):
        bad = int(t.min()) if int(t.min()) < 0 else int(t.max())
        raise InputError(f"spike at sample {bad} lies outside [0, {num_samples})",
                         field="sample_index")
    t, u, k = _select_units(t, u, k, unit_indices)
    num_bins = edges_samples.size - 1
    counts = np.zeros((k, num_bins), dtype=np.int64)
    if t.size:
        bin_samples = edges_samples[1] if num_bins > 1 else max(edges_samples[1], 1.0)
        _bin_counts(t, u, edges_samples, float(bin_samples), counts)
    rates_hz = counts / (np.diff(edges_samples) / fs)
    return rates_hz, counts, edges_samples / fs
