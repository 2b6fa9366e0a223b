"""Write a Phy/KiloSort folder: the files that Phy (phylib's TemplateModel), SpikeInterface's
``read_phy``/``read_kilosort`` and spikeviz's own reader open.

Files and dtypes follow KiloSort's output:

==========================  ============================================================
``spike_times.npy``         uint64 (spikes,): sample index of every spike, sorted
``spike_clusters.npy``      int32 (spikes,): cluster id of every spike
``spike_templates.npy``     int32 (spikes,): template row of every spike
``amplitudes.npy``          float64 (spikes,): template scaling of every spike
``templates.npy``           float32 (templates, samples, channels), dense
``channel_map.npy``         int32 (channels,): row of each channel in the raw file
``channel_positions.npy``   float64 (channels, 2): x/y in µm
``template_ind.npy``        int32 (templates, channels_loc): channel of each template column
                            when templates are sparse (-1 pads), absent when dense
``similar_templates.npy``   float32 (templates, templates)
``whitening_mat(_inv).npy`` float64 (channels, channels)
``pc_features.npy``         float32 (spikes, pcs, channels_loc), written block by block
``pc_feature_ind.npy``      uint32 (templates, channels_loc): channel of each feature column
``channel_shanks.npy``      int32 (channels,): shank of each channel
``cluster_group.tsv``       ``cluster_id<TAB>group`` with group good / mua / noise / unsorted
``cluster_<name>.tsv``      ``cluster_id<TAB><name>``: one per column of ``cluster_tables``
``params.py``               see :mod:`spikeviz.io.phy_params`
==========================  ============================================================

Optional arrays are written only when given (``spike_templates`` defaults to the clusters,
``channel_map`` to ``0..channels-1`` when the channel count is known).

Progress: ``progress(step, fraction)`` is called with ``("phy", 0.0)`` once everything is
validated and before any file is created, then per stage as the files are written
(``spikes``, ``templates``, ``channels``, ``pc_features`` — block by block —, ``tables``
with ``params.py`` last), each stage ending at 1.0, and ``("phy", 1.0)`` when everything is
written but not yet renamed into place. An exception from ``progress`` aborts like any
other error.

Writing is atomic. A new folder is filled under a temporary name and renamed into place. An
existing folder (e.g. one that already holds the raw ``.dat``) gets every file written under
a temporary name beside its target; only when all are written are the stale files removed and
the new ones renamed into place (``params.py`` last), so an error while writing leaves the
folder as it was. Phy output already in it is only replaced with ``overwrite=True``, which
also removes the files derived from the old sorting (PC features, similar templates,
whitening matrices, ``cluster_*.tsv`` tables, the ``.phy/`` cache) so that nothing stale
survives next to the new sorting.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_file, atomic_folder
from ..errors import InputError
from .phy_arrays import check_arrays
from .phy_params import make_params, params_text, positive_int
from .phy_tables import CLUSTER_GROUPS, cluster_group_text, cluster_table_texts

__all__ = ["CLUSTER_GROUPS", "Progress", "prepare_files", "write_folder", "write_phy_folder"]

Progress = Callable[[str, float], None] | None

# Files derived from a sorting that become wrong when the sorting is replaced. Removed (with
# overwrite=True) when not rewritten.
STALE_FILES = (
    "amplitudes.npy", "templates.npy", "spike_templates.npy", "channel_map.npy",
    "channel_positions.npy", "template_ind.npy", "templates_ind.npy", "similar_templates.npy",
    "pc_features.npy", "pc_feature_ind.npy", "pc_feature_spike_ids.npy",
    "template_features.npy", "template_feature_ind.npy", "template_feature_spike_ids.npy",
    "whitening_mat.npy", "whitening_mat_inv.npy", "spike_times_reordered.npy",
    "spike_clusters.npy", "spike_times.npy", "channel_shanks.npy", "params.py",
)
STALE_GLOBS = ("cluster_*.tsv", "cluster_*.csv")
STALE_FOLDERS = (".phy",)
# Arrays above this size are written block by block (bounded memory for pc_features.npy).
BLOCK_BYTES = 32 * 2 ** 20
# Writing order and progress steps; text files (cluster tables, then params.py) are "tables".
STAGES = (
    ("spikes", ("spike_times.npy", "spike_clusters.npy", "spike_templates.npy",
                "amplitudes.npy")),
    ("templates", ("templates.npy", "template_ind.npy", "similar_templates.npy",
                   "whitening_mat.npy", "whitening_mat_inv.npy")),
    ("channels", ("channel_map.npy", "channel_positions.npy", "channel_shanks.npy")),
    ("pc_features", ("pc_feature_ind.npy", "pc_features.npy")),
)


def report(progress: Progress, step: str, fraction: float) -> None:
    if progress is not None:
        progress(step, fraction)


# -- validation -------------------------------------------------------------------------------
def prepare_files(folder: str | Path, sample_index, spike_clusters, sampling_frequency: float,
                  *, params: Mapping | None = None, cluster_groups: Mapping | None = None,
                  cluster_tables: pd.DataFrame | None = None, **arrays) -> dict:
    """Check everything :func:`write_phy_folder` would write (same arguments; ``folder`` only
    makes ``dat_path`` relative) and return ``{file name: ndarray, Blocks or text}`` in writing
    order. InputError on inconsistent input; nothing is written."""
    folder = Path(folder)
    try:
        sampling_frequency = float(sampling_frequency)
    except (TypeError, ValueError):
        raise InputError(f"sampling_frequency must be a number of Hz, got "
                         f"{sampling_frequency!r}", field="sampling_frequency") from None
    if not np.isfinite(sampling_frequency) or sampling_frequency <= 0:
        raise InputError(f"sampling_frequency must be a positive number of Hz, got "
                         f"{sampling_frequency}", field="sampling_frequency")
    n_channels_dat = None if params is None else positive_int(params.get("n_channels_dat"))
    checked, num_channels = check_arrays(sample_index, spike_clusters,
                                         n_channels_dat=n_channels_dat, **arrays)
    param_values = make_params(params, sampling_frequency, num_channels, folder)
    channel_map = checked.get("channel_map.npy")
    if channel_map is not None and channel_map.size and "n_channels_dat" in param_values and \
            int(channel_map.max()) >= param_values["n_channels_dat"]:
        raise InputError(f"channel map refers to row {int(channel_map.max())} but the raw file "
                         f"has {param_values['n_channels_dat']} channels", field="channel_map")
    clusters = checked["spike_clusters.npy"]
    files = {name: checked[name] for _, names in STAGES for name in names if name in checked}
    if cluster_groups is not None:
        files["cluster_group.tsv"] = cluster_group_text(cluster_groups, clusters)
    if cluster_tables is not None:
        files.update(cluster_table_texts(cluster_tables, clusters))
    # params.py last: a folder is recognised as Phy output only once everything else is there
    files["params.py"] = params_text(param_values)
    return files


# -- writing ----------------------------------------------------------------------------------
def _save(path: Path, content, done: Callable[[float], None]) -> None:
    """Write one file; ``done(fraction)`` after each block, ending at 1.0."""
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="\n")
    elif isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=False)
    else:  # Blocks: bounded memory
        out = np.lib.format.open_memmap(path, mode="w+", dtype=content.dtype,
                                        shape=content.shape)
        try:
            row_bytes = max(1, int(np.prod(content.shape[1:], dtype=np.int64))
                            * content.dtype.itemsize)
            step = max(1, BLOCK_BYTES // row_bytes)
            total = content.shape[0]
            for start in range(0, total, step):
                stop = min(start + step, total)
                out[start:stop] = content[start:stop]
                if stop < total:
                    done(stop / total)
            out.flush()
        finally:
            del out
    done(1.0)


def write_files(files: Mapping, target: Callable[[str], Path], progress: Progress) -> None:
    """Write ``files`` (from :func:`prepare_files`) stage by stage, each to ``target(name)``,
    reporting ``progress(stage, fraction)``."""
    stage_of = {name: stage for stage, names in STAGES for name in names}
    stages: dict[str, list[str]] = {}
    for name in files:
        stages.setdefault(stage_of.get(name, "tables"), []).append(name)
    for stage, names in stages.items():
        for k, name in enumerate(names):
            _save(target(name), files[name], functools.partial(_part, progress, stage, k,
                                                               len(names)))


def _part(progress: Progress, stage: str, k: int, total: int, fraction: float) -> None:
    """Progress of file ``k`` of the ``total`` files of ``stage``, ``fraction`` written."""
    report(progress, stage, (k + fraction) / total)


def write_folder(folder: Path, files: Mapping, progress: Progress = None,
                 overwrite: bool = False, extra: Callable[[Path], None] | None = None) -> None:
    """Fill a temporary folder with ``files`` (then ``extra(temporary folder)`` when given)
    and rename it into place; an existing ``folder`` is replaced only with ``overwrite``."""
    report(progress, "phy", 0.0)
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        write_files(files, tmp.joinpath, progress)
        if extra is not None:
            extra(tmp)
        report(progress, "phy", 1.0)


def _write_into(folder: Path, files: Mapping, stale: list[Path], progress: Progress) -> None:
    """Write ``files`` into an existing folder: every file under a temporary name, then the
    stale files removed and the new ones renamed into place in writing order."""
    report(progress, "phy", 0.0)
    with contextlib.ExitStack() as stack:
        # entered last to first: the stack leaves (renames) them first to last
        temps = {name: stack.enter_context(atomic_file(folder / name, overwrite=True,
                                                       suffix=Path(name).suffix))
                 for name in reversed(files)}
        write_files(files, temps.__getitem__, progress)
        report(progress, "phy", 1.0)
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _stale(folder: Path, names: set[str]) -> list[Path]:
    found = [folder / n for n in STALE_FILES if n not in names and (folder / n).exists()]
    for pattern in STALE_GLOBS:
        found += [p for p in sorted(folder.glob(pattern)) if p.name not in names]
    found += [folder / n for n in STALE_FOLDERS if (folder / n).exists()]
    return found


def write_phy_folder(folder: str | Path, sample_index, spike_clusters,
                     sampling_frequency: float, *, templates=None, spike_templates=None,
                     amplitudes=None, channel_positions_um=None, channel_map=None,
                     cluster_groups: Mapping | None = None, params: Mapping | None = None,
                     overwrite: bool = False, template_ind=None, similar_templates=None,
                     whitening_mat=None, whitening_mat_inv=None, pc_features=None,
                     pc_feature_ind=None, channel_shanks=None,
                     cluster_tables: pd.DataFrame | None = None,
                     progress: Progress = None) -> Path:
    """Write a sorting as a Phy/KiloSort folder; returns the folder.

    ``sample_index``: spike times in samples (integers, sorted, >= 0). ``spike_clusters``:
    the cluster id of every spike (integers >= 0). ``sampling_frequency``: Hz.

    ``templates``: (templates, samples, channels) µV, row ``k`` is template ``k``;
    ``spike_templates``: template row of every spike (defaults to ``spike_clusters``, i.e. one
    template per cluster id). ``amplitudes``: template scaling per spike. ``channel_positions_um``:
    (channels, 2) µm. ``channel_map``: row of each channel in the raw file (default
    ``0..channels-1``). ``cluster_groups``: ``{cluster_id: 'good'|'mua'|'noise'|'unsorted'}``.
    ``params``: params.py entries (``dat_path`` — written relative when inside ``folder`` —,
    ``n_channels_dat``, ``dtype``, ``offset`` bytes, ``sample_rate`` Hz, ``hp_filtered``, and
    optionally ``gain_to_uv``, µV per stored unit of the raw file, a positive number or one per
    channel, which :mod:`spikeviz.io.phy` reads); ``sample_rate`` defaults to
    ``sampling_frequency`` and must equal it when given. Other keys are written as given.

    Optional KiloSort arrays (see the module docstring): ``template_ind`` (templates are then
    sparse: ``templates[:, :, j]`` is channel ``template_ind[:, j]``), ``similar_templates``,
    ``whitening_mat``/``whitening_mat_inv``, ``pc_features`` (any array-like with ``shape``,
    ``dtype`` and row slicing, e.g. a memmap: written in blocks) with ``pc_feature_ind``,
    ``channel_shanks``; ``cluster_tables``: a DataFrame indexed by cluster id, one
    ``cluster_<column>.tsv`` per column (empty cell for NaN). ``progress(step, fraction)``:
    see the module docstring.

    InputError on inconsistent input, before anything is written.
    """
    folder = Path(folder)
    files = prepare_files(
        folder, sample_index, spike_clusters, sampling_frequency, params=params,
        cluster_groups=cluster_groups, cluster_tables=cluster_tables, templates=templates,
        spike_templates=spike_templates, amplitudes=amplitudes,
        channel_positions_um=channel_positions_um, channel_map=channel_map,
        template_ind=template_ind, similar_templates=similar_templates,
        whitening_mat=whitening_mat, whitening_mat_inv=whitening_mat_inv,
        pc_features=pc_features, pc_feature_ind=pc_feature_ind, channel_shanks=channel_shanks)
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", path=folder)
    if not folder.exists():
        write_folder(folder, files, progress)
        return folder

    existing = sorted(p.name for p in folder.iterdir() if p.name in files)
    stale = _stale(folder, set(files))
    if (existing or stale) and not overwrite:
        found = existing + [p.name for p in stale]
        raise InputError(f"already holds Phy output ({', '.join(found[:6])}"
                         f"{', ...' if len(found) > 6 else ''}); pass overwrite=True to "
                         f"replace it", path=folder)
    if not os.access(folder, os.W_OK):
        raise InputError("the folder is not writable", path=folder)
    _write_into(folder, files, stale, progress)
    return folder
