"""sv.compare / Comparison: analytic cases, the generated ground truth against a perturbed
copy, and SpikeInterface's compare_two_sorters / compare_sorter_to_ground_truth on the same
sortings (counts, scores, matches, performance, categories, confusion matrix, ordering)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz import datasets
from spikeviz.errors import InputError
from tests.compute.test_comparison import FS, perturbed_pair

sc = pytest.importorskip("spikeinterface.comparison")


def sorting(trains, unit_ids=None, fs=FS):
    t = np.concatenate([np.asarray(x, dtype=np.int64) for x in trains])
    u = np.repeat(np.arange(len(trains)), [len(x) for x in trains])
    ids = np.arange(len(trains)) if unit_ids is None else unit_ids
    return sv.Sorting.from_arrays(t, u, fs, unit_ids=ids)


def si_matches(series: pd.Series, target_ids) -> list:
    """Our nullable match Series in SpikeInterface's convention (-1 or "")."""
    missing = "" if np.asarray(target_ids).dtype.kind == "U" else -1
    return [missing if pd.isna(v) else v for v in series.tolist()]


# -- analytic --------------------------------------------------------------------------------
def test_identical_sortings_all_matched_identity():
    s = sorting([np.arange(k * 500, 10**6, 7919 + k) for k in range(5)])
    c = sv.compare(s, s)
    np.testing.assert_array_equal(c.agreement.to_numpy(), np.eye(5))
    assert c.matches.tolist() == list(range(5)) and c.num_matched == 5
    assert c.best_matches.tolist() == list(range(5))
    assert c.performance is None and c.unit_categories is None
    g = sv.compare(s, s, ground_truth=True, exhaustive_gt=True)
    assert (g.performance[["accuracy", "recall", "precision"]] == 1.0).all().all()
    assert (g.performance["fn"] == 0).all() and (g.performance["fp"] == 0).all()
    assert g.category_counts == {"num_gt": 5, "num_sorter": 5, "num_well_detected": 5,
                                 "num_overmerged": 0, "num_redundant": 0,
                                 "num_false_positive": 0, "num_bad": 0}


@pytest.mark.parametrize("shift, matched", [(12, True), (-12, True), (13, False)])
def test_shifted_copy(shift, matched):
    trains = [np.arange(1000 + 400 * k, 3 * 10**6, 6007) for k in range(4)]
    c = sv.compare(sorting(trains), sorting([t + shift for t in trains]), delta_ms=0.4)
    assert c.delta_samples == 12
    assert c.matches.notna().all() == matched and c.matches.isna().all() != matched
    assert c.match_counts.to_numpy().trace() == (sum(map(len, trains)) if matched else 0)


def split_merge_case(unit_ids1=None, unit_ids2=None):
    """GT: A (1000 spikes), B (600), C (400), E (empty). Tested: A1 = 70 % of A, A2 = the
    other 30 %, M = B + C, N = noise far from every GT spike, Z empty."""
    base = np.arange(1000) * 3000
    a, b, c = base + 100, base[:600] + 1100, base[:400] + 2100
    keep = np.arange(1000) % 10 < 7
    noise = base[:200] + 2600
    gt = sorting([a, b, c, []], unit_ids1)
    tested = sorting([a[keep], a[~keep], np.sort(np.concatenate([b, c])), noise, []],
                     unit_ids2)
    return gt, tested


@pytest.mark.parametrize("ids", [(None, None), (["A", "B", "C", "E"],
                                                ["a1", "a2", "m", "n", "z"])])
