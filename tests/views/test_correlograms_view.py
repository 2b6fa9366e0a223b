"""Correlograms view at the Param level: analytic lags, periodic trains, selection and
curation following, normalisation, the unit cap, deferred work while hidden."""

from __future__ import annotations

import numpy as np
import pytest

import spikeviz as sv

pn = pytest.importorskip("panel")
pytest.importorskip("bokeh")

from spikeviz.views.colors import BACKGROUND_COLOR, unit_colors  # noqa: E402
from spikeviz.views.correlograms import Correlograms  # noqa: E402

FS = 30_000.0


def session_from_trains(trains: dict, duration_s: float = 20.0) -> sv.Session:
    """A Session whose unit ``u`` fires at ``trains[u]`` (samples)."""
    ids = list(trains)
    samples = np.concatenate([np.asarray(trains[u], dtype=np.int64) for u in ids])
    units = np.concatenate([np.full(len(trains[u]), i, dtype=np.int32)
                            for i, u in enumerate(ids)])
    order = np.argsort(samples, kind="stable")
    sorting = sv.Sorting.from_arrays(samples[order], units[order], FS, unit_ids=ids,
                                     num_samples=int(duration_s * FS))
    return sv.Session(sorting, cache_dir=None)


def random_session(num_units=12, seed=0) -> sv.Session:
    rng = np.random.default_rng(seed)
    trains = {10 + 3 * i: np.unique(rng.integers(0, int(20 * FS), 400)) for i in range(num_units)}
    return session_from_trains(trains)


def drawn_cells(view) -> dict:
    """{(row unit, column unit): (edges ms, values, colour)} read back from the figure's bar
    source; also checks each bar's glyph: its height is the value over the cell's peak and it
    spans its lag bin inside the cell's box."""
    data = {name: np.asarray(v) for name, v in view.sources["bars"].data.items()}
    frames = view.sources["frames"].data
    cells = {}
    for n in range(len(view.unit_ids) ** 2):
        row, col = divmod(n, len(view.unit_ids))
        mine = (data["row"] == row) & (data["col"] == col)
        edges = np.r_[data["lag_left_ms"][mine], data["lag_right_ms"][mine][-1:]]
        values = data["value"][mine]
        peak = values.max()
        heights = data["top"][mine] - data["bottom"][mine]
        np.testing.assert_allclose(heights, values / peak if peak > 0 else 0 * values)
        np.testing.assert_allclose(data["left"][mine] - frames["left"][n], edges[:-1] - edges[0])
        np.testing.assert_allclose(data["right"][mine] - frames["left"][n], edges[1:] - edges[0])
        colors = set(data["color"][mine].tolist())
        assert len(colors) == 1
        key = (view.unit_ids[row], view.unit_ids[col])
        cells[key] = (edges, values, colors.pop())
    return cells


def shaded_lags(view) -> list:
    """[(low, high)] lag interval (ms) of each cell's refractory band."""
    shade, frames = view.sources["shade"].data, view.sources["frames"].data
    zero = np.asarray(frames["left"]) - view.bin_edges_ms[0]  # x of lag 0 per cell
    return [(float(a - z), float(b - z)) for a, b, z in
            zip(shade["left"], shade["right"], zero, strict=False)]


def brute_force_ccg(t_i, t_j, edges_samples, same=False):
    """Pairs (a in t_i, c in t_j, a != c) counted by lag t_a - t_c in half-open sample bins."""
    lags = (np.asarray(t_i)[:, None] - np.asarray(t_j)[None, :]).astype(np.int64)
    if same:
        lags = lags[~np.eye(len(t_i), dtype=bool)]
    bins = np.searchsorted(edges_samples, lags.ravel(), side="right") - 1
    num_bins = len(edges_samples) - 1
    return np.bincount(bins[(bins >= 0) & (bins < num_bins)], minlength=num_bins)


