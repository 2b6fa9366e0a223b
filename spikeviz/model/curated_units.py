"""Results of one unit computed from its own spikes only (units made by merges and splits).

Every function here takes the unit's spikes as *original* spike-vector positions and sample
indices (int64) and gives what :mod:`spikeviz.model.steps` would give for that unit in a
sorting holding it alone, with the same parameters: the same definitions, the same kernels,
the same random draw (``select_random_spikes`` on the unit's own spikes with the same seed),
so a result equals the one a fresh ``Session(sorting.select_units([unit_id]), recording)``
computes. Traces are read only on the channels needed (one channel for amplitudes), through
the session's filter and scaling, so a value equals the all-channel computation.
"""

from __future__ import annotations

import numpy as np

from ..compute import locations as locations_mod
from ..compute import metrics, waveforms
from ..compute.signal import filtered_reader
from .steps import SPARSITY, WINDOW, ms_to_samples
from .steps_metrics import PC_METRICS

#: Parameters CuratedAnalysis computes with: the steps' defaults (so the session's cached
#: results of the original units are reused as they are).
TEMPLATE_PARAMS = dict(WINDOW)
PEAK_SIGN = "neg"
SPARSITY_PARAMS = {**WINDOW, **SPARSITY}
LOCATION_METHOD = "center_of_mass"
#: Chunk (samples) by which a unit's sampled spikes are grouped into one read: a unit's
#: spikes are sparse, and a filtered read costs its length plus two filter margins.
SPARSE_CHUNK_SAMPLES = 1024
#: A split part's template is read on the channels within this distance (µm) of its parent's
#: peak channel (its spikes are a subset of the parent's): filtering 384 channels around every
#: sampled spike would take seconds. Twice the sparsity radius.
SPLIT_RADIUS_UM = 2 * SPARSITY["radius_um"]


def window_samples(session) -> tuple[int, int]:
    fs = session.sorting.sampling_frequency
    return (ms_to_samples(TEMPLATE_PARAMS["ms_before"], fs),
            ms_to_samples(TEMPLATE_PARAMS["ms_after"], fs))


def num_samples_of(session) -> int:
    """Recording length (samples) the steps use: the recording's, else the sorting's."""
    sorting = session.sorting
    if session.recording is not None:
        return session.recording.num_samples
    if sorting.num_samples is not None:
        return sorting.num_samples
    return int(sorting.sample_index[-1]) + 1 if sorting.num_spikes else 0


def raw_channel_reader(recording, channels) -> tuple:
    """``(read_raw, gains, offsets)``: stored values of the channels at positions ``channels``
    only (``read_raw(start_sample, end_sample)``), and their scaling to µV."""
    channels = np.asarray(channels, dtype=np.int64)
    ids = recording.channel_ids[channels]

    def read_raw(start_sample: int, end_sample: int):
        return recording.traces(int(start_sample), int(end_sample), channel_ids=ids,
                                scaled=False)

    return read_raw, recording.gains_to_uv[channels], recording.offsets_to_uv[channels]


def channel_reader(session, channels) -> tuple:
    """``(read_raw, gains, offsets)`` over the channels at positions ``channels`` only, with the
    session's filter (as ``Analysis.reader``/``scaling``, restricted to those columns)."""
    ctx = session.analysis.bound()
    rec = session.recording
    channels = np.asarray(channels, dtype=np.int64)
    read_raw, gains, offsets = raw_channel_reader(rec, channels)
    band = ctx.filter_band_hz()
    if band is None:
        return read_raw, gains.astype(np.float32), offsets.astype(np.float32)
    read = filtered_reader(read_raw, rec.num_samples, rec.sampling_frequency, gains, offsets,
                           band_hz=band)
    return read, np.ones(channels.size, np.float32), np.zeros(channels.size, np.float32)


def random_spikes(session, samples: np.ndarray, max_spikes: int, seed: int) -> np.ndarray:
    """Rows of ``samples`` drawn as the ``random_spikes`` step draws a one-unit sorting."""
    nbefore, nafter = window_samples(session)
    return waveforms.select_random_spikes(
        samples, np.zeros(samples.size, np.int32), 1, max_spikes, seed, start_sample=nbefore,
        end_sample=max(num_samples_of(session) - nafter, 0))


