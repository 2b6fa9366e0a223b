"""Window-by-window band-pass filtering (spikeviz.compute.signal)."""

import numpy as np
import pytest
from scipy import signal

from spikeviz.compute.signal import butter_sos, filtered_reader
from spikeviz.errors import InputError

FS = 30000.0


def _traces(seed=0, n=60000, channels=3):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    slow = 400 * np.sin(2 * np.pi * 7 * t)[:, None]           # LFP-like, removed
    fast = 50 * np.sin(2 * np.pi * 1500 * t)[:, None]          # in band, kept
    return np.round((slow + fast + rng.normal(0, 5, (n, channels))) / 0.5).astype(np.int16)


def test_windows_equal_filtering_the_whole_recording_away_from_its_ends():
    raw = _traces()
    gains, offsets = np.full(3, 0.5), np.zeros(3)
    reference = signal.sosfiltfilt(butter_sos(FS), raw * 0.5, axis=0)
    read = filtered_reader(lambda a, b: raw[a:b], raw.shape[0], FS, gains, offsets)
    for start, end in [(3000, 9000), (20000, 20500), (31234, 45678)]:
        window = read(start, end)
        assert window.dtype == np.float32 and window.shape == (end - start, 3)
        err = np.abs(window - reference[start:end]).max()
        assert err < 0.02 * np.abs(reference).max(), err


def test_band_removes_the_slow_wave_and_keeps_the_in_band_one():
    raw = _traces()
    read = filtered_reader(lambda a, b: raw[a:b], raw.shape[0], FS, np.full(3, 0.5),
                           np.zeros(3))
    out = read(6000, 54000)
    spectrum = np.abs(np.fft.rfft(out[:, 0]))
    freqs = np.fft.rfftfreq(out.shape[0], 1 / FS)
    at = lambda f: spectrum[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert at(1500) > 100 * at(7)
    assert abs(np.std(out[:, 0]) - 50 / np.sqrt(2)) < 6  # the 1.5 kHz sine passes (+ noise)


def test_reads_only_the_window_plus_margins_and_handles_the_edges():
    raw = _traces(n=5000)
    calls = []

    def read_raw(a, b):
        calls.append((a, b))
        return raw[a:b]

    read = filtered_reader(read_raw, raw.shape[0], FS, np.ones(3), np.zeros(3))
    assert read(1000, 2000).shape == (1000, 3)
    assert calls[-1] == (500, 2500)  # 5 periods of 300 Hz = 500 samples each side
    assert read(0, 10).shape == (10, 3) and calls[-1] == (0, 510)
    assert read(4990, 5000).shape == (10, 3) and calls[-1] == (4490, 5000)
    assert read(7, 7).shape == (0, 3)


def test_matches_spikeinterface_bandpass_filter_with_the_same_margin():
    se = pytest.importorskip("spikeinterface.core")
    spre = pytest.importorskip("spikeinterface.preprocessing")
    raw = _traces(seed=3)
    rec = se.NumpyRecording([raw], FS)
    rec.set_channel_gains(0.5)
    rec.set_channel_offsets(0.0)
    si = spre.bandpass_filter(rec, freq_min=300.0, freq_max=6000.0, filter_order=5,
                              margin_ms=50.0 / 3.0, dtype="float32")
    read = filtered_reader(lambda a, b: raw[a:b], raw.shape[0], FS, np.full(3, 0.5),
                           np.zeros(3))
    ours = read(12000, 24000)
    theirs = si.get_traces(start_frame=12000, end_frame=24000, return_in_uV=True)
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(theirs).max()


def test_high_pass_when_the_upper_edge_is_none_and_bad_bands_are_clear_errors():
    assert butter_sos(FS, (300.0, None)).shape == (3, 6)  # order 5 -> 3 sections
    with pytest.raises(InputError, match="low edge"):
        butter_sos(FS, (0.0, 6000.0))
    with pytest.raises(InputError, match="low < high"):
        butter_sos(FS, (3000.0, 300.0))
