"""Derived numbers: the public functions of ``sv.compute`` and the kernels behind them.

The submodules are pure functions on numpy arrays (numba kernels behind ``compute_*``
wrappers) and import nothing from the rest of spikeviz except its errors. The functions
below are the public API of DESIGN.md: they take a Sorting or a Session (by duck typing; this
layer does not import the model). Given a Session, results come from its cache
(``session.compute``) and are computed only once.
"""

from __future__ import annotations


def _is_session(obj) -> bool:
    return hasattr(obj, "sorting") and hasattr(obj, "compute")


#: A subset of units is gathered by their per-unit spike positions (O(selected spikes)) when
#: it holds at most this fraction of the spikes; else the whole vector is masked.
GATHER_FRACTION = 0.25


def _train_inputs(sorting_or_session, unit_ids):
    """``((sample_index, unit_index, num_units, fs), unit_indices)`` for the compute kernels.

    A small subset of units is gathered from ``sorting.spike_indices`` (the per-unit order the
    Sorting keeps) instead of masking every spike; the kernels then see exactly the spikes and
    unit numbering the mask would give them (``unit_indices`` is then None).
    """
    from .ccg import gather_units
    sorting = sorting_or_session.sorting if _is_session(sorting_or_session) \
        else sorting_or_session
    indices = None if unit_ids is None else \
        [sorting.unit_index_of(u) for u in unit_ids]
    if indices is not None and len(set(indices)) == len(indices) and \
            hasattr(sorting, "spike_indices") and hasattr(sorting, "spike_counts"):
        counts = sorting.spike_counts().to_numpy()
        if counts[indices].sum() <= GATHER_FRACTION * sorting.num_spikes:
            t, u, k = gather_units(sorting.sample_index,
                                   [sorting.spike_indices(i) for i in unit_ids])
            return (t, u, k, sorting.sampling_frequency), None
    return (sorting.sample_index, sorting.unit_index, sorting.num_units,
            sorting.sampling_frequency), indices


def correlograms(sorting, window_ms: float = 50.0, bin_ms: float = 1.0, unit_ids=None):
    """Auto- and cross-correlograms: ``(counts, bin_edges_ms)``.

    ``counts`` int64 (units, units, bins): ``counts[i, j, b]`` is the number of pairs (spike
    of unit i at ``t_i``, spike of unit j at ``t_j``) whose lag ``t_i - t_j`` falls in bin b
    (half-open bins ``[e_b, e_b+1)`` in ms). This is SpikeInterface's convention, counts
    identical to its ``compute_correlograms``; so ``counts[i, j]`` is ``counts[j, i]``
    reversed. ``unit_ids`` selects and orders the units (default all).
    ``sorting`` may be a Session, whose cache then holds the all-units result.
    """
    from .ccg import compute_correlograms
    if _is_session(sorting) and unit_ids is None:
        return sorting.compute("correlograms", window_ms=window_ms, bin_ms=bin_ms)
    args, indices = _train_inputs(sorting, unit_ids)
    return compute_correlograms(*args, window_ms=window_ms, bin_ms=bin_ms,
                                unit_indices=indices)


def isi_histograms(sorting, window_ms: float = 50.0, bin_ms: float = 1.0, unit_ids=None):
    """Inter-spike-interval histograms: ``(counts int64 (units, bins), bin_edges_ms)``."""
    from .ccg import compute_isi_histograms
    if _is_session(sorting) and unit_ids is None:
        return sorting.compute("isi_histograms", window_ms=window_ms, bin_ms=bin_ms)
    args, indices = _train_inputs(sorting, unit_ids)
    return compute_isi_histograms(*args, window_ms=window_ms, bin_ms=bin_ms,
                                  unit_indices=indices)


def firing_rates(sorting, bin_s: float = 1.0, unit_ids=None):
    """Firing rate over time: ``(rates_hz float64 (units, bins), bin_edges_s)``."""
    from .rates import compute_firing_rates
    if _is_session(sorting) and unit_ids is None:
        return sorting.compute("firing_rates", bin_s=bin_s)
    (sample_index, unit_index, num_units, fs), indices = _train_inputs(sorting, unit_ids)
    s = sorting.sorting if _is_session(sorting) else sorting
    num_samples = s.num_samples if s.num_samples is not None else \
        (int(s.sample_index[-1]) + 1 if s.num_spikes else 0)
    rates_hz, _, edges = compute_firing_rates(sample_index, unit_index, num_units, fs,
                                              num_samples, bin_s, unit_indices=indices)
    return rates_hz, edges


