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
``params.py``               ``dat_path``, ``n_channels_dat``, ``dtype``, ``offset``,
                            ``sample_rate`` (Hz), ``hp_filtered`` as Python literals;
                            optionally ``gain_to_uv`` (µV per stored unit of the raw
                            file: a spikeviz extension that phy and SpikeInterface ignore)
==========================  ============================================================

Optional arrays are written only when given (``spike_templates`` defaults to the clusters,
``channel_map`` to ``0..channels-1`` when the channel count is known).

Writing is atomic. A new folder is filled under a temporary name and renamed into place. An
existing folder (e.g. one that already holds the raw ``.dat``) gets each file written under a
temporary name and renamed; Phy output already in it is only replaced with ``overwrite=True``,
which also removes the files derived from the old sorting (PC features, similar templates,
whitening matrices, ``cluster_*.tsv`` tables, the ``.phy/`` cache) so that nothing stale
survives next to the new sorting.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_file, atomic_folder
from ..errors import InputError

CLUSTER_GROUPS = ("good", "mua", "noise", "unsorted")

# params.py keys in KiloSort's order; other keys follow, sorted.
PARAMS_KEYS = ("dat_path", "n_channels_dat", "dtype", "offset", "sample_rate", "hp_filtered")

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
# Arrays above this size are written block by block (bounded memory for pc_features.npy).
BLOCK_BYTES = 32 * 2 ** 20
STALE_GLOBS = ("cluster_*.tsv", "cluster_*.csv")
STALE_FOLDERS = (".phy",)


# -- validation ------------------------------------------------------------------------------
def _as_int_vector(values, field: str, num: int | None = None) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 2 and 1 in values.shape:
        values = values.reshape(-1)
    if values.ndim != 1:
        raise InputError(f"expected a 1-D array, got shape {values.shape}", field=field)
    if values.size and values.dtype.kind not in "iu":
        raise InputError(f"expected integers, got dtype {values.dtype}", field=field)
    if num is not None and values.size != num:
        raise InputError(f"has {values.size} entries but there are {num} spikes", field=field)
    if values.size and int(values.min()) < 0:
        raise InputError(f"must be >= 0, found {int(values.min())}", field=field)
    return values


def _check_sample_index(sample_index) -> np.ndarray:
    sample_index = np.asarray(sample_index)
    if sample_index.ndim == 2 and sample_index.shape[1:] == (1,):
        sample_index = sample_index[:, 0]
    if sample_index.ndim != 1:
        raise InputError(f"expected a 1-D array of sample indices, got shape "
                         f"{sample_index.shape}", field="sample_index")
    if sample_index.size and sample_index.dtype.kind not in "iu":
        raise InputError(f"expected integer sample indices (samples, not seconds), got dtype "
                         f"{sample_index.dtype}", field="sample_index")
    if sample_index.size and int(sample_index.min()) < 0:
        raise InputError(f"sample indices must be >= 0, found {int(sample_index.min())}",
                         field="sample_index")
    if sample_index.size > 1:
        steps = np.diff(sample_index.astype(np.int64))
        if (steps < 0).any():
            bad = int(np.flatnonzero(steps < 0)[0]) + 1
            raise InputError(f"sample indices must be sorted in time; spike {bad} "
                             f"({int(sample_index[bad])}) comes before spike {bad - 1} "
                             f"({int(sample_index[bad - 1])})", field="sample_index")
    return sample_index.astype(np.uint64)


def _check_int32(values: np.ndarray, field: str) -> np.ndarray:
    if values.size and int(values.max()) > np.iinfo(np.int32).max:
        raise InputError(f"values above {np.iinfo(np.int32).max} do not fit KiloSort's int32",
                         field=field)
    return values.astype(np.int32)


