"""Correlograms and ISI histograms: bin for bin against SpikeInterface, against a brute-force
reference written from the documented definition, and on hand-made cases with known answers."""

import numpy as np
import pytest

import spikeviz as sv
from spikeviz.compute.ccg import (
    compute_correlograms,
    compute_isi_histograms,
    correlogram_bins,
)
from spikeviz.datasets import generate
from spikeviz.errors import InputError
from tests.conftest import shared_path

FS = 30000.0
# (window_ms, bin_ms): defaults, the benchmark's, and odd ones where rounding and the
# "window is a multiple of the bin" cut matter.
COMBOS = [(50.0, 1.0), (100.0, 1.0), (37.0, 0.7), (10.0, 0.5), (20.0, 3.3), (2.0, 1.0),
          (7.3, 0.11)]


# -- references ------------------------------------------------------------------------------
def brute_force(t, u, k, half, bin_samples):
    """counts[i, j, b]: ordered pairs a != c, unit(a) = i, unit(c) = j, t_a - t_c in bin b."""
    num_half = half // bin_samples
    counts = np.zeros((k, k, 2 * num_half), dtype=np.int64)
    lag = t[:, None] - t[None, :]
    a, c = np.nonzero((lag >= -half) & (lag < half) & ~np.eye(t.size, dtype=bool))
    flat = np.ravel_multi_index(
        (u[a], u[c], np.floor_divide(lag[a, c], bin_samples) + num_half), counts.shape)
    return np.bincount(flat, minlength=counts.size).reshape(counts.shape)


def si_sorting(t, u, k, fs=FS):
    sc = pytest.importorskip("spikeinterface.core")
    return sc.NumpySorting.from_samples_and_labels([np.asarray(t, dtype=np.int64)],
                                                   [np.asarray(u)], fs, unit_ids=np.arange(k))


def si_correlograms(t, u, k, window_ms, bin_ms, fs=FS):
    post = pytest.importorskip("spikeinterface.postprocessing")
    return post.compute_correlograms(si_sorting(t, u, k, fs), window_ms=window_ms,
                                     bin_ms=bin_ms, method="numba")


def si_isi(t, u, k, window_ms, bin_ms, fs=FS):
    isi = pytest.importorskip("spikeinterface.postprocessing.isi")
    # "auto" in SpikeInterface is the numpy implementation
    return isi.compute_isi_histograms_numpy(si_sorting(t, u, k, fs), window_ms, bin_ms)


