"""Export a Session as a Phy folder that phylib's ``TemplateModel`` and phy's template GUI open.

The files and dtypes are KiloSort's (see :mod:`spikeviz.io.phy_write`); what goes in them:

- **Clusters**: one per unit *with spikes* (phy derives its clusters from
  ``spike_clusters.npy``, so units without spikes cannot exist there: they are left out with a
  warning). Integer unit ids >= 0 are kept as cluster ids; other ids (strings, negatives) are
  renumbered ``0..n-1`` in the sorting's order with a warning and the original ids go to
  ``cluster_unit_id.tsv``.
- **Labels and unit columns**: ``cluster_group.tsv``, ``cluster_label.tsv`` and one
  ``cluster_<name>.tsv`` per unit column and quality metric (see
  :mod:`spikeviz.io.phy_tables`).
- **Templates, amplitudes, whitening, similar templates**: KiloSort's own carried over,
  computed from the recording, or zeros (see :mod:`spikeviz.io.phy_templates`).
- **PC features** (``pc_features=True``): see :mod:`spikeviz.io.phy_pcs`.
- **Channels**: the session's channels with a finite position (a sync channel without one is
  left out, as KiloSort does); ``channel_map.npy`` is each one's column in the raw file (the
  channel ids when there is no recording and they are integers); ``channel_shanks.npy`` from
  the recording's channel groups. Without any geometry, placeholder positions on a vertical
  line (20 µm pitch) with a warning; without any channel at all, one placeholder channel.
- **Raw data** (``raw``): linked, copied or none (see :mod:`spikeviz.io.phy_raw`);
  ``sample_rate`` in ``params.py`` is the sorting's rate.
- The folder is written under a temporary name and renamed into place (an existing folder is
  replaced only with ``overwrite=True``, which also removes any stale ``.phy/`` cache: the new
  folder never has one). ``progress(step, fraction)`` is called with ``("phy", 0.0)`` once
  everything is validated and planned, per stage as the files are written (``spikes``,
  ``templates``, ``channels``, ``pc_features``, ``tables``, then ``raw`` when copying) and
  ``("phy", 1.0)`` just before the rename; an exception from it leaves nothing behind.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..atomic import check_target
from ..errors import InputError
from ..model import Session
from . import phy_raw
from .phy_pcs import pc_plan
from .phy_tables import unit_tables
from .phy_templates import template_plan
from .phy_write import Progress, prepare_files, write_folder

PLACEHOLDER_PITCH_UM = 20.0


def _units(sorting):
    """(positions of the exported units, their cluster ids, renumbered?)."""
    counts = np.bincount(sorting.unit_index, minlength=sorting.num_units)
    keep = np.flatnonzero(counts > 0)
    if keep.size < sorting.num_units:
        empty = sorting.unit_ids[counts == 0][:5].tolist()
        warnings.warn(f"{sorting.num_units - keep.size} unit(s) without spikes left out (e.g. "
                      f"{empty}): phy's clusters are defined by their spikes", stacklevel=3)
    ids = sorting.unit_ids[keep]
    if ids.dtype.kind == "i" and (not ids.size or (ids.min() >= 0
                                                   and ids.max() <= np.iinfo(np.int32).max)):
        return keep, ids.astype(np.int64), False
    warnings.warn("unit ids are not integers >= 0: clusters are numbered 0..n-1 and the "
                  "original ids written to cluster_unit_id.tsv", stacklevel=3)
    return keep, np.arange(keep.size, dtype=np.int64), True


def _channels(session: Session) -> dict:
    """``ids``, ``columns`` (in the recording, or None), ``map``, ``positions`` (µm),
    ``shanks`` of the exported channels; ``all``: no channel was left out."""
    rec = session.recording
    ids = session.channel_ids
    kt = session.results.get("kilosort_templates")
    if ids is None and kt is not None:
        ids = kt.channel_ids
    if ids is None:
        warnings.warn("the session has no channels: writing one placeholder channel at "
                      "(0, 0) µm", stacklevel=3)
        return {"ids": np.zeros(1, np.int64), "columns": None, "map": np.zeros(1, np.int32),
                "positions": np.zeros((1, 2)), "shanks": None}
    ids = np.asarray(ids)
    columns = rec.channel_indices(ids) if rec is not None else None
    positions = session.channel_locations_um
    if positions is None or not np.isfinite(np.asarray(positions)[:, :2]).all(axis=1).any():
        warnings.warn("no channel positions: writing placeholder positions on a vertical line "
                      f"({PLACEHOLDER_PITCH_UM:g} µm pitch)", stacklevel=3)
        positions = np.c_[np.zeros(ids.size), PLACEHOLDER_PITCH_UM * np.arange(ids.size)]
    positions = np.asarray(positions, dtype=np.float64)[:, :2]
    keep = np.isfinite(positions).all(axis=1)
    if not keep.all():
        warnings.warn(f"{int((~keep).sum())} channel(s) without a position (e.g. a sync "
                      f"channel) left out of channel_map.npy", stacklevel=3)
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


def _refuse_foreign_files(folder: Path) -> None:
    """Overwriting replaces the whole folder: refuse when it holds anything a Phy export
    would not have written (raw data, notes, another tool's output), so that nothing of the
    user's is ever deleted."""
    import fnmatch

    from .phy_write import STALE_FILES, STALE_FOLDERS, STALE_GLOBS

    ours = set(STALE_FILES) | set(STALE_FOLDERS) | {".spikeviz", "channel_shanks.npy",
                                                     "pc_feature_spike_ids.npy"}
    params = folder / "params.py"
    if params.is_file():  # the raw copy a previous export made, if params.py points at it
        text = params.read_text(encoding="utf-8", errors="replace")
        if f"dat_path = '{phy_raw.RAW_FILE}'" in text:
            ours.add(phy_raw.RAW_FILE)
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in ours and
                     not any(fnmatch.fnmatch(p.name, g) for g in STALE_GLOBS))
    if foreign:
        raise InputError(f"holds files that are not Phy output ({', '.join(foreign[:5])}"
                         f"{', ...' if len(foreign) > 5 else ''}); overwriting replaces the "
                         f"whole folder, so spikeviz only overwrites a folder it could have "
                         f"written. Choose another destination", path=folder)


