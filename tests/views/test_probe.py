"""Probe view at the Param level (no browser): unit points, tap mapping, highlight, curation."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz import datasets
from spikeviz.model.selection import Selection

pytest.importorskip("panel")

from spikeviz.views.colors import BACKGROUND_COLOR, PALETTE
from spikeviz.views.probe import Probe

FS = 30_000.0


@pytest.fixture(scope="module")
def gt():
    return datasets.generate(duration_s=6.0, num_channels=32, num_units=6, seed=3, lfp_uv=0.0,
                             line_uv=0.0, artefact_rate_hz=0.0)


def relabelled(gt):
    """The true units with ids 10, 17, 24, ... (ids != indices) and the recording."""
    s = gt.sorting
    ids = np.arange(s.num_units) * 7 + 10
    sorting = sv.Sorting(s.sample_index, s.unit_index, s.sampling_frequency, unit_ids=ids,
                         num_samples=gt.num_samples)
    return sv.Session(sorting, recording=gt.recording(), cache_dir=None)


def peak_channel_session(geometry=True):
    """No recording; 5 units (ids 3, 8, 13, 18, 23) with peak channel ids on a 2-column probe
    of 16 channels (ids 100..115, rows 25 µm apart)."""
    rng = np.random.default_rng(1)
    unit_index = rng.integers(0, 5, 2000).astype(np.int32)
    sample_index = np.sort(rng.integers(0, int(10 * FS), 2000))
    ids = np.array([3, 8, 13, 18, 23])
    table = pd.DataFrame({"peak_channel_id": [100, 107, 115, 104, 107],
                          "label": ["good", "mua", "good", "noise", "good"]},
                         index=pd.Index(ids, name="unit_id"))
    sorting = sv.Sorting.from_arrays(sample_index, unit_index, FS, unit_ids=ids,
                                     unit_table=table, num_samples=int(10 * FS))
    if not geometry:
        return sv.Session(sorting, cache_dir=None)
    locations = np.column_stack([np.tile([0.0, 30.0], 8), np.repeat(np.arange(8) * 25.0, 2)])
    return sv.Session(sorting, channel_ids=np.arange(100, 116), channel_locations_um=locations,
                      cache_dir=None)


def test_units_at_their_peak_channels_and_tap_selects_exactly():
    session = peak_channel_session()
    view = Probe(session)
    frame = view.frame
    assert frame.index.tolist() == [3, 8, 13, 18, 23]
    # channel c (id 100 + c) sits at x = 30 * (c % 2), y = 25 * (c // 2)
    for unit, channel in [(3, 100), (8, 107), (13, 115), (18, 104), (23, 107)]:
        c = channel - 100
        assert (frame.loc[unit, "x_um"], frame.loc[unit, "y_um"]) == (30.0 * (c % 2),
                                                                      25.0 * (c // 2))
        assert frame.loc[unit, "depth_um"] == 25.0 * (c // 2)
    assert frame.loc[18, "label"] == "noise"
    assert (frame["color"] == BACKGROUND_COLOR).all() and not frame["selected"].any()

    for i, unit in enumerate(frame.index.tolist()):
        view._select.event(index=[i])  # what Bokeh reports for a tap on the i-th point
        assert session.selection.unit_ids == [unit]
    view._select.event(index=[1])
    view._select.event(index=[3, 1])  # shift-tap adds 18: the first selected stays first
    assert session.selection.unit_ids == [8, 18]
    view._select.event(index=[])  # a click beside the units keeps the selection
    assert session.selection.unit_ids == [8, 18]

    frame = view.frame
    assert frame["selected"].tolist() == [False, True, False, True, False]
    assert frame.loc[8, "color"] == PALETTE[0] and frame.loc[18, "color"] == PALETTE[1]
    assert frame.loc[8, "size"] > frame.loc[3, "size"]
    # highlighted: channels within 40 µm of channel 107 (x=30, y=75) or 104 (x=0, y=50)
    assert view.peak_channel_ids == [104, 107]
    xy = session.channel_locations_um
    near = [100 + c for c in range(16)
            if min(np.hypot(*(xy[c] - xy[7])), np.hypot(*(xy[c] - xy[4]))) <= 40.0]
    assert view.highlighted_channel_ids == near
    view.radius_um = 0.0
    assert view.highlighted_channel_ids == [104, 107]
    session.selection.unit_ids = []
    assert view.highlighted_channel_ids == [] and not view.frame["selected"].any()


def test_locations_from_templates_and_merge_then_undo(gt):
    session = relabelled(gt)
    view = Probe(session)
    locations = view.results.unit_locations()
    assert view.frame.index.tolist() == session.sorting.unit_ids.tolist()
    np.testing.assert_allclose(view.frame[["x_um", "y_um"]].to_numpy(),
                               locations.loc[view.frame.index, ["x_um", "y_um"]].to_numpy())
    # the biggest unit sits within 30 µm of its true soma (x, y), seen independently
    truth = gt.sorting.unit_table
    biggest = int(np.argmax(np.ptp(gt.templates, axis=1).max(axis=1)))
    x, y = view.frame.loc[biggest * 7 + 10, ["x_um", "y_um"]]
    assert np.hypot(x - truth["x_um"].iloc[biggest], y - truth["y_um"].iloc[biggest]) < 30.0

    new = session.curation.merge([10, 17])
    assert new in view.frame.index and 10 not in view.frame.index and 17 not in view.frame.index
    np.testing.assert_allclose(view.frame.loc[new, ["x_um", "y_um"]].to_numpy(dtype=float),
                               view.results.unit_locations().loc[new].to_numpy(dtype=float))
    i = view.frame.index.get_loc(new)
    view._select.event(index=[i])
    assert session.selection.unit_ids == [new]
    assert view.frame.loc[new, "selected"]
    session.curation.undo()
    assert new not in view.frame.index
    assert {10, 17} <= set(view.frame.index)
    assert session.selection.unit_ids == []


def test_hidden_probe_does_no_work_until_shown():
    session = peak_channel_session()
    selection = Selection(session.sorting)
    view = Probe(session, selection=selection, active=False)
    assert view.renders == 0 and len(view.frame) == 0
    selection.unit_ids = [13]
    view.radius_um = 10.0
    assert view.renders == 0
    view.active = True
    assert view.renders == 1
    assert view.frame["selected"].tolist() == [False, False, True, False, False]
    assert view.highlighted_channel_ids == [115]


def test_no_geometry_a_clear_message():
    session = peak_channel_session(geometry=False)
    view = Probe(session)
    assert not view.has_geometry and view.plot is None
    text = view._layout[1].object
    assert "No probe geometry" in text
    session.selection.unit_ids = [3]  # nothing to redraw, nothing raised


def _figure(root):
    """The Bokeh figure of a rendered view and its unit points' renderer."""
    from bokeh.models import GlyphRenderer, Plot

    fig = root.select_one({"type": Plot})
    units = [r for r in fig.renderers if isinstance(r, GlyphRenderer)
             and "unit_id" in r.data_source.data]
    return fig, units[0]


