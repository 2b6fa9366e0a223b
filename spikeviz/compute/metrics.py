"""Quality metrics with SpikeInterface's definitions (``spikeinterface.metrics.quality``, 0.105).

Every function takes the spike vector (``sample_index`` int64 samples, ``unit_index`` int32
positions) or per-unit arrays and returns one value per unit (``num_units,``), float64 unless
stated, NaN where SpikeInterface gives NaN. Train metrics are single passes over the spike vector
(numba); they need each unit's spikes in time order (a time-sorted spike vector or unit-grouped
trains both qualify). Amplitude metrics group spikes by unit with
:func:`spikeviz.compute.spikes.order_by_unit`.

The recording is one segment of ``num_samples`` samples; durations are ``num_samples /
sampling_frequency``. Bins start at sample 0 and are ``int(bin_s * sampling_frequency)``
samples long; the last, partial bin is dropped and a spike exactly on the last edge counts in
the last bin (``np.histogram`` on edges ``0, B, ..., (num_samples // B) * B``), as in
SpikeInterface.

PC-based metrics (isolation distance, L-ratio, d′) are in :mod:`spikeviz.compute.pc_metrics`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from spikeviz.compute.pc_metrics import PC_METRIC_NAMES, pc_metrics
from spikeviz.compute.spikes import order_by_unit, unit_offsets
from spikeviz.errors import InputError

METRIC_NAMES = ("num_spikes", "firing_rate", "presence_ratio", "isi_violations_ratio",
                "isi_violations_count", "snr", "amplitude_cutoff", "amplitude_median",
                "firing_range", "isolation_distance", "l_ratio", "d_prime")

# SpikeInterface's metric group names -> our columns.
_ALIASES = {"isi_violation": ("isi_violations_ratio", "isi_violations_count"),
            "mahalanobis": ("isolation_distance", "l_ratio")}

DEFAULT_PARAMS = {
    "bin_duration_s": 60.0, "mean_fr_ratio_thresh": 0.0,           # presence_ratio
    "isi_threshold_ms": 1.5, "min_isi_ms": 0.0,                     # isi_violation
    "num_histogram_bins": 100, "histogram_smoothing_value": 3,      # amplitude_cutoff
    "amplitudes_bins_min_ratio": 5,
    "bin_size_s": 5.0, "percentiles": (5, 95),                      # firing_range
}

_MAX_BINNED_CELLS = 1 << 22   # units x bins counted per pass (int64: 32 MB)


# --------------------------------------------------------------------------- kernels

@numba.njit(cache=True, nogil=True)
def _isi_violation_counts(sample_index, unit_index, num_units, sampling_frequency,
                          threshold_s):
    """Per unit: number of consecutive spike pairs with t[i+1]/fs - t[i]/fs < threshold_s.

    Returns (counts, position of the first spike earlier than its unit's previous, or -1).
    """
    counts = np.zeros(num_units, dtype=np.int64)
    last = np.zeros(num_units, dtype=np.int64)
    seen = np.zeros(num_units, dtype=np.bool_)
    for i in range(sample_index.shape[0]):
        u = unit_index[i]
        s = sample_index[i]
        if seen[u]:
            if s < last[u]:
                return counts, i
            # the same float operations as SpikeInterface (times in seconds, then diff)
            if s / sampling_frequency - last[u] / sampling_frequency < threshold_s:
                counts[u] += 1
        seen[u] = True
        last[u] = s
    return counts, -1


@numba.njit(cache=True, nogil=True)
def _binned_counts(sample_index, unit_index, unit_start, unit_stop, bin_samples, num_bins):
    """Spike counts (unit_stop - unit_start, num_bins) on edges 0, B, ..., num_bins * B."""
    counts = np.zeros((unit_stop - unit_start, num_bins), dtype=np.int64)
    last_edge = num_bins * bin_samples
    for i in range(sample_index.shape[0]):
        u = unit_index[i]
        if u < unit_start or u >= unit_stop:
            continue
        s = sample_index[i]
        if s < 0 or s > last_edge:
            continue
        b = s // bin_samples
        if b == num_bins:  # np.histogram's last bin is closed on the right
            b -= 1
        counts[u - unit_start, b] += 1
    return counts


def _binned_blocks(sample_index, unit_index, num_units, bin_samples, num_bins):
    """Yield (unit_start, unit_stop, counts) over blocks of units with bounded memory."""
    block = max(1, _MAX_BINNED_CELLS // max(num_bins, 1))
    for start in range(0, num_units, block):
        stop = min(num_units, start + block)
        yield start, stop, _binned_counts(sample_index, unit_index, start, stop,
                                          bin_samples, num_bins)


# --------------------------------------------------------------------------- validation

def _spike_vector(sample_index, unit_index, num_units):
    sample_index = np.ascontiguousarray(sample_index, dtype=np.int64)
    unit_index, num_units = _unit_index(unit_index, num_units)
    if sample_index.ndim != 1 or unit_index.shape != sample_index.shape:
        raise InputError(f"sample_index {sample_index.shape} and unit_index {unit_index.shape} "
                         "must be 1-D of the same length", field="unit_index")
    return sample_index, unit_index, num_units


def _unit_index(unit_index, num_units):
    """int32 unit positions, checked to be in [0, num_units)."""
    unit_index = np.ascontiguousarray(unit_index)
    if unit_index.ndim != 1:
        raise InputError(f"unit_index must be 1-D, got shape {unit_index.shape}",
                         field="unit_index")
    if unit_index.size == 0:
        unit_index = unit_index.astype(np.int32)
    if not np.issubdtype(unit_index.dtype, np.integer):
        raise InputError(f"unit_index must be integers, got {unit_index.dtype}",
                         field="unit_index")
    num_units = int(num_units)
    if num_units < 0:
        raise InputError(f"num_units must be >= 0, got {num_units}", field="num_units")
    if unit_index.size and (unit_index.min() < 0 or unit_index.max() >= num_units):
        raise InputError(f"unit_index must be in [0, {num_units}), got values in "
                         f"[{unit_index.min()}, {unit_index.max()}]", field="unit_index")
    return unit_index.astype(np.int32, copy=False), num_units


def _bin_samples(bin_s, sampling_frequency, field):
    bin_samples = int(bin_s * sampling_frequency)
    if bin_samples < 1:
        raise InputError(f"{field}={bin_s} s is shorter than one sample", field=field)
    return bin_samples


# --------------------------------------------------------------------------- train metrics

def num_spikes(unit_index, num_units) -> np.ndarray:
    """Spikes per unit, int64 (SpikeInterface ``num_spikes``)."""
    return np.bincount(np.asarray(unit_index), minlength=int(num_units)).astype(np.int64)


def firing_rate(spike_counts, duration_s) -> np.ndarray:
    """Spikes per second over the recording; NaN for units without spikes."""
    counts = np.asarray(spike_counts)
    out = counts / float(duration_s)
    out[counts == 0] = np.nan
    return out


def presence_ratio(sample_index, unit_index, num_units, num_samples, sampling_frequency,
                   bin_duration_s=60.0, mean_fr_ratio_thresh=0.0) -> np.ndarray:
    """Fraction of bins of ``bin_duration_s`` in which the unit is active.

    Active: more than ``floor(rate * bin_duration_s * mean_fr_ratio_thresh)`` spikes in the bin,
    ``rate`` being the unit's mean firing rate. NaN for units without spikes, and for every unit
    when the recording is shorter than one bin.
    """
    sample_index, unit_index, num_units = _spike_vector(sample_index, unit_index, num_units)
    if mean_fr_ratio_thresh < 0:
        raise InputError(f"mean_fr_ratio_thresh must be >= 0, got {mean_fr_ratio_thresh}",
                         field="mean_fr_ratio_thresh")
    out = np.full(num_units, np.nan)
    bin_samples = _bin_samples(bin_duration_s, sampling_frequency, "bin_duration_s")
    num_bins = int(num_samples) // bin_samples
    if num_bins < 1:
        return out
    counts = num_spikes(unit_index, num_units)
    total_duration = int(num_samples) / sampling_frequency
    thresholds = np.array([math.floor(n / total_duration * bin_duration_s
                                      * float(mean_fr_ratio_thresh)) for n in counts])
    for start, stop, binned in _binned_blocks(sample_index, unit_index, num_units,
                                              bin_samples, num_bins):
        active = np.sum(binned > thresholds[start:stop, None], axis=1)
        out[start:stop] = active / num_bins
    out[counts == 0] = np.nan
    return out


def isi_violations(sample_index, unit_index, num_units, sampling_frequency, duration_s,
                   isi_threshold_ms=1.5, min_isi_ms=0.0) -> tuple[np.ndarray, np.ndarray]:
    """ISI violations (SpikeInterface ``isi_violation``, after Hill et al. / UMS).

    ``count``: number of consecutive spike pairs of a unit closer than ``isi_threshold_ms``
    (int64; -1 for units without spikes, as SpikeInterface). ``ratio`` = (count /
    (2 n (isi_threshold - min_isi))) / (n / duration_s), the rate of contaminating spikes
    relative to the unit's rate (float64; NaN without spikes). ISIs are compared in seconds
    computed as ``t / fs`` like SpikeInterface, so an ISI exactly at the threshold is decided
    by the same float rounding. ``min_isi_ms`` (censored period) only enters the ratio.
    """
    sample_index, unit_index, num_units = _spike_vector(sample_index, unit_index, num_units)
    threshold_s = isi_threshold_ms / 1000
    min_isi_s = min_isi_ms / 1000
    count, bad = _isi_violation_counts(sample_index, unit_index, num_units,
                                       float(sampling_frequency), float(threshold_s))
    if bad >= 0:
        raise InputError(f"spike {bad} is earlier than the previous spike of its unit: each "
                         "unit's spikes must be in time order", field="sample_index")
    n = num_spikes(unit_index, num_units)
    with np.errstate(divide="ignore", invalid="ignore"):
        violation_time = 2 * n * (threshold_s - min_isi_s)
        total_rate = n / duration_s
        violation_rate = count / violation_time
        ratio = violation_rate / total_rate
    ratio[n == 0] = np.nan
    count[n == 0] = -1
    return ratio, count


def firing_range(sample_index, unit_index, num_units, num_samples, sampling_frequency,
                 bin_size_s=5.0, percentiles=(5, 95)) -> np.ndarray:
    """Range between two percentiles of the firing rate (Hz) in bins of ``bin_size_s``.

    ``np.percentile`` (linear interpolation) of counts / bin_size_s, upper minus lower. NaN for
    units without spikes and when the recording is shorter than one bin.
    """
    sample_index, unit_index, num_units = _spike_vector(sample_index, unit_index, num_units)
    out = np.full(num_units, np.nan)
    bin_samples = _bin_samples(bin_size_s, sampling_frequency, "bin_size_s")
    num_bins = int(num_samples) // bin_samples
    if num_bins < 1:
        return out
    lo, hi = percentiles
    for start, stop, binned in _binned_blocks(sample_index, unit_index, num_units,
                                              bin_samples, num_bins):
        rates = binned / bin_size_s
        out[start:stop] = (np.percentile(rates, hi, axis=1)
                           - np.percentile(rates, lo, axis=1))
    out[num_spikes(unit_index, num_units) == 0] = np.nan
    return out


# --------------------------------------------------------------------------- amplitude metrics

def snr(peak_amplitudes, noise_levels, peak_channels) -> np.ndarray:
    """|template value at the peak channel| / noise level of that channel (both µV).

    SpikeInterface's ``snr`` with ``method="extremum"``: ``peak_amplitudes`` is the extremum of
    the unit's (average) template on its main channel ``peak_channels``.
    """
    amp = np.asarray(peak_amplitudes, dtype=np.float64)
    noise = np.asarray(noise_levels, dtype=np.float64)
    chans = np.asarray(peak_channels)
    if amp.shape != chans.shape:
        raise InputError(f"peak_amplitudes {amp.shape} and peak_channels {chans.shape} must "
                         "have one value per unit", field="peak_channels")
    if chans.size and (chans.min() < 0 or chans.max() >= noise.shape[0]):
        raise InputError(f"peak_channels must be in [0, {noise.shape[0]})",
                         field="peak_channels")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(amp) / noise[chans]


def _grouped(amplitudes, unit_index, num_units, grouping):
    amplitudes = np.asarray(amplitudes)
    unit_index, num_units = _unit_index(unit_index, num_units)
    if amplitudes.shape != unit_index.shape:
        raise InputError(f"amplitudes {amplitudes.shape} must have one value per spike "
                         f"{unit_index.shape}", field="amplitudes")
    if grouping is None:
        offsets = unit_offsets(unit_index, num_units)
        order, _ = order_by_unit(unit_index, unit_index.astype(np.int64), offsets)
        grouping = (order, offsets)
    order, offsets = grouping
    for u in range(int(num_units)):
        yield u, amplitudes[order[offsets[u]:offsets[u + 1]]]


def amplitude_median(amplitudes, unit_index, num_units, grouping=None) -> np.ndarray:
    """Median spike amplitude (µV, signed) per unit; NaN without spikes.

    ``grouping``: optional ``(order, offsets)`` from ``order_by_unit`` / ``unit_offsets``.
    """
    out = np.full(int(num_units), np.nan)
    for u, amps in _grouped(amplitudes, unit_index, num_units, grouping):
        if amps.size:
            out[u] = np.median(amps)
    return out


def amplitude_cutoff_one(amplitudes, num_histogram_bins=100, histogram_smoothing_value=3,
                         amplitudes_bins_min_ratio=5) -> float:
    """Estimated fraction of one unit's spikes missing below the detection threshold.

    Amplitudes are sign-flipped if their median is negative. Their histogram
    (``num_histogram_bins`` equal bins from min to max, ``np.histogram`` in the amplitudes'
    dtype) is smoothed by ``scipy.ndimage.gaussian_filter1d(sigma=histogram_smoothing_value,
    mode="nearest")`` keeping the histogram's integer dtype (as SpikeInterface). With ``pdf[G]``
    the last bin at least as high as the lowest-amplitude bin, the missing spikes are
    ``sum(pdf[G + 1:])`` and the result is ``missing / (n + missing)``, capped at 0.5. NaN when
    ``n / num_histogram_bins < amplitudes_bins_min_ratio``.
    """
    from scipy.ndimage import gaussian_filter1d

    amps = np.asarray(amplitudes)
    if amps.size == 0 or amps.size / num_histogram_bins < amplitudes_bins_min_ratio:
        return np.nan
    if np.median(amps) < 0:
        amps = -amps
    hist = np.histogram(amps, num_histogram_bins)[0]
    pdf = gaussian_filter1d(hist, histogram_smoothing_value, mode="nearest")
    last_high = np.flatnonzero(pdf >= pdf[0])[-1]
    missing = np.sum(pdf[last_high + 1:])
    return float(min(missing / (amps.size + missing), 0.5))


def amplitude_cutoff(amplitudes, unit_index, num_units, num_histogram_bins=100,
                     histogram_smoothing_value=3, amplitudes_bins_min_ratio=5,
                     grouping=None) -> np.ndarray:
    """:func:`amplitude_cutoff_one` for every unit (SpikeInterface ``amplitude_cutoff``)."""
    out = np.full(int(num_units), np.nan)
    for u, amps in _grouped(amplitudes, unit_index, num_units, grouping):
        out[u] = amplitude_cutoff_one(amps, num_histogram_bins, histogram_smoothing_value,
                                      amplitudes_bins_min_ratio)
    return out


# --------------------------------------------------------------------------- all together

_NEEDS = {
    "snr": ("peak_amplitudes", "noise_levels", "peak_channels"),
    "amplitude_cutoff": ("amplitudes",),
    "amplitude_median": ("amplitudes",),
    **{name: ("pc_projections", "pc_spike_indices", "pc_unit_channels", "peak_channels")
       for name in PC_METRIC_NAMES},
}


def _requested(metric_names, given):
    if metric_names is None:
        return [m for m in METRIC_NAMES if all(given[k] for k in _NEEDS.get(m, ()))]
    wanted = set()
    for name in metric_names:
        for m in _ALIASES.get(name, (name,)):
            if m not in METRIC_NAMES:
                raise InputError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}",
                                 field="metric_names")
            missing = [k for k in _NEEDS.get(m, ()) if not given[k]]
            if missing:
                raise InputError(f"metric {m!r} needs {', '.join(missing)}", field=missing[0])
            wanted.add(m)
    return [m for m in METRIC_NAMES if m in wanted]


def compute_quality_metrics(sample_index, unit_index, num_units, sampling_frequency,
                            num_samples, metric_names=None, amplitudes=None,
                            peak_amplitudes=None, noise_levels=None, peak_channels=None,
                            pc_projections=None, pc_spike_indices=None, pc_unit_channels=None,
                            **params) -> dict[str, np.ndarray]:
    """Quality metrics per unit, SpikeInterface 0.105 definitions and defaults.

    Parameters
    ----------
    sample_index, unit_index : (n_spikes,) spike vector (int64 samples, unit positions); each
        unit's spikes in time order.
    num_units, sampling_frequency (Hz), num_samples (recording length in samples).
    metric_names : names from :data:`METRIC_NAMES` (or SpikeInterface's group names
        ``"isi_violation"``, ``"mahalanobis"``); default: every metric whose inputs are given.
    amplitudes : (n_spikes,) µV per spike (amplitude_cutoff, amplitude_median).
    peak_amplitudes : (num_units,) signed template value at the peak channel, µV (snr).
    noise_levels : (channels,) µV (snr).  peak_channels : (num_units,) channel index.
    pc_projections : (m, n_components, K) projections of the spikes at spike-vector positions
        ``pc_spike_indices`` (m,), on channels ``pc_unit_channels[unit]`` ((num_units, K),
        -1 padded) — see :func:`spikeviz.compute.pc_metrics.pc_metrics`.
    **params : SpikeInterface's parameter names, defaults in :data:`DEFAULT_PARAMS`.

    Returns
    -------
    dict metric name -> (num_units,) array, in :data:`METRIC_NAMES` order: float64, except
    ``num_spikes`` and ``isi_violations_count`` (int64, count -1 for units without spikes).
    """
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise InputError(f"unknown parameter(s) {unknown}; known: {sorted(DEFAULT_PARAMS)}",
                         field=unknown[0])
    p = {**DEFAULT_PARAMS, **params}
    sample_index, unit_index, num_units = _spike_vector(sample_index, unit_index, num_units)
    fs = float(sampling_frequency)
    if not fs > 0:
        raise InputError(f"sampling_frequency must be > 0, got {sampling_frequency}",
                         field="sampling_frequency")
    num_samples = int(num_samples)
    if num_samples < 1:
        raise InputError(f"num_samples must be >= 1, got {num_samples}", field="num_samples")
    given = {k: v is not None for k, v in dict(
        amplitudes=amplitudes, peak_amplitudes=peak_amplitudes, noise_levels=noise_levels,
        peak_channels=peak_channels, pc_projections=pc_projections,
        pc_spike_indices=pc_spike_indices, pc_unit_channels=pc_unit_channels).items()}
    names = _requested(metric_names, given)
    wanted = set(names).__contains__
    duration_s = num_samples / fs
    out = {"num_spikes": num_spikes(unit_index, num_units)}
    out["firing_rate"] = firing_rate(out["num_spikes"], duration_s)
    if wanted("presence_ratio"):
        out["presence_ratio"] = presence_ratio(sample_index, unit_index, num_units, num_samples,
                                               fs, p["bin_duration_s"],
                                               p["mean_fr_ratio_thresh"])
    if wanted("isi_violations_ratio") or wanted("isi_violations_count"):
        out["isi_violations_ratio"], out["isi_violations_count"] = isi_violations(
            sample_index, unit_index, num_units, fs, duration_s, p["isi_threshold_ms"],
            p["min_isi_ms"])
    if wanted("snr"):
        out["snr"] = snr(peak_amplitudes, noise_levels, peak_channels)
    if wanted("amplitude_cutoff") or wanted("amplitude_median"):
        offsets = unit_offsets(unit_index, num_units)
        grouping = (order_by_unit(unit_index, sample_index, offsets)[0], offsets)
        if wanted("amplitude_cutoff"):
            out["amplitude_cutoff"] = amplitude_cutoff(
                amplitudes, unit_index, num_units, p["num_histogram_bins"],
                p["histogram_smoothing_value"], p["amplitudes_bins_min_ratio"], grouping)
        out["amplitude_median"] = amplitude_median(amplitudes, unit_index, num_units, grouping)
    if wanted("firing_range"):
        out["firing_range"] = firing_range(sample_index, unit_index, num_units, num_samples, fs,
                                           p["bin_size_s"], p["percentiles"])
    pc_names = [m for m in names if m in PC_METRIC_NAMES]
    if pc_names:
        pc_spike_indices = np.asarray(pc_spike_indices)
        if pc_spike_indices.size and (pc_spike_indices.min() < 0
                                      or pc_spike_indices.max() >= unit_index.size):
            raise InputError("pc_spike_indices must be positions in the spike vector",
                             field="pc_spike_indices")
        out.update(pc_metrics(pc_projections, unit_index[pc_spike_indices], pc_unit_channels,
                              peak_channels, num_units, pc_names))
    return {m: out[m] for m in names}
