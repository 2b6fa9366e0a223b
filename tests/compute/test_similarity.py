"""Template similarity against SpikeInterface and analytic cases; merge suggestions on
constructed spike trains."""

from __future__ import annotations

import numpy as np
import pytest

from spikeviz.compute import similarity as simmod
from spikeviz.compute.merges import suggest_merges
from spikeviz.compute.similarity import compute_template_similarity
from spikeviz.errors import InputError

FS = 30000.0
METHODS = ("cosine", "l1", "l2")
SUPPORTS = ("union", "intersection", "dense")
# SpikeInterface sums float32 templates in float32: its extension differs from the same
# definition in float64 by up to ~1.5e-6 (l1, 90 samples x 16 channels). We compare with the
# extension at EXT_TOL, and with SI's definition on float64 copies of the templates at TOL
# (what is left there is SI's float32 output array: < 6e-8 relative).
EXT_TOL = 2e-6
TOL = 1e-7


# --------------------------------------------------------------------------------------------
# SpikeInterface ground truth


@pytest.fixture(scope="module")
def analyzers():
    """A small SI ground-truth recording; dense and sparse analyzers on the same spikes."""
    si = pytest.importorskip("spikeinterface.core")
    rec, sorting = si.generate_ground_truth_recording(
        durations=[20.0], sampling_frequency=FS, num_channels=16, num_units=12, seed=7,
        generate_probe_kwargs=dict(num_columns=2, xpitch=20, ypitch=20,
                                   contact_shapes="circle", contact_shape_params={"radius": 6}))
    out = {}
    for sparse in (False, True):
        an = si.create_sorting_analyzer(sorting, rec, format="memory", sparse=sparse,
                                        sparsity_kwargs=dict(method="radius", radius_um=40.0))
        an.compute("random_spikes", max_spikes_per_unit=200, seed=3)
        an.compute("templates", ms_before=1.0, ms_after=2.0)
        out[sparse] = an
    assert out[True].sparsity.mask.sum() < out[True].sparsity.mask.size  # really sparse
    return out


def _si_templates(analyzer):
    from spikeinterface.core.template_tools import get_dense_templates_array
    return get_dense_templates_array(analyzer, return_in_uV=True)


def _channel_rows(mask):
    """A boolean sparsity mask as (units, K) channel indices padded with -1, shuffled order."""
    rng = np.random.default_rng(0)
    rows = np.full((mask.shape[0], mask.shape[1] + 2), -1, dtype=np.int64)
    for u, m in enumerate(mask):
        ch = rng.permutation(np.flatnonzero(m))
        rows[u, :ch.size] = ch
    return rows


def _si_extension(analyzer, method, support, max_lag_ms):
    ext = analyzer.compute("template_similarity", method=method, support=support,
                           max_lag_ms=max_lag_ms)
    return np.asarray(ext.get_data(), dtype=np.float64)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("support", SUPPORTS)
@pytest.mark.parametrize("method", METHODS)
def test_equals_spikeinterface_extension_without_lag(analyzers, method, support, sparse):
    from spikeinterface.postprocessing.template_similarity import (
        compute_similarity_with_templates_array,
    )
    an = analyzers[sparse]
    ref = _si_extension(an, method, support, 0.0)
    rows = _channel_rows(an.sparsity.mask) if sparse else None
    templates = _si_templates(an)
    ours = compute_template_similarity(templates, rows, method=method, support=support)
    assert ours.dtype == np.float64 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=EXT_TOL)
    t64 = templates.astype(np.float64)
    mask = an.sparsity.mask if sparse else None
    ref64, _ = compute_similarity_with_templates_array(t64, t64, method, support=support,
                                                       sparsity=mask, other_sparsity=mask)
    np.testing.assert_allclose(ours, ref64, rtol=0, atol=TOL)
    np.testing.assert_array_equal(ours, ours.T)
    # not a trivial matrix: real spread of values off the diagonal
    assert np.ptp(ours[np.triu_indices_from(ours, 1)]) > 0.1


