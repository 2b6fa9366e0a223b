"""Firing rate over time: known counts per bin, a partial last bin, empty units, subsets."""

import numpy as np
import pytest

from spikeviz.compute.rates import compute_firing_rates, rate_bin_edges
from spikeviz.errors import InputError

FS = 30000.0


def test_known_counts_and_partial_last_bin():
    # 2.5 s at 30 kHz, 1 s bins: [0, 1), [1, 2), [2, 2.5)
    num_samples = 75_000
    t = np.array([0, 29_999, 30_000, 30_001, 59_999, 60_000, 74_999, 10], dtype=np.int64)
    u = np.array([0, 0, 0, 1, 1, 1, 1, 1], dtype=np.int32)
    rates, counts, edges = compute_firing_rates(t, u, 3, FS, num_samples, bin_s=1.0)
    np.testing.assert_array_equal(edges, [0.0, 1.0, 2.0, 2.5])
    assert counts.dtype == np.int64 and counts.shape == (3, 3)
    np.testing.assert_array_equal(counts, [[2, 1, 0], [1, 2, 2], [0, 0, 0]])
    np.testing.assert_allclose(rates, [[2, 1, 0], [1, 2, 4], [0, 0, 0]], rtol=0, atol=1e-12)
    assert rates.dtype == np.float64


def test_rate_is_count_over_true_bin_width():
    rng = np.random.default_rng(3)
    num_samples = 1_234_567
    t = np.sort(rng.integers(0, num_samples, 5000))
    u = rng.integers(0, 4, 5000)
    rates, counts, edges = compute_firing_rates(t, u, 4, FS, num_samples, bin_s=0.25)
    assert edges[0] == 0 and edges[-1] == num_samples / FS
    widths = np.diff(edges)
    np.testing.assert_allclose(widths[:-1], 0.25, rtol=0, atol=1e-12)
    assert 0 < widths[-1] < 0.25
    # independent reference: each spike's bin from its time in seconds and the edges
    expected = np.zeros_like(counts)
    np.add.at(expected, (u, np.searchsorted(edges, t / FS, side="right") - 1), 1)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_allclose(rates, counts / widths, rtol=1e-12)
    assert counts.sum() == 5000


def test_bins_that_are_not_whole_samples():
    # 0.1 s at 30 kHz is 3000 samples up to rounding in 0.1 * 30000; 1/3 s at 1 kHz is not
    edges = rate_bin_edges(30000.0, 30_000, 0.1)
    np.testing.assert_array_equal(edges, np.arange(11) * 3000.0)
    edges = rate_bin_edges(1000.0, 1000, 1 / 3)
    assert edges.size == 4 and edges[-1] == 1000
    np.testing.assert_allclose(np.diff(edges), 1000 / 3)
    t = np.array([333, 334, 666, 667, 999])
    _, counts, _ = compute_firing_rates(t, np.zeros(5, np.int32), 1, 1000.0, 1000, 1 / 3)
    np.testing.assert_array_equal(counts, [[1, 2, 2]])  # edges at 333.33 and 666.67


def test_recording_shorter_than_one_bin():
    rates, counts, edges = compute_firing_rates([0, 5, 9], [0, 0, 1], 2, FS, 10, bin_s=1.0)
    np.testing.assert_array_equal(edges, [0.0, 10 / FS])
    np.testing.assert_array_equal(counts, [[2], [1]])
    np.testing.assert_allclose(rates, [[2 * FS / 10], [FS / 10]])


def test_zero_spike_units_empty_sorting_and_subset():
    rates, counts, edges = compute_firing_rates([], [], 3, FS, 60_000, bin_s=0.5)
    assert counts.shape == (3, 4) and not counts.any() and not rates.any()
    assert edges.size == 5
    t = np.array([1, 40_000, 50_000, 59_999])
    u = np.array([2, 0, 2, 2])
    _, counts, _ = compute_firing_rates(t, u, 3, FS, 60_000, bin_s=1.0, unit_indices=[2, 1])
    np.testing.assert_array_equal(counts, [[1, 2], [0, 0]])
    rates, counts, edges = compute_firing_rates([], [], 2, FS, 0)
    assert counts.shape == (2, 0) and rates.shape == (2, 0) and edges.tolist() == [0.0]


def test_unsorted_spikes_are_fine():
    t = np.array([50_000, 10, 40_000])
    u = np.array([0, 0, 1])
    _, counts, _ = compute_firing_rates(t, u, 2, FS, 60_000)
    np.testing.assert_array_equal(counts, [[1, 1], [0, 1]])


@pytest.mark.parametrize("kwargs, field", [
    (dict(num_samples=100), "sample_index"),        # spike at 100 is outside [0, 100)
    (dict(bin_s=0.0), "bin_s"),
    (dict(num_samples=-1), "num_samples"),
    (dict(unit_indices=[0, 0]), "unit_indices"),
])
def test_bad_input_is_named(kwargs, field):
    args = dict(sample_index=[0, 100], unit_index=[0, 0], num_units=1, sampling_frequency=FS,
                num_samples=1000)
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        compute_firing_rates(**args)
    assert err.value.field == field
