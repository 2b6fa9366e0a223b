"""Seeded synthetic ground truth: a Neuropixels-like recording, its true units and a
"sorter output" with the mistakes that curation is for.

:func:`generate` builds a :class:`GroundTruth` in memory (everything but the traces, which are
rendered on demand, window by window); :func:`generate_to_folder` streams it to a Phy/KiloSort
folder; :func:`demo_session` is the embedded default dataset of ``spikeviz demo``.

What is simulated
-----------------
- **Probe**: 1, 2 (x = 16/48 µm) or 4 staggered columns (Neuropixels 1.0: x = 27/59, 11/43 µm),
  20 µm between rows; channel ``c`` sits in row ``c // 2``.
- **Units**: a soma at a 3-D position (x, y along the probe, z 10–45 µm off its plane). The
  waveform is a pre-trough bump, a negative trough and a positive repolarisation; "narrow"
  (fast-spiking, trough-to-peak ~0.3 ms) and "broad" (~0.6–0.8 ms) units. On each channel it
  is scaled by ``1 / (1 + (d / 28 µm)^2)`` of the 3-D distance ``d`` (relative to the nearest
  channel), delayed by 0.8 µs/µm and widened with distance; channels below 2 % of the peak are
  zero (sparse templates). Peak-channel trough amplitude 50–300 µV (log-uniform).
- **Trains**: Poisson with a 2 ms dead time (every ISI >= 2 ms exactly, in samples), rates
  log-normal around 5 Hz clipped to 1–30 Hz, int64 sample indices. Spike ``i`` adds
  ``amplitude_scale[i] * templates[unit]`` at samples ``[t - nbefore, t - nbefore + S)``;
  the scale has 10 % log-normal jitter and, on drifting units, a slow monotonic drift of
  25–45 % over the session.
- **Noise**: Gaussian (sum of 12 uniforms) ~``noise_uv`` rms per channel (±10 % between
  channels), mixed with the neighbouring channels and a common reference component (spatially
  correlated), plus a 1/f "LFP" of two sources with depth profiles (one reversing polarity)
  and ``line_frequency_hz`` line noise. The raw file is *not* high-pass filtered.
- **Artefacts**: rare (``artefact_rate_hz``) transients on every channel at once.

Noise is a counter-based hash of (seed, sample, channel), so any window renders on its own and
the output does not depend on the chunk size: same parameters and seed, same bytes.

Ground truth versus sorter output
---------------------------------
The true units are ``GroundTruth.sorting`` (unit ids ``0..num_units-1``, written to
``ground_truth.npz``). The Phy folder holds a *sorter output* derived from them, with cluster
ids shuffled (``0..clusters-1`` in random order), so that nothing can rely on a cluster id
equalling a unit id. With ``num_units >= 4``:

- ``split``: one true unit (drifting, amplitude decaying) is split into two clusters, by spike
  amplitude scale above / below its median: the union of the two clusters is exactly the
  unit's train (no missed or false spikes).
- ``merged``: two nearby, similar true units are one cluster, exactly the union of both trains.
- ``low_amplitude``: a 30–40 µV unit; its cluster misses 30 % of its spikes and has 15 % false
  spikes at random times (group ``mua``).
- ``drifting``: ~20 % of the other units drift in amplitude (the split unit drifts too).
- ``good`` (and drifting) units: their clusters miss 0–3 % of spikes and get 0–1 % false ones.
- one cluster of the artefact times, with no true unit (expected label ``noise``).

Matched spikes keep their true sample index. ``ground_truth.json`` records all of it: per unit
its kind, position, amplitude, rate and cluster ids; per cluster its kind, true unit ids,
group, expected curation label and missed / false spike counts; the split and merge mappings.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from .errors import InputError
from .io.atomic import atomic_folder
from .io.npz import write_sorting
from .io.phy_write import write_phy_folder
from .model import Recording, Session, Sorting

# Bump whenever the output for given parameters and seed changes (invalidates demo caches).
GENERATOR_VERSION = 2

# Rendering block, samples: bounds memory (~CHUNK_SAMPLES x channels x 6 bytes); the output
# does not depend on it.
CHUNK_SAMPLES = 32768

UNIT_KINDS = ("good", "drifting", "split", "merged", "low_amplitude")

# Independent random streams, one per role: changing how one is used leaves the others alone.
_ROLE_UNITS, _ROLE_TRAINS, _ROLE_AMPLITUDES, _ROLE_SORTER, _ROLE_NOISE, _ROLE_ARTEFACTS = range(6)

_PITCH_UM = 20.0
_FOOTPRINT_D0_UM = 28.0
_DELAY_MS_PER_UM = 0.0008
_SPARSITY = 0.02
_ARTEFACT_UV = 80.0
_ARTEFACT_DEAD_MS = 500.0


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


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


# -- rendering kernels ----------------------------------------------------------------------------
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK16 = np.uint64(0xFFFF)
_U1, _U2, _U3 = np.uint64(1), np.uint64(2), np.uint64(3)
_S16, _S27, _S30, _S31, _S32, _S48 = (np.uint64(s) for s in (16, 27, 30, 31, 32, 48))


@numba.njit(cache=True, inline="always")
def _mix64(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(cache=True, inline="always")
def _gauss(key, counter):
    """Standard normal deviate number ``counter`` of stream ``key`` (sum of 12 uniforms)."""
    base = key + counter * _U3 * _GAMMA
    total = np.uint64(0)
    for k in range(3):
        h = _mix64(base + (np.uint64(k) + _U1) * _GAMMA)
        total += (h & _MASK16) + ((h >> _S16) & _MASK16) + ((h >> _S32) & _MASK16) + (h >> _S48)
    return (float(total) + 6.0) / 65536.0 - 6.0


# Oscillator frequencies are whole numbers of cycles per 2**_PHASE_BITS samples, so that the
# phase at any sample is computed exactly in integers; between block starts (multiples of
# _OSC_BLOCK absolute samples) it is advanced by rotation, which is cheap and still makes every
# value depend on its absolute sample only.
_PHASE_BITS = 24
_PHASE_MASK = (1 << _PHASE_BITS) - 1
_OSC_BLOCK = 128


@numba.njit(cache=True, nogil=True)
def _oscillations(start, n, cycles, phase, amp):
    """``out[t, k] = sum_j amp[k, j] sin(2 pi cycles[k, j] (start + t) / 2**24 + phase[k, j])``,
    (n, sources) float64."""
    num_sources, num_freqs = cycles.shape
    out = np.zeros((n, num_sources))
    first = start // _OSC_BLOCK
    num_blocks = (start + n - 1) // _OSC_BLOCK - first + 1 if n > 0 else 0
    scale = 2.0 * np.pi / (1 << _PHASE_BITS)
    for bi in range(num_blocks):
        b0 = (first + bi) * _OSC_BLOCK
        lo = max(b0, start)
        hi = min(b0 + _OSC_BLOCK, start + n)
        for k in range(num_sources):
            for j in range(num_freqs):
                a = amp[k, j]
                if a == 0.0:
                    continue
                arg = ((cycles[k, j] * b0) & _PHASE_MASK) * scale + phase[k, j]
                c, s_ = np.cos(arg), np.sin(arg)
                step = cycles[k, j] * scale
                cw, sw = np.cos(step), np.sin(step)
                for sample in range(b0, hi):
                    if sample >= lo:
                        out[sample - start, k] += a * s_
                    c, s_ = c * cw - s_ * sw, s_ * cw + c * sw
    return out


@numba.njit(cache=True, parallel=True, nogil=True)
def _render_background(out, start, white_key, common_key, indep_scale, mix, common_uv,
                       oscillations, profile):
    """Noise plus oscillations into ``out`` (samples, channels) float32 µV, for samples from
    ``start``: ``oscillations`` (samples, sources) times ``profile`` (sources, channels). Each
    value depends only on its absolute sample and channel."""
    n, num_channels = out.shape
    num_sources = profile.shape[0]
    block = 256
    num_blocks = (n + block - 1) // block
    for b in numba.prange(num_blocks):
        white = np.empty(num_channels)
        for t in range(b * block, min(n, (b + 1) * block)):
            s = start + t
            row = np.uint64(s) * np.uint64(num_channels)
            for c in range(num_channels):
                white[c] = _gauss(white_key, row + np.uint64(c))
            common = common_uv * _gauss(common_key, np.uint64(s))
            for c in range(num_channels):
                v = white[c]
                if c > 0:
                    v += mix * white[c - 1]
                if c < num_channels - 1:
                    v += mix * white[c + 1]
                v = v * indep_scale[c] + common
                for k in range(num_sources):
                    v += oscillations[t, k] * profile[k, c]
                out[t, c] = v


@numba.njit(cache=True, nogil=True)
def _add_events(out, start, times, template_index, scales, templates, channels, num_active,
                nbefore):
    """Add ``scales[i] * templates[template_index[i]]`` at ``times[i] - nbefore`` (samples)
    to ``out``, which starts at sample ``start``; events overlapping the edges are cut."""
    n = out.shape[0]
    num_samples = templates.shape[1]
    for i in range(times.shape[0]):
        t0 = times[i] - nbefore - start
        k = template_index[i]
        a = scales[i]
        lo = max(0, -t0)
        hi = min(num_samples, n - t0)
        for s in range(lo, hi):
            r = t0 + s
            for j in range(num_active[k]):
                c = channels[k, j]
                out[r, c] += a * templates[k, s, c]


@numba.njit(cache=True, parallel=True, nogil=True)
def _quantize(values, inv_gain, out):
    """``out = clip(rint(values * inv_gain))`` as int16."""
    n, num_channels = values.shape
    for t in numba.prange(n):
        for c in range(num_channels):
            v = np.rint(values[t, c] * inv_gain)
            if v > 32767.0:
                v = 32767.0
            elif v < -32768.0:
                v = -32768.0
            out[t, c] = np.int16(v)


@dataclass(eq=False)
class _Renderer:
    """Everything needed to render any window of the traces, independently of others."""

    num_samples: int
    gain_to_uv: float
    nbefore: int
    templates: np.ndarray          # (templates, samples, channels) float32 µV
    channels: np.ndarray           # (templates, channels) int64 active channels, -1 padded
    num_active: np.ndarray         # (templates,) int64
    event_times: np.ndarray        # int64 samples, sorted
    event_template: np.ndarray     # int64 row in templates
    event_scale: np.ndarray        # float32
    white_key: np.uint64
    common_key: np.uint64
    indep_scale: np.ndarray        # (channels,) µV
    mix: float
    common_uv: float
    osc_cycles: np.ndarray         # (sources, freqs) int64 cycles per 2**24 samples
    osc_phase: np.ndarray          # (sources, freqs) rad
    osc_amp: np.ndarray            # (sources, freqs) µV
    osc_profile: np.ndarray        # (sources, channels) gain of each source on each channel

    @property
    def num_channels(self) -> int:
        return int(self.indep_scale.size)

    def render_uv(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) in µV, float32 (samples, channels), before quantisation."""
        out = np.empty((end - start, self.num_channels), dtype=np.float32)
        if end <= start:
            return out
        oscillations = _oscillations(np.int64(start), np.int64(end - start), self.osc_cycles,
                                     self.osc_phase, self.osc_amp)
        _render_background(out, np.int64(start), self.white_key, self.common_key,
                           self.indep_scale, self.mix, self.common_uv, oscillations,
                           self.osc_profile)
        span = self.templates.shape[1]
        lo = np.searchsorted(self.event_times, start + self.nbefore - span, "right")
        hi = np.searchsorted(self.event_times, end + self.nbefore, "left")
        if hi > lo:
            _add_events(out, np.int64(start), self.event_times[lo:hi],
                        self.event_template[lo:hi], self.event_scale[lo:hi], self.templates,
                        self.channels, self.num_active, np.int64(self.nbefore))
        return out

    def render(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) as stored: int16 (samples, channels), µV / gain_to_uv."""
        values = self.render_uv(start, end)
        out = np.empty(values.shape, dtype=np.int16)
        if values.size:
            _quantize(values, 1.0 / self.gain_to_uv, out)
        return out

    def chunks(self, chunk_samples: int = CHUNK_SAMPLES):
        """Yield (start, int16 block) over the whole recording."""
        for start in range(0, self.num_samples, chunk_samples):
            yield start, self.render(start, min(self.num_samples, start + chunk_samples))


class SyntheticTraces:
    """Read-only (samples, channels) int16 array-like whose windows are rendered on demand.

    Supports ``traces[rows, cols]`` with ints, slices or index arrays, ``len``, ``shape``,
    ``dtype`` and ``np.asarray`` (which renders everything: keep that to short recordings).
    """

    ndim = 2
    dtype = np.dtype(np.int16)

    def __init__(self, renderer: _Renderer):
        self._renderer = renderer
        self.shape = (renderer.num_samples, renderer.num_channels)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) > 2:
            raise IndexError("traces are 2-D (samples, channels)")
        rows, cols = (*key, slice(None))[:2]
        n = self.shape[0]
        if isinstance(rows, int | np.integer):
            r = int(rows) + n if rows < 0 else int(rows)
            if not 0 <= r < n:
                raise IndexError(f"sample {rows} is outside [0, {n})")
            return self._renderer.render(r, r + 1)[0][cols]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(n)
            if step > 0:
                block = self._renderer.render(start, max(start, stop))[::step]
            else:
                lo = stop + 1
                block = self._renderer.render(lo, max(lo, start + 1))[::-1][::-step]
            return block[:, cols]
        index = np.asarray(rows)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = np.where(index < 0, index + n, index).astype(np.int64)
        if index.size == 0:
            return np.empty((0, self.shape[1]), dtype=self.dtype)[:, cols]
        if index.min() < 0 or index.max() >= n:
            raise IndexError(f"sample indices outside [0, {n})")
        lo = int(index.min())
        return self._renderer.render(lo, int(index.max()) + 1)[index - lo][:, cols]

    def __array__(self, dtype=None, copy=None):
        out = self._renderer.render(0, self.shape[0])
        return out if dtype is None else out.astype(dtype)


# -- the ground truth ----------------------------------------------------------------------------
@dataclass(eq=False)
class SorterOutput:
    """The simulated sorter's result: what the Phy folder holds.

    ``sample_index`` int64 samples (sorted), ``cluster_ids`` int64 per spike, ``amplitudes``
    per-spike template scaling (~1), ``templates`` (clusters, samples, channels) float32 µV with
    row = cluster id, ``cluster_groups`` {cluster_id: 'good'|'mua'} as a sorter labels them,
    ``clusters`` {cluster_id: facts} (kind, ground_truth_unit_ids, group, expected_label,
    num_spikes, num_missed, num_false).
    """

    sample_index: np.ndarray
    cluster_ids: np.ndarray
    amplitudes: np.ndarray
    templates: np.ndarray
    cluster_groups: dict
    clusters: dict
    sampling_frequency: float
    num_samples: int

    @cached_property
    def sorting(self) -> Sorting:
        """The sorter output as a Sorting (unit ids = cluster ids; 'label' = group)."""
        ids = np.array(sorted(self.clusters), dtype=np.int64)
        table = pd.DataFrame({"label": [self.cluster_groups[int(c)] for c in ids]},
                             index=pd.Index(ids, name="unit_id"))
        return Sorting.from_unit_ids(self.sample_index, self.cluster_ids,
                                     self.sampling_frequency, unit_ids=ids, unit_table=table,
                                     spike_properties={"amplitudes": self.amplitudes},
                                     num_samples=self.num_samples, source="spikeviz.datasets")


@dataclass(eq=False)
class GroundTruth:
    """A synthetic recording and its true units (see the module docstring).

    ``traces``: lazy int16 (samples, channels) array-like, µV = value x ``gain_to_uv``.
    ``sorting``: the true units (ids ``0..num_units-1``; per-spike ``amplitude_scale`` in
    ``spike_properties``; unit table columns kind, drifting, drift_fraction, waveform,
    amplitude_uv, firing_rate_hz, x_um, y_um, z_um, peak_channel_index). Spike ``i`` of unit
    ``u`` is ``amplitude_scale[i] * templates[u]`` with its trough at sample ``nbefore``.
    ``templates``: (units, samples, channels) float32 µV. ``sorter_output``: the simulated
    sorter's clusters. ``mapping``: what ``ground_truth.json`` holds.
    """

    sampling_frequency: float
    num_samples: int
    gain_to_uv: float
    channel_locations_um: np.ndarray
    templates: np.ndarray
    nbefore: int
    sorting: Sorting
    unit_kind: dict
    sorter_output: SorterOutput
    seed: int
    parameters: dict
    mapping: dict
    _renderer: _Renderer = field(repr=False)

    @property
    def num_channels(self) -> int:
        return int(self.channel_locations_um.shape[0])

    @property
    def num_units(self) -> int:
        return self.sorting.num_units

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sampling_frequency

    @cached_property
    def traces(self) -> SyntheticTraces:
        return SyntheticTraces(self._renderer)

    def traces_uv(self, start_sample: int, end_sample: int) -> np.ndarray:
        """Samples [start_sample, end_sample) in µV before int16 quantisation (float32)."""
        if not 0 <= start_sample <= end_sample <= self.num_samples:
            raise InputError(f"window [{start_sample}, {end_sample}) is outside [0, "
                             f"{self.num_samples})", field="traces")
        return self._renderer.render_uv(int(start_sample), int(end_sample))

    def recording(self) -> Recording:
        """The traces as a lazy Recording (µV via gains_to_uv, probe geometry)."""
        return Recording(self.traces, self.sampling_frequency,
                         channel_locations_um=self.channel_locations_um,
                         gains_to_uv=self.gain_to_uv, source="spikeviz.datasets")

    def session(self) -> Session:
        """The true units with the lazy recording."""
        return Session(self.sorting, recording=self.recording(), source="spikeviz.datasets",
                       format="synthetic")


def _parameters(duration_s, num_channels, num_units, sampling_frequency, seed, num_columns,
                noise_uv, lfp_uv, line_uv, line_frequency_hz, artefact_rate_hz, gain_to_uv,
                refractory_ms, ms_before, ms_after) -> dict:
    """Validated, JSON-ready generator parameters (also the demo cache key)."""
    def number(name, value, lo=0.0, strict=True):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"must be a number, got {value!r}", field=name) from None
        if not np.isfinite(value) or value < lo or (strict and value == lo):
            raise InputError(f"must be {'>' if strict else '>='} {lo:g}, got {value}",
                             field=name)
        return value

    def integer(name, value, lo):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
            raise InputError(f"must be an integer >= {lo}, got {value!r}", field=name)
        return int(value)

    params = {
        "duration_s": number("duration_s", duration_s),
        "num_channels": integer("num_channels", num_channels, 1),
        "num_units": integer("num_units", num_units, 0),
        "sampling_frequency": number("sampling_frequency", sampling_frequency),
        "seed": integer("seed", seed, 0),
        "num_columns": integer("num_columns", num_columns, 1),
        "noise_uv": number("noise_uv", noise_uv, strict=False),
        "lfp_uv": number("lfp_uv", lfp_uv, strict=False),
        "line_uv": number("line_uv", line_uv, strict=False),
        "line_frequency_hz": number("line_frequency_hz", line_frequency_hz),
        "artefact_rate_hz": number("artefact_rate_hz", artefact_rate_hz, strict=False),
        "gain_to_uv": number("gain_to_uv", gain_to_uv),
        "refractory_ms": number("refractory_ms", refractory_ms, strict=False),
        "ms_before": number("ms_before", ms_before),
        "ms_after": number("ms_after", ms_after),
    }
    if params["num_columns"] not in (1, 2, 4):
        raise InputError(f"must be 1, 2 or 4, got {num_columns}", field="num_columns")
    if params["refractory_ms"] * 30.0 >= 1000.0:
        raise InputError("must leave room for 30 Hz firing", field="refractory_ms")
    if params["artefact_rate_hz"] * _ARTEFACT_DEAD_MS >= 1000.0:
        raise InputError(f"must be below {1000.0 / _ARTEFACT_DEAD_MS:g} Hz",
                         field="artefact_rate_hz")
    return params


def generate(duration_s: float = 60.0, num_channels: int = 64, num_units: int = 20,
             sampling_frequency: float = 30000.0, seed: int = 0, num_columns: int = 2, *,
             noise_uv: float = 10.0, lfp_uv: float = 40.0, line_uv: float = 3.0,
             line_frequency_hz: float = 50.0, artefact_rate_hz: float = 0.1,
             gain_to_uv: float = 0.195, refractory_ms: float = 2.0, ms_before: float = 1.0,
             ms_after: float = 2.0) -> GroundTruth:
    """Build a synthetic recording and its ground truth (traces rendered lazily).

    ``duration_s`` s, ``sampling_frequency`` Hz, ``noise_uv`` / ``lfp_uv`` / ``line_uv`` rms or
    amplitude in µV, ``gain_to_uv`` µV per int16 step, ``refractory_ms`` dead time of every
    train, ``ms_before`` / ``ms_after`` the template window around the trough. Same arguments,
    same result, to the byte.
    """
    p = _parameters(duration_s, num_channels, num_units, sampling_frequency, seed, num_columns,
                    noise_uv, lfp_uv, line_uv, line_frequency_hz, artefact_rate_hz, gain_to_uv,
                    refractory_ms, ms_before, ms_after)
    fs, seed = p["sampling_frequency"], p["seed"]
    num_samples = round(p["duration_s"] * fs)
    locations = probe_locations_um(p["num_channels"], p["num_columns"])
    num_channels = locations.shape[0]
    nbefore = max(1, round(p["ms_before"] * 1e-3 * fs))
    span = nbefore + max(2, round(p["ms_after"] * 1e-3 * fs))
    t_ms = (np.arange(span) - nbefore) / fs * 1e3
    taper = _taper(span, nbefore, fs)
    first, last = nbefore, num_samples - (span - nbefore)  # spikes lie fully inside

    # true units
    units = _make_units(_rng(seed, _ROLE_UNITS), p["num_units"], locations)
    templates = _unit_templates(units, locations, t_ms, taper)
    num_units = templates.shape[0]
    trains, scales = [], []
    for u in range(num_units):
        train = poisson_train(_rng(seed, _ROLE_TRAINS, u), units["rate_hz"][u], first, last,
                              fs, p["refractory_ms"])
        rng = _rng(seed, _ROLE_AMPLITUDES, u)
        x = train / max(num_samples, 1)
        drift = 1.0 + units["drift_fraction"][u] * (3 * x ** 2 - 2 * x ** 3)
        jitter = np.clip(np.exp(rng.normal(0.0, 0.1, train.size)), 0.7, 1.4)
        trains.append(train)
        scales.append((drift * jitter).astype(np.float32))
    gt_times = np.concatenate(trains) if trains else np.zeros(0, np.int64)
    gt_units = np.repeat(np.arange(num_units, dtype=np.int64), [t.size for t in trains])
    gt_scales = np.concatenate(scales) if scales else np.zeros(0, np.float32)
    order = np.lexsort((gt_units, gt_times))
    gt_times, gt_units, gt_scales = gt_times[order], gt_units[order], gt_scales[order]

    # artefacts
    rng = _rng(seed, _ROLE_ARTEFACTS)
    artefact = _artefact_template(rng, locations, t_ms, taper)
    if p["artefact_rate_hz"] > 0:
        art_times = poisson_train(rng, p["artefact_rate_hz"], first, last, fs,
                                  _ARTEFACT_DEAD_MS)
    else:
        art_times = np.zeros(0, np.int64)
    art_scales = rng.uniform(0.6, 1.4, art_times.size).astype(np.float32)

    # the sorter's view of it
    sorter = _sorter_output(_rng(seed, _ROLE_SORTER), units, templates, trains, scales,
                            art_times, art_scales, artefact, first, last, fs, num_samples)

    # unit table of the truth
    peak_channel = np.argmax(np.ptp(templates, axis=1), axis=1) if num_units else \
        np.zeros(0, np.int64)
    kind = [str(k) for k in units["kind"]]
    table = pd.DataFrame({
        "kind": kind,
        "drifting": units["drift_fraction"] != 0,
        "drift_fraction": units["drift_fraction"],
        "waveform": np.where(units["narrow"], "narrow", "broad"),
        "amplitude_uv": units["amplitude_uv"],
        "firing_rate_hz": units["rate_hz"],
        "x_um": units["position_um"][:, 0],
        "y_um": units["position_um"][:, 1],
        "z_um": units["position_um"][:, 2],
        "peak_channel_index": peak_channel.astype(np.int64),
    }, index=pd.Index(np.arange(num_units, dtype=np.int64), name="unit_id"))
    sorting = Sorting.from_arrays(gt_times, gt_units.astype(np.int32), fs,
                                  unit_ids=np.arange(num_units, dtype=np.int64),
                                  unit_table=table,
                                  spike_properties={"amplitude_scale": gt_scales},
                                  num_samples=num_samples, sort=False,
                                  source=f"spikeviz.datasets.generate(seed={seed})")

    renderer = _make_renderer(_rng(seed, _ROLE_NOISE), p, locations, num_samples, nbefore,
                              templates, artefact, gt_times, gt_units, gt_scales, art_times,
                              art_scales)
    mapping = _mapping(p, units, table, trains, sorter, num_samples, nbefore, span)
    return GroundTruth(sampling_frequency=fs, num_samples=num_samples,
                       gain_to_uv=p["gain_to_uv"], channel_locations_um=locations,
                       templates=templates, nbefore=nbefore, sorting=sorting,
                       unit_kind={u: kind[u] for u in range(num_units)},
                       sorter_output=sorter, seed=seed, parameters=p, mapping=mapping,
                       _renderer=renderer)


def _sorter_output(rng, units, templates, trains, scales, art_times, art_scales, artefact,
                   first, last, fs, num_samples) -> SorterOutput:
    """Derive the sorter's clusters from the truth: split, merge, misses, false spikes."""
    clusters = []  # (facts, times, amplitudes, template µV)

    def add(kind, unit_ids, times, amps, true_sum, group, expected, missed=0, false=0):
        if times.size == 0:
            return
        order = np.argsort(times, kind="stable")
        clusters.append(({"kind": kind, "ground_truth_unit_ids": [int(u) for u in unit_ids],
                          "group": group, "expected_label": expected,
                          "num_spikes": int(times.size), "num_missed": int(missed),
                          "num_false": int(false)},
                         times[order], amps[order], true_sum))

    def perturbed(u, miss, false_fraction, group, kind):
        train, scale = trains[u], scales[u]
        keep = rng.random(train.size) >= miss
        num_false = int(rng.binomial(train.size, false_fraction)) if last > first else 0
        false_times = np.sort(rng.integers(first, last, num_false)) if num_false else \
            np.zeros(0, np.int64)
        false_amps = rng.uniform(0.3, 0.8, num_false)
        true_sum = float(scale[keep].sum()) * templates[u] / max(1, int(keep.sum()) + num_false)
        add(kind, [u], np.concatenate([train[keep], false_times]),
            np.concatenate([scale[keep], false_amps]), true_sum, group, group,
            missed=int((~keep).sum()), false=num_false)

    merge_pair = units["merge_pair"]
    for u in range(templates.shape[0]):
        kind = units["kind"][u]
        if kind in ("good", "drifting"):
            perturbed(u, rng.uniform(0.0, 0.03), rng.uniform(0.0, 0.01), "good", kind)
        elif kind == "low_amplitude":
            perturbed(u, 0.3, 0.15, "mua", kind)
        elif kind == "split":
            scale = scales[u]
            high = scale >= np.median(scale) if scale.size else np.zeros(0, bool)
            for part in (high, ~high):
                n = max(1, int(part.sum()))
                add("split", [u], trains[u][part], scale[part],
                    float(scale[part].sum()) / n * templates[u], "good", "good")
        elif kind == "merged" and u == merge_pair[0]:
            a, b = merge_pair
            times = np.concatenate([trains[a], trains[b]])
            amps = np.concatenate([scales[a], scales[b]])
            n = max(1, times.size)
            mean = (float(scales[a].sum()) * templates[a]
                    + float(scales[b].sum()) * templates[b]) / n
            add("merged", [a, b], times, amps, mean, "good", "good")
    if art_times.size:
        add("artefact", [], art_times, art_scales, float(art_scales.mean()) * artefact, "mua",
            "noise")

    ids = rng.permutation(len(clusters)).astype(np.int64)
    num_template_samples, num_channels = artefact.shape
    sorted_templates = np.zeros((len(clusters), num_template_samples, num_channels),
                                dtype=np.float32)
    facts, times, cluster_of, amps = {}, [], [], []
    for cid, (info, t, a, template) in zip(ids.tolist(), clusters, strict=True):
        facts[cid] = info
        sorted_templates[cid] = template
        times.append(t)
        cluster_of.append(np.full(t.size, cid, dtype=np.int64))
        amps.append(np.asarray(a, dtype=np.float64))
    if clusters:
        times, cluster_of, amps = (np.concatenate(x) for x in (times, cluster_of, amps))
    else:
        times, cluster_of, amps = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    order = np.lexsort((cluster_of, times))
    return SorterOutput(sample_index=times[order], cluster_ids=cluster_of[order],
                        amplitudes=amps[order], templates=sorted_templates,
                        cluster_groups={c: facts[c]["group"] for c in sorted(facts)},
                        clusters={c: facts[c] for c in sorted(facts)},
                        sampling_frequency=fs, num_samples=num_samples)


