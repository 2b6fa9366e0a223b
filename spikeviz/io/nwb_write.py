"""Write a Session as an NWB file (pynwb/hdmf) that pynwb, nwbinspector and SpikeInterface's
NWB readers open.

What is written:

- NWBFile metadata and Subject from a neuroconv-shaped dict (see :mod:`.nwb_write_metadata`
  for the fields and the policy on missing / naive times).
- When the session knows its channels: devices, electrode groups and the electrodes table
  (:mod:`.nwb_write_electrodes`: ``location``, ``group``, ``group_name``, ``channel_name``
  (the channel id as a string), ``rel_x`` / ``rel_y`` (the contact position on the probe in
  µm, as SpikeInterface/neuroconv write it); a session read from NWB also gets its source
  file's electrode groups, locations and other electrode columns back).
- The Units table (:mod:`.nwb_write_units`): spike times in seconds, ids, labels (``quality``),
  ``obs_intervals`` and ``electrodes`` (from the unit table's ``obs_intervals_s`` /
  ``electrodes`` when present, as the NWB reader gives them), metrics and properties as
  described columns, and ``waveform_mean`` / ``waveform_sd`` in volts from templates: those
  :func:`spikeviz.io._results.templates` gives (``compute=True`` computes them), else those
  read from the source NWB file (``results["nwb_templates"]``), provided they cover every
  unit on the session's channels (else a warning says why they are left out).
- With ``include_recording=True``: the traces as an ``ElectricalSeries`` in acquisition,
  written chunk by chunk, compressed (:mod:`.nwb_write_recording`).

Everything is validated before the file is created; the file is written under a temporary
name and renamed (nothing is left behind on any error).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_file
from ..errors import InputError
from ..model import Session
from .nwb_write_metadata import load_metadata, validate_metadata

__all__ = ["load_metadata", "validate_metadata", "write_nwb"]

COMPRESSIONS = ("gzip", "lzf", None)


def write_nwb(session: Session, path: str | Path, metadata: dict | None = None,
              include_recording: bool = False, overwrite: bool = False, compute: bool = False,
              progress: Callable[[str, float], None] | None = None,
              compression: str | None = "gzip", compression_level: int | None = 4,
              chunk_mb: float = 10.0) -> Path:
    """Write ``session`` to the NWB file ``path``; returns the path.

    ``metadata``: neuroconv-shaped dict (``NWBFile``, ``Subject``, ``Ecephys``), or the path
    of a YAML/JSON file holding one. ``compute``: compute templates and quality metrics when
    the session does not have them yet (default: include only what is available).
    ``compression``: ``"gzip"`` (level ``compression_level`` 0-9), ``"lzf"`` or None, applied
    to the raw traces, spike times and waveforms. ``chunk_mb``: HDF5 chunk size of the raw
    traces in MB. ``progress(step, fraction)`` is called as the file is written.
    """
    if not isinstance(session, Session):
        raise InputError(f"expected a spikeviz Session, got {type(session).__name__}",
                         field="session")
    path = Path(path)
    if isinstance(metadata, str | Path):
        metadata = load_metadata(metadata)
    meta = _validated(session, metadata)
    data_io = _data_io_factory(compression, compression_level, chunk_mb)
    if include_recording:
        from .nwb_write_recording import check_recording

        check_recording(session.recording)

    plan = _plan(session, meta, compute)  # everything that can fail, before any file exists
    if progress is not None:
        progress("nwb", 0.0)
    try:
        _write_file(session, path, overwrite, meta, plan, include_recording, data_io,
                    chunk_mb, progress)
    except OSError as err:
        raise InputError(f"could not write the NWB file: {err}", path=path) from err
    return path


def _validated(session: Session, metadata: dict | None) -> dict:
    """The user's metadata, completed from the source NWB file's session and subject facts
    (an NWB → NWB conversion keeps them; the user's values win). A source value the checks
    refuse (e.g. an age that is not ISO 8601) is dropped with a warning rather than blocking
    the export; the user's own values are never dropped."""
    source = session.results.get("nwb_metadata") if session.format == "nwb" else None
    if not isinstance(source, dict):
        return validate_metadata(metadata, source=session.source)
    given = metadata or {}
    if not isinstance(given, dict):
        return validate_metadata(metadata, source=session.source)
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in given.items()}
    taken = []
    for section in ("NWBFile", "Subject"):
        mine = merged.get(section)
        if mine is not None and not isinstance(mine, dict):
            return validate_metadata(metadata, source=session.source)
        values = dict(mine or {})
        for key, value in (source.get(section) or {}).items():
            if key not in values:
                values[key] = value
                taken.append(f"{section}.{key}")
        if values:
            merged[section] = values
    for _ in range(len(taken) + 1):
        try:
            return validate_metadata(merged, source=session.source)
        except InputError as err:
            if err.field not in taken:
                raise
            section, key = err.field.split(".", 1)
            del merged[section][key]
            taken.remove(err.field)
            warnings.warn(f"NWB export: the source file's {err.field} was left out: "
                          f"{err.message}", stacklevel=4)
    return validate_metadata(merged, source=session.source)


