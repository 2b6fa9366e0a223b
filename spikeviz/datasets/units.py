"""The true units: probe layout, waveforms and templates, spike trains (pure numpy).

See :mod:`spikeviz.datasets` for what is simulated.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError

UNIT_KINDS = ("good", "drifting", "split", "merged", "low_amplitude")

_PITCH_UM = 20.0
_FOOTPRINT_D0_UM = 28.0
_DELAY_MS_PER_UM = 0.0008
_SPARSITY = 0.02
_ARTEFACT_UV = 80.0
_ARTEFACT_DEAD_MS = 500.0


# -- probe --------------------------------------------------------------------------------------
def probe_locations_um(num_channels: int, num_columns: int = 2) -> np.ndarray:
    """(channels, 2) x/y contact positions in µm of a Neuropixels-like shank.

    ``num_columns``: 1 (x = 0), 2 (x = 16/48 µm) or 4 (Neuropixels 1.0 staggered, SpikeGLX
    shank coordinates: x = 27/59 µm on even rows, 11/43 µm on odd rows); rows 20 µm apart, two
    channels per row (one for a single column).
    """
    c = np.arange(int(num_channels))
    if num_columns == 1:
        return np.column_stack([np.zeros(c.size), _PITCH_UM * c]).astype(np.float64)
    if num_columns == 2:
        x = np.array([16.0, 48.0])[c % 2]
    elif num_columns == 4:
        x = np.array([27.0, 59.0, 11.0, 43.0])[c % 4]
    else:
        raise InputError(f"num_columns must be 1, 2 or 4, got {num_columns}",
                         field="num_columns")
    return np.column_stack([x, _PITCH_UM * (c // 2)]).astype(np.float64)


# -- units ----------------------------------------------------------------------------------------
def _waveform(t_ms: np.ndarray, shape: np.ndarray, rel_um: np.ndarray) -> np.ndarray:
    """Unit-trough waveform on channels ``rel_um`` µm farther than the nearest: (samples, chans).

    ``shape`` = trough_sigma_ms, repol_t_ms, repol_sigma_ms, repol_ratio, pre_amp.
    """
    trough_sigma, repol_t, repol_sigma, repol_ratio, pre_amp = shape
    widen = 1.0 + rel_um / 250.0
    tt = t_ms[:, None] - _DELAY_MS_PER_UM * rel_um[None, :]
    trough = -np.exp(-0.5 * (tt / (trough_sigma * widen)) ** 2)
    pre = pre_amp * np.exp(-0.5 * ((tt + 0.2 * widen) / (0.08 * widen)) ** 2)
    ratio = repol_ratio * np.minimum(2.0, 1.0 + rel_um / 200.0)
    repol = ratio * np.exp(-0.5 * ((tt - repol_t * widen) / (repol_sigma * widen)) ** 2)
    return trough + pre + repol


def _taper(num_samples: int, nbefore: int, fs: float) -> np.ndarray:
    """Window that brings templates smoothly to 0 at both ends (0.15 ms / 0.3 ms ramps)."""
    w = np.ones(num_samples)
    r1 = max(1, min(nbefore, round(0.15e-3 * fs)))
    r2 = max(1, min(num_samples - nbefore - 1, round(0.3e-3 * fs)))
    w[:r1] = np.sin(0.5 * np.pi * (np.arange(r1) + 0.5) / r1) ** 2
    w[num_samples - r2:] = np.sin(0.5 * np.pi * (np.arange(r2, 0, -1) - 0.5) / r2) ** 2
    return w


def _shape_params(rng: np.random.Generator, narrow: bool) -> np.ndarray:
    if narrow:
        lows, highs = (0.07, 0.28, 0.10, 0.35, 0.03), (0.09, 0.38, 0.14, 0.55, 0.10)
    else:
        lows, highs = (0.11, 0.55, 0.22, 0.18, 0.03), (0.15, 0.80, 0.32, 0.32, 0.10)
    return rng.uniform(lows, highs)


def _make_units(rng: np.random.Generator, num_units: int, locations_um: np.ndarray) -> dict:
    """Kinds, positions, waveform shapes, amplitudes and rates of the true units."""
    u = num_units
    kind = np.array(["good"] * u, dtype=object)
    merge_pair: tuple[int, int] | None = None
    split_unit: int | None = None
    low_unit: int | None = None
    if u >= 4:
        perm = rng.permutation(u)
        split_unit, low_unit = int(perm[0]), int(perm[3])
        merge_pair = (int(min(perm[1], perm[2])), int(max(perm[1], perm[2])))
        kind[split_unit] = "split"
        kind[list(merge_pair)] = "merged"
        kind[low_unit] = "low_amplitude"
    drift_fraction = np.zeros(u)
    others = np.flatnonzero(kind == "good")
    if others.size >= 2:
        chosen = rng.choice(others, size=max(1, round(0.2 * u)), replace=False)
        kind[chosen] = "drifting"
        drift_fraction[chosen] = rng.uniform(0.25, 0.45, chosen.size) * \
            rng.choice([-1.0, 1.0], chosen.size)
    if split_unit is not None:
        drift_fraction[split_unit] = -0.45

    xs, ys = locations_um[:, 0], locations_um[:, 1]
    position = np.column_stack([
        rng.uniform(xs.min() - 20.0, xs.max() + 20.0, u),
        rng.uniform(ys.min(), ys.max(), u),
        rng.uniform(10.0, 45.0, u),
    ])
    narrow = rng.random(u) < 0.25
    shape = np.array([_shape_params(rng, bool(n)) for n in narrow]).reshape(u, 5)
    amplitude = np.exp(rng.uniform(np.log(50.0), np.log(300.0), u))
    rate = np.clip(np.exp(rng.normal(np.log(5.0), 0.8, u)), 1.0, 30.0)

    if split_unit is not None:
        amplitude[split_unit] = max(amplitude[split_unit], rng.uniform(120.0, 300.0))
        rate[split_unit] = max(rate[split_unit], 8.0)
    if low_unit is not None:
        amplitude[low_unit] = rng.uniform(30.0, 40.0)
    if merge_pair is not None:  # the second is a close, similar neighbour of the first
        a, b = merge_pair
        dy = rng.uniform(12.0, 25.0) * rng.choice([-1.0, 1.0])
        if not ys.min() <= position[a, 1] + dy <= ys.max():
            dy = -dy
        position[b] = position[a] + [rng.uniform(-8.0, 8.0), dy, rng.uniform(-5.0, 5.0)]
        position[b, 2] = np.clip(position[b, 2], 10.0, 45.0)
        narrow[b] = narrow[a]
        shape[b] = shape[a] * rng.uniform(0.95, 1.05, 5)
        amplitude[b] = amplitude[a] * rng.uniform(0.7, 0.85)
    return {"kind": kind, "drift_fraction": drift_fraction, "position_um": position,
            "narrow": narrow, "shape": shape, "amplitude_uv": amplitude, "rate_hz": rate,
            "split_unit": split_unit, "merge_pair": merge_pair, "low_unit": low_unit}


def _unit_templates(units: dict, locations_um: np.ndarray, t_ms: np.ndarray,
                    taper: np.ndarray) -> np.ndarray:
    """(units, samples, channels) float32 µV; the peak channel's trough is -amplitude_uv."""
    num_units = units["amplitude_uv"].size
    out = np.zeros((num_units, t_ms.size, locations_um.shape[0]), dtype=np.float32)
    for i in range(num_units):
        pos = units["position_um"][i]
        d = np.sqrt((locations_um[:, 0] - pos[0]) ** 2 + (locations_um[:, 1] - pos[1]) ** 2
                    + pos[2] ** 2)
        rel = d - d.min()
        gain = (1.0 + (d.min() / _FOOTPRINT_D0_UM) ** 2) / (1.0 + (d / _FOOTPRINT_D0_UM) ** 2)
        wave = _waveform(t_ms, units["shape"][i], rel) * gain[None, :] * taper[:, None]
        nearest = int(np.argmin(d))
        wave *= units["amplitude_uv"][i] / -wave[:, nearest].min()
        peak = np.abs(wave).max(axis=0)
        wave[:, peak < _SPARSITY * peak.max()] = 0.0
        out[i] = wave
    return out


