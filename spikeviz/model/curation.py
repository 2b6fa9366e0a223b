"""Curation: an action log over one sorting, with undo/redo, autosave and SI format v2.

The curated :class:`~spikeviz.model.sorting.Sorting` is derived from the log. The state
transitions (unit slots, ids, apply/revert, building the Sorting) are in
:mod:`spikeviz.model.curation_engine`; the log file format in
:mod:`spikeviz.model.curation_log`; SpikeInterface's format in
:mod:`spikeviz.model.curation_si`. This module is the public object: actions, undo/redo,
autosave, resume.

Rules:

- Unit ids are labels. New units get integer ids above every id ever used (also by undone
  actions; never reused). With string ids, new ids are decimal strings ``str(n)`` with ``n``
  above every id that parses as an integer.
- Labels are ``good``, ``mua``, ``noise`` or ``unsorted`` (the default, or the original
  sorting's ``label`` column). Tags are free strings.
- A merged unit gets the label its parts share (``unsorted`` if they differ) and the union of
  their tags. Both parts of a split keep the split unit's label and tags.
- Removed units leave the curated sorting with their spikes.
- The curated unit order: surviving original units in their original order, then new units in
  creation order. New units' rows of the unit table carry NaN in the original table's columns.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import param

from ..errors import InputError
from . import curation_log as log
from .curation_engine import LABELS, SlotEngine
from .ids import id_key
from .sorting import Sorting

__all__ = ["LABELS", "Curation"]


class Curation(SlotEngine, param.Parameterized):
    """Label, tag, merge, split and remove units of a sorting; undo/redo; autosave.

    ``Curation(sorting, log_path=None)``: with ``log_path`` every action is written to that
    JSON file (see :mod:`spikeviz.model.curation_log`) before it takes effect; an existing log
    is checked against ``sorting.spikes_hash()`` and resumed exactly (undo position included).
    Watch :attr:`sorting` (``curation.param.watch(fn, "sorting")``) to follow every change.

    One writer per log: a Curation with a log holds an exclusive lock on it (``PATH.lock``)
    until :meth:`close` (or ``with Curation(...) as c:``), its garbage collection or the end of
    its process; opening the log again meanwhile, here or in another process, raises
    :class:`~spikeviz.model.curation_log.LogLockedError` (an InputError naming the holder).
    A save also refuses to overwrite a log that another writer changed since this one read it.
    """

    sorting = param.ClassSelector(class_=Sorting, constant=True, doc="""
        The curated sorting: a new object after every action, undo and redo.""")
    original = param.ClassSelector(class_=Sorting, constant=True,
                                   doc="The sorting the log applies to.")
    log_path = param.Parameter(default=None, constant=True,
                               doc="Where the log is autosaved (None: memory only).")

    def __init__(self, sorting: Sorting, log_path: str | Path | None = None, **params):
        if not isinstance(sorting, Sorting):
            raise InputError(f"expected a spikeviz Sorting, got {type(sorting).__name__}",
                             field="sorting")
        path = None if log_path is None else Path(log_path)
        super().__init__(original=sorting, sorting=sorting, log_path=path, **params)
        self._lock = threading.RLock()
        self._init_slots(sorting)
        self._actions: list[dict] = []
        self._position = 0
        self._undo: list[tuple] = []
        self._facts = {"spikes_hash": sorting.spikes_hash(), "num_spikes": sorting.num_spikes,
                       "num_units": sorting.num_units,
                       "sampling_frequency": sorting.sampling_frequency}
        self._generation = 0  # of the log document last read or written here
        self._closed = False
        self._release = None
        self._locked = False  # split files are swept only by a locked writer
        if path is not None:
            lock = log.LogLock(path)
            lock.acquire()
            self._locked = lock.held
            self._release = weakref.finalize(self, lock.release)  # also at garbage collection
        try:
            if path is not None and path.exists():
                self._resume(path)
            else:
                self._save()
                self._publish()
        except BaseException:
            self.close()
            raise

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Release the log's lock (idempotent). The curated sorting stays readable; further
        changes are refused (open the log again to continue). Nothing to do without a log."""
        with self._lock:
            self._closed = True
            if self._release is not None:
                self._release()

    def __enter__(self) -> Curation:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public actions ------------------------------------------------------------------
    def label(self, unit_ids, label: str) -> None:
        """Set the label (good/mua/noise/unsorted) of one or several units."""
        if label not in LABELS:
            raise InputError(f"label must be one of {LABELS}, got {label!r}", field="label")
        with self._lock:
            self._do({"op": "label", "unit_ids": self._unit_list(unit_ids, "unit_ids"),
                      "label": label})

    def tag(self, unit_ids, tags) -> None:
        """Add free tags (strings) to one or several units."""
        with self._lock:
            self._do({"op": "tag", "unit_ids": self._unit_list(unit_ids, "unit_ids"),
                      "tags": self._tag_list(tags)})

    def untag(self, unit_ids, tags) -> None:
        """Remove tags from one or several units (absent tags are ignored)."""
        with self._lock:
            self._do({"op": "untag", "unit_ids": self._unit_list(unit_ids, "unit_ids"),
                      "tags": self._tag_list(tags)})

    def merge(self, unit_ids, *, new_unit_id=None):
        """Merge two or more units into a new one; returns its id.

        ``new_unit_id`` (for imports) must never have been used; by default the next free id.
        """
        with self._lock:
            ids = self._unit_list(unit_ids, "unit_ids")
            if len(ids) < 2:
                raise InputError("a merge needs at least two units", field="unit_ids")
            new = self._explicit_ids([new_unit_id])[0] if new_unit_id is not None else \
                self._allocate(1)[0]
            self._do({"op": "merge", "unit_ids": ids, "new_unit_id": new})
            return new

    def split(self, unit_id, spike_indices):
        """Split ``unit_id`` in two; returns ``(id_selected, id_rest)``.

        ``spike_indices`` is either an integer array of positions in the *current curated*
        ``curation.sorting`` spike vector (e.g. from ``sorting.spike_indices(unit_id)``; every
        position must be a spike of ``unit_id``; duplicates are ignored), or a boolean mask with
        one entry per spike of the unit, in time order (``sorting.spike_train(unit_id)``).
        The selected spikes become unit ``id_selected``, the others ``id_rest``; both get new
        ids. The selection must be neither empty nor the whole unit.
        """
        with self._lock:
            slot = self._slot(unit_id, "unit_id")
            uid = self._slot_ids[slot]
            positions = self._split_positions(uid, spike_indices)
            new = self._allocate(2)
            self._do({"op": "split", "unit_id": uid, "new_unit_ids": new,
                      "_groups": [positions]})
            return new[0], new[1]

    def _split_groups(self, unit_id, groups, new_unit_ids=None) -> list:
        """Split ``unit_id`` into ``groups`` (indices into its train) plus the rest, if any."""
        with self._lock:
            uid = self._slot_ids[self._slot(unit_id, "unit_id")]
            unit_positions = self.sorting.spike_indices(uid).astype(np.int64)
            parts = []
            for group in groups:
                group = np.unique(np.asarray(group, dtype=np.int64).ravel())
                if group.size == 0 or group[0] < 0 or group[-1] >= unit_positions.size:
                    raise InputError(f"split groups of unit {uid!r} must be non-empty indices "
                                     f"in [0, {unit_positions.size})", field="splits")
                positions = unit_positions[group]
                parts.append(positions if self._kept is None else self._kept[positions])
            rest = unit_positions.size - sum(p.size for p in parts)
            count = len(parts) + (rest > 0)
            if count < 2:
                raise InputError(f"splitting unit {uid!r} this way leaves one unit",
                                 field="splits")
            new = self._explicit_ids(new_unit_ids) if new_unit_ids is not None else \
                self._allocate(count)
            self._do({"op": "split", "unit_id": uid, "new_unit_ids": new, "_groups": parts})
            return new

    def remove(self, unit_ids) -> None:
        """Remove units (and their spikes) from the curated sorting."""
        with self._lock:
            self._do({"op": "remove", "unit_ids": self._unit_list(unit_ids, "unit_ids")})

    def undo(self) -> bool:
        """Undo the last applied action; False if there is none."""
        with self._lock:
            if not self._position:
                return False
            self._position -= 1
            try:
                self._save()
            except BaseException:
                self._position += 1
                raise
            self._revert(self._undo.pop())
            self._publish()
            return True

    def redo(self) -> bool:
        """Re-apply the last undone action; False if there is none."""
        with self._lock:
            if self._position >= len(self._actions):
                return False
            action = self._actions[self._position]
            record = self._apply(action)
            self._position += 1
            try:
                self._save()
            except BaseException:
                self._position -= 1
                self._revert(record)
                raise
            self._undo.append(record)
            self._publish()
            return True

    @property
    def can_undo(self) -> bool:
        return self._position > 0

    @property
    def can_redo(self) -> bool:
        return self._position < len(self._actions)

    @property
    def actions(self) -> list[dict]:
        """The applied actions, oldest first (JSON-like dicts; split groups as arrays)."""
        return [self._public(a) for a in self._actions[:self._position]]

    @property
    def undone_actions(self) -> list[dict]:
        """Actions that :meth:`redo` would re-apply, next first."""
        return [self._public(a) for a in self._actions[self._position:]]

    def snapshot(self) -> tuple[Sorting, np.ndarray | None]:
        """``(sorting, original_positions)`` read together: the current curated sorting and,
        for each of its spikes, its position in :attr:`original`'s spike vector (int64,
        read-only), or None when the two spike vectors are the same (nothing removed)."""
        with self._lock:
            return self.sorting, self._kept

    def original_spike_indices(self, unit_id) -> np.ndarray:
        """Positions in :attr:`original`'s spike vector of the spikes of ``unit_id`` (a unit
        of the current curated sorting): int64, ascending. One pass over the slot array, no
        per-unit ordering of the curated sorting needed."""
        with self._lock:
            slot = self._slot(unit_id, "unit_id")
            if self._slots is None:  # no merge/split yet: the original unit's spikes
                return np.asarray(self.original.spike_indices(self._slot_ids[slot]),
                                  dtype=np.int64)
            return np.flatnonzero(self._slots == slot).astype(np.int64, copy=False)

    def origin(self, unit_id) -> tuple[str, list]:
        """How a unit (current or not, ever made here) came to be: ``("original", [])``,
        ``("merge", [ids merged])`` or ``("split", [id split])``."""
        with self._lock:
            key = id_key(unit_id)
            slot = self._slot_of.get(key) if isinstance(key, int | str) else None
            if slot is None:
                raise InputError(f"no unit with id {unit_id!r} was ever in this curation",
                                 field="unit_id")
            parents = self._parents.get(slot)
            if parents is None:
                return "original", []
            return ("merge" if len(parents) > 1 else "split"), \
                [self._slot_ids[p] for p in parents]

    @property
    def labels(self) -> pd.Series:
        return self.sorting.unit_table["label"]

    def tags_of(self, unit_id) -> list[str]:
        return sorted(self._tags.get(self._slot(unit_id, "unit_id"), ()))

    # -- SpikeInterface curation format v2 ------------------------------------------------
    def to_spikeinterface_curation(self) -> dict:
        """The curation as one SpikeInterface curation-format-v2 dict (see curation_si)."""
        from .curation_si import to_si_dict
        return to_si_dict(self)

    def to_spikeinterface_curation_steps(self) -> list[dict]:
        """The curation as a list of v2 dicts (SpikeInterface's sequential curation)."""
        from .curation_si import to_si_steps
        return to_si_steps(self)

    @classmethod
    def from_spikeinterface_curation(cls, sorting: Sorting, curation, log_path=None):
        """A Curation of ``sorting`` whose log holds the actions of a v2 dict (or list)."""
        from .curation_si import from_si
        curation_obj = cls(sorting, log_path=log_path)
        try:
            from_si(curation_obj, curation)
        except BaseException:
            curation_obj.close()
            raise
        return curation_obj

    # -- log and publication ---------------------------------------------------------------
    def _public(self, action: dict) -> dict:
        out = {k: v for k, v in action.items() if not k.startswith("_")}
        if action["op"] == "split":
            out["groups"] = [g.copy() for g in action["_groups"]]
        return out

    def _do(self, action: dict) -> None:
        """Apply a new action, log it (atomically) and publish the new sorting."""
        record = self._apply(action)
        saved = (self._actions, self._position, self._next_id)
        try:
            self._check_open()
            if action["op"] == "split" and self.log_path is not None:
                action["groups"] = [log.write_group(self.log_path, g) for g in action["_groups"]]
            self._actions = [*self._actions[:self._position], action]
            self._position += 1
            self._save()
        except BaseException:
            self._actions, self._position, self._next_id = saved
            self._revert(record)
            raise
        self._undo.append(record)
        self._publish()

    def _document(self, generation: int) -> dict:
        return {"format": log.FORMAT, "format_version": log.FORMAT_VERSION,
                "sorting": self._facts, "next_unit_id": self._next_id,
                "position": self._position, "generation": generation,
                "actions": [{k: v for k, v in a.items() if not k.startswith("_")}
                            for a in self._actions]}

    def _check_open(self) -> None:
        if self._closed and self.log_path is not None:
            raise InputError("this curation was closed; open the log again to change it",
                             path=self.log_path)

    def _save(self) -> None:
        """Write the document (refused if another writer changed the log since this object
        read or wrote it), then delete the split files it no longer names."""
        path = self.log_path
        if path is None:
            return
        self._check_open()
        log.check_generation(path, self._generation)
        document = self._document(self._generation + 1)
        log.write_document(path, document)
        self._generation += 1
        if self._locked:
            log.remove_unreferenced(path, document["actions"])

    def _resume(self, path: Path) -> None:
        document = log.read_document(path, self._facts)
        actions = document["actions"]
        n = self.original.num_spikes
        for i, action in enumerate(actions):
            if action["op"] == "split":
                groups = action.get("groups")
                if not isinstance(groups, list):
                    raise InputError("a split needs a list of groups", path=path,
                                     field=f"actions[{i}].groups")
                action["_groups"] = [log.read_group(path, g, n, f"actions[{i}].groups")
                                     for g in groups]
        self._actions = actions
        for i, action in enumerate(actions[:document["position"]]):
            try:
                self._undo.append(self._apply(action))
            except (InputError, KeyError, TypeError, ValueError) as error:
                message = error.message if isinstance(error, InputError) else str(error)
                raise InputError(f"cannot replay action {i} ({action.get('op')}): {message}",
                                 path=path, field=f"actions[{i}]") from None
            self._position = i + 1
        self._next_id = max(self._next_id, document["next_unit_id"])
        self._generation = document.get("generation", 0)
        self._publish()

    def _publish(self) -> None:
        """Build the curated Sorting from the state and set :attr:`sorting`.

        When only labels or tags changed, the new Sorting shares the spike arrays.
        """
        alive = list(self._alive)
        current = self.sorting
        if current is not self.original and len(alive) == current.num_units and \
                [self._slot_ids[s] for s in alive] == current.unit_ids.tolist():
            table = current.unit_table.copy()
            table["label"] = [self._labels.get(s, "unsorted") for s in alive]
            table["tags"] = [",".join(sorted(self._tags.get(s, ()))) for s in alive]
            new = current.with_unit_table(table)
        else:
            new = self._build()
        with param.edit_constant(self):
            self.sorting = new