def test_split_merge_noise_empty_categories(ids):
    gt, tested = split_merge_case(*ids)
    g1, g2 = gt.unit_ids, tested.unit_ids
    c = sv.compare(gt, tested, ground_truth=True, exhaustive_gt=True)
    np.testing.assert_allclose(c.agreement.to_numpy(), [
        [0.7, 0.3, 0, 0, 0], [0, 0, 0.6, 0, 0], [0, 0, 0.4, 0, 0], [0, 0, 0, 0, 0]],
        rtol=0, atol=1e-15)
    m = c.matches
    assert m[g1[0]] == g2[0] and m[g1[1]] == g2[2] and m.isna()[[g1[2], g1[3]]].all()
    perf = c.performance
    assert perf.loc[g1[0], ["tp", "fn", "fp"]].tolist() == [700, 300, 0]
    assert perf.loc[g1[1], ["tp", "fn", "fp"]].tolist() == [600, 0, 400]
    assert perf.loc[g1[2], ["tp", "fn", "fp"]].tolist() == [0, 400, 0]
    assert perf.loc[g1[3]].drop("tested_id").tolist() == [0.0] * 5 + [0] * 5
    assert perf.loc[g1[0], "accuracy"] == 0.7 and perf.loc[g1[1], "precision"] == 0.6
    cats = c.unit_categories
    expected = pd.DataFrame({
        "well_detected": [False, False, False, False, False],
        "false_positive": [False, False, False, True, True],
        "redundant": [False, True, False, False, False],
        "overmerged": [False, False, True, False, False],
        "bad": [False, True, False, True, True]}, index=pd.Index(g2, name="tested_unit_id"))
    pd.testing.assert_frame_equal(cats, expected)
    # the ordered matrix puts A->A1 and B->M on the diagonal
    ordered = c.ordered_agreement()
    assert list(ordered.index[:2]) == [g1[0], g1[1]]
    assert list(ordered.columns[:2]) == [g2[0], g2[2]]
    # spikes of a matched pair, one to one, within delta
    idx1, idx2 = c.matched_spikes(g1[0], g2[0])
    assert idx1.size == 700 and np.array_equal(gt.spike_train(g1[0])[idx1],
                                               tested.spike_train(g2[0])[idx2])


def test_non_exhaustive_ground_truth_has_only_well_detected():
    gt, tested = split_merge_case()
    c = sv.compare(gt, tested, ground_truth=True, well_detected_score=0.65)
    assert list(c.unit_categories.columns) == ["well_detected"]
    assert c.unit_categories["well_detected"].tolist() == [True] + [False] * 4
    assert c.category_counts == {"num_gt": 4, "num_sorter": 5, "num_well_detected": 1}


def test_json_contract_and_summary():
    gt, tested = split_merge_case(["A", "B", "C", "E"])
    c = sv.compare(gt, tested, ground_truth=True, exhaustive_gt=True, names=("truth", "ks"))
    d = json.loads(json.dumps(c.to_json(), allow_nan=False))
    assert d["matches"] == {"A": 0, "B": 2, "C": None, "E": None}
    assert d["agreement"]["A"]["0"] == 0.7 and set(d["agreement"]["B"]) == set("01234")
    assert d["performance"]["A"]["accuracy"] == 0.7 and d["performance"]["A"]["recall"] == 0.7
    assert d["performance"]["B"]["precision"] == 0.6 and d["performance"]["C"]["tested_id"] \
        is None
    assert d["category_counts"]["num_redundant"] == 1 and d["names"] == ["truth", "ks"]
    s = d["summary"]
    assert s["num_units1"] == 4 and s["num_units2"] == 5 and s["num_matched"] == 2
    assert s["mean_agreement_matched"] == pytest.approx(0.65)
    assert s["mean_accuracy"] == pytest.approx((0.7 + 0.6) / 4)
    plain = sv.compare(gt, tested).to_json()
    assert "performance" not in plain and "category_counts" not in plain


def test_sessions_rates_and_bad_input():
    gt, tested = split_merge_case()
    session = sv.Session(tested)
    c = sv.compare(gt, session)
    assert c.session1 is None and c.session2 is session and c.sorting2 is tested
    near = sorting([np.arange(10) * 1000], fs=FS * 1.0009)
    assert sv.compare(gt, near).sampling_frequency == FS  # within 0.1 %: the first's rate
    with pytest.raises(InputError, match="same sampling frequency"):
        sv.compare(gt, sorting([np.arange(10) * 1000], fs=20000.0))
    with pytest.raises(InputError, match="Sorting or Session"):
        sv.compare(gt, np.arange(3))
    with pytest.raises(InputError, match="delta_ms"):
        sv.compare(gt, tested, delta_ms=-1)


