"""Readers, one module per format, behind one small protocol.

A reader module defines:

- ``FORMAT``: its name (``"phy"``, ``"npz"``, ...);
- ``sniff(path) -> bool``: cheap check (names, suffixes, a few bytes) that it reads ``path``;
- ``read_session(path, sampling_frequency=None, **kwargs) -> Session``;
- optionally ``read_recording(path, **kwargs) -> Recording`` for raw-trace formats.

Modules are imported only when needed, and import their heavy dependencies inside functions.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ..errors import InputError
from ..model import Recording, Session

# Tried in this order by ``load``; the first whose sniff() accepts the path reads it. NWB files
# are HDF5 files too: "nwb" comes before "hdf5". "spikeinterface" (SpikeGLX/Open Ephys folders,
# Intan files, SpikeInterface-saved folders, opened through the optional SpikeInterface) comes
# last: KiloSort folders often sit beside the raw files it would claim.
READERS = ("phy", "nwb", "hdf5", "npz", "spikeglx", "binary", "spikeinterface")


# Module names that differ from the format name (``spikeinterface_`` would shadow the package).
_MODULES = {"spikeinterface": "spikeinterface_"}


def reader(name: str) -> ModuleType:
    """The reader module for format ``name``."""
    if name not in READERS:
        raise InputError(f"unknown format {name!r}; known formats: {', '.join(READERS)}",
                         field="format")
    return importlib.import_module(f"{__name__}.{_MODULES.get(name, name)}")


def detect_format(path: str | Path) -> str:
    """Name of the first reader that recognises ``path``; InputError if none does."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    for name in READERS:
        if reader(name).sniff(path):
            return name
    if path.suffix == ".meta":
        raise InputError("a SpikeGLX .meta without its .bin beside it (expected "
                         f"{path.with_suffix('.bin').name})", path=path)
    raise InputError("not a format spikeviz reads (expected a Phy/KiloSort folder, an NWB "
                     "file, an HDF5 spike file, a SpikeInterface .npz sorting, a SpikeGLX "
                     ".bin/.meta pair, a raw .dat/.bin/.raw file or, through SpikeInterface, a "
                     "SpikeGLX/Open Ephys folder or an Intan file)", path=path)


def read_recording(path: str | Path, format: str | None = None, **kwargs) -> Recording:
    """Open raw traces lazily (SpikeGLX .bin + .meta, or raw binary with its layout)."""
    name = format or detect_format(path)
    module = reader(name)
    if not hasattr(module, "read_recording"):
        raise InputError(f"format {name!r} holds no raw traces", path=path)
    return module.read_recording(Path(path), **kwargs)


def load(path: str | Path, sampling_frequency: float | None = None,
         recording: str | Path | Recording | None = None, format: str | None = None,
         **kwargs) -> Session:
    """Open a sorting (and its recording, when found or given) as a Session.

    ``sampling_frequency`` (Hz) is needed where the files do not say it (a Phy folder without
    params.py, raw binary). ``recording`` overrides any recording the source points to; a path
    is opened with :func:`read_recording` (with ``sampling_frequency``, else the sorting's
    rate, and the raw-layout keywords ``num_channels``, ``dtype``, ``offset``,
    ``gain_to_uv``). Other keyword arguments go to the sorting's reader.
    """
    path = Path(path)
    name = format or detect_format(path)
    module = reader(name)
    if recording is None:
        return module.read_session(path, sampling_frequency=sampling_frequency, **kwargs)
    raw_layout = {k: kwargs.pop(k) for k in _RAW_LAYOUT if k in kwargs}
    session = module.read_session(path, sampling_frequency=sampling_frequency,
                                  load_recording=False, **kwargs)
    if not isinstance(recording, Recording):
        recording = read_recording(
            recording, sampling_frequency=sampling_frequency or
            session.sorting.sampling_frequency, **raw_layout)
    attach = getattr(module, "with_recording", None)
    if attach is not None:
        return attach(session, recording)
    return Session(session.sorting, recording=recording, source=session.source,
                   format=session.format, results=session.results)


# Keywords that describe a raw recording's layout rather than a sorting.
_RAW_LAYOUT = ("num_channels", "dtype", "offset", "gain_to_uv", "offset_to_uv")