def _make_renderer(rng, p, locations, num_samples, nbefore, templates, artefact, gt_times,
                   gt_units, gt_scales, art_times, art_scales) -> _Renderer:
    fs = p["sampling_frequency"]
    num_channels = locations.shape[0]
    white_key, common_key = (np.uint64(k) for k in rng.integers(0, 2 ** 63, 2))

    # white noise: per-channel level, neighbour mixing, a common reference component
    channel_uv = p["noise_uv"] * np.exp(rng.normal(0.0, 0.1, num_channels))
    common_uv = 0.25 * p["noise_uv"]
    mix = 0.1
    neighbours = np.full(num_channels, 2.0)
    neighbours[[0, -1]] = 1.0 if num_channels > 1 else 0.0
    indep = np.sqrt(np.maximum(channel_uv ** 2 - common_uv ** 2, 0.0)) / \
        np.sqrt(1.0 + neighbours * mix ** 2)

    # 1/f LFP: two sources of 12 sinusoids, amplitude ~ f^-1/2 (power ~ 1/f), with depth
    # profiles (the second reverses polarity along the probe); then line noise, one sinusoid
    # with a gain per channel. Frequencies are rounded to whole cycles per 2**24 samples.
    def cycles(freq_hz):
        return np.maximum(1, np.round(np.asarray(freq_hz) / fs * 2 ** _PHASE_BITS)
                          ).astype(np.int64)

    freqs = np.exp(rng.uniform(np.log(0.5), np.log(200.0), (2, 12)))
    amps = freqs ** -0.5 * rng.uniform(0.5, 1.5, (2, 12))
    amps *= (np.array([1.0, 0.5]) * p["lfp_uv"] / np.sqrt(0.5 * (amps ** 2).sum(axis=1)))[:, None]
    phases = rng.uniform(0.0, 2 * np.pi, (2, 12))
    y = locations[:, 1]
    span = max(float(np.ptp(y)), 1.0)
    line_phase = rng.uniform(0.0, 2 * np.pi)
    line_gain = p["line_uv"] * rng.uniform(0.7, 1.3, num_channels)
    osc_cycles = np.zeros((3, 12), np.int64)
    osc_cycles[:2] = cycles(freqs)
    osc_cycles[2, 0] = cycles(p["line_frequency_hz"])
    osc_phase = np.zeros((3, 12))
    osc_phase[:2] = phases
    osc_phase[2, 0] = line_phase
    osc_amp = np.zeros((3, 12))
    osc_amp[:2] = amps
    osc_amp[2, 0] = 1.0
    profile = np.stack([0.8 + 0.4 * (y - y.mean()) / span,
                        np.cos(np.pi * (y - y.min()) / span), line_gain])

    # events: true spikes and artefacts, in time order; artefact template is the last row
    all_templates = np.concatenate([templates, artefact[None]]).astype(np.float32)
    active = np.abs(all_templates).max(axis=1) > 0
    num_active = active.sum(axis=1).astype(np.int64)
    channels = np.full(active.shape, -1, dtype=np.int64)
    for k in range(active.shape[0]):
        channels[k, :num_active[k]] = np.flatnonzero(active[k])
    times = np.concatenate([gt_times, art_times]).astype(np.int64)
    rows = np.concatenate([gt_units, np.full(art_times.size, templates.shape[0])]
                          ).astype(np.int64)
    event_scales = np.concatenate([gt_scales, art_scales]).astype(np.float32)
    order = np.lexsort((rows, times))
    return _Renderer(
        num_samples=num_samples, gain_to_uv=p["gain_to_uv"], nbefore=nbefore,
        templates=all_templates, channels=channels, num_active=num_active,
        event_times=times[order], event_template=rows[order], event_scale=event_scales[order],
        white_key=white_key, common_key=common_key, indep_scale=indep.astype(np.float64),
        mix=mix, common_uv=common_uv, osc_cycles=osc_cycles, osc_phase=osc_phase,
        osc_amp=osc_amp, osc_profile=profile.astype(np.float64))


