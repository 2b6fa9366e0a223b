"""The raster on the curation model: rows follow merge/split/undo, order_by, time window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv

pn = pytest.importorskip("panel")

from spikeviz.views import raster as raster_module  # noqa: E402
from spikeviz.views.raster import ORDER_COLUMNS, Raster, raster_data  # noqa: E402

FS = 30_000.0


def make_session(num_units=15, num_spikes=30_000, seed=3):
    """Seeded sorting, ids 5, 9, 13, ... and a 16-channel probe with a peak channel per unit."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.2, 3.0, num_units)
    unit_index = rng.choice(num_units, num_spikes, p=weights / weights.sum()).astype(np.int32)
    sample_index = rng.integers(0, int(60 * FS), num_spikes)
    unit_ids = np.arange(num_units) * 4 + 5
    table = pd.DataFrame({"peak_channel_id": rng.integers(0, 16, num_units),
                          "snr_table": rng.uniform(1, 9, num_units)},
                         index=pd.Index(unit_ids, name="unit_id"))
    sorting = sv.Sorting.from_arrays(sample_index, unit_index, FS, unit_ids=unit_ids,
                                     unit_table=table, num_samples=int(60 * FS))
    locations = np.column_stack([np.zeros(16), np.arange(16) * 25.0])
    return sv.Session(sorting, channel_ids=np.arange(16), channel_locations_um=locations)


def _expected_rows(sorting, values) -> list:
    """Unit ids bottom to top: ascending values, unknown (NaN) on top, ties by unit order."""
    ids = sorting.unit_ids.tolist()
    keys = [(np.isnan(v), 0.0 if np.isnan(v) else v, i) for i, v in enumerate(values)]
    return [ids[k[2]] for k in sorted(keys)]


def _check(raster):
    sorting = raster.curation.sorting
    assert raster.data.sorting is sorting
    assert sorted(raster.row_unit_ids) == sorted(sorting.unit_ids.tolist())
    for unit in sorting.unit_ids.tolist():
        points = raster.spikes_of(unit)
        np.testing.assert_array_equal(points["time_s"].to_numpy(),
                                      sorting.spike_train(unit) / FS)
        assert (points["row"].to_numpy() == raster.row_of(unit)).all()


def test_rows_follow_merge_split_undo_and_keep_the_order():
    session = make_session()
    raster = Raster(session)
    root = raster.__panel__().get_root()
    curation = session.curation
    rows0 = raster.row_unit_ids
    assert raster.order == "depth"
    ids = curation.sorting.unit_ids.tolist()

    merged = curation.merge([ids[0], ids[4]])
    _check(raster)
    assert ids[0] not in raster.row_unit_ids and merged in raster.row_unit_ids
    frame = session.curated.unit_frame()
    depth = frame["depth_um"].to_numpy(dtype=float)
    assert raster.row_unit_ids == _expected_rows(curation.sorting, depth)
    # the plot's axes follow: one tick label per row, y range over the rows
    from bokeh.models import CustomJSTickFormatter
    formatters = [f for f in root.select({"type": CustomJSTickFormatter})
                  if "labels" in f.args]
    assert formatters and all(f.args["labels"] == [str(u) for u in raster.row_unit_ids]
                              for f in formatters)
    n = len(raster.row_unit_ids)
    assert [(r.start, r.end) for r in raster._y_ranges] == [(-0.5, n - 0.5)]
    image = raster._base_image(x_range=(0.0, 60.0), y_range=(-0.5, n - 0.5), width=100,
                               height=n)
    counts = np.nan_to_num(image.dimension_values(2, flat=False)).sum(axis=1)
    assert counts.tolist() == [curation.sorting.spike_train(u).size
                               for u in raster.row_unit_ids]

    positions = curation.sorting.spike_indices(merged)
    a, b = curation.split(merged, positions[::2])
    _check(raster)
    assert merged not in raster.row_unit_ids and {a, b} <= set(raster.row_unit_ids)

    curation.undo()
    curation.undo()
    _check(raster)
    assert raster.row_unit_ids == rows0
    assert raster.data is raster_data(session)  # the original sorting's data again (cached)