def _literal(value, key: str):
    """``value`` as a plain Python literal that ``repr`` writes and ``literal_eval`` reads."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple | list):
        return [_literal(v, key) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, float) and not np.isfinite(value):
            raise InputError(f"must be a finite number, got {value}", field=f"params.{key}")
        return value
    raise InputError(f"must be a str, number, bool, None or a list of those, got "
                     f"{type(value).__name__}", field=f"params.{key}")


def _dat_path(value, folder: Path):
    """dat_path relative to the folder when the file lies inside it (portable folders)."""
    def one(p):
        if not isinstance(p, str | os.PathLike):
            raise InputError(f"must be a path or a list of paths, got {type(p).__name__}",
                             field="params.dat_path")
        if not str(os.fspath(p)).strip():
            return ""  # phylib's "no raw data file" (Path('') would be '.', the folder)
        p = Path(p)
        if p.is_absolute():
            with contextlib.suppress(ValueError):
                return p.relative_to(folder.absolute()).as_posix()
            return str(p)
        return p.as_posix()
    if isinstance(value, list | tuple):
        return [one(p) for p in value]
    return one(value)


def _make_params(params: Mapping | None, sampling_frequency: float, num_channels: int | None,
                 folder: Path) -> dict:
    given = dict(params or {})
    for key in given:
        if not isinstance(key, str) or not key.isidentifier():
            raise InputError(f"params keys must be Python identifiers, got {key!r}",
                             field="params")
    out = {
        # phylib needs dat_path; '' is its "no raw data file" entry.
        "dat_path": "",
        "n_channels_dat": num_channels,
        "dtype": "int16",
        "offset": 0,
        "sample_rate": float(sampling_frequency),
        "hp_filtered": False,
    }
    out.update(given)
    out["dat_path"] = _dat_path(out["dat_path"], folder)
    if out["n_channels_dat"] is None:
        del out["n_channels_dat"]
    else:
        n = out["n_channels_dat"]
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) <= 0:
            raise InputError(f"must be a positive integer, got {n!r}",
                             field="params.n_channels_dat")
        out["n_channels_dat"] = int(n)
    try:
        out["dtype"] = np.dtype(out["dtype"]).name
    except TypeError:
        raise InputError(f"unknown dtype {out['dtype']!r}", field="params.dtype") from None
    offset = out["offset"]
    if isinstance(offset, bool) or not isinstance(offset, int | np.integer) or offset < 0:
        raise InputError(f"must be a non-negative number of bytes, got {offset!r}",
                         field="params.offset")
    rate = out["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.number):
        raise InputError(f"must be a number of Hz, got {rate!r}", field="params.sample_rate")
    rate = float(rate)
    if abs(rate - sampling_frequency) > 1e-9 * sampling_frequency:
        raise InputError(f"params say {rate:g} Hz but sampling_frequency is "
                         f"{sampling_frequency:g} Hz", field="params.sample_rate")
    out["sample_rate"] = rate
    if not isinstance(out["hp_filtered"], bool | np.bool_):
        raise InputError(f"must be True or False, got {out['hp_filtered']!r}",
                         field="params.hp_filtered")
    if "gain_to_uv" in out:
        out["gain_to_uv"] = _gain_to_uv(out["gain_to_uv"], out.get("n_channels_dat"))
    return {key: _literal(value, key) for key, value in out.items()}


def _gain_to_uv(gain, num_channels: int | None):
    """µV per stored unit of the raw file: a positive number, or one per channel."""
    def positive(value) -> float:
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
            raise InputError(f"must be a number of µV per stored unit, got {value!r}",
                             field="params.gain_to_uv")
        value = float(value)
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"must be a positive number of µV per stored unit, got {value}",
                             field="params.gain_to_uv")
        return value

    if isinstance(gain, np.ndarray):
        gain = gain.tolist()
    if not isinstance(gain, list | tuple):
        return positive(gain)
    if num_channels is None:
        raise InputError("one gain per channel needs n_channels_dat", field="params.gain_to_uv")
    if len(gain) != num_channels:
        raise InputError(f"expected one gain per channel of the raw file ({num_channels}), got "
                         f"{len(gain)}", field="params.gain_to_uv")
    return [positive(g) for g in gain]


def params_text(params: Mapping) -> str:
    """The text of a ``params.py``: one ``key = repr(value)`` line per key, KiloSort's keys
    first. Every value is a literal, so readers can parse it with ``ast.literal_eval``."""
    keys = [k for k in PARAMS_KEYS if k in params]
    keys += sorted(k for k in params if k not in PARAMS_KEYS)
    for key in keys:  # what we write must read back identically
        value = _literal(params[key], key)
        if ast.literal_eval(repr(value)) != value:
            raise InputError(f"{value!r} does not survive a round trip through repr",
                             field=f"params.{key}")
    return "".join(f"{key} = {_literal(params[key], key)!r}\n" for key in keys)


def _cluster_group_text(cluster_groups: Mapping, cluster_ids: np.ndarray) -> str:
    present = set(np.unique(cluster_ids).tolist())
    rows = []
    for cluster_id, group in cluster_groups.items():
        if isinstance(cluster_id, bool) or not isinstance(cluster_id, int | np.integer):
            raise InputError(f"cluster ids must be integers, got {cluster_id!r}",
                             field="cluster_groups")
        if int(cluster_id) not in present:
            raise InputError(f"cluster {cluster_id} has a group but no spikes",
                             field="cluster_groups")
        if group not in CLUSTER_GROUPS:
            raise InputError(f"group of cluster {cluster_id} must be one of "
                             f"{', '.join(CLUSTER_GROUPS)}, got {group!r}",
                             field="cluster_groups")
        rows.append((int(cluster_id), str(group)))
    rows.sort()
    return "cluster_id\tgroup\n" + "".join(f"{c}\t{g}\n" for c, g in rows)


# -- optional KiloSort arrays and cluster tables ----------------------------------------------
class Blocks:
    """An array-like (e.g. a memmap or a lazy view) written to ``.npy`` block by block as
    ``dtype``, so that a large array is never loaded whole."""

    def __init__(self, source, dtype):
        self.source, self.dtype, self.shape = source, np.dtype(dtype), tuple(source.shape)

    def __getitem__(self, key):
        return np.asarray(self.source[key], dtype=self.dtype)


def _float_array(values, field: str, shape: tuple, dtype=np.float64) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != shape or (values.size and values.dtype.kind not in "fiu"):
        raise InputError(f"expected numbers of shape {shape}, got {values.dtype} {values.shape}",
                         field=field)
    if not np.isfinite(values).all():
        raise InputError("must be finite", field=field)
    return values.astype(dtype)


def _channel_table(values, field: str, shape: tuple, num_channels: int, lowest: int, dtype):
    values = np.asarray(values)
    if values.shape != shape or (values.size and values.dtype.kind not in "iu"):
        raise InputError(f"expected integers of shape {shape}, got {values.dtype} "
                         f"{values.shape}", field=field)
    if values.size and (int(values.min()) < lowest or int(values.max()) >= num_channels):
        raise InputError(f"channel indices must lie in [{lowest}, {num_channels}), found "
                         f"{int(values.min())}..{int(values.max())}", field=field)
    return values.astype(dtype)


def _optional_arrays(n: int, num_templates: int, num_channels: int | None, templates,
                     template_ind, similar_templates, whitening_mat, whitening_mat_inv,
                     pc_features, pc_feature_ind, channel_shanks) -> dict:
    out = {}
    needs_channels = {"template_ind": template_ind, "whitening_mat": whitening_mat,
                      "whitening_mat_inv": whitening_mat_inv, "pc_feature_ind": pc_feature_ind,
                      "channel_shanks": channel_shanks}
    for field, value in needs_channels.items():
        if value is not None and num_channels is None:
            raise InputError("needs the channels: give channel_positions_um or channel_map",
                             field=field)
    if template_ind is not None:
        if templates is None:
            raise InputError("sparse template channels without templates", field="template_ind")
        out["template_ind.npy"] = _channel_table(template_ind, "template_ind",
                                                 templates.shape[::2], num_channels, -1, np.int32)
    if similar_templates is not None:
        out["similar_templates.npy"] = _float_array(
            similar_templates, "similar_templates", (num_templates, num_templates), np.float32)
    for name, value in (("whitening_mat", whitening_mat),
                        ("whitening_mat_inv", whitening_mat_inv)):
        if value is not None:
            out[f"{name}.npy"] = _float_array(value, name, (num_channels, num_channels))
    if (pc_features is None) != (pc_feature_ind is None):
        raise InputError("pc_features and pc_feature_ind go together", field="pc_features")
    if pc_features is not None:
        shape = tuple(pc_features.shape)
        if len(shape) != 3 or shape[0] != n or np.dtype(pc_features.dtype).kind not in "fiu":
            raise InputError(f"expected numbers of shape ({n} spikes, pcs, channels), got "
                             f"{pc_features.dtype} {shape}", field="pc_features")
        out["pc_feature_ind.npy"] = _channel_table(pc_feature_ind, "pc_feature_ind",
                                                   (num_templates, shape[2]), num_channels, 0,
                                                   np.uint32)
        out["pc_features.npy"] = Blocks(pc_features, np.float32)
    if channel_shanks is not None:
        shanks = _as_int_vector(channel_shanks, "channel_shanks", None)
        if shanks.size != num_channels:
            raise InputError(f"{shanks.size} shanks but there are {num_channels} channels",
                             field="channel_shanks")
        out["channel_shanks.npy"] = _check_int32(shanks, "channel_shanks")
    return out


def _tsv_value(value) -> str:
    if value is None or value is pd.NA or value is pd.NaT or \
            (isinstance(value, float | np.floating) and np.isnan(value)):
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return repr(value) if np.isfinite(value) else str(value)
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


def _cluster_table_texts(tables: pd.DataFrame, cluster_ids: np.ndarray) -> dict[str, str]:
    """``cluster_<name>.tsv`` text per column of ``tables`` (indexed by cluster id)."""
    if not isinstance(tables, pd.DataFrame):
        raise InputError("must be a DataFrame indexed by cluster id", field="cluster_tables")
    present = set(np.unique(cluster_ids).tolist())
    ids = [int(c) if isinstance(c, int | np.integer) and not isinstance(c, bool) else c
           for c in tables.index]
    unknown = [c for c in ids if not isinstance(c, int) or c not in present]
    if unknown:
        raise InputError(f"rows for clusters without spikes or non-integer ids: {unknown[:5]}",
                         field="cluster_tables")
    if len(set(ids)) != len(ids):
        raise InputError("cluster ids repeat", field="cluster_tables")
    order = np.argsort(ids, kind="stable")
    texts = {}
    for column in tables.columns:
        name = str(column)
        if not name or not all(ch.isalnum() or ch in "_-." for ch in name):
            raise InputError(f"column name {name!r} cannot be a file name cluster_<name>.tsv "
                             f"(letters, digits, _ - . only)", field="cluster_tables")
        if name in ("group", "info"):
            raise InputError(f"cluster_{name}.tsv is reserved (groups go to cluster_groups)",
                             field="cluster_tables")
        values = tables[column].tolist()
        rows = "".join(f"{ids[i]}\t{_tsv_value(values[i])}\n" for i in order)
        texts[f"cluster_{name}.tsv"] = f"cluster_id\t{name}\n{rows}"
    return texts


# -- writing ---------------------------------------------------------------------------------
def _save_npy(path: Path, array, progress=None, step_name: str = "") -> None:
    if isinstance(array, np.ndarray):
        np.save(path, array, allow_pickle=False)
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    try:
        row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize)
        step = max(1, BLOCK_BYTES // row_bytes)
        total = array.shape[0]
        for start in range(0, total, step):
            stop = min(start + step, total)
            out[start:stop] = array[start:stop]
            if progress is not None:
                progress(step_name, stop / total)
        out.flush()
    finally:
        del out


def _write_npy(path: Path, array, atomic: bool, progress=None) -> None:
    if not atomic:
        _save_npy(path, array, progress, path.stem)
        return
    with atomic_file(path, overwrite=True, suffix=".npy") as tmp:
        _save_npy(tmp, array, progress, path.stem)


def _write_text(path: Path, text: str, atomic: bool) -> None:
    if not atomic:
        path.write_text(text, encoding="utf-8", newline="\n")
        return
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


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
                     progress: Callable[[str, float], None] | None = None) -> Path:
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
    ``cluster_<column>.tsv`` per column (empty cell for NaN). ``progress(step, fraction)`` is
    called while large arrays are written.

    InputError on inconsistent input, before anything is written.
    """
    folder = Path(folder)
    try:
        sampling_frequency = float(sampling_frequency)
    except (TypeError, ValueError):
        raise InputError(f"sampling_frequency must be a number of Hz, got "
                         f"{sampling_frequency!r}", field="sampling_frequency") from None
    if not np.isfinite(sampling_frequency) or sampling_frequency <= 0:
        raise InputError(f"sampling_frequency must be a positive number of Hz, got "
                         f"{sampling_frequency}", field="sampling_frequency")

    times = _check_sample_index(sample_index)
    n = times.size
    clusters = _check_int32(_as_int_vector(spike_clusters, "spike_clusters", n),
                            "spike_clusters")
    if spike_templates is None:
        spike_templates = clusters
    spike_templates = _check_int32(_as_int_vector(spike_templates, "spike_templates", n),
                                   "spike_templates")
    arrays: dict[str, np.ndarray] = {
        "spike_times.npy": times,
        "spike_clusters.npy": clusters,
        "spike_templates.npy": spike_templates,
    }

    if amplitudes is not None:
        amplitudes = np.asarray(amplitudes, dtype=np.float64)
        if amplitudes.shape != (n,):
            raise InputError(f"expected {n} amplitudes (one per spike), got shape "
                             f"{amplitudes.shape}", field="amplitudes")
        if not np.isfinite(amplitudes).all():
            raise InputError("amplitudes must be finite", field="amplitudes")
        arrays["amplitudes.npy"] = amplitudes

    num_channels = None
    num_templates = int(spike_templates.max()) + 1 if n else 0
    if templates is not None:
        templates = np.asarray(templates)
        if templates.ndim != 3:
            raise InputError(f"templates must be (templates, samples, channels), got shape "
                             f"{templates.shape}", field="templates")
        if templates.dtype.kind not in "fiu":
            raise InputError(f"templates must be numbers, got dtype {templates.dtype}",
                             field="templates")
        if n and int(spike_templates.max()) >= templates.shape[0]:
            raise InputError(f"spikes refer to template {int(spike_templates.max())} but "
                             f"only {templates.shape[0]} templates are given",
                             field="spike_templates")
        arrays["templates.npy"] = templates.astype(np.float32)
        num_templates = templates.shape[0]
        if template_ind is None:
            num_channels = templates.shape[2]

    if channel_positions_um is not None:
        positions = np.asarray(channel_positions_um, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 2:
            raise InputError(f"channel positions must be (channels, 2) in µm, got shape "
                             f"{positions.shape}", field="channel_positions_um")
        if num_channels is not None and positions.shape[0] != num_channels:
            raise InputError(f"{positions.shape[0]} channel positions but the templates have "
                             f"{num_channels} channels", field="channel_positions_um")
        if not np.isfinite(positions).all():
            raise InputError("channel positions must be finite", field="channel_positions_um")
        arrays["channel_positions.npy"] = positions
        num_channels = positions.shape[0]

    n_channels_dat = None if params is None else params.get("n_channels_dat")
    if isinstance(n_channels_dat, bool) or not isinstance(n_channels_dat, int | np.integer) \
            or n_channels_dat <= 0:
        n_channels_dat = None  # absent or invalid (then _make_params says so)
    if channel_map is not None:
        channel_map = _check_int32(_as_int_vector(channel_map, "channel_map"), "channel_map")
        if num_channels is not None and channel_map.size != num_channels:
            raise InputError(f"channel map has {channel_map.size} entries but there are "
                             f"{num_channels} channels", field="channel_map")
        if np.unique(channel_map).size != channel_map.size:
            raise InputError("channel map entries must be unique", field="channel_map")
        num_channels = channel_map.size
    elif num_channels is not None or n_channels_dat is not None:
        num_channels = num_channels if num_channels is not None else int(n_channels_dat)
        channel_map = np.arange(num_channels, dtype=np.int32)
    if channel_map is not None:
        arrays["channel_map.npy"] = channel_map
    arrays.update(_optional_arrays(n, num_templates, num_channels, templates, template_ind,
                                   similar_templates, whitening_mat, whitening_mat_inv,
                                   pc_features, pc_feature_ind, channel_shanks))

    param_values = _make_params(params, sampling_frequency, num_channels, folder)
    if channel_map is not None and channel_map.size and "n_channels_dat" in param_values and \
            int(channel_map.max()) >= param_values["n_channels_dat"]:
        raise InputError(f"channel map refers to row {int(channel_map.max())} but the raw file "
                         f"has {param_values['n_channels_dat']} channels",
                         field="channel_map")
    texts = {"params.py": params_text(param_values)}
    if cluster_groups is not None:
        texts["cluster_group.tsv"] = _cluster_group_text(cluster_groups, clusters)
    if cluster_tables is not None:
        texts.update(_cluster_table_texts(cluster_tables, clusters))

    names = set(arrays) | set(texts)
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", path=folder)
    if not folder.exists():
        with atomic_folder(folder) as tmp:
            _write_all(tmp, arrays, texts, atomic=False, progress=progress)
        return folder

    existing = sorted(p.name for p in folder.iterdir() if p.name in names)
    stale = _stale(folder, names)
    if (existing or stale) and not overwrite:
        found = existing + [p.name for p in stale]
        raise InputError(f"already holds Phy output ({', '.join(found[:6])}"
                         f"{', ...' if len(found) > 6 else ''}); pass overwrite=True to "
                         f"replace it", path=folder)
    if not os.access(folder, os.W_OK):
        raise InputError("the folder is not writable", path=folder)
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    _write_all(folder, arrays, texts, atomic=True, progress=progress)
    return folder


def _write_all(folder: Path, arrays: Mapping, texts: Mapping[str, str], atomic: bool,
               progress=None) -> None:
    for name, array in arrays.items():
        _write_npy(folder / name, array, atomic, progress)
    # params.py last: a folder is recognised as Phy output only once everything else is there
    for name in sorted(texts, key=lambda k: k == "params.py"):
        _write_text(folder / name, texts[name], atomic)
