"""Per-unit facts (peak channel, depth, amplitude) and "similar units" for CuratedAnalysis.

Split from :mod:`spikeviz.model.curated` to keep modules short; the functions take the
CuratedAnalysis and one snapshot ``(sorting, kept)`` of its curation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..compute import ccg, merges
from .depth import TEMPLATE_INDEX_PROPERTY, unit_depths_um
from .waveforms import Templates

#: Correlogram window and bin (ms) and refractory period (ms) of the CCG evidence.
CCG_WINDOW_MS, CCG_BIN_MS, REFRACTORY_MS = 50.0, 1.0, 1.0
SIMILAR_COLUMNS = ["similarity", "ccg_refractory_ratio", "ccg_shape_distance", "score"]


def _channel_xy(session) -> dict:
    if session.channel_ids is None or session.channel_locations_um is None:
        return {}
    locations = np.asarray(session.channel_locations_um, dtype=np.float64)
    return {c: (float(x), float(y)) for c, (x, y) in
            zip(np.asarray(session.channel_ids).tolist(), locations[:, :2], strict=True)}


def _kilosort(session):
    tpl = session.results.get("kilosort_templates")
    prop = session.sorting.spike_properties.get(TEMPLATE_INDEX_PROPERTY)
    if not isinstance(tpl, Templates) or prop is None:
        return None
    prop = np.asarray(prop)
    if prop.dtype.kind not in "iu" or (prop.size and (prop.min() < 0
                                                      or prop.max() >= tpl.data.shape[0])):
        return None
    peaks = tpl.peak_channel_indices()
    channel_ids = np.asarray(tpl.channel_ids).tolist()
    return prop, [channel_ids[p] if p >= 0 else None for p in peaks.tolist()]


def _dominant_peak(ks, original_positions) -> object:
    """Peak channel id of the KiloSort template most of these spikes carry (ties: lowest)."""
    prop, peak_ids = ks
    if original_positions.size == 0:
        return None
    counts = np.bincount(prop[original_positions], minlength=len(peak_ids))
    return peak_ids[int(counts.argmax())]


def unit_facts(analysis, sorting, kept) -> pd.DataFrame:
    """amplitude_uv, peak_channel_id, depth_um, x_um, y_um of every unit of ``sorting``."""
    session = analysis.session
    ids = sorting.unit_ids.tolist()
    n = len(ids)
    orig = np.array([-1 if analysis._orig_index(u) is None else analysis._orig_index(u)
                     for u in ids], dtype=np.int64)
    is_orig = orig >= 0
    amplitude = np.full(n, np.nan)
    x, y = np.full(n, np.nan), np.full(n, np.nan)
    peak = np.full(n, None, dtype=object)
    if analysis._has_traces():
        channel_ids = session.recording.channel_ids
        peaks = analysis._orig("unit_peaks")
        amplitude[is_orig] = peaks["peak_to_peak_uv"].to_numpy()[orig[is_orig]]
        peak[is_orig] = peaks["peak_channel_id"].to_numpy()[orig[is_orig]]
        if session.channel_locations_um is not None:
            locations = analysis._orig("unit_locations")
            x[is_orig] = locations["x_um"].to_numpy()[orig[is_orig]]
            y[is_orig] = locations["y_um"].to_numpy()[orig[is_orig]]
        for row in np.flatnonzero(~is_orig):
            t = analysis._new(ids[row], sorting, kept, "template")
            amplitude[row] = t["ptp_uv"]
            peak[row] = channel_ids[t["peak_channel"]]
            x[row], y[row] = t["location_um"]
        depth = y.copy()
    else:
        xy = _channel_xy(session)
        table = session.sorting.unit_table
        ks = _kilosort(session)
        if "peak_channel_id" in table:
            peak[is_orig] = table["peak_channel_id"].to_numpy()[orig[is_orig]]
        elif ks is not None:
            memo = analysis._memo.get("ks_original")
            if memo is None:
                s = session.sorting
                memo = [_dominant_peak(ks, np.asarray(s.spike_indices(u), dtype=np.int64))
                        for u in s.unit_ids.tolist()]
                analysis._memo["ks_original"] = memo
            peak[is_orig] = [memo[i] for i in orig[is_orig]]
        for row in np.flatnonzero(~is_orig):
            if ks is not None:
                entry = analysis._entry(ids[row], sorting, kept, "original_positions")
                peak[row] = _dominant_peak(ks, entry["original_positions"])
        for row in range(n):
            where = xy.get(_plain(peak[row]))
            if where is not None:
                x[row], y[row] = where
        depth = y.copy()
        known = unit_depths_um(session).depths_um[orig[is_orig]]  # the unit table's first
        depth[is_orig] = np.where(np.isnan(known), y[is_orig], known)
    peak = np.array([np.nan if v is None else v for v in peak], dtype=object)
    return pd.DataFrame({"amplitude_uv": amplitude, "peak_channel_id": peak, "depth_um": depth,
                         "x_um": x, "y_um": y}, index=pd.Index(sorting.unit_ids, name="unit_id"))


def _plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# -- similar units -------------------------------------------------------------------------------
def _masked_original(analysis):
    """Original templates with values outside each unit's sparse channels set to 0,
    flattened (units, samples * channels), and their squared norms."""
    memo = analysis._memo.get("masked_templates")
    if memo is None:
        data = np.asarray(analysis._orig("templates").data, dtype=np.float32)
        sparsity = np.asarray(analysis._orig("sparsity"))
        mask = np.zeros((data.shape[0], data.shape[2]), np.float32)
        rows = np.repeat(np.arange(data.shape[0]), sparsity.shape[1])
        valid = sparsity.ravel() >= 0
        mask[rows[valid], sparsity.ravel()[valid]] = 1.0
        flat = (data * mask[:, None, :]).reshape(data.shape[0], -1)
        memo = (flat, np.einsum("ij,ij->i", flat, flat, dtype=np.float64))
        analysis._memo["masked_templates"] = memo
    return memo


def _masked_new(analysis, unit_id, sorting, kept):
    t = analysis._new(unit_id, sorting, kept, "template")
    mask = np.zeros(t["mean"].shape[1], np.float32)
    mask[t["sparsity"]] = 1.0
    flat = (t["mean"] * mask).ravel()
    return flat, float(np.dot(flat.astype(np.float64), flat))


def template_similarity(analysis, sorting, kept, unit_id) -> np.ndarray:
    """Cosine similarity (float64, one per unit of ``sorting``) of ``unit_id``'s template with
    every unit's, each restricted to its own sparse channels (the ``template_similarity``
    step's definition: method cosine, support union, no lag)."""
    ids = sorting.unit_ids.tolist()
    flat_o, energy_o = _masked_original(analysis)
    i = analysis._orig_index(unit_id)
    a, ea = (flat_o[i], energy_o[i]) if i is not None else \
        _masked_new(analysis, unit_id, sorting, kept)
    dots_o = flat_o @ a
    num, den = np.zeros(len(ids)), np.zeros(len(ids))
    for row, u in enumerate(ids):
        j = analysis._orig_index(u)
        if j is not None:
            num[row], eb = dots_o[j], energy_o[j]
        else:
            b, eb = _masked_new(analysis, u, sorting, kept)
            num[row] = float(np.dot(a.astype(np.float64), b))
        den[row] = np.sqrt(ea) * np.sqrt(eb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, 0.0)


