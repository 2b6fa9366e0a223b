"""Filtering of raw traces, window by window, for computations on unfiltered recordings.

Templates, amplitudes, noise levels and PCA of a raw (wide-band) recording are dominated by
the LFP unless the traces are band-passed first, as phy and SpikeInterface's preprocessing do.
:func:`filtered_reader` wraps a ``read_raw(start, end)`` so that every window it returns is
band-passed and in µV: it reads ``margin`` extra samples on each side (clipped to the
recording), filters forward and backward (zero phase) with a Butterworth filter in
second-order sections, and cuts the margins off. Results therefore do not depend on where
the windows fall, up to the filter's decay over the margin (documented per parameter).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from ..errors import InputError

# SpikeInterface's bandpass_filter defaults.
DEFAULT_BAND_HZ = (300.0, 6000.0)
DEFAULT_ORDER = 5
# Extra time read on each side of a window so that the zero-phase filter settles, in periods
# of the low edge: 5 (16.7 ms at 300 Hz), SpikeInterface's recommended minimum.
MARGIN_PERIODS = 5.0


def butter_sos(sampling_frequency: float, band_hz=DEFAULT_BAND_HZ,
               order: int = DEFAULT_ORDER) -> np.ndarray:
    """Second-order sections of a Butterworth band-pass (or high-pass when the upper edge is
    None or at/above Nyquist). ``band_hz``: (low, high) in Hz."""
    low, high = band_hz
    nyquist = sampling_frequency / 2.0
    if low is None or not 0 < float(low) < nyquist:
        raise InputError(f"the filter's low edge must lie in (0, {nyquist:g}) Hz, got {low}",
                         field="filter_band_hz")
    if high is None or float(high) >= nyquist:
        return signal.butter(order, float(low), btype="highpass", fs=sampling_frequency,
                             output="sos")
    if float(high) <= float(low):
        raise InputError(f"the filter's band must have low < high, got {band_hz}",
                         field="filter_band_hz")
    return signal.butter(order, [float(low), float(high)], btype="bandpass",
                         fs=sampling_frequency, output="sos")


def filtered_reader(read_raw, num_samples: int, sampling_frequency: float, gains, offsets,
                    band_hz=DEFAULT_BAND_HZ, order: int = DEFAULT_ORDER,
                    margin_ms: float | None = None):
    """``read(start_sample, end_sample) -> float32 µV (samples, channels)``, band-passed.

    ``read_raw`` returns stored values; ``gains``/``offsets`` (per channel) scale them to µV
    before filtering. Use the returned reader with gains 1 and offsets 0. ``margin_ms``:
    extra time read on each side (default 5 periods of the low edge).
    """
    sos = butter_sos(sampling_frequency, band_hz, order)
    if margin_ms is None:
        margin_ms = MARGIN_PERIODS * 1000.0 / float(band_hz[0])
    margin = round(margin_ms * sampling_frequency / 1000.0)
    gains = np.asarray(gains, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.float32)

    def read(start_sample: int, end_sample: int) -> np.ndarray:
        lo = max(int(start_sample) - margin, 0)
        hi = min(int(end_sample) + margin, int(num_samples))
        raw = np.asarray(read_raw(lo, hi))
        if raw.shape[0] == 0:
            return np.zeros((0, raw.shape[1]), np.float32)
        traces = raw.astype(np.float32) * gains + offsets
        # sosfiltfilt needs more samples than its padding; tiny windows are padded less
        padlen = min(3 * (2 * len(sos) + 1), traces.shape[0] - 1)
        out = signal.sosfiltfilt(sos, traces, axis=0, padlen=max(padlen, 0))
        return out[start_sample - lo:end_sample - lo].astype(np.float32)

    return read
