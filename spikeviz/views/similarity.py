"""Similarity: the units most similar to the first selected unit, and phy's wizard navigation.

The table lists, best first, the units that may be the same neuron as the first selected
("best") unit: template similarity (cosine, needs the recording) and cross-correlogram
evidence of a shared refractory period, combined into one score, with each unit's label and
spike count. Clicking a row selects ``[best, that unit]`` (phy's similarity view).

The rows come from ``results.similar_units`` (the curated analysis: template similarity and
the merge-suggestion CCG evidence, or without a recording the units nearest in depth ranked by
CCG evidence) when it finds candidates; otherwise (e.g. no recording and no unit depths) from
:func:`similar_units`, computed here from the spike trains over every other unit:

- ``ccg_observed``: pairs (spike of the best unit, spike of the other) with
  ``|lag| < refractory_ms``; ``ccg_expected``: what two independent trains would give,
  ``n_a * n_b * (2 * refractory_samples - 1) / num_samples``;
- ``ccg_contamination`` = observed / expected: ~1 for independent neurons, ~0 for two parts of
  one neuron (they share its refractory period);
- ``ccg_evidence`` R = 1 - min((observed + 1) / (expected + 1), 1) (as in merge suggestions:
  the +1 keeps pairs with little evidence near 0);
- ``score`` = max(similarity, 0) * (1 + R) / 2 with a template similarity, else R.

Wizard (phy's keyboard loop; the methods only write ``selection.unit_ids`` and return the
unit(s) selected): :meth:`next_best` / :meth:`previous_best` walk every unit in a fixed order
(unsorted units first, then by the quality column descending, then by position);
:meth:`next_similar` / :meth:`previous_similar` walk the similarity list of the best unit.
"""

from __future__ import annotations

import html
import logging

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from .base import View
from .common import present_units

COLUMNS = ["unit_id", "score", "similarity", "ccg_contamination", "ccg_observed",
           "ccg_expected", "label", "num_spikes"]
#: What the table shows, always in this order: the columns of both evidence sources (the
#: session's template + CCG suggestions, or the correlogram-only fallback), NaN where a source
#: has no value. Fixed, so a new unit only swaps rows (changing the columns of a shown
#: Tabulator while it redraws raised a JavaScript error in the browser).
TABLE_COLUMNS = ["unit_id", "score", "similarity", "ccg_refractory_ratio", "ccg_shape_distance",
                 "ccg_contamination", "ccg_observed", "ccg_expected", "label", "num_spikes"]
#: Column headers a person reads (the frame keeps the field names).
TITLES = {"unit_id": "unit", "score": "score", "similarity": "template sim.",
          "ccg_refractory_ratio": "CCG refr. ratio", "ccg_shape_distance": "CCG shape dist.",
          "ccg_contamination": "CCG contam.", "ccg_observed": "refr. pairs",
          "ccg_expected": "expected", "label": "label", "num_spikes": "spikes"}
_BLOCK_PAIRS = 2_000_000  # neighbour positions expanded at once
_MEMO = 32  # similarity tables remembered per view (of the current sorting)

log = logging.getLogger(__name__)


def refractory_coincidences(sorting, unit_id, refractory_ms: float) -> np.ndarray:
    """int64 ``(units,)``: pairs (spike of ``unit_id``, spike of unit u) with
    ``|t_u - t| < refractory_ms``, for every unit position u (the own entry excludes a spike
    paired with itself)."""
    # integer lags strictly inside ±refractory: |lag| <= r - 1 with r = ceil(refractory)
    r = max(int(np.ceil(refractory_ms * 1e-3 * sorting.sampling_frequency)), 1)
    samples = sorting.sample_index
    train = sorting.spike_train(unit_id)
    lo = np.searchsorted(samples, train - (r - 1), side="left")
    hi = np.searchsorted(samples, train + (r - 1), side="right")
    counts = np.zeros(sorting.num_units, dtype=np.int64)
    lengths = hi - lo
    start = 0
    cum = np.cumsum(lengths)
    while start < train.size:
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + _BLOCK_PAIRS, side="right"))
        stop = max(stop, start + 1)
        n = lengths[start:stop]
        total = int(n.sum())
        if total:
            offsets = np.repeat(lo[start:stop] - (np.cumsum(n) - n), n)
            positions = np.arange(total) + offsets
            counts += np.bincount(sorting.unit_index[positions], minlength=sorting.num_units)
        start = stop
    counts[sorting.unit_index_of(unit_id)] -= train.size  # each spike met itself
    return counts


