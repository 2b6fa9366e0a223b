import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from tests.conftest import random_spikes


def reference_train(times, units, unit_index):
    return np.sort(times[units == unit_index])


def test_from_arrays_sorts_and_gives_exact_trains(rng):
    times, units = random_spikes(rng)
    s = sv.Sorting.from_arrays(times, units, 30000.0)
    assert s.num_spikes == times.size and s.num_units == 7
    assert np.all(np.diff(s.sample_index) >= 0)
    assert s.sample_index.dtype == np.int64 and s.unit_index.dtype == np.int32
    for u in range(7):
        train = s.spike_train(u)
        np.testing.assert_array_equal(train, reference_train(times, units, u))
        assert train.dtype == np.int64
        np.testing.assert_allclose(s.spike_train_s(u), train / 30000.0)
        # spike_indices point back into the spike vector
        np.testing.assert_array_equal(s.sample_index[s.spike_indices(u)], train)
        assert np.all(s.unit_index[s.spike_indices(u)] == u)
    assert s.spike_counts().sum() == times.size


def test_trains_are_read_only_views(rng):
    times, units = random_spikes(rng, 100, 3)
    s = sv.Sorting.from_arrays(times, units, 1000.0)
    with pytest.raises(ValueError):
        s.spike_train(0)[0] = 5
    with pytest.raises(ValueError):
        s.sample_index[0] = 5


def test_string_unit_ids_and_lookup_by_label_not_position():
    s = sv.Sorting.from_unit_ids([10, 20, 30, 40], ["b", "a", "b", "c"], 100.0)
    assert list(s.unit_ids) == ["a", "b", "c"]
    np.testing.assert_array_equal(s.spike_train("b"), [10, 30])
    with pytest.raises(KeyError, match="no unit with id 0"):
        s.spike_train(0)


def test_integer_ids_are_labels_not_positions():
    s = sv.Sorting.from_unit_ids([5, 6, 7], [17, 3, 17], 100.0)
    assert list(s.unit_ids) == [3, 17]
    np.testing.assert_array_equal(s.spike_train(17), [5, 7])
    with pytest.raises(KeyError):
        s.spike_train(1)  # position 1 exists, id 1 does not
    assert s.unit_index_of(np.int64(17)) == 1


def test_units_without_spikes_are_kept():
    s = sv.Sorting.from_unit_ids([1, 2], [4, 4], 10.0, unit_ids=[4, 9, 2])
    assert list(s.unit_ids) == [4, 9, 2]
    assert s.spike_train(9).size == 0 and s.spike_train(2).size == 0
    assert s.spike_counts().tolist() == [2, 0, 0]


def test_empty_sorting():
    s = sv.Sorting.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int32), 30000.0)
    assert s.num_units == 0 and s.num_spikes == 0 and s.duration_s == 0.0
    assert s.labels.empty


def test_windowed_train_is_half_open():
    s = sv.Sorting.from_arrays([0, 10, 20, 30], [0, 0, 0, 0], 10.0)
    np.testing.assert_array_equal(s.spike_train(0, 10, 30), [10, 20])
    np.testing.assert_array_equal(s.spike_train_s(0, 1.0, 3.0), [1.0, 2.0])


def test_duration_uses_num_samples_when_known():
    s = sv.Sorting.from_arrays([0, 299], [0, 0], 100.0)
    assert s.duration_s == pytest.approx(3.0)
    s2 = sv.Sorting.from_arrays([0, 299], [0, 0], 100.0, num_samples=1000)
    assert s2.duration_s == pytest.approx(10.0)
    with pytest.raises(InputError, match="beyond"):
        sv.Sorting.from_arrays([0, 1000], [0, 0], 100.0, num_samples=1000)


