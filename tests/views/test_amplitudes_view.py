"""Amplitudes view at the Param level (no browser): exact lasso/box over every spike of the
selected units, positions in the curated spike vector, drawn counts, time window, deferral."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import spikeviz as sv
from spikeviz import datasets

pytest.importorskip("panel")

from spikeviz.views.amplitudes import NO_AMPLITUDES, Amplitudes
from spikeviz.views.lasso import points_in_polygon

FS = 30_000.0
DURATION_S = 100.0
IDS = np.arange(8) * 5 + 3  # ids != indices


def winding_inside(x, y, polygon) -> np.ndarray:
    """Independent reference: non-zero winding number (vectorised numpy), for simple polygons
    the same set as the even-odd rule."""
    px, py = np.asarray(polygon, float).T
    qx, qy = np.roll(px, -1), np.roll(py, -1)
    winding = np.zeros(x.size, dtype=np.int64)
    for ax, ay, bx, by in zip(px, py, qx, qy, strict=True):
        cross = (bx - ax) * (y - ay) - (x - ax) * (by - ay)
        up = (ay <= y) & (by > y) & (cross > 0)
        down = (ay > y) & (by <= y) & (cross < 0)
        winding += up.astype(np.int64) - down.astype(np.int64)
    return winding != 0


def make_session(seed=0, num_spikes=300_000, amplitudes=True):
    rng = np.random.default_rng(seed)
    unit_index = rng.integers(0, IDS.size, num_spikes).astype(np.int32)
    sample_index = rng.integers(0, int(DURATION_S * FS), num_spikes)
    props = {"amplitudes": rng.normal(10.0 + unit_index, 2.0)} if amplitudes else None
    sorting = sv.Sorting.from_arrays(sample_index, unit_index, FS, unit_ids=IDS,
                                     num_samples=int(DURATION_S * FS), spike_properties=props)
    return sv.Session(sorting, cache_dir=None)


#: A non-convex lasso (a star) in (time s, template scaling) coordinates.
STAR = [(50 + r * np.cos(a) * 40, 14 + r * np.sin(a) * 5)
        for a, r in zip(np.linspace(0, 2 * np.pi, 10, endpoint=False), [1, 0.4] * 5,
                        strict=True)]


def reference(sorting, unit_ids, polygon) -> np.ndarray:
    """Positions of the spikes of ``unit_ids`` inside ``polygon``, from the sorting's arrays."""
    times = sorting.sample_index / sorting.sampling_frequency
    amps = sorting.spike_properties["amplitudes"]
    units = np.isin(sorting.unit_index, [sorting.unit_index_of(u) for u in unit_ids])
    return np.flatnonzero(units & winding_inside(times, amps, polygon))


@pytest.fixture
def view():
    session = make_session()
    v = Amplitudes(session)
    session.selection.unit_ids = [int(IDS[1]), int(IDS[4])]
    return v


def test_kernel_matches_reference_on_random_polygons():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-1, 1, 50_000), rng.uniform(-1, 1, 50_000)
    for k in (3, 7, 50):
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(0.2, 1.0, k)
        poly = np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])
        assert np.array_equal(points_in_polygon(x, y, poly), winding_inside(x, y, poly))
    assert not points_in_polygon(x, y, [(0, 0), (1, 1)]).any()  # < 3 vertices: nothing


def test_lasso_selects_exactly_the_spikes_inside(view):
    sorting, selection = view.sorting, view.selection
    expected = reference(sorting, selection.unit_ids, STAR)
    inside_all = winding_inside(sorting.sample_index / FS, sorting.spike_properties["amplitudes"],
                                STAR)
    assert inside_all.sum() > expected.size > 1000  # other units' spikes lie inside too
    view._lasso.event(geometry=np.array(STAR))  # what the Bokeh lasso sends
    got = selection.spike_indices
    assert np.array_equal(got, expected)
    assert set(sorting.unit_index[got].tolist()) == {1, 4}  # never spikes of other units
    view.render(width=40, height=30)
    # far more spikes than drawn pixels: selection is not limited to what was drawn
    assert got.size > np.count_nonzero(view.highlight_counts) * 5
    assert view.highlight_counts.sum() == got.size
    assert view.num_selected == got.size
    assert f"{got.size:,} spikes selected of {view.cloud.num_spikes:,}" in view._readout.object