def templates(session, ms_before: float = 1.0, ms_after: float = 2.0,
              max_spikes_per_unit: int = 500, seed: int = 0):
    """Dense templates (mean and std, float32) from up to ``max_spikes_per_unit`` random
    spikes per unit (seeded): a ``sv.Templates`` with ``.data (units, samples, channels)``,
    ``.std``, ``.unit_ids``, ``.channel_ids``, ``.nbefore`` and ``.units`` ('uV', or 'raw'
    when the recording's gain is unknown). Needs the recording; unfiltered traces are
    band-passed first (``session.filter_band_hz``)."""
    return session.compute("templates", ms_before=ms_before, ms_after=ms_after,
                           max_spikes_per_unit=max_spikes_per_unit, seed=seed)


def quality_metrics(session, metric_names=None, **params):
    """SpikeInterface's quality metrics as a DataFrame indexed by unit_id.

    ``metric_names`` default: every metric the session has inputs for (train metrics always;
    SNR, amplitude and PC metrics with a recording). ``params`` are the per-metric options of
    :func:`spikeviz.compute.metrics.compute_quality_metrics`.
    """
    return session.compute("quality_metrics", metric_names=metric_names, **params)


def spike_amplitudes(session, **params):
    """float32 µV per spike: the trace at the unit's peak channel and peak sample."""
    return session.compute("spike_amplitudes", **params)


def unit_locations(session, method: str = "center_of_mass", **params):
    """DataFrame indexed by unit_id: x_um, y_um (and z_um for monopolar_triangulation)."""
    return session.compute("unit_locations", method=method, **params)


def noise_levels(session, **params):
    """Series of noise (µV) per channel id."""
    return session.compute("noise_levels", **params)


def template_similarity(session, method: str = "cosine", max_lag_ms: float = 0.0, **params):
    """DataFrame unit_id x unit_id of template similarity."""
    return session.compute("template_similarity", method=method, max_lag_ms=max_lag_ms,
                           **params)


def merge_suggestions(session, **params):
    """DataFrame of candidate merges (unit_id_a, unit_id_b, evidence, score), best first."""
    return session.compute("merge_suggestions", **params)


__all__ = ["correlograms", "firing_rates", "isi_histograms", "merge_suggestions",
           "noise_levels", "quality_metrics", "spike_amplitudes", "template_similarity",
           "templates", "unit_locations"]


def warm_up_kernels() -> None:
    """Call every numba kernel once on tiny inputs (loads them from the on-disk cache, or
    compiles them on the very first run) so that no user click pays for it."""
    import numpy as np

    from .ccg import compute_correlograms, compute_isi_histograms
    from .rates import compute_firing_rates
    from .waveforms import accumulate_templates, compute_spike_amplitudes, extract_waveforms

    sample_index = np.array([10, 40, 45, 90], dtype=np.int64)
    unit_index = np.array([0, 1, 0, 1], dtype=np.int32)
    compute_correlograms(sample_index, unit_index, 2, 1000.0, 20.0, 1.0)
    compute_isi_histograms(sample_index, unit_index, 2, 1000.0, 20.0, 1.0)
    compute_firing_rates(sample_index, unit_index, 2, 1000.0, 100, 0.05)
    traces = np.zeros((100, 2), dtype=np.int16)
    gains, offsets = np.ones(2, np.float32), np.zeros(2, np.float32)

    def read_raw(start, end):
        return traces[start:end]

    extract_waveforms(read_raw, 100, sample_index, 2, 3, gains, offsets)
    accumulate_templates(read_raw, 100, sample_index, unit_index, 2, 2, 3, gains, offsets)
    compute_spike_amplitudes(read_raw, 100, sample_index, unit_index, np.zeros(2, np.int64),
                             np.zeros(2, np.int64), gains, offsets)
    from .comparison import match_counts, matched_spikes

    match_counts(sample_index, unit_index, 2, sample_index, unit_index, 2, 3, symmetric=True)
    matched_spikes(sample_index, sample_index, 3)
    from .trace_chunks import warm_up as warm_up_traces

    warm_up_traces()
