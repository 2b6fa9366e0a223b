"""Derived results that judge units: quality metrics, template similarity, merge suggestions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..compute import ccg, merges, metrics, similarity, waveforms
from .analysis import Step, register
from .steps import SPARSITY, WINDOW, _frame, _num_samples, _pick, ms_to_samples

# Metrics computed from the spike trains alone.
TRAIN_METRICS = ("num_spikes", "firing_rate", "presence_ratio", "isi_violations_ratio",
                 "isi_violations_count", "firing_range")
TRACE_METRICS = ("snr", "amplitude_cutoff", "amplitude_median")
PC_METRICS = ("isolation_distance", "l_ratio", "d_prime")


def _has_traces(ctx) -> bool:
    return ctx.session.recording is not None and ctx.session.sorting.num_spikes > 0


def _phy_amplitudes(ctx):
    """KiloSort's per-spike template scalings (arbitrary units), when the source had them."""
    return ctx.session.sorting.spike_properties.get("amplitudes")


def _wanted(ctx, params) -> list[str]:
    if params["metric_names"] is not None:
        names = list(params["metric_names"])
        unknown = set(names) - set(metrics.METRIC_NAMES)
        if unknown:
            from ..errors import InputError
            raise InputError(f"unknown metric(s) {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(metrics.METRIC_NAMES)}", field="metric_names")
        return names
    names = list(TRAIN_METRICS)
    if _has_traces(ctx):
        names += list(TRACE_METRICS) + list(PC_METRICS)
    elif _phy_amplitudes(ctx) is not None:
        names.append("amplitude_cutoff")  # a fraction: the amplitudes' scale does not matter
    return names


def _qm_depends(ctx, params):
    wanted = set(_wanted(ctx, params))
    if not _has_traces(ctx):
        return {}
    deps = {}
    window = _pick(params, WINDOW)
    if wanted & {"snr", "amplitude_cutoff", "amplitude_median"}:
        deps["spike_amplitudes"] = {**window, "peak_sign": params["peak_sign"]}
    if "snr" in wanted:
        deps["templates"] = window
        deps["noise_levels"] = {}
    if wanted & set(PC_METRICS):
        deps["principal_components"] = {k: params[k] for k in {**WINDOW, **SPARSITY}}
    return deps


def _qm_extra_key(ctx, params):
    amplitudes = _phy_amplitudes(ctx)
    if _has_traces(ctx) or amplitudes is None:
        return None
    return ctx.session.sorting.property_hash("amplitudes")


def _run_qm(ctx, params, deps):
    s = ctx.session.sorting
    wanted = _wanted(ctx, params)
    if s.num_units == 0 or _num_samples(ctx) == 0:  # nothing to judge: NaN (0 spikes)
        return ({name: (np.zeros(s.num_units, np.int64) if name == "num_spikes"
                        else np.full(s.num_units, np.nan)) for name in wanted},
                {"columns": wanted})
    options = {k: v for k, v in params.items()
               if k not in {"metric_names", *WINDOW, *SPARSITY}}
    inputs = {}
    if "spike_amplitudes" in deps:
        inputs["amplitudes"] = np.asarray(deps["spike_amplitudes"][0]["amplitudes"])
    elif "amplitude_cutoff" in wanted and _phy_amplitudes(ctx) is not None:
        inputs["amplitudes"] = np.asarray(_phy_amplitudes(ctx), dtype=np.float64)
    if "templates" in deps:
        arrays, attrs = deps["templates"]
        average = np.asarray(arrays["average"])
        sign = params["peak_sign"]
        inputs["peak_amplitudes"] = waveforms.peak_amplitudes(average, attrs["nbefore"], sign)
        inputs["peak_channels"] = waveforms.peak_channels(average, attrs["nbefore"], sign)
        inputs["noise_levels"] = np.asarray(deps["noise_levels"][0]["noise_levels"])
    if "principal_components" in deps:
        pcs = deps["principal_components"][0]
        inputs["pc_projections"] = np.asarray(pcs["projections"])
        inputs["pc_spike_indices"] = np.asarray(pcs["spike_indices"])
        inputs["pc_unit_channels"] = np.asarray(pcs["channel_indices"])
    options.pop("peak_sign", None)
    values = metrics.compute_quality_metrics(
        s.sample_index, s.unit_index, s.num_units, s.sampling_frequency, _num_samples(ctx),
        metric_names=wanted, **inputs, **options)
    return {name: np.asarray(values[name]) for name in wanted
            if name in values}, {"columns": [n for n in wanted if n in values]}