def inside(session, samples: np.ndarray) -> int:
    """How many of ``samples`` have their snippet inside the recording (template candidates)."""
    nbefore, nafter = window_samples(session)
    end = max(num_samples_of(session) - nafter, 0)
    return int(np.count_nonzero((samples >= nbefore) & (samples < end)))


def template(session, samples: np.ndarray, channels=None) -> dict:
    """Mean and std (µV, (samples, channels) float32) of the unit's sampled snippets on every
    channel, or only on the channel positions ``channels`` (0 elsewhere); its peak (channel
    position, shift, signed value, peak-to-peak) and its sparsity."""
    nbefore, nafter = window_samples(session)
    chosen = random_spikes(session, samples, TEMPLATE_PARAMS["max_spikes_per_unit"],
                           TEMPLATE_PARAMS["seed"])
    rec = session.recording
    if channels is None:
        ctx = session.analysis.bound()
        read = ctx.reader()
        gains, offsets = ctx.scaling()
    else:
        read, gains, offsets = channel_reader(session, channels)
    mean, std = waveforms.accumulate_templates(
        read, rec.num_samples, samples[chosen], np.zeros(chosen.size, np.int32), 1,
        nbefore, nafter, gains, offsets, n_jobs=session.n_jobs,
        chunk_samples=SPARSE_CHUNK_SAMPLES)
    if channels is not None:
        dense = np.zeros((2, mean.shape[1], rec.num_channels), np.float32)
        dense[0][:, channels], dense[1][:, channels] = mean[0], std[0]
        mean, std = dense[:1], dense[1:]
    return describe(session, mean[0], std[0], int(chosen.size), inside(session, samples))


def channels_near(session, channel: int) -> np.ndarray | None:
    """Channel positions within SPLIT_RADIUS_UM of ``channel`` (None: no geometry)."""
    locations = session.channel_locations_um
    if locations is None:
        return None
    locations = np.asarray(locations, dtype=np.float64)[:, :2]
    distance = np.linalg.norm(locations - locations[channel], axis=1)
    return np.flatnonzero(distance <= SPLIT_RADIUS_UM)


def combine(session, parts) -> dict:
    """The template of a merge from its parts' ``(mean, std, count)``: the count-weighted
    mean and the pooled population std (float64 sums). ``count`` is each part's number of
    snippet candidates; when every part's template used all of them, this is exactly the mean
    and std over the merged unit's spikes."""
    total = sum(n for _, _, n, _ in parts)
    mean = np.zeros(parts[0][0].shape, np.float64)
    second = np.zeros_like(mean)
    for m, sd, n, _ in parts:
        m64 = np.asarray(m, np.float64)
        mean += n * m64
        second += n * (np.asarray(sd, np.float64) ** 2 + m64 * m64)
    if total:
        mean /= total
        second /= total
    std = np.sqrt(np.maximum(second - mean * mean, 0.0))
    return describe(session, mean.astype(np.float32), std.astype(np.float32),
                    sum(used for _, _, _, used in parts), total)


def describe(session, mean, std, used: int, candidates: int) -> dict:
    nbefore, _ = window_samples(session)
    out = {"mean": mean, "std": std, "num_spikes_used": used, "candidates": candidates,
           "nbefore": nbefore}
    out.update(peaks(mean[None], nbefore))
    out["sparsity"] = sparsity(session, mean[None], nbefore)
    return out


def peaks(mean: np.ndarray, nbefore: int) -> dict:
    """As the ``unit_peaks`` step, for a (1, samples, channels) template."""
    channel = int(waveforms.peak_channels(mean, nbefore, PEAK_SIGN)[0])
    shift = int(waveforms.peak_shifts(mean, nbefore, PEAK_SIGN)[0])
    return {"peak_channel": channel, "peak_shift": shift,
            "peak_uv": float(mean[0, nbefore + shift, channel]),
            "ptp_uv": float(np.ptp(mean[0, :, channel]))}


