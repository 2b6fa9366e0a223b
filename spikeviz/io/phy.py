"""Phy / KiloSort 1–4 output folders.

Reads what KiloSort and phy write, in every dtype and shape they use: ``spike_times.npy``
((n,) or (n, 1); uint64/int64/uint32/int32 samples), ``spike_clusters.npy`` (else
``spike_templates.npy``), every ``cluster_*.tsv`` as unit properties, ``templates.npy`` with
``template_ind.npy``/``templates_ind.npy``, ``amplitudes.npy``, ``channel_map.npy`` and
``channel_positions.npy`` (µm). ``params.py`` is parsed with ``ast.literal_eval``, never
executed; its ``dat_path`` (relative to the folder) opens the raw recording when it exists.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Recording, Session, Sorting, Templates
from . import binary

FORMAT = "phy"
# Sources of the normalised ``label`` column, most authoritative first: phy's manual curation,
# a ``cluster_label.tsv`` (spikeviz's export writes one for labels outside phy's groups, e.g.
# "non-soma"), KiloSort's automatic label, bombcell's classification.
LABEL_COLUMNS = ("group", "label", "KSLabel", "bc_unitType")


def sniff(path: Path) -> bool:
    return path.is_dir() and ((path / "spike_times.npy").is_file()
                              or (path / "params.py").is_file())


# -- params.py --------------------------------------------------------------------------------
def parse_params(path: Path) -> dict:
    """Assignments of ``params.py`` as a dict, parsed without running any code.

    Only ``name = <literal>`` statements (and a docstring) are allowed; anything else, e.g. an
    import or a function call, is rejected with the offending line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot parse params.py ({err})", path=path) from None
    params = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            try:
                params[name] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise InputError(f"line {node.lineno}: the value of {name!r} is not a plain "
                                 f"literal; params.py is parsed, never executed", path=path,
                                 field=name) from None
            continue
        raise InputError(f"line {node.lineno}: only 'name = literal' assignments are allowed; "
                         f"params.py is parsed, never executed", path=path)
    return params


# -- arrays -----------------------------------------------------------------------------------
def _load_npy(path: Path, required: bool = True) -> np.ndarray | None:
    if not path.is_file():
        if required:
            raise InputError("required file is missing", path=path)
        return None
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"not a readable .npy array, truncated or corrupt ({err})",
                         path=path) from None


def _vector(array: np.ndarray, path: Path) -> np.ndarray:
    """(n,) or (n, 1) → (n,) view."""
    if array.ndim == 2 and array.shape[1] == 1:
        return array[:, 0]
    if array.ndim == 1:
        return array
    raise InputError(f"expected shape (n,) or (n, 1), got {array.shape}", path=path)


def _integer_vector(path: Path, what: str) -> np.ndarray:
    values = _vector(_load_npy(path), path)
    if values.dtype.kind in "iu":
        return values
    if values.dtype.kind == "f":
        as_int = values.astype(np.int64)
        if np.array_equal(as_int, values):
            return as_int
    raise InputError(f"expected integer {what}, got dtype {values.dtype}", path=path)


def _spike_times(path: Path) -> np.ndarray:
    times = _integer_vector(path, "spike times in samples")
    if times.dtype.kind == "u" and times.size and int(times.max()) > np.iinfo(np.int64).max:
        raise InputError("spike time exceeds the int64 range", path=path)
    times = times.astype(np.int64, copy=False)  # an int64 file stays memory-mapped
    if times.size and int(times.min()) < 0:
        raise InputError(f"negative spike time {int(times.min())}", path=path)
    return times


def _cluster_ids(path: Path, num_spikes: int, times_path: Path) -> np.ndarray:
    ids = _integer_vector(path, "cluster ids")
    if ids.shape[0] != num_spikes:
        raise InputError(f"has {ids.shape[0]:,} entries but {times_path.name} has "
                         f"{num_spikes:,} spikes; they must have one entry per spike", path=path)
    if ids.size and ids.dtype.kind == "i" and int(ids.min()) < 0:
        raise InputError(f"negative cluster id {int(ids.min())}; ids must be >= 0", path=path)
    return ids