# -- against SpikeInterface ------------------------------------------------------------------
def assert_same_as_si(c, si, ground_truth):
    ids1, ids2 = c.unit_ids1, c.unit_ids2
    np.testing.assert_array_equal(c.match_counts.to_numpy(),
                                  si.match_event_count.to_numpy().astype(np.int64))
    assert list(c.agreement.index) == list(si.agreement_scores.index)
    np.testing.assert_allclose(c.agreement.to_numpy(), si.agreement_scores.to_numpy(),
                               rtol=0, atol=1e-12)
    assert si_matches(c.matches, ids2) == si.hungarian_match_12.tolist()
    assert si_matches(c.matches_21, ids1) == si.hungarian_match_21.tolist()
    assert si_matches(c.best_matches, ids2) == si.best_match_12.tolist()
    assert si_matches(c.best_matches_21, ids1) == si.best_match_21.tolist()
    ordered, si_ordered = c.ordered_agreement(), si.get_ordered_agreement_scores()
    assert list(ordered.index) == list(si_ordered.index)
    assert list(ordered.columns) == list(si_ordered.columns)
    if not ground_truth:
        return
    raw = si.get_performance(method="raw_count")
    perf = c.performance
    for name in ("tp", "fn", "fp", "num_gt", "num_tested"):
        assert perf[name].tolist() == raw[name].astype(np.int64).tolist(), name
    assert si_matches(perf["tested_id"], ids2) == raw["tested_id"].tolist()
    si_perf = si.get_performance().astype(np.float64)
    for name in si_perf.columns:
        np.testing.assert_allclose(perf[name], si_perf[name], rtol=0, atol=1e-12)
    assert c.category_counts == {k: int(v) for k, v in si.count_units_categories().items()}
    cats = c.unit_categories
    assert list(ids2[cats["well_detected"]]) == list(si.get_well_detected_units())
    if si.exhaustive_gt:
        assert list(ids2[cats["false_positive"]]) == list(si.get_false_positive_units())
        assert list(ids2[cats["redundant"]]) == list(si.get_redundant_units())
        assert list(ids2[cats["overmerged"]]) == list(si.get_overmerged_units())
        assert list(ids2[cats["bad"]]) == list(si.get_bad_units())
    # SpikeInterface's do_confusion_matrix takes "" (its unmatched string id) for a match
    # and fails on string ids with unmatched units: compared on integer ids only
    if si.match_mode == "hungarian" and ids2.dtype.kind in "iu":
        pd.testing.assert_frame_equal(c.confusion_matrix(), si.get_confusion_matrix(),
                                      check_names=False, check_dtype=False,
                                      check_index_type=False, check_column_type=False)


def _pair(seed, string_ids=False):
    (t1, u1), (t2, u2), n1, n2 = perturbed_pair(seed)
    ids1 = np.array([f"gt{k}" for k in range(n1)]) if string_ids else None
    ids2 = np.array([f"s{k:02d}" for k in range(n2)]) if string_ids else None
    return (sv.Sorting.from_arrays(t1, u1, FS, unit_ids=ids1),
            sv.Sorting.from_arrays(t2, u2, FS, unit_ids=ids2))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_two_sorters_equal_spikeinterface(seed):
    a, b = _pair(seed, string_ids=seed == 4)
    c = sv.compare(a, b)
    si = sc.compare_two_sorters(sv.to_spikeinterface(a), sv.to_spikeinterface(b))
    assert_same_as_si(c, si, ground_truth=False)
    assert c.num_matched >= 8


@pytest.mark.parametrize("seed, string_ids, exhaustive, mode", [
    (0, False, True, "hungarian"), (1, False, True, "hungarian"), (2, True, True, "hungarian"),
    (3, False, False, "hungarian"), (5, False, True, "best")])
def test_ground_truth_equals_spikeinterface(seed, string_ids, exhaustive, mode):
    a, b = _pair(seed, string_ids)
    c = sv.compare(a, b, ground_truth=True, exhaustive_gt=exhaustive, match_mode=mode)
    si = sc.compare_sorter_to_ground_truth(sv.to_spikeinterface(a), sv.to_spikeinterface(b),
                                           exhaustive_gt=exhaustive, match_mode=mode)
    assert_same_as_si(c, si, ground_truth=True)
    if exhaustive:  # the perturbation makes every category occur
        counts = c.category_counts
        assert all(counts[k] >= 1 for k in ("num_well_detected", "num_redundant",
                                            "num_overmerged", "num_false_positive"))