def _mapping(p, units, table, trains, sorter, num_samples, nbefore, span) -> dict:
    """The content of ground_truth.json."""
    clusters_of = {u: [] for u in range(len(trains))}
    for cid, info in sorter.clusters.items():
        for u in info["ground_truth_unit_ids"]:
            clusters_of[u].append(cid)
    unit_facts = {}
    for u in range(len(trains)):
        row = table.loc[u]
        unit_facts[str(u)] = {
            "kind": str(row["kind"]),
            "drifting": bool(row["drifting"]),
            "drift_fraction": float(row["drift_fraction"]),
            "waveform": str(row["waveform"]),
            "amplitude_uv": float(row["amplitude_uv"]),
            "firing_rate_hz": float(row["firing_rate_hz"]),
            "num_spikes": int(trains[u].size),
            "position_um": [float(row["x_um"]), float(row["y_um"]), float(row["z_um"])],
            "peak_channel_index": int(row["peak_channel_index"]),
            "cluster_ids": sorted(clusters_of[u]),
        }
    split = [{"ground_truth_unit_id": u, "cluster_ids": sorted(clusters_of[u]),
              "rule": "spikes with amplitude_scale >= the unit's median go to one cluster, "
                      "the others to the other; their union is exactly the unit's train"}
             for u in range(len(trains)) if units["kind"][u] == "split"]
    merge = []
    if units["merge_pair"] is not None:
        a, b = units["merge_pair"]
        merge.append({"ground_truth_unit_ids": [a, b], "cluster_ids": sorted(clusters_of[a]),
                      "rule": "one cluster holding exactly the union of both trains"})
    artefact_ids = [c for c, info in sorter.clusters.items() if info["kind"] == "artefact"]
    return {
        "generator": "spikeviz.datasets",
        "generator_version": GENERATOR_VERSION,
        "seed": p["seed"],
        "parameters": p,
        "sampling_frequency": p["sampling_frequency"],
        "num_samples": int(num_samples),
        "num_channels": int(p["num_channels"]),
        "gain_to_uv": p["gain_to_uv"],
        "nbefore": int(nbefore),
        "num_template_samples": int(span),
        "files": {
            "recording": "recording.dat",
            "ground_truth_sorting": "ground_truth.npz",
            "ground_truth_templates": "ground_truth_templates.npy",
            "ground_truth_amplitude_scale": "ground_truth_amplitude_scale.npy",
        },
        "units": unit_facts,
        "clusters": {str(c): info for c, info in sorter.clusters.items()},
        "split": split,
        "merge": merge,
        "artefact_cluster_ids": artefact_ids,
        "notes": "Ground-truth unit ids are 0..num_units-1; cluster ids are the sorter "
                 "output's (Phy folder). Spike i of unit u is amplitude_scale[i] x "
                 "ground_truth_templates[u] (µV) with its trough at sample t; µV = int16 x "
                 "gain_to_uv. Matched spikes keep their true sample index.",
    }


