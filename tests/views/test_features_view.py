"""Features view at the Param level (no browser): exact lasso in PC space over every spike of the
selected units, background never selected, curated positions, drawn counts, deferral."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import spikeviz as sv
from spikeviz import datasets

pytest.importorskip("panel")

from spikeviz.views.features import NO_RECORDING, Features


def winding_inside(x, y, polygon) -> np.ndarray:
    """Independent reference: non-zero winding number (vectorised numpy)."""
    px, py = np.asarray(polygon, float).T
    qx, qy = np.roll(px, -1), np.roll(py, -1)
    winding = np.zeros(x.size, dtype=np.int64)
    for ax, ay, bx, by in zip(px, py, qx, qy, strict=True):
        cross = (bx - ax) * (y - ay) - (x - ax) * (by - ay)
        winding += ((ay <= y) & (by > y) & (cross > 0)).astype(np.int64)
        winding -= ((ay > y) & (by <= y) & (cross < 0)).astype(np.int64)
    return winding != 0


@pytest.fixture(scope="module")
def gt():
    return datasets.generate(duration_s=20.0, num_channels=16, num_units=6, seed=3, lfp_uv=0.0,
                             line_uv=0.0, artefact_rate_hz=0.0)


def make_session(gt, recording=True):
    """The true units with ids 10, 17, 24, ... (ids != indices); a fresh Session."""
    s = gt.sorting
    sorting = sv.Sorting(s.sample_index, s.unit_index, s.sampling_frequency,
                         unit_ids=np.arange(s.num_units) * 7 + 10, num_samples=gt.num_samples)
    return sv.Session(sorting, recording=gt.recording() if recording else None, cache_dir=None,
                      channel_locations_um=gt.channel_locations_um)


@pytest.fixture
def view(gt):
    session = make_session(gt)
    v = Features(session, max_background_spikes=40)
    counts = session.sorting.spike_counts()
    session.selection.unit_ids = counts.sort_values().index[-2:].tolist()[::-1]
    return v


def square_around(x, y, quantile=0.4):
    """A lasso polygon (a rotated square, non axis-aligned) around the middle of the points."""
    cx, cy = np.median(x), np.median(y)
    r = max(np.quantile(np.abs(x - cx), quantile), np.quantile(np.abs(y - cy), quantile))
    return [(cx + r, cy), (cx, cy + r), (cx - r, cy), (cx, cy - r), (cx + 0.3 * r, cy)]


def test_lasso_selects_exactly_in_feature_space(view):
    session, selection = view.session, view.selection
    assert view.message == "" and view.background_unit_ids
    assert set(view.background_unit_ids).isdisjoint(selection.unit_ids)
    # independent reference from the data source, not from what the view drew
    positions, features, channels = session.curated.spike_features(
        selection.unit_ids, view.n_components, background_unit_ids=view.background_unit_ids,
        max_background_spikes_per_unit=2000)
    assert list(channels) == view.channel_ids
    shown = np.isin(view.sorting.unit_index[positions],
                    [view.sorting.unit_index_of(u) for u in selection.unit_ids])
    view.x_feature, view.y_feature = "PC1", "PC2"
    poly = square_around(features[:, 0], features[:, 1])
    inside = winding_inside(features[:, 0].astype(float), features[:, 1].astype(float), poly)
    expected = np.sort(positions[shown & inside])
    assert expected.size > 10 and (~shown & inside).any()  # background spikes lie inside too
    view._lasso.event(geometry=np.array(poly))
    assert np.array_equal(selection.spike_indices, expected)
    # the background drawn is a 40-spike subsample; none of it is ever selectable
    assert 0 < view.cloud.background[0].size <= 40 < np.count_nonzero(~shown)

    view.y_feature = "PC3"  # another projection, same exactness
    poly = square_around(features[:, 0], features[:, 2], 0.6)
    inside = winding_inside(features[:, 0].astype(float), features[:, 2].astype(float), poly)
    view.select_polygon(poly)
    assert np.array_equal(selection.spike_indices, np.sort(positions[shown & inside]))
    assert np.allclose(view.cloud.y, features[shown][:, 2])


def test_drawn_counts_and_axes(view):
    counts = view.sorting.spike_counts()
    units = view.selection.unit_ids
    view.render()
    assert view.counts.sum(axis=(0, 1)).tolist() == [counts.loc[u] for u in units]
    assert view.background_counts.sum() == view.cloud.background[0].size  # all drawn
    view.x_feature = "time (s)"
    assert np.allclose(view.cloud.x, view.sorting.sample_index[view.cloud.positions]
                       / view.sorting.sampling_frequency)
    view.n_components = 2
    assert view.param.x_feature.objects == ["PC1", "PC2", "time (s)"]
    assert view.features.shape[1] == 2


def test_selection_from_elsewhere_and_curation(view):
    curation, selection = view.curation, view.selection
    first = selection.unit_ids[0]
    own = view.sorting.spike_indices(first)[::3]
    selection.spike_indices = own
    assert view.num_selected == own.size
    view.render()
    assert view.highlight_counts.sum() == own.size
    assert np.array_equal(view.spikes_of_unit_selected(first), own)

    before = view.sorting
    samples = before.sample_index[view.cloud.positions]
    lower = [u for u in before.unit_ids.tolist() if u not in selection.unit_ids
             and before.spike_indices(u).size and before.spike_indices(u)[0] < 100]
    curation.remove(lower[:1])  # earlier spikes removed: positions shift
    after = view.sorting
    assert after is curation.sorting and after.num_spikes < before.num_spikes
    assert np.array_equal(after.sample_index[view.cloud.positions], samples)
    # a split of the lasso's spikes shows the two new units once selected
    poly = square_around(view.cloud.x, view.cloud.y)
    view.select_polygon(poly)
    part = view.spikes_of_unit_selected(first)
    assert 0 < part.size < after.spike_indices(first).size
    new_ids = curation.split(first, part)
    selection.unit_ids = list(new_ids)
    assert view.cloud.unit_ids == list(new_ids)
    view.render()
    assert view.counts.sum(axis=(0, 1))[0] == part.size


def test_hidden_view_does_no_work(gt):
    session = make_session(gt)
    view = Features(session, active=False)
    unit = int(session.sorting.unit_ids[2])
    session.selection.unit_ids = [unit]
    view.x_feature = "PC3"
    assert view.loads == 0 and view.cloud is None
    view.active = True
    assert view.loads == 1 and view.cloud.unit_ids == [unit]
    assert np.allclose(view.cloud.x, view.features[:, 2])


def test_no_recording_message(gt):
    session = make_session(gt, recording=False)
    view = Features(session)
    session.selection.unit_ids = [int(session.sorting.unit_ids[0])]
    assert view.cloud is None and view.message == NO_RECORDING
    assert view.select_polygon([(0, 0), (1, 0), (0, 1)]).size == 0
    view.render()
    assert view.counts.size == 0


def test_unit_click_updates_the_same_figure_in_place(gt):
    from bokeh.models import GlyphRenderer, ImageRGBA, Plot

    session = make_session(gt)
    view = Features(session, max_background_spikes=40)
    units = session.sorting.spike_counts().sort_values().index[-2:].tolist()

    async def run():
        root = view.__panel__().get_root()
        fig = root.select_one({"type": Plot})
        (spikes,) = [r for r in fig.renderers
                     if isinstance(r, GlyphRenderer) and isinstance(r.glyph, ImageRGBA)]
        session.selection.unit_ids = [units[0]]
        await asyncio.sleep(0)
        first = np.array(spikes.data_source.data["image"][0])
        x0 = view.features[:, 0]
        session.selection.unit_ids = [units[1]]
        await asyncio.sleep(0)
        assert root.select_one({"type": Plot}).id == fig.id  # same figure, same glyph
        assert spikes in fig.renderers
        assert not np.array_equal(np.array(spikes.data_source.data["image"][0]), first)
        # the axes follow the new unit's PC1 / PC2 extent (3 % padding), with the
        # background spikes drawn in grey behind
        positions, features, _ = session.curated.spike_features(
            [units[1]], view.n_components, background_unit_ids=view.background_unit_ids,
            max_background_spikes_per_unit=2000)
        sorting = session.sorting
        shown = sorting.unit_index[positions] == sorting.unit_index_of(units[1])
        drawn_background = view.cloud.background[0]  # a 40-spike subsample of the others
        assert 0 < drawn_background.size <= 40
        # each drawn background value is one of the reference projections (float32 sums may
        # round differently with another batch of spikes)
        reference = np.sort(features[~shown, 0].astype(np.float64))
        nearest = np.abs(reference[np.clip(np.searchsorted(reference, drawn_background), 1,
                                           reference.size - 1)[:, None] - [1, 0]]
                         - drawn_background[:, None]).min(axis=1)
        assert (nearest <= 1e-4 * np.abs(reference).max()).all()
        x = np.concatenate([features[shown, 0], drawn_background])
        pad = 0.03 * (x.max() - x.min())
        assert (fig.x_range.start, fig.x_range.end) == pytest.approx(
            (x.min() - pad, x.max() + pad), rel=1e-5)
        assert not np.array_equal(x0, view.features[:, 0])

    asyncio.run(run())


def test_nothing_rasterized_without_data(gt, monkeypatch):
    from spikeviz.views.lasso import LassoScatter

    def boom(*args):
        raise AssertionError("datashader called with nothing to draw")

    monkeypatch.setattr(LassoScatter, "_canvas", staticmethod(boom))
    session = make_session(gt, recording=False)
    view = Features(session)
    session.selection.unit_ids = [int(session.sorting.unit_ids[0])]
    view.render(width=30, height=20)
    assert view.counts.shape == (20, 30, 0) and view.background_counts.sum() == 0
