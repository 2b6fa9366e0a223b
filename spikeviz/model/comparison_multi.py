"""MultiComparison: N sortings compared pairwise, their agreement graph and consensus units.

Built by :func:`compare_multiple` (``sv.compare_multiple``); SpikeInterface's
``compare_multiple_sorters`` with a deterministic order (see
:mod:`spikeviz.compute.comparison_multi`): every pair of sortings is compared symmetrically
(:class:`~spikeviz.model.comparison.Comparison`), their Hungarian matches are the edges of
an agreement graph, and each connected component of the cleaned graph is a consensus unit,
numbered 0, 1, ... in the order of its first unit (sorting by sorting, unit by unit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import param

from ..compute import comparison_multi as cm
from ..errors import InputError
from .comparison import Comparison, as_sorting, common_rate
from .sorting import Sorting


class MultiComparison(param.Parameterized):
    """Agreement of several sortings of one recording; consensus units and sorting."""

    names = param.List(default=[], item_type=str, constant=True, doc="Names of the sortings.")
    delta_ms = param.Number(default=0.4, bounds=(0, None), constant=True,
                            doc="Coincidence window of the pairwise comparisons, ms.")
    match_score = param.Number(default=0.5, bounds=(0, 1), constant=True)
    chance_score = param.Number(default=0.1, bounds=(0, 1), constant=True)
    spiketrain_mode = param.Selector(default="union", objects=["union", "intersection"],
                                     constant=True, doc="""
        Train of a consensus unit from its two most agreeing units: 'union' (the first's
        spikes plus the second's unpaired ones) or 'intersection' (the first's paired
        spikes); the first is the unit of the earlier sorting.""")

    def __init__(self, sortings, names=None, **params):
        sortings = list(sortings)
        if len(sortings) < 2:
            raise InputError(f"compare_multiple needs at least 2 sortings, got "
                             f"{len(sortings)}", field="sortings")
        pairs = [as_sorting(s, f"sortings[{k}]") for k, s in enumerate(sortings)]
        if names is None:
            names = [f"sorting{k}" for k in range(len(sortings))]
        names = [str(n) for n in names]
        if len(names) != len(sortings) or len(set(names)) != len(names):
            raise InputError(f"names must be {len(sortings)} distinct names, got {names}",
                             field="names")
        super().__init__(names=names, **params)
        self.sortings = [s for s, _ in pairs]
        self.sessions = [session for _, session in pairs]
        self.sampling_frequency = common_rate(self.sortings, names)
        self.comparisons: dict[tuple[str, str], Comparison] = {}
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                self.comparisons[names[i], names[j]] = Comparison(
                    self.sortings[i], self.sortings[j], names=(names[i], names[j]),
                    delta_ms=self.delta_ms, match_score=self.match_score,
                    chance_score=self.chance_score)
        self._offsets = np.concatenate(
            [[0], np.cumsum([s.num_units for s in self.sortings])]).astype(np.int64)
        self._edges = []
        for (a, b), comp in self.comparisons.items():
            i, j = names.index(a), names.index(b)
            m12 = comp._hungarian[0]
            for u1 in np.flatnonzero(m12 >= 0).tolist():
                u2 = int(m12[u1])
                self._edges.append((int(self._offsets[i] + u1), int(self._offsets[j] + u2),
                                    float(comp._scores[u1, u2])))
        self._units = cm.consensus_units([s.num_units for s in self.sortings], self._edges,
                                         names)
        self._trains = None

    def _node(self, node: int):
        k = int(np.searchsorted(self._offsets, node, side="right") - 1)
        return k, self.sortings[k].unit_ids[node - self._offsets[k]]

    @property
    def agreement_graph(self) -> pd.DataFrame:
        """Edges of the agreement graph: one row per Hungarian match of a pair of sortings
        (sorting1, unit_id1, sorting2, unit_id2, agreement) and ``kept``: still an edge
        after the cleaning (False: removed to separate two units of one sorting)."""
        kept = {(a, b) for unit in self._units for a, b, _ in unit["edges"]}
        rows = []
        for a, b, w in self._edges:
            (ka, ua), (kb, ub) = self._node(a), self._node(b)
            rows.append((self.names[ka], ua, self.names[kb], ub, w,
                         (min(a, b), max(a, b)) in kept))
        return pd.DataFrame(rows, columns=["sorting1", "unit_id1", "sorting2", "unit_id2",
                                           "agreement", "kept"])

    @property
    def units(self) -> pd.DataFrame:
        """Every consensus unit (index ``consensus_unit_id``): agreement_number (units in
        it), avg_agreement (mean score of its edges) and one column per sorting name with
        the unit id it holds (missing if none)."""
        columns = {"agreement_number": np.array([u["agreement_number"] for u in self._units],
                                                dtype=np.int64),
                   "avg_agreement": np.array([u["avg_agreement"] for u in self._units],
                                             dtype=np.float64)}
        for k, name in enumerate(self.names):
            ids = self.sortings[k].unit_ids
            values = np.empty(len(self._units), dtype=object)
            for row, unit in enumerate(self._units):
                u = unit["sorting_units"].get(k)
                values[row] = None if u is None else ids[u].item()
            columns[name] = pd.Series(values, dtype=object)  # ids or None, as they are
        table = pd.DataFrame(columns)
        table.index = pd.RangeIndex(len(self._units), name="consensus_unit_id")
        return table

    def consensus_units(self, min_agreement: int = 1, exact: bool = False) -> pd.DataFrame:
        """:attr:`units` found by at least ``min_agreement`` units (exactly that many with
        ``exact``; SpikeInterface's minimum_agreement_count(_only))."""
        min_agreement = int(min_agreement)
        if min_agreement < 1:
            raise InputError(f"min_agreement must be >= 1, got {min_agreement}",
                             field="min_agreement")
        units = self.units
        n = units["agreement_number"]
        return units[n == min_agreement] if exact else units[n >= min_agreement]

    def spike_train(self, consensus_unit_id: int) -> np.ndarray:
        """Spike times (int64 samples) of a consensus unit (see ``spiketrain_mode``)."""
        if self._trains is None:
            self._trains = [self._train(unit) for unit in self._units]
        return self._trains[int(consensus_unit_id)]

    def _train(self, unit) -> np.ndarray:
        if unit["strongest"] is None:
            (k, u), = unit["sorting_units"].items()
            return np.asarray(self.sortings[k].spike_train(self.sortings[k].unit_ids[u]))
        (k1, u1), (k2, u2) = (self._node(n) for n in unit["strongest"])
        return cm.consensus_train(self.sortings[k1].spike_train(u1),
                                  self.sortings[k2].spike_train(u2), self.spiketrain_mode)

    def consensus_sorting(self, min_agreement: int = 1, exact: bool = False) -> Sorting:
        """A spikeviz Sorting of the :meth:`consensus_units` (unit ids = consensus unit ids;
        unit table = their agreement_number, avg_agreement and per-sorting unit ids)."""
        table = self.consensus_units(min_agreement, exact)
        ids = table.index.to_numpy().astype(np.int64)
        trains = [self.spike_train(i) for i in ids]
        sample_index = np.concatenate(trains) if trains else np.zeros(0, np.int64)
        unit_index = np.repeat(np.arange(ids.size, dtype=np.int32),
                               [t.size for t in trains]) if trains else np.zeros(0, np.int32)
        lengths = [s.num_samples for s in self.sortings]
        num_samples = max(lengths) if all(n is not None for n in lengths) else None
        return Sorting.from_arrays(sample_index, unit_index, self.sampling_frequency,
                                   unit_ids=ids, unit_table=table.rename_axis("unit_id"),
                                   num_samples=num_samples,
                                   source="consensus of " + ", ".join(self.names))

    def summary(self) -> dict:
        """Units per sorting, matches per pair, consensus units per agreement number."""
        counts = self.units["agreement_number"].value_counts().sort_index()
        return {"names": list(self.names),
                "num_units": {n: s.num_units for n, s in zip(self.names, self.sortings,
                                                              strict=True)},
                "num_matched": {f"{a} vs {b}": c.num_matched
                                for (a, b), c in self.comparisons.items()},
                "consensus_units_by_agreement": {int(k): int(v) for k, v in counts.items()}}

    def __repr__(self) -> str:
        return (f"MultiComparison({', '.join(self.names)}: {len(self._units)} consensus "
                f"units, delta {self.delta_ms:g} ms)")

    __str__ = __repr__


def compare_multiple(sortings, names=None, delta_ms: float = 0.4, match_score: float = 0.5,
                     chance_score: float = 0.1, spiketrain_mode: str = "union"
                     ) -> MultiComparison:
    """Compare N sortings (spikeviz Sorting or Session) of one recording pairwise and build
    their consensus (SpikeInterface's ``compare_multiple_sorters``)."""
    return MultiComparison(sortings, names=names, delta_ms=delta_ms, match_score=match_score,
                           chance_score=chance_score, spiketrain_mode=spiketrain_mode)