# -- unit table -------------------------------------------------------------------------------
def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise InputError(f"not a readable tab-separated table ({err})", path=path) from None
    except pd.errors.EmptyDataError:
        raise InputError("empty file; expected a header 'cluster_id<TAB>...'", path=path) from None
    id_column = next((c for c in ("cluster_id", "id") if c in table.columns), None)
    if id_column is None:
        raise InputError(f"no 'cluster_id' column (columns are {list(table.columns)})",
                         path=path, field="cluster_id")
    ids = pd.to_numeric(table[id_column], errors="coerce")
    if ids.isna().any() or (ids.mod(1) != 0).any() or (ids < 0).any():
        raise InputError("cluster ids must be non-negative integers", path=path,
                         field=id_column)
    if ids.duplicated().any():
        dupes = sorted(set(ids[ids.duplicated()].astype(int)))[:5]
        raise InputError(f"cluster ids repeat: {dupes}", path=path, field=id_column)
    return table.drop(columns=[id_column]).set_index(pd.Index(ids.astype(np.int64)))


def read_unit_table(folder: Path, unit_ids: np.ndarray) -> pd.DataFrame:
    """Columns of every ``cluster_*.tsv`` for ``unit_ids`` plus a normalised ``label``.

    ``cluster_info.tsv`` (phy's summary) is read first; the specific files (cluster_group.tsv,
    cluster_KSLabel.tsv, ...) override its columns of the same name.
    """
    table = pd.DataFrame(index=pd.Index(unit_ids, name="unit_id"))
    files = sorted(folder.glob("cluster_*.tsv"), key=lambda p: (p.name != "cluster_info.tsv",
                                                                p.name))
    for path in files:
        part = _read_tsv(path).reindex(table.index)
        for column in part.columns:
            table[column] = part[column]
    label = pd.Series(np.nan, index=table.index, dtype=object)
    for column in LABEL_COLUMNS:
        if column in table:
            values = table[column].where(table[column].astype(str).str.strip() != "")
            label = label.fillna(values.astype(object).map(
                lambda v: v if pd.isna(v) else str(v).strip().lower()))
    table["label"] = label.fillna("unsorted").astype(str)
    return table


# -- templates and geometry -------------------------------------------------------------------
def _channels(folder: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    path = folder / "channel_map.npy"
    channel_map = _load_npy(path, required=False)
    if channel_map is not None:
        channel_map = np.asarray(_integer_vector(path, "channel numbers"), dtype=np.int64)
    path = folder / "channel_positions.npy"
    positions = _load_npy(path, required=False)
    if positions is not None:
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] < 2:
            raise InputError(f"expected (channels, 2) positions in µm, got {positions.shape}",
                             path=path)
        positions = positions[:, :2]
        if channel_map is None:
            channel_map = np.arange(positions.shape[0], dtype=np.int64)
        elif positions.shape[0] != channel_map.size:
            raise InputError(f"{positions.shape[0]} positions but channel_map.npy lists "
                             f"{channel_map.size} channels", path=path)
    return channel_map, positions


def _templates(folder: Path, channel_map: np.ndarray | None, fs: float) -> Templates | None:
    path = folder / "templates.npy"
    data = _load_npy(path, required=False)
    if data is None:
        return None
    if data.ndim != 3:
        raise InputError(f"expected (templates, samples, channels), got {data.shape}", path=path)
    ind_path = next((folder / n for n in ("template_ind.npy", "templates_ind.npy")
                     if (folder / n).is_file()), None)
    sparse = None if ind_path is None else np.asarray(_load_npy(ind_path), dtype=np.int64)
    if sparse is not None and sparse.shape != (data.shape[0], data.shape[2]):
        raise InputError(f"shape {sparse.shape} does not match templates.npy {data.shape}",
                         path=ind_path)
    if channel_map is None:
        channel_map = np.arange(data.shape[2] if sparse is None else int(sparse.max()) + 1)
    try:
        return Templates(data, np.arange(data.shape[0]), channel_map,
                         sparse_channel_indices=sparse, sampling_frequency=fs, units="whitened")
    except InputError as err:
        raise err.at(path) from None


