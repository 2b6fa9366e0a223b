"""Traces view at the Param level (no browser): envelopes, order, filtering, overlays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import signal

import spikeviz as sv
from spikeviz.compute.signal import (
    butter_sos,
    column_edges,
    common_median_reference,
    envelope_image,
    minmax_envelope,
    sosfiltfilt_f32,
)
from spikeviz.model.curation import Curation
from spikeviz.model.selection import Selection

pytest.importorskip("panel")

from spikeviz.views.colors import PALETTE, id_color, unit_color, unit_colors
from spikeviz.views.traces import Traces

FS = 30_000.0


def _probe(n):
    """n channels, ids 200.. (ids != indices), stored in a shuffled depth order."""
    rng = np.random.default_rng(1)
    depth = rng.permutation(n) * 20.0
    x = np.where(np.arange(n) % 2, 43.0, 11.0)
    return np.arange(200, 200 + n), np.column_stack([x, depth])


def make_session(n_channels=40, duration_s=3.0, seed=0, dc_uv=0.0, common=None,
                 units=((7, 5), (9, 12), (11, 30)), with_recording=True, peak_table=True):
    """Seeded noise (int16, gain 0.5 µV) plus spikes: unit id -> peak channel position."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * FS)
    ids, locations = _probe(n_channels)
    uv = rng.normal(0.0, 10.0, (n, n_channels)) + dc_uv
    if common is not None:
        uv += common[:n, None]
    sample_index, unit_index = [], []
    for k, (_uid, column) in enumerate(units):
        times = np.sort(rng.choice(np.arange(100, n - 100), 40, replace=False))
        uv[times, column] -= 300.0
        sample_index.append(times)
        unit_index.append(np.full(times.size, k))
    sample_index = np.concatenate(sample_index or [np.zeros(0, np.int64)])
    unit_index = np.concatenate(unit_index or [np.zeros(0, np.int64)]).astype(np.int32)
    order = np.argsort(sample_index, kind="stable")
    unit_ids = np.array([u for u, _ in units], dtype=np.int64)
    table = pd.DataFrame({"peak_channel_id": [int(ids[c]) for _, c in units]},
                         index=pd.Index(unit_ids, name="unit_id")) if peak_table else None
    sorting = sv.Sorting.from_arrays(sample_index[order], unit_index[order], FS,
                                     unit_ids=unit_ids, unit_table=table,
                                     num_samples=n)
    raw = np.round(uv / 0.5).astype(np.int16)
    recording = sv.Recording.from_array(raw, FS, channel_locations=locations,
                                        channel_ids=ids, gains_to_uv=0.5)
    session = sv.Session(sorting, recording if with_recording else None)
    return session, raw


def make_view(session, **params):
    curation = Curation(session.sorting)
    selection = Selection.for_session(session, curation=curation) if _takes_curation() \
        else Selection.for_session(session)
    return Traces(session, selection=selection, curation=curation, **params)


def _takes_curation():
    import inspect
    return "curation" in inspect.signature(Selection.__init__).parameters


# -- compute helpers --------------------------------------------------------------------------
def test_envelope_is_the_exact_min_max_of_every_column():
    t = np.arange(12345) / FS
    x = np.column_stack([np.sin(2 * np.pi * 37 * t), np.cos(2 * np.pi * 5 * t) * 3]) \
        .astype(np.float32)
    for n_columns in (1, 7, 640, 12345, 50000):
        mins, maxs, edges = minmax_envelope(x, n_columns)
        assert edges[0] == 0 and edges[-1] == x.shape[0] and np.all(np.diff(edges) >= 1)
        for k in range(mins.shape[0]):
            chunk = x[edges[k]:edges[k + 1]]
            assert np.array_equal(mins[k], chunk.min(axis=0))
            assert np.array_equal(maxs[k], chunk.max(axis=0))