def start_time_s(session: Session) -> float:
    """Seconds from session_start_time to sample 0: the source NWB file's clock (its series'
    starting_time, which the reader subtracted), else 0. Writing it back keeps every spike at
    its original time in the file's clock."""
    base = session.results.get("nwb_time_base") if session.format == "nwb" else None
    t0 = (base or {}).get("t0_s", 0.0) if isinstance(base, dict) else 0.0
    return float(t0 or 0.0)


def _warn_unknown_mouse_locations(meta: dict, groups, source) -> None:
    """nwbinspector's DANDI checks want Allen CCF areas as mouse electrode locations; say so
    before writing 'unknown'."""
    subject = meta.get("Subject") or {}
    species = str(subject.get("species", "") or "")
    if groups is None or not (species.startswith("Mus musculus") or species.endswith("10090")):
        return
    if source is not None and "location" in source and \
            not source["location"].isin(["", "unknown"]).any():
        return
    located = {g["name"] for g in meta["Ecephys"]["ElectrodeGroup"] if g.get("location")}
    missing = sorted(set(groups) - located)
    if missing:
        warnings.warn(f"NWB export: the location of electrode group(s) {missing} is unknown; "
                      f"nwbinspector (DANDI) flags that for mouse data. Give "
                      f"metadata['Ecephys']['ElectrodeGroup'] = [{{'name': {missing[0]!r}, "
                      f"'location': <Allen CCF area, e.g. 'VISp'>, ...}}]", stacklevel=4)


def _plan(session: Session, meta: dict, compute: bool) -> dict:
    """What goes into the file, decided (and validated) from the session."""
    from ._results import templates as templates_of
    from ._results import unit_columns
    from .nwb_write_electrodes import channel_groups, source_electrodes
    from .nwb_write_units import obs_intervals, unit_electrodes, unit_groups

    sorting = session.sorting
    table = unit_columns(session, compute)
    channel_ids = _channel_ids(session)
    templates = None
    if channel_ids is not None:
        templates = templates_of(session, compute)
        if templates is None:  # none computed: those the source NWB file held, if any
            templates = session.results.get("nwb_templates")
    templates, template_rows = _aligned_templates(session, templates, channel_ids)
    source = source_electrodes(session, channel_ids)
    electrodes = unit_electrodes(table, channel_ids)
    if template_rows is not None:  # the waveforms' channels are the units' electrodes
        _warn_replaced_electrodes(electrodes, template_rows, sorting.num_units)
        electrodes = None
    groups = channel_groups(session, channel_ids, meta["Ecephys"], source)
    _warn_unknown_mouse_locations(meta, groups, source)
    t0_s = start_time_s(session)
    return {"table": table, "channel_ids": channel_ids, "source": source, "groups": groups,
            "unit_groups": unit_groups(table, groups),
            "templates": templates, "template_rows": template_rows, "electrodes": electrodes,
            "t0_s": t0_s,
            "intervals": obs_intervals(table, sorting.num_samples, sorting.sampling_frequency,
                                       t0_s)}


def _write_file(session, path, overwrite, meta, plan, include_recording, data_io, chunk_mb,
                progress) -> None:
    from .nwb_write_electrodes import build_electrodes
    from .nwb_write_units import build_units

    recording, channel_ids = session.recording, plan["channel_ids"]
    with atomic_file(path, overwrite=overwrite, suffix=".nwb") as tmp:
        nwbfile = _nwbfile(meta)
        electrodes = None
        if channel_ids is not None:
            electrodes = build_electrodes(nwbfile, session, channel_ids, plan["groups"],
                                          meta["Ecephys"], include_recording, plan["source"])
        nwbfile.units = build_units(
            session.sorting, plan["table"], data_io, templates=plan["templates"],
            electrode_rows=plan["template_rows"], electrodes_table=electrodes,
            format_name=session.format, intervals=plan["intervals"],
            electrodes=plan["electrodes"], groups=plan["unit_groups"],
            group_objects=nwbfile.electrode_groups, t0_s=plan["t0_s"])
        if include_recording:
            from hdmf.common import DynamicTableRegion

            from .nwb_write_recording import electrical_series

            region = DynamicTableRegion(name="electrodes", table=electrodes,
                                        data=np.arange(len(channel_ids), dtype=np.int64),
                                        description="Every channel of the recording.")
            nwbfile.add_acquisition(electrical_series(
                recording, region, meta["Ecephys"]["ElectricalSeries"], data_io,
                chunk_mb=chunk_mb, progress=progress, source=session.source,
                starting_time_s=plan["t0_s"]))
        _write(nwbfile, tmp)
        if progress is not None:  # before the rename: a failing callback leaves nothing
            progress("nwb", 1.0)