@pytest.mark.parametrize("method", METHODS)
def test_dense_templates_with_sparsity_count_as_zero_outside(analyzers, method):
    """Dense-analyzer templates + the sparse analyzer's mask == SI's sparse similarity."""
    ref = _si_extension(analyzers[True], method, "union", 0.0)
    dense = _si_templates(analyzers[False])
    assert np.abs(dense[~analyzers[True].sparsity.mask[:, None, :].repeat(
        dense.shape[1], axis=1)]).max() > 1.0  # there is signal outside the mask to ignore
    ours = compute_template_similarity(dense, _channel_rows(analyzers[True].sparsity.mask),
                                       method=method)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=EXT_TOL)


@pytest.mark.parametrize(("method", "support", "sparse"), [
    ("cosine", "union", True), ("cosine", "dense", False), ("l1", "intersection", True),
    ("l2", "dense", True), ("l2", "union", False), ("l1", "union", False)])
def test_lags_against_spikeinterface(analyzers, method, support, sparse):
    from spikeinterface.postprocessing.template_similarity import (
        compute_similarity_with_templates_array,
    )
    max_lag_ms = 0.2
    n = int(max_lag_ms * FS / 1000)
    an = analyzers[sparse]
    templates = _si_templates(an).astype(np.float64)
    mask = an.sparsity.mask if sparse else np.ones(templates.shape[::2], dtype=bool)
    ours = compute_template_similarity(templates, _channel_rows(mask) if sparse else None,
                                       method=method, support=support, max_lag_samples=n)
    # SI's definition over the full lag range: one row against all units (not the same array,
    # so SI searches every lag in [-n, n]); value for a < b is row a, column b.
    full = np.zeros_like(ours)
    lags = np.zeros(ours.shape, dtype=int)
    for a in range(templates.shape[0]):
        s, lag = compute_similarity_with_templates_array(
            templates[a:a + 1], templates, method=method, support=support, num_shifts=n,
            sparsity=mask[a:a + 1], other_sparsity=mask)
        full[a], lags[a] = s[0], lag[0]
    iu = np.triu_indices_from(ours, 1)
    np.testing.assert_allclose(ours[iu], full[iu], rtol=0, atol=TOL)
    # SI's extension searches only lags <= 0 for a < b: equal there, never above ours.
    ext = _si_extension(an, method, support, max_lag_ms)
    nonpos = lags[iu] <= 0
    assert nonpos.any() and (~nonpos).any()
    np.testing.assert_allclose(ours[iu][nonpos], ext[iu][nonpos], rtol=0, atol=EXT_TOL)
    assert np.all(ours[iu] >= ext[iu] - EXT_TOL)
    # and the lag search matters: better than without lags somewhere
    assert (ours - compute_template_similarity(
        templates, _channel_rows(mask) if sparse else None, method=method,
        support=support)).max() > 1e-3


# --------------------------------------------------------------------------------------------
# analytic cases


def _bump(num_samples=60, num_channels=6, centre=30.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples)[:, None]
    w = np.exp(-0.5 * ((t - centre) / 2.5) ** 2) * rng.normal(size=num_channels)[None]
    w[np.abs(t[:, 0] - centre) > 15] = 0.0  # compact support, inside every lag window
    return w


@pytest.mark.parametrize("method", METHODS)
def test_identical_templates_are_one(method):
    base = _bump()
    templates = np.stack([base, base, 3.0 * base if method == "cosine" else base])
    sim = compute_template_similarity(templates, method=method)
    np.testing.assert_allclose(sim, 1.0, atol=1e-12)