def test_spikes_at_a_known_lag_land_in_the_known_bin():
    # unit 7 fires every 100 ms, unit 4 3 ms later (90 samples)
    t7 = np.arange(20, 190) * 3000
    t4 = t7 + 90
    view = Correlograms(session_from_trains({7: t7, 4: t4}), window_ms=50.0, bin_ms=1.0)
    view.selection.unit_ids = [7, 4]
    cells = drawn_cells(view)
    edges, values, _ = cells[(7, 4)]
    np.testing.assert_allclose(edges, np.arange(-25, 26))
    # lag t_7 - t_4 = -3 ms: bin [-3, -2) only
    expected = np.zeros(50)
    expected[22] = t7.size
    np.testing.assert_array_equal(values, expected)
    # and the mirror cell: lag +3 ms, bin [3, 4)
    mirror = np.zeros(50)
    mirror[28] = t7.size
    np.testing.assert_array_equal(cells[(4, 7)][1], mirror)
    # auto-correlograms: the period (100 ms) is outside the window, so empty
    assert not cells[(7, 7)][1].any() and not cells[(4, 4)][1].any()
    # the independent brute force agrees for every cell, bin for bin
    edges_samples = np.arange(-25, 26) * 30
    for (a, b), (_, drawn, _) in cells.items():
        ta, tb = {7: t7, 4: t4}[a], {7: t7, 4: t4}[b]
        np.testing.assert_array_equal(drawn, brute_force_ccg(ta, tb, edges_samples, a == b))


def test_periodic_train_autocorrelogram_peaks_at_its_period():
    period = 600  # 20 ms
    train = np.arange(10, 500) * period
    view = Correlograms(session_from_trains({1: train}), window_ms=50.0, bin_ms=1.0)
    view.selection.unit_ids = [1]
    edges, values, color = drawn_cells(view)[(1, 1)]
    centres = 0.5 * (edges[:-1] + edges[1:])
    peaks = set(centres[values > 0].tolist())
    assert peaks == {-19.5, 20.5}  # bins [-20, -19) and [20, 21)
    assert values[values > 0].tolist() == [train.size - 1] * 2
    assert color == unit_colors([1])[0]


def test_numbers_are_compute_correlograms_and_follow_selection():
    session = random_session()
    view = Correlograms(session, window_ms=30.0, bin_ms=0.5)
    assert view.unit_ids == [] and len(view.sources["bars"].data["value"]) == 0
    assert not view._plot_box.visible
    view.selection.unit_ids = [22, 10, 16]
    counts, edges = sv.compute.correlograms(view.curation.sorting, 30.0, 0.5, [22, 10, 16])
    np.testing.assert_array_equal(view.counts, counts)
    np.testing.assert_array_equal(view.bin_edges_ms, edges)
    cells = drawn_cells(view)
    colors = unit_colors([22, 10, 16])
    for i, a in enumerate([22, 10, 16]):
        for j, b in enumerate([22, 10, 16]):
            np.testing.assert_array_equal(cells[(a, b)][1], counts[i, j])
            assert cells[(a, b)][2] == (colors[i] if i == j else BACKGROUND_COLOR)
    view.selection.unit_ids = [13]
    assert view.unit_ids == [13] and view.counts.shape == (1, 1, 60)
    view.bin_ms = 2.0
    np.testing.assert_array_equal(
        view.counts, sv.compute.correlograms(view.sorting, 30.0, 2.0, [13])[0])
    pn.panel(view).get_root()  # renders with Bokeh


def test_rate_normalisation_and_refractory_shading():
    session = random_session()
    view = Correlograms(session, refractory_ms=2.0)
    view.selection.unit_ids = [10, 13]
    view.normalization = "rate"
    spikes = view.sorting.spike_counts().loc[[10, 13]].to_numpy()
    bin_s = 1e-3
    expected = view.counts / (spikes[None, :, None] * bin_s)
    np.testing.assert_allclose(view.values, expected)
    np.testing.assert_allclose(drawn_cells(view)[(10, 13)][1], expected[0, 1])
    assert shaded_lags(view) == [(-2.0, 2.0)] * 4  # every cell
    assert view.sources["labels"].data["peak"][1].endswith(" Hz")
    view.refractory_ms = 0.0
    assert shaded_lags(view) == []