# -- on disk --------------------------------------------------------------------------------------
MANIFEST = "manifest.json"
_HASHED_LIMIT_BYTES = 64 * 2 ** 20  # files above this are checked by size only


def _file_facts(folder: Path) -> dict:
    facts = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name == MANIFEST:
            continue
        size = path.stat().st_size
        entry = {"size": size}
        if size <= _HASHED_LIMIT_BYTES:
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        facts[path.name] = entry
    return facts


def _dump_json(data) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def generate_to_folder(folder: str | Path, duration_s: float = 60.0, num_channels: int = 64,
                       num_units: int = 20, seed: int = 0, overwrite: bool = False, *,
                       progress: Callable[[int, int], None] | None = None,
                       **kwargs) -> Path:
    """Write a synthetic dataset as a Phy/KiloSort folder, atomically; returns the folder.

    The folder holds ``recording.dat`` (int16, time-major, streamed chunk by chunk: memory
    stays bounded), ``params.py`` and the sorter output (see :mod:`spikeviz.io.phy_write`),
    ``ground_truth.npz`` (true units, SpikeInterface NPZ), ``ground_truth.json`` (kinds,
    split/merge mapping, gain, seed, version), ``ground_truth_templates.npy`` (units, samples,
    channels) µV, ``ground_truth_amplitude_scale.npy`` (per true spike, npz order) and
    ``manifest.json`` (parameters, sizes and hashes; written last). Other keyword arguments go
    to :func:`generate`. ``progress(done_samples, total_samples)`` is called after each chunk.
    """
    folder = Path(folder)
    gt = generate(duration_s=duration_s, num_channels=num_channels, num_units=num_units,
                  seed=seed, **kwargs)
    if not folder.parent.is_dir():
        raise InputError("the destination's parent folder does not exist", path=folder.parent)
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        with open(tmp / "recording.dat", "wb") as f:
            for start, block in gt._renderer.chunks():
                block.tofile(f)
                if progress is not None:
                    progress(start + block.shape[0], gt.num_samples)
        so = gt.sorter_output
        write_phy_folder(
            tmp, so.sample_index, so.cluster_ids, gt.sampling_frequency,
            templates=so.templates, amplitudes=so.amplitudes,
            channel_positions_um=gt.channel_locations_um,
            channel_map=np.arange(gt.num_channels), cluster_groups=so.cluster_groups,
            params={"dat_path": "recording.dat", "n_channels_dat": gt.num_channels,
                    "dtype": "int16", "offset": 0, "sample_rate": gt.sampling_frequency,
                    "hp_filtered": False})
        write_sorting(gt.sorting, tmp / "ground_truth.npz")
        np.save(tmp / "ground_truth_templates.npy", gt.templates, allow_pickle=False)
        np.save(tmp / "ground_truth_amplitude_scale.npy",
                np.asarray(gt.sorting.spike_properties["amplitude_scale"]), allow_pickle=False)
        (tmp / "ground_truth.json").write_text(_dump_json(gt.mapping), encoding="utf-8")
        manifest = {"generator_version": GENERATOR_VERSION, "parameters": gt.parameters,
                    "files": _file_facts(tmp)}
        (tmp / MANIFEST).write_text(_dump_json(manifest), encoding="utf-8")
    return folder