def test_a_one_sample_spike_is_never_lost_at_any_zoom():
    x = np.zeros((30000, 3), dtype=np.int16)
    x[12345, 1] = -900
    x[29999, 2] = 700
    for n_columns in (1, 3, 100, 999, 1920, 30000):
        mins, maxs, edges = minmax_envelope(x, n_columns)
        assert mins[:, 1].min() == -900 and maxs[:, 2].max() == 700
        k = np.searchsorted(edges, 12345, side="right") - 1
        assert mins[k, 1] == -900


def test_envelope_reorders_channels_without_changing_values():
    x = np.random.default_rng(0).normal(size=(1000, 6)).astype(np.float32)
    mins, maxs, _ = minmax_envelope(x, 10, columns=[4, 0, 5])
    ref_min, ref_max, _ = minmax_envelope(x[:, [4, 0, 5]].copy(), 10)
    assert np.array_equal(mins, ref_min) and np.array_equal(maxs, ref_max)
    assert column_edges(5, 100).tolist() == [0, 1, 2, 3, 4, 5]


def test_float32_filter_matches_scipy_sosfiltfilt():
    x = np.random.default_rng(0).normal(0, 30, (4000, 5)).astype(np.float32) + 500
    for band in [(300.0, 6000.0), (300.0, None)]:
        sos = butter_sos(FS, band)
        ref = signal.sosfiltfilt(sos, x.astype(np.float64), axis=0)
        assert np.abs(sosfiltfilt_f32(sos, x) - ref).max() < 1e-3


def test_common_median_reference_subtracts_the_median_across_channels():
    x = np.random.default_rng(2).normal(size=(500, 7)).astype(np.float32)
    for m in (7, 6, 1):
        ref = x[:, :m] - np.median(x[:, :m], axis=1, keepdims=True)
        assert np.allclose(common_median_reference(x[:, :m]), ref, atol=1e-6)