def _artefact_template(rng: np.random.Generator, locations_um: np.ndarray, t_ms: np.ndarray,
                       taper: np.ndarray) -> np.ndarray:
    """(samples, channels) µV: a fast biphasic transient on every channel at once."""
    sigma_ms = 0.15
    shape = -(t_ms / sigma_ms) * np.exp(0.5 - 0.5 * (t_ms / sigma_ms) ** 2)
    y = locations_um[:, 1]
    span = max(float(np.ptp(y)), 1.0)
    profile = 0.7 + 0.3 * np.cos(np.pi * (y - y.min()) / span + rng.uniform(0, np.pi))
    return (_ARTEFACT_UV * shape[:, None] * taper[:, None] * profile[None, :]).astype(np.float32)


# -- spike trains ---------------------------------------------------------------------------------
def poisson_train(rng: np.random.Generator, rate_hz: float, start_sample: int, end_sample: int,
                  sampling_frequency: float, refractory_ms: float = 2.0) -> np.ndarray:
    """Poisson spike train with a dead time: sorted int64 sample indices in
    [start_sample, end_sample), every ISI >= ceil(refractory_ms) in samples, mean rate
    ``rate_hz``."""
    dead = math.ceil(refractory_ms * 1e-3 * sampling_frequency - 1e-9)
    mean_isi = sampling_frequency / rate_hz
    if mean_isi <= dead:
        raise InputError(f"a rate of {rate_hz} Hz leaves no room for a {refractory_ms} ms "
                         f"refractory period", field="rate_hz")
    span = end_sample - start_sample
    if span <= 0:
        return np.zeros(0, dtype=np.int64)
    expected = span / mean_isi
    pieces, last = [], start_sample
    while last < end_sample:
        n = int(expected + 6.0 * math.sqrt(expected) + 16)
        isi = dead + np.floor(rng.exponential(mean_isi - dead, n)).astype(np.int64)
        times = last + np.cumsum(isi)
        pieces.append(times)
        last = int(times[-1])
    times = np.concatenate(pieces)
    return times[times < end_sample]
