"""NWB files (HDF5, NWB 2.0 and later) read with pynwb/hdmf, lazily.

What is read:

- a **Units** table (``nwbfile.units`` or one in a processing module; ``units_name`` picks one)
  → the Sorting: spike times, ids (``unit_name`` when present — int64 when every name is a
  canonical integer such as "12", as SpikeInterface writes integer ids, unless the column's
  description carries spikeviz's string-ids mark — else ``id``), every
  other column as a unit-table column (see :func:`spikeviz.io.nwb_read_tables.unit_table`:
  ``electrodes`` → per unit an array of channel ids, ``electrode_group`` → its name,
  ``obs_intervals`` → ``obs_intervals_s``, per unit (k, 2) seconds), a normalised ``label``
  (from ``label`` else ``quality``), and ``waveform_mean``/``waveform_sd`` as
  ``session.results["nwb_templates"]`` (Templates in µV, with std). The doubly ragged
  ``waveforms`` column is not read (``results["nwb_skipped_columns"]``);
- the **electrodes** table → channel ids (``channel_name`` when present, else ``id``),
  geometry in µm from ``rel_x``/``rel_y`` when present, else ``x``/``y`` (which one is said in
  ``results["nwb_geometry_source"]``), the whole table in ``results["nwb_electrodes"]``;
- an **ElectricalSeries** (acquisition or processing) → a lazy Recording over the HDF5
  dataset: only windows are ever read. µV per stored unit = ``conversion`` x
  ``channel_conversion`` x 1e6 (NWB stores volts), offset = ``offset`` x 1e6, or, when the
  series has none, an ``offset`` column of the electrodes table (volts, per channel; as
  SpikeInterface reads it). Channel groups: the ElectrodeGroup names when they are integers,
  else their order of appearance (``results["nwb_channel_groups"]`` lists the names).

Spike times (seconds on the NWB session clock) become samples as
``sample_index = round((t - t0_s) * fs)`` where ``fs`` is, first found: the
``sampling_frequency`` argument, the chosen ElectricalSeries' ``rate`` (or 1 / the median
interval of its first 100,000 timestamps), ``1 / resolution`` of the Units table; and ``t0_s``
is the chosen ElectricalSeries' ``starting_time`` (or first timestamp), else 0. The chosen
series sets the time base whether or not its traces are opened (``load_recording``), so sample
indices never depend on that flag. ``results["nwb_time_base"]`` says what was used.

Choosing the ElectricalSeries when ``electrical_series_name`` is not given: the only series in
``acquisition``; among several there, the one named like the raw stream (name containing
"raw", ending in "AP", or exactly "ElectricalSeries") when exactly one is, with a warning; else
an InputError listing them. Series in processing modules (LFP, filtered data) are used only
when named: a sorting is not timed against them by accident.

The file stays open (``NWBHDF5IO`` in read mode) as long as the returned Recording lives: the
Recording and the Session hold a reference to it. Without a recording, everything needed is
read into memory and the file is closed.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Recording, Session, Sorting
from . import nwb_read_series as series_io
from . import nwb_read_tables as tables

FORMAT = "nwb"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_RAW_NAME = re.compile(r"(?i)(raw|ap$|^electricalseries$)")


def sniff(path: Path) -> bool:
    """A ``.nwb`` file, or an HDF5 file whose root says it is NWB (attributes only)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() == ".nwb":
        return True
    return _nwb_version(path) is not None