def similar_units(session, sorting, unit_id, refractory_ms: float = 1.0,
                  similarity: pd.DataFrame | None = None, labels=None) -> pd.DataFrame:
    """Every other unit of ``sorting`` ranked by similarity to ``unit_id``, best first.

    ``similarity``: a unit x unit template-similarity frame (ids missing from it get NaN);
    None: correlogram evidence only. Columns: ``COLUMNS`` minus ``unit_id`` (the index).
    Ties: higher score, then higher similarity, then larger expected coincidences, then
    sorting position — deterministic.
    """
    ids = sorting.unit_ids
    me = sorting.unit_index_of(unit_id)
    counts = sorting.spike_counts().to_numpy().astype(np.float64)
    num_samples = sorting.num_samples if sorting.num_samples else \
        (int(sorting.sample_index[-1]) + 1 if sorting.num_spikes else 1)
    r = max(int(np.ceil(refractory_ms * 1e-3 * sorting.sampling_frequency)), 1)
    observed = refractory_coincidences(sorting, unit_id, refractory_ms).astype(np.float64)
    expected = counts[me] * counts * (2 * r - 1) / num_samples
    with np.errstate(divide="ignore", invalid="ignore"):
        contamination = np.where(expected > 0, observed / expected, np.nan)
    evidence = 1.0 - np.minimum((observed + 1.0) / (expected + 1.0), 1.0)
    if similarity is not None:
        row = similarity.loc[unit_id] if unit_id in similarity.index else \
            pd.Series(dtype=float)
        sim = row.reindex(ids).to_numpy(dtype=np.float64)
        score = np.maximum(sim, 0.0) * (1.0 + evidence) / 2.0
    else:
        sim = np.full(ids.size, np.nan)
        score = evidence
    if labels is None:
        labels = sorting.labels
    frame = pd.DataFrame({
        "score": score, "similarity": sim, "ccg_contamination": contamination,
        "ccg_observed": observed.astype(np.int64), "ccg_expected": expected,
        "label": labels.reindex(ids).to_numpy(), "num_spikes": counts.astype(np.int64),
        "_position": np.arange(ids.size)}, index=pd.Index(ids, name="unit_id"))
    frame = frame.drop(index=unit_id)
    key = frame.assign(_s=-frame["score"].fillna(-np.inf),
                       _m=-frame["similarity"].fillna(-np.inf), _e=-frame["ccg_expected"])
    frame = frame.loc[key.sort_values(["_s", "_m", "_e", "_position"], kind="stable").index]
    return frame.drop(columns="_position")


