"""The 500-unit / 10 M-spike synthetic session of the dashboard benchmark (sorting only).

- Spikes: ``_common.spike_dataset`` — lognormal firing rates (sigma 1), Poisson-like times
  uniformly spread over 1 h at 30 kHz, seeded; built with ``Sorting.from_arrays`` from
  time-sorted int64 samples and int32 unit indices (about 120 MB for 10 M spikes; generation
  peaks at about 3x that).
- Unit ids are not indices: 500 distinct ids drawn from 0..9999, sorted.
- Probe: 384 channels, Neuropixels 1.0-like checkerboard (x 43/11/59/27 µm, 20 µm rows);
  channel ids 0..383. Each unit gets a ``peak_channel_id`` column in its unit table (depth
  comes from it) and a KiloSort-like ``Amplitude`` column.
- No recording: 1 h x 384 channels of int16 is 83 GB.

``write_phy_folder`` writes the session as a Phy folder (zero templates unless
``templates=True``: then seeded synthetic sparse templates, a biphasic bump on each unit's peak
channel and its neighbours, so that phylib and spikeviz read realistic template arrays).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spike_dataset

NUM_CHANNELS = 384


def neuropixels_geometry(num_channels: int = NUM_CHANNELS) -> tuple[np.ndarray, np.ndarray]:
    """(channel ids int64, locations (n, 2) µm) of a Neuropixels 1.0-like checkerboard."""
    ids = np.arange(num_channels, dtype=np.int64)
    x = np.tile([43.0, 11.0, 59.0, 27.0], num_channels // 4 + 1)[:num_channels]
    y = (ids // 2) * 20.0
    return ids, np.column_stack([x, y])


def big_sorting(num_spikes: int = 10_000_000, num_units: int = 500, duration_s: float = 3600.0,
                fs: float = 30000.0, seed: int = 0):
    """The seeded synthetic Sorting (see the module docstring)."""
    import pandas as pd

    import spikeviz as sv

    sample_index, unit_index, fs = spike_dataset(num_spikes, num_units, duration_s, fs, seed)
    rng = np.random.default_rng(seed + 1)
    unit_ids = np.sort(rng.choice(10_000, num_units, replace=False)).astype(np.int64)
    table = pd.DataFrame({
        "peak_channel_id": rng.integers(0, NUM_CHANNELS, num_units).astype(np.int64),
        "Amplitude": rng.lognormal(4.0, 0.5, num_units).round(1),
    }, index=pd.Index(unit_ids, name="unit_id"))
    return sv.Sorting.from_arrays(sample_index, unit_index, fs, unit_ids=unit_ids,
                                  unit_table=table, num_samples=int(duration_s * fs))


def big_session(sorting=None, cache_dir=None, **kwargs):
    """Session of the synthetic sorting with the 384-channel geometry and no recording."""
    import spikeviz as sv

    sorting = big_sorting(**kwargs) if sorting is None else sorting
    ids, locations = neuropixels_geometry()
    return sv.Session(sorting, channel_ids=ids, channel_locations_um=locations,
                      cache_dir=cache_dir, format="synthetic",
                      source="synthetic 500-unit session")


def _synthetic_templates(peak_channels: np.ndarray, locations: np.ndarray,
                         num_samples: int = 82, seed: int = 0) -> np.ndarray:
    """(units, samples, channels) float32: a biphasic waveform decaying with distance."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) - num_samples // 3
    shape = (-np.exp(-0.5 * (t / 3.0) ** 2) + 0.35 * np.exp(-0.5 * ((t - 12) / 6.0) ** 2))
    out = np.zeros((peak_channels.size, num_samples, locations.shape[0]), dtype=np.float32)
    for i, c in enumerate(peak_channels.tolist()):
        d = np.hypot(*(locations - locations[c]).T)
        near = np.flatnonzero(d < 100.0)
        gain = rng.uniform(5, 20) * np.exp(-d[near] / 30.0)
        out[i][:, near] = (shape[:, None] * gain[None, :]).astype(np.float32)
    return out


def write_phy_folder(session, folder: Path, templates: bool = True) -> Path:
    """Write ``session`` as a Phy folder (no raw data); optionally with synthetic templates."""
    import warnings

    import spikeviz as sv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "zero templates" / no-raw warnings: expected here
        folder = sv.export.to_phy(session, folder, raw=None)
    if templates:
        peaks = session.sorting.unit_table["peak_channel_id"].to_numpy()
        _, locations = neuropixels_geometry()
        old = np.load(folder / "templates.npy", mmap_mode="r")
        tpl = _synthetic_templates(peaks, locations, num_samples=old.shape[1])
        assert tpl.shape == old.shape, (tpl.shape, old.shape)
        del old
        np.save(folder / "templates.npy", tpl)
        sim = _cosine(tpl)
        np.save(folder / "similar_templates.npy", sim)
    return folder


def _cosine(tpl: np.ndarray) -> np.ndarray:
    flat = tpl.reshape(tpl.shape[0], -1).astype(np.float64)
    norm = np.linalg.norm(flat, axis=1)
    norm[norm == 0] = 1.0
    flat /= norm[:, None]
    return (flat @ flat.T).astype(np.float32)
