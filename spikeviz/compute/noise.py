"""Per-channel noise levels from random chunks of the raw traces.

Same definition as SpikeInterface's ``get_noise_levels`` (0.105):

- ``num_chunks`` chunks of ``chunk_samples`` samples are drawn with
  ``numpy.random.default_rng(seed).integers(0, num_samples - chunk_samples, num_chunks,
  endpoint=True)`` (start samples, sorted; chunks may overlap). When the recording is shorter
  than a chunk, the chunk is shortened to ``num_samples - 1`` samples, as SpikeInterface does.
- On each chunk and channel: ``"mad"`` = median(|x - median(x)|) / 0.6744897501960817 (the
  median absolute deviation around the chunk's own median, scaled to a Gaussian sigma);
  ``"std"`` = population standard deviation (ddof 0); ``"rms"`` = sqrt(mean(x²)).
- The noise level is the mean of the per-chunk values.

With the same ``seed``, ``chunk_samples`` and ``num_chunks`` the chunks are the same as
SpikeInterface's (its defaults are a random seed and 500 ms chunks, i.e. ``chunk_samples =
int(0.5 * sampling_frequency)``). SpikeInterface scales the traces to float32 µV before taking
medians; here "mad" and "std" are computed on the stored values in float64 and multiplied by
``|gain|`` (exact, since both are scale-equivariant and shift-invariant), so results agree with
SpikeInterface to float32 rounding (~1e-7 relative; SpikeInterface loses more precision when
offsets are large).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from spikeviz.errors import InputError

MAD_TO_SIGMA = 0.6744897501960817  # median(|N(0, 1)|)
NOISE_METHODS = ("mad", "std", "rms")


def random_chunk_starts(num_samples: int, num_chunks: int = 20, chunk_samples: int = 10000,
                        seed: int | None = 0) -> tuple[np.ndarray, int]:
    """Sorted int64 start samples of the random chunks, and the chunk length actually used.

    Draws exactly as SpikeInterface's ``get_random_sample_slices(method="full_random")`` for a
    single segment with no margin.
    """
    num_samples, num_chunks, chunk_samples = int(num_samples), int(num_chunks), int(chunk_samples)
    if num_samples < 2:
        raise InputError(f"need at least 2 samples to estimate noise, got {num_samples}",
                         field="num_samples")
    if num_chunks < 1:
        raise InputError(f"num_chunks must be >= 1, got {num_chunks}", field="num_chunks")
    if chunk_samples < 1:
        raise InputError(f"chunk_samples must be >= 1, got {chunk_samples}",
                         field="chunk_samples")
    if chunk_samples > num_samples:
        warnings.warn(f"chunk_samples={chunk_samples} is longer than the recording "
                      f"({num_samples} samples); using {num_samples - 1}", stacklevel=2)
        chunk_samples = num_samples - 1
    rng = np.random.default_rng(seed)
    starts = rng.integers(low=0, high=num_samples - chunk_samples, size=num_chunks,
                          endpoint=True)
    return np.sort(starts).astype(np.int64), chunk_samples


def _chunk_noise(raw: np.ndarray, gains: np.ndarray, offsets: np.ndarray,
                 method: str) -> np.ndarray:
    """Noise (µV, float64) of one chunk (samples, channels) of stored values."""
    x = np.ascontiguousarray(raw.T, dtype=np.float64)  # (channels, samples): rows contiguous
    if method == "mad":
        med = np.median(x, axis=1, keepdims=True)
        np.subtract(x, med, out=x)
        np.abs(x, out=x)
        return np.median(x, axis=1) * np.abs(gains) / MAD_TO_SIGMA
    if method == "std":
        return np.std(x, axis=1) * np.abs(gains)
    x *= gains[:, None]
    x += offsets[:, None]
    return np.sqrt(np.mean(x * x, axis=1))


def compute_noise_levels(read_raw: Callable[[int, int], np.ndarray], num_samples: int,
                         gains, offsets, num_chunks: int = 20, chunk_samples: int = 10000,
                         seed: int | None = 0, method: str = "mad") -> np.ndarray:
    """Noise level of every channel, float32 µV (SpikeInterface ``get_noise_levels``).

    Parameters
    ----------
    read_raw : callable
        ``read_raw(start_sample, end_sample) -> ndarray (samples, channels)`` in the stored
        dtype; only ``num_chunks`` windows of ``chunk_samples`` samples are read.
    num_samples : int
        Length of the recording in samples.
    gains, offsets : array-like (channels,) or scalar
        µV = raw * gain + offset.
    num_chunks, chunk_samples, seed
        The random chunks (see :func:`random_chunk_starts`).
    method : "mad" | "std" | "rms"
        MAD / 0.6745 around the chunk median (robust sigma), standard deviation, or RMS.

    Returns
    -------
    noise_levels : float32 ndarray (channels,), in µV: the mean of the per-chunk estimates.
    """
    if method not in NOISE_METHODS:
        raise InputError(f"method must be one of {NOISE_METHODS}, got {method!r}",
                         field="method")
    starts, length = random_chunk_starts(num_samples, num_chunks, chunk_samples, seed)
    total = None
    gains_arr = offsets_arr = None
    for start in starts:
        raw = np.asarray(read_raw(int(start), int(start) + length))
        if raw.ndim != 2 or raw.shape[0] != length:
            raise InputError(f"read_raw({start}, {start + length}) returned shape "
                             f"{raw.shape}, expected ({length}, channels)", field="read_raw")
        if total is None:
            num_channels = raw.shape[1]
            gains_arr = _per_channel(gains, num_channels, "gains")
            offsets_arr = _per_channel(offsets, num_channels, "offsets")
            total = np.zeros(num_channels, dtype=np.float64)
        elif raw.shape[1] != total.shape[0]:
            raise InputError("read_raw returned a different number of channels between chunks",
                             field="read_raw")
        total += _chunk_noise(raw, gains_arr, offsets_arr, method)
    return (total / len(starts)).astype(np.float32)


def _per_channel(values, num_channels: int, field: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(num_channels, float(arr))
    if arr.shape != (num_channels,):
        raise InputError(f"expected {num_channels} values (one per channel), got shape "
                         f"{arr.shape}", field=field)
    return arr
