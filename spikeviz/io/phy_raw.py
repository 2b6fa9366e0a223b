"""Raw data of an exported Phy folder (``raw``):

- ``"link"`` points ``dat_path`` at the recording's own file (relative to the folder) when it
  is a raw binary phy can read (memmap-backed: .dat/.bin, SpikeGLX), else warns and writes no
  raw. Linking a raw file that lies inside the folder being replaced is refused (it would be
  deleted).
- ``"copy"`` writes ``recording.dat`` in the stored dtype, all channels, chunk by chunk (any
  recording: memmap, h5py/NWB, in memory), reporting ``progress("raw", fraction)``.
- ``None``: no raw (``dat_path = ''``, which phylib reads as "no raw data").

``n_channels_dat``, ``dtype``, ``offset``, ``hp_filtered`` (the recording's ``is_filtered``)
and, when the gain is known and offsets are zero, ``gain_to_uv`` (read by
:mod:`spikeviz.io.phy`, ignored by phy) describe it in ``params.py``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import Session
from .phy_write import Progress, report

RAW_CHOICES = ("link", "copy", None)
RAW_FILE = "recording.dat"
RAW_CHUNK_BYTES = 32 * 2 ** 20


def raw_params(session: Session, folder: Path, raw, overwrite: bool) -> tuple[dict, bool]:
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
        params["dat_path"] = RAW_FILE
        return params, True
    backend = getattr(rec, "_backend", None)
    filename = getattr(backend, "filename", None)
    if not isinstance(backend, np.memmap) or not filename or \
            not backend.flags.c_contiguous or \
            os.path.getsize(filename) != int(backend.offset) + backend.nbytes:
        warnings.warn(f"raw='link' needs a recording stored as a raw binary file; "
                      f"{rec.source or 'this recording'} is not: no raw data linked (use "
                      f"raw='copy')", stacklevel=3)
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


def copy_raw(recording, path: Path, progress: Progress) -> None:
    """Write the recording's stored samples (all channels) to ``path`` chunk by chunk."""
    n = recording.num_samples
    step = max(1, RAW_CHUNK_BYTES // (recording.num_channels * recording.dtype.itemsize))
    with open(path, "wb") as f:
        for start in range(0, n, step):
            stop = min(start + step, n)
            np.ascontiguousarray(recording.traces(start, stop, scaled=False)).tofile(f)
            report(progress, "raw", stop / n)
