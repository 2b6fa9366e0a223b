"""Ground-truth comparison: per-unit counts and rates, unit categories, confusion matrix.

Sorting 1 is the ground truth, sorting 2 the tested sorter; units are positions, ``-1`` means
"no unit". Definitions and default thresholds are SpikeInterface's
(``GroundTruthComparison``, ``comparisontools.do_count_score`` / ``compute_performance`` /
``do_confusion_matrix``):

- for a ground-truth unit matched to tested unit m: tp = matches, fn = n_gt - tp,
  fp = n_m - tp; unmatched: tp = fp = 0, fn = n_gt;
- accuracy = tp / (tp + fn + fp), recall = tp / (tp + fn), precision = tp / (tp + fp),
  false_discovery_rate = fp / (tp + fp), miss_rate = fn / n_gt; all 0 when tp = 0 or the
  unit has no spike;
- categories of tested units (thresholds on agreement scores): *well detected*: matched
  with score >= ``well_detected_score`` (0.8); and, meaningful only when the ground truth is
  exhaustive (every real unit is in it): *bad*: not matched; *false positive*: not matched
  and its best ground-truth score (``chance_score`` or more) is absent or below
  ``redundant_score`` (0.2); *redundant*: not matched, best score >= ``redundant_score``, and
  not the best partner of that ground-truth unit; *overmerged*: scores above
  ``overmerged_score`` (0.2, strictly) with two or more ground-truth units.
"""

from __future__ import annotations

import numpy as np

#: SpikeInterface's defaults (``GroundTruthComparison``).
WELL_DETECTED_SCORE = 0.8
REDUNDANT_SCORE = 0.2
OVERMERGED_SCORE = 0.2

PERFORMANCE_NAMES = ("accuracy", "recall", "precision", "false_discovery_rate", "miss_rate")
CATEGORY_NAMES = ("well_detected", "false_positive", "redundant", "overmerged", "bad")


def count_scores(counts, num_spikes1, num_spikes2, match12) -> dict:
    """tp, fn, fp, num_gt, num_tested (int64 per ground-truth unit) for the match ``match12``
    (tested unit index per ground-truth unit, -1 when unmatched)."""
    counts = np.asarray(counts, dtype=np.int64)
    num_spikes1 = np.asarray(num_spikes1, dtype=np.int64)
    num_spikes2 = np.asarray(num_spikes2, dtype=np.int64)
    match12 = np.asarray(match12, dtype=np.int64)
    matched = match12 >= 0
    rows = np.flatnonzero(matched)
    tp = np.zeros(match12.size, dtype=np.int64)
    num_tested = np.zeros(match12.size, dtype=np.int64)
    tp[rows] = counts[rows, match12[rows]]
    num_tested[rows] = num_spikes2[match12[rows]]
    return {"tp": tp, "fn": num_spikes1 - tp, "fp": num_tested - tp,
            "num_gt": num_spikes1.copy(), "num_tested": num_tested}


def performance(tp, fn, fp, num_gt) -> dict:
    """accuracy, recall, precision, false_discovery_rate, miss_rate (float64 per unit)."""
    tp, fn, fp, num_gt = (np.asarray(x, dtype=np.int64) for x in (tp, fn, fp, num_gt))
    keep = (num_gt > 0) & (tp > 0)
    out = {name: np.zeros(tp.size, dtype=np.float64) for name in PERFORMANCE_NAMES}
    t, n, p, g = tp[keep], fn[keep], fp[keep], num_gt[keep]
    out["accuracy"][keep] = t / (t + n + p)
    out["recall"][keep] = t / (t + n)
    out["precision"][keep] = t / (t + p)
    out["false_discovery_rate"][keep] = p / (t + p)
    out["miss_rate"][keep] = n / g
    return out


