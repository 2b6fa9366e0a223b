"""Metadata for the NWB writer: a dict shaped like neuroconv's, validated before any file is
written.

::

    {"NWBFile": {"session_start_time": "2024-05-01T10:00:00+02:00", "identifier": "...",
                 "session_description": "...", "experimenter": ["Last, First"],
                 "institution": "...", "lab": "...", "keywords": ["..."], ...},
     "Subject": {"subject_id": "m42", "species": "Mus musculus", "sex": "F", "age": "P90D",
                 "date_of_birth": "...", "strain": "...", "weight": "25 g", ...},
     "Ecephys": {"Device": [{"name", "description", "manufacturer", "model_name",
                             "model_number", "serial_number"}],
                 "ElectrodeGroup": [{"name", "description", "location", "device"}],
                 "ElectricalSeries": {"name", "description"}}}

Policy:

- ``session_start_time`` (and every datetime) must carry a timezone; a naive one is an
  InputError (spikeviz does not guess where the recording was made). When it is missing, the
  time of the export is written as a placeholder, a warning says so and the file's ``notes``
  record it.
- ``identifier`` defaults to a fresh uuid4; ``session_description`` to a sentence naming the
  source. Subject facts are never invented: without ``Subject`` no subject is written.
- Values that nwbinspector rejects as CRITICAL or as a DANDI requirement (sex outside
  M/F/O/U, age not an ISO 8601 duration, species not a Latin binomial or NCBI taxon IRI,
  weight without a unit, ids with slashes, times in the future) are InputErrors naming the
  field.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
import warnings
from pathlib import Path

from ..errors import InputError

SECTIONS = ("NWBFile", "Subject", "Ecephys")

NWBFILE_TEXT = ("session_description", "identifier", "experiment_description", "session_id",
                "institution", "lab", "notes", "pharmacology", "protocol", "slices",
                "source_script", "source_script_file_name", "data_collection", "surgery",
                "virus", "stimulus_notes")
NWBFILE_TEXT_LISTS = ("experimenter", "keywords", "related_publications")
NWBFILE_TIMES = ("session_start_time", "timestamps_reference_time")

SUBJECT_TEXT = ("subject_id", "species", "sex", "age", "age__reference", "description",
                "genotype", "strain", "weight")
SUBJECT_TIMES = ("date_of_birth",)

DEVICE_KEYS = ("name", "description", "manufacturer", "model_name", "model_number",
               "serial_number")
GROUP_KEYS = ("name", "description", "location", "device")
SERIES_KEYS = ("name", "description")

DEFAULT_DEVICE = "DeviceEcephys"
DEFAULT_GROUP = "ElectrodeGroup"

_NUM = r"\d+(?:\.\d+)?"
ISO_DURATION = re.compile(rf"^P(?!$)({_NUM}Y)?({_NUM}M)?({_NUM}W)?({_NUM}D)?"
                          rf"(T(?=\d)({_NUM}H)?({_NUM}M)?({_NUM}S)?)?$")
SPECIES = re.compile(r"^([A-Z][a-z]* [a-z]+.*|http://purl\.obolibrary\.org/obo/NCBITaxon_\d+)$")
WEIGHT = re.compile(r"(?i)^\d+(\.\d+)? (kg|g|mg|ug|μg|ng|pg)$")
SEXES = ("M", "F", "O", "U")
C_ELEGANS_SEXES = ("XO", "XX")


def load_metadata(path: str | Path) -> dict:
    """Read a metadata dict from a YAML (``.yaml``/``.yml``) or JSON file (``yaml.safe_load``
    for YAML; no code is run) and validate it (see :func:`validate_metadata`)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError("no such metadata file", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the metadata file: {err}", path=path) from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise InputError(f"not valid {kind}: {err}", path=path) from None
    if data is None:
        data = {}
    try:
        with warnings.catch_warnings():  # a missing start time is warned about when writing
            warnings.simplefilter("ignore", UserWarning)
            validate_metadata(data)
    except InputError as err:
        raise err.at(path) from None
    return data


def validate_metadata(metadata: dict | None, source: str = "") -> dict:
    """The metadata checked and completed: a new dict with every section present, datetimes
    parsed (timezone-aware), defaults filled. InputError naming the field otherwise."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InputError(f"metadata must be a dict with sections {', '.join(SECTIONS)}, got "
                         f"{type(metadata).__name__}", field="metadata")
    unknown = [k for k in metadata if k not in SECTIONS]
    if unknown:
        raise InputError(f"unknown metadata section(s) {unknown}; expected "
                         f"{', '.join(SECTIONS)}", field="metadata")
    nwbfile = _nwbfile(_section(metadata, "NWBFile"), source)
    subject = _subject(_section(metadata, "Subject")) if metadata.get("Subject") else None
    ecephys = _ecephys(_section(metadata, "Ecephys"))
    _placeholder_start_time(nwbfile)
    return {"NWBFile": nwbfile, "Subject": subject, "Ecephys": ecephys}


# -- sections --------------------------------------------------------------------------------
def _section(metadata: dict, name: str) -> dict:
    value = metadata.get(name) or {}
    if not isinstance(value, dict):
        raise InputError(f"must be a mapping of fields, got {type(value).__name__}", field=name)
    return value


def _check_keys(values: dict, allowed: tuple, where: str) -> None:
    unknown = [k for k in values if k not in allowed]
    if unknown:
        raise InputError(f"unknown field(s) {unknown}; known: {', '.join(allowed)}",
                         field=where)


def _text(value, field: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__} {value!r}", field=field)
    if not value.strip():
        raise InputError("must not be empty", field=field)
    return value


def _datetime(value, field: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"not an ISO 8601 date-time: {value!r} (expected e.g. "
                             f"2024-05-01T10:00:00+02:00)", field=field) from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        raise InputError(f"needs a time and a timezone, got the date {value.isoformat()} "
                         f"(write e.g. {value.isoformat()}T00:00:00+00:00)", field=field)
    if not isinstance(value, dt.datetime):
        raise InputError(f"must be a datetime or an ISO 8601 string, got "
                         f"{type(value).__name__}", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{value.isoformat()} has no timezone; give one (e.g. "
                         f"{value.isoformat()}+01:00 or ...Z): spikeviz does not guess where "
                         f"the recording was made", field=field)
    if value > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
        raise InputError(f"{value.isoformat()} lies in the future", field=field)
    return value


def _no_slash(value: str, field: str) -> str:
    if "/" in value:
        raise InputError(f"must not contain '/', got {value!r}", field=field)
    return value


def _nwbfile(values: dict, source: str) -> dict:
    _check_keys(values, NWBFILE_TEXT + NWBFILE_TEXT_LISTS + NWBFILE_TIMES, "NWBFile")
    out: dict = {}
    for key, value in values.items():
        field = f"NWBFile.{key}"
        if key in NWBFILE_TIMES:
            out[key] = _datetime(value, field)
        elif key in NWBFILE_TEXT_LISTS:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not items:
                raise InputError(f"must be a string or a non-empty list of strings, got "
                                 f"{value!r}", field=field)
            out[key] = [_text(v, field) for v in items]
        else:
            out[key] = _text(value, field)
    if "session_id" in out:
        _no_slash(out["session_id"], "NWBFile.session_id")
    out.setdefault("identifier", str(uuid.uuid4()))
    out.setdefault("session_description", "Spike sorting exported by spikeviz"
                   + (f" from {source}" if source else "") + ".")
    return out


def _placeholder_start_time(nwbfile: dict) -> None:
    """Fill a missing session_start_time with the time of the export, say so in ``notes`` and
    warn (called once every field is known to be valid)."""
    if "session_start_time" in nwbfile:
        return
    nwbfile["session_start_time"] = dt.datetime.now(dt.UTC).replace(microsecond=0)
    note = ("session_start_time was not given: the time of the export was written as a "
            "placeholder.")
    warnings.warn(f"NWB export: {note} Give metadata['NWBFile']['session_start_time'] (with a "
                  f"timezone) for a correct file.", UserWarning, stacklevel=4)
    nwbfile["notes"] = f"{nwbfile['notes']}\n{note}" if "notes" in nwbfile else note


def _subject(values: dict) -> dict:
    _check_keys(values, SUBJECT_TEXT + SUBJECT_TIMES, "Subject")
    out: dict = {}
    for key, value in values.items():
        field = f"Subject.{key}"
        out[key] = _datetime(value, field) if key in SUBJECT_TIMES else _text(value, field)
    if "subject_id" in out:
        _no_slash(out["subject_id"], "Subject.subject_id")
    species = out.get("species")
    if species is not None and not SPECIES.match(species):
        raise InputError(f"{species!r} is neither a Latin binomial (e.g. 'Mus musculus') nor an "
                         f"NCBI taxonomy IRI (http://purl.obolibrary.org/obo/NCBITaxon_10090)",
                         field="Subject.species")
    if "sex" in out:
        allowed = C_ELEGANS_SEXES if species in ("Caenorhabditis elegans", "C. elegans") \
            else SEXES
        if out["sex"] not in allowed:
            raise InputError(f"must be one of {', '.join(allowed)} (M male, F female, O other, "
                             f"U unknown), got {out['sex']!r}", field="Subject.sex")
    if "age" in out and not _is_age(out["age"]):
        raise InputError(f"{out['age']!r} is not an ISO 8601 duration (e.g. 'P90D' for 90 days, "
                         f"'P12W', 'P2Y') or a range such as 'P90D/P120D' or 'P90D/'",
                         field="Subject.age")
    if out.get("age__reference", "birth") not in ("birth", "gestational"):
        raise InputError(f"must be 'birth' or 'gestational', got {out['age__reference']!r}",
                         field="Subject.age__reference")
    if "weight" in out and not WEIGHT.match(out["weight"]):
        raise InputError(f"{out['weight']!r} must be a number, a space and a unit (kg, g, mg, "
                         f"ug, ng, pg), e.g. '25 g'", field="Subject.weight")
    return out


def _is_age(age: str) -> bool:
    if ISO_DURATION.match(age):
        return True
    if age.count("/") == 1:
        low, high = age.split("/")
        return (low or high) != "" and all(not p or ISO_DURATION.match(p) for p in (low, high))
    return False


def _entries(values, key: str, allowed: tuple) -> list[dict]:
    if values is None:
        return []
    if isinstance(values, dict):
        values = [values]
    if not isinstance(values, list | tuple):
        raise InputError(f"must be a list of mappings, got {type(values).__name__}",
                         field=f"Ecephys.{key}")
    out, names = [], set()
    for i, entry in enumerate(values):
        where = f"Ecephys.{key}[{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"must be a mapping, got {type(entry).__name__}", field=where)
        _check_keys(entry, allowed, where)
        entry = {k: _text(v, f"{where}.{k}") for k, v in entry.items()}
        if "name" not in entry:
            raise InputError("needs a 'name'", field=where)
        _no_slash(entry["name"], f"{where}.name")
        if entry["name"] in names:
            raise InputError(f"the name {entry['name']!r} is used twice", field=where)
        names.add(entry["name"])
        out.append(entry)
    return out


def _ecephys(values: dict) -> dict:
    _check_keys(values, ("Device", "ElectrodeGroup", "ElectricalSeries"), "Ecephys")
    devices = _entries(values.get("Device"), "Device", DEVICE_KEYS)
    groups = _entries(values.get("ElectrodeGroup"), "ElectrodeGroup", GROUP_KEYS)
    device_names = {d["name"] for d in devices} or {DEFAULT_DEVICE}
    for i, group in enumerate(groups):
        device = group.get("device")
        if device is not None and device not in device_names:
            raise InputError(f"names the device {device!r}, which is not in Ecephys.Device "
                             f"({', '.join(sorted(device_names))})",
                             field=f"Ecephys.ElectrodeGroup[{i}].device")
    series = values.get("ElectricalSeries") or {}
    if not isinstance(series, dict):
        raise InputError(f"must be a mapping with name and description, got "
                         f"{type(series).__name__}", field="Ecephys.ElectricalSeries")
    _check_keys(series, SERIES_KEYS, "Ecephys.ElectricalSeries")
    series = {k: _text(v, f"Ecephys.ElectricalSeries.{k}") for k, v in series.items()}
    if "name" in series:
        _no_slash(series["name"], "Ecephys.ElectricalSeries.name")
    return {"Device": devices, "ElectrodeGroup": groups, "ElectricalSeries": series}