class Similarity(View):
    """Units most similar to the first selected unit, plus wizard navigation.

    Exposed for tests: :attr:`best_unit_id`, :attr:`frame` (the table, best first),
    :attr:`similar_ids`, :meth:`best_order`, :attr:`has_templates`.
    """

    top = param.Integer(default=20, bounds=(1, 500), doc="Rows in the table.")
    refractory_ms = param.Number(default=1.0, bounds=(0.05, 20.0), doc="""
        Refractory period for the correlogram evidence (|lag| < refractory_ms), ms.""")
    quality_column = param.String(default="auto", doc="""
        Unit-table column ordering the wizard's best-unit walk (descending) after the
        unsorted units; 'auto': amplitude_uv, else snr, else num_spikes.""")

    def __init__(self, session, selection=None, curation=None, **params):
        super().__init__(session, selection, curation, **params)
        self.best_unit_id = None
        self.frame = pd.DataFrame(columns=COLUMNS[1:]).rename_axis("unit_id")
        self._key = None
        self._memo: dict = {}
        self._source = "local"
        self._order_key = None
        self._order: list = []
        self._syncing = False
        self._info = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["spikeviz-similarity-info"])
        self.table = pn.widgets.Tabulator(
            self._table_value(), selectable=1, disabled=True, show_index=False,
            sizing_mode="stretch_both", min_height=200, layout="fit_data_table",
            formatters={c: NumberFormatter(format="0.000", nan_format="–", text_align="right")
                        for c in ("score", "similarity", "ccg_contamination", "ccg_expected",
                                  "ccg_refractory_ratio", "ccg_shape_distance")},
            titles=dict(TITLES), hidden_columns=self._hidden_columns(),
            css_classes=["spikeviz-similarity"])
        self.table.param.watch(self._on_table_selection, "selection")
        self._layout = pn.Column(self._info, self.table, sizing_mode="stretch_both")
        self._watch(self.selection, "unit_ids", self._changed)
        self._watch(self.curation, "sorting", self._changed)
        self._watch(self, ["top", "refractory_ms"], self._changed)
        self._start()

    # -- data ------------------------------------------------------------------------------
    @property
    def has_templates(self) -> bool:
        """True when template similarity is available (the session has a recording)."""
        return self.session.recording is not None

    @property
    def similar_ids(self) -> list:
        """Unit ids of the table (the ``top`` best), best first: what next_similar walks."""
        return self.frame.index[:self.top].tolist()

    def _labels(self) -> pd.Series:
        return self.sorting.labels

    def compute(self, unit_id) -> pd.DataFrame:
        """The similarity table of ``unit_id``, best first: ``results.similar_units`` (the
        ``top`` best) when it finds candidates with a score, else :func:`similar_units`
        (every other unit; correlogram evidence only without a recording)."""
        sorting = self.sorting
        results = self.results
        self._source = "local"
        if hasattr(results, "similar_units"):
            found = results.similar_units(unit_id, top=self.top)
            if found is not None and len(found) and "score" in found and \
                    np.isfinite(pd.to_numeric(found["score"], errors="coerce")).any():
                frame = found.copy()
                frame["label"] = self._labels().reindex(frame.index).to_numpy()
                frame["num_spikes"] = sorting.spike_counts().reindex(frame.index).to_numpy()
                self._source = "results"
                return frame
        matrix = self.session.compute("template_similarity") if self.has_templates else None
        return similar_units(self.session, sorting, unit_id, self.refractory_ms,
                             similarity=matrix, labels=self._labels())

    def best_order(self) -> list:
        """Every unit id of the current sorting in wizard order: unsorted first, then by
        ``quality_column`` descending (NaN last), then by position. Fixed while the set of
        units is unchanged (labelling during a walk does not reshuffle it)."""
        sorting = self.sorting
        key = (tuple(sorting.unit_ids.tolist()), self.quality_column)
        if key != self._order_key:
            self._order = self._compute_order()
            self._order_key = key
        return list(self._order)

    def _quality(self) -> pd.Series:
        """The wizard's quality per unit: the first of ``quality_column`` ('auto':
        amplitude_uv, then snr) with a finite value in the curated unit frame or, failing
        that, in the sorting's own unit table; else the spike count."""
        sorting = self.sorting
        frames = []
        results = self.results
        if hasattr(results, "unit_frame"):
            try:
                frames.append(results.unit_frame())
            except Exception:  # a failing derived result must not block navigation
                log.warning("unit frame unavailable for the wizard order", exc_info=True)
        frames.append(sorting.unit_table)
        names = [self.quality_column] if self.quality_column != "auto" else \
            ["amplitude_uv", "snr"]
        for name in names:
            for frame in frames:
                if name in frame.columns:
                    values = pd.to_numeric(frame[name], errors="coerce") \
                        .reindex(sorting.unit_ids)
                    if np.isfinite(values.to_numpy(dtype=float)).any():
                        return values
        return sorting.spike_counts().astype(float)

    def _compute_order(self) -> list:
        sorting = self.sorting
        quality = self._quality().to_numpy(dtype=float)
        unsorted = self._labels().reindex(sorting.unit_ids).to_numpy() == "unsorted"
        q = np.where(np.isfinite(quality), -quality, np.inf)
        order = np.lexsort((np.arange(sorting.num_units), q, ~unsorted))
        return sorting.unit_ids[order].tolist()

    # -- drawing ---------------------------------------------------------------------------
    def refresh(self) -> None:
        units = present_units(self.sorting, self.selection.unit_ids)
        best = units[0] if units else None
        key = (self.sorting, best, self.refractory_ms, self.top)
        changed = key != self._key
        if changed:
            self.frame = self._frame_of(key)
            self._key = key
        self.best_unit_id = best
        self._syncing = True
        try:
            if changed:  # the same widget (and Bokeh model): only its data is replaced
                self.table.value = self._table_value()
            second = units[1] if len(units) > 1 else None
            shown = self.similar_ids[:self.top]
            self.table.selection = [shown.index(second)] if second in shown else []
        finally:
            self._syncing = False
        self._info.object = self._info_html()

    def _frame_of(self, key) -> pd.DataFrame:
        """The table of ``key`` = (sorting, best unit, refractory_ms, top), from the last
        ``_MEMO`` ones (the wizard goes back and forth) or computed."""
        if key[1] is None:
            return pd.DataFrame(columns=COLUMNS[1:]).rename_axis("unit_id")
        memo = {k: v for k, v in self._memo.items() if k[0] is key[0]}  # this sorting only
        if key in memo:
            frame, source = memo.pop(key)
        else:
            frame = self.compute(key[1])
            source = self._source
        memo[key] = (frame, source)
        while len(memo) > _MEMO:
            memo.pop(next(iter(memo)))
        self._memo, self._source = memo, source
        return frame

    def _changed(self, *events) -> None:
        self.refresh()

    def _hidden_columns(self) -> list[str]:
        """Columns of the evidence source this session does not use (fixed, see
        :data:`TABLE_COLUMNS`): with templates the correlogram-only columns, without them the
        template similarity."""
        if self.has_templates:
            return ["ccg_contamination", "ccg_observed", "ccg_expected"]
        return ["similarity"]

    def _table_value(self) -> pd.DataFrame:
        return self.frame.head(self.top).reset_index().reindex(columns=TABLE_COLUMNS)

    def _info_html(self) -> str:
        if self.best_unit_id is None:
            return "<i>Select a unit to list the units most similar to it.</i>"
        if self.has_templates:
            source = "template similarity + correlogram evidence (refractory dip, shape)"
        elif self._source == "results":
            source = ("no recording: units nearest in depth, ranked by correlogram evidence "
                      "only")
        else:
            source = ("no recording: correlogram evidence only (pairs sharing a refractory "
                      "period rank first)")
        return (f"<b>Similar to unit {html.escape(str(self.best_unit_id))}</b> "
                f"<span style='color:#666'>&middot; {source}</span>")

    def _on_table_selection(self, event) -> None:
        if self._syncing or not event.new:
            return
        shown = self._table_value()
        row = event.new[0]
        if 0 <= row < len(shown):
            self.select_similar(shown["unit_id"].iloc[row])

    # -- navigation (only writes selection.unit_ids) -----------------------------------------
    def select_similar(self, unit_id) -> list:
        """Select ``[best, unit_id]`` (a click on a table row)."""
        if self.best_unit_id is None:
            self.selection.unit_ids = [unit_id]
        else:
            self.selection.unit_ids = [self.best_unit_id, unit_id]
        return list(self.selection.unit_ids)

    def _current(self):
        units = present_units(self.sorting, self.selection.unit_ids)
        return (units[0] if units else None), (units[1] if len(units) > 1 else None)

    def _step_best(self, step: int):
        order = self.best_order()
        if not order:
            return None
        best, _ = self._current()
        if best in order:
            k = min(max(order.index(best) + step, 0), len(order) - 1)
        else:
            k = 0
        self.selection.unit_ids = [order[k]]
        return order[k]

    def next_best(self):
        """Select the next unit in wizard order (the first one when none is selected);
        stays on the last. Returns the unit id selected."""
        return self._step_best(+1)

    def previous_best(self):
        """Select the previous unit in wizard order; stays on the first."""
        return self._step_best(-1)

    def _step_similar(self, step: int):
        best, current = self._current()
        if best is None:
            return None
        if self.best_unit_id != best or self._key is None or self._key[0] is not self.sorting:
            self.refresh()  # the list must be the current best unit's, even while hidden
        similar = self.similar_ids
        if not similar:
            return None
        k = 0 if current not in similar else \
            min(max(similar.index(current) + step, 0), len(similar) - 1)
        self.selection.unit_ids = [best, similar[k]]
        return similar[k]

    def next_similar(self):
        """Select ``[best, next unit of the similarity list]`` (the first when the second
        selected unit is not in the list); stays on the last. Returns the similar unit id."""
        return self._step_similar(+1)

    def previous_similar(self):
        """Select ``[best, previous unit of the similarity list]``; stays on the first."""
        return self._step_similar(-1)
