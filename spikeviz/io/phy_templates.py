"""Templates, amplitudes, whitening and similar templates of an exported Phy folder, in this
order of preference:

1. *KiloSort's own*, when the session was read from a Phy/KiloSort folder whose templates
   are still in ``session.results["kilosort_templates"]``, every spike still carries its
   ``template_index`` and the channels are unchanged: ``templates.npy`` (whitened, sparse
   with ``template_ind.npy`` when they were), ``spike_templates.npy``, ``amplitudes.npy``
   and the whitening matrices of the source folder are carried over (a missing one is the
   inverse of the other, identity when both are missing, as phy assumes), as are
   ``similar_templates.npy`` and ``pc_features.npy``/``pc_feature_ind.npy`` when the
   spikes are exactly the source folder's. Curated clusters (merges, splits) are fine:
   phy's own model is templates fixed, clusters changed.
2. *Computed*, when the session has a recording and ``templates`` are available
   (:func:`spikeviz.io._results.templates`; ``compute=True`` computes them): mean
   waveforms in µV (stored units when the recording's gain is unknown), one template per
   cluster, ``spike_templates`` = the cluster's row. Probes with more than
   ``MAX_TEMPLATE_CHANNELS`` channels get sparse templates on each unit's largest channels
   (peak-to-peak), largest first as phy expects, with ``template_ind.npy``; smaller probes
   dense. Whitening matrices are the identity (the templates are not whitened).
   ``amplitudes.npy`` is the template scaling KiloSort writes: each spike's
   ``spike_amplitudes`` (µV at the unit's peak channel and peak sample) divided by its
   template's value there (the template's minimum, peak sign "neg"), so ``template x
   amplitude`` ≈ the spike; ones when spike amplitudes are not available.
3. Otherwise *zeros* of the default window (1 ms before, 2 ms after the spike; dense, so
   phylib accepts them) with a warning saying how to get real ones; amplitudes are the
   sorting's ``amplitudes`` spike property when it has one, else ones.

``similar_templates.npy``: the session's ``template_similarity`` when available (computed
templates), else the cosine similarity of the written templates (zeros for zero templates).

A plan is a dict: ``mode`` ("kilosort", "computed", "zeros"), ``templates``,
``template_ind``, ``spike_templates``, ``amplitudes``, ``whitening_mat(_inv)``,
``similar_templates``, ``template_unit`` (unit position of each template row: -1 unused,
-2 shared by several units) and, for KiloSort's, ``source`` (the source folder or None).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..model import Session
from . import _results

MAX_TEMPLATE_CHANNELS = 32
WINDOW_MS = (1.0, 2.0)


def source_folder(session: Session) -> Path | None:
    """The Phy/KiloSort folder the session was read from, when it still exists."""
    if session.format != "phy" or not session.source:
        return None
    folder = Path(session.source)
    return folder if folder.is_dir() else None


def load_source(folder: Path | None, name: str, shape: tuple | None = None):
    """``folder/name`` memory-mapped, or None (with a warning when unreadable or misshapen)."""
    if folder is None or not (folder / name).is_file():
        return None
    try:
        array = np.load(folder / name, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        warnings.warn(f"{folder / name}: unreadable ({err}); not carried over", stacklevel=2)
        return None
    if shape is not None and array.shape != shape:
        warnings.warn(f"{folder / name}: shape {array.shape}, expected {shape}; not carried "
                      f"over", stacklevel=2)
        return None
    return array


def _whitening(folder: Path | None, num_channels: int):
    shape = (num_channels, num_channels)
    wm = load_source(folder, "whitening_mat.npy", shape)
    wmi = load_source(folder, "whitening_mat_inv.npy", shape)
    try:
        if wm is None and wmi is not None:
            wm = np.linalg.inv(wmi)
        if wmi is None and wm is not None:
            wmi = np.linalg.inv(wm)
    except np.linalg.LinAlgError:
        warnings.warn(f"{folder}: the whitening matrix is singular; writing identity matrices",
                      stacklevel=2)
        wm = wmi = None
    if wm is None:
        wm = wmi = np.eye(num_channels)
    return np.asarray(wm), np.asarray(wmi)


def _template_units(spike_templates, unit_index, num_templates: int) -> np.ndarray:
    """Unit position of each template row; -1 unused, -2 shared by several units."""
    low = np.full(num_templates, np.iinfo(np.int32).max, dtype=np.int32)
    high = np.full(num_templates, -1, dtype=np.int32)
    np.minimum.at(low, spike_templates, unit_index)
    np.maximum.at(high, spike_templates, unit_index)
    return np.where(high < 0, -1, np.where(low == high, high, -2))


def _spike_property_amplitudes(session: Session, num_spikes: int) -> np.ndarray:
    amplitudes = session.sorting.spike_properties.get("amplitudes")
    if amplitudes is None or not np.isfinite(amplitudes).all():
        return np.ones(num_spikes)
    return amplitudes


def _kilosort_plan(session: Session, channels: dict) -> dict | None:
    kt = session.results.get("kilosort_templates")
    props = session.sorting.spike_properties
    if kt is None or "template_index" not in props or not channels.get("all", False):
        return None
    if not np.array_equal(np.asarray(kt.channel_ids), channels["ids"]):
        return None
    spike_templates = np.asarray(props["template_index"])
    if spike_templates.size and spike_templates.max() >= kt.data.shape[0]:
        return None
    source = source_folder(session)
    num_t = kt.data.shape[0]
    wm, wmi = _whitening(source, channels["ids"].size)
    return {"mode": "kilosort", "templates": np.asarray(kt.data, dtype=np.float32),
            "template_ind": kt.sparse_channel_indices, "spike_templates": spike_templates,
            "amplitudes": _spike_property_amplitudes(session, spike_templates.size),
            "whitening_mat": wm, "whitening_mat_inv": wmi,
            "similar_templates": load_source(source, "similar_templates.npy", (num_t, num_t)),
            "template_unit": _template_units(spike_templates, session.sorting.unit_index, num_t),
            "source": source}


def _source_templates(session: Session):
    """Templates the source file carried in µV (an NWB file's waveform_mean), as a dense
    (units, samples, channels) holder in the sorting's unit order, or None."""
    held = session.results.get("nwb_templates")
    if held is None or getattr(held, "units", "") != "uV" or session.channel_ids is None:
        return None
    if not np.array_equal(np.asarray(held.unit_ids), session.sorting.unit_ids) or \
            not np.array_equal(np.asarray(held.channel_ids), np.asarray(session.channel_ids)):
        return None
    data = np.stack([held.dense(i) for i in range(len(held.unit_ids))]) if \
        len(held.unit_ids) else np.zeros((0, held.num_samples, len(held.channel_ids)))
    return SimpleNamespace(data=data.astype(np.float32))


def _computed_plan(session: Session, keep: np.ndarray, channels: dict, compute: bool) -> dict:
    templates = _results.templates(session, compute)
    if templates is None:  # none computed: those the source file held, if any
        templates = _source_templates(session)
    row = np.full(session.sorting.num_units, -1, dtype=np.int32)
    row[keep] = np.arange(keep.size)
    spike_templates = row[session.sorting.unit_index]
    eye = np.eye(channels["ids"].size)
    plan = {"spike_templates": spike_templates, "template_unit": keep,
            "whitening_mat": eye, "whitening_mat_inv": eye, "similar_templates": None}
    if templates is None:
        fs = session.sorting.sampling_frequency
        samples = sum(round(ms * fs / 1000.0) for ms in WINDOW_MS)
        warnings.warn("no templates: writing zero templates (phylib needs templates.npy); "
                      + ("pass compute=True to compute them from the recording"
                         if session.recording is not None else "the session has no recording"),
                      stacklevel=3)
        return {**plan, "mode": "zeros", "template_ind": None,
                "amplitudes": _spike_property_amplitudes(session, spike_templates.size),
                "templates": np.zeros((keep.size, samples, channels["ids"].size), np.float32)}
    full = np.asarray(templates.data, dtype=np.float32)[keep]
    columns = channels["columns"]  # the templates' channel axis: the recording's, or
    if columns is None:            # without one, the session's channel ids
        lookup = {key: i for i, key in enumerate(np.asarray(session.channel_ids).tolist())}
        columns = np.array([lookup[c] for c in channels["ids"].tolist()], dtype=np.int64)
    dense = full[:, :, columns]
    template_ind = None
    data = dense
    if dense.shape[2] > MAX_TEMPLATE_CHANNELS:
        order = np.argsort(-np.ptp(dense, axis=1), axis=1, kind="stable")
        template_ind = order[:, :MAX_TEMPLATE_CHANNELS]
        data = np.take_along_axis(dense, template_ind[:, None, :], axis=2)
    amplitudes = np.ones(spike_templates.size)
    spike_uv = _results.result(session, "spike_amplitudes", compute)
    if spike_uv is not None:
        peak = full.min(axis=(1, 2)) if full.size else np.zeros(keep.size, np.float32)
        per_spike = peak[spike_templates]
        ok = (per_spike != 0) & np.isfinite(spike_uv)
        amplitudes[ok] = np.asarray(spike_uv)[ok] / per_spike[ok]
    similarity = _results.result(session, "template_similarity", compute)
    if similarity is not None:
        plan["similar_templates"] = np.asarray(similarity)[np.ix_(keep, keep)]
    return {**plan, "mode": "computed", "templates": data, "template_ind": template_ind,
            "amplitudes": amplitudes}


def _cosine_similarity(templates: np.ndarray, template_ind, num_channels: int) -> np.ndarray:
    num_t = templates.shape[0]
    if template_ind is None:
        flat = templates.reshape(num_t, -1)
    else:
        flat = np.zeros((num_t, templates.shape[1], num_channels + 1), np.float32)
        cols = np.where(template_ind < 0, num_channels, template_ind)
        np.put_along_axis(flat, np.broadcast_to(cols[:, None, :], templates.shape), templates,
                          axis=2)
        flat = flat[:, :, :num_channels].reshape(num_t, -1)
    norms = np.linalg.norm(flat, axis=1)
    norms[norms == 0] = 1.0
    unit = flat / norms[:, None]
    return (unit @ unit.T).astype(np.float32)


def template_plan(session: Session, keep: np.ndarray, channels: dict, compute: bool) -> dict:
    """The plan (see the module docstring) for the units at positions ``keep`` on
    ``channels`` (from :func:`spikeviz.io.phy_export`)."""
    plan = _kilosort_plan(session, channels) or _computed_plan(session, keep, channels, compute)
    if plan["similar_templates"] is None:
        plan["similar_templates"] = _cosine_similarity(plan["templates"], plan["template_ind"],
                                                       channels["ids"].size)
    return plan
