"""The derived results a Session can compute, registered with :mod:`spikeviz.model.analysis`.

Names and parameters follow SpikeInterface's extensions where one exists (``random_spikes``,
``templates``, ``noise_levels``, ``spike_amplitudes``, ``unit_locations``,
``principal_components``, ``correlograms``, ``isi_histograms``, ``template_similarity``,
``quality_metrics``), so a SpikeInterface user finds the same knobs. All arrays are indexed by
unit *position* in ``session.sorting.unit_ids``; the public objects carry the ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..compute import ccg, features, locations, noise, rates, waveforms
from ..errors import InputError
from .analysis import Step, register
from .waveforms import Templates, Waveforms

# -- shared parameter groups ----------------------------------------------------------------
WINDOW = {"ms_before": 1.0, "ms_after": 2.0, "max_spikes_per_unit": 500, "seed": 0}
SPARSITY = {"sparsity_method": "radius", "radius_um": 100.0, "num_channels": 16,
            "peak_sign": "neg"}


def _pick(params: dict, group: dict) -> dict:
    return {k: params[k] for k in group}


def ms_to_samples(ms: float, sampling_frequency: float) -> int:
    """Nearest whole number of samples (SpikeInterface's rounding)."""
    return round(ms * sampling_frequency / 1000.0)


def _frame(ctx, columns: dict) -> pd.DataFrame:
    ids = ctx.session.sorting.unit_ids
    frame = pd.DataFrame({k: np.asarray(v) for k, v in columns.items()},
                         index=pd.Index(ids, name="unit_id"))
    return frame


def _window(ctx, params):
    fs = ctx.session.sorting.sampling_frequency
    return ms_to_samples(params["ms_before"], fs), ms_to_samples(params["ms_after"], fs)


def _num_samples(ctx) -> int:
    sorting = ctx.session.sorting
    if ctx.session.recording is not None:
        return ctx.session.recording.num_samples
    if sorting.num_samples is not None:
        return sorting.num_samples
    return int(sorting.sample_index[-1]) + 1 if sorting.num_spikes else 0


def _scaling(ctx):
    return ctx.scaling()


# -- random spikes, templates, noise --------------------------------------------------------
def _run_random_spikes(ctx, params, deps):
    s = ctx.session.sorting
    nbefore, nafter = _window(ctx, params)
    chosen = waveforms.select_random_spikes(
        s.sample_index, s.unit_index, s.num_units, params["max_spikes_per_unit"],
        params["seed"], start_sample=nbefore, end_sample=max(_num_samples(ctx) - nafter, 0))
    return {"spike_indices": chosen}, {"nbefore": nbefore, "nafter": nafter}


register(Step("random_spikes", 1, dict(WINDOW), _run_random_spikes, doc="""
    Up to max_spikes_per_unit spikes per unit, uniformly at random (seeded), among those whose
    snippet [t - ms_before, t + ms_after) lies inside the recording.""",
    wrap=lambda ctx, a, at, p: a["spike_indices"]))


def _run_templates(ctx, params, deps):
    s = ctx.session.sorting
    chosen = deps["random_spikes"][0]["spike_indices"]
    nbefore, nafter = _window(ctx, params)
    gains, offsets = _scaling(ctx)
    rec = ctx._recording()
    mean, std = waveforms.accumulate_templates(
        ctx.reader("templates"), rec.num_samples, s.sample_index[chosen], s.unit_index[chosen],
        s.num_units, nbefore, nafter, gains, offsets, n_jobs=ctx.n_jobs)
    counts = np.bincount(s.unit_index[chosen], minlength=s.num_units)
    return ({"average": mean, "std": std, "num_spikes_used": counts},
            {"nbefore": nbefore, "nafter": nafter})


def _wrap_templates(ctx, arrays, attrs, params):
    session = ctx.session
    rec = session.recording
    return Templates(arrays["average"], session.sorting.unit_ids, rec.channel_ids,
                     std=arrays["std"], nbefore=attrs["nbefore"],
                     sampling_frequency=session.sorting.sampling_frequency,
                     units="uV" if rec.gain_known else "raw")


register(Step("templates", 1, dict(WINDOW), _run_templates, needs_recording=True,
              depends=lambda ctx, p: {"random_spikes": _pick(p, WINDOW)}, wrap=_wrap_templates,
              doc="Dense mean and standard deviation of the sampled snippets (µV)."))


def _run_noise(ctx, params, deps):
    rec = ctx._recording()
    gains, offsets = _scaling(ctx)
    levels = noise.compute_noise_levels(
        ctx.reader("noise_levels"), rec.num_samples, gains, offsets,
        num_chunks=params["num_chunks"], chunk_samples=params["chunk_samples"],
        seed=params["seed"], method=params["method"])
    return {"noise_levels": levels}, {}


register(Step("noise_levels", 1,
              {"num_chunks": 20, "chunk_samples": 10000, "seed": 0, "method": "mad"},
              _run_noise, needs_recording=True,
              wrap=lambda ctx, a, at, p: pd.Series(np.asarray(a["noise_levels"]),
                                                   index=ctx.session.recording.channel_ids,
                                                   name="noise_uv"),
              doc="Noise per channel (µV): MAD/0.6745 (or std) of random chunks."))


# -- sparsity, waveforms, amplitudes, locations, PCA ----------------------------------------
def _dense_templates(deps):
    arrays, attrs = deps["templates"]
    return np.asarray(arrays["average"]), attrs["nbefore"]


def _run_sparsity(ctx, params, deps):
    templates, nbefore = _dense_templates(deps)
    locations_um = ctx.session.channel_locations_um
    method = params["sparsity_method"]
    if method == "radius" and locations_um is None:
        method = "best_channels"  # no geometry: the largest channels stand in for a radius
    if method not in ("radius", "best_channels"):
        raise InputError(f"sparsity_method must be 'radius' or 'best_channels', got "
                         f"{method!r}", field="sparsity_method")
    if locations_um is None:
        locations_um = np.zeros((templates.shape[2], 2))
    channels = waveforms.sparsity_from_templates(
        templates, locations_um, nbefore, method=method, radius_um=params["radius_um"],
        num_channels=min(params["num_channels"], templates.shape[2]),
        peak_sign=params["peak_sign"])
    return {"channel_indices": channels}, {"method": method}


register(Step("sparsity", 1, {**WINDOW, **SPARSITY}, _run_sparsity, needs_recording=True,
              depends=lambda ctx, p: {"templates": _pick(p, WINDOW)},
              wrap=lambda ctx, a, at, p: np.asarray(a["channel_indices"]),
              doc="Per unit, the channels within radius_um of its peak channel (or its "
                  "num_channels largest)."))


def _run_waveforms(ctx, params, deps):
    s = ctx.session.sorting
    chosen = deps["random_spikes"][0]["spike_indices"]
    channels = deps["sparsity"][0]["channel_indices"]
    nbefore, nafter = _window(ctx, params)
    gains, offsets = _scaling(ctx)
    data = waveforms.extract_waveforms(
        ctx.reader("waveforms"), ctx._recording().num_samples, s.sample_index[chosen],
        nbefore, nafter, gains, offsets, spike_unit_index=s.unit_index[chosen],
        sparse_channel_indices=channels, n_jobs=ctx.n_jobs)
    return ({"waveforms": data, "spike_indices": chosen,
             "spike_unit_index": s.unit_index[chosen], "channel_indices": channels},
            {"nbefore": nbefore})


def _wrap_waveforms(ctx, arrays, attrs, params):
    session = ctx.session
    return Waveforms(arrays["waveforms"], arrays["spike_indices"], arrays["spike_unit_index"],
                     arrays["channel_indices"], unit_ids=session.sorting.unit_ids,
                     channel_ids=session.recording.channel_ids, nbefore=attrs["nbefore"],
                     sampling_frequency=session.sorting.sampling_frequency)


register(Step("waveforms", 1, {**WINDOW, **SPARSITY}, _run_waveforms, needs_recording=True,
              depends=lambda ctx, p: {"random_spikes": _pick(p, WINDOW), "sparsity": p},
              wrap=_wrap_waveforms,
              doc="Sparse snippets (µV) of the sampled spikes on each unit's channels."))


def _run_median(ctx, params, deps):
    wf = deps["waveforms"][0]
    medians = waveforms.compute_templates(
        np.asarray(wf["waveforms"]), np.asarray(wf["spike_unit_index"]),
        ctx.session.sorting.num_units, operators=("median",), n_jobs=ctx.n_jobs)["median"]
    return {"median": medians, "channel_indices": wf["channel_indices"]}, {}


def _wrap_median(ctx, arrays, attrs, params):
    session = ctx.session
    return Templates(arrays["median"], session.sorting.unit_ids,
                     session.recording.channel_ids,
                     sparse_channel_indices=arrays["channel_indices"],
                     nbefore=_window(ctx, params)[0],
                     sampling_frequency=session.sorting.sampling_frequency,
                     units="uV" if session.recording.gain_known else "raw")


register(Step("median_templates", 1, {**WINDOW, **SPARSITY}, _run_median,
              needs_recording=True, depends=lambda ctx, p: {"waveforms": p},
              wrap=_wrap_median,
              doc="Sparse median of the sampled snippets (µV), robust to outliers."))


def _run_peaks(ctx, params, deps):
    templates, nbefore = _dense_templates(deps)
    sign = params["peak_sign"]
    channel = waveforms.peak_channels(templates, nbefore, sign)
    shift = waveforms.peak_shifts(templates, nbefore, sign)
    value = templates[np.arange(templates.shape[0]), nbefore + shift, channel] \
        if templates.shape[0] else np.zeros(0, np.float32)
    ptp = np.ptp(templates[np.arange(templates.shape[0]), :, channel], axis=1) \
        if templates.shape[0] else np.zeros(0, np.float32)
    return {"channel_index": channel, "shift_samples": shift, "amplitude": value,
            "ptp": ptp}, {}


def _wrap_peaks(ctx, arrays, attrs, params):
    channel_ids = ctx.session.recording.channel_ids
    index = np.asarray(arrays["channel_index"])
    return _frame(ctx, {"peak_channel_id": channel_ids[index], "peak_channel_index": index,
                        "peak_uv": arrays["amplitude"], "peak_to_peak_uv": arrays["ptp"],
                        "peak_shift_samples": arrays["shift_samples"]})


register(Step("unit_peaks", 1, {**WINDOW, "peak_sign": "neg"}, _run_peaks, needs_recording=True,
              depends=lambda ctx, p: {"templates": _pick(p, WINDOW)}, wrap=_wrap_peaks,
              doc="Per unit: peak channel, signed peak value and peak-to-peak (µV) of the "
                  "template on it, and the peak's offset from the spike sample."))


def _run_amplitudes(ctx, params, deps):
    s = ctx.session.sorting
    templates, nbefore = _dense_templates(deps)
    sign = params["peak_sign"]
    gains, offsets = _scaling(ctx)
    values = waveforms.compute_spike_amplitudes(
        ctx.reader("spike_amplitudes"), ctx._recording().num_samples, s.sample_index,
        s.unit_index, waveforms.peak_channels(templates, nbefore, sign),
        waveforms.peak_shifts(templates, nbefore, sign), gains, offsets, n_jobs=ctx.n_jobs)
    return {"amplitudes": values}, {}


register(Step("spike_amplitudes", 1, {**WINDOW, "peak_sign": "neg"}, _run_amplitudes,
              needs_recording=True, depends=lambda ctx, p: {"templates": _pick(p, WINDOW)},
              wrap=lambda ctx, a, at, p: a["amplitudes"],
              doc="Per spike, the trace (µV) at its unit's peak channel and peak sample."))


def _run_locations(ctx, params, deps):
    templates, nbefore = _dense_templates(deps)
    if ctx.session.channel_locations_um is None:
        raise InputError("unit locations need channel locations (a probe geometry)",
                         path=ctx.session.source or None, field="channel_locations")
    xy = locations.compute_unit_locations(
        templates, ctx.session.channel_locations_um, nbefore,
        sparse_channel_indices=deps["sparsity"][0]["channel_indices"],
        method=params["method"])
    return {"locations_um": xy}, {}


def _wrap_locations(ctx, arrays, attrs, params):
    xy = np.asarray(arrays["locations_um"])
    names = ["x_um", "y_um", "z_um"][:xy.shape[1]]
    return _frame(ctx, {n: xy[:, i] for i, n in enumerate(names)})


register(Step("unit_locations", 1, {**WINDOW, **SPARSITY, "method": "center_of_mass"},
              _run_locations, needs_recording=True,
              depends=lambda ctx, p: {"templates": _pick(p, WINDOW),
                                 "sparsity": {k: p[k] for k in {**WINDOW, **SPARSITY}}},
              wrap=_wrap_locations, doc="Unit positions on the probe (µm)."))


def _run_pca(ctx, params, deps):
    wf = deps["waveforms"][0]
    channels = wf["channel_indices"]
    num_channels = ctx._recording().num_channels
    pca = features.fit_pca(np.asarray(wf["waveforms"]), np.asarray(wf["spike_unit_index"]),
                           channels, num_channels, n_components=params["n_components"],
                           whiten=params["whiten"])
    projections = features.project_waveforms(np.asarray(wf["waveforms"]),
                                             np.asarray(wf["spike_unit_index"]), channels, pca)
    spike_indices = np.asarray(wf["spike_indices"])
    if params["all_spikes"]:
        projections, spike_indices = _project_all_spikes(ctx, params, channels, pca)
    s = ctx.session.sorting
    out = {f"pca_{k}": np.asarray(v) for k, v in pca.items()}
    out.update({"projections": projections, "spike_indices": spike_indices,
                "spike_unit_index": s.unit_index[spike_indices], "channel_indices": channels})
    return out, {}


# Spikes projected per block when every spike is wanted: bounds the snippet memory to
# block x samples x sparse channels x 4 bytes (20 000 x 90 x 40 x 4 = 290 MB at most).
PROJECTION_BLOCK = 20_000


def _project_all_spikes(ctx, params, channels, pca):
    s = ctx.session.sorting
    nbefore, nafter = _window(ctx, params)
    gains, offsets = _scaling(ctx)
    num_samples = ctx._recording().num_samples
    out = np.zeros((s.num_spikes, params["n_components"], channels.shape[1]), np.float32)
    read_raw = ctx.reader("principal_components")
    for start in range(0, s.num_spikes, PROJECTION_BLOCK):
        block = slice(start, min(start + PROJECTION_BLOCK, s.num_spikes))
        snippets = waveforms.extract_waveforms(
            read_raw, num_samples, s.sample_index[block], nbefore, nafter, gains, offsets,
            spike_unit_index=s.unit_index[block], sparse_channel_indices=channels,
            n_jobs=ctx.n_jobs)
        out[block] = features.project_waveforms(snippets, s.unit_index[block], channels, pca)
    return out, np.arange(s.num_spikes, dtype=np.int64)


register(Step("principal_components", 1,
              {**WINDOW, **SPARSITY, "n_components": 5, "whiten": True, "all_spikes": False},
              _run_pca,
              needs_recording=True,
              depends=lambda ctx, p: {"waveforms": {k: p[k] for k in {**WINDOW, **SPARSITY}}},
              doc="Per-channel PCA fitted on the sampled snippets; projections of those "
                  "snippets, or of every spike with all_spikes=True (read block by block)."))


# -- spike-train results (no recording needed) ----------------------------------------------
def _run_ccg(ctx, params, deps):
    s = ctx.session.sorting
    counts, edges = ccg.compute_correlograms(
        s.sample_index, s.unit_index, s.num_units, s.sampling_frequency, params["window_ms"],
        params["bin_ms"], n_jobs=ctx.n_jobs)
    return {"counts": counts, "bin_edges_ms": edges}, {}


register(Step("correlograms", 1, {"window_ms": 50.0, "bin_ms": 1.0}, _run_ccg,
              wrap=lambda ctx, a, at, p: (a["counts"], a["bin_edges_ms"]),
              doc="All-pairs auto/cross-correlograms, counts (units, units, bins)."))


def _run_isi(ctx, params, deps):
    s = ctx.session.sorting
    counts, edges = ccg.compute_isi_histograms(
        s.sample_index, s.unit_index, s.num_units, s.sampling_frequency, params["window_ms"],
        params["bin_ms"])
    return {"counts": counts, "bin_edges_ms": edges}, {}


register(Step("isi_histograms", 1, {"window_ms": 50.0, "bin_ms": 1.0}, _run_isi,
              wrap=lambda ctx, a, at, p: (a["counts"], a["bin_edges_ms"]),
              doc="Inter-spike-interval histograms, counts (units, bins)."))


def _run_rates(ctx, params, deps):
    s = ctx.session.sorting
    rates_hz, counts, edges = rates.compute_firing_rates(
        s.sample_index, s.unit_index, s.num_units, s.sampling_frequency, _num_samples(ctx),
        params["bin_s"])
    return {"rates_hz": rates_hz, "counts": counts, "bin_edges_s": edges}, {}


register(Step("firing_rates", 1, {"bin_s": 1.0}, _run_rates,
              wrap=lambda ctx, a, at, p: (a["rates_hz"], a["bin_edges_s"]),
              doc="Firing rate over time (Hz) per unit in bins of bin_s seconds."))


from . import steps_features  # noqa: E402, F401 (registers feature_projections)