def tied_spikes(rng, num_spikes=3000, num_units=5, span=6000, step=15):
    """Spikes on a coarse grid: many equal samples, lags at exact bin edges and at exactly
    plus or minus half the window."""
    t = np.sort(rng.integers(0, span // step, num_spikes)).astype(np.int64) * step
    return t, rng.integers(0, num_units, num_spikes).astype(np.int32), num_units


def assert_same(ours, theirs):
    counts, edges = ours
    ref_counts, ref_edges = theirs
    np.testing.assert_array_equal(edges, ref_edges)
    assert counts.dtype == np.int64 and counts.shape == ref_counts.shape
    diff = np.abs(counts - ref_counts)
    assert diff.max(initial=0) == 0, f"{int((diff > 0).sum())} bins differ, max {diff.max()}"


@pytest.fixture(scope="module")
def generated():
    """spikeviz's seeded ground-truth sorting: 16 units, 120 s, about 10 k spikes."""
    return generate(duration_s=120.0, num_channels=16, num_units=16, seed=7).sorting


# -- bins ------------------------------------------------------------------------------------
@pytest.mark.parametrize("window_ms, bin_ms", COMBOS)
def test_bins_follow_spikeinterface(window_ms, bin_ms):
    post = pytest.importorskip("spikeinterface.postprocessing.correlograms")
    window_samples, bin_samples, edges = correlogram_bins(FS, window_ms, bin_ms)
    ref_edges, ref_half, ref_bin = post._make_bins(si_sorting([], [], 1), window_ms, bin_ms)
    assert (window_samples, bin_samples) == (2 * ref_half, ref_bin)
    assert edges.dtype == np.float64 and edges.size == window_samples // bin_samples + 1
    np.testing.assert_array_equal(edges, ref_edges)


def test_bins_known_values():
    window_samples, bin_samples, edges = correlogram_bins(30000.0, 37.0, 0.7)
    # half window round(555.0) = 555 samples, bin 21 samples, 555 cut to 546 = 26 bins
    assert (window_samples, bin_samples) == (1092, 21)
    assert edges.size == 53 and edges[0] == pytest.approx(-18.2) and edges[26] == 0.0
    assert correlogram_bins(20000.0, 50.0, 1.0)[:2] == (1000, 20)


@pytest.mark.parametrize("window_ms, bin_ms, field", [(1.0, 1.0, "window_ms"),
                                                      (50.0, 0.01, "bin_ms"),
                                                      (50.0, -1.0, "bin_ms"),
                                                      (float("nan"), 1.0, "window_ms")])
def test_bins_reject_impossible_windows(window_ms, bin_ms, field):
    with pytest.raises(InputError) as err:
        correlogram_bins(FS, window_ms, bin_ms)
    assert err.value.field == field


# -- against SpikeInterface -------------------------------------------------------------------
@pytest.mark.parametrize("window_ms, bin_ms", COMBOS)
def test_equals_spikeinterface_on_generated_data(generated, window_ms, bin_ms):
    s = generated
    ours = compute_correlograms(s.sample_index, s.unit_index, s.num_units, FS, window_ms,
                                bin_ms)
    theirs = si_correlograms(s.sample_index, s.unit_index, s.num_units, window_ms, bin_ms)
    assert theirs[0].sum() > 200  # a real test: plenty of pairs in the window
    assert_same(ours, theirs)


@pytest.mark.parametrize("window_ms, bin_ms", COMBOS)
def test_equals_spikeinterface_on_its_generated_sorting(window_ms, bin_ms):
    sc = pytest.importorskip("spikeinterface.core")
    sorting = sc.generate_sorting(num_units=12, durations=[60.0], firing_rates=20.0,
                                  refractory_period_ms=1.0, seed=11)
    vector = sorting.to_spike_vector()
    t, u = vector["sample_index"], vector["unit_index"]
    for n_jobs in (1, 2):
        assert_same(compute_correlograms(t, u, 12, FS, window_ms, bin_ms, n_jobs=n_jobs),
                    si_correlograms(t, u, 12, window_ms, bin_ms))


@pytest.mark.parametrize("window_ms, bin_ms", [(1.0, 0.5), (1.0, 0.1), (2.0, 1.0),
                                               (37.0, 0.7)])
def test_equals_spikeinterface_with_ties_and_exact_edges(rng, window_ms, bin_ms):
    t, u, k = tied_spikes(rng)
    theirs = si_correlograms(t, u, k, window_ms, bin_ms)
    window_samples, bin_samples, _ = correlogram_bins(FS, window_ms, bin_ms)
    np.testing.assert_array_equal(theirs[0],
                                  brute_force(t, u, k, window_samples // 2, bin_samples))
    for n_jobs in (1, 2):
        assert_same(compute_correlograms(t, u, k, FS, window_ms, bin_ms, n_jobs=n_jobs),
                    theirs)


def test_subset_of_units_in_custom_order(rng):
    t, u, k = tied_spikes(rng, num_units=8)
    full, _ = si_correlograms(t, u, k, 37.0, 0.7)
    order = [5, 0, 7, 3]
    counts, _ = compute_correlograms(t, u, k, FS, 37.0, 0.7, unit_indices=order)
    np.testing.assert_array_equal(counts, full[np.ix_(order, order)])
    everything_reordered = compute_correlograms(t, u, k, FS, 37.0, 0.7,
                                                unit_indices=np.arange(k)[::-1])[0]
    np.testing.assert_array_equal(everything_reordered, full[::-1, ::-1])


def test_real_kilosort_folder():
    folder = shared_path("bombcell_toy_kilosort")
    s = sv.load(folder, sampling_frequency=30000.0).sorting
    for window_ms, bin_ms in [(50.0, 1.0), (100.0, 1.0), (37.0, 0.7)]:
        ours = compute_correlograms(s.sample_index, s.unit_index, s.num_units, FS, window_ms,
                                    bin_ms, n_jobs=2)
        theirs = si_correlograms(s.sample_index, s.unit_index, s.num_units, window_ms, bin_ms)
        assert theirs[0].sum() > 10_000
        assert_same(ours, theirs)


def test_blocked_and_folded_accumulators_give_the_same_counts(rng, monkeypatch):
    """Row blocks (small memory budget) and early folds (pair limit) change nothing."""
    import sys
    module = sys.modules[compute_correlograms.__module__]
    t, u, k = tied_spikes(rng, num_units=6)
    expected = compute_correlograms(t, u, k, FS, 10.0, 0.5)[0]
    monkeypatch.setattr(module, "_ACCUMULATOR_BYTES", 1)  # one unit row per block
    monkeypatch.setattr(module, "_PAIR_LIMIT", 1000)  # fold every ~1000 pairs
    for n_jobs in (1, 2, 3):
        np.testing.assert_array_equal(
            compute_correlograms(t, u, k, FS, 10.0, 0.5, n_jobs=n_jobs)[0], expected)
    np.testing.assert_array_equal(expected, brute_force(t, u, k, 150, 15))


# -- analytic cases --------------------------------------------------------------------------
# window 10 ms / bin 1 ms at 30 kHz: half window 150 samples, bins of 30, 10 bins, zero at 5
@pytest.mark.parametrize("lag, later_bin, earlier_bin", [
    (45, 6, 3),     # +45 samples in [30, 60) -> bin 6;  -45 in [-60, -30) -> bin 3
    (30, 6, 4),     # exact edge: +30 opens [30, 60); -30 opens [-30, 0)
    (29, 5, 4),
    (1, 5, 4),
    (149, 9, 0),
    (150, None, 0),  # +half window is excluded, -half window included
    (151, None, None),
    (0, 5, 5),       # equal samples: lag 0 in both orders
])
def test_two_spikes_a_known_lag_apart(lag, later_bin, earlier_bin):
    t = np.array([1000, 1000 + lag], dtype=np.int64)
    u = np.array([0, 1], dtype=np.int32)
    counts, edges = compute_correlograms(t, u, 2, FS, 10.0, 1.0)
    expected = np.zeros((2, 2, 10), dtype=np.int64)
    if later_bin is not None:    # unit 1 after unit 0: t_1 - t_0 = +lag
        expected[1, 0, later_bin] = 1
    if earlier_bin is not None:  # t_0 - t_1 = -lag
        expected[0, 1, earlier_bin] = 1
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(edges, np.arange(-5, 6, dtype=float))
    assert_same((counts, edges), si_correlograms(t, u, 2, 10.0, 1.0))


def test_same_unit_at_the_same_sample_counts_twice_at_zero_lag():
    t = np.array([500, 500, 500, 530], dtype=np.int64)
    u = np.zeros(4, dtype=np.int32)
    counts, _ = compute_correlograms(t, u, 1, FS, 10.0, 1.0)
    expected = np.zeros(10, dtype=np.int64)
    expected[5] = 6      # 3 spikes at 500: 3 * 2 ordered pairs at lag 0
    expected[6] = 3      # 530 - 500 = +30
    expected[4] = 3      # 500 - 530 = -30
    np.testing.assert_array_equal(counts[0, 0], expected)


def test_units_with_zero_and_one_spike():
    t = np.array([100, 110, 120, 5000], dtype=np.int64)
    u = np.array([0, 0, 2, 0], dtype=np.int32)  # unit 1: no spike, unit 2: one spike
    counts, _ = compute_correlograms(t, u, 3, FS, 10.0, 1.0)
    assert counts.shape == (3, 3, 10)
    assert not counts[1].any() and not counts[:, 1].any()
    assert not counts[2, 2].any()
    assert counts[0, 0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]  # lags -10, +10
    assert counts[2, 0].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 0]  # +20, +10
    assert counts[0, 2].tolist() == [0, 0, 0, 0, 2, 0, 0, 0, 0, 0]  # -20, -10


def test_recording_shorter_than_the_window(rng):
    t = np.sort(rng.integers(0, 40, 30)).astype(np.int64)  # 40 samples, window 100 ms
    u = rng.integers(0, 3, 30).astype(np.int32)
    counts, edges = compute_correlograms(t, u, 3, FS, 100.0, 1.0)
    assert counts.sum() == 30 * 29  # every ordered pair is inside the window
    np.testing.assert_array_equal(counts, brute_force(t, u, 3, 1500, 30))
    assert_same((counts, edges), si_correlograms(t, u, 3, 100.0, 1.0))


def test_empty_sorting():
    counts, edges = compute_correlograms(np.zeros(0, np.int64), np.zeros(0, np.int32), 4, FS)
    assert counts.shape == (4, 4, 50) and counts.dtype == np.int64 and not counts.any()
    assert edges.shape == (51,)
    assert compute_correlograms([], [], 0, FS)[0].shape == (0, 0, 50)


def test_matches_brute_force_on_random_spikes(rng):
    for trial in range(5):
        n = int(rng.integers(50, 400))
        t = np.sort(rng.integers(0, 20_000, n)).astype(np.int64)
        u = rng.integers(0, 4, n).astype(np.int32)
        window_ms, bin_ms = COMBOS[trial]
        window_samples, bin_samples, _ = correlogram_bins(FS, window_ms, bin_ms)
        np.testing.assert_array_equal(
            compute_correlograms(t, u, 4, FS, window_ms, bin_ms, n_jobs=2)[0],
            brute_force(t, u, 4, window_samples // 2, bin_samples))


def test_bad_input_is_named():
    t = np.array([10, 5], dtype=np.int64)
    u = np.array([0, 0], dtype=np.int32)
    with pytest.raises(InputError, match="sorted") as err:
        compute_correlograms(t, u, 1, FS)
    assert err.value.field == "sample_index"
    with pytest.raises(InputError) as err:
        compute_correlograms(t[::-1], u + 3, 2, FS)
    assert err.value.field == "unit_index"
    with pytest.raises(InputError) as err:
        compute_correlograms(t[::-1], u, 2, FS, unit_indices=[1, 1])
    assert err.value.field == "unit_indices"
    with pytest.raises(InputError) as err:
        compute_correlograms(t[::-1], u, 2, FS, n_jobs=0)
    assert err.value.field == "n_jobs"
    with pytest.raises(InputError) as err:
        compute_correlograms(t[::-1] / FS, u, 2, FS)  # seconds, not samples
    assert err.value.field == "sample_index"


# -- ISI histograms --------------------------------------------------------------------------
@pytest.mark.parametrize("window_ms, bin_ms", [*COMBOS, (1.0, 1.0)])
def test_isi_equals_spikeinterface(generated, rng, window_ms, bin_ms):
    s = generated
    assert_same(compute_isi_histograms(s.sample_index, s.unit_index, s.num_units, FS,
                                       window_ms, bin_ms),
                si_isi(s.sample_index, s.unit_index, s.num_units, window_ms, bin_ms))
    t, u, k = tied_spikes(rng, span=60_000)
    ours = compute_isi_histograms(t, u, k, FS, window_ms, bin_ms)
    assert ours[0].sum() > 0
    assert_same(ours, si_isi(t, u, k, window_ms, bin_ms))
    order = [3, 1]
    np.testing.assert_array_equal(
        compute_isi_histograms(t, u, k, FS, window_ms, bin_ms, unit_indices=order)[0],
        ours[0][order])


def test_isi_real_kilosort_folder():
    folder = shared_path("bombcell_toy_kilosort")
    s = sv.load(folder, sampling_frequency=30000.0).sorting
    assert_same(compute_isi_histograms(s.sample_index, s.unit_index, s.num_units, FS),
                si_isi(s.sample_index, s.unit_index, s.num_units, 50.0, 1.0))


def test_isi_known_intervals():
    # window 10 ms = 300 samples, bins of 30: intervals 0, 29, 30, 299, 300 (in the last
    # bin, numpy.histogram's closed right edge) and 301 (outside)
    intervals = [0, 29, 30, 299, 300, 301]
    t = np.cumsum([1000, *intervals]).astype(np.int64)
    u = np.zeros(t.size, dtype=np.int32)
    # a second unit interleaved does not break the first one's intervals
    t2 = np.array([1001, 1100, 1400], dtype=np.int64)
    order = np.argsort(np.concatenate([t, t2]), kind="stable")
    times = np.concatenate([t, t2])[order]
    units = np.concatenate([u, np.ones(3, np.int32)])[order]
    counts, edges = compute_isi_histograms(times, units, 3, FS, 10.0, 1.0)
    assert counts.shape == (3, 10)
    assert counts[0].tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert counts[1].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1]  # 99 and 300
    assert not counts[2].any()  # no spikes
    np.testing.assert_array_equal(edges, np.arange(11, dtype=float))
    single = compute_isi_histograms(np.array([7]), np.array([0]), 1, FS)[0]
    assert single.shape == (1, 50) and not single.any()


def test_isi_rejects_bins_below_one_sample_and_above_the_window():
    with pytest.raises(InputError) as err:
        compute_isi_histograms([1, 2], [0, 0], 1, FS, 50.0, 0.02)
    assert err.value.field == "bin_ms"
    with pytest.raises(InputError) as err:
        compute_isi_histograms([1, 2], [0, 0], 1, FS, 1.0, 2.0)
    assert err.value.field == "window_ms"


# -- a few units gathered by their per-unit positions (sv.compute wrappers) ------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gathered_subset_equals_the_masked_subset(monkeypatch, seed):
    """The wrappers take a few units' spikes from ``sorting.spike_indices`` (no mask over every
    spike): same counts as masking the whole vector, with unit ids that are not indices, ties
    and a custom order."""
    import spikeviz.compute as svc
    from spikeviz.compute import ccg

    rng = np.random.default_rng(seed)
    t, u, k = tied_spikes(rng, num_spikes=4000, num_units=12)
    ids = np.sort(rng.choice(1000, k, replace=False)) + 7
    sorting = sv.Sorting.from_arrays(t, u, FS, unit_ids=ids, num_samples=int(t[-1]) + 100)
    chosen = [int(ids[i]) for i in rng.choice(k, 3, replace=False)]
    gathered = []
    original = ccg.gather_units
    monkeypatch.setattr(ccg, "gather_units", lambda *a: gathered.append(1) or original(*a))
    fast = (svc.correlograms(sorting, 10.0, 0.5, unit_ids=chosen),
            svc.isi_histograms(sorting, 20.0, 1.0, unit_ids=chosen),
            svc.firing_rates(sorting, 0.05, unit_ids=chosen))
    assert len(gathered) == 3
    monkeypatch.setattr(svc, "GATHER_FRACTION", -1.0)  # force the mask over every spike
    slow = (svc.correlograms(sorting, 10.0, 0.5, unit_ids=chosen),
            svc.isi_histograms(sorting, 20.0, 1.0, unit_ids=chosen),
            svc.firing_rates(sorting, 0.05, unit_ids=chosen))
    assert len(gathered) == 3
    for (a, ea), (b, eb) in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(ea, eb)
        np.testing.assert_array_equal(a, b)
    assert fast[0][0].sum() > 0 and fast[1][0].sum() > 0
    # and both equal a from-scratch sorting holding only those units
    alone = sorting.select_units(chosen)
    assert_same(fast[0], compute_correlograms(alone.sample_index, alone.unit_index, 3, FS,
                                              10.0, 0.5))

