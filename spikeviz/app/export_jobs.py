"""The work behind the export panel: what is exported, where it goes, how each format is written.

Everything here runs without a browser (the panel calls :func:`run_export` in a thread; tests
call it directly). What is exported is always the *current curated* session
(:func:`curated_session`): ``curation.sorting`` with the original session's recording, channel
information, source facts and cache folder.

Files go under one output folder only (the user never types a server path); names are
``<source stem>_curated.<ext>`` and an existing name gets a numeric suffix (``_2``, ``_3``,
...): nothing is ever overwritten. Each file is written atomically (a temporary name, then a
rename), so a failed job leaves no partial file.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_file
from ..errors import InputError
from ..model.curation import Curation
from ..model.session import Session

Progress = Callable[[str, float], None] | None

KINDS = ("nwb", "hdf5", "phy", "curation", "metrics_csv", "metrics_parquet", "view_html",
         "view_png", "view_svg")
# The writers given the curated session: its results are seeded first (seed_curated) and the
# writers then take only what is available (compute=False): nothing is precomputed.
SEEDED = ("nwb", "hdf5", "phy")
HDF5_STYLES = ("ragged", "raster", "group", "paired")
TIME_UNITS = ("s", "ms", "samples")

# Exports run one at a time per server process: warnings are captured per job (Python's
# warning machinery is process-wide) and two heavy writers would only fight for the disk.
_JOB_LOCK = threading.Lock()


@dataclass
class ExportResult:
    """What a job wrote: ``path`` (file or folder), ``download`` (one file to hand to the
    browser: the file itself, or a zip of a folder), a one-line ``message`` and the writer's
    ``warnings`` (text)."""

    kind: str
    path: Path
    download: Path
    message: str
    warnings: list[str] = field(default_factory=list)


# -- what is exported --------------------------------------------------------------------------
def curated_session(session: Session, curation: Curation) -> Session:
    """The current curated session: ``curation.sorting`` (labels in its ``label`` column, tags
    in ``tags``) with the original's recording, channels, source and format, and no cache
    folder (``cache_dir=None``: an export writes nothing to ``.spikeviz/`` but its files).

    The results read with the source are passed on: the writers use them only where they
    still fit (KiloSort templates follow each spike's ``template_index``, which a curation
    keeps; NWB templates only when they cover exactly the current unit ids). Derived results
    (templates, spike amplitudes, quality metrics) are seeded from the incremental
    :class:`~spikeviz.model.curated.CuratedAnalysis` by :func:`seed_curated` before a writer
    runs: the curated sorting is never precomputed from scratch."""
    if curation.original is not session.sorting and \
            curation.original.spikes_hash() != session.sorting.spikes_hash():
        raise InputError("the curation belongs to another sorting than the session's",
                         field="curation")
    return Session(curation.sorting, session.recording, source=session.source,
                   format=session.format, channel_ids=session.channel_ids,
                   channel_locations_um=session.channel_locations_um,
                   results=dict(session.results), cache_dir=None,
                   filter_band_hz=session.filter_band_hz, n_jobs=session.n_jobs)


def seed_curated(session: Session, curation: Curation, curated: Session, compute: bool,
                 report: Progress = None) -> list[str]:
    """Seed ``curated.analysis`` (:meth:`~spikeviz.model.analysis.Analysis.store`, memory only)
    from ``curated_analysis(session, curation)``, under the keys the writers look up
    (:mod:`spikeviz.io._results`, default parameters): ``templates`` (mean and std; then
    ``unit_peaks`` from them), ``spike_amplitudes`` and ``quality_metrics`` (the metric columns
    of the unit table: the CSV's values). Original units take the session's results; new
    (merged/split) units are computed from their own spikes only with ``compute``, else a result
    is seeded only when known for every unit. ``principal_components`` (Phy's
    ``pc_features.npy``) and ``template_similarity`` are copied only while the spikes are the
    session's (labels only): an export computes neither. Returns notes on what was left out."""
    from ..model.curated import curated_analysis

    report = report or (lambda step, fraction: None)
    ca = curated_analysis(session, curation)
    orig, target, sorting = session.analysis, curated.analysis, curated.sorting
    if sorting is not ca.sorting:
        raise InputError("the curation changed since the export started; export again",
                         field="curation")
    ids = sorting.unit_ids
    status = ca.unit_status(ids)
    traces = curated.recording is not None and sorting.num_spikes > 0
    notes = []

    def ready(name: str, *what: str) -> bool:
        if compute or (orig.is_available(name) and status[list(what)].to_numpy().all()):
            return True
        notes.append(f"{name.replace('_', ' ')} of merged/split units are not computed yet: "
                     f"not written (tick 'compute missing')")
        return False

    if traces and not target.is_available("templates") and ready("templates", "template"):
        report("templates", 0.1)
        t = ca.templates(ids)
        if not status["new"].all():
            orig.arrays("templates")  # the session's, for the original units' counts
        counts = ca.unit_status(ids)["template_spikes_used"].to_numpy()
        target.store("templates", {"average": t.data, "std": t.std,
                                   "num_spikes_used": counts},
                     {"nbefore": t.nbefore, "nafter": t.data.shape[1] - t.nbefore})
        target.get("unit_peaks")  # from the seeded templates: no trace is read
    if traces and not target.is_available("spike_amplitudes") and \
            ready("spike_amplitudes", "amplitudes"):
        report("spike amplitudes", 0.2)
        positions, values = ca.spike_amplitudes(ids)
        amplitudes = np.full(sorting.num_spikes, np.nan, np.float32)
        amplitudes[positions] = values
        target.store("spike_amplitudes", {"amplitudes": amplitudes})
    if not target.is_available("quality_metrics") and \
            ready("quality_metrics", "metrics", *(("template",) if traces else ())):
        report("quality metrics", 0.3)
        frame = ca.unit_frame()
        columns = [c for c in orig.get("quality_metrics").columns if c in frame]
        target.store("quality_metrics", {c: frame[c].to_numpy() for c in columns},
                     {"columns": columns})
    if traces and sorting.spikes_hash() == session.sorting.spikes_hash():
        for name, params in (("principal_components", {"all_spikes": True}),
                             ("template_similarity", {})):
            if not target.is_available(name, **params) and orig.is_available(name, **params):
                target.store(name, *orig.arrays(name, **params), **params)
    return notes


def unit_frame(session: Session, curation: Curation) -> pd.DataFrame:
    """The unit table of the current curated units (labels, tags, counts, rates, amplitudes,
    depths, metrics): ``curated_analysis(session, curation).unit_frame()``."""
    from ..model.curated import curated_analysis

    return curated_analysis(session, curation).unit_frame()


def parquet_engine() -> str | None:
    """'pyarrow' or 'fastparquet' when one is installed, else None."""
    for name in ("pyarrow", "fastparquet"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def png_available() -> bool:
    """PNGs/SVGs of views are rendered by a headless Chromium through Playwright."""
    from .export_views import png_available as available

    return available()


# -- where files go ----------------------------------------------------------------------------
def cache_exports_dir(session: Session) -> Path | None:
    """``exports/`` in the session's cache folder (beside the curation log), created; None
    for an in-memory session or when it cannot be created."""
    folder = session.analysis.cache.folder
    if folder is None:
        return None
    out = Path(folder) / "exports"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return out


def default_output_dir(session: Session) -> Path:
    """:func:`cache_exports_dir`, else a new temporary folder (in-memory sessions)."""
    return cache_exports_dir(session) or Path(tempfile.mkdtemp(prefix="spikeviz-exports-"))


def source_stem(session: Session) -> str:
    """A safe file-name stem from the session's source ("session" when it has none)."""
    source = session.source or session.sorting.source or ""
    stem = Path(source).stem if source and not Path(source).is_dir() else Path(source).name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return stem[:80] or "session"


def unique_path(folder: Path, name: str, also: tuple[str, ...] = ()) -> Path:
    """``folder/name``, or with ``_2``, ``_3``, ... before the suffix when that exists (or when
    the same stem with one of the suffixes ``also`` exists, e.g. a folder's zip)."""
    base = Path(name)
    stem, suffix = (base.name, "") if not base.suffix else (base.stem, base.suffix)
    for i in range(1, 10_000):
        candidate = f"{stem}{'' if i == 1 else f'_{i}'}"
        path = folder / f"{candidate}{suffix}"
        if not path.exists() and not any((folder / f"{candidate}{s}").exists() for s in also):
            return path
    raise InputError("too many exports with this name; clear the folder", path=folder / name)


def inside(folder: Path, path: Path) -> bool:
    folder, path = Path(folder).resolve(), Path(path).resolve()
    return path == folder or folder in path.parents


# -- NWB metadata from the form ----------------------------------------------------------------
def electrode_groups(session: Session) -> list[str]:
    """Names of the electrode groups the NWB writer makes for ``session``."""
    from ..io.nwb_write import _channel_ids
    from ..io.nwb_write_electrodes import channel_groups, source_electrodes

    ids = _channel_ids(session)
    if ids is None:
        return []
    names = channel_groups(session, ids, {"ElectrodeGroup": []}, source_electrodes(session, ids))
    return list(dict.fromkeys(names))


def nwb_metadata(form: Mapping, groups: list[str] | None = None) -> dict:
    """The neuroconv-shaped metadata dict from the form's flat values (empty ones left out),
    validated with :func:`spikeviz.io.nwb_write_metadata.validate_metadata` (InputError
    naming the field otherwise). ``session_start_time`` is a timezone-aware datetime or an
    ISO 8601 string; ``experimenter`` may hold several names separated by ``;``;
    ``location`` (brain area, e.g. an Allen CCF acronym) is given to every electrode group of
    ``groups``."""
    from ..io.nwb_write_metadata import validate_metadata

    def text(key):
        value = form.get(key)
        if value is None:
            return None
        value = str(value).strip() if not hasattr(value, "isoformat") else value
        return value or None

    nwbfile, subject = {}, {}
    for key in ("session_description", "institution", "lab", "session_start_time"):
        if (value := text(key)) is not None:
            nwbfile[key] = value
    if (names := text("experimenter")) is not None:
        nwbfile["experimenter"] = [n.strip() for n in names.split(";") if n.strip()]
    for key in ("subject_id", "species", "sex", "age"):
        if (value := text(key)) is not None:
            subject[key] = value
    metadata = {"NWBFile": nwbfile}
    if subject:
        metadata["Subject"] = subject
    if (location := text("location")) is not None and groups:
        metadata["Ecephys"] = {"ElectrodeGroup": [{"name": g, "location": location}
                                                  for g in groups]}
    with warnings.catch_warnings():  # a missing start time is said by the panel itself
        warnings.simplefilter("ignore", UserWarning)
        validate_metadata(metadata)
    return metadata


# -- the jobs ----------------------------------------------------------------------------------
def run_export(kind: str, session: Session, curation: Curation, output_dir: str | Path,
               options: Mapping | None = None, progress: Progress = None,
               views: Mapping | None = None, curated: Session | None = None) -> ExportResult:
    """Write one export of the current curated session under ``output_dir``.

    ``kind``: one of :data:`KINDS`. ``options``: ``metadata`` (the NWB form's values, see
    :func:`nwb_metadata`), ``include_recording`` (NWB), ``style`` / ``time_unit`` (HDF5),
    ``compute`` (compute the results of curated units that do not have them yet: merged/split
    units, see :func:`seed_curated`; default True),
    ``view`` (the name of the view in ``views`` for ``view_html``/``view_png``/
    ``view_svg``).
    ``progress(step, fraction)`` is called as the work advances, ``("done", 1.0)`` last.
    """
    if kind not in KINDS:
        raise InputError(f"unknown export {kind!r}; expected one of {', '.join(KINDS)}",
                         field="kind")
    options = dict(options or {})
    folder = Path(output_dir)
    if not folder.is_dir():
        raise InputError("the output folder does not exist", path=folder)
    report = progress or (lambda step, fraction: None)
    with _JOB_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        report("start", 0.0)
        if curated is None:
            curated = curated_session(session, curation)
        if kind in SEEDED:
            for note in seed_curated(session, curation, curated,
                                     bool(options.get("compute", True)), report):
                warnings.warn(note, stacklevel=1)
        result = _WRITERS[kind](session, curation, curated, folder, options, report, views)
        if not inside(folder, result.path) or not inside(folder, result.download):
            raise RuntimeError(f"an export escaped its folder: {result.path}")
        report("done", 1.0)
    result.warnings = list(dict.fromkeys(str(w.message) for w in caught))
    return result


def _nwb(session, curation, curated, folder, options, report, views) -> ExportResult:
    from ..export import to_nwb

    metadata = nwb_metadata(options.get("metadata") or {}, electrode_groups(curated))
    path = unique_path(folder, f"{source_stem(session)}_curated.nwb")
    to_nwb(curated, path, metadata=metadata,
           include_recording=bool(options.get("include_recording")) and
           curated.recording is not None,
           compute=False, progress=report)
    return ExportResult("nwb", path, path, f"NWB file of {curated.sorting.num_units} units")


def _hdf5(session, curation, curated, folder, options, report, views) -> ExportResult:
    from ..export import to_hdf5

    style = options.get("style", "ragged")
    time_unit = options.get("time_unit", "s")
    if style not in HDF5_STYLES:
        raise InputError(f"style must be one of {', '.join(HDF5_STYLES)}", field="style")
    if time_unit not in TIME_UNITS:
        raise InputError(f"time unit must be one of {', '.join(TIME_UNITS)}", field="time_unit")
    path = unique_path(folder, f"{source_stem(session)}_curated.h5")
    to_hdf5(curated, path, style=style, time_unit=time_unit,
            compute=False, progress=report)
    return ExportResult("hdf5", path, path, f"HDF5 file ({style}, times in {time_unit})")


def _phy(session, curation, curated, folder, options, report, views) -> ExportResult:
    from ..export import to_phy

    path = unique_path(folder, f"{source_stem(session)}_curated_phy", also=(".zip",))
    zip_path = path.with_name(path.name + ".zip")

    def scaled(step, fraction):  # the folder is 90 % of the work, its zip the rest
        report(step, 0.9 * fraction)

    to_phy(curated, path, raw=options.get("raw", "link"), compute=False, progress=scaled)
    if curated.recording is not None and not (path / "pc_features.npy").exists():
        warnings.warn("Phy folder without pc_features.npy: principal components are written "
                      "only when known for every unit (no merge/split since the session's "
                      "were computed); an export does not compute them. Phy's feature view "
                      "stays empty; recompute them in Phy or SpikeInterface if needed",
                      stacklevel=1)
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        with atomic_file(zip_path, suffix=".zip") as tmp, \
                zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for i, file in enumerate(files):
                archive.write(file, Path(path.name) / file.relative_to(path))
                report("zip", 0.9 + 0.1 * (i + 1) / max(len(files), 1))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)  # the job failed: leave nothing behind
        raise
    return ExportResult("phy", path, zip_path, "Phy folder (download: zip)")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _curation(session, curation, curated, folder, options, report, views) -> ExportResult:
    try:
        document = curation.to_spikeinterface_curation()
        how = "one curation dict"
    except InputError:
        document = curation.to_spikeinterface_curation_steps()
        how = f"{len(document)} sequential steps (apply_curation(sorting, steps))"
    text = json.dumps(document, indent=2, default=_json_default)
    path = unique_path(folder, f"{source_stem(session)}_curation.json")
    with atomic_file(path, suffix=".json") as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return ExportResult("curation", path, path,
                        f"SpikeInterface curation format v2: {how}")


def _metrics(session, curation, curated, folder, options, report, views,
             parquet=False) -> ExportResult:
    frame = unit_frame(session, curation)
    report("metrics", 0.5)
    if parquet:
        engine = parquet_engine()
        if engine is None:
            raise InputError("Parquet needs pyarrow or fastparquet, and neither is installed "
                             "on the server (pip install pyarrow); export CSV instead",
                             field="format")
        path = unique_path(folder, f"{source_stem(session)}_curated_units.parquet")
        with atomic_file(path, suffix=".parquet") as tmp:
            frame.to_parquet(tmp, engine=engine)
    else:
        path = unique_path(folder, f"{source_stem(session)}_curated_units.csv")
        with atomic_file(path, suffix=".csv") as tmp:
            frame.to_csv(tmp)
    return ExportResult("metrics", path, path,
                        f"unit table of {len(frame)} units, {len(frame.columns)} columns")


def _metrics_parquet(*args) -> ExportResult:
    return _metrics(*args, parquet=True)


def _view_writer(name: str):
    def write(*args) -> ExportResult:
        from . import export_views

        return getattr(export_views, name)(*args)
    return write


_WRITERS = {"nwb": _nwb, "hdf5": _hdf5, "phy": _phy, "curation": _curation,
            "metrics_csv": _metrics, "metrics_parquet": _metrics_parquet,
            "view_html": _view_writer("view_html"), "view_png": _view_writer("view_png"),
            "view_svg": _view_writer("view_svg")}