def sparsity(session, mean: np.ndarray, nbefore: int) -> np.ndarray:
    """Channel positions of the unit (as the ``sparsity`` step), ascending, no padding."""
    locations_um = session.channel_locations_um
    method = SPARSITY["sparsity_method"]
    if method == "radius" and locations_um is None:
        method = "best_channels"
    if locations_um is None:
        locations_um = np.zeros((mean.shape[2], 2))
    channels = waveforms.sparsity_from_templates(
        mean, locations_um, nbefore, method=method, radius_um=SPARSITY["radius_um"],
        num_channels=min(SPARSITY["num_channels"], mean.shape[2]),
        peak_sign=SPARSITY["peak_sign"])[0]
    return channels[channels >= 0]


def location(session, entry: dict) -> np.ndarray:
    """x/y (µm) of the unit as the ``unit_locations`` step (NaN without geometry)."""
    if session.channel_locations_um is None:
        return np.full(2, np.nan)
    channels = entry["sparsity"]
    return locations_mod.compute_unit_locations(
        entry["mean"][None], session.channel_locations_um, entry["nbefore"],
        sparse_channel_indices=channels[None], method=LOCATION_METHOD)[0, :2]


def amplitudes(session, samples: np.ndarray, channel: int, shift: int) -> np.ndarray:
    """Trace value (µV, float32) on ``channel`` at ``samples + shift``: ``spike_amplitudes``."""
    read, gains, offsets = channel_reader(session, [channel])
    return waveforms.compute_spike_amplitudes(
        read, session.recording.num_samples, samples, np.zeros(samples.size, np.int32),
        [0], [shift], gains, offsets, n_jobs=session.n_jobs)


def snippets(session, samples: np.ndarray, channels) -> np.ndarray:
    """Snippets (n, samples, len(channels)) float32 µV on the channel positions given."""
    nbefore, nafter = window_samples(session)
    read, gains, offsets = channel_reader(session, channels)
    return waveforms.extract_waveforms(read, session.recording.num_samples, samples, nbefore,
                                       nafter, gains, offsets, n_jobs=session.n_jobs)


def unit_metrics(session, samples: np.ndarray, columns, amplitudes_uv=None, entry=None,
                 noise_uv=None, phy_amplitudes=None) -> dict:
    """Quality metrics of one unit from its own spikes (``columns``: the session's).

    Train metrics always; ``snr`` from its template and the session's noise levels;
    ``amplitude_cutoff`` / ``amplitude_median`` from its spike amplitudes (µV, or KiloSort's
    per-spike scalings without a recording, as the session does). PC metrics (isolation
    distance, L-ratio, d') compare a unit with its neighbours in a PCA space fitted on the
    whole population: they are NaN here, never copied from a parent.
    """
    columns = list(columns)
    inputs: dict = {}
    wanted = [c for c in columns if c in metrics.METRIC_NAMES and c not in PC_METRICS]
    if amplitudes_uv is not None:
        inputs["amplitudes"] = np.asarray(amplitudes_uv, np.float64)
    elif phy_amplitudes is not None:
        inputs["amplitudes"] = np.asarray(phy_amplitudes, np.float64)
    if entry is not None and noise_uv is not None:
        inputs["peak_amplitudes"] = np.array([entry["peak_uv"]])
        inputs["peak_channels"] = np.array([entry["peak_channel"]])
        inputs["noise_levels"] = np.asarray(noise_uv)
    given = set(inputs)
    needs = {"snr": {"peak_amplitudes"}, "amplitude_cutoff": {"amplitudes"},
             "amplitude_median": {"amplitudes"}}
    computable = [c for c in wanted if needs.get(c, set()) <= given]
    out = {c: np.nan for c in columns}
    num_samples = num_samples_of(session)
    if computable and num_samples > 0:
        values = metrics.compute_quality_metrics(
            samples, np.zeros(samples.size, np.int32), 1, session.sorting.sampling_frequency,
            num_samples, metric_names=computable, **inputs)
        out.update({c: values[c][0].item() for c in computable})
    return out