def test_thresholds_and_delta_equal_spikeinterface():
    a, b = _pair(6)
    kwargs = dict(match_score=0.3, chance_score=0.05, well_detected_score=0.6,
                  redundant_score=0.1, overmerged_score=0.1)
    c = sv.compare(a, b, ground_truth=True, exhaustive_gt=True, delta_ms=0.25, **kwargs)
    si = sc.compare_sorter_to_ground_truth(sv.to_spikeinterface(a), sv.to_spikeinterface(b),
                                           exhaustive_gt=True, delta_time=0.25, **kwargs)
    assert c.delta_samples == si.delta_frames == 7
    assert_same_as_si(c, si, ground_truth=True)


# -- the generated ground truth against a perturbed copy --------------------------------------
def test_generated_ground_truth_against_a_perturbed_copy():
    gt = datasets.generate(duration_s=60.0, num_channels=16, num_units=10, seed=3).sorting
    rng = np.random.default_rng(0)
    ids = list(gt.unit_ids)
    counts = gt.spike_counts()
    # merge two units whose sizes make the larger one matched and both above 0.2
    big, small = next((x, y) for x in ids for y in ids if x != y and
                      0.4 <= counts[y] / counts[x] <= 0.6)
    split = next(u for u in ids if u not in (big, small))
    trains, tested_ids = [], []
    for u in ids:
        if u in (big, small, split):
            continue
        t = gt.spike_train(u)
        t = t[rng.random(t.size) > 0.05]  # drop 5 %
        trains.append(t + rng.integers(-6, 7, t.size))  # jitter within delta
        tested_ids.append(f"good{u}")
    t = gt.spike_train(split)
    part = rng.random(t.size) < 0.7
    trains += [t[part], t[~part], np.sort(np.concatenate([gt.spike_train(big),
                                                          gt.spike_train(small)])),
               np.sort(rng.integers(0, gt.num_samples or int(60 * FS), 400))]
    tested_ids += ["split_major", "split_minor", "merged", "noise"]
    tested = sorting([np.sort(x) for x in trains], np.array(tested_ids), fs=gt.sampling_frequency)
    c = sv.compare(gt, tested, ground_truth=True, exhaustive_gt=True)
    cats = c.unit_categories
    good = [f"good{u}" for u in ids if u not in (big, small, split)]
    assert set(cats.index[cats["well_detected"]]) == set(good)
    assert list(cats.index[cats["redundant"]]) == ["split_minor"]
    assert list(cats.index[cats["overmerged"]]) == ["merged"]
    assert list(cats.index[cats["false_positive"]]) == ["noise"]
    assert set(cats.index[cats["bad"]]) == {"split_minor", "noise"}
    assert c.matches[split] == "split_major" and c.matches[big] == "merged"
    assert pd.isna(c.matches[small])
    perf = c.performance
    assert (perf.loc[[int(g[4:]) for g in good], "recall"] > 0.9).all()
    assert perf.loc[small, "recall"] == 0 and perf.loc[big, "recall"] == 1.0
    si = sc.compare_sorter_to_ground_truth(sv.to_spikeinterface(gt), sv.to_spikeinterface(tested),
                                           exhaustive_gt=True)
    assert_same_as_si(c, si, ground_truth=True)


def test_confusion_matrix_of_the_split_merge_case():
    gt, tested = split_merge_case(["A", "B", "C", "E"], ["a1", "a2", "m", "n", "z"])
    c = sv.compare(gt, tested, ground_truth=True)
    cm = c.confusion_matrix()
    assert list(cm.index) == ["A", "B", "C", "E", "FP"]
    assert list(cm.columns) == ["a1", "m", "a2", "n", "z", "FN"]
    assert cm.to_numpy().tolist() == [[700, 0, 0, 0, 0, 300],
                                      [0, 600, 0, 0, 0, 0],
                                      [0, 0, 0, 0, 0, 400],
                                      [0, 0, 0, 0, 0, 0],
                                      [0, 400, 300, 200, 0, 0]]
    # best matching (not one to one: C's best is m too): one column per tested unit
    best = sv.compare(gt, tested, ground_truth=True, match_mode="best").confusion_matrix()
    assert list(best.columns) == ["a1", "m", "a2", "n", "z", "FN"]
    assert best.loc["C", "m"] == 400 and best.loc["C", "FN"] == 0
    assert best.loc["FP", "m"] == 400  # 1000 - the larger of 600 and 400
    empty = sv.compare(gt, sorting([[]]), ground_truth=True).confusion_matrix()
    assert empty["FN"].tolist() == [1000, 600, 400, 0, 0]


