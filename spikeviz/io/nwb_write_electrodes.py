"""Devices, electrode groups and the electrodes table for :func:`spikeviz.io.nwb_write.write_nwb`.

- Device: ``Ecephys.Device`` entries, else one ``DeviceEcephys``.
- Groups: one electrode group per channel group. The group names are, first found: the
  source NWB file's (``results["nwb_electrodes"]``, see below) when they partition the
  channels as the recording's channel groups do; ``str(group)`` of ``Recording.channel_groups``;
  the single group given in the metadata; ``ElectrodeGroup``. Description, location and device
  come from ``Ecephys.ElectrodeGroup``; else the location is the most common location of the
  group's channels in the source file, else "unknown".
- Electrodes: ``location`` (the group's location when the metadata gives it, else the
  channel's own in the source file, else the group's), ``group``, ``group_name``,
  ``channel_name`` (the channel id as a string), ``rel_x``/``rel_y`` (the contact position on
  the probe in µm, as SpikeInterface/neuroconv write it) and, with the recording, ``offset``.

A session read from an NWB file carries that file's electrodes table in
``results["nwb_electrodes"]``. When it describes every channel of the session (e.g. the
recording's subset of its rows), its other one-value-per-channel columns (``x``/``y``/``z``
brain coordinates, ``imp``, ``filtering``, custom columns) are written back as they were
(columns of another kind are not); and when the session's
geometry came from ``x``/``y`` (the file had no ``rel_x``/``rel_y``) and still equals them,
no ``rel_x``/``rel_y`` are invented: brain coordinates stay brain coordinates.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from hdmf.common import ElementIdentifiers, VectorData

from ..errors import InputError
from ..model import Session
from .nwb_write_metadata import DEFAULT_DEVICE, DEFAULT_GROUP
from .nwb_write_units import column_values

# Columns written here from the session itself, and the reader's derived ones.
_OWN = ("location", "group", "group_name", "channel_name", "rel_x", "rel_y", "rel_z", "offset",
        "x_um", "y_um", "z_um", "id")
_DESCRIPTIONS = {
    "x": "x coordinate of the channel in the brain, in µm, as given by the source NWB file.",
    "y": "y coordinate of the channel in the brain, in µm, as given by the source NWB file.",
    "z": "z coordinate of the channel in the brain, in µm, as given by the source NWB file.",
    "imp": "Impedance of the channel, in ohms, as given by the source NWB file.",
    "filtering": "Description of hardware filtering, as given by the source NWB file.",
}


def source_electrodes(session: Session, channel_ids) -> pd.DataFrame | None:
    """The source NWB file's electrodes-table rows of ``channel_ids`` (in that order) when it
    describes every one of them, else None."""
    frame = session.results.get("nwb_electrodes")
    if channel_ids is None or not isinstance(frame, pd.DataFrame) or \
            not frame.index.is_unique:
        return None
    try:
        rows = frame.index.get_indexer(np.asarray(channel_ids))
    except (TypeError, ValueError):
        return None
    if len(rows) != len(channel_ids) or (rows < 0).any():
        return None
    return frame.iloc[rows]


def channel_groups(session: Session, channel_ids, ecephys: dict,
                   source: pd.DataFrame | None) -> list[str] | None:
    """Electrode-group name of every channel (validated against the metadata)."""
    if channel_ids is None:
        return None
    recording = session.recording
    given = [g["name"] for g in ecephys["ElectrodeGroup"]]
    own = None if recording is None else recording.channel_groups
    names = None
    if source is not None:
        column = "group" if "group" in source else "group_name" if "group_name" in source \
            else None
        if column is not None:
            names = [str(g) for g in source[column].tolist()]
            if own is not None and not _same_partition(names, own):
                names = None
    if names is None and own is not None:
        names = [str(g) for g in own.tolist()]
    if names is None:
        name = given[0] if len(given) == 1 else DEFAULT_GROUP
        names = [name] * len(channel_ids)
    unknown = [g for g in given if g not in set(names)]
    if unknown:
        raise InputError(f"electrode group(s) {unknown} match no channel group; the channels' "
                         f"groups are {sorted(set(names))}", field="Ecephys.ElectrodeGroup")
    return names


def _same_partition(a, b) -> bool:
    codes_a, codes_b = pd.factorize(pd.Series(a))[0], pd.factorize(pd.Series(list(b)))[0]
    return np.array_equal(codes_a, codes_b)


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


def _source_locations(source, n: int) -> list[str | None]:
    if source is None or "location" not in source:
        return [None] * n
    return [v if isinstance(v, str) and v.strip() else None for v in source["location"]]


def build_electrodes(nwbfile, session: Session, channel_ids, groups: list[str], ecephys: dict,
                     include_recording: bool, source: pd.DataFrame | None):
    """Devices, electrode groups and ``nwbfile.electrodes`` (returned)."""
    from pynwb.ecephys import ElectrodesTable

    devices = _devices(nwbfile, ecephys)
    first_device = next(iter(devices.values()))
    given = {g["name"]: g for g in ecephys["ElectrodeGroup"]}
    n = len(channel_ids)
    channel_locations = _source_locations(source, n)
    group_objects = {}
    for name in dict.fromkeys(groups):
        entry = given.get(name, {})
        count = groups.count(name)
        known = Counter(loc for g, loc in zip(groups, channel_locations, strict=True)
                        if g == name and loc is not None)
        location = entry.get("location") or (known.most_common(1)[0][0] if known else
                                              "unknown")
        group_objects[name] = nwbfile.create_electrode_group(
            name=name, location=location,
            description=entry.get("description", f"Electrode group {name} ({count} channels)."),
            device=devices.get(entry.get("device"), first_device))
    locations = [group_objects[g].location if "location" in given.get(g, {}) or loc is None
                 else loc for g, loc in zip(groups, channel_locations, strict=True)]
    columns = [
        VectorData(name="location", description="Brain area of the channel ('unknown' when "
                   "not given).", data=locations),
        VectorData(name="group", description="Electrode group of the channel.",
                   data=[group_objects[g] for g in groups]),
        VectorData(name="group_name", description="Name of the channel's electrode group.",
                   data=list(groups)),
        VectorData(name="channel_name", description="Channel id in the source, as a string.",
                   data=[str(c) for c in np.asarray(channel_ids).tolist()]),
    ]
    positions = session.channel_locations_um
    if session.recording is not None:
        positions = session.recording.channel_locations_um
    if positions is not None and np.shape(positions)[0] == n and \
            not _brain_coordinates(session, source, positions):
        positions = np.asarray(positions, dtype=np.float64)
        for axis, name in enumerate(("rel_x", "rel_y", "rel_z")[:positions.shape[1]]):
            columns.append(VectorData(
                name=name, data=positions[:, axis],
                description=f"{name[-1]} position of the contact on the probe, in µm "
                            f"(NaN when unknown)."))
    if include_recording:
        from .nwb_write_recording import offsets_per_channel

        offsets = offsets_per_channel(session.recording)
        if offsets is not None:
            columns.append(VectorData(
                name="offset", data=offsets,
                description="Offset of the channel in volts, added after conversion."))
    columns += _carried_columns(source)
    table = ElectrodesTable(id=ElementIdentifiers(name="id", data=np.arange(n)),
                            columns=columns)
    nwbfile.electrodes = table
    return table


def _brain_coordinates(session: Session, source, positions) -> bool:
    """True when the positions are the source file's x/y brain coordinates (no rel_x/rel_y
    there), which are then written back as x/y rather than relabelled."""
    if source is None or session.results.get("nwb_geometry_source") != "x/y":
        return False
    if "x" not in source or "y" not in source:
        return False
    positions = np.asarray(positions, dtype=np.float64)
    brain = source[["x", "y"]].to_numpy(dtype=np.float64)
    return positions.shape[1] == 2 and np.array_equal(positions, brain, equal_nan=True)


def _carried_columns(source: pd.DataFrame | None) -> list:
    """The source electrodes table's other one-value-per-channel columns, as they were."""
    if source is None:
        return []
    out = []
    for name in source.columns:
        key = str(name)
        if key in _OWN or "/" in key or not key or key.endswith("_index"):
            continue
        data = column_values(source[name])
        if data is None:
            continue
        description = _DESCRIPTIONS.get(key, f"Channel property {key!r} of the source NWB "
                                              f"file's electrodes table.")
        out.append(VectorData(name=key, description=description, data=data))
    return out
