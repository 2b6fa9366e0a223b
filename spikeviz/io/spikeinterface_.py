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

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import Recording, Session, Sorting
from .spikeinterface_import import (
    SpikeInterfaceTraces,
    recording_from_si,
    sorting_from_si,
    unit_table_from_properties,
)

__all__ = ["FORMAT", "SpikeInterfaceMissing", "SpikeInterfaceTraces", "from_spikeinterface",
           "read_recording", "read_session", "recording_from_si", "sniff", "sorting_from_si",
           "to_spikeinterface", "unit_table_from_properties"]

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
    if what in ("si", "zarr"):
        _refuse_pickles(path)
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


def _refuse_pickles(path: Path) -> None:
    """SpikeInterface falls back to unpickling (``cached.pkl``, ``*.pickle``) when a folder
    has no JSON description, and a pickle runs code: spikeviz never opens a folder that holds
    one."""
    found = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                   if p.suffix.lower() in (".pkl", ".pickle"))
    if found:
        raise InputError(f"holds pickle files ({', '.join(found[:3])}"
                         f"{', ...' if len(found) > 3 else ''}), which can run code when "
                         f"loaded; spikeviz never unpickles data files. Re-save it with "
                         f"SpikeInterface from a JSON-serialisable object, or open it in "
                         f"Python and pass it to spikeviz.from_spikeinterface", path=path)


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
