"""Comparison: two sortings (or ground truth vs a tested sorter), their agreement and matching.

Built by :func:`compare` (``sv.compare``). Everything is computed once at construction (the
coincidence sweep is linear in the spikes, the rest is units x units) and exposed as pandas
objects indexed by unit id. The numbers are SpikeInterface's ``compare_two_sorters``
(``ground_truth=False``) and ``compare_sorter_to_ground_truth`` (``ground_truth=True``); see
:mod:`spikeviz.compute.comparison` and :mod:`spikeviz.compute.comparison_gt`.

**Unmatched units** are *missing* values (``pd.NA``; test with ``matches.isna()``), in a
nullable Series of the other sorting's id type (``Int64`` or ``string``), where
SpikeInterface writes -1 or "": -1 and "" can be real unit ids here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import param

from ..compute import comparison as cc
from ..compute import comparison_gt as gt
from ..errors import InputError
from .session import Session
from .sorting import Sorting

#: Relative difference of sampling rates accepted between sortings (SpikeInterface's 0.1 %).
RATE_TOLERANCE = 1e-3

#: Builds a comparison's dashboard (``Comparison.show``); set by the app layer, so that the
#: model imports no UI code.
dashboard_factory = None


def as_sorting(obj, field: str):
    """``(sorting, session or None)`` from a spikeviz Sorting or Session."""
    if isinstance(obj, Session):
        return obj.sorting, obj
    if isinstance(obj, Sorting):
        return obj, None
    raise InputError(f"expected a spikeviz Sorting or Session, got {type(obj).__name__}",
                     field=field)


def common_rate(sortings, names) -> float:
    """The first sorting's sampling rate, after checking that all agree within 0.1 %."""
    rate = float(sortings[0].sampling_frequency)
    for s, name in zip(sortings[1:], names[1:], strict=True):
        if abs(s.sampling_frequency - rate) >= RATE_TOLERANCE * rate:
            raise InputError(f"sortings to compare must have the same sampling frequency: "
                             f"{names[0]!r} has {rate:g} Hz, {name!r} has "
                             f"{s.sampling_frequency:g} Hz", field="sampling_frequency")
    return rate


def id_series(positions, index_ids, target_ids, name=None) -> pd.Series:
    """Series index_ids -> target_ids[positions] (missing where the position is -1)."""
    positions = np.asarray(positions, dtype=np.int64)
    target_ids = np.asarray(target_ids)
    dtype = "Int64" if target_ids.dtype.kind in "iu" else "string"
    values = pd.array([None] * positions.size, dtype=dtype)
    ok = positions >= 0
    if ok.any():
        values[np.flatnonzero(ok)] = target_ids[positions[ok]]
    return pd.Series(values, index=pd.Index(index_ids, name=name), name=None)