def test_envelope_image_covers_each_channel_envelope():
    mins = np.array([[-1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    maxs = np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    image = envelope_image(mins, maxs, baseline=[0.0, 2.0], scale=0.25, y_range=(-1.0, 3.0),
                           height=40)
    # channel 0, column 0 spans y -0.25..0.25 -> rows 7..12; channel 1 sits at y=2 -> row 30
    assert image[:, 0].nonzero()[0].tolist() == [7, 8, 9, 10, 11, 12, 30]
    assert image[30, 1] == 1 and image[10, 1] == 1


# -- the view ----------------------------------------------------------------------------------
def test_channels_are_ordered_by_depth_and_honour_the_selection():
    session, _ = make_session()
    view = make_view(session)
    ids, locations = _probe(40)
    expected = ids[np.lexsort((np.arange(40), locations[:, 0], locations[:, 1]))].tolist()
    assert view.channel_ids == expected
    assert view.frame.channel_ids == expected
    view.selection.channel_ids = [expected[5], expected[1], expected[3]]
    assert view.frame.channel_ids == [expected[1], expected[3], expected[5]]


def test_frame_envelope_equals_numpy_on_the_raw_slice_and_follows_the_time_window():
    session, raw = make_session()
    view = make_view(session)
    assert view.window_s == (0.0, 1.0)
    frame = view.compute_frame(0.5, 0.75, width_px=333)
    ids = frame.channel_ids
    columns = session.recording.channel_indices(ids)
    uv = raw[15000:22500][:, columns].astype(np.float32) * 0.5
    edges = frame.edges
    assert edges[-1] == 7500 and frame.mins_uv.shape == (333, len(ids))
    for k in (0, 100, 332):
        assert np.array_equal(frame.mins_uv[k], uv[edges[k]:edges[k + 1]].min(axis=0))
        assert np.array_equal(frame.maxs_uv[k], uv[edges[k]:edges[k + 1]].max(axis=0))
    before = view.frame
    view.selection.time_window_s = (2.0, 2.5)
    assert view.frame is not before and view.frame.window_s == (2.0, 2.5)
    assert view.frame.start_sample == 60000 and view.frame.end_sample == 75000
    assert not np.array_equal(view.frame.mins_uv, before.mins_uv[:view.frame.mins_uv.shape[0]])


def test_high_pass_removes_dc_and_cmr_removes_a_common_sinusoid():
    t = np.arange(int(3 * FS)) / FS
    common = 400.0 * np.sin(2 * np.pi * 1000 * t)
    session, raw = make_session(dc_uv=2000.0, common=common, units=())
    view = make_view(session)
    view.selection.time_window_s = (1.0, 1.2)
    frame = view.frame
    assert np.allclose(np.mean(0.5 * (frame.mins_uv + frame.maxs_uv), axis=0), 2000.0, atol=20)
    view.filter = "highpass"
    hp = view.frame
    # the DC is gone, the 1 kHz common sine passes
    assert np.abs(np.mean(0.5 * (hp.mins_uv + hp.maxs_uv), axis=0)).max() < 20
    assert hp.maxs_uv.max() > 350 and hp.mins_uv.min() < -350
    # and the frame is the envelope of the whole recording filtered by scipy (analytic ref)
    columns = session.recording.channel_indices(hp.channel_ids)
    ref = signal.sosfiltfilt(butter_sos(FS, (300.0, None)), raw * 0.5, axis=0)
    ref_min, ref_max, _ = minmax_envelope(ref[30000:36000][:, columns], hp.mins_uv.shape[0])
    assert np.abs(hp.mins_uv - ref_min).max() < 1.0 and np.abs(hp.maxs_uv - ref_max).max() < 1.0
    view.cmr = True
    both = view.frame
    # only the noise is left (sigma 10 µV), far below the 400 µV sine
    assert np.abs(both.mins_uv).max() < 80 and np.abs(both.maxs_uv).max() < 80
    view.filter = "none"
    # the reference alone removes the sine and the DC, both common to every channel
    assert np.abs(view.frame.mins_uv).max() < 80 and np.abs(view.frame.maxs_uv).max() < 80
    view.filter = "bandpass"
    assert view.frame.filter == "bandpass" and view.frame.cmr


def test_image_above_32_channels_lines_at_or_below():
    session, _ = make_session(n_channels=40)
    view = make_view(session)
    assert view.frame.mode == "image" and view.frame.image is not None
    assert view._lines_element(view.frame).data == [] or len(view._lines_element(view.frame)) == 0
    view.selection.channel_ids = view.channel_ids[:32]
    assert view.frame.mode == "lines" and view.frame.image is None
    paths = view.frame.line_paths()
    assert len(paths) == 32 and paths[0].shape == (2 * view.frame.mins_uv.shape[0], 2)
    view.max_line_channels = 8
    assert view.frame.mode == "image"


def test_spike_overlay_is_exactly_the_selected_units_spikes_in_the_window():
    session, _ = make_session()
    view = make_view(session)
    sorting = session.sorting
    view.selection.time_window_s = (0.5, 2.5)
    assert view.frame.spikes.empty
    view.selection.unit_ids = [9, 7]
    spikes = view.frame.spikes
    for unit, column in ((9, 12), (7, 5)):
        train = sorting.spike_train(unit)
        expected = train[(train >= 15000) & (train < 75000)]
        mine = spikes[spikes["unit_id"] == unit]
        assert mine["sample_index"].tolist() == expected.tolist()
        channel = int(session.recording.channel_ids[column])
        assert set(mine["channel_id"]) == {channel}
        assert set(mine["row"]) == {view.frame.row_of(channel)}
        assert np.allclose(mine["time_s"], expected / FS)
        # the peak channel's envelope shows the spike in the spike's column
        frame = view.frame
        for sample in expected[:3]:
            k = np.searchsorted(frame.edges, sample - frame.start_sample, side="right") - 1
            assert frame.mins_uv[k, frame.row_of(channel)] <= -250
    assert set(spikes["color"][spikes["unit_id"] == 9]) == {PALETTE[0]}
    assert set(spikes["color"][spikes["unit_id"] == 7]) == {PALETTE[1]}
    assert 11 not in set(spikes["unit_id"])
    view.show_all_units = True
    assert set(view.frame.spikes["unit_id"]) == {7, 9, 11}


def test_peak_channels_come_from_the_templates_without_a_table():
    session, _ = make_session(peak_table=False)
    view = Traces(session)  # the session's own curation and selection
    assert view.selection is session.selection
    ids = session.recording.channel_ids
    assert view.peak_channels([7, 9, 11]) == {7: int(ids[5]), 9: int(ids[12]), 11: int(ids[30])}
    session.selection.unit_ids = [11]
    assert set(view.frame.spikes["channel_id"]) == {int(ids[30])}
    assert len(view.frame.spikes) == np.count_nonzero(session.sorting.spike_train(11) < FS)


def test_tapping_a_spike_selects_its_unit():
    session, _ = make_session()
    view = make_view(session, show_all_units=True)
    view.selection.time_window_s = (0.0, 3.0)
    spike = view.frame.spikes[view.frame.spikes["unit_id"] == 11].iloc[0]
    view._on_tap(x=spike["time_s"], y=spike["row"] + 0.1)
    assert view.selection.unit_ids == [11]
    assert view.spike_at(spike["time_s"], spike["row"] + 5) is None


def test_hidden_view_does_no_work_until_shown():
    session, _ = make_session()
    view = make_view(session, active=False)
    assert view.frame is None and view.frames_made == 0
    view.selection.time_window_s = (1.0, 1.5)
    view.gain = 3.0
    assert view.frame is None and view.frames_made == 0
    view.active = True
    assert view.frames_made == 1 and view.frame.window_s == (1.0, 1.5)


def test_navigation_writes_the_selection_window():
    session, _ = make_session()
    view = make_view(session)
    view.selection.time_window_s = (0.5, 1.0)
    view.step(+1)
    assert view.selection.time_window_s == (1.0, 1.5)
    view.step(-1)
    view.step(-1)
    assert view.selection.time_window_s == (0.0, 0.5)
    view._on_range(x_range=(1.25, 2.0))
    assert view.selection.time_window_s == (1.25, 2.0) and view.frame.window_s == (1.25, 2.0)


def test_gain_scales_the_drawing_not_the_data():
    session, _ = make_session()
    view = make_view(session)
    before = view.frame
    view.gain = 4.0
    assert np.isclose(view.frame.scale, 4 * before.scale)
    assert np.array_equal(view.frame.mins_uv, before.mins_uv)


def test_no_recording_shows_a_message_not_an_error():
    session, _ = make_session(with_recording=False)
    view = make_view(session)
    assert view.frame is None and not view.has_recording
    view.selection.unit_ids = [7]
    assert view.frame is None
    assert "No raw recording" in view.__panel__()[0].object


def test_renders_to_bokeh():
    import holoviews as hv
    session, _ = make_session()
    view = make_view(session)
    view.selection.unit_ids = [7]
    view._pipe.send(view.frame)
    hv.render(view.plot, backend="bokeh")


def test_unit_colors_are_consistent():
    assert unit_colors([5, 3]) == [PALETTE[0], PALETTE[1]]
    assert unit_color(3, selected=[5, 3]) == PALETTE[1]
    assert unit_color(3) == id_color(3) == PALETTE[3]
    assert id_color("a") == id_color("a") and id_color(np.int64(4)) == PALETTE[4]


def test_shown_after_hidden_fits_every_channel_in_the_y_range():
    """Built in a hidden tab, the plot is first drawn from a placeholder; once shown, the
    Bokeh y range must cover every channel row, not the placeholder's [-1, 0]."""
    from bokeh.models import Plot

    session, _ = make_session(n_channels=40)
    view = Traces(session, selection=Selection.for_session(session), active=False)
    root = view._pane.get_root()
    plot = root.select_one({"type": Plot})
    view.active = True
    y0, y1 = view.frame.y_range
    assert (plot.y_range.start, plot.y_range.end) == (y0, y1)
    assert y1 - y0 >= 40  # 40 rows