def test_select_units_keeps_rows_properties_and_order(rng):
    times, units = random_spikes(rng, 2000, 5)
    table = pd.DataFrame({"label": list("ggmnm")}, index=np.arange(5))
    amps = rng.normal(size=times.size)
    s = sv.Sorting.from_arrays(times, units, 1000.0, unit_table=table,
                               spike_properties={"amplitudes": amps})
    sub = s.select_units([3, 1])
    assert list(sub.unit_ids) == [3, 1]
    assert list(sub.unit_table["label"]) == ["n", "g"]
    for u in (3, 1):
        np.testing.assert_array_equal(sub.spike_train(u), s.spike_train(u))
        np.testing.assert_array_equal(sub.spike_properties["amplitudes"][sub.spike_indices(u)],
                                      s.spike_properties["amplitudes"][s.spike_indices(u)])
    assert sub.num_spikes == s.spike_counts()[[1, 3]].sum()


def test_ties_keep_both_spikes():
    s = sv.Sorting.from_arrays([5, 5, 5], [0, 1, 0], 10.0)
    assert s.spike_train(0).tolist() == [5, 5] and s.spike_train(1).tolist() == [5]


@pytest.mark.parametrize("kwargs, match", [
    (dict(sample_index=[1.5, 2.0], unit_index=[0, 0]), "integer sample indices"),
    (dict(sample_index=[-1, 2], unit_index=[0, 0]), ">= 0"),
    (dict(sample_index=[1, 2, 3], unit_index=[0, 0]), "entries"),
    (dict(sample_index=[1, 2], unit_index=[0, -1]), r"\[0, "),
    (dict(sample_index=[1, 2], unit_index=[0, 3], unit_ids=[7, 8]), r"\[0, 2\)"),
    (dict(sample_index=[1, 2], unit_index=[0, 1], unit_ids=[7, 7]), "unique"),
    (dict(sample_index=[[1, 2], [3, 4]], unit_index=[0, 1]), "1-D"),
])
def test_bad_arrays_are_rejected_with_the_field(kwargs, match):
    with pytest.raises(InputError, match=match):
        sv.Sorting.from_arrays(sampling_frequency=1000.0, **kwargs)


@pytest.mark.parametrize("fs", [None, 0, -5, float("nan")])
def test_sampling_frequency_is_required_and_positive(fs):
    with pytest.raises(InputError, match="sampling_frequency"):
        sv.Sorting.from_arrays([1], [0], fs)


def test_unsorted_rejected_when_sort_false():
    with pytest.raises(InputError, match="sorted"):
        sv.Sorting.from_arrays([3, 1], [0, 0], 10.0, sort=False)


def test_uint64_above_int64_range_rejected():
    with pytest.raises(InputError, match="int64"):
        sv.Sorting.from_arrays(np.array([2**63 + 1], dtype=np.uint64), [0], 10.0)


def test_unit_table_must_match_unit_ids():
    with pytest.raises(InputError, match="indexed by unit_id"):
        sv.Sorting.from_arrays([1, 2], [0, 1], 10.0,
                               unit_table=pd.DataFrame({"a": [1, 2]}, index=[5, 6]))


def test_large_ids_fall_back_to_unique():
    ids = np.array([10**12, 3, 10**12], dtype=np.int64)
    s = sv.Sorting.from_unit_ids([1, 2, 3], ids, 10.0)
    assert list(s.unit_ids) == [3, 10**12]
    np.testing.assert_array_equal(s.spike_train(10**12), [1, 3])


def test_copies_share_one_unit_order(rng):
    times, units = random_spikes(rng, 200, 4)
    s = sv.Sorting.from_arrays(times, units, 1000.0)
    copy = s.with_num_samples(int(times.max()) + 1)  # made before any order exists
    for u in s.unit_ids.tolist():
        np.testing.assert_array_equal(copy.spike_indices(u), np.flatnonzero(s.unit_index == u))
        np.testing.assert_array_equal(copy.spike_train(u), s.sample_index[s.unit_index == u])
    assert s.spike_indices(0).base is copy.spike_indices(0).base