def read_ground_truth(folder: str | Path) -> dict:
    """The ``ground_truth.json`` of a generated folder."""
    path = Path(folder) / "ground_truth.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("not a generated dataset: ground_truth.json is missing",
                         path=path) from None
    except (OSError, ValueError) as err:
        raise InputError(f"unreadable ({err})", path=path) from None


def is_complete(folder: str | Path, parameters: dict | None = None) -> bool:
    """Whether ``folder`` holds a whole generated dataset (of ``parameters`` and this
    generator version, when given): every file in its manifest, with the recorded size, and
    the recorded hash for the small ones."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("generator_version") != GENERATOR_VERSION:
        return False
    if parameters is not None and manifest.get("parameters") != parameters:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, entry in files.items():
        path = folder / name
        try:
            if path.stat().st_size != entry["size"]:
                return False
            if "sha256" in entry and \
                    hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def data_dir() -> Path:
    """Where demo datasets are cached: ``$SPIKEVIZ_DATA_DIR``, else
    ``$XDG_CACHE_HOME/spikeviz`` (default ``~/.cache/spikeviz``)."""
    env = os.environ.get("SPIKEVIZ_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "spikeviz"


def demo_folder(seed: int = 0, duration_s: float = 60.0, num_channels: int = 64,
                num_units: int = 24, **kwargs) -> Path:
    """The demo dataset's folder, generated on first use and reused while complete.

    It lives in :func:`data_dir` as ``demo-<hash of parameters and generator version>``; a
    folder whose manifest does not match (other parameters, older generator, missing or
    damaged file) is regenerated.
    """
    parameters = _parameters(**{**_DEFAULTS, **kwargs, "seed": seed, "duration_s": duration_s,
                                "num_channels": num_channels, "num_units": num_units})
    key = hashlib.sha256(_dump_json({"generator_version": GENERATOR_VERSION,
                                     "parameters": parameters}).encode()).hexdigest()[:12]
    base = data_dir()
    folder = base / f"demo-{key}"
    if is_complete(folder, parameters):
        return folder
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the data folder ({err.strerror}); set "
                         f"SPIKEVIZ_DATA_DIR to a writable folder", path=base) from None
    try:
        generate_to_folder(folder, overwrite=folder.exists(), **parameters)
    except (InputError, OSError):
        if not is_complete(folder, parameters):  # else another process just made it
            raise
    return folder


def demo_session(seed: int = 0, duration_s: float = 60.0, num_channels: int = 64,
                 num_units: int = 24) -> Session:
    """The embedded default dataset of ``spikeviz demo``: the sorter output as a Session, with
    the raw recording in µV (gain from ground_truth.json) and the probe geometry."""
    from .io import load
    from .io.binary import read_recording

    folder = demo_folder(seed=seed, duration_s=duration_s, num_channels=num_channels,
                         num_units=num_units)
    truth = read_ground_truth(folder)
    recording = read_recording(folder / "recording.dat",
                               sampling_frequency=truth["sampling_frequency"],
                               num_channels=truth["num_channels"], dtype="int16",
                               gain_to_uv=truth["gain_to_uv"],
                               channel_locations=np.load(folder / "channel_positions.npy"))
    return load(folder, recording=recording)


# generate()'s defaults, so that a demo's parameters (its cache key) are complete
_DEFAULTS = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
