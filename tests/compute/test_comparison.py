"""The comparison kernels: analytic cases and SpikeInterface's comparisontools on the same
spike vectors (match counts, agreement, Hungarian/best matching, ordering, consensus trains).
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeviz.compute import comparison as cc
from spikeviz.compute import comparison_gt as cgt
from spikeviz.compute import comparison_multi as cm
from spikeviz.errors import InputError

FS = 30000.0


def spike_vector(trains):
    """Time-sorted (sample_index int64, unit_index int32) from a list of per-unit trains."""
    t = np.concatenate([np.asarray(x, dtype=np.int64) for x in trains]) if trains else \
        np.zeros(0, np.int64)
    u = np.repeat(np.arange(len(trains), dtype=np.int32), [len(x) for x in trains])
    order = np.argsort(t, kind="stable")
    return t[order], u[order]


def perturbed_pair(seed, num_units=12, duration_s=30.0, bursty=True):
    """Two spike vectors: random trains (some bursting below delta) and a perturbed copy
    (dropped and jittered spikes, one unit split, two merged, a noise unit, an empty unit,
    duplicated times across units)."""
    rng = np.random.default_rng(seed)
    n_samples = int(duration_s * FS)
    sizes = rng.integers(50, 400, num_units)
    sizes[5] = sizes[4]  # merged into one unit: both above the overmerged score
    trains = []
    for k in range(num_units):
        t = rng.integers(0, n_samples, sizes[k])
        if bursty and k % 4 == 0:  # bursts: spikes 3-8 samples apart
            t = np.concatenate([t, t[:40] + rng.integers(3, 9, 40), t[:20] + 16])
        trains.append(np.sort(t))
    trains.append(np.zeros(0, np.int64))  # an empty unit
    trains[1] = np.union1d(trains[1], trains[2][:30])  # identical times in two units
    tested = []
    for t in trains[:num_units]:
        keep = t[rng.random(t.size) > 0.05]  # some jittered beyond 0.4 ms (12 samples)
        tested.append(np.sort(np.clip(keep + rng.integers(-13, 14, keep.size), 0, None)))
    tested[4] = np.sort(np.concatenate([tested[4], tested.pop(5)]))  # merge units 4 and 5
    a = tested.pop(3)
    half = rng.random(a.size) < 0.35
    tested += [a[half], a[~half]]                              # split unit 3
    tested.append(np.sort(rng.integers(0, n_samples, 300)))    # noise
    tested.append(np.zeros(0, np.int64))                       # empty
    return spike_vector(trains), spike_vector(tested), len(trains), len(tested)


def si_sorting(t, u, num_units, unit_ids=None):
    import spikeinterface.core as sc

    ids = np.arange(num_units) if unit_ids is None else np.asarray(unit_ids)
    return sc.NumpySorting.from_samples_and_labels([t], [ids[u]], FS, unit_ids=ids)


# -- analytic --------------------------------------------------------------------------------
def test_delta_samples_rounds_down_like_spikeinterface():
    assert cc.delta_samples(0.4, 30000.0) == 12
    assert cc.delta_samples(0.4, 32000.0) == 12  # 12.8 -> 12
    assert cc.delta_samples(0.0, 30000.0) == 0
    with pytest.raises(InputError):
        cc.delta_samples(-0.1, 30000.0)


@pytest.mark.parametrize("shift, expected", [(0, 50), (12, 50), (-12, 50), (13, 0), (-13, 0)])
def test_shifted_copy_within_and_beyond_delta(shift, expected):
    train = np.arange(1000, 1000 + 50 * 3000, 3000)
    t1, u1 = spike_vector([train])
    t2, u2 = spike_vector([train + shift])
    counts = cc.match_counts(t1, u1, 1, t2, u2, 1, 12)
    assert counts.tolist() == [[expected]]
    scores = cc.agreement_scores(counts, [50], [50])
    assert scores[0, 0] == (1.0 if expected else 0.0)


def test_identical_sortings_identity():
    trains = [np.arange(k * 500, 10**6, 7919 + k) for k in range(6)]
    t, u = spike_vector(trains)
    counts = cc.match_counts(t, u, 6, t, u, 6, 12, symmetric=True)
    n = cc.spike_counts(u, 6)
    np.testing.assert_array_equal(counts, np.diag(n))
    scores = cc.agreement_scores(counts, n, n)
    np.testing.assert_array_equal(scores, np.eye(6))
    m12, m21 = cc.hungarian_match(scores, 0.5)
    assert m12.tolist() == list(range(6)) and m21.tolist() == list(range(6))
    rows, cols = cc.ordered_agreement(scores)
    assert np.array_equal(scores[np.ix_(rows, cols)], np.eye(6))


def test_greedy_count_of_a_burst_is_spikeinterface_s():
    # 4 spikes of unit 1 within delta of 2 spikes of unit 2: SpikeInterface's greedy count
    # reaches 4 (one spike of train 2 paired twice), clipped to train 2's 2 spikes
    t1, u1 = spike_vector([[0, 1, 2, 3]])
    t2, u2 = spike_vector([[3, 4]])
    assert cc.match_counts(t1, u1, 1, t2, u2, 1, 5).tolist() == [[2]]
    assert cc._greedy_counts(t1, u1, t2, u2, 1, 1, 5).tolist() == [[4]]
    idx1, idx2 = cc.matched_spikes([0, 1, 2, 3], [3, 4], 5)
    assert idx1.tolist() == [0, 1] and idx2.tolist() == [0, 1]


def test_matched_spikes_pairs_one_to_one_within_delta():
    a = np.array([10, 100, 200, 300, 400])
    b = np.array([5, 112, 113, 250, 401, 402])
    idx1, idx2 = cc.matched_spikes(a, b, 12)
    assert idx1.tolist() == [0, 1, 4] and idx2.tolist() == [0, 1, 4]
    assert np.all(np.abs(a[idx1] - b[idx2]) <= 12)
    assert [x.size for x in cc.matched_spikes(a, [], 12)] == [0, 0]


def test_empty_units_and_sortings():
    t1, u1 = spike_vector([[], [100, 200]])
    t2, u2 = spike_vector([[]])
    counts = cc.match_counts(t1, u1, 2, t2, u2, 1, 12, symmetric=True)
    assert counts.tolist() == [[0], [0]]
    scores = cc.agreement_scores(counts, [0, 2], [0])
    assert scores.tolist() == [[0.0], [0.0]]
    assert [m.tolist() for m in cc.hungarian_match(scores, 0.5)] == [[-1, -1], [-1]]
    assert [m.tolist() for m in cc.best_match(scores, 0.1)] == [[-1, -1], [-1]]
    empty = np.zeros((0, 3))
    assert [m.tolist() for m in cc.hungarian_match(empty, 0.5)] == [[], [-1, -1, -1]]


def test_bad_vectors_are_refused():
    t, u = spike_vector([[5, 1]])
    with pytest.raises(InputError, match="sorted in time"):
        cc.match_counts(np.array([5, 1]), np.array([0, 0]), 1, t, u, 1, 12)
    with pytest.raises(InputError, match="unit_index of sorting 2"):
        cc.match_counts(t, u, 1, t, u + 3, 1, 12)


def test_performance_formulas():
    rates = cgt.performance([8, 0, 5], [2, 10, 0], [4, 0, 5], [10, 10, 5])
    assert rates["accuracy"].tolist() == [8 / 14, 0.0, 0.5]
    assert rates["recall"].tolist() == [0.8, 0.0, 1.0]
    assert rates["precision"].tolist() == [8 / 12, 0.0, 0.5]
    assert rates["false_discovery_rate"].tolist() == [4 / 12, 0.0, 0.5]
    assert rates["miss_rate"].tolist() == [0.2, 0.0, 0.0]


def test_consensus_train_union_and_intersection():
    a = np.array([100, 200, 300, 400])
    b = np.array([103, 196, 199, 350, 404])
    tp1, tp2 = cm.paired_spikes(a, b)
    assert tp1.tolist() == [True, True, False, True]
    assert tp2.tolist() == [True, True, False, False, True]
    assert cm.consensus_train(a, b, "union").tolist() == [100, 199, 200, 300, 350, 400]
    assert cm.consensus_train(a, b, "intersection").tolist() == [100, 200, 400]
    with pytest.raises(InputError):
        cm.consensus_train(a, b, "both")


# -- against SpikeInterface ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("symmetric", [False, True])
def test_counts_scores_and_matches_equal_spikeinterface(seed, symmetric):
    ct = pytest.importorskip("spikeinterface.comparison.comparisontools")
    (t1, u1), (t2, u2), n1, n2 = perturbed_pair(seed)
    s1, s2 = si_sorting(t1, u1, n1), si_sorting(t2, u2, n2)
    delta = cc.delta_samples(0.4, FS)
    expected = ct.make_match_count_matrix(s1, s2, delta, ensure_symmetry=symmetric)
    counts = cc.match_counts(t1, u1, n1, t2, u2, n2, delta, symmetric=symmetric)
    np.testing.assert_array_equal(counts, expected.to_numpy().astype(np.int64))
    assert counts.sum() > 0

    c1, c2 = cc.spike_counts(u1, n1), cc.spike_counts(u2, n2)
    si_scores = ct.make_agreement_scores_from_count(
        expected, ct.do_count_event(s1), ct.do_count_event(s2))
    scores = cc.agreement_scores(counts, c1, c2)
    np.testing.assert_allclose(scores, si_scores.to_numpy(), rtol=0, atol=1e-12)

    for ours, theirs in ((cc.hungarian_match(scores, 0.5), ct.make_hungarian_match(si_scores,
                                                                                    0.5)),
                         (cc.best_match(scores, 0.1), ct.make_best_match(si_scores, 0.1))):
        assert ours[0].tolist() == theirs[0].to_numpy().tolist()
        assert ours[1].tolist() == theirs[1].to_numpy().tolist()


def test_match_counts_equal_spikeinterface_at_other_deltas():
    ct = pytest.importorskip("spikeinterface.comparison.comparisontools")
    (t1, u1), (t2, u2), n1, n2 = perturbed_pair(7)
    s1, s2 = si_sorting(t1, u1, n1), si_sorting(t2, u2, n2)
    for delta in (0, 3, 30):
        expected = ct.make_match_count_matrix(s1, s2, delta).to_numpy().astype(np.int64)
        np.testing.assert_array_equal(cc.match_counts(t1, u1, n1, t2, u2, n2, delta), expected)