def test_order_by_any_unit_frame_column():
    session = make_session()
    raster = Raster(session)
    sorting = session.curation.sorting
    choices = raster.param.order_by.objects
    assert choices[:len(ORDER_COLUMNS)] == list(ORDER_COLUMNS)
    assert "snr_table" in choices and "peak_channel_id" not in choices

    raster.order_by = "unit id"
    assert raster.order == "unit id" and raster.row_unit_ids == sorted(sorting.unit_ids)
    raster.order_by = "spikes"
    assert raster.order == "spikes"
    counts = np.array([sorting.spike_train(u).size for u in sorting.unit_ids.tolist()])
    assert raster.row_unit_ids == _expected_rows(sorting, counts.astype(float))
    raster.order_by = "firing rate"
    assert raster.row_unit_ids == _expected_rows(sorting, counts / 60.0)
    raster.order_by = "snr_table"
    assert raster.row_unit_ids == _expected_rows(sorting, sorting.unit_table["snr_table"]
                                                 .to_numpy(dtype=float))
    for name in choices:  # every offered order works; unknown values fall back to unit id
        raster.order_by = name
        values = raster.data.values
        if np.isfinite(values).any():
            assert raster.order == name
            assert raster.row_unit_ids == _expected_rows(sorting, values)
        else:
            assert raster.order == "unit id"
        _check(raster)
    # an order survives a merge
    raster.order_by = "spikes"
    ids = sorting.unit_ids.tolist()
    session.curation.merge(ids[:2])
    new = session.curation.sorting
    counts = np.array([new.spike_train(u).size for u in new.unit_ids.tolist()], float)
    assert raster.row_unit_ids == _expected_rows(new, counts)
    # a metric column can be asked for at construction
    assert Raster(session, order_by="snr_table").order == "snr_table"


def test_data_shared_per_sorting_and_order_times_per_spike_vector():
    session = make_session()
    a, b = Raster(session), Raster(session, order_by="spikes")
    c = Raster(session, order_by="spikes")
    assert b.data is c.data and a.data is not b.data
    assert a.data.time_s is b.data.time_s
    original = session.curation.sorting
    ids = original.unit_ids.tolist()
    session.curation.merge(ids[:2])  # same spike vector, new sorting
    assert a.data.sorting is session.curation.sorting is not original
    assert a.data.time_s is raster_data(session, curation=session.curation).time_s
    assert a.data.time_s is raster_module.spike_times_s(original)
    assert not a.data.time_s.flags.writeable


def test_time_window_both_ways_without_loops():
    session = make_session()
    raster = Raster(session)
    raster.__panel__().get_root()
    selection = session.selection
    events = []
    selection.param.watch(lambda e: events.append(e.new), "time_window_s")
    selection.time_window_s = (10.0, 12.5)
    assert [(r.start, r.end) for r in raster._x_ranges] == [(10.0, 12.5)]
    assert raster._range.x_range == (10.0, 12.5)
    assert events == [(10.0, 12.5)]  # the raster did not write it back
    raster._range.event(x_range=(20.0, 30.0))  # a zoom/pan in the browser
    assert selection.time_window_s == (20.0, 30.0)
    raster._range.event(x_range=(-5.0, 80.0))  # zoomed out past the session
    assert selection.time_window_s is None
    assert events == [(10.0, 12.5), (20.0, 30.0), None]
    raster._range.event(y_range=(0.0, 3.0), x_range=(0.0, 60.0))  # vertical pan only
    assert events == [(10.0, 12.5), (20.0, 30.0), None]
    raster.write_time_window = False
    raster._range.event(x_range=(1.0, 2.0))
    assert selection.time_window_s is None


def test_hidden_raster_catches_up_when_shown():
    session = make_session()
    raster = Raster(session, active=False)
    rows = raster.row_unit_ids
    ids = session.curation.sorting.unit_ids.tolist()
    session.curation.merge(ids[:3])
    assert raster.row_unit_ids == rows  # nothing done while hidden
    raster.active = True
    _check(raster)


def test_selection_highlight_follows_the_curation():
    session = make_session()
    raster = Raster(session)
    ids = session.curation.sorting.unit_ids.tolist()
    session.selection.unit_ids = [ids[2]]
    assert len(raster.highlight) == session.curation.sorting.spike_train(ids[2]).size
    merged = session.curation.merge([ids[2], ids[3]])
    assert session.selection.unit_ids == []
    assert len(raster.highlight) == 0 and raster._bands().data.empty
    session.selection.unit_ids = [merged]
    assert len(raster.highlight) == session.curation.sorting.spike_train(merged).size
    assert set(raster.highlight["row"].tolist()) == {raster.row_of(merged)}
    raster._on_tap(x=1.0, y=float(raster.row_of(ids[5])))
    assert session.selection.unit_ids == [ids[5]]


def test_hidden_raster_shows_the_selection_made_while_hidden():
    """A selection made while the raster's tab was hidden (same rows) reaches its caption
    and highlight when it is shown."""
    session = make_session()
    raster = Raster(session, active=False)
    ids = session.curation.sorting.unit_ids.tolist()
    session.selection.unit_ids = [ids[1], ids[4]]
    raster.active = True
    assert f"Selected: 2 units: {ids[1]}, {ids[4]}" in raster._info.object
    expected = sum(session.curation.sorting.spike_train(u).size for u in (ids[1], ids[4]))
    assert len(raster.highlight) == expected