def test_selection_updates_the_same_figure_in_place():
    async def run():
        session = peak_channel_session()
        view = Probe(session)
        root = view.__panel__().get_root()
        fig, units = _figure(root)
        session.selection.unit_ids = [8]
        await asyncio.sleep(0)
        data = units.data_source.data
        assert list(data["color"]) == [BACKGROUND_COLOR, PALETTE[0]] + [BACKGROUND_COLOR] * 3
        assert units.data_source.selected.indices == [1]
        session.selection.unit_ids = [23, 3]
        await asyncio.sleep(0)
        fig2, units2 = _figure(root)
        assert fig2.id == fig.id and units2 is units  # no new figure, no new glyph
        data = units.data_source.data
        assert list(data["unit_id"]) == ["3", "8", "13", "18", "23"]
        assert list(data["size"]) == [14.0, 7.0, 7.0, 7.0, 14.0]
        assert list(data["color"]) == [PALETTE[1]] + [BACKGROUND_COLOR] * 3 + [PALETTE[0]]
        assert sorted(units.data_source.selected.indices) == [0, 4]

    asyncio.run(run())


def tall_probe_session():
    """64 rows 20 µm apart in one column (0..1260 µm); units at rows 2, 30 and 60."""
    rng = np.random.default_rng(2)
    unit_index = rng.integers(0, 3, 600).astype(np.int32)
    sample_index = np.sort(rng.integers(0, int(10 * FS), 600))
    ids = np.array([5, 6, 7])
    table = pd.DataFrame({"peak_channel_id": [2, 30, 60]}, index=pd.Index(ids, name="unit_id"))
    sorting = sv.Sorting.from_arrays(sample_index, unit_index, FS, unit_ids=ids,
                                     unit_table=table, num_samples=int(10 * FS))
    locations = np.column_stack([np.zeros(64), np.arange(64) * 20.0])
    return sv.Session(sorting, channel_ids=np.arange(64), channel_locations_um=locations,
                      cache_dir=None)


def test_axes_fit_the_first_selected_unit_neighbourhood():
    async def run():
        session = tall_probe_session()
        view = Probe(session)
        fig, _ = _figure(view.__panel__().get_root())
        half = view.square_um / 2  # squares 0.6 of the 20 µm pitch wide
        assert half == pytest.approx(6.0)
        whole = (-half, -half, half, 1260 + half)
        assert view.focus_box_um == pytest.approx(whole)

        def fitted():
            (focus,) = fig.y_range.renderers
            assert fig.x_range.renderers == [focus] and fig.match_aspect
            d = focus.data_source.data
            return (d["left"][0], d["bottom"][0], d["right"][0], d["top"][0])

        assert fitted() == pytest.approx(whole)
        span = fig.y_range.default_span
        session.selection.unit_ids = [6]  # row 30: y = 600 µm
        await asyncio.sleep(0)
        assert fitted() == pytest.approx((-half, 300.0, half, 900.0))
        assert fig.y_range.default_span != span  # BokehJS re-fits (drops user zoom)
        span = fig.y_range.default_span
        session.selection.unit_ids = [6, 7]  # same first unit: same box, no re-zoom
        await asyncio.sleep(0)
        assert fig.y_range.default_span == span
        session.selection.unit_ids = [5]  # row 2: y = 40 µm, clipped at the probe's tip
        await asyncio.sleep(0)
        assert fitted() == pytest.approx((-half, -half, half, 340.0))
        session.selection.unit_ids = []
        await asyncio.sleep(0)
        assert fitted() == pytest.approx(whole)

    asyncio.run(run())


def test_hidden_probe_renders_colour_columns_bokehjs_accepts(gt):
    """Built hidden (no frame yet), the probe's first render has an empty points source whose
    colour columns must still be text: BokehJS refuses a float64 colour array ("invalid color
    array") and then draws nothing in the tab, even after it is shown."""
    import holoviews as hv
    from bokeh.models import ColumnDataSource

    session = peak_channel_session()
    probe = Probe(session, active=False)
    fig = hv.render(probe.plot, backend="bokeh")
    checked = 0
    for source in fig.select({"type": ColumnDataSource}):
        for name in ("color", "line_color"):
            if name in source.data:
                values = np.asarray(source.data[name])
                assert values.dtype.kind in "OUS", (name, values.dtype)
                checked += 1
    assert checked >= 2
