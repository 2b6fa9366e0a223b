"""PC features of an exported Phy folder (``pc_features.npy``, ``pc_feature_ind.npy``).

The session's ``principal_components`` for every spike (``all_spikes=True``; available or
``compute=True``): (spikes, pcs, channels) float32 with ``pc_feature_ind.npy`` (uint32) = each
unit's sparse channels. Padding slots (units with fewer channels) point at unused channels with
zero features, because phylib casts the indices to unsigned. With carried-over KiloSort
templates, the source folder's features are copied when the spikes and their templates are
exactly the source folder's; else the session's are used only when each template belongs to
one unit. Features are read and written block by block.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..model import Session
from . import _results
from .phy_templates import load_source


class _ZeroedSlots:
    """PC features with the slots ``zero[template of spike]`` set to 0, read by row blocks."""

    def __init__(self, source, spike_templates, zero):
        self.source, self.spike_templates, self.zero = source, spike_templates, zero
        self.shape, self.dtype = tuple(source.shape), np.dtype(np.float32)

    def __getitem__(self, rows):
        block = np.array(self.source[rows], dtype=np.float32)
        block[np.broadcast_to(self.zero[self.spike_templates[rows]][:, None, :], block.shape)] = 0
        return block


def pc_plan(session: Session, plan: dict, channels: dict, compute: bool):
    """(features array-like (spikes, pcs, channels_loc), pc_feature_ind) or None, for the
    template ``plan`` of :func:`spikeviz.io.phy_templates.template_plan`."""
    if plan["mode"] == "kilosort" and plan["source"] is not None:
        copied = _source_pcs(session, plan)
        if copied is not None:
            return copied
    if channels["columns"] is None:
        return None
    pcs = _results.result(session, "principal_components", compute, all_spikes=True)
    if pcs is None:
        return None
    units = plan["template_unit"]
    if (units == -2).any():
        warnings.warn("a KiloSort template is shared by several units (split since sorting): "
                      "PC features are not written", stacklevel=2)
        return None
    lookup = np.full(session.recording.num_channels, -1, dtype=np.int64)
    lookup[channels["columns"]] = np.arange(channels["columns"].size)
    unit_channels = np.asarray(pcs["channel_indices"])
    mapped = np.where(unit_channels >= 0, lookup[np.maximum(unit_channels, 0)], -1)
    mapped = np.vstack([mapped, np.full((1, mapped.shape[1]), -1)])  # row -1: unused templates
    ind = mapped[units]
    zero = ind < 0
    for row in np.flatnonzero(zero.any(axis=1)):  # padding → unused channels, zero features
        free = np.setdiff1d(np.arange(channels["ids"].size), ind[row][ind[row] >= 0])
        ind[row][zero[row]] = free[:int(zero[row].sum())]
    if ind.size and ind.min() < 0:  # fewer channels than slots
        warnings.warn("more PC channels than probe channels: PC features are not written",
                      stacklevel=2)
        return None
    source = pcs["projections"]
    features = _ZeroedSlots(source, plan["spike_templates"], zero) if zero.any() else source
    return features, ind


def _source_pcs(session: Session, plan: dict):
    folder = plan["source"]
    s = session.sorting
    times = load_source(folder, "spike_times.npy")
    feats = load_source(folder, "pc_features.npy")
    ind = load_source(folder, "pc_feature_ind.npy")
    templates = load_source(folder, "spike_templates.npy")
    if any(a is None for a in (times, feats, ind, templates)):
        return None
    if times.size != s.num_spikes or feats.shape[0] != s.num_spikes or feats.ndim != 3 or \
            ind.shape != (plan["templates"].shape[0], feats.shape[2]):
        return None
    same = np.array_equal(times.reshape(-1), s.sample_index) and \
        np.array_equal(templates.reshape(-1), plan["spike_templates"])
    return (feats, np.asarray(ind)) if same else None
