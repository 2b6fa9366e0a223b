"""Display kernels (spikeviz.compute.trace_chunks) against scipy and numpy on the same input."""

import numpy as np
import pytest
from scipy import signal

from spikeviz.compute.signal import butter_sos, minmax_envelope
from spikeviz.compute.trace_chunks import (
    envelope_into,
    median_reference_inplace,
    process_chunk,
    scipy_padlen,
)
from spikeviz.errors import InputError

FS = 30000.0


def _raw(n=12000, channels=24, seed=0, lfp=200.0, dc=300):
    """int16 counts: noise + an 8 Hz LFP-like wave + per-channel DC + a few spikes."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    x = rng.normal(0, 30, (n, channels)) + lfp * np.sin(2 * np.pi * 8 * t)[:, None]
    x += rng.integers(-dc, dc + 1, channels)
    x[rng.integers(0, n, 40), rng.integers(0, channels, 40)] -= 400
    return np.round(x).astype(np.int16)


@pytest.mark.parametrize("band", [(300.0, 6000.0), (300.0, None), (30.0, 3000.0)])
def test_filter_equals_scipy_sosfiltfilt_within_a_thousandth_of_a_microvolt(band):
    raw = _raw()
    gains = np.linspace(0.19, 0.2, raw.shape[1])
    offsets = np.linspace(-50.0, 50.0, raw.shape[1])
    sos = butter_sos(FS, band)
    ref = signal.sosfiltfilt(sos, raw * gains + offsets, axis=0)
    for keep in [(0, raw.shape[0]), (500, 11500), (3000, 3001)]:
        out = process_chunk(raw, gains, offsets, sos, keep)
        assert out.dtype == np.float32 and out.flags.c_contiguous
        assert out.shape == (keep[1] - keep[0], raw.shape[1])
        assert np.abs(out - ref[keep[0]:keep[1]]).max() < 1e-3


def test_filter_stays_exact_at_a_large_amplitude():
    # 5.4 mV swings (int16 near full scale at 0.195 µV/count): the input is scaled in float64
    # and the states are float64, so the error stays at the float32 rounding of the small
    # filtered values (measured 2e-6 µV; float32 states measured 1.3e-3 µV on this input)
    raw = _raw(lfp=25000.0, dc=3000)
    sos = butter_sos(FS, (300.0, 6000.0))
    ref = signal.sosfiltfilt(sos, raw * 0.195, axis=0)
    out = process_chunk(raw, 0.195, 0.0, sos)
    assert np.abs(raw * 0.195).max() > 5000
    assert np.abs(out - ref).max() < 1e-4


def test_short_inputs_use_a_clipped_padlen_like_scipy_and_padlen_can_be_given():
    raw = _raw(n=50, channels=3)
    sos = butter_sos(FS, (300.0, 6000.0))
    for n in (1, 2, 7, 34, 50):
        ref = signal.sosfiltfilt(sos, raw[:n] * 0.5, axis=0, padlen=min(scipy_padlen(sos), n - 1))
        assert np.abs(process_chunk(raw[:n], 0.5, 0.0, sos) - ref).max() < 1e-4
    ref = signal.sosfiltfilt(sos, raw * 0.5, axis=0, padlen=5)
    assert np.abs(process_chunk(raw, 0.5, 0.0, sos, padlen=5) - ref).max() < 1e-4
    assert scipy_padlen(sos) == 33 and scipy_padlen(butter_sos(FS, (300.0, None))) == 18


def test_unfiltered_chunk_is_the_scaled_window_and_odd_layouts_are_accepted():
    raw = _raw(channels=6)
    gains = np.array([0.5, -0.5, 1.0, 2.0, 0.25, 1.0])
    offsets = np.arange(6.0)
    out = process_chunk(raw, gains, offsets, None, (100, 200))
    assert np.allclose(out, raw[100:200] * gains + offsets, atol=1e-4)
    swapped = raw.astype(">i2")[:, ::2]  # big-endian and strided
    sos = butter_sos(FS, (300.0, 6000.0))
    assert np.array_equal(process_chunk(swapped, 1.0, 0.0, sos),
                          process_chunk(np.ascontiguousarray(raw[:, ::2]), 1.0, 0.0, sos))
    with pytest.raises(InputError, match="keep"):
        process_chunk(raw, 1.0, 0.0, sos, (10, 10**6))
    with pytest.raises(InputError, match="sections, 6"):
        process_chunk(raw, 1.0, 0.0, sos[:, :5])
    with pytest.raises(InputError, match="dtype"):
        process_chunk(raw.astype(bool), 1.0, 0.0, sos)


def test_median_reference_is_exactly_numpy_median_on_every_kind_of_row():
    rng = np.random.default_rng(4)
    raw = _raw(n=6000, channels=384)
    cases = {
        "int16-like": raw.astype(np.float32) * np.float32(0.195),
        "filtered": process_chunk(raw, 0.195, 0.0, butter_sos(FS, (300.0, 6000.0))),
        # the median jumps by far more than its bracket every few samples
        "jumps": (rng.normal(size=(3000, 384)) + 1e4 * rng.integers(0, 2, (3000, 1)))
        .astype(np.float32),
        "ties": rng.integers(-2, 3, (2000, 384)).astype(np.float32),
    }
    for name, x in cases.items():
        for m in (384, 383, 2, 1):
            part = np.ascontiguousarray(x[:, :m])
            ref = part - np.median(part, axis=1, keepdims=True)
            assert np.array_equal(median_reference_inplace(part), ref), (name, m)


def test_median_reference_wants_a_contiguous_float32_array():
    with pytest.raises(InputError, match="float32"):
        median_reference_inplace(np.zeros((3, 4)))
    with pytest.raises(InputError, match="float32"):
        median_reference_inplace(np.zeros((3, 4), np.float32)[:, ::2])


def test_chunk_envelopes_combine_to_the_exact_envelope_of_the_window():
    x = process_chunk(_raw(n=10000, channels=12), 0.195, 0.0, butter_sos(FS, (300.0, 6000.0)))
    for n_columns in (1, 7, 333, 10000):
        ref_min, ref_max, edges = minmax_envelope(x, n_columns)
        for columns in (None, [2, 3, 4, 5], [0, 5, 11]):
            mins = np.full((edges.size - 1, 12 if columns is None else len(columns)), np.inf,
                           np.float32)
            maxs = -mins
            for a, b in [(0, 2500), (2500, 2501), (2501, 7777), (7777, 10000)]:
                k0, part_min, part_max = envelope_into(x[a:b], a, edges, columns)
                k1 = k0 + part_min.shape[0]
                np.minimum(mins[k0:k1], part_min, out=mins[k0:k1])
                np.maximum(maxs[k0:k1], part_max, out=maxs[k0:k1])
            cols = slice(None) if columns is None else columns
            assert np.array_equal(mins, ref_min[:, cols]) and np.array_equal(maxs, ref_max[:, cols])