# -- multi-sorter comparison ------------------------------------------------------------------
def multi_case():
    """S0: x (600 spikes), y (400); S1: p = x + y; S2: q = 200 of x + y. Edges x-p 0.6, y-q
    2/3, p-q 0.6: S0 twice in one component, the weaker x-p edge is cut."""
    base = np.arange(600) * 3000
    x, y = base + 100, base[:400] + 1600
    return [sorting([x, y]), sorting([np.sort(np.concatenate([x, y]))], ["p"]),
            sorting([np.sort(np.concatenate([x[:200], y]))], ["q"])]


def si_units(si) -> dict:
    return {frozenset(d["unit_ids"].items()): (d["agreement_number"], d["avg_agreement"])
            for d in si._new_units.values()}


def our_units(m) -> dict:
    return {frozenset((k, row[k]) for k in m.names if row[k] is not None):
            (row["agreement_number"], row["avg_agreement"]) for _, row in m.units.iterrows()}


def test_multi_cleaning_analytic_and_as_spikeinterface():
    pytest.importorskip("networkx")
    sortings = multi_case()
    m = sv.compare_multiple(sortings, names=["S0", "S1", "S2"])
    graph = m.agreement_graph
    assert graph[["sorting1", "unit_id1", "sorting2", "unit_id2"]].values.tolist() == [
        ["S0", 0, "S1", "p"], ["S0", 1, "S2", "q"], ["S1", "p", "S2", "q"]]
    np.testing.assert_allclose(graph["agreement"], [0.6, 2 / 3, 0.6], rtol=0, atol=1e-15)
    assert graph["kept"].tolist() == [False, True, True]
    units = m.units
    assert units[["S0", "S1", "S2"]].values.tolist() == [[0, None, None], [1, "p", "q"]]
    assert units["agreement_number"].tolist() == [1, 3]
    assert units["avg_agreement"].iloc[1] == pytest.approx((0.6 + 2 / 3) / 2, abs=1e-15)
    assert m.consensus_units(2).index.tolist() == [1]
    assert m.consensus_units(1, exact=True).index.tolist() == [0]
    si = sc.compare_multiple_sorters([sv.to_spikeinterface(s) for s in sortings],
                                     name_list=["S0", "S1", "S2"], n_jobs=1)
    assert our_units(m) == si_units(si)
    consensus = m.consensus_sorting(2)
    assert consensus.unit_ids.tolist() == [1]
    assert consensus.unit_table.loc[1, "agreement_number"] == 3
    # union of y and q's other spikes (y-q is the strongest edge, S0 first): y + x[:200]
    np.testing.assert_array_equal(consensus.spike_train(1), np.sort(np.concatenate(
        [sortings[0].spike_train(1), sortings[0].spike_train(0)[:200]])))
    inter = sv.compare_multiple(sortings, spiketrain_mode="intersection")
    np.testing.assert_array_equal(inter.spike_train(1), sortings[0].spike_train(1))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", ["union", "intersection"])
def test_multi_equals_spikeinterface(seed, mode):
    pytest.importorskip("networkx")
    from spikeviz.compute.comparison_multi import consensus_train

    a, b = _pair(seed)
    sortings = [a, b, sv.Sorting.from_arrays(*_perturb(a, seed), FS)]
    m = sv.compare_multiple(sortings, spiketrain_mode=mode)
    si = sc.compare_multiple_sorters([sv.to_spikeinterface(s) for s in sortings], n_jobs=1,
                                     spiketrain_mode=mode)
    ours, theirs = our_units(m), si_units(si)
    assert set(ours) == set(theirs)
    for key, (number, avg) in theirs.items():
        assert ours[key][0] == number and abs(ours[key][1] - avg) <= 1e-12
    assert (m.units["agreement_number"] == 3).sum() >= 5
    for k in (1, 2, 3):
        assert {key for key, (n, _) in ours.items() if n >= k} == \
            {key for key, (n, _) in theirs.items() if n >= k}
        assert len(m.consensus_units(k)) == len(si.get_agreement_sorting(k).unit_ids)
    # trains: SpikeInterface orients the strongest edge in set order (hash seed dependent):
    # its train is ours computed on its orientation; ours puts the earlier sorting first
    by_key = {frozenset(d["unit_ids"].items()): i for i, d in si._new_units.items()}
    for cid, key in zip(m.units.index, ours, strict=True):
        si_id = by_key[key]
        edges = list(si.subgraphs[si_id].edges(data=True))
        if edges:
            (n1, u1), (n2, u2), _ = edges[int(np.argmax([d["weight"] for *_, d in edges]))]
            expected = consensus_train(sortings[m.names.index(n1)].spike_train(u1),
                                       sortings[m.names.index(n2)].spike_train(u2), mode)
            np.testing.assert_array_equal(si._spiketrains[0][si_id], expected)
        else:
            np.testing.assert_array_equal(si._spiketrains[0][si_id], m.spike_train(cid))
    s = m.consensus_sorting(2)
    assert s.num_units == len(m.consensus_units(2))
    for uid in s.unit_ids[:3]:
        np.testing.assert_array_equal(s.spike_train(uid), m.spike_train(uid))


