"""Exact order statistics (spikeviz.compute.select) against numpy."""

import numba
import numpy as np

from spikeviz.compute.select import median_inplace, select_rank


@numba.njit
def _select_copy(values, rank):
    buf = values.copy()
    out = select_rank(buf, buf.size, rank)
    return out, buf


@numba.njit
def _median_copy(values):
    return median_inplace(values.copy(), values.size)


def test_select_rank_is_the_sorted_element_and_partitions_around_it():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64, np.int16):
        for n in (1, 2, 3, 10, 101, 384):
            for ties in (False, True):
                values = rng.integers(-3, 4, n) if ties else rng.normal(size=n) * 100
                values = values.astype(dtype)
                expected = np.sort(values)
                for rank in {0, n // 2, n - 1}:
                    got, buf = _select_copy(values, rank)
                    assert got == expected[rank]
                    assert np.all(buf[:rank] <= got) and np.all(buf[rank + 1:] >= got)
                    assert np.array_equal(np.sort(buf), expected)  # a permutation


def test_median_equals_numpy_for_odd_and_even_counts():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        for n in (1, 2, 5, 6, 383, 384):
            for _ in range(20):
                values = (rng.normal(size=n) * 50 + rng.integers(-2, 3, n)).astype(dtype)
                assert _median_copy(values) == np.median(values)
    # sorted, reversed and constant inputs (quickselect's worst cases for naive pivots)
    for values in (np.arange(1000.0), np.arange(1000.0)[::-1].copy(), np.full(999, 7.0)):
        assert _median_copy(values) == np.median(values)