def unit_categories(scores, hungarian12, hungarian21, best12, best21,
                    well_detected_score: float = WELL_DETECTED_SCORE,
                    redundant_score: float = REDUNDANT_SCORE,
                    overmerged_score: float = OVERMERGED_SCORE,
                    exhaustive_gt: bool = False) -> dict:
    """Boolean per tested unit for each category (``CATEGORY_NAMES``; only
    ``well_detected`` unless ``exhaustive_gt``). ``best12``/``best21`` are the best matches
    at ``chance_score``, ``hungarian*`` the one-to-one matches at ``match_score``."""
    scores = np.asarray(scores, dtype=np.float64)
    n1, n2 = scores.shape
    hungarian21 = np.asarray(hungarian21, dtype=np.int64)
    best12 = np.asarray(best12, dtype=np.int64)
    best21 = np.asarray(best21, dtype=np.int64)
    matched = hungarian21 >= 0
    cols = np.arange(n2)
    score_h = np.zeros(n2)
    score_h[matched] = scores[hungarian21[matched], cols[matched]]
    out = {"well_detected": matched & (score_h >= well_detected_score)}
    if not exhaustive_gt:
        return out
    has_best = best21 >= 0
    score_b = np.zeros(n2)
    score_b[has_best] = scores[best21[has_best], cols[has_best]]
    not_best_of_gt = np.zeros(n2, dtype=bool)
    not_best_of_gt[has_best] = best12[best21[has_best]] != cols[has_best]
    out["false_positive"] = ~matched & (~has_best | (score_b < redundant_score))
    out["redundant"] = ~matched & has_best & not_best_of_gt & (score_b >= redundant_score)
    out["overmerged"] = (scores > overmerged_score).sum(axis=0) > 1 if n1 else \
        np.zeros(n2, dtype=bool)
    out["bad"] = ~matched
    return out


def confusion_matrix(counts, num_spikes1, num_spikes2, match12):
    """SpikeInterface's confusion matrix of a ground-truth comparison.

    Returns ``(matrix, rows, cols)``: ``matrix`` int64 (units1 + 1, units2 + 1); ``rows`` the
    ground-truth unit positions in row order (matched units in unit order, then the
    unmatched), the last row being "FP"; ``cols`` the tested unit positions in column order
    (partners of the matched rows in that order, then the others in unit order), the last
    column being "FN". Cell (gt, its partner) = matches; column FN = gt spikes not matched;
    row FP = tested spikes not matched. With a match that is not one-to-one (best matching,
    where SpikeInterface fails), a tested unit has one column, at its first partner, and its
    FP is its spike count minus the largest match count of its partners.
    """
    counts = np.asarray(counts, dtype=np.int64)
    num_spikes1 = np.asarray(num_spikes1, dtype=np.int64)
    num_spikes2 = np.asarray(num_spikes2, dtype=np.int64)
    match12 = np.asarray(match12, dtype=np.int64)
    n1, n2 = match12.size, num_spikes2.size
    matched_rows = np.flatnonzero(match12 >= 0)
    partners = match12[matched_rows]
    rows = np.concatenate([matched_rows, np.flatnonzero(match12 < 0)]).astype(np.int64)
    _, first = np.unique(partners, return_index=True)
    partner_cols = partners[np.sort(first)]
    cols = np.concatenate([partner_cols, np.flatnonzero(~np.isin(np.arange(n2), partners))])
    cols = cols.astype(np.int64)
    row_at = np.empty(n1, dtype=np.int64)
    row_at[rows] = np.arange(n1)
    col_at = np.empty(n2, dtype=np.int64)
    col_at[cols] = np.arange(n2)
    matrix = np.zeros((n1 + 1, n2 + 1), dtype=np.int64)
    m = counts[matched_rows, partners]
    matrix[row_at[matched_rows], col_at[partners]] = m
    tp = np.zeros(n1, dtype=np.int64)
    tp[matched_rows] = m
    matrix[row_at, -1] = num_spikes1 - tp
    best = np.zeros(n2, dtype=np.int64)
    np.maximum.at(best, partners, m)
    matrix[n1, col_at] = num_spikes2 - best
    return matrix, rows, cols