def _perturb(s, seed):
    rng = np.random.default_rng(100 + seed)
    keep = rng.random(s.num_spikes) > 0.08
    t = s.sample_index[keep] + rng.integers(-8, 9, keep.sum())
    return np.clip(t, 0, None), s.unit_index[keep]


def test_multi_bad_input():
    a, b = _pair(0)
    with pytest.raises(InputError, match="at least 2"):
        sv.compare_multiple([a])
    with pytest.raises(InputError, match="distinct"):
        sv.compare_multiple([a, b], names=["x", "x"])
    with pytest.raises(InputError, match="min_agreement"):
        sv.compare_multiple([a, b]).consensus_units(0)


def test_with_thresholds_reuses_the_counts():
    gt, tested = split_merge_case()
    c = sv.compare(gt, tested, ground_truth=True)
    assert c.num_matched == 2
    strict = c.with_thresholds(match_score=0.65, exhaustive_gt=True)
    assert strict._counts is c._counts and strict.delta_ms == c.delta_ms
    assert strict.matches.isna().tolist() == [False, True, True, True]
    assert strict.unit_categories["bad"].tolist() == [False, True, True, True, True]
    fresh = sv.compare(gt, tested, ground_truth=True, match_score=0.65, exhaustive_gt=True)
    assert fresh.matches.equals(strict.matches)
    pd.testing.assert_frame_equal(fresh.performance, strict.performance)
    with pytest.raises(InputError, match="with_thresholds"):
        c.with_thresholds(delta_ms=1.0)


@pytest.mark.parametrize("ground_truth", [False, True])
def test_unequal_unit_counts_equal_spikeinterface(ground_truth):
    a, b = _pair(3)
    for x, y in ((a.select_units(a.unit_ids[:6]), b), (a, b.select_units(b.unit_ids[2:7]))):
        c = sv.compare(x, y, ground_truth=ground_truth, exhaustive_gt=True)
        sx, sy = sv.to_spikeinterface(x), sv.to_spikeinterface(y)
        si = sc.compare_sorter_to_ground_truth(sx, sy, exhaustive_gt=True) if ground_truth \
            else sc.compare_two_sorters(sx, sy)
        assert_same_as_si(c, si, ground_truth)


def test_position_accessors_equal_the_frames():
    rng = np.random.default_rng(11)
    times = np.sort(rng.choice(300_000, 600, replace=False)).astype(np.int64)
    units = rng.integers(0, 4, times.size).astype(np.int32)
    a = sv.Sorting.from_arrays(times, units, 30_000.0, num_samples=300_000)
    keep = rng.random(times.size) > 0.2
    b = sv.Sorting.from_arrays(times[keep], units[keep], 30_000.0, num_samples=300_000,
                               unit_ids=np.array([10, 11, 12, 13]))
    c = sv.compare(a, b)
    np.testing.assert_array_equal(c.match_count_values, c.match_counts.to_numpy())
    np.testing.assert_array_equal(c.agreement_values, c.agreement.to_numpy())
    m12, m21 = c.hungarian_positions
    for i, u in enumerate(c.unit_ids1):
        expected = c.matches.loc[u]
        assert (m12[i] == -1) if pd.isna(expected) else (c.unit_ids2[m12[i]] == expected)
    assert all(m12[m21[j]] == j for j in range(len(m21)) if m21[j] >= 0)
    with pytest.raises(ValueError):
        c.agreement_values[0, 0] = 2.0