register(Step("quality_metrics", 1, {"metric_names": None, "peak_sign": "neg", **WINDOW,
                                     **SPARSITY},
              _run_qm, depends=_qm_depends, extra_key=_qm_extra_key, open_params=True,
              wrap=lambda ctx, a, at, p: _frame(ctx, {c: a[c] for c in at["columns"]}),
              doc="""SpikeInterface's quality metrics, one row per unit; extra keyword
              parameters (isi_threshold_ms, bin_duration_s, ...) go to
              spikeviz.compute.metrics.compute_quality_metrics."""))


def _run_similarity(ctx, params, deps):
    arrays, _attrs = deps["templates"]
    fs = ctx.session.sorting.sampling_frequency
    matrix = similarity.compute_template_similarity(
        np.asarray(arrays["average"]), deps["sparsity"][0]["channel_indices"],
        method=params["method"], max_lag_samples=ms_to_samples(params["max_lag_ms"], fs),
        support=params["support"])
    return {"similarity": matrix}, {}


def _wrap_matrix(ctx, arrays, attrs, params):
    ids = pd.Index(ctx.session.sorting.unit_ids, name="unit_id")
    return pd.DataFrame(np.asarray(arrays["similarity"]), index=ids, columns=ids.copy())


register(Step("template_similarity", 1,
              {**WINDOW, **SPARSITY, "method": "cosine", "max_lag_ms": 0.0,
               "support": "union"}, _run_similarity, needs_recording=True,
              depends=lambda ctx, p: {"templates": _pick(p, WINDOW),
                                      "sparsity": {k: p[k] for k in {**WINDOW, **SPARSITY}}},
              wrap=_wrap_matrix, doc="Unit x unit template similarity (1 = identical)."))


def _run_merges(ctx, params, deps):
    s = ctx.session.sorting
    matrix = np.asarray(deps["template_similarity"][0]["similarity"])
    # Correlograms only of units that take part in a candidate pair: all-pairs CCGs of 1000
    # units would cost 800 MB.
    upper = np.triu(matrix, 1) >= params["min_similarity"]
    involved = np.flatnonzero(upper.any(axis=0) | upper.any(axis=1))
    counts, edges = ccg.compute_correlograms(
        s.sample_index, s.unit_index, s.num_units, s.sampling_frequency, params["window_ms"],
        params["bin_ms"], unit_indices=involved, n_jobs=ctx.n_jobs)
    spike_counts = np.bincount(s.unit_index, minlength=s.num_units)[involved]
    found = merges.suggest_merges(
        matrix[np.ix_(involved, involved)], counts, edges, spike_counts,
        min_similarity=params["min_similarity"], refractory_ms=params["refractory_ms"],
        censored_ms=params["censored_ms"])
    for side in ("a", "b"):
        found[f"unit_index_{side}"] = involved[np.asarray(found[f"unit_index_{side}"],
                                                          dtype=np.int64)]
    return {k: np.asarray(v) for k, v in found.items()}, {"columns": list(found)}


def _wrap_merges(ctx, arrays, attrs, params):
    ids = ctx.session.sorting.unit_ids
    frame = pd.DataFrame({c: np.asarray(arrays[c]) for c in attrs["columns"]})
    frame.insert(0, "unit_id_b", ids[frame.pop("unit_index_b").to_numpy()])
    frame.insert(0, "unit_id_a", ids[frame.pop("unit_index_a").to_numpy()])
    return frame


register(Step("merge_suggestions", 1,
              {**WINDOW, **SPARSITY, "min_similarity": 0.5, "window_ms": 50.0, "bin_ms": 1.0,
               "refractory_ms": 1.0, "censored_ms": 0.0}, _run_merges, needs_recording=True,
              depends=lambda ctx, p: {"template_similarity": {
                  k: p[k] for k in {**WINDOW, **SPARSITY}}},
              wrap=_wrap_merges,
              doc="Pairs of units that may be one neuron, best first: similar templates and "
                  "a cross-correlogram that respects a shared refractory period."))