def test_orthogonal_templates():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(60 * 4, 3)))
    templates = q.T.reshape(3, 60, 4)
    np.testing.assert_allclose(compute_template_similarity(templates), np.eye(3), atol=1e-12)
    # l2 of orthogonal unit vectors: 1 - sqrt(2) / 2
    l2 = compute_template_similarity(templates, method="l2")
    np.testing.assert_allclose(l2[0, 1], 1 - np.sqrt(2) / 2, atol=1e-12)
    # opposite templates: cosine -1 (kept, not clipped to 0), l1/l2 0
    anti = np.stack([templates[0], -templates[0]])
    assert compute_template_similarity(anti)[0, 1] == pytest.approx(-1.0, abs=1e-12)
    assert compute_template_similarity(anti, method="l1")[0, 1] == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [-4, -1, 2, 4])
def test_shifted_template_found_within_max_lag(method, k):
    base = _bump()
    shifted = np.roll(base, k, axis=0)
    for templates in (np.stack([base, shifted]), np.stack([shifted, base])):  # both orders
        for n in (abs(k), 6):
            sim = compute_template_similarity(templates, method=method, max_lag_samples=n)
            assert sim[0, 1] == pytest.approx(1.0, abs=1e-12)
            assert sim[1, 0] == sim[0, 1]
        below = compute_template_similarity(templates, method=method,
                                            max_lag_samples=abs(k) - 1)
        assert below[0, 1] < 0.99


def test_disjoint_sparse_supports():
    a, b = _bump(seed=1), _bump(seed=2)
    templates = np.stack([a, b])
    rows = np.array([[0, 1, 2], [3, 4, -1]])
    for method in METHODS:
        for support in ("union", "intersection"):
            sim = compute_template_similarity(templates, rows, method=method, support=support)
            assert sim[0, 1] == 0.0 and sim[1, 0] == 0.0
            assert sim[0, 0] == pytest.approx(1.0, abs=1e-12)
    # dense support over all channels: cosine 0, l1 0, l2 1 - |(a, b)| / (|a| + |b|)
    na, nb = np.linalg.norm(a[:, :3]), np.linalg.norm(b[:, 3:5])
    dense = {m: compute_template_similarity(templates, rows, method=m, support="dense")[0, 1]
             for m in METHODS}
    assert dense["cosine"] == pytest.approx(0.0, abs=1e-12)
    assert dense["l1"] == pytest.approx(0.0, abs=1e-12)
    assert dense["l2"] == pytest.approx(1 - np.hypot(na, nb) / (na + nb), abs=1e-12)


def test_partial_overlap_intersection_vs_union():
    a = _bump(seed=3)
    b = a.copy()
    b[:, 3:] = _bump(seed=4)[:, 3:]
    templates = np.stack([a, b])
    rows = np.array([[0, 1, 2, 3], [2, 3, 4, 5]])  # share channels 2 and 3
    inter = compute_template_similarity(templates, rows, support="intersection")
    exp_inter = np.sum(a[:, 2:4] * b[:, 2:4]) / np.linalg.norm(a[:, 2:4]) / np.linalg.norm(
        b[:, 2:4])
    assert inter[0, 1] == pytest.approx(exp_inter, abs=1e-12)
    union = compute_template_similarity(templates, rows, support="union")
    am, bm = a.copy(), b.copy()
    am[:, 4:] = 0
    bm[:, :2] = 0
    assert union[0, 1] == pytest.approx(
        np.sum(am * bm) / np.linalg.norm(am) / np.linalg.norm(bm), abs=1e-12)


def test_zero_template_and_symmetry_and_permutation():
    rng = np.random.default_rng(5)
    templates = rng.normal(size=(7, 30, 5))
    templates[2] = 0.0
    for method in METHODS:
        sim = compute_template_similarity(templates, method=method, max_lag_samples=2)
        assert np.all(sim[2] == 0.0) and np.all(sim[:, 2] == 0.0)
        np.testing.assert_array_equal(sim, sim.T)
        perm = rng.permutation(7)
        again = compute_template_similarity(templates[perm], method=method, max_lag_samples=0)
        base = compute_template_similarity(templates, method=method)
        np.testing.assert_allclose(again, base[np.ix_(perm, perm)], atol=1e-12)