# -- recording --------------------------------------------------------------------------------
def _dat_file(folder: Path, dat_path) -> Path | None:
    if isinstance(dat_path, list | tuple):
        if len(dat_path) != 1:
            return None
        dat_path = dat_path[0]
    if not dat_path or not isinstance(dat_path, str):
        return None
    candidate = Path(dat_path)
    if not candidate.is_absolute():
        candidate = folder / candidate
    if candidate.is_file():
        return candidate
    # absolute paths from another machine (C:\...): try the file name inside the folder
    local = folder / Path(dat_path.replace("\\", "/")).name
    return local if local.is_file() else None


def _params_number(params: dict, key: str, path: Path, kind=float, default=None):
    value = params.get(key, default)
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < 0 or (kind is int and value != int(value)):
        raise InputError(f"expected a {'whole ' if kind is int else ''}non-negative number, "
                         f"got {value!r}", path=path, field=key)
    return kind(value)


def _params_gain(params: dict, path: Path):
    gain = params.get("gain_to_uv")
    if gain is None:
        return None
    values = np.atleast_1d(np.asarray(gain, dtype=object))
    if not all(isinstance(g, int | float) and not isinstance(g, bool) and np.isfinite(g)
               and g > 0 for g in values):
        raise InputError(f"expected a positive number of µV per stored unit (or one per "
                         f"channel), got {gain!r}", path=path, field="gain_to_uv")
    return gain


def _open_dat(folder: Path, params: dict, fs: float, gain_to_uv) -> Recording | None:
    """The raw recording params.py points to, or None (with a warning) when it is absent."""
    params_path = folder / "params.py"
    dat = _dat_file(folder, params.get("dat_path"))
    if dat is None:
        if params.get("dat_path"):
            warnings.warn(f"{params_path}: raw data {params['dat_path']!r} not found; opening "
                          f"the sorting without its recording", stacklevel=3)
        return None
    if dat.with_suffix(".meta").is_file():
        from . import spikeglx

        recording = spikeglx.read_recording(dat)
    else:
        num_channels = _params_number(params, "n_channels_dat", params_path, int)
        if not num_channels:
            raise InputError("dat_path is set but n_channels_dat is missing or 0",
                             path=params_path, field="n_channels_dat")
        if gain_to_uv is None:
            gain_to_uv = _params_gain(params, params_path)
        recording = binary.read_recording(
            dat, sampling_frequency=fs, num_channels=num_channels,
            dtype=params.get("dtype", "int16"),
            offset=_params_number(params, "offset", params_path, int, default=0),
            gain_to_uv=gain_to_uv)
    recording.is_filtered = bool(params.get("hp_filtered", False))
    return recording


def with_recording(session: Session, recording: Recording) -> Session:
    """``session`` (read without its recording) paired with ``recording``.

    Phy's channel_map.npy holds column positions in the raw file: the session's channel ids
    become the recording's ids of those columns (they differ when SpikeGLX saved a subset of
    channels), and positions from channel_positions.npy fill the recording's geometry when it
    has none.
    """
    columns = session.channel_ids
    if columns is None:
        return Session(session.sorting, recording=recording, source=session.source,
                       format=session.format, results=session.results)
    columns = np.asarray(columns, dtype=np.int64)
    if columns.size and (columns.max() >= recording.num_channels or columns.min() < 0):
        raise InputError(f"channel_map.npy refers to channel {int(columns.max())} but the "
                         f"recording {recording.source or ''} has {recording.num_channels} "
                         f"channels: the recording does not belong to this sorting",
                         path=Path(session.source) / "channel_map.npy")
    positions = session.channel_locations_um
    if recording.channel_locations_um is None and positions is not None:
        locations = np.full((recording.num_channels, 2), np.nan)
        locations[columns] = positions
        recording.channel_locations_um = locations
    channel_ids = np.asarray(recording.channel_ids)[columns]
    results = dict(session.results)
    templates = results.get("kilosort_templates")
    if templates is not None:
        templates.channel_ids = channel_ids
    return Session(session.sorting, recording=recording, source=session.source,
                   format=session.format, channel_ids=channel_ids,
                   channel_locations_um=positions, results=results)