def similar_units(analysis, sorting, kept, unit_id, top: int) -> pd.DataFrame:
    """Units most like ``unit_id``, best first: DataFrame indexed by unit_id with
    ``similarity`` (template cosine, NaN without templates), ``ccg_refractory_ratio`` and
    ``ccg_shape_distance`` (the pair's cross-correlogram evidence, see
    :func:`spikeviz.compute.merges.suggest_merges`) and ``score`` (its merge score).

    With templates, the ``max(2 * top, 20)`` most similar units get the CCG evidence. Without
    a recording, the candidates are the units nearest in depth and the score uses the CCG
    evidence alone (similarity taken as 1); without depths either, the frame is empty.
    """
    ids = sorting.unit_ids.tolist()
    me = sorting.unit_index_of(unit_id)
    empty = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in SIMILAR_COLUMNS},
                         index=pd.Index(sorting.unit_ids[:0], name="unit_id"))
    if len(ids) < 2 or top <= 0:
        return empty
    count = max(2 * top, 20)
    others = np.array([k for k in range(len(ids)) if k != me], dtype=np.int64)
    if analysis._has_traces():
        sims = template_similarity(analysis, sorting, kept, unit_id)
        candidates = others[np.argsort(-sims[others], kind="stable")[:count]]
        sim_of = sims
    else:
        depth = unit_facts(analysis, sorting, kept)["depth_um"].to_numpy()
        if np.isnan(depth[me]):
            return empty
        distance = np.abs(depth[others] - depth[me])
        known = ~np.isnan(distance)
        candidates = others[known][np.argsort(distance[known], kind="stable")[:count]]
        sim_of = None
    if candidates.size == 0:
        return empty
    rows = np.concatenate([[me], candidates])
    counts, edges = ccg.compute_correlograms(
        sorting.sample_index, sorting.unit_index, sorting.num_units,
        sorting.sampling_frequency, CCG_WINDOW_MS, CCG_BIN_MS, unit_indices=rows)
    local = np.full((rows.size, rows.size), -np.inf)
    local[0, 1:] = local[1:, 0] = 1.0 if sim_of is None else sim_of[candidates]
    spike_counts = sorting.spike_counts().to_numpy()[rows]
    found = merges.suggest_merges(local, counts, edges, spike_counts, min_similarity=-2.0,
                                  refractory_ms=REFRACTORY_MS)
    other = np.where(found["unit_index_a"] == 0, found["unit_index_b"], found["unit_index_a"])
    unit_rows = rows[other]
    frame = pd.DataFrame({
        "similarity": np.nan if sim_of is None else sim_of[unit_rows],
        "ccg_refractory_ratio": found["ccg_refractory_ratio"],
        "ccg_shape_distance": found["ccg_shape_distance"],
        "score": found["score"],
    }, index=pd.Index(sorting.unit_ids[unit_rows], name="unit_id"))
    return frame.iloc[:top]