# -- preparation -----------------------------------------------------------------------------
def _data_io_factory(compression, level, chunk_mb: float) -> Callable:
    if compression is False:
        compression = None
    if compression not in COMPRESSIONS:
        raise InputError(f"compression must be 'gzip', 'lzf' or None, got {compression!r}",
                         field="compression")
    if compression == "gzip":
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise InputError(f"gzip compression_level must be an integer 0-9, got {level!r}",
                             field="compression_level")
    if isinstance(chunk_mb, bool) or not isinstance(chunk_mb, int | float) or \
            not np.isfinite(chunk_mb) or chunk_mb <= 0:
        raise InputError(f"chunk_mb must be a positive number of megabytes, got {chunk_mb!r}",
                         field="chunk_mb")

    def data_io(data):
        from hdmf.backends.hdf5.h5_utils import H5DataIO

        if compression is None:
            return data
        if getattr(data, "size", 1) == 0:
            return data
        options = {"compression_opts": level} if compression == "gzip" else {}
        return H5DataIO(data=data, compression=compression, shuffle=True, **options)

    return data_io


def _channel_ids(session: Session) -> np.ndarray | None:
    if session.recording is not None:
        return np.asarray(session.recording.channel_ids)
    if session.channel_ids is None:
        return None
    return np.asarray(session.channel_ids)


def _aligned_templates(session: Session, templates, channel_ids):
    """(templates with rows in the sorting's unit order, electrode rows of their channels:
    (K,) for every unit or (units, K) per unit), or (None, None) when they cannot be written
    (a warning says why). Sparse templates stay sparse when every unit has K real channels
    (K less than the number of electrodes, so that readers cannot take them for dense ones);
    padded sparse templates become dense, zero outside each unit's channels."""
    if templates is None or session.sorting.num_units == 0:
        return None, None
    why = None
    if getattr(templates, "units", "uV") != "uV":
        why = f"they are in {templates.units!r}, not µV (the recording's gain is unknown)"
    order = pd.Index(np.asarray(templates.unit_ids)).get_indexer(session.sorting.unit_ids)
    rows = pd.Index(np.asarray(channel_ids)).get_indexer(np.asarray(templates.channel_ids))
    if why is None and (order < 0).any():
        why = "they do not cover every unit"
    if why is None and (rows < 0).any():
        why = "their channels are not the session's channels"
    if why is not None:
        warnings.warn(f"NWB export: waveform_mean/waveform_sd left out: {why}", UserWarning,
                      stacklevel=3)
        return None, None
    from ..model.waveforms import Templates

    data = np.asarray(templates.data)[order]
    std = None if templates.std is None else np.asarray(templates.std)[order]
    sparse = templates.sparse_channel_indices
    if sparse is not None:
        sparse = np.asarray(sparse)[order]
        if (sparse >= 0).all() and sparse.shape[1] != len(channel_ids):
            rows = rows[sparse]  # (units, K): each unit's own electrodes
        else:
            data, std = _dense(data, sparse, rows.size), _dense(std, sparse, rows.size)
            sparse = None
    aligned = Templates(data, np.asarray(session.sorting.unit_ids),
                        np.asarray(templates.channel_ids), sparse_channel_indices=sparse,
                        std=std, nbefore=templates.nbefore,
                        sampling_frequency=templates.sampling_frequency)
    return aligned, rows


def _dense(values, sparse: np.ndarray, num_channels: int):
    """Sparse (units, samples, K) values on every channel, zero elsewhere (or None)."""
    if values is None:
        return None
    out = np.zeros((*values.shape[:2], num_channels), dtype=np.float32)
    for i, channels in enumerate(sparse):
        used = channels >= 0
        out[i][:, channels[used]] = values[i][:, used]
    return out


def _warn_replaced_electrodes(electrodes, template_rows, num_units: int) -> None:
    """The templates dictate the Units electrodes: say so when the unit table's differ."""
    if electrodes is None:
        return
    flat, ends = electrodes
    wanted = np.broadcast_to(template_rows, (num_units, np.shape(template_rows)[-1]))
    given = np.split(flat, ends[:-1])
    if any(not np.array_equal(g, w) for g, w in zip(given, wanted, strict=True)):
        warnings.warn("NWB export: the unit table's 'electrodes' are replaced by the channels "
                      "of waveform_mean (NWB ties the two together)", UserWarning, stacklevel=3)


# -- building --------------------------------------------------------------------------------
def _nwbfile(meta: dict):
    from pynwb import NWBFile
    from pynwb.file import Subject

    nwbfile = NWBFile(**meta["NWBFile"])
    if meta["Subject"]:
        nwbfile.subject = Subject(**meta["Subject"])
    return nwbfile


def _write(nwbfile, tmp: Path) -> None:
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(tmp), mode="w") as io:
        io.write(nwbfile)