def test_box_modes_and_clearing(view):
    sorting, selection = view.sorting, view.selection
    times = sorting.sample_index / FS
    amps = sorting.spike_properties["amplitudes"]
    shown = np.isin(sorting.unit_index, [1, 4])
    view._box.event(bounds=(60.0, 14.0, 20.0, 11.0))  # any corner order
    box = np.flatnonzero(shown & (times >= 20) & (times <= 60) & (amps >= 11) & (amps <= 14))
    assert np.array_equal(selection.spike_indices, box)
    view.mode = "add"
    lasso = reference(sorting, selection.unit_ids, STAR)
    view.select_polygon(STAR)
    assert np.array_equal(selection.spike_indices, np.union1d(box, lasso))
    view.mode = "subtract"
    view.select_polygon(STAR)
    assert np.array_equal(selection.spike_indices, np.setdiff1d(box, lasso))
    view.mode = "replace"
    view.select_polygon([(0, 1000), (1, 1000), (1, 1001)])  # empty lasso clears
    assert selection.spike_indices is None
    view.select_polygon(STAR)
    view._clear.clicks += 1
    assert selection.spike_indices is None


def test_drawn_counts_sum_to_spikes_and_follow_time_window(view):
    sorting, selection = view.sorting, view.selection
    counts = sorting.spike_counts()
    view.render()
    assert view.counts.shape[2] == 2
    assert view.counts.sum(axis=(0, 1)).tolist() == [counts.loc[IDS[1]], counts.loc[IDS[4]]]
    assert view.x_range_s == (0.0, DURATION_S)

    selection.time_window_s = (10.25, 20.75)
    assert view.x_range_s == (10.25, 20.75)
    assert view._range.x_range == (10.25, 20.75)  # the plot's stream follows
    times = sorting.sample_index / FS
    shown = np.isin(sorting.unit_index, [1, 4])
    assert not np.isin(times, [10.25, 20.75]).any()
    view.render(x_range=view._range.x_range, y_range=view._range.y_range)
    assert view.counts.sum() == np.count_nonzero(shown & (times > 10.25) & (times < 20.75))
    selection.time_window_s = None
    assert view.x_range_s == (0.0, DURATION_S)


def test_highlight_follows_selection_made_elsewhere(view):
    sorting, selection = view.sorting, view.selection
    own = sorting.spike_indices(IDS[4])[:100]
    other = sorting.spike_indices(IDS[0])[:50]
    selection.spike_indices = np.concatenate([own, other])
    assert view.num_selected == 100
    assert np.array_equal(view.spikes_of_unit_selected(IDS[4]), np.sort(own))
    assert view.spikes_of_unit_selected(IDS[1]).size == 0
    assert "(+50 in other units)" in view._readout.object
    view.render()
    assert view.highlight_counts.sum() == 100


def test_positions_follow_the_curated_spike_vector(view):
    curation, selection = view.curation, view.selection
    before = curation.sorting
    view.select_polygon(STAR)
    samples_before = before.sample_index[selection.spike_indices]
    curation.remove([int(IDS[0]), int(IDS[2])])  # positions shift
    after = curation.sorting
    assert view.sorting is after and after.num_spikes < before.num_spikes
    assert np.array_equal(view.cloud.positions, np.sort(np.concatenate(
        [after.spike_indices(u) for u in selection.unit_ids])))
    assert np.array_equal(view.cloud.y, after.spike_properties["amplitudes"][view.cloud.positions])
    chosen = view.select_polygon(STAR)
    assert np.array_equal(selection.spike_indices, reference(after, selection.unit_ids, STAR))
    assert np.array_equal(np.sort(after.sample_index[chosen]), np.sort(samples_before))

    # split by the lasso: the new units are shown when selected
    part = view.spikes_of_unit_selected(IDS[4])
    new_ids = curation.split(int(IDS[4]), part)
    selection.unit_ids = list(new_ids)
    assert view.cloud.unit_ids == list(new_ids)
    assert view.cloud.num_spikes == after.spike_counts().loc[IDS[4]]
    view.render()
    assert view.counts.sum(axis=(0, 1))[0] == part.size


