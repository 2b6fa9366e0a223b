"""Write a session in the field's formats: ``sv.export.to_nwb``, ``to_phy``, ``to_hdf5``.

Each function takes a :class:`~spikeviz.Session` (or a bare :class:`~spikeviz.Sorting`), writes
atomically (a temporary name, then a rename: an error leaves nothing behind), refuses to replace
an existing destination unless ``overwrite=True`` and returns the path written.

Derived results (templates, quality metrics, amplitudes, PC features) are included when the
session already has them, in memory or in its disk cache; ``compute=True`` computes the missing
ones first (those that need traces only when there is a recording). ``progress(step, fraction)``
is called as the work advances (``spikeviz convert`` draws it as a bar).

The format modules hold the details: :mod:`spikeviz.io.nwb_write`, :mod:`spikeviz.io.phy_export`,
:mod:`spikeviz.io.hdf5_write`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from .atomic import check_target
from .errors import InputError
from .model import Session, Sorting

Progress = Callable[[str, float], None] | None


def _target(path, overwrite: bool) -> Path:
    """The destination, checked before any work (and before any warning about the content):
    it must not exist unless ``overwrite``, its folder must exist and be writable."""
    path = Path(path).expanduser().absolute()
    check_target(path, overwrite)
    return path


def _session(obj) -> Session:
    if isinstance(obj, Session):
        return obj
    if isinstance(obj, Sorting):
        return Session(obj, source=obj.source, cache_dir=None)
    raise InputError(f"expected a spikeviz Session or Sorting, got {type(obj).__name__}",
                     field="session")


def to_nwb(session, path, metadata: Mapping | str | Path | None = None,
           include_recording: bool = False, overwrite: bool = False, *, compute: bool = False,
           progress: Progress = None, **kwargs) -> Path:
    """Write an NWB file: metadata, device, electrodes with geometry, the Units table (spike
    times in s, labels, metrics, templates as waveform_mean/sd when available) and, with
    ``include_recording``, the raw traces as a compressed ElectricalSeries written chunk by
    chunk.

    ``metadata``: a dict shaped like neuroconv's (``NWBFile``, ``Subject``, ``Ecephys``) or the
    path of a YAML/JSON file holding one. Other keywords go to
    :func:`spikeviz.io.nwb_write.write_nwb` (``compression``, ``compression_level``,
    ``chunk_mb``).
    """
    from .io import nwb_write

    path = _target(path, overwrite)
    if isinstance(metadata, str | Path):
        metadata = nwb_write.load_metadata(metadata)
    return nwb_write.write_nwb(_session(session), path, metadata=metadata,
                               include_recording=include_recording, overwrite=overwrite,
                               compute=compute, progress=progress, **kwargs)


def to_phy(session, folder, overwrite: bool = False, *, raw: str | None = "link",
           compute: bool = False, progress: Progress = None, **kwargs) -> Path:
    """Write a Phy/KiloSort folder that phy and phylib open (templates, amplitudes, similar
    templates, whitening matrices, cluster_group.tsv, one cluster_<metric>.tsv per metric, PC
    features when computed). ``raw``: ``"link"`` points ``dat_path`` at the session's raw
    file, ``"copy"`` writes the traces into the folder, None leaves them out. A stale ``.phy/``
    cache in the folder is always removed."""
    from .io import phy_export

    folder = _target(folder, overwrite)
    return phy_export.write_phy(_session(session), folder, overwrite=overwrite, raw=raw,
                                compute=compute, progress=progress, **kwargs)


def to_hdf5(session, path, style: str = "ragged", time_unit: str = "s",
            overwrite: bool = False, *, compute: bool = False, progress: Progress = None,
            **kwargs) -> Path:
    """Write an HDF5 spike file in one of the four styles SpikeLab reads: ``ragged`` (flat
    spike_times + cumulative index), ``raster`` (units × bins counts; ``bin_ms``), ``group``
    (one dataset per unit) or ``paired`` (parallel unit and time arrays). ``time_unit``:
    ``"s"``, ``"ms"`` or ``"samples"``."""
    from .io import hdf5_write

    path = _target(path, overwrite)
    return hdf5_write.write_hdf5(_session(session), path, style=style, time_unit=time_unit,
                                 overwrite=overwrite, compute=compute, progress=progress,
                                 **kwargs)


FORMATS = {"nwb": to_nwb, "phy": to_phy, "hdf5": to_hdf5}
