"""Rendering the synthetic traces: counter-based noise, oscillations and spike events as
numba kernels, and :class:`SyntheticTraces`, a lazy int16 array whose windows are rendered on
demand (pure numerics).

Every value depends only on its absolute sample and channel, so any window renders on its own
and the output does not depend on the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

# Rendering block, samples: bounds memory (~CHUNK_SAMPLES x channels x 6 bytes); the output
# does not depend on it.
CHUNK_SAMPLES = 32768


# -- kernels --------------------------------------------------------------------------------------
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


# -- renderer -------------------------------------------------------------------------------------
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


# -- the noise model ------------------------------------------------------------------------------
def _make_renderer(rng, p, locations, num_samples, nbefore, templates, artefact, gt_times,
                   gt_units, gt_scales, art_times, art_scales) -> _Renderer:
    """Draw the noise, LFP and line-noise parameters from ``rng`` and index the events (true
    spikes, then artefacts, in time order) into a :class:`_Renderer`."""
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
