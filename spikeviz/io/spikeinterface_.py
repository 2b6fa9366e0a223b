"""SpikeInterface adapters, both ways, and a reader for what SpikeInterface opens.

SpikeInterface is optional: it is imported inside the functions, and without it every entry
point raises :class:`SpikeInterfaceMissing` (an ``InputError`` and an ``ImportError``) saying
what to install.

- :func:`from_spikeinterface`: ``BaseRecording`` -> :class:`~spikeviz.model.Recording` (lazy:
  each ``traces()`` window is one ``get_traces`` call, raw values; gains/offsets from the
  ``gain_to_uV``/``offset_to_uV`` properties), ``BaseSorting`` -> :class:`~spikeviz.model.Sorting`
  (from the spike vector; unit properties become unit-table columns, ``quality`` becomes the
  lower-case ``label``), ``SortingAnalyzer`` -> :class:`~spikeviz.model.Session` reusing its
  computed extensions (see :mod:`spikeviz.io.spikeinterface_analyzer`).
- :func:`to_spikeinterface`: the reverse (see :mod:`spikeviz.io.spikeinterface_export`).
- ``sniff``/``read_session``/``read_recording``: folders and files SpikeInterface (neo) reads
  and the native readers do not: SpikeGLX run folders, Open Ephys folders, Intan ``.rhd`` /
  ``.rhs``, folders saved by SpikeInterface (``recording.save(folder=...)``, sortings,
  SortingAnalyzer folders) and ``.zarr``.

Multi-segment objects: one segment is one spikeviz object; pass ``segment_index`` (otherwise
a multi-segment object is refused with a message saying so).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import weakref
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Recording, Session, Sorting

FORMAT = "spikeinterface"

INSTALL_HINT = ("SpikeInterface is not installed; install it with "
                "`pip install spikeviz[spikeinterface]` (or `pip install spikeinterface`)")

_INTAN_SUFFIXES = (".rhd", ".rhs")
_SI_FOLDER_FILES = ("si_folder.json", "spikeinterface_info.json", "binary.json",
                    "provenance.json")


class SpikeInterfaceMissing(InputError, ImportError):
    """SpikeInterface is needed and not installed."""


def require_spikeinterface():
    """The ``spikeinterface`` package, or :class:`SpikeInterfaceMissing`."""
    try:
        import spikeinterface
        import spikeinterface.core
    except ImportError:
        raise SpikeInterfaceMissing(INSTALL_HINT) from None
    return spikeinterface


# -- segments -------------------------------------------------------------------------------
def _segment(obj, segment_index, what: str) -> int:
    n = obj.get_num_segments()
    if segment_index is None:
        if n != 1:
            raise InputError(f"this SpikeInterface {what} has {n} segments; spikeviz works on "
                             f"one: pass segment_index=0..{n - 1} (or concatenate them in "
                             f"SpikeInterface with si.concatenate_{what}s)",
                             field="segment_index")
        return 0
    if isinstance(segment_index, bool) or not isinstance(segment_index, int | np.integer) \
            or not 0 <= int(segment_index) < n:
        raise InputError(f"segment_index must be an integer in [0, {n}), got {segment_index!r}",
                         field="segment_index")
    return int(segment_index)


# -- ids --------------------------------------------------------------------------------------
def _ids(values, field: str) -> np.ndarray:
    """SpikeInterface ids as int64 or str (never object)."""
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind in "US":
        return values.astype(str)
    if values.dtype.kind == "O" and all(isinstance(v, str) for v in values):
        return values.astype(str)
    if values.dtype.kind == "O" and all(isinstance(v, int | np.integer) for v in values):
        return values.astype(np.int64)
    raise InputError(f"ids must be integers or strings, got dtype {values.dtype}", field=field)


# -- recordings -----------------------------------------------------------------------------
_MEMORY_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _memory_id(recording) -> str:
    """A random id per in-memory SpikeInterface object (the same object, the same id)."""
    try:
        return _MEMORY_IDS.setdefault(recording, "memory-" + uuid.uuid4().hex)
    except TypeError:
        return "memory-" + uuid.uuid4().hex


def _fingerprint_of(recording) -> str:
    """What identifies a SpikeInterface recording's traces: its JSON description plus the size
    and modification time of the files it names; a random id per object when it cannot be
    described (in-memory data: never matches a disk-cache entry of another process)."""
    try:
        if not recording.check_serializability("json"):
            return _memory_id(recording)
        description = recording.to_dict(include_annotations=False, include_properties=False,
                                        recursive=True)
    except Exception:  # any failure to describe it means "not describable"
        return _memory_id(recording)
    files: list = []

    def visit(value) -> None:
        if isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, list | tuple):
            for v in value:
                visit(v)
        elif isinstance(value, str | Path) and len(str(value)) < 4096 and os.path.exists(value):
            path = Path(value)
            found = [path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                          if p.is_file())[:2000]
            for p in found:
                stat = p.stat()
                files.append([str(p.resolve()), stat.st_size, stat.st_mtime_ns])

    visit(description)
    text = json.dumps({"si": description, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class SpikeInterfaceTraces:
    """A Recording backend over one segment of a SpikeInterface recording: indexing
    ``[sample_slice, columns]`` calls ``get_traces(start_frame, end_frame, channel_ids,
    return_in_uV=False)`` for that window only."""

    def __init__(self, recording, segment_index: int):
        self.recording = recording
        self.segment_index = int(segment_index)
        self.shape = (int(recording.get_num_samples(segment_index=self.segment_index)),
                      int(recording.get_num_channels()))
        self.dtype = np.dtype(recording.get_dtype())
        self._channel_ids = np.asarray(recording.channel_ids)
        self._fingerprint = None

    def __getitem__(self, key):
        rows, columns = key
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise IndexError("only contiguous sample windows are read")
        ids = None if isinstance(columns, slice) and columns == slice(None) else \
            self._channel_ids[columns]
        traces = self.recording.get_traces(segment_index=self.segment_index, start_frame=start,
                                           end_frame=max(stop, start), channel_ids=ids,
                                           return_in_uV=False)
        return np.asarray(traces)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = f"{_fingerprint_of(self.recording)}:{self.segment_index}"
        return self._fingerprint


def recording_from_si(recording, segment_index=None, sampling_frequency=None,
                      source: str = "") -> Recording:
    """A lazy :class:`Recording` over one segment of a SpikeInterface ``BaseRecording``.

    Gains/offsets to µV come from the ``gain_to_uV``/``offset_to_uV`` channel properties
    (``gain_known=False`` and gain 1 when absent); locations (µm, x/y of the probe's contacts;
    y/z dropped for 3-D probes: x and y are kept) from the attached probe; groups from the
    ``group`` property when integer; ``is_filtered`` from the recording's annotation.
    ``sampling_frequency`` (Hz) overrides the recording's rate when given.
    """
    segment_index = _segment(recording, segment_index, "recording")
    channel_ids = _ids(recording.channel_ids, "channel_ids")
    n = channel_ids.size
    scaleable = recording.has_scaleable_traces()
    gains = np.asarray(recording.get_channel_gains(), np.float64) if scaleable else 1.0
    offsets = np.asarray(recording.get_channel_offsets(), np.float64) if scaleable else 0.0
    locations = None
    if recording.has_probe():
        locations = np.asarray(recording.get_channel_locations(axes="xy"), np.float64)
    groups = recording.get_property("group")
    if groups is not None:
        groups = np.asarray(groups)
        groups = groups.astype(np.int64) if groups.dtype.kind in "iu" and groups.shape == (n,) \
            else None
    rate = recording.get_sampling_frequency() if sampling_frequency is None \
        else sampling_frequency
    return Recording(SpikeInterfaceTraces(recording, segment_index), rate,
                     channel_ids=channel_ids, channel_locations_um=locations,
                     channel_groups=groups, gains_to_uv=gains, offsets_to_uv=offsets,
                     gain_known=bool(scaleable), is_filtered=bool(recording.is_filtered()),
                     source=str(source))


# -- sortings -------------------------------------------------------------------------------
def _label_values(values) -> pd.Series:
    labels = pd.Series(np.asarray(values, dtype=object)).map(
        lambda v: v.strip().lower() if isinstance(v, str) and v.strip() else np.nan)
    return labels.astype(object)


def unit_table_from_properties(sorting, unit_ids: np.ndarray) -> pd.DataFrame:
    """Unit properties as columns (one row per unit): 1-D properties as they are, (units, k)
    properties as a column of length-k arrays; ``quality`` becomes ``label`` (lower-case,
    empty = unknown)."""
    columns = {}
    for key in sorting.get_property_keys():
        values = np.asarray(sorting.get_property(key))
        if values.ndim == 1:
            columns[key] = values
        else:
            columns[key] = pd.Series(list(values), dtype=object).to_numpy()
    if "quality" in columns:
        columns["label"] = _label_values(columns.pop("quality")).to_numpy()
    elif "label" in columns and np.asarray(columns["label"]).dtype.kind in "OUS":
        columns["label"] = _label_values(columns["label"]).to_numpy()
    return pd.DataFrame(columns, index=pd.Index(unit_ids, name="unit_id"))


def sorting_from_si(sorting, segment_index=None, sampling_frequency=None,
                    source: str = "") -> Sorting:
    """A :class:`Sorting` from one segment of a SpikeInterface ``BaseSorting``'s spike vector.

    Unit ids keep their type (integers as int64, strings as str); ``num_samples`` is the
    registered recording's length when the sorting has one.
    """
    segment_index = _segment(sorting, segment_index, "sorting")
    unit_ids = _ids(sorting.unit_ids, "unit_ids")
    spikes = sorting.to_spike_vector()
    if sorting.get_num_segments() > 1:
        spikes = spikes[spikes["segment_index"] == segment_index]
    num_samples = None
    if sorting.has_recording():
        num_samples = int(sorting.get_num_samples(segment_index=segment_index))
    rate = sorting.get_sampling_frequency() if sampling_frequency is None \
        else sampling_frequency
    return Sorting.from_arrays(spikes["sample_index"], spikes["unit_index"], rate,
                               unit_ids=unit_ids,
                               unit_table=unit_table_from_properties(sorting, unit_ids),
                               num_samples=num_samples, source=str(source))


# -- public entry points --------------------------------------------------------------------
def from_spikeinterface(obj, segment_index: int | None = None, load_recording: bool = True,
                        source: str = ""):
    """A SpikeInterface object as its spikeviz counterpart.

    ``BaseRecording`` -> :class:`Recording` (lazy), ``BaseSorting`` -> :class:`Sorting`,
    ``SortingAnalyzer`` -> :class:`Session` (with its recording when it has one and
    ``load_recording``; computed extensions reused, see
    :func:`spikeviz.io.spikeinterface_analyzer.session_from_analyzer`). ``segment_index``
    picks one segment of a multi-segment object (required for those).
    """
    require_spikeinterface()
    from spikeinterface.core import BaseRecording, BaseSorting, SortingAnalyzer

    if isinstance(obj, BaseRecording):
        return recording_from_si(obj, segment_index, source=source)
    if isinstance(obj, BaseSorting):
        return sorting_from_si(obj, segment_index, source=source)
    if isinstance(obj, SortingAnalyzer):
        from .spikeinterface_analyzer import session_from_analyzer
        return session_from_analyzer(obj, segment_index, load_recording=load_recording,
                                     source=source)
    raise InputError(f"expected a SpikeInterface BaseRecording, BaseSorting or "
                     f"SortingAnalyzer, got {type(obj).__name__}", field="obj")


def to_spikeinterface(obj):
    """A spikeviz object as its SpikeInterface counterpart (see
    :mod:`spikeviz.io.spikeinterface_export`): Recording -> lazy ``BaseRecording``, Sorting
    -> ``NumpySorting``, Session -> an in-memory ``SortingAnalyzer`` when it has a recording
    (no extension computed), else its ``BaseSorting``."""
    require_spikeinterface()
    from . import spikeinterface_export as export

    if isinstance(obj, Recording):
        return export.recording_to_si(obj)
    if isinstance(obj, Sorting):
        return export.sorting_to_si(obj)
    if isinstance(obj, Session):
        return export.session_to_si(obj)
    raise InputError(f"expected a spikeviz Recording, Sorting or Session, got "
                     f"{type(obj).__name__}", field="obj")


# -- reading paths --------------------------------------------------------------------------
def _spikeglx_folder(path: Path) -> bool:
    """A folder holding SpikeGLX .bin/.meta pairs, directly or one or two levels down."""
    for pattern in ("*.meta", "*/*.meta", "*/*/*.meta"):
        for meta in path.glob(pattern):
            if meta.with_suffix(".bin").is_file():
                return True
    return False


def _openephys_folder(path: Path) -> bool:
    for pattern in ("settings*.xml", "*/settings*.xml", "*/*/settings*.xml",
                    "structure.oebin", "*/structure.oebin", "*/*/structure.oebin",
                    "*/*/*/structure.oebin"):
        if next(path.glob(pattern), None) is not None:
            return True
    return False


def kind(path: Path) -> str | None:
    """What SpikeInterface would open ``path`` as: 'si', 'zarr', 'spikeglx', 'openephys',
    'intan', or None. Cheap: names and folder listings only."""
    path = Path(path)
    if path.is_file():
        return "intan" if path.suffix.lower() in _INTAN_SUFFIXES else None
    if not path.is_dir():
        return None
    if path.suffix == ".zarr" and ((path / ".zattrs").is_file() or (path / "zarr.json").is_file()):
        return "zarr"
    if any((path / name).is_file() for name in _SI_FOLDER_FILES):
        return "si"
    if _spikeglx_folder(path):
        return "spikeglx"
    if _openephys_folder(path):
        return "openephys"
    return None


def sniff(path: Path) -> bool:
    """True for what SpikeInterface opens and the native readers do not: SpikeGLX run folders,
    Open Ephys folders, Intan .rhd/.rhs files, SpikeInterface-saved folders and .zarr."""
    return kind(path) is not None


def _open(path: Path, stream_id=None, stream_name=None):
    """The SpikeInterface object behind ``path``."""
    require_spikeinterface()
    what = kind(path)
    if what is None:
        raise InputError("not something SpikeInterface reads here (expected a SpikeGLX or Open "
                         "Ephys folder, an Intan .rhd/.rhs file or a folder saved by "
                         "SpikeInterface)", path=path)
    try:
        if what in ("si", "zarr"):
            import spikeinterface as si
            return si.load(path)
        import spikeinterface.extractors as se
        reader = {"spikeglx": se.read_spikeglx, "openephys": se.read_openephys,
                  "intan": se.read_intan}[what]
        if stream_id is None and stream_name is None:
            stream_id = _default_stream(what, path)
        return reader(path, stream_id=stream_id, stream_name=stream_name)
    except InputError:
        raise
    except Exception as err:  # a reader's own failure, said of the path
        raise InputError(f"SpikeInterface could not read it as {what}: "
                         f"{type(err).__name__}: {err}", path=path) from None


def _default_stream(what: str, path: Path) -> str | None:
    """The stream to open when several exist: the first AP (SpikeGLX), the amplifier (Intan,
    stream '0'), else the only one; InputError listing them when the choice is not clear."""
    from spikeinterface.extractors import get_neo_streams

    names, ids = get_neo_streams(what, path)
    if len(ids) <= 1:
        return ids[0] if ids else None
    if what == "spikeglx":
        ap = [i for i in ids if str(i).endswith(".ap")]
        if ap:
            return ap[0]
    if what == "intan" and "0" in ids:
        return "0"
    raise InputError(f"{len(ids)} streams: {', '.join(map(str, ids))} "
                     f"({', '.join(map(str, names))}); pass stream_id=", path=path,
                     field="stream_id")


def read_recording(path: Path, sampling_frequency: float | None = None,
                   segment_index: int | None = None, stream_id=None, stream_name=None,
                   **_ignored) -> Recording:
    """Raw traces SpikeInterface opens (SpikeGLX/Open Ephys folder, Intan file, SI-saved
    recording folder) as a lazy Recording. ``stream_id``/``stream_name`` choose a stream
    (default: the first AP stream, Intan's amplifier stream); ``sampling_frequency`` (Hz)
    overrides the file's rate."""
    path = Path(path)
    require_spikeinterface()
    from spikeinterface.core import BaseRecording

    obj = _open(path, stream_id, stream_name)
    if not isinstance(obj, BaseRecording):
        raise InputError(f"holds a SpikeInterface {type(obj).__name__}, not raw traces",
                         path=path)
    return recording_from_si(obj, segment_index, sampling_frequency, source=str(path))


def read_session(path: Path, sampling_frequency: float | None = None,
                 load_recording: bool = True, segment_index: int | None = None,
                 stream_id=None, stream_name=None, **_ignored) -> Session:
    """A Session from what SpikeInterface opens at ``path``.

    A SortingAnalyzer folder gives its sorting, recording (unless ``load_recording=False``)
    and computed extensions; a saved sorting gives a Session without recording; raw traces
    (SpikeGLX, Open Ephys, Intan, a saved recording) give a Session with the recording and no
    units (pass a sorting to ``spikeviz.load`` with ``recording=`` to pair them).
    ``sampling_frequency`` (Hz) overrides a sorting's or a recording's rate.
    """
    path = Path(path)
    require_spikeinterface()
    from spikeinterface.core import BaseRecording, BaseSorting, SortingAnalyzer

    obj = _open(path, stream_id, stream_name)
    if isinstance(obj, SortingAnalyzer):
        from .spikeinterface_analyzer import session_from_analyzer
        return session_from_analyzer(obj, segment_index, load_recording=load_recording,
                                     source=str(path))
    if isinstance(obj, BaseSorting):
        sorting = sorting_from_si(obj, segment_index, sampling_frequency, source=str(path))
        return Session(sorting, source=str(path), format=FORMAT)
    if isinstance(obj, BaseRecording):
        recording = recording_from_si(obj, segment_index, sampling_frequency, source=str(path))
        sorting = Sorting.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int32),
                                      recording.sampling_frequency,
                                      unit_ids=np.zeros(0, np.int64),
                                      num_samples=recording.num_samples, source=str(path))
        return Session(sorting, recording=recording if load_recording else None,
                       source=str(path), format=FORMAT)
    raise InputError(f"holds a SpikeInterface {type(obj).__name__}; spikeviz reads recordings, "
                     f"sortings and SortingAnalyzers", path=path)