def plain(value):
    """A JSON-ready Python scalar (None for missing)."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


class Comparison(param.Parameterized):
    """Agreement and matching of two sortings of the same recording.

    ``sorting1`` is the ground truth when ``ground_truth`` is True. Results are read-only
    properties: :attr:`match_counts`, :attr:`agreement`, :attr:`matches`,
    :attr:`best_matches`, :attr:`performance`, :attr:`unit_categories`,
    :attr:`category_counts`; and :meth:`confusion_matrix`, :meth:`ordered_agreement`,
    :meth:`matched_spikes`, :meth:`summary`, :meth:`to_json`.
    """

    sorting1 = param.ClassSelector(class_=Sorting, constant=True, doc="First (or ground truth).")
    sorting2 = param.ClassSelector(class_=Sorting, constant=True, doc="Second (or tested).")
    session1 = param.ClassSelector(class_=Session, default=None, allow_None=True, constant=True,
                                   doc="The Session sorting1 came from (None for a Sorting).")
    session2 = param.ClassSelector(class_=Session, default=None, allow_None=True, constant=True,
                                   doc="The Session sorting2 came from (None for a Sorting).")
    names = param.Tuple(default=("sorting1", "sorting2"), length=2, constant=True,
                        doc="Display names of the two sortings.")
    delta_ms = param.Number(default=0.4, bounds=(0, None), constant=True, doc="""
        Coincidence window, ms: spikes within int(delta_ms / 1000 * fs) samples coincide.""")
    ground_truth = param.Boolean(default=False, constant=True, doc="""
        sorting1 is the ground truth: one-directional counts, performance, categories.""")
    match_score = param.Number(default=0.5, bounds=(0, 1), constant=True,
                               doc="Minimum agreement of a Hungarian match.")
    chance_score = param.Number(default=0.1, bounds=(0, 1), constant=True,
                                doc="Minimum agreement of a best match (a possible match).")
    well_detected_score = param.Number(default=gt.WELL_DETECTED_SCORE, bounds=(0, 1),
                                       constant=True)
    redundant_score = param.Number(default=gt.REDUNDANT_SCORE, bounds=(0, 1), constant=True)
    overmerged_score = param.Number(default=gt.OVERMERGED_SCORE, bounds=(0, 1), constant=True)
    exhaustive_gt = param.Boolean(default=False, constant=True, doc="""
        The ground truth holds every real unit: false positive, redundant, overmerged and bad
        units are meaningful (SpikeInterface's exhaustive_gt).""")
    match_mode = param.Selector(default="hungarian", objects=["hungarian", "best"],
                                constant=True, doc="Match used for the ground-truth counts.")

    def __init__(self, sorting1, sorting2, names=None, _counts=None, **params):
        s1, session1 = as_sorting(sorting1, "sorting1")
        s2, session2 = as_sorting(sorting2, "sorting2")
        ground_truth = bool(params.get("ground_truth", False))
        if names is None:
            names = ("ground truth", "tested") if ground_truth else ("sorting1", "sorting2")
        names = tuple(str(n) for n in names)
        delta_ms = params.get("delta_ms", 0.4)
        if not isinstance(delta_ms, int | float) or not np.isfinite(delta_ms) or delta_ms < 0:
            raise InputError(f"delta_ms must be a number of ms >= 0, got {delta_ms!r}",
                             field="delta_ms")
        if len(names) != 2:
            raise InputError(f"names must be two names, got {len(names)}", field="names")
        super().__init__(sorting1=s1, sorting2=s2, session1=session1, session2=session2,
                         names=names, **params)
        self.sampling_frequency = common_rate([s1, s2], names)
        self.delta_samples = cc.delta_samples(self.delta_ms, self.sampling_frequency)
        self._compute(_counts)

    # -- computation -------------------------------------------------------------------------
    def _compute(self, counts=None) -> None:
        s1, s2 = self.sorting1, self.sorting2
        self._n1 = s1.spike_counts().to_numpy().astype(np.int64)
        self._n2 = s2.spike_counts().to_numpy().astype(np.int64)
        if counts is None:
            counts = cc.match_counts(s1.sample_index, s1.unit_index, s1.num_units,
                                     s2.sample_index, s2.unit_index, s2.num_units,
                                     self.delta_samples, symmetric=not self.ground_truth,
                                     counts2=self._n2)
        self._counts = counts
        self._scores = cc.agreement_scores(self._counts, self._n1, self._n2)
        self._hungarian = cc.hungarian_match(self._scores, self.match_score)
        self._best = cc.best_match(self._scores, self.chance_score)

    def _frame(self, values) -> pd.DataFrame:
        return pd.DataFrame(values, index=pd.Index(self.sorting1.unit_ids, name=self.names[0]),
                            columns=pd.Index(self.sorting2.unit_ids, name=self.names[1]))

    def with_thresholds(self, **params) -> Comparison:
        """The same comparison with other scores (``match_score``, ``chance_score``,
        ``well_detected_score``, ``redundant_score``, ``overmerged_score``), ``exhaustive_gt``
        or ``match_mode``, reusing the coincidence counts (no new sweep over the spikes)."""
        allowed = {"match_score", "chance_score", "well_detected_score", "redundant_score",
                   "overmerged_score", "exhaustive_gt", "match_mode"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise InputError(f"with_thresholds takes {sorted(allowed)}, not {unknown}",
                             field=unknown[0])
        values = {name: getattr(self, name) for name in allowed | {"delta_ms", "ground_truth"}}
        values.update(params)
        return Comparison(self.session1 or self.sorting1, self.session2 or self.sorting2,
                          names=self.names, _counts=self._counts, **values)

    @property
    def _match12(self) -> np.ndarray:
        return (self._hungarian if self.match_mode == "hungarian" else self._best)[0]

    # -- results -----------------------------------------------------------------------------
    @property
    def unit_ids1(self) -> np.ndarray:
        return self.sorting1.unit_ids

    @property
    def unit_ids2(self) -> np.ndarray:
        return self.sorting2.unit_ids

    @property
    def match_count_values(self) -> np.ndarray:
        """Coincident spikes by unit position, int64 (units1, units2), read-only."""
        return _read_only(self._counts)

    @property
    def agreement_values(self) -> np.ndarray:
        """Agreement scores by unit position, float64 (units1, units2), read-only."""
        return _read_only(self._scores)

    @property
    def hungarian_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(position in sorting2 of each unit1's Hungarian match, position in sorting1 of each
        unit2's), int64, -1 when unmatched; read-only."""
        m12, m21 = self._hungarian
        return _read_only(m12), _read_only(m21)

    @property
    def match_counts(self) -> pd.DataFrame:
        """Coincident spikes of every unit pair (int64, units1 x units2)."""
        return self._frame(self._counts.copy())

    @property
    def agreement(self) -> pd.DataFrame:
        """Agreement scores matches / (n1 + n2 - matches) (float64, units1 x units2)."""
        return self._frame(self._scores.copy())

    @property
    def matches(self) -> pd.Series:
        """Hungarian match unit1 -> unit2 (missing when unmatched)."""
        return id_series(self._hungarian[0], self.unit_ids1, self.unit_ids2, self.names[0])

    @property
    def matches_21(self) -> pd.Series:
        """Hungarian match unit2 -> unit1 (missing when unmatched)."""
        return id_series(self._hungarian[1], self.unit_ids2, self.unit_ids1, self.names[1])

    @property
    def best_matches(self) -> pd.Series:
        """Each unit1's best unit2 when scoring >= chance_score (not one-to-one)."""
        return id_series(self._best[0], self.unit_ids1, self.unit_ids2, self.names[0])

    @property
    def best_matches_21(self) -> pd.Series:
        """Each unit2's best unit1 when scoring >= chance_score."""
        return id_series(self._best[1], self.unit_ids2, self.unit_ids1, self.names[1])

    @property
    def num_matched(self) -> int:
        return int((self._hungarian[0] >= 0).sum())

    @property
    def performance(self) -> pd.DataFrame | None:
        """Per ground-truth unit (index ``gt_unit_id``): accuracy, recall, precision,
        false_discovery_rate, miss_rate (float), tp, fn, fp, num_gt, num_tested (int) and
        tested_id (its match, missing if none). None unless ``ground_truth``."""
        if not self.ground_truth:
            return None
        match12 = self._match12
        count = gt.count_scores(self._counts, self._n1, self._n2, match12)
        rates = gt.performance(count["tp"], count["fn"], count["fp"], count["num_gt"])
        table = pd.DataFrame({**rates, **count}, index=pd.Index(self.unit_ids1,
                                                                name="gt_unit_id"))
        table["tested_id"] = id_series(match12, self.unit_ids1, self.unit_ids2).array
        return table

    @property
    def unit_categories(self) -> pd.DataFrame | None:
        """Per tested unit (index ``tested_unit_id``), a boolean column per category:
        well_detected, and with ``exhaustive_gt`` false_positive, redundant, overmerged, bad.
        None unless ``ground_truth``."""
        if not self.ground_truth:
            return None
        flags = gt.unit_categories(
            self._scores, *self._hungarian, *self._best,
            well_detected_score=self.well_detected_score, redundant_score=self.redundant_score,
            overmerged_score=self.overmerged_score, exhaustive_gt=self.exhaustive_gt)
        return pd.DataFrame(flags, index=pd.Index(self.unit_ids2, name="tested_unit_id"))

    @property
    def category_counts(self) -> dict | None:
        """SpikeInterface's ``count_units_categories``: num_gt, num_sorter,
        num_well_detected and, with ``exhaustive_gt``, num_overmerged, num_redundant,
        num_false_positive, num_bad. None unless ``ground_truth``."""
        categories = self.unit_categories
        if categories is None:
            return None
        out = {"num_gt": self.sorting1.num_units, "num_sorter": self.sorting2.num_units}
        for name in ("well_detected", "overmerged", "redundant", "false_positive", "bad"):
            if name in categories:
                out[f"num_{name}"] = int(categories[name].sum())
        return out

    def confusion_matrix(self) -> pd.DataFrame:
        """SpikeInterface's confusion matrix (int): rows = units1 (matched first, in unit
        order, then the unmatched) + "FP", columns = their partners in that order, then the
        other units2 + "FN". Uses the Hungarian match (``match_mode`` with ground truth)."""
        match12 = self._match12 if self.ground_truth else self._hungarian[0]
        matrix, rows, cols = gt.confusion_matrix(self._counts, self._n1, self._n2, match12)
        index = [*self.unit_ids1[rows].tolist(), "FP"]
        columns = [*self.unit_ids2[cols].tolist(), "FN"]
        return pd.DataFrame(matrix, index=pd.Index(index, dtype=object, name=self.names[0]),
                            columns=pd.Index(columns, dtype=object, name=self.names[1]))

    def ordered_agreement(self) -> pd.DataFrame:
        """The agreement matrix with rows by decreasing best score and each row's best free
        column next, so that matches lie on the diagonal (SpikeInterface's
        ``get_ordered_agreement_scores``; what the heatmap shows)."""
        rows, cols = cc.ordered_agreement(self._scores)
        return self.agreement.iloc[rows, cols]

    def matched_spikes(self, unit1, unit2):
        """``(idx1, idx2)``: positions in ``sorting1.spike_train(unit1)`` and
        ``sorting2.spike_train(unit2)`` of coincident spikes, paired one to one, earliest
        first (see :func:`spikeviz.compute.comparison.matched_spikes`)."""
        train1 = self.sorting1.spike_train(unit1)
        train2 = self.sorting2.spike_train(unit2)
        return cc.matched_spikes(train1, train2, self.delta_samples)

    # -- reports -----------------------------------------------------------------------------
    def summary(self) -> dict:
        """Numbers for a one-screen report: units per side, matches, mean agreement of the
        matches and, with ground truth, the category counts and mean accuracy/recall/
        precision over ground-truth units (SpikeInterface's pooled_with_average)."""
        m12 = self._hungarian[0]
        rows = np.flatnonzero(m12 >= 0)
        mean = float(self._scores[rows, m12[rows]].mean()) if rows.size else None
        out = {"names": list(self.names), "ground_truth": self.ground_truth,
               "delta_ms": self.delta_ms, "delta_samples": self.delta_samples,
               "sampling_frequency": self.sampling_frequency,
               "num_units1": self.sorting1.num_units, "num_units2": self.sorting2.num_units,
               "num_spikes1": self.sorting1.num_spikes, "num_spikes2": self.sorting2.num_spikes,
               "num_matched": int(rows.size), "mean_agreement_matched": mean}
        if self.ground_truth:
            perf = self.performance
            out["category_counts"] = self.category_counts
            for name in ("accuracy", "recall", "precision"):
                out[f"mean_{name}"] = float(perf[name].mean()) if len(perf) else None
        return out

    def to_json(self) -> dict:
        """A JSON-ready dict: ``summary``, ``matches`` {unit1: unit2 or null}, ``agreement``
        {unit1: {unit2: score}}, and with ground truth ``performance`` {gt unit: {accuracy,
        recall, precision, false_discovery_rate, miss_rate, tp, fn, fp, num_gt, num_tested,
        tested_id}} and ``category_counts``. Unit ids as keys are strings (JSON)."""
        ids2 = [plain(u) for u in self.unit_ids2.tolist()]
        out = {
            "summary": self.summary(),
            "names": list(self.names),
            "matches": {str(u): plain(v) for u, v in self.matches.items()},
            "agreement": {str(u1): dict(zip(map(str, ids2), row.tolist(), strict=True))
                          for u1, row in zip(self.unit_ids1.tolist(), self._scores,
                                             strict=True)},
        }
        if self.ground_truth:
            perf = self.performance
            out["performance"] = {
                str(u): {k: plain(v) for k, v in row.items()}
                for u, row in zip(perf.index.tolist(), perf.to_dict("records"), strict=True)}
            out["category_counts"] = self.category_counts
        return out

    def show(self, **params):
        """The comparison dashboard (inline in Jupyter), when the app provides one."""
        if dashboard_factory is None:
            raise RuntimeError("the comparison dashboard is not available in this version")
        return dashboard_factory(self, **params)

    def __repr__(self) -> str:
        kind = "ground truth" if self.ground_truth else "two sorters"
        return (f"Comparison({kind}: {self.names[0]!r} {self.sorting1.num_units} units vs "
                f"{self.names[1]!r} {self.sorting2.num_units} units, {self.num_matched} "
                f"matched, delta {self.delta_ms:g} ms)")

    __str__ = __repr__


def compare(sorting1, sorting2, delta_ms: float = 0.4, ground_truth: bool = False,
            names=None, match_score: float = 0.5, chance_score: float = 0.1,
            **params) -> Comparison:
    """Compare two sortings (spikeviz Sorting or Session) of the same recording.

    ``ground_truth=True``: ``sorting1`` is the ground truth (SpikeInterface's
    ``compare_sorter_to_ground_truth``), else the comparison is symmetric
    (``compare_two_sorters``). ``params``: ``well_detected_score`` (0.8),
    ``redundant_score`` (0.2), ``overmerged_score`` (0.2), ``exhaustive_gt`` (False),
    ``match_mode`` ('hungarian' | 'best').
    """
    return Comparison(sorting1, sorting2, names=names, delta_ms=delta_ms,
                      ground_truth=ground_truth, match_score=match_score,
                      chance_score=chance_score, **params)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view