def test_unit_cap_with_a_note():
    session = random_session(num_units=12)
    view = Correlograms(session, max_units=8)
    selected = session.sorting.unit_ids.tolist()[::-1]
    view.selection.unit_ids = selected
    assert view.unit_ids == selected[:8]
    assert view.counts.shape[:2] == (8, 8) and len(view.sources["frames"].data["left"]) == 64
    assert "8 of 12" in view.note and "8 of 12" in view._info.object


def test_merge_shows_the_merged_units_correlogram():
    session = random_session()
    view = Correlograms(session)
    curation = view.curation
    view.selection.unit_ids = [10, 13]
    new_id = curation.merge([10, 13])
    view.selection.unit_ids = [new_id, 16]
    sorting = curation.sorting
    assert view.sorting is sorting and new_id in sorting.unit_ids
    counts, _ = sv.compute.correlograms(sorting, 50.0, 1.0, [new_id, 16])
    np.testing.assert_array_equal(view.counts, counts)
    # independent: the merged train is the union of the two parts
    original = session.sorting
    merged = np.sort(np.concatenate([original.spike_train(10), original.spike_train(13)]))
    edges_samples = np.arange(-25, 26) * 30
    np.testing.assert_array_equal(drawn_cells(view)[(new_id, new_id)][1],
                                  brute_force_ccg(merged, merged, edges_samples, same=True))
    curation.undo()
    assert new_id not in view.unit_ids  # the gone unit is not drawn


def test_hidden_view_does_no_work_until_shown():
    session = random_session()
    view = Correlograms(session, active=False)
    calls = []
    compute = view.compute
    view.compute = lambda units: calls.append(list(units)) or compute(units)
    view.selection.unit_ids = [10]
    view.selection.unit_ids = [10, 13]
    view.window_ms = 20.0
    assert calls == [] and view.unit_ids == []
    view.active = True
    assert calls == [[10, 13]]
    assert view.counts.shape == (2, 2, 20)


def test_panel_renders_with_and_without_selection():
    view = Correlograms(random_session())
    pn.panel(view).get_root()  # nothing selected: no grid, a hint
    assert "Select units" in view._info.object
    view.selection.unit_ids = [10, 13]
    pn.panel(view).get_root()
    view.dispose()
    view.selection.unit_ids = [16]
    assert view.unit_ids == [10, 13]  # disposed: no longer follows the selection


def test_new_selection_updates_the_same_bokeh_figure_in_place():
    view = Correlograms(random_session())
    view.selection.unit_ids = [10, 13]
    root = view.__panel__().get_root()
    fig = view.figure
    assert fig in list(root.select({"type": type(fig)}))
    source = view.sources["bars"]
    before = np.asarray(source.data["value"]).copy()
    glyphs = [r.id for r in fig.renderers]
    view.selection.unit_ids = [16, 19, 22]
    assert view.figure is fig and [r.id for r in fig.renderers] == glyphs
    assert fig in list(root.select({"type": type(fig)}))  # still the model in the document
    assert view.sources["bars"] is source and fig.renderers[2].data_source is source
    after = np.asarray(source.data["value"])
    assert after.size == 9 * 50 and before.size == 4 * 50
    counts, _ = sv.compute.correlograms(view.sorting, 50.0, 1.0, [16, 19, 22])
    np.testing.assert_array_equal(after, counts.reshape(-1))
    # the grid fills its box: 3 columns of cells plus gaps, ticks labelled in lag ms
    assert view.figure.x_range.end > 3 * 50 and view.figure.y_range.end > 3
    labels = set(view.figure.xaxis[0].major_label_overrides.values())
    assert {"-20", "0", "20"} <= labels


def test_hiding_and_showing_the_rendered_grid_keeps_working():
    """Regression: toggling the rendered Bokeh pane's visibility copied the figure's
    stylesheet objects back onto the pane (TypeError in the served app)."""
    view = Correlograms(random_session())
    view.selection.unit_ids = [10, 13]
    view.__panel__().get_root()
    view.selection.unit_ids = []
    assert not view._plot_box.visible
    view.selection.unit_ids = [16]
    assert view._plot_box.visible and view.unit_ids == [16]
