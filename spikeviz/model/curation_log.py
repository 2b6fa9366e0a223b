"""The curation log on disk: one JSON document plus content-addressed ``.npy`` sidecars.

Layout, for a log at ``PATH`` (e.g. ``curation.json``)::

    PATH                 JSON document (rewritten atomically after every action)
    PATH.spikes/         one ``<sha256>.npy`` per split group: sorted int64 positions into
                         the *original* sorting's spike vector (written atomically, before
                         the document that names them; never pickled)

The document::

    {"format": "spikeviz-curation", "format_version": 1,
     "sorting": {"spikes_hash": ..., "num_spikes": ..., "num_units": ...,
                 "sampling_frequency": ...},
     "next_unit_id": 512,        # the next integer a new unit id is made from
     "position": 7,              # actions[:position] are applied; the rest can be redone
     "actions": [{"op": "label", "unit_ids": [..], "label": "good"},
                 {"op": "tag" | "untag", "unit_ids": [..], "tags": [..]},
                 {"op": "merge", "unit_ids": [..], "new_unit_id": 512},
                 {"op": "split", "unit_id": 3, "new_unit_ids": [513, 514],
                  "groups": [{"file": "<sha256>.npy", "count": 1200}]},
                 {"op": "remove", "unit_ids": [..]}]}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from ..errors import InputError

FORMAT = "spikeviz-curation"
FORMAT_VERSION = 1
OPS = ("label", "tag", "untag", "merge", "split", "remove")


def sidecar_folder(path: Path) -> Path:
    return path.with_name(path.name + ".spikes")


def array_name(positions: np.ndarray) -> str:
    data = np.ascontiguousarray(positions, dtype=np.int64)
    return hashlib.sha256(data.view(np.uint8)).hexdigest() + ".npy"


def write_group(path: Path, positions: np.ndarray) -> dict:
    """Write one split group's positions beside the log (idempotent); its JSON reference."""
    positions = np.ascontiguousarray(positions, dtype=np.int64)
    name = array_name(positions)
    folder = sidecar_folder(path)
    folder.mkdir(exist_ok=True)
    target = folder / name
    if not target.exists():
        with atomic_file(target, overwrite=True, suffix=".npy") as tmp:
            np.save(tmp, positions, allow_pickle=False)
    return {"file": name, "count": int(positions.size)}


def read_group(path: Path, ref, num_spikes: int, field: str) -> np.ndarray:
    """Load and check a split group referenced by the log at ``path``."""
    if not isinstance(ref, dict) or not isinstance(ref.get("file"), str) or \
            not isinstance(ref.get("count"), int):
        raise InputError("expected {'file': name, 'count': n}", path=path, field=field)
    name = ref["file"]
    if "/" in name or "\\" in name or not name.endswith(".npy"):
        raise InputError(f"bad spike file name {name!r}", path=path, field=field)
    file = sidecar_folder(path) / name
    try:
        positions = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the split's spikes: {error}", path=file,
                         field=field) from None
    if positions.dtype != np.int64 or positions.ndim != 1 or positions.size != ref["count"] \
            or array_name(positions) != name:
        raise InputError("the split's spike file is corrupt (content does not match its name)",
                         path=file, field=field)
    if positions.size and (positions[0] < 0 or positions[-1] >= num_spikes
                           or (np.diff(positions) <= 0).any()):
        raise InputError(f"spike positions must be sorted, unique, in [0, {num_spikes})",
                         path=file, field=field)
    return positions


def write_document(path: Path, document: dict) -> None:
    """Replace the log document atomically (the previous one survives any failure)."""
    head = {k: v for k, v in document.items() if k != "actions"}
    lines = [json.dumps(a, allow_nan=False) for a in document["actions"]]
    text = json.dumps(head, allow_nan=False)[:-1] + ', "actions": [\n' + \
        ",\n".join(lines) + "\n]}\n"
    data = text.encode()
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_bytes(data)


def read_document(path: Path, sorting_facts: dict) -> dict:
    """The checked document at ``path``; InputError naming the file and field otherwise."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the curation log: {error}", path=path) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"not a spikeviz curation log (expected format {FORMAT!r})",
                         path=path, field="format")
    if document.get("format_version") != FORMAT_VERSION:
        raise InputError(f"unsupported format_version {document.get('format_version')!r}; "
                         f"this spikeviz reads version {FORMAT_VERSION}", path=path,
                         field="format_version")
    facts = document.get("sorting")
    if not isinstance(facts, dict) or facts.get("spikes_hash") != sorting_facts["spikes_hash"]:
        got = facts.get("spikes_hash") if isinstance(facts, dict) else None
        raise InputError(
            f"this curation log belongs to another sorting (spikes_hash {str(got)[:12]}..., "
            f"the open sorting has {sorting_facts['spikes_hash'][:12]}...); it is never "
            f"applied to other spikes", path=path, field="sorting.spikes_hash")
    actions = document.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise InputError("expected a list of actions", path=path, field="actions")
    for i, action in enumerate(actions):
        if action.get("op") not in OPS:
            raise InputError(f"unknown op {action.get('op')!r}; expected one of {OPS}",
                             path=path, field=f"actions[{i}].op")
    position = document.get("position")
    if not isinstance(position, int) or isinstance(position, bool) or \
            not 0 <= position <= len(actions):
        raise InputError(f"position must be an integer in [0, {len(actions)}]", path=path,
                         field="position")
    next_id = document.get("next_unit_id")
    if not isinstance(next_id, int) or isinstance(next_id, bool):
        raise InputError("next_unit_id must be an integer", path=path, field="next_unit_id")
    return document