@pytest.mark.parametrize("method", ["cosine", "l2"])
def test_pair_kernel_equals_blas_path(method):
    """The sparse numba path and the dense BLAS path agree on the same (dense) problem."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(9, 40, 7))
    mask = np.ones((9, 7), dtype=bool)
    for n in (0, 3):
        blas = simmod._similarity_blas(x.copy(), n, method)
        pairs = simmod._similarity_pairs(x.copy(), mask, n, method, "union", n_jobs=1)
        iu = np.triu_indices(9)
        np.testing.assert_allclose(pairs[iu], blas[iu], atol=1e-12)


def test_threads_give_same_result():
    rng = np.random.default_rng(8)
    templates = rng.normal(size=(40, 30, 12))
    rows = np.stack([np.arange(4) + rng.integers(0, 8) for _ in range(40)])
    one = compute_template_similarity(templates, rows, method="l1", max_lag_samples=2)
    two = compute_template_similarity(templates, rows, method="l1", max_lag_samples=2, n_jobs=2)
    np.testing.assert_array_equal(one, two)


def test_bad_inputs():
    t = np.zeros((3, 20, 4))
    with pytest.raises(InputError, match="method"):
        compute_template_similarity(t, method="l3")
    with pytest.raises(InputError, match="support"):
        compute_template_similarity(t, support="some")
    with pytest.raises(InputError, match="max_lag_samples"):
        compute_template_similarity(t, max_lag_samples=10)
    with pytest.raises(InputError, match="max_lag_samples"):
        compute_template_similarity(t, max_lag_samples=1.5)
    with pytest.raises(InputError, match="samples, channels"):
        compute_template_similarity(t[0])
    bad = t.copy()
    bad[1, 3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        compute_template_similarity(bad)
    with pytest.raises(InputError, match="sparse_channel_indices"):
        compute_template_similarity(t, np.array([[0, 4], [0, 1], [1, 2]]))
    with pytest.raises(InputError, match="sparse_channel_indices"):
        compute_template_similarity(t, np.array([[0, 1], [0, 1]]))
    assert compute_template_similarity(np.zeros((0, 20, 4))).shape == (0, 0)


# --------------------------------------------------------------------------------------------
# merge suggestions


def _refractory_train(rng, rate_hz, duration_s, dead_ms=2.0):
    n = int(rate_hz * duration_s * 1.2) + 10
    isi = dead_ms / 1000 + rng.exponential(1.0 / rate_hz, n)
    t = np.cumsum(isi)
    return np.round(t[t < duration_s] * FS).astype(np.int64)


def _si_correlograms(trains, window_ms=50.0, bin_ms=1.0):
    """Correlograms of the trains (list, one per unit; may be empty) with SpikeInterface."""
    si = pytest.importorskip("spikeinterface.core")
    from spikeinterface.postprocessing import compute_correlograms
    samples = np.concatenate(trains)
    labels = np.concatenate([np.full(len(t), u) for u, t in enumerate(trains)])
    order = np.argsort(samples, kind="stable")
    sorting = si.NumpySorting.from_samples_and_labels(
        [samples[order]], [labels[order]], FS, unit_ids=np.arange(len(trains)))
    ccg, bins = compute_correlograms(sorting, window_ms=window_ms, bin_ms=bin_ms)
    return ccg, bins, sorting


@pytest.fixture(scope="module")
def merge_case():
    """Units: 0/1 one neuron split at random; 2/3 independent neurons with identical
    templates; 4/5 independent with similar templates; 6 dissimilar; 7 no spikes (template of
    unit 0)."""
    rng = np.random.default_rng(42)
    duration = 300.0
    neuron = _refractory_train(rng, 20.0, duration)
    pick = rng.random(neuron.size) < 0.4
    trains = [neuron[pick], neuron[~pick]]
    trains += [_refractory_train(rng, r, duration) for r in (12.0, 18.0, 10.0, 15.0, 8.0)]
    trains.append(np.zeros(0, dtype=np.int64))
    a, b, d, c = (_bump(num_channels=8, seed=s) for s in (10, 11, 12, 13))
    for k, w in enumerate((a, b, d, c)):  # each on its own pair of channels: dissimilar
        w[:, np.arange(8) // 2 != k] = 0.0
    near = 0.8 * d + 0.5 * np.roll(d, 3, axis=0)
    templates = np.stack([a, a, b, b, d, near, c, a])
    sim = compute_template_similarity(templates)
    ccg, bins, sorting = _si_correlograms(trains)
    counts = np.array([len(t) for t in trains])
    return dict(sim=sim, ccg=ccg, bins=bins, counts=counts, sorting=sorting, trains=trains)


def test_split_neuron_ranks_first(merge_case):
    m = merge_case
    assert m["sim"][4, 5] > 0.85 and m["sim"][0, 6] < 0.3  # the constructed similarities
    out = suggest_merges(m["sim"], m["ccg"], m["bins"], m["counts"], min_similarity=-1.0)
    pairs = list(zip(out["unit_index_a"].tolist(), out["unit_index_b"].tolist(), strict=True))
    assert pairs[0] == (0, 1)
    assert pairs.index((2, 3)) < pairs.index((0, 6))  # similar independents above dissimilar
    assert pairs.index((4, 5)) < pairs.index((0, 6))
    assert all(7 not in p for p in pairs)  # no spikes: never suggested
    assert len(pairs) == 21  # all pairs of the 7 units with spikes
    assert np.all(np.diff(out["score"]) <= 0)
    i01, i23 = pairs.index((0, 1)), pairs.index((2, 3))
    assert out["similarity"][i01] == pytest.approx(out["similarity"][i23], abs=1e-12)
    assert out["ccg_refractory_ratio"][i01] < 0.05  # shared refractory period
    assert 0.8 < out["ccg_refractory_ratio"][i23] < 1.2  # chance level
    assert out["ccg_shape_distance"][i01] < out["ccg_shape_distance"][i23]
    assert out["ccg_refractory_count"][i01] == 0
    # with the default threshold only the similar pairs remain, split first
    top = suggest_merges(m["sim"], m["ccg"], m["bins"], m["counts"])
    assert {(int(x), int(y)) for x, y in zip(top["unit_index_a"], top["unit_index_b"],
                                            strict=True)} == {(0, 1), (2, 3), (4, 5)}
    assert (top["unit_index_a"][0], top["unit_index_b"][0]) == (0, 1)


def test_merge_output_deterministic_and_subsets(merge_case):
    m = merge_case
    args = (m["sim"], m["ccg"], m["bins"], m["counts"])
    one, two = suggest_merges(*args, min_similarity=0.0), suggest_merges(*args,
                                                                         min_similarity=0.0)
    assert set(one) >= {"unit_index_a", "unit_index_b", "similarity", "ccg_refractory_ratio",
                        "ccg_shape_distance", "score"}
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
    # correlograms for a subset, rows in any order: same suggestions restricted to it
    rows = np.array([5, 1, 4, 0, 7])
    sub = m["ccg"][np.ix_(rows, rows)]
    got = suggest_merges(m["sim"], sub, m["bins"], m["counts"], unit_indices=rows,
                         min_similarity=0.0)
    keep = np.isin(one["unit_index_a"], rows) & np.isin(one["unit_index_b"], rows)
    for key in one:
        np.testing.assert_allclose(got[key], one[key][keep], atol=1e-12)
    top = suggest_merges(*args, min_similarity=0.0, max_suggestions=2)
    assert top["score"].size == 2 and np.array_equal(top["score"], one["score"][:2])
    none = suggest_merges(*args, min_similarity=1.5)
    assert all(v.size == 0 for v in none.values())


def test_refractory_ratio_analytic():
    """Flat correlogram of 10 counts per 1 ms bin: ratio 1; empty refractory bins: ratio 0."""
    edges = np.arange(-25.0, 25.5, 1.0)
    ccg = np.full((2, 2, 50), 10, dtype=np.int64)
    sim = np.array([[1.0, 0.9], [0.9, 1.0]])
    counts = np.array([100, 100])
    flat = suggest_merges(sim, ccg, edges, counts)
    assert flat["ccg_refractory_count"][0] == 20 and flat["ccg_refractory_expected"][0] == 20
    assert flat["ccg_refractory_ratio"][0] == 1.0
    dip = ccg.copy()
    dip[0, 1, 23:27] = 0  # [-2, 2) ms empty
    got = suggest_merges(sim, dip, edges, counts, refractory_ms=2.0)
    assert got["ccg_refractory_ratio"][0] == 0.0 and got["ccg_refractory_expected"][0] == 40
    # censored bins are left out: [-0.5, 0.5) centre rule with 0.5 ms bins
    fine = np.arange(-25.0, 25.25, 0.5)
    c2 = np.full((2, 2, 100), 4, dtype=np.int64)
    c2[0, 1, 49:51] = 1000  # bins centred at ±0.25 ms: inside censored_ms = 0.5
    got = suggest_merges(sim, c2, fine, counts, censored_ms=0.5)
    assert got["ccg_refractory_count"][0] == 8 and got["ccg_refractory_ratio"][0] == 1.0
    # score: similarity x (1 + R) / 2 x (1 + S) / 2 on a flat correlogram: R = 0
    s = flat["ccg_shape_distance"][0]
    assert flat["score"][0] == pytest.approx(0.9 * 0.5 * (1 + 0.5 ** (s / 0.16)) / 2)


def test_shape_distance_equals_spikeinterface(merge_case):
    from spikeinterface.curation.auto_merge import (
        compute_correlogram_diff,
        get_unit_adaptive_window,
        smooth_correlogram,
    )
    m = merge_case
    censor = 0.15
    n = 7  # units with spikes (SI's window for an empty unit is a wrapped index)
    ccg = m["ccg"][:n, :n].astype(np.float64)
    bins = m["bins"]
    ccg_si = ccg.copy()
    ccg_si[:, :, (bins[:-1] >= -censor) & (bins[:-1] < censor)] = 0
    smoothed = smooth_correlogram(ccg_si, bins, sigma_smooth_ms=0.6)
    win = np.array([get_unit_adaptive_window(smoothed[u, u], smoothed[u, u].max() * 0.5)
                    for u in range(n)])
    sorting = m["sorting"].select_units(np.arange(n))
    ref = compute_correlogram_diff(sorting, smoothed, win)
    got = suggest_merges(m["sim"][:n, :n], m["ccg"][:n, :n], bins, m["counts"][:n],
                         min_similarity=-1.0, censored_ms=censor)
    values = ref[got["unit_index_a"], got["unit_index_b"]]
    assert np.ptp(values) > 0.1
    np.testing.assert_allclose(got["ccg_shape_distance"], values, rtol=1e-9, atol=1e-12)


def test_merge_bad_inputs(merge_case):
    m = merge_case
    args = (m["sim"], m["ccg"], m["bins"], m["counts"])
    with pytest.raises(InputError, match="similarity"):
        suggest_merges(m["sim"][:3], *args[1:])
    with pytest.raises(InputError, match="correlograms"):
        suggest_merges(m["sim"], m["ccg"][:3], m["bins"], m["counts"])
    with pytest.raises(InputError, match="bin_edges_ms"):
        suggest_merges(m["sim"], m["ccg"], m["bins"][:-1], m["counts"])
    with pytest.raises(InputError, match="spike_counts"):
        suggest_merges(*args[:3], m["counts"][:-1])
    with pytest.raises(InputError, match="unit_indices"):
        suggest_merges(*args, unit_indices=np.array([0, 0, 1, 2, 3, 4, 5, 6]))
    with pytest.raises(InputError, match="refractory_ms"):
        suggest_merges(*args, refractory_ms=0.2)
    with pytest.raises(InputError, match="refractory_ms"):
        suggest_merges(*args, refractory_ms=30.0)