def write_phy(session: Session, folder: str | Path, overwrite: bool = False, raw="link",
              compute: bool = False, progress: Progress = None,
              pc_features: bool = True) -> Path:
    """Write ``session`` as a Phy folder (see the module docstring); returns the folder.

    ``raw``: "link" (point at the recording's raw binary), "copy" (write ``recording.dat``)
    or None. ``compute``: compute missing templates, spike amplitudes, similarity, quality
    metrics and PC features (else only what is available is written). ``progress(step,
    fraction)``: from ``("phy", 0.0)`` once everything is validated to ``("phy", 1.0)``
    before the rename, with per-stage steps in between (module docstring). ``pc_features``:
    write PC features when available. InputError on bad input or an existing folder without
    ``overwrite``, before anything is written; nothing is left behind on any error,
    including one raised by ``progress``.
    """
    if not isinstance(session, Session):
        raise InputError(f"expected a spikeviz Session, got {type(session).__name__}",
                         field="session")
    if raw not in phy_raw.RAW_CHOICES:
        raise InputError(f"raw must be 'link', 'copy' or None, got {raw!r}", field="raw")
    if progress is not None and not callable(progress):
        raise InputError("progress must be a callable(step, fraction)", field="progress")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", path=folder)
    check_target(folder, overwrite)  # atomic_folder's own checks, before any planning
    if folder.exists():
        cwd = Path.cwd().resolve()
        if folder.resolve() == cwd or folder.resolve() in cwd.parents:
            raise InputError("is the current folder (or holds it); a Phy export replaces the "
                             "whole folder: choose another destination", path=folder)
        _refuse_foreign_files(folder)
    sorting = session.sorting
    if sorting.num_spikes == 0:
        raise InputError("the sorting has no spikes; phy cannot open a folder without spikes",
                         field="sorting")

    params, copy = phy_raw.raw_params(session, folder, raw, overwrite)
    keep, cluster_ids, renumbered = _units(sorting)
    channels = _channels(session)
    plan = template_plan(session, keep, channels, compute)
    pcs = pc_plan(session, plan, channels, compute) if pc_features else None
    groups, tables = unit_tables(session, keep, cluster_ids, renumbered, compute)
    if "n_channels_dat" not in params:
        params["n_channels_dat"] = int(channels["map"].max()) + 1
    cluster_of_unit = np.full(sorting.num_units, -1, dtype=np.int32)
    cluster_of_unit[keep] = cluster_ids
    files = prepare_files(
        folder, sorting.sample_index, cluster_of_unit[sorting.unit_index],
        sorting.sampling_frequency, params=params, cluster_groups=groups,
        cluster_tables=tables, templates=plan["templates"],
        spike_templates=plan["spike_templates"], amplitudes=plan["amplitudes"],
        channel_positions_um=channels["positions"], channel_map=channels["map"],
        template_ind=plan["template_ind"], similar_templates=plan["similar_templates"],
        whitening_mat=plan["whitening_mat"], whitening_mat_inv=plan["whitening_mat_inv"],
        pc_features=None if pcs is None else pcs[0],
        pc_feature_ind=None if pcs is None else pcs[1], channel_shanks=channels["shanks"])

    def copy_raw(tmp: Path) -> None:
        phy_raw.copy_raw(session.recording, tmp / phy_raw.RAW_FILE, progress)

    try:
        write_folder(folder, files, progress, overwrite=overwrite,
                     extra=copy_raw if copy else None)
    except OSError as err:
        raise InputError(f"could not write the Phy folder ({err.strerror or err}); nothing "
                         f"was left behind", path=folder) from err
    return folder