def _nwb_version(path: Path) -> str | None:
    """The root ``nwb_version`` (or 'unknown' for an NWBFile root without it), else None."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != _HDF5_SIGNATURE:
                return None
        import h5py

        with h5py.File(path, "r") as f:
            version = f.attrs.get("nwb_version")
            kind = f.attrs.get("neurodata_type")
            if version is None and isinstance(f.get("nwb_version"), h5py.Dataset):
                return "1.x"  # NWB 1 kept its version in a root dataset
    except (OSError, ValueError):
        return None
    if version is not None:
        return version.decode() if isinstance(version, bytes) else str(version)
    if kind in ("NWBFile", b"NWBFile"):
        return "unknown"
    return None


def _open(path: Path):
    """(NWBHDF5IO, NWBFile) opened read-only; InputError when it is not a readable NWB file."""
    if not path.is_file():
        raise InputError("no such file; an NWB file was expected", path=path)
    version = _nwb_version(path)
    if version is None:
        raise InputError("not an NWB file: expected an HDF5 file whose root has an "
                         "'nwb_version' attribute", path=path, field="nwb_version")
    if version == "1.x":
        raise InputError("an NWB 1.x file; only NWB 2.0 and later can be read", path=path,
                         field="nwb_version")
    from pynwb import NWBHDF5IO

    io = None
    try:
        with warnings.catch_warnings():
            # pynwb's complaints about unrelated objects (e.g. an OpticalSeries) are noise here
            warnings.simplefilter("ignore", UserWarning)
            io = NWBHDF5IO(str(path), "r", load_namespaces=True)
            nwbfile = io.read()
    except Exception as err:  # pynwb/hdmf raise many kinds on malformed files
        if io is not None:
            io.close()
        raise InputError(f"pynwb cannot read this NWB file ({type(err).__name__}: {err})",
                         path=path) from None
    return io, nwbfile


def _location(obj) -> str:
    """HDF5 path of a container (``/acquisition/ElectricalSeries``, ``/units``)."""
    for dataset in (getattr(obj, "data", None), getattr(getattr(obj, "id", None), "data", None)):
        name = getattr(dataset, "name", None)  # an h5py.Dataset's path in the file
        if isinstance(name, str) and name.startswith("/"):
            return name.rsplit("/", 1)[0]
    parts = []
    while obj is not None and getattr(obj, "parent", None) is not None:
        parts.append(obj.name)
        obj = obj.parent
    return "/" + "/".join(reversed(parts))


def _find(nwbfile, kind: str) -> list[tuple[str, object]]:
    """(path, object) of every Units table or ElectricalSeries in the file, sorted by path."""
    from pynwb.ecephys import ElectricalSeries, SpikeEventSeries
    from pynwb.misc import Units

    cls = Units if kind == "Units" else ElectricalSeries
    found = [(_location(o), o) for o in nwbfile.objects.values()
             if isinstance(o, cls) and not isinstance(o, SpikeEventSeries)]
    return sorted(found, key=lambda item: item[0])


def _by_name(found, name: str, path: Path, what: str, field: str):
    key = name.strip("/")
    hits = [(p, o) for p, o in found if o.name == name or p.strip("/") == key]
    listing = ", ".join(p for p, _ in found) or "none"
    if not hits:
        raise InputError(f"no {what} named {name!r}; the file has: {listing}", path=path,
                         field=field)
    if len(hits) > 1:
        raise InputError(f"several {what}s are named {name!r} ({', '.join(p for p, _ in hits)});"
                         f" pass the full path", path=path, field=field)
    return hits[0]


def _choose_units(nwbfile, path: Path, units_name: str | None):
    found = _find(nwbfile, "Units")
    if units_name is not None:
        return _by_name(found, units_name, path, "Units table", "units_name")
    if not found:
        raise InputError("no Units table: an NWB sorting stores its spike times in a Units "
                         "table (nwbfile.units or a Units in a processing module)", path=path,
                         field="units")
    if len(found) > 1:
        raise InputError(f"several Units tables ({', '.join(p for p, _ in found)}); choose one "
                         f"with units_name=", path=path, field="units_name")
    return found[0]


def _choose_series(nwbfile, path: Path, name: str | None, required: bool):
    """(path, ElectricalSeries) per the rule in the module docstring, or (None, None)."""
    found = _find(nwbfile, "ElectricalSeries")
    if name is not None:
        return _by_name(found, name, path, "ElectricalSeries", "electrical_series_name")
    acquired = [(p, o) for p, o in found if p.startswith("/acquisition/")]
    if len(acquired) == 1:
        return acquired[0]
    if len(acquired) > 1:
        raw = [(p, o) for p, o in acquired if _RAW_NAME.search(o.name)]
        if len(raw) == 1:
            others = ", ".join(p for p, _ in acquired if p != raw[0][0])
            warnings.warn(f"{path}: using ElectricalSeries {raw[0][0]} (named like the raw "
                          f"stream; also in the file: {others}); pass electrical_series_name= "
                          f"to choose another", stacklevel=3)
            return raw[0]
        raise InputError(f"several ElectricalSeries in acquisition "
                         f"({', '.join(p for p, _ in acquired)}); choose one with "
                         f"electrical_series_name=", path=path, field="electrical_series_name")
    if required:
        listing = ", ".join(p for p, _ in found)
        raise InputError("no ElectricalSeries in acquisition" + (
            f"; series in processing modules are used only when named: {listing}" if found
            else "; the file holds no raw traces"), path=path, field="ElectricalSeries")
    return None, None


# -- time base --------------------------------------------------------------------------------
def _time_base(sampling_frequency, units, clock, path: Path, units_where: str) -> dict:
    if sampling_frequency is not None:
        fs, how = float(sampling_frequency), "argument"
        if not np.isfinite(fs) or fs <= 0:
            raise InputError(f"sampling_frequency must be a positive number of Hz, got "
                             f"{sampling_frequency}", path=path, field="sampling_frequency")
    elif clock is not None:
        fs, how = clock[0], clock[2]
    else:
        resolution = getattr(units, "resolution", None)
        if resolution is None or not np.isfinite(resolution) or resolution <= 0:
            raise InputError("spike times are in seconds and the file gives no sampling rate "
                             "(no ElectricalSeries, no Units 'resolution'): pass "
                             "sampling_frequency= (Hz; --sampling-frequency on the command "
                             "line)", path=path, field=f"{units_where}/resolution")
        fs, how = 1.0 / float(resolution), f"1 / {units_where} resolution"
    t0 = clock[1] if clock is not None else 0.0
    return {"sampling_frequency": fs, "frequency_from": how, "t0_s": t0,
            "t0_from": "ElectricalSeries start" if clock is not None else "0 (no recording)"}


def _to_samples(times_s, bounds, ids, base: dict, path: Path, field: str) -> np.ndarray:
    """round((t - t0_s) * fs) as int64, computed in place in ``times_s`` (which is consumed)."""
    fs, t0 = base["sampling_frequency"], base["t0_s"]
    if times_s.size:
        i = int(np.argmin(times_s))
        if np.round((times_s[i] - t0) * fs) < 0:
            unit = ids[int(np.searchsorted(bounds, i, side="right")) - 1].item()
            raise InputError(f"spike at {times_s[i]:.6f} s (unit {unit!r}) lies before the "
                             f"recording starts ({t0:.6f} s); sample indices must be >= 0",
                             path=path, field=field)
    np.subtract(times_s, t0, out=times_s)
    np.multiply(times_s, fs, out=times_s)
    np.rint(times_s, out=times_s)
    return times_s.astype(np.int64)


# -- entry points -----------------------------------------------------------------------------
def _electrodes(nwbfile, path: Path, results: dict) -> pd.DataFrame | None:
    if nwbfile.electrodes is None:
        return None
    frame, source = tables.read_electrodes(nwbfile.electrodes, path)
    results["nwb_electrodes"] = frame
    results["nwb_geometry_source"] = source
    column = "group" if "group" in frame else "group_name" if "group_name" in frame else None
    if column is not None:
        results["nwb_channel_groups"] = list(pd.unique(frame[column].astype(str)))
    return frame


def read_recording(path: str | Path, electrical_series_name: str | None = None,
                   sampling_frequency: float | None = None, **_ignored) -> Recording:
    """The ElectricalSeries ``electrical_series_name`` (or the one chosen as in the module
    docstring) as a lazy Recording; the file stays open while the Recording lives."""
    path = Path(path)
    io, nwbfile = _open(path)
    try:
        where, series = _choose_series(nwbfile, path, electrical_series_name, required=True)
        electrodes = _electrodes(nwbfile, path, {})
        clock = series_io.series_clock(series, where, path)
        recording = series_io.recording(series, where, electrodes, clock, path,
                                        sampling_frequency)
    except BaseException:
        io.close()
        raise
    recording._nwb_io = io  # keeps the HDF5 file open as long as the traces are needed
    return recording


def read_session(path: str | Path, sampling_frequency: float | None = None,
                 units_name: str | None = None, electrical_series_name: str | None = None,
                 load_recording: bool = True, **_ignored) -> Session:
    """An NWB file as a Session: its Units table, electrodes and (when ``load_recording``) the
    chosen ElectricalSeries as a lazy Recording. See the module docstring for the choices and
    the seconds → samples convention; ``session.results`` says what was used."""
    path = Path(path)
    io, nwbfile = _open(path)
    keep_open = False
    try:
        units_where, units = _choose_units(nwbfile, path, units_name)
        where, series = _choose_series(nwbfile, path, electrical_series_name, required=False)
        results = {"nwb_units": units_where, "nwb_electrical_series": where}
        electrodes = _electrodes(nwbfile, path, results)
        channel_ids = None if electrodes is None else electrodes.index.to_numpy()
        clock = None if series is None else series_io.series_clock(series, where, path)
        base = _time_base(sampling_frequency, units, clock, path, units_where)
        results["nwb_time_base"] = base
        results["nwb_metadata"] = tables.file_metadata(nwbfile)

        ids = tables.unit_ids(units, path, units_where)
        times_s, bounds = tables.spike_times_s(units, path, units_where)
        samples = _to_samples(times_s, bounds, ids, base, path, f"{units_where}/spike_times")
        unit_index = np.repeat(np.arange(ids.size, dtype=np.int32), np.diff(bounds))
        skipped: list[str] = []
        table = tables.unit_table(units, ids, channel_ids, path, units_where, skipped)
        if skipped:
            results["nwb_skipped_columns"] = skipped
        templates = tables.templates(units, ids, table, channel_ids, path)
        if templates is not None:
            results["nwb_templates"] = templates
        try:
            sorting = Sorting.from_arrays(samples, unit_index, base["sampling_frequency"],
                                          unit_ids=ids, unit_table=table, source=str(path))
        except InputError as err:
            raise err.at(path) from None

        recording = None
        if series is not None and load_recording:
            recording = series_io.recording(series, where, electrodes, clock, path,
                                   sampling_frequency)
            recording._nwb_io = io  # keeps the HDF5 file open as long as the traces live
        locations = None
        if electrodes is not None and "x_um" in electrodes:
            locations = electrodes[["x_um", "y_um"]].to_numpy()
        extra = {} if recording is not None else {"channel_ids": channel_ids,
                                                  "channel_locations_um": locations}
        session = Session(sorting, recording=recording, source=str(path), format=FORMAT,
                          results=results, **extra)
        keep_open = recording is not None
    finally:
        if not keep_open:
            io.close()
    if keep_open:
        session._nwb_io = io
    return session
