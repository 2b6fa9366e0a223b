"""The slot engine under :class:`~spikeviz.model.curation.Curation`: unit slots, ids, actions
applied to the spikes and reverted, and the curated Sorting built from the state.

Every spike of the *original* sorting carries a unit slot (int32; one slot per unit id ever
made, the original units first, in order). An action rewrites only the slots of the spikes it
touches and returns an undo record of them (positions and previous slots), so an action or an
undo costs O(spikes of the units involved) plus one pass to build the new Sorting; no action
re-copies the spike times unless the set of removed spikes changed.

State (attributes of the Curation): ``_slot_ids`` (unit id of every slot), ``_slot_of`` (id
key -> slot), ``_spike_slot`` (slot of every original spike), ``_alive`` (slots of the
curated units, in curated order), ``_removed``, ``_labels``, ``_tags``, ``_parents`` (slots a
new slot was made from), ``_next_id``; ``_kept`` (original positions of the curated spikes,
None when nothing is removed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from .ids import id_key
from .sorting import Sorting

LABELS = ("good", "mua", "noise", "unsorted")


class SlotEngine:
    """Mixin holding the slot state and the pure state transitions of a Curation.

    The host provides ``original`` (the Sorting the actions apply to) and ``sorting`` (the
    current curated one); locking, logging and publishing are the host's.
    """

    def _init_slots(self, sorting: Sorting) -> None:
        """The state of ``sorting`` with no action applied."""
        ids = sorting.unit_ids
        self._str_ids = ids.dtype.kind == "U"
        self._slot_ids: list = ids.tolist()
        self._slot_of = {id_key(u): i for i, u in enumerate(self._slot_ids)}
        self._slots = None  # the slot array, copied from unit_index on first merge/split
        self._alive: dict[int, None] = dict.fromkeys(range(len(self._slot_ids)))
        self._removed: set[int] = set()
        labels = sorting.labels.tolist()
        self._labels = {i: (lab if lab in LABELS else "unsorted") for i, lab in
                        enumerate(labels)}
        self._tags: dict[int, frozenset] = {}
        self._next_id = self._first_free_id(self._slot_ids)
        self._kept_cache = None  # (frozenset removed slots, kept positions, sample_index, props)
        self._kept = None
        self._parents: dict[int, list[int]] = {}

    @property
    def _spike_slot(self) -> np.ndarray:
        """Slot of every original spike (int32, writable). Made on first use (the first merge
        or split): until then every spike's slot is its original unit index."""
        if self._slots is None:
            self._slots = np.array(self.original.unit_index, dtype=np.int32)
        return self._slots

    def _pristine(self) -> bool:
        """True while every spike is in its original unit and nothing is removed."""
        return not self._removed and len(self._alive) == self.original.num_units and \
            all(a == i for i, a in enumerate(self._alive))

    # -- ids -----------------------------------------------------------------------------
    def _first_free_id(self, ids) -> int:
        numbers = [int(u) for u in ids if not isinstance(u, str)] if not self._str_ids else \
            [int(u) for u in ids if u.strip().lstrip("-").isdigit()]
        return max(numbers) + 1 if numbers else 0

    def _allocate(self, count: int) -> list:
        start = self._next_id
        ids = list(range(start, start + count))
        return [str(i) for i in ids] if self._str_ids else ids

    def _slot(self, unit_id, field: str) -> int:
        """Slot of a unit of the *curated* sorting; InputError naming ``field`` otherwise."""
        key = id_key(unit_id)
        slot = self._slot_of.get(key) if isinstance(key, int | str) else None
        if slot is None:
            raise InputError(f"no unit with id {unit_id!r} (type {type(unit_id).__name__}) "
                             f"in this sorting", field=field)
        if slot not in self._alive:
            how = "was removed" if slot in self._removed else "no longer exists (merged/split)"
            raise InputError(f"unit {unit_id!r} {how}", field=field)
        return slot

    def _unit_list(self, unit_ids, field: str) -> list:
        if isinstance(unit_ids, str | int | np.integer | np.str_):
            unit_ids = [unit_ids]
        unit_ids = list(np.asarray(unit_ids).tolist()) if isinstance(unit_ids, np.ndarray) \
            else list(unit_ids)
        if not unit_ids:
            raise InputError("no unit given", field=field)
        slots = [self._slot(u, field) for u in unit_ids]
        if len(set(slots)) != len(slots):
            raise InputError("the same unit is given twice", field=field)
        return [self._slot_ids[s] for s in slots]
    @staticmethod
    def _tag_list(tags) -> list[str]:
        if isinstance(tags, str):
            tags = [tags]
        tags = list(tags)
        if not tags or not all(isinstance(t, str) and t.strip() for t in tags):
            raise InputError("tags must be non-empty strings", field="tags")
        return sorted(set(tags))

    def _explicit_ids(self, ids) -> list:
        out = []
        for new in ids:
            key = id_key(new)
            if not isinstance(key, str if self._str_ids else int) or key in self._slot_of:
                raise InputError(f"new unit id {new!r} is in use or of the wrong type",
                                 field="new_unit_id")
            out.append(key)
        return out
    def _new_slot(self, unit_id) -> int:
        key = id_key(unit_id)
        if key in self._slot_of:
            return self._slot_of[key]
        self._slot_of[key] = len(self._slot_ids)
        self._slot_ids.append(key)
        return self._slot_of[key]
    # -- transitions --------------------------------------------------------------------
    def _split_positions(self, uid, spike_indices) -> np.ndarray:
        """Original positions of the spikes of ``uid`` that a split selects (see
        ``Curation.split``: curated positions or a boolean mask over the unit)."""
        current = self.sorting
        unit_positions = current.spike_indices(uid)
        selection = np.asarray(spike_indices)
        if selection.dtype == bool:
            if selection.shape != unit_positions.shape:
                raise InputError(f"a boolean mask needs one entry per spike of unit {uid!r} "
                                 f"({unit_positions.size}), got shape {selection.shape}",
                                 field="spike_indices")
            positions = unit_positions[selection].astype(np.int64)
        elif selection.size == 0 or selection.dtype.kind in "iu":
            positions = np.unique(selection.astype(np.int64).ravel())
            if positions.size and (positions[0] < 0 or positions[-1] >= current.num_spikes):
                raise InputError(f"spike positions must lie in [0, {current.num_spikes})",
                                 field="spike_indices")
            if positions.size and (current.unit_index[positions]
                                   != current.unit_index_of(uid)).any():
                raise InputError(f"some selected spikes do not belong to unit {uid!r}",
                                 field="spike_indices")
        else:
            raise InputError(f"expected integer positions or a boolean mask, got dtype "
                             f"{selection.dtype}", field="spike_indices")
        if positions.size == 0:
            raise InputError("the selection is empty: nothing to split off",
                             field="spike_indices")
        if positions.size == unit_positions.size:
            raise InputError(f"the selection holds all {positions.size} spikes of unit "
                             f"{uid!r}: nothing would remain", field="spike_indices")
        return positions if self._kept is None else self._kept[positions]

    def _apply(self, action: dict) -> tuple:
        """Change the state by ``action``; returns the record that reverts it."""
        op = action["op"]
        before = (dict(self._alive), set(self._removed), dict(self._labels), dict(self._tags),
                  self._next_id)
        positions = np.zeros(0, dtype=np.int64)
        old = np.zeros(0, dtype=np.int32)
        if op in ("label", "tag", "untag", "remove"):
            slots = [self._slot(u, "unit_ids") for u in action["unit_ids"]]
            for s in slots:
                if op == "label":
                    self._labels[s] = action["label"]
                elif op == "tag":
                    self._tags[s] = self._tags.get(s, frozenset()) | set(action["tags"])
                elif op == "untag":
                    self._tags[s] = self._tags.get(s, frozenset()) - set(action["tags"])
                else:
                    del self._alive[s]
                    self._removed.add(s)
        elif op == "merge":
            slots = [self._slot(u, "unit_ids") for u in action["unit_ids"]]
            new = self._new_slot(action["new_unit_id"])
            self._parents[new] = slots
            member = np.zeros(len(self._slot_ids), dtype=bool)
            member[slots] = True
            positions = np.flatnonzero(member[self._spike_slot])
            old = self._spike_slot[positions]
            self._spike_slot[positions] = new
            labels = {self._labels.get(s, "unsorted") for s in slots}
            self._labels[new] = labels.pop() if len(labels) == 1 else "unsorted"
            self._tags[new] = frozenset().union(*(self._tags.get(s, frozenset())
                                                  for s in slots))
            for s in slots:
                del self._alive[s]
            self._alive[new] = None
        elif op == "split":
            slot = self._slot(action["unit_id"], "unit_id")
            groups = action["_groups"]
            positions = np.flatnonzero(self._spike_slot == slot)
            old = self._spike_slot[positions]
            inside = np.concatenate(groups) if groups else positions[:0]
            if inside.size and ((self._spike_slot[inside] != slot).any() or
                                np.unique(inside).size != inside.size):
                raise InputError(f"split groups must be disjoint spikes of unit "
                                 f"{action['unit_id']!r}", field="groups")
            rest = positions.size - inside.size
            new_ids = action["new_unit_ids"]
            if len(new_ids) != len(groups) + (rest > 0):
                raise InputError(f"expected {len(groups) + (rest > 0)} new unit ids, got "
                                 f"{len(new_ids)}", field="new_unit_ids")
            new_slots = [self._new_slot(u) for u in new_ids]
            for s in new_slots:
                self._parents[s] = [slot]
            if rest:
                self._spike_slot[positions] = new_slots[-1]
            for g, s in zip(groups, new_slots, strict=False):
                self._spike_slot[g] = s
            del self._alive[slot]
            for s in new_slots:
                self._alive[s] = None
                self._labels[s] = self._labels.get(slot, "unsorted")
                self._tags[s] = self._tags.get(slot, frozenset())
        for new_id in ([action["new_unit_id"]] if op == "merge" else
                       action["new_unit_ids"] if op == "split" else []):
            number = int(new_id) if not self._str_ids or new_id.lstrip("-").isdigit() else None
            if number is not None:
                self._next_id = max(self._next_id, number + 1)
        return positions, old, before

    def _revert(self, record: tuple) -> None:
        positions, old, before = record
        if positions.size:
            self._spike_slot[positions] = old
        alive, removed, labels, tags, _ = before
        self._alive, self._removed, self._labels, self._tags = alive, removed, labels, tags
    # -- the curated sorting ------------------------------------------------------------
    def _build(self) -> Sorting:
        source = self.original
        alive = list(self._alive)
        if self._pristine():  # the original spikes: share its arrays (and per-unit order)
            self._kept = None
            table = source.unit_table.copy()
            table["label"] = [self._labels.get(s, "unsorted") for s in alive]
            table["tags"] = [",".join(sorted(self._tags.get(s, ()))) for s in alive]
            return source.with_unit_table(table)
        lut = np.full(len(self._slot_ids), -1, dtype=np.int32)
        lut[alive] = np.arange(len(alive), dtype=np.int32)
        unit_index = lut[self._spike_slot]
        props = source.spike_properties
        if not self._removed:
            sample_index, kept = source.sample_index, None
        else:
            key = frozenset(self._removed)
            if self._kept_cache is None or self._kept_cache[0] != key:
                kept = np.flatnonzero(unit_index >= 0)
                kept.flags.writeable = False
                self._kept_cache = (key, kept, source.sample_index[kept],
                                    {k: v[kept] for k, v in props.items()})
            _, kept, sample_index, props = self._kept_cache
            unit_index = unit_index[kept]
        self._kept = kept
        ids = [self._slot_ids[s] for s in alive]
        ids = np.array(ids, dtype=str if self._str_ids else np.int64)
        table = source.unit_table.reindex(pd.Index(ids, name="unit_id"))
        table["label"] = [self._labels.get(s, "unsorted") for s in alive]
        table["tags"] = [",".join(sorted(self._tags.get(s, ()))) for s in alive]
        return Sorting(sample_index, unit_index, source.sampling_frequency, unit_ids=ids,
                       unit_table=table, spike_properties=props, sort=False,
                       num_samples=source.num_samples, source=source.source)
