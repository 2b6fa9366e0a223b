"""Multi-sorter comparison: the agreement graph, its consensus units and their spike trains.

SpikeInterface's ``MultiSortingComparison`` with a deterministic order:

- *nodes* are (sorting k, unit position u), numbered sorting by sorting, unit by unit;
- *edges* are the Hungarian matches of every pairwise (symmetric) comparison, weighted by
  their agreement score;
- *cleaning*: in each connected component where a sorting has several units, the
  ``units - 1`` weakest edges of those units are removed (sortings in name order; within the
  component's working copy, the unit that lost an edge leaves before the next sorting is
  cleaned, as SpikeInterface does);
- each connected component of the cleaned graph is a *consensus unit*: its agreement number
  is its node count, its average agreement the mean weight of its edges. Consensus units are
  numbered in the order of their first node.

SpikeInterface iterates the nodes of a component in Python set order (it varies with the
hash seed); here it is node order. That only matters for ties: equal weights when choosing
edges to remove or the strongest edge, and which train comes first in a union (see
:func:`consensus_train`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: SpikeInterface's ``compare_spike_trains`` pairs spikes within ``delta_frames // 2`` with its
#: default ``delta_frames=10``: 5 samples, whatever the comparison's own delta.
CONSENSUS_DELTA_SAMPLES = 5


def _components(num_nodes: int, adjacency: list[dict]) -> list[list[int]]:
    """Connected components, each sorted, in the order of their first node."""
    seen = np.zeros(num_nodes, dtype=bool)
    out = []
    for start in range(num_nodes):
        if seen[start]:
            continue
        seen[start] = True
        stack, members = [start], [start]
        while stack:
            node = stack.pop()
            for nbr in adjacency[node]:
                if not seen[nbr]:
                    seen[nbr] = True
                    stack.append(nbr)
                    members.append(nbr)
        out.append(sorted(members))
    return out


def consensus_units(num_units, edges, names) -> list[dict]:
    """The consensus units of the agreement graph.

    ``num_units``: units per sorting; ``edges``: (node_a, node_b, weight) with node numbers
    ``offset[k] + u``; ``names``: the sortings' names (the cleaning visits them sorted).
    Returns one dict per consensus unit: ``nodes`` (sorted node numbers), ``sorting_units``
    ({sorting k: unit position}; with two units of one sorting, the one with the largest total
    edge weight), ``agreement_number``, ``avg_agreement``, ``edges`` (a, b, weight) and
    ``strongest`` (the heaviest edge, first on ties; None for a single node).
    """
    num_units = [int(n) for n in num_units]
    offsets = np.concatenate([[0], np.cumsum(num_units)]).astype(np.int64)
    num_nodes = int(offsets[-1])
    sorter_of = np.repeat(np.arange(len(num_units)), num_units)
    adjacency: list[dict] = [{} for _ in range(num_nodes)]
    for a, b, w in edges:
        a, b = int(a), int(b)
        if sorter_of[a] == sorter_of[b]:
            raise InputError("an agreement edge joins two units of the same sorting",
                             field="edges")
        adjacency[a][b] = adjacency[b][a] = float(w)
    clean = [dict(adj) for adj in adjacency]
    name_order = sorted(range(len(names)), key=lambda k: str(names[k]))
    for members in _components(num_nodes, adjacency):
        if len(members) < 2:
            continue
        sorters, counts = np.unique(sorter_of[members], return_counts=True)
        if not np.any(counts > 1):
            continue
        duplicated = set(sorters[counts > 1].tolist())
        sub = {n: dict(adjacency[n]) for n in members}  # the working copy (``sg``)
        for k in (k for k in name_order if k in duplicated):
            dups = [n for n in sorted(sub) if sorter_of[n] == k]
            found = [(n, nbr, w) for n in dups for nbr, w in sorted(sub[n].items())]
            order = np.argsort(np.array([w for _, _, w in found]), kind="stable")
            removed = [found[i] for i in order[:len(dups) - 1]]
            for n, nbr, _ in removed:
                clean[n].pop(nbr, None)
                clean[nbr].pop(n, None)
                sub[n].pop(nbr, None)
                if nbr in sub:
                    sub[nbr].pop(n, None)
            for n, _, _ in removed:
                if n in sub:
                    for nbr in sub.pop(n):
                        if nbr in sub:
                            sub[nbr].pop(n, None)
    units = []
    for members in _components(num_nodes, clean):
        unit_edges = [(a, b, clean[a][b]) for a in members for b in sorted(clean[a]) if b > a]
        weights = np.array([w for _, _, w in unit_edges], dtype=np.float64)
        by_sorting: dict[int, int] = {}
        for n in members:
            k = int(sorter_of[n])
            if k in by_sorting:
                previous = offsets[k] + by_sorting[k]
                if sum(clean[n].values()) <= sum(clean[previous].values()):
                    continue
            by_sorting[k] = int(n - offsets[k])
        strongest = None
        if unit_edges:
            a, b, _ = unit_edges[int(np.argmax(weights))]
            strongest = (a, b) if sorter_of[a] <= sorter_of[b] else (b, a)
        units.append({
            "nodes": members,
            "sorting_units": dict(sorted(by_sorting.items())),
            "agreement_number": len(members),
            "avg_agreement": float(weights.mean()) if weights.size else 0.0,
            "edges": unit_edges,
            "strongest": strongest,
        })
    return units


def paired_spikes(train1, train2, delta_samples: int = CONSENSUS_DELTA_SAMPLES):
    """SpikeInterface's ``compare_spike_trains`` labels as booleans ``(tp1, tp2)``.

    Each spike of ``train1`` in turn is paired with the *first* spike of ``train2`` within
    ``delta_samples`` when that spike is not paired yet (no other candidate is tried).
    """
    train1 = np.asarray(train1, dtype=np.int64)
    train2 = np.asarray(train2, dtype=np.int64)
    tp1 = np.zeros(train1.size, dtype=bool)
    tp2 = np.zeros(train2.size, dtype=bool)
    if train1.size == 0 or train2.size == 0:
        return tp1, tp2
    first = np.searchsorted(train2, train1 - delta_samples, side="left")
    inside = first < train2.size
    inside[inside] = train2[first[inside]] <= train1[inside] + delta_samples
    where = np.flatnonzero(inside)
    j = first[where]
    new = np.ones(j.size, dtype=bool)
    new[1:] = j[1:] != j[:-1]  # ``first`` never decreases: a taken spike is the previous one
    tp1[where[new]] = True
    tp2[j[new]] = True
    return tp1, tp2


def consensus_train(train1, train2, mode: str = "union",
                    delta_samples: int = CONSENSUS_DELTA_SAMPLES) -> np.ndarray:
    """The spike train of a consensus unit from its two most agreeing units' trains.

    ``union``: train 1 plus the spikes of train 2 not paired with it (sorted);
    ``intersection``: the spikes of train 1 paired with train 2 (:func:`paired_spikes`).
    """
    tp1, tp2 = paired_spikes(train1, train2, delta_samples)
    if mode == "union":
        return np.sort(np.concatenate([np.asarray(train1, dtype=np.int64),
                                       np.asarray(train2, dtype=np.int64)[~tp2]]))
    if mode == "intersection":
        return np.asarray(train1, dtype=np.int64)[tp1]
    raise InputError(f"spiketrain_mode must be 'union' or 'intersection', got {mode!r}",
                     field="spiketrain_mode")
