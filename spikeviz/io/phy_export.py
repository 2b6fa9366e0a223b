"""Export a Session as a Phy folder that phylib's ``TemplateModel`` and phy's template GUI open.

The files and dtypes are KiloSort's (see :mod:`spikeviz.io.phy_write`); what goes in them:

- **Clusters**: one per unit *with spikes* (phy derives its clusters from
  ``spike_clusters.npy``, so units without spikes cannot exist there: they are left out with a
  warning). Integer unit ids >= 0 are kept as cluster ids; other ids (strings, negatives) are
  renumbered ``0..n-1`` in the sorting's order with a warning and the original ids go to
  ``cluster_unit_id.tsv``.
- **Labels**: good / mua / noise / unsorted go to ``cluster_group.tsv`` (phy's curation
  column). Any other label (e.g. bombcell's "non-soma") gets no row there (phy shows the
  cluster as unsorted) and all labels are then also written to ``cluster_label.tsv``, which
  :mod:`spikeviz.io.phy` reads after ``group`` so the label survives a round trip.
- **Unit columns**: one ``cluster_<name>.tsv`` (``cluster_id<TAB><name>``, empty cell for NaN)
  per column of :func:`spikeviz.io._results.unit_columns` (unit table + quality metrics);
  phylib loads every ``*.tsv`` into ``model.metadata`` and phy shows them as cluster-view
  columns. Names are reduced to letters, digits, ``_ - .``. Left out: ``label``/``group``
  (above) and the columns phy computes itself and would show twice or stale after a merge
  (``ch``, ``sh``, ``depth``, ``fr``, ``amp``, ``n_spikes``, and the metrics
  ``num_spikes``, ``firing_rate``).
- **Templates**, in this order of preference:

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

- ``similar_templates.npy``: the session's ``template_similarity`` when available (computed
  templates), else the cosine similarity of the written templates (zeros for zero templates).
- **PC features** (``pc_features=True``): the session's ``principal_components`` for every
  spike (``all_spikes=True``; available or ``compute=True``): (spikes, pcs, channels) float32
  with ``pc_feature_ind.npy`` (uint32) = each unit's sparse channels. Padding slots (units with
  fewer channels) point at unused channels with zero features, because phylib casts the
  indices to unsigned. With carried-over KiloSort templates the features are used only when
  each template belongs to one unit. Written block by block.
- **Channels**: the session's channels with a finite position (a sync channel without one is
  left out, as KiloSort does); ``channel_map.npy`` is each one's column in the raw file (the
  channel ids when there is no recording and they are integers); ``channel_shanks.npy`` from
  the recording's channel groups. Without any geometry, placeholder positions on a vertical
  line (20 µm pitch) with a warning; without any channel at all, one placeholder channel.
- **Raw data** (``raw``): ``"link"`` points ``dat_path`` at the recording's own file (relative
  to the folder) when it is a raw binary phy can read (memmap-backed: .dat/.bin, SpikeGLX),
  else warns and writes no raw; ``"copy"`` writes ``recording.dat`` in the stored dtype, all
  channels, chunk by chunk (any recording: memmap, h5py/NWB, in memory); ``None``: no raw
  (``dat_path = ''``, which phylib reads as "no raw data"). ``n_channels_dat``, ``dtype``,
  ``offset``, ``sample_rate`` (the sorting's rate), ``hp_filtered`` (the recording's
  ``is_filtered``) and, when the gain is known and offsets are zero, ``gain_to_uv`` (read by
  :mod:`spikeviz.io.phy`, ignored by phy) describe it.
- The folder is written under a temporary name and renamed into place (an existing folder is
  replaced only with ``overwrite=True``, which also removes any stale ``.phy/`` cache: the new
  folder never has one). Linking a raw file that lies inside the folder being replaced is
  refused (it would be deleted).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_folder
from ..errors import InputError
from ..model import Session
from . import _results
from .phy_write import CLUSTER_GROUPS, write_phy_folder

RAW_CHOICES = ("link", "copy", None)
MAX_TEMPLATE_CHANNELS = 32
PLACEHOLDER_PITCH_UM = 20.0
PHY_COMPUTED_COLUMNS = ("ch", "sh", "depth", "fr", "amp", "n_spikes", "num_spikes", "firing_rate")
RAW_CHUNK_BYTES = 32 * 2 ** 20
WINDOW_MS = (1.0, 2.0)


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


# -- units and channels -----------------------------------------------------------------------
def _units(sorting):
    """(positions of the exported units, their cluster ids, renumbered?)."""
    counts = np.bincount(sorting.unit_index, minlength=sorting.num_units)
    keep = np.flatnonzero(counts > 0)
    if keep.size < sorting.num_units:
        empty = sorting.unit_ids[counts == 0][:5].tolist()
        _warn(f"{sorting.num_units - keep.size} unit(s) without spikes left out (e.g. {empty}): "
              f"phy's clusters are defined by their spikes")
    ids = sorting.unit_ids[keep]
    if ids.dtype.kind == "i" and (not ids.size or (ids.min() >= 0
                                                   and ids.max() <= np.iinfo(np.int32).max)):
        return keep, ids.astype(np.int64), False
    _warn("unit ids are not integers >= 0: clusters are numbered 0..n-1 and the original ids "
          "written to cluster_unit_id.tsv")
    return keep, np.arange(keep.size, dtype=np.int64), True


def _channels(session: Session) -> dict:
    rec = session.recording
    ids = session.channel_ids
    kt = session.results.get("kilosort_templates")
    if ids is None and kt is not None:
        ids = kt.channel_ids
    if ids is None:
        _warn("the session has no channels: writing one placeholder channel at (0, 0) µm")
        return {"ids": np.zeros(1, np.int64), "columns": None, "map": np.zeros(1, np.int32),
                "positions": np.zeros((1, 2)), "shanks": None}
    ids = np.asarray(ids)
    columns = rec.channel_indices(ids) if rec is not None else None
    positions = session.channel_locations_um
    if positions is None or not np.isfinite(np.asarray(positions)[:, :2]).all(axis=1).any():
        _warn("no channel positions: writing placeholder positions on a vertical line "
              f"({PLACEHOLDER_PITCH_UM:g} µm pitch)")
        positions = np.c_[np.zeros(ids.size), PLACEHOLDER_PITCH_UM * np.arange(ids.size)]
    positions = np.asarray(positions, dtype=np.float64)[:, :2]
    keep = np.isfinite(positions).all(axis=1)
    if not keep.all():
        _warn(f"{int((~keep).sum())} channel(s) without a position (e.g. a sync channel) left "
              f"out of channel_map.npy")
    if columns is not None:
        channel_map = columns[keep]
    elif ids.dtype.kind in "iu" and ids.min() >= 0 and ids.max() <= np.iinfo(np.int32).max:
        channel_map = ids[keep]
    else:
        channel_map = np.arange(int(keep.sum()))
    shanks = None
    if rec is not None and rec.channel_groups is not None:
        shanks = np.asarray(rec.channel_groups)[columns[keep]]
    return {"ids": ids[keep], "columns": None if columns is None else columns[keep],
            "map": channel_map.astype(np.int32), "positions": positions[keep], "shanks": shanks,
            "all": bool(keep.all())}


# -- templates --------------------------------------------------------------------------------
def _source_folder(session: Session) -> Path | None:
    if session.format != "phy" or not session.source:
        return None
    folder = Path(session.source)
    return folder if folder.is_dir() else None


def _load_source(folder: Path | None, name: str, shape: tuple | None = None):
    if folder is None or not (folder / name).is_file():
        return None
    try:
        array = np.load(folder / name, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        _warn(f"{folder / name}: unreadable ({err}); not carried over")
        return None
    if shape is not None and array.shape != shape:
        _warn(f"{folder / name}: shape {array.shape}, expected {shape}; not carried over")
        return None
    return array


def _whitening(folder: Path | None, num_channels: int):
    shape = (num_channels, num_channels)
    wm = _load_source(folder, "whitening_mat.npy", shape)
    wmi = _load_source(folder, "whitening_mat_inv.npy", shape)
    try:
        if wm is None and wmi is not None:
            wm = np.linalg.inv(wmi)
        if wmi is None and wm is not None:
            wmi = np.linalg.inv(wm)
    except np.linalg.LinAlgError:
        _warn(f"{folder}: the whitening matrix is singular; writing identity matrices")
        wm = wmi = None
    if wm is None:
        wm = wmi = np.eye(num_channels)
    return np.asarray(wm), np.asarray(wmi)


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
    source = _source_folder(session)
    num_t = kt.data.shape[0]
    amplitudes = props.get("amplitudes")
    if amplitudes is None or not np.isfinite(amplitudes).all():
        amplitudes = np.ones(spike_templates.size)
    wm, wmi = _whitening(source, channels["ids"].size)
    return {"mode": "kilosort", "templates": np.asarray(kt.data, dtype=np.float32),
            "template_ind": kt.sparse_channel_indices, "spike_templates": spike_templates,
            "amplitudes": amplitudes, "whitening_mat": wm, "whitening_mat_inv": wmi,
            "similar_templates": _load_source(source, "similar_templates.npy", (num_t, num_t)),
            "template_unit": _template_units(spike_templates, session.sorting.unit_index, num_t),
            "source": source}


def _template_units(spike_templates, unit_index, num_templates: int) -> np.ndarray:
    """Unit position of each template row; -1 unused, -2 shared by several units."""
    low = np.full(num_templates, np.iinfo(np.int32).max, dtype=np.int32)
    high = np.full(num_templates, -1, dtype=np.int32)
    np.minimum.at(low, spike_templates, unit_index)
    np.maximum.at(high, spike_templates, unit_index)
    return np.where(high < 0, -1, np.where(low == high, high, -2))


def _computed_plan(session: Session, keep: np.ndarray, channels: dict, compute: bool):
    templates = _results.templates(session, compute)
    row = np.full(session.sorting.num_units, -1, dtype=np.int32)
    row[keep] = np.arange(keep.size)
    spike_templates = row[session.sorting.unit_index]
    if templates is None:
        fs = session.sorting.sampling_frequency
        samples = sum(round(ms * fs / 1000.0) for ms in WINDOW_MS)
        _warn("no templates: writing zero templates (phylib needs templates.npy); "
              + ("pass compute=True to compute them from the recording"
                 if session.recording is not None else "the session has no recording"))
        amplitudes = session.sorting.spike_properties.get("amplitudes")
        if amplitudes is None or not np.isfinite(amplitudes).all():
            amplitudes = np.ones(spike_templates.size)
        return {"mode": "zeros", "spike_templates": spike_templates, "amplitudes": amplitudes,
                "templates": np.zeros((keep.size, samples, channels["ids"].size), np.float32),
                "template_ind": None, "template_unit": keep}
    full = np.asarray(templates.data, dtype=np.float32)[keep]
    dense = full[:, :, channels["columns"]]
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
        similarity = np.asarray(similarity)[np.ix_(keep, keep)]
    eye = np.eye(channels["ids"].size)
    return {"mode": "computed", "templates": data, "template_ind": template_ind,
            "spike_templates": spike_templates, "amplitudes": amplitudes,
            "whitening_mat": eye, "whitening_mat_inv": eye, "similar_templates": similarity,
            "template_unit": keep}


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


# -- principal components ---------------------------------------------------------------------
class _ZeroedSlots:
    """PC features with the slots ``zero[template of spike]`` set to 0, read by row blocks."""

    def __init__(self, source, spike_templates, zero):
        self.source, self.spike_templates, self.zero = source, spike_templates, zero
        self.shape, self.dtype = tuple(source.shape), np.dtype(np.float32)

    def __getitem__(self, rows):
        block = np.array(self.source[rows], dtype=np.float32)
        block[np.broadcast_to(self.zero[self.spike_templates[rows]][:, None, :], block.shape)] = 0
        return block


def _pc_plan(session: Session, plan: dict, channels: dict, compute: bool):
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
        _warn("a KiloSort template is shared by several units (split since sorting): PC "
              "features are not written")
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
        _warn("more PC channels than probe channels: PC features are not written")
        return None
    source = pcs["projections"]
    features = _ZeroedSlots(source, plan["spike_templates"], zero) if zero.any() else source
    return features, ind


def _source_pcs(session: Session, plan: dict):
    folder = plan["source"]
    s = session.sorting
    times = _load_source(folder, "spike_times.npy")
    feats = _load_source(folder, "pc_features.npy")
    ind = _load_source(folder, "pc_feature_ind.npy")
    templates = _load_source(folder, "spike_templates.npy")
    if any(a is None for a in (times, feats, ind, templates)):
        return None
    if times.size != s.num_spikes or feats.shape[0] != s.num_spikes or feats.ndim != 3 or \
            ind.shape != (plan["templates"].shape[0], feats.shape[2]):
        return None
    same = np.array_equal(times.reshape(-1), s.sample_index) and \
        np.array_equal(templates.reshape(-1), plan["spike_templates"])
    return (feats, np.asarray(ind)) if same else None


# -- raw data ---------------------------------------------------------------------------------
def _raw_params(session: Session, folder: Path, raw, overwrite: bool) -> tuple[dict, bool]:
    """(params.py entries, copy the recording?)."""
    rec = session.recording
    params = {"dat_path": "", "offset": 0,
              "hp_filtered": bool(rec.is_filtered) if rec is not None else False}
    if rec is None or raw is None:
        if rec is not None:
            params.update(n_channels_dat=rec.num_channels, dtype=rec.dtype.name)
        return params, False
    params.update(n_channels_dat=rec.num_channels, dtype=rec.dtype.name)
    if rec.gain_known and not np.any(rec.offsets_to_uv):
        gains = np.asarray(rec.gains_to_uv, dtype=np.float64)
        params["gain_to_uv"] = float(gains[0]) if np.all(gains == gains[0]) else gains.tolist()
    if raw == "copy":
        params["dat_path"] = "recording.dat"
        return params, True
    backend = getattr(rec, "_backend", None)
    filename = getattr(backend, "filename", None)
    if not isinstance(backend, np.memmap) or not filename or \
            not backend.flags.c_contiguous or \
            os.path.getsize(filename) != int(backend.offset) + backend.nbytes:
        _warn(f"raw='link' needs a recording stored as a raw binary file; "
              f"{rec.source or 'this recording'} is not: no raw data linked (use raw='copy')")
        return params, False
    target = Path(filename).resolve()
    destination = folder.resolve()
    if overwrite and destination.exists() and destination in target.parents:
        raise InputError(f"the raw file {target} lies inside the folder that overwrite would "
                         f"replace; write elsewhere or use raw='copy'", path=folder)
    dat_path = str(target)
    with contextlib.suppress(ValueError):
        dat_path = Path(os.path.relpath(target, destination)).as_posix()
    params.update(dat_path=dat_path, offset=int(backend.offset), dtype=backend.dtype.name)
    return params, False


def _copy_raw(recording, path: Path, progress) -> None:
    n = recording.num_samples
    step = max(1, RAW_CHUNK_BYTES // (recording.num_channels * recording.dtype.itemsize))
    with open(path, "wb") as f:
        for start in range(0, n, step):
            stop = min(start + step, n)
            np.ascontiguousarray(recording.traces(start, stop, scaled=False)).tofile(f)
            if progress is not None:
                progress("raw", stop / n)


# -- unit columns -----------------------------------------------------------------------------
def _tables(session: Session, keep, cluster_ids, renumbered: bool, compute: bool):
    """(cluster_groups, cluster_tables)."""
    columns = _results.unit_columns(session, compute).iloc[keep]
    labels = columns["label"].astype(str).tolist()
    groups = {int(c): g for c, g in zip(cluster_ids, labels, strict=True) if g in CLUSTER_GROUPS}
    table = pd.DataFrame(index=pd.Index(cluster_ids, name="cluster_id"))
    if renumbered:
        table["unit_id"] = [str(u) for u in session.sorting.unit_ids[keep]]
    if len(groups) < len(labels):
        table["label"] = labels
    for column in columns.columns:
        name = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(column))
        if column in ("label", "group") or name in PHY_COMPUTED_COLUMNS or not name:
            continue
        base, k = name, 2
        while name in table.columns or name in ("group", "info"):
            name, k = f"{base}_{k}", k + 1
        table[name] = columns[column].to_numpy()
    return groups, table


# -- the writer -------------------------------------------------------------------------------
def write_phy(session: Session, folder: str | Path, overwrite: bool = False, raw="link",
              compute: bool = False, progress: Callable[[str, float], None] | None = None,
              pc_features: bool = True) -> Path:
    """Write ``session`` as a Phy folder (see the module docstring); returns the folder.

    ``raw``: "link" (point at the recording's raw binary), "copy" (write ``recording.dat``)
    or None. ``compute``: compute missing templates, spike amplitudes, similarity, quality
    metrics and PC features (else only what is available is written). ``progress(step,
    fraction)`` is called while large files are written. ``pc_features``: write PC features
    when available. InputError on bad input or an existing folder without ``overwrite``,
    before anything is written; nothing is left behind on any error.
    """
    if not isinstance(session, Session):
        raise InputError(f"expected a spikeviz Session, got {type(session).__name__}",
                         field="session")
    if raw not in RAW_CHOICES:
        raise InputError(f"raw must be 'link', 'copy' or None, got {raw!r}", field="raw")
    if progress is not None and not callable(progress):
        raise InputError("progress must be a callable(step, fraction)", field="progress")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", path=folder)
    if folder.exists() and not overwrite:
        raise InputError("already exists; pass overwrite=True (--overwrite) to replace it",
                         path=folder)
    if not folder.parent.is_dir():
        raise InputError("the destination folder does not exist", path=folder.parent)
    if not os.access(folder.parent, os.W_OK):
        raise InputError("the destination folder is not writable", path=folder.parent)
    sorting = session.sorting
    if sorting.num_spikes == 0:
        raise InputError("the sorting has no spikes; phy cannot open a folder without spikes",
                         field="sorting")

    params, copy = _raw_params(session, folder, raw, overwrite)
    keep, cluster_ids, renumbered = _units(sorting)
    channels = _channels(session)
    plan = _kilosort_plan(session, channels) or \
        _computed_plan(session, keep, channels, compute)
    if plan.get("similar_templates") is None:
        plan["similar_templates"] = _cosine_similarity(plan["templates"], plan["template_ind"],
                                                       channels["ids"].size)
    pcs = _pc_plan(session, plan, channels, compute) if pc_features else None
    groups, tables = _tables(session, keep, cluster_ids, renumbered, compute)
    if "n_channels_dat" not in params:
        params["n_channels_dat"] = int(channels["map"].max()) + 1
    cluster_of_unit = np.full(sorting.num_units, -1, dtype=np.int32)
    cluster_of_unit[keep] = cluster_ids

    try:
        _write(folder, overwrite, copy, session, plan, channels, pcs, params, groups, tables,
               cluster_of_unit[sorting.unit_index], progress)
    except OSError as err:
        raise InputError(f"could not write the Phy folder ({err.strerror or err}); nothing "
                         f"was left behind", path=folder) from err
    return folder


def _write(folder, overwrite, copy, session, plan, channels, pcs, params, groups, tables,
           spike_clusters, progress) -> None:
    sorting = session.sorting
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        write_phy_folder(
            tmp, sorting.sample_index, spike_clusters, sorting.sampling_frequency,
            templates=plan["templates"],
            spike_templates=plan["spike_templates"], amplitudes=plan["amplitudes"],
            channel_positions_um=channels["positions"], channel_map=channels["map"],
            cluster_groups=groups, params=params, template_ind=plan["template_ind"],
            similar_templates=plan["similar_templates"],
            whitening_mat=plan.get("whitening_mat", np.eye(channels["ids"].size)),
            whitening_mat_inv=plan.get("whitening_mat_inv", np.eye(channels["ids"].size)),
            pc_features=None if pcs is None else pcs[0],
            pc_feature_ind=None if pcs is None else pcs[1],
            channel_shanks=channels["shanks"], cluster_tables=tables, progress=progress)
        if copy:
            _copy_raw(session.recording, tmp / "recording.dat", progress)
