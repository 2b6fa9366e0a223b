"""Unit depths (µm, y on the probe) from the unit table, peak channels or templates; the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.model.depth import compute_unit_depths_um, unit_depths_um

FS = 30_000.0
#: a 4-channel probe whose channel ids are not indices: y = 0 (the tip), 20, 40, 60 µm
CHANNEL_IDS = np.array([100, 101, 102, 103])
LOCATIONS = np.array([[16.0, 0.0], [48.0, 20.0], [16.0, 40.0], [48.0, 60.0]])
UNIT_IDS = np.array([7, 3, 12])


def sorting_of(unit_table=None, spike_unit_index=(0, 1, 1, 2), spike_properties=None,
               unit_ids=UNIT_IDS):
    unit_index = np.asarray(spike_unit_index, dtype=np.int32)
    sample_index = np.arange(unit_index.size, dtype=np.int64) * 100
    if unit_table is not None:
        unit_table = pd.DataFrame(unit_table, index=pd.Index(unit_ids, name="unit_id"))
    return sv.Sorting.from_arrays(sample_index, unit_index, FS, unit_ids=unit_ids,
                                  unit_table=unit_table, spike_properties=spike_properties)


def session_of(sorting, geometry=True, **params):
    if geometry:
        params.update(channel_ids=CHANNEL_IDS, channel_locations_um=LOCATIONS)
    return sv.Session(sorting, **params)


def templates_peaking_on(peak_positions, num_channels=4, sparse_channel_indices=None):
    """Templates whose largest peak-to-peak is on ``peak_positions`` (template columns)."""
    n = len(peak_positions)
    data = np.zeros((n, 10, num_channels), dtype=np.float32)
    data[:, 5, :] = -10.0  # a small spike everywhere
    data[np.arange(n), 5, peak_positions] = -100.0
    return data


# -- sources, first that applies ---------------------------------------------------------------
def test_depth_um_column_is_used_as_is():
    sorting = sorting_of({"depth_um": [35.0, np.nan, 0.0], "peak_channel_id": [100, 101, 102]})
    depths, source = unit_depths_um(session_of(sorting))
    assert source == "depth_um"
    np.testing.assert_array_equal(depths, [35.0, np.nan, 0.0])
    # no geometry needed
    assert unit_depths_um(session_of(sorting, geometry=False)).source == "depth_um"
    # nullable integers
    sorting = sorting_of({"depth_um": pd.array([20, None, 60], dtype="Int64")})
    np.testing.assert_array_equal(unit_depths_um(session_of(sorting)).depths_um,
                                  [20.0, np.nan, 60.0])


def test_unusable_depth_um_column_falls_through_to_peak_channels():
    for bad in (["deep", "mid", "top"], [np.nan, np.nan, np.nan]):
        sorting = sorting_of({"depth_um": bad, "peak_channel_id": [103, 100, 102]})
        depths, source = unit_depths_um(session_of(sorting))
        assert source == "peak_channel_id"
        np.testing.assert_array_equal(depths, [60.0, 0.0, 40.0])


def test_depth_from_peak_channel_ids_and_channel_locations():
    # ids, not positions: 101 is y = 20 µm; 5 is no channel of this probe
    sorting = sorting_of({"peak_channel_id": [101, 5, 103]})
    depths, source = unit_depths_um(session_of(sorting))
    assert source == "peak_channel_id"
    np.testing.assert_array_equal(depths, [20.0, np.nan, 60.0])
    # a column with a gap holds its ids as floats
    sorting = sorting_of({"peak_channel_id": [102.0, np.nan, 100.0]})
    np.testing.assert_array_equal(unit_depths_um(session_of(sorting)).depths_um,
                                  [40.0, np.nan, 0.0])
    # string channel ids (e.g. SpikeGLX "AP3") on a probe with string ids
    sorting = sorting_of({"peak_channel_id": ["b", "a", "d"]})
    session = session_of(sorting, geometry=False, channel_ids=np.array(["a", "b", "c", "d"]),
                         channel_locations_um=LOCATIONS)
    np.testing.assert_array_equal(unit_depths_um(session).depths_um, [20.0, 0.0, 60.0])


def test_unknown_depth_is_nan():
    # no geometry: peak channels cannot be placed
    sorting = sorting_of({"peak_channel_id": [101, 100, 102]})
    depths, source = unit_depths_um(session_of(sorting, geometry=False))
    assert source == "" and depths.shape == (3,) and np.isnan(depths).all()
    # geometry but nothing that names a channel
    depths, source = unit_depths_um(session_of(sorting_of()))
    assert source == "" and np.isnan(depths).all()
    # no peak channel on the probe at all
    depths, source = unit_depths_um(session_of(sorting_of({"peak_channel_id": [1, 2, 3]})))
    assert source == "" and np.isnan(depths).all()
    # no units
    empty = sv.Sorting.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int32), FS)
    depths, source = unit_depths_um(session_of(empty))
    assert source == "" and depths.shape == (0,)


def test_depth_from_per_unit_templates():
    # template rows in another order than the sorting's units: matched by unit id
    tpl = sv.Templates(templates_peaking_on([2, 0, 3]), np.array([12, 7, 3]), CHANNEL_IDS)
    session = session_of(sorting_of(), results={"templates": tpl})
    depths, source = unit_depths_um(session)
    assert source == "templates"
    # unit 7 -> row 1 -> channel 100 (0 µm), unit 3 -> row 2 -> 103, unit 12 -> row 0 -> 102
    np.testing.assert_array_equal(depths, [0.0, 60.0, 40.0])
    # the unit table's peak channels come first
    session = session_of(sorting_of({"peak_channel_id": [101, 101, 101]}),
                         results={"templates": tpl})
    depths, source = unit_depths_um(session)
    assert source == "peak_channel_id" and depths.tolist() == [20.0, 20.0, 20.0]


def test_depth_from_kilosort_templates_via_the_dominant_template():
    # 5 KiloSort templates (ids 0..4) peaking at y = 60, 0, 20, 40, 0 µm; curated units 30,
    # 31 (merged from several templates) and 32 (no spikes)
    tpl = sv.Templates(templates_peaking_on([3, 0, 1, 2, 0]), np.arange(5), CHANNEL_IDS)
    spike_unit = [0, 0, 0, 0, 1, 1, 1]
    spike_template = np.array([2, 2, 4, 2, 3, 1, 3])  # unit 30: 2 (x3); unit 31: 3 (x2)
    sorting = sorting_of(spike_unit_index=spike_unit, unit_ids=np.array([30, 31, 32]),
                         spike_properties={"template_index": spike_template})
    depths, source = unit_depths_um(session_of(sorting, results={"kilosort_templates": tpl}))
    assert source == "templates"
    np.testing.assert_array_equal(depths, [20.0, 40.0, np.nan])
    # a tie goes to the lowest template index
    sorting = sorting_of(spike_unit_index=[0, 0, 1, 1, 2], unit_ids=np.array([30, 31, 32]),
                         spike_properties={"template_index": np.array([4, 1, 3, 0, 2])})
    depths, _ = unit_depths_um(session_of(sorting, results={"kilosort_templates": tpl}))
    np.testing.assert_array_equal(depths, [0.0, 60.0, 20.0])
    # template indices beyond the templates: unusable, not guessed
    sorting = sorting_of(spike_unit_index=[0, 1, 2], unit_ids=np.array([30, 31, 32]),
                         spike_properties={"template_index": np.array([0, 1, 9])})
    depths, source = unit_depths_um(session_of(sorting, results={"kilosort_templates": tpl}))
    assert source == "" and np.isnan(depths).all()


def test_depth_from_sparse_kilosort_templates():
    # sparse templates: columns are positions in channel_ids given per template
    sparse = np.array([[3, 2, -1], [0, 1, 2]])
    data = np.zeros((2, 10, 3), dtype=np.float32)
    data[0, 5, :] = [-100.0, -10.0, 0.0]  # template 0 peaks on its column 0: channel 103
    data[1, 5, :] = [-10.0, -10.0, -100.0]  # template 1 peaks on its column 2: channel 102
    tpl = sv.Templates(data, np.arange(2), CHANNEL_IDS, sparse_channel_indices=sparse)
    sorting = sorting_of(spike_unit_index=[0, 1, 1], unit_ids=np.array([40, 41]),
                         spike_properties={"template_index": np.array([1, 0, 0])})
    depths, source = unit_depths_um(session_of(sorting, results={"kilosort_templates": tpl}))
    assert source == "templates"
    np.testing.assert_array_equal(depths, [40.0, 60.0])


def test_kilosort_templates_random(rng):
    num_units, n_templates, num_spikes = 20, 23, 20_000
    ys = np.arange(32) * 20.0
    channel_ids = np.arange(500, 532)
    locations = np.column_stack([np.zeros(32), ys])
    tpl_peak = rng.integers(0, 32, n_templates)
    data = np.zeros((n_templates, 10, 32), dtype=np.float32)
    data[np.arange(n_templates), 5, tpl_peak] = -100.0
    main = rng.permutation(n_templates)[:num_units]  # unit u mostly uses template main[u]
    unit_index = rng.integers(0, num_units, num_spikes).astype(np.int32)
    spike_template = main[unit_index]
    stray = rng.random(num_spikes) < 0.1
    spike_template[stray] = rng.integers(0, n_templates, stray.sum())
    sorting = sv.Sorting.from_arrays(np.sort(rng.integers(0, 10**7, num_spikes)), unit_index,
                                     FS, unit_ids=np.arange(num_units) + 1000,
                                     spike_properties={"template_index": spike_template})
    session = sv.Session(sorting, channel_ids=channel_ids, channel_locations_um=locations,
                         results={"kilosort_templates": sv.Templates(data, np.arange(n_templates),
                                                                     channel_ids)})
    depths, source = unit_depths_um(session)
    assert source == "templates"
    np.testing.assert_array_equal(depths, ys[tpl_peak[main]])


# -- the per-Session cache -----------------------------------------------------------------------
def test_computed_once_per_session_shared_and_read_only():
    session = session_of(sorting_of({"peak_channel_id": [101, 100, 102]}))
    first = unit_depths_um(session)
    assert unit_depths_um(session) is first
    assert not first.depths_um.flags.writeable
    with pytest.raises(ValueError):
        first.depths_um[0] = 1.0
    fresh = compute_unit_depths_um(session)
    assert fresh.depths_um is not first.depths_um and fresh.depths_um.flags.writeable
    np.testing.assert_array_equal(fresh.depths_um, first.depths_um)
    # another session over the same sorting has its own entry (its geometry may differ)
    other = session_of(session.sorting, geometry=False)
    assert unit_depths_um(other).source == ""
    assert unit_depths_um(session) is first


def test_cache_follows_a_changed_input():
    session = session_of(sorting_of())
    assert unit_depths_um(session).source == ""
    # a result added in place
    session.results["templates"] = sv.Templates(templates_peaking_on([1, 1, 3]), UNIT_IDS,
                                                CHANNEL_IDS)
    np.testing.assert_array_equal(unit_depths_um(session).depths_um, [20.0, 20.0, 60.0])
    # new geometry (the probe flipped)
    session.channel_locations_um = LOCATIONS[::-1].copy()
    np.testing.assert_array_equal(unit_depths_um(session).depths_um, [40.0, 40.0, 0.0])
    # a new sorting
    session.sorting = sorting_of({"depth_um": [1.0, 2.0, 3.0]})
    depths, source = unit_depths_um(session)
    assert source == "depth_um" and depths.tolist() == [1.0, 2.0, 3.0]