def read_session(folder: Path, sampling_frequency: float | None = None,
                 load_recording: bool = True, gain_to_uv=None, **_ignored) -> Session:
    """A Phy/KiloSort folder as a Session (with its raw recording when ``dat_path`` exists).

    Phy's params.py does not record the µV per stored unit of the raw .dat; it comes from
    ``gain_to_uv`` (a number or one per channel), else an optional ``gain_to_uv`` entry in
    params.py (a spikeviz extension that phy and SpikeInterface ignore), else a SpikeGLX .meta
    beside the .dat. Without any, traces are in stored units and ``recording.gain_known`` is
    False.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder; a Phy/KiloSort output folder was expected", path=folder)
    params_path = folder / "params.py"
    params = parse_params(params_path) if params_path.is_file() else {}
    file_rate = _params_number(params, "sample_rate", params_path)
    if file_rate == 0:
        raise InputError("sample_rate must be positive (Hz)", path=params_path,
                         field="sample_rate")
    if sampling_frequency is None and file_rate is None:
        where = "params.py has no sample_rate" if params_path.is_file() else "there is no params.py"
        raise InputError(f"{where}, so the sampling rate is unknown: pass "
                         f"sampling_frequency= (--sampling-frequency on the command line; Hz, "
                         f"e.g. 30000 for Neuropixels)", path=folder, field="sample_rate")
    fs = float(sampling_frequency if sampling_frequency is not None else file_rate)
    if sampling_frequency is not None and file_rate is not None and \
            abs(file_rate - fs) > 1e-9 * fs:
        warnings.warn(f"{params_path}: sample_rate {file_rate:g} overridden by "
                      f"sampling_frequency={fs:g}", stacklevel=2)

    times_path = folder / "spike_times.npy"
    times = _spike_times(times_path)
    clusters_path = folder / "spike_clusters.npy"
    templates_path = folder / "spike_templates.npy"
    if not clusters_path.is_file():
        if not templates_path.is_file():
            raise InputError("neither spike_clusters.npy nor spike_templates.npy exists; one "
                             "is needed to assign spikes to units", path=folder)
        clusters_path = templates_path
    clusters = _cluster_ids(clusters_path, times.size, times_path)

    spike_properties = {}
    if clusters_path != templates_path and templates_path.is_file():
        spike_properties["template_index"] = _cluster_ids(templates_path, times.size, times_path)
    amplitudes_path = folder / "amplitudes.npy"
    if amplitudes_path.is_file():
        amplitudes = _vector(_load_npy(amplitudes_path), amplitudes_path)
        if amplitudes.shape[0] != times.size:
            raise InputError(f"has {amplitudes.shape[0]:,} entries but {times_path.name} has "
                             f"{times.size:,} spikes", path=amplitudes_path)
        spike_properties["amplitudes"] = amplitudes

    try:
        sorting = Sorting.from_unit_ids(times, clusters, fs, spike_properties=spike_properties,
                                        sort=False, source=str(folder))
    except InputError as err:
        raise err.at(times_path) from None
    sorting = sorting.with_unit_table(read_unit_table(folder, sorting.unit_ids))
    channel_map, positions = _channels(folder)
    results = {}
    templates = _templates(folder, channel_map, fs)
    if templates is not None:
        results["kilosort_templates"] = templates
    session = Session(sorting, source=str(folder), format=FORMAT, channel_ids=channel_map,
                      channel_locations_um=positions, results=results)
    recording = _open_dat(folder, params, fs, gain_to_uv) if load_recording else None
    return session if recording is None else with_recording(session, recording)