def test_hidden_view_does_no_work():
    session = make_session(num_spikes=20_000)
    view = Amplitudes(session, active=False)
    assert view.loads == 0
    session.selection.unit_ids = [int(IDS[2])]
    assert view.loads == 0 and view.cloud is None
    view.active = True
    assert view.loads == 1 and view.cloud.unit_ids == [int(IDS[2])]


def test_no_amplitudes_message():
    session = make_session(num_spikes=5_000, amplitudes=False)
    view = Amplitudes(session)
    session.selection.unit_ids = [int(IDS[0])]
    assert view.source is None and view.cloud is None and view.message == NO_AMPLITUDES
    assert view.select_polygon(STAR).size == 0 and session.selection.spike_indices is None
    view.render()
    assert NO_AMPLITUDES.split(":")[0] in view._readout.object


def test_template_scaling_is_labelled_honestly(view):
    assert view.source == "template scaling"
    assert "not µV" in view.ylabel


def test_recording_amplitudes_in_uv():
    gt = datasets.generate(duration_s=4.0, num_channels=16, num_units=4, seed=2,
                              lfp_uv=0.0, line_uv=0.0, artefact_rate_hz=0.0)
    session = sv.Session(gt.sorting, recording=gt.recording(), cache_dir=None)
    view = Amplitudes(session)
    unit = int(session.sorting.unit_ids[1])
    session.selection.unit_ids = [unit]
    positions, amplitudes = session.curated.spike_amplitudes([unit])
    assert view.source == "recording" and view.ylabel == "amplitude (µV)"
    assert np.array_equal(view.positions, positions)
    assert np.allclose(view.amplitudes, amplitudes)
    times_s = session.sorting.sample_index[positions] / gt.sampling_frequency
    assert np.allclose(view.cloud.x, times_s)


def _figure(root):
    """The Bokeh figure of a rendered view and the renderer of its spikes image (RGBA)."""
    from bokeh.models import GlyphRenderer, ImageRGBA, Plot

    fig = root.select_one({"type": Plot})
    (spikes,) = [r for r in fig.renderers
                 if isinstance(r, GlyphRenderer) and isinstance(r.glyph, ImageRGBA)]
    return fig, spikes


def test_unit_click_updates_the_same_figure_in_place():
    session = make_session(num_spikes=20_000)
    view = Amplitudes(session)
    sorting = session.sorting
    amps = sorting.spike_properties["amplitudes"]

    def padded(values):  # the y range: the amplitudes' extent padded by 3 % each side
        lo, hi = values.min(), values.max()
        return (lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))

    async def run():
        root = view.__panel__().get_root()
        fig, spikes = _figure(root)
        session.selection.unit_ids = [int(IDS[1])]
        await asyncio.sleep(0)
        first = np.array(spikes.data_source.data["image"][0])
        assert first.any()  # drawn
        assert (fig.y_range.start, fig.y_range.end) == pytest.approx(
            padded(amps[sorting.unit_index == 1]))
        session.selection.unit_ids = [int(IDS[6])]
        await asyncio.sleep(0)
        fig2, spikes2 = _figure(root)
        assert fig2.id == fig.id and spikes2 is spikes  # no new figure, no new glyph
        assert not np.array_equal(np.array(spikes.data_source.data["image"][0]), first)
        assert (fig.y_range.start, fig.y_range.end) == pytest.approx(
            padded(amps[sorting.unit_index == 6]))
        assert (fig.x_range.start, fig.x_range.end) == pytest.approx((0.0, DURATION_S))

    asyncio.run(run())


def test_sparse_spikes_are_drawn_wider_but_counted_exactly():
    session = make_session(num_spikes=60)
    view = Amplitudes(session)
    session.selection.unit_ids = [int(IDS[1])]
    mask = np.zeros(view.cloud.num_spikes, dtype=bool)
    mask[:3] = True
    view.selection.spike_indices = view.cloud.positions[mask]
    image = view._highlight_element(width=400, height=300)
    counted = np.count_nonzero(view.highlight_counts)  # counts stay per spike, undilated
    assert 1 <= counted <= view.highlight_counts.sum() <= 3
    drawn = np.isfinite(image.dimension_values(2, flat=False)).sum()
    assert counted < drawn <= 9 * counted  # each spike covers up to a 3 x 3 block on screen
