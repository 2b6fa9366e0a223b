"""SpikeInterface curation format version 2, both ways (no SpikeInterface import needed).

A v2 dict describes removals, merges and splits of the *original* units, applied by
``spikeinterface.curation.apply_curation`` in the order labels → remove → merge → split, and a
unit may take part in one of them only. Manual labels are set on the original unit ids.

- :func:`to_si_dict` gives one such dict when the curation's net effect fits it: every final
  unit is an unchanged original unit, a merge of whole original units, or a part of one split
  original unit; removed units are whole original units; new units carry no tags and the label
  they inherit (v2 labels name original units only; SpikeInterface gives a merge the label its
  units share and split parts the split unit's label, as spikeviz does). Otherwise InputError
  (field ``curation``) says to use :func:`to_si_steps`.
- :func:`to_si_steps` always works: a list of v2 dicts (SpikeInterface's sequential curation,
  ``apply_curation(sorting, steps)``): (1) split original units into the pieces that end up in
  different units, (2) remove and merge pieces into the final units, (3) label the final units.
  Steps with nothing to do are left out.

Labels: an exclusive ``quality`` definition (good/mua/noise/unsorted) and, when tags exist, a
non-exclusive ``tags`` definition (SpikeInterface wants two options at least: a lone tag is
listed with ``untagged``, which no unit carries).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .curation import LABELS

QUALITY = "quality"
TAGS = "tags"


def _py(value):
    return value.item() if isinstance(value, np.generic) else value


def _net_effect(cur):
    """Where the spikes of every original unit end up.

    Returns ``(pieces, roots)``: ``pieces[u]`` lists ``(dest_slot or -1, indices into the
    original unit's train)`` for every original unit slot ``u`` whose spikes left it (or that
    was removed); ``roots[slot]`` the original slots a current unit descends from.
    """
    original = cur.original
    n_orig = original.num_units
    alive = np.zeros(len(cur._slot_ids), dtype=bool)
    alive[list(cur._alive)] = True
    slot = cur._spike_slot
    dest = np.where(alive[slot], slot, -1)
    origin = original.unit_index
    moved = np.flatnonzero(dest != origin)
    pieces: dict[int, list] = {}
    if moved.size:
        key = origin[moved].astype(np.int64) * (len(alive) + 1) + (dest[moved] + 1)
        keys, inverse = np.unique(key, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(keys.size + 1))
        for k, value in enumerate(keys.tolist()):
            u, d = divmod(value, len(alive) + 1)
            positions = moved[order[bounds[k]:bounds[k + 1]]]
            unit_positions = original.spike_indices(original.unit_ids[u])
            within = np.searchsorted(unit_positions, positions)
            pieces.setdefault(u, []).append((d - 1, within))
    counts = original.spike_counts().to_numpy()
    for u, parts in pieces.items():  # unchanged spikes of units that lost some
        if sum(w.size for _, w in parts) < counts[u]:
            rest = np.setdiff1d(np.arange(counts[u]), np.concatenate([w for _, w in parts]))
            parts.append((u if alive[u] else -1, rest))

    roots: dict[int, set] = {}

    def root_of(s):
        if s not in roots:
            roots[s] = {s} if s < n_orig else set().union(*(root_of(p) for p in cur._parents[s]))
        return roots[s]

    for s in list(cur._alive) + sorted(cur._removed):
        root_of(s)
    return pieces, roots


def _label_definitions(tags: set) -> dict:
    definitions = {QUALITY: {"label_options": list(LABELS), "exclusive": True}}
    if tags:
        options = sorted(tags)
        if len(options) == 1:
            options.append("untagged")
        definitions[TAGS] = {"label_options": options, "exclusive": False}
    return definitions


def _manual_labels(cur, slots) -> tuple[list, set]:
    labels, all_tags = [], set()
    for s in slots:
        label, tags = cur._labels.get(s, "unsorted"), sorted(cur._tags.get(s, ()))
        if label == "unsorted" and not tags:
            continue
        entry = {"unit_id": _py(cur._slot_ids[s]), "labels": {QUALITY: [label]}}
        if tags:
            entry["labels"][TAGS] = tags
            all_tags.update(tags)
        labels.append(entry)
    return labels, all_tags


def _ids(cur, slots) -> list:
    return [_py(cur._slot_ids[s]) for s in slots]


def to_si_dict(cur) -> dict:
    with cur._lock:
        n_orig = cur.original.num_units
        pieces, roots = _net_effect(cur)
        problem = None
        removed, merges, splits = set(), [], {}
        for s in cur._removed:
            if any(len(pieces.get(r, [])) > 1 for r in roots[s]):
                problem = f"removed unit {cur._slot_ids[s]!r} is part of a split unit"
            removed |= roots[s]
        for s in cur._alive:
            if s < n_orig:
                continue
            rs = roots[s]
            inherited = {cur._labels.get(r, "unsorted") for r in rs}
            inherited = inherited.pop() if len(inherited) == 1 else "unsorted"
            if cur._labels.get(s, "unsorted") != inherited or cur._tags.get(s):
                problem = f"new unit {cur._slot_ids[s]!r} has tags or a label of its own"
            whole = all(len(pieces.get(r, [])) <= 1 for r in rs)
            if whole and len(rs) >= 2:
                merges.append({"unit_ids": _ids(cur, sorted(rs)),
                               "new_unit_id": _py(cur._slot_ids[s])})
            elif len(rs) == 1 and not whole:
                (r,) = rs
                if any(d == -1 or roots.get(d) != {r} for d, _ in pieces[r]):
                    problem = f"unit {cur._slot_ids[r]!r} was split and partly merged or removed"
                splits[r] = pieces[r]
            elif len(rs) == 1:
                problem = f"unit {cur._slot_ids[s]!r} is an original unit under a new id"
            else:
                problem = f"unit {cur._slot_ids[s]!r} mixes parts of units"
        if problem:
            raise InputError(f"this curation does not fit one SpikeInterface v2 curation dict "
                             f"({problem}); use to_spikeinterface_curation_steps()",
                             field="curation")
        sources = {r for s in cur._alive for r in roots[s]}
        labels, tags = _manual_labels(cur, sorted(sources))
        return {
            "format_version": "2",
            "unit_ids": _ids(cur, range(n_orig)),
            "label_definitions": _label_definitions(tags),
            "manual_labels": labels,
            "removed": _ids(cur, sorted(removed)),
            "merges": merges,
            "splits": [{"unit_id": _py(cur._slot_ids[r]), "mode": "indices",
                        "indices": [w.tolist() for _, w in parts],
                        "new_unit_ids": _ids(cur, [d for d, _ in parts])}
                       for r, parts in sorted(splits.items())],
        }


def to_si_steps(cur) -> list[dict]:
    with cur._lock:
        n_orig = cur.original.num_units
        pieces, roots = _net_effect(cur)
        temp = [max(cur._next_id, cur._first_free_id(cur._slot_ids))]

        def fresh():
            temp[0] += 1
            return str(temp[0] - 1) if cur._str_ids else temp[0] - 1

        # what each final/removed slot is made of: ids after step 1
        made_of: dict[int, list] = {s: [] for s in list(cur._alive) + sorted(cur._removed)}
        step1 = []
        for u, parts in sorted(pieces.items()):
            if len(parts) == 1:
                d = parts[0][0]
                made_of[d if d >= 0 else _removed_slot(cur, roots, u)].append(
                    _py(cur._slot_ids[u]))
                continue
            new_ids = []
            for d, _ in parts:
                new = _py(cur._slot_ids[d]) if d >= 0 and roots[d] == {u} else fresh()
                new_ids.append(new)
                made_of[d if d >= 0 else _removed_slot(cur, roots, u)].append(new)
            step1.append({"unit_id": _py(cur._slot_ids[u]), "mode": "indices",
                          "indices": [w.tolist() for _, w in parts], "new_unit_ids": new_ids})
        for s in made_of:  # units without spikes that were merged or removed
            for r in roots[s]:
                if r not in pieces and r not in cur._alive and \
                        _py(cur._slot_ids[r]) not in made_of[s]:
                    made_of[s].append(_py(cur._slot_ids[r]))
        steps = []
        unit_ids0 = _ids(cur, range(n_orig))
        after1 = [x for x in unit_ids0 if x not in {st["unit_id"] for st in step1}] + \
            [x for st in step1 for x in st["new_unit_ids"]]
        if step1:
            steps.append(_step(unit_ids0, splits=step1))
        removed = [x for s in cur._removed for x in made_of[s]]
        merges = []
        for s in cur._alive:
            parts = made_of.get(s, [])
            final = _py(cur._slot_ids[s])
            if len(parts) >= 2:
                merges.append({"unit_ids": parts, "new_unit_id": final})
            elif len(parts) == 1 and parts[0] != final:
                raise InputError(f"unit {final!r} is original unit {parts[0]!r} under a new id; "
                                 f"SpikeInterface's format cannot rename units",
                                 field="curation")
        if removed or merges:
            steps.append(_step(after1, removed=removed, merges=merges))
        labels, tags = _manual_labels(cur, list(cur._alive))
        final_ids = _ids(cur, list(cur._alive))
        if labels or not steps:
            steps.append(_step(final_ids if steps else unit_ids0, labels=labels, tags=tags))
        return steps


def _removed_slot(cur, roots, u) -> int:
    for s in sorted(cur._removed):
        if u in roots[s]:
            return s
    raise AssertionError(u)


def _step(unit_ids, removed=(), merges=(), splits=(), labels=(), tags=()) -> dict:
    return {"format_version": "2", "unit_ids": list(unit_ids),
            "label_definitions": _label_definitions(set(tags)), "manual_labels": list(labels),
            "removed": list(removed), "merges": list(merges), "splits": list(splits)}


# -- import ---------------------------------------------------------------------------------
def from_si(cur, curation) -> None:
    """Apply a v2 dict (or a list of them, in order) to ``cur`` as logged actions."""
    steps = curation if isinstance(curation, list) else [curation]
    for i, step in enumerate(steps):
        field = f"curation[{i}]" if isinstance(curation, list) else "curation"
        if not isinstance(step, dict):
            raise InputError("expected a curation dict", field=field)
        try:
            _apply_step(cur, step, field)
        except InputError as error:
            if error.field and error.field.startswith("curation"):
                raise
            raise InputError(error.message, field=f"{field}.{error.field}") from None


def _apply_step(cur, step: dict, field: str) -> None:
    version = str(step.get("format_version"))
    if version not in ("1", "2"):
        raise InputError(f"format_version must be '2' (or '1'), got {version!r}",
                         field=f"{field}.format_version")
    current = [_py(u) for u in cur.sorting.unit_ids.tolist()]
    listed = step.get("unit_ids")
    if not isinstance(listed, list) or {str(u) for u in listed} != {str(u) for u in current}:
        raise InputError("unit_ids do not match the sorting's units", field=f"{field}.unit_ids")
    lookup = {str(u): u for u in current}

    def unit(u):
        return lookup.get(str(u), u)

    definitions = step.get("label_definitions") or {}
    by_label: dict[str, list] = {}
    by_tags: dict[tuple, list] = {}
    for entry in step.get("manual_labels") or []:
        uid = unit(entry.get("unit_id"))
        values = entry.get("labels") or {k: v for k, v in entry.items() if k != "unit_id"}
        tags = set()
        for key, chosen in values.items():
            chosen = list(chosen) if isinstance(chosen, list | tuple) else [chosen]
            exclusive = (definitions.get(key) or {}).get("exclusive", False)
            if exclusive and len(chosen) == 1 and chosen[0] in LABELS:
                by_label.setdefault(chosen[0], []).append(uid)
            else:
                tags.update(str(t) for t in chosen if str(t).strip())
        if tags:
            by_tags.setdefault(tuple(sorted(tags)), []).append(uid)
    for label, uids in by_label.items():
        cur.label(uids, label)
    for tags, uids in by_tags.items():
        cur.tag(uids, list(tags))
    removed = step.get("removed") or step.get("removed_units") or []
    if removed:
        cur.remove([unit(u) for u in removed])
    merges = step.get("merges") or [{"unit_ids": g} for g in step.get("merge_unit_groups") or []]
    if isinstance(merges, dict):
        merges = [{"unit_ids": g, "new_unit_id": k} for k, g in merges.items()]
    for merge in merges:
        if isinstance(merge, list):
            merge = {"unit_ids": merge}
        new = merge.get("new_unit_id")
        cur.merge([unit(u) for u in merge["unit_ids"]], new_unit_id=new)
    for split in step.get("splits") or []:
        uid = unit(split["unit_id"])
        if split.get("mode", "indices") == "labels":
            labels = np.asarray(split.get("labels") or [])
            if labels.size != cur.sorting.spike_counts().get(uid, -1):
                raise InputError(f"a 'labels' split of unit {uid!r} needs one label per spike",
                                 field="splits")
            groups = [np.flatnonzero(labels == v) for v in np.unique(labels)]
        else:
            groups = split.get("indices") or []
        cur._split_groups(uid, groups, split.get("new_unit_ids"))
