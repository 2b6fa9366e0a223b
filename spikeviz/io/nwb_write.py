"""Write a Session as an NWB file (pynwb/hdmf) that pynwb, nwbinspector and SpikeInterface's
NWB readers open.

What is written:

- NWBFile metadata and Subject from a neuroconv-shaped dict (see :mod:`.nwb_write_metadata`
  for the fields and the policy on missing / naive times).
- When the session knows its channels: a device (``Ecephys.Device``, default
  ``DeviceEcephys``), one electrode group per channel group (``Recording.channel_groups``,
  named ``str(group)``; one group ``ElectrodeGroup`` when there are none; descriptions and
  brain locations from ``Ecephys.ElectrodeGroup``, ``location`` "unknown" otherwise) and the
  electrodes table: ``location``, ``group``, ``group_name``, ``channel_name`` (the channel id
  as a string) and ``rel_x`` / ``rel_y``: the contact position on the probe in µm, as
  SpikeInterface/neuroconv write it (the brain coordinates ``x``/``y``/``z`` are not known and
  not written).
- The Units table (:mod:`.nwb_write_units`): spike times in seconds, ids, labels (``quality``),
  metrics and properties as described columns, waveforms in volts when templates are
  available (:func:`spikeviz.io._results.templates`; ``compute=True`` computes them).
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
from .nwb_write_metadata import (
    DEFAULT_DEVICE,
    DEFAULT_GROUP,
    load_metadata,
    validate_metadata,
)

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
    meta = validate_metadata(metadata, source=session.source)
    data_io = _data_io_factory(compression, compression_level, chunk_mb)
    if include_recording:
        from .nwb_write_recording import check_recording

        check_recording(session.recording)

    # Everything that can fail on the data is decided before the file is created.
    from ._results import templates as templates_of
    from ._results import unit_columns
    from .nwb_write_units import obs_intervals, unit_electrodes

    table = unit_columns(session, compute)
    channel_ids = _channel_ids(session)
    templates = None
    if channel_ids is not None:
        templates = templates_of(session, compute)
        if templates is None:  # none computed: those the source NWB file held, if any
            templates = session.results.get("nwb_templates")
    templates, template_rows = _aligned_templates(session, templates, channel_ids)
    groups = _channel_groups(session, channel_ids, meta["Ecephys"])
    sorting = session.sorting
    units_extra = {"intervals": obs_intervals(table, sorting.num_samples,
                                              sorting.sampling_frequency)}
    electrodes = unit_electrodes(table, channel_ids)
    if template_rows is not None:
        _warn_replaced_electrodes(electrodes, template_rows, sorting.num_units)
        electrodes = None
    units_extra["electrodes"] = electrodes

    if progress is not None:
        progress("nwb", 0.0)
    try:
        _write_file(session, path, overwrite, meta, channel_ids, groups, table, templates,
                    template_rows, units_extra, include_recording, data_io, chunk_mb, progress)
    except OSError as err:
        raise InputError(f"could not write the NWB file: {err}", path=path) from err
    return path


def _write_file(session, path, overwrite, meta, channel_ids, groups, table, templates,
                template_rows, units_extra, include_recording, data_io, chunk_mb,
                progress) -> None:
    recording = session.recording
    with atomic_file(path, overwrite=overwrite, suffix=".nwb") as tmp:
        nwbfile = _nwbfile(meta)
        electrodes = None
        if channel_ids is not None:
            electrodes = _electrodes(nwbfile, session, channel_ids, groups, meta["Ecephys"],
                                     include_recording)
        from .nwb_write_units import build_units

        nwbfile.units = build_units(
            session.sorting, table, data_io, templates=templates, electrode_rows=template_rows,
            electrodes_table=electrodes, format_name=session.format, **units_extra)
        if include_recording:
            from hdmf.common import DynamicTableRegion

            from .nwb_write_recording import electrical_series

            region = DynamicTableRegion(name="electrodes", table=electrodes,
                                        data=np.arange(len(channel_ids), dtype=np.int64),
                                        description="Every channel of the recording.")
            nwbfile.add_acquisition(electrical_series(
                recording, region, meta["Ecephys"]["ElectricalSeries"], data_io,
                chunk_mb=chunk_mb, progress=progress, source=session.source))
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


def _channel_groups(session: Session, channel_ids, ecephys: dict) -> list[str] | None:
    """Electrode-group name of every channel (validated against the metadata)."""
    if channel_ids is None:
        return None
    recording = session.recording
    given = [g["name"] for g in ecephys["ElectrodeGroup"]]
    if recording is None or recording.channel_groups is None:
        name = given[0] if len(given) == 1 else DEFAULT_GROUP
        names = [name] * len(channel_ids)
    else:
        names = [str(g) for g in recording.channel_groups.tolist()]
    unknown = [g for g in given if g not in set(names)]
    if unknown:
        raise InputError(f"electrode group(s) {unknown} match no channel group; the channels' "
                         f"groups are {sorted(set(names))}", field="Ecephys.ElectrodeGroup")
    return names


# -- building --------------------------------------------------------------------------------
def _nwbfile(meta: dict):
    from pynwb import NWBFile
    from pynwb.file import Subject

    nwbfile = NWBFile(**meta["NWBFile"])
    if meta["Subject"]:
        nwbfile.subject = Subject(**meta["Subject"])
    return nwbfile


def _devices(nwbfile, ecephys: dict) -> dict:
    devices = ecephys["Device"] or [{
        "name": DEFAULT_DEVICE,
        "description": "Extracellular recording probe (not described in the export metadata)."}]
    out = {}
    for entry in devices:
        entry = dict(entry)
        model = {k: entry.pop(k) for k in ("manufacturer", "model_name", "model_number")
                 if k in entry}
        if model:
            model_name = model.pop("model_name", f"{entry['name']} model")
            model = nwbfile.create_device_model(
                name=model_name, manufacturer=model.get("manufacturer", "unknown"),
                model_number=model.get("model_number"),
                description=f"Model of the device {entry['name']}.")
            entry["model"] = model
        out[entry["name"]] = nwbfile.create_device(**entry)
    return out


def _electrodes(nwbfile, session: Session, channel_ids, groups: list[str], ecephys: dict,
                include_recording: bool):
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb.ecephys import ElectrodesTable

    devices = _devices(nwbfile, ecephys)
    first_device = next(iter(devices.values()))
    given = {g["name"]: g for g in ecephys["ElectrodeGroup"]}
    group_objects = {}
    for name in dict.fromkeys(groups):
        entry = given.get(name, {})
        count = groups.count(name)
        group_objects[name] = nwbfile.create_electrode_group(
            name=name, location=entry.get("location", "unknown"),
            description=entry.get("description", f"Electrode group {name} ({count} channels)."),
            device=devices.get(entry.get("device"), first_device))
    n = len(channel_ids)
    columns = [
        VectorData(name="location", description="Brain area of the channel (its electrode "
                   "group's location; 'unknown' when not given).",
                   data=[group_objects[g].location for g in groups]),
        VectorData(name="group", description="Electrode group of the channel.",
                   data=[group_objects[g] for g in groups]),
        VectorData(name="group_name", description="Name of the channel's electrode group.",
                   data=list(groups)),
        VectorData(name="channel_name", description="Channel id in the source, as a string.",
                   data=[str(c) for c in np.asarray(channel_ids).tolist()]),
    ]
    locations = session.channel_locations_um
    if session.recording is not None:
        locations = session.recording.channel_locations_um
    if locations is not None and np.shape(locations)[0] == n:
        locations = np.asarray(locations, dtype=np.float64)
        for axis, name in enumerate(("rel_x", "rel_y", "rel_z")[:locations.shape[1]]):
            columns.append(VectorData(
                name=name, data=locations[:, axis],
                description=f"{name[-1]} position of the contact on the probe, in µm "
                            f"(NaN when unknown)."))
    if include_recording:
        from .nwb_write_recording import offsets_per_channel

        offsets = offsets_per_channel(session.recording)
        if offsets is not None:
            columns.append(VectorData(
                name="offset", data=offsets,
                description="Offset of the channel in volts, added after conversion."))
    table = ElectrodesTable(id=ElementIdentifiers(name="id", data=np.arange(n)),
                            columns=columns)
    nwbfile.electrodes = table
    return table


def _write(nwbfile, tmp: Path) -> None:
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(tmp), mode="w") as io:
        io.write(nwbfile)
