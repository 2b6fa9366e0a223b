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

Modules
-------
:mod:`.units` (probe layout, waveforms, templates, spike trains), :mod:`.render` (numba noise,
oscillation and event kernels; the lazy :class:`SyntheticTraces`), :mod:`.sorter` (the
simulated sorter output), :mod:`.truth` (:func:`generate`, :class:`GroundTruth`, the mapping
of ``ground_truth.json``), :mod:`.folder` (:func:`generate_to_folder`, manifest, demo cache).
"""

from .folder import (
    MANIFEST,
    data_dir,
    demo_folder,
    demo_session,
    generate_to_folder,
    is_complete,
    read_ground_truth,
)
from .render import CHUNK_SAMPLES, SyntheticTraces
from .sorter import SorterOutput
from .truth import GENERATOR_VERSION, GroundTruth, generate
from .units import UNIT_KINDS, poisson_train, probe_locations_um

__all__ = [
    "CHUNK_SAMPLES",
    "GENERATOR_VERSION",
    "MANIFEST",
    "UNIT_KINDS",
    "GroundTruth",
    "SorterOutput",
    "SyntheticTraces",
    "data_dir",
    "demo_folder",
    "demo_session",
    "generate",
    "generate_to_folder",
    "is_complete",
    "poisson_train",
    "probe_locations_um",
    "read_ground_truth",
]
