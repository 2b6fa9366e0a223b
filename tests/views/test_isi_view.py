"""ISI / firing-rate view at the Param level: regular trains, known rates, ISI violations,
the time window, selection and curation following, deferred work while hidden."""

from __future__ import annotations

import numpy as np
import pytest

import spikeviz as sv

pn = pytest.importorskip("panel")
pytest.importorskip("bokeh")

from spikeviz.views.isi import ISIView  # noqa: E402

FS = 30_000.0
DURATION_S = 20.0


def session_from_trains(trains: dict, duration_s: float = DURATION_S) -> sv.Session:
    ids = list(trains)
    samples = np.concatenate([np.asarray(trains[u], dtype=np.int64) for u in ids])
    units = np.concatenate([np.full(len(trains[u]), i, dtype=np.int32)
                            for i, u in enumerate(ids)])
    order = np.argsort(samples, kind="stable")
    sorting = sv.Sorting.from_arrays(samples[order], units[order], FS, unit_ids=ids,
                                     num_samples=int(duration_s * FS))
    return sv.Session(sorting, cache_dir=None)


def drawn_histograms(view) -> dict:
    """{unit label: (edges ms, counts)} read back from the ISI figure's bar source."""
    data = {name: np.asarray(v) for name, v in view.isi_source.data.items()}
    out = {}
    for unit in dict.fromkeys(data["unit"].tolist()):
        mine = data["unit"] == unit
        assert not data["bottom"][mine].any()
        out[unit] = (np.r_[data["left"][mine], data["right"][mine][-1:]], data["top"][mine])
    return out


def drawn_rates(view) -> dict:
    """{unit label: (step xs s, step ys Hz)} of the rate figure's lines."""
    data = view.rate_source.data
    return {u: (np.asarray(x), np.asarray(y))
            for u, x, y in zip(data["unit"], data["xs"], data["ys"], strict=True)}


def test_regular_train_isi_in_one_bin_linear_and_log():
    train = np.arange(1, 1500) * 300  # every 10 ms
    view = ISIView(session_from_trains({5: train}))
    view.selection.unit_ids = [5]
    counts, edges = view.isi_counts, view.isi_edges_ms
    np.testing.assert_allclose(edges, np.arange(0, 51))
    expected = np.zeros(50, dtype=np.int64)
    expected[10] = train.size - 1  # bin [10, 11)
    np.testing.assert_array_equal(counts[0], expected)
    ref, ref_edges = sv.compute.isi_histograms(view.sorting, 50.0, 1.0, unit_ids=[5])
    np.testing.assert_array_equal(counts, ref)
    np.testing.assert_array_equal(ref_edges, edges)
    hist_edges, hist_counts = drawn_histograms(view)["5"]
    np.testing.assert_array_equal(hist_counts, expected)
    np.testing.assert_allclose(hist_edges, np.arange(0, 51))
    assert view.isi_figure.y_range.end >= expected.max()  # the y range follows the counts
    linear_figure = view.isi_figure

    view.log_bins = True
    edges = view.isi_edges_ms
    assert np.all(np.diff(np.log(edges)) == pytest.approx(np.log(edges[1] / edges[0])))
    where = np.searchsorted(edges, 10.0, side="right") - 1
    assert view.isi_counts[0, where] == train.size - 1
    assert view.isi_counts.sum() == train.size - 1
    assert view.violations_percent.loc[5] == 0.0
    assert view.isi_figure is not linear_figure  # a log x scale: a new figure, once
    assert type(view.isi_figure.x_scale).__name__ == "LogScale"
    np.testing.assert_allclose(drawn_histograms(view)["5"][0], edges)
    pn.panel(view).get_root()


def test_firing_rate_of_known_counts_per_bin():
    # second k holds k + 1 spikes (k = 0..19), second 20 none
    trains = [int(k * FS) + 100 * np.arange(k + 1) for k in range(20)]
    view = ISIView(session_from_trains({3: np.concatenate(trains)}, duration_s=21.0))
    view.selection.unit_ids = [3]
    np.testing.assert_allclose(view.rate_edges_s, np.arange(22))
    np.testing.assert_allclose(view.rates_hz[0], np.r_[np.arange(1, 21), 0.0])
    view.rate_bin_s = 2.0
    expected = [(2 * k + 1) + (2 * k + 2) for k in range(10)] + [0]
    np.testing.assert_allclose(view.rates_hz[0], np.array(expected) / 2.0)
    # drawn as steps: the curve holds each bin's rate across the bin
    xs, ys = drawn_rates(view)["3"]
    np.testing.assert_allclose(xs[0::2], view.rate_edges_s[:-1])
    np.testing.assert_allclose(xs[1::2], view.rate_edges_s[1:])
    np.testing.assert_allclose(ys[0::2], np.array(expected) / 2.0)
    np.testing.assert_allclose(ys[1::2], np.array(expected) / 2.0)
    # the y range follows the rates (never a default 0-1 range hiding the curve)
    assert view.rate_figure.y_range.start == 0.0
    assert view.rate_figure.y_range.end == pytest.approx(max(expected) / 2.0 * 1.05)
    pn.panel(view).get_root()


def test_isi_violations_are_printed():
    regular = np.arange(1, 1001) * 300  # 10 ms
    extra = regular[[10, 200, 700]] + 15  # 0.5 ms after three spikes
    train = np.sort(np.r_[regular, extra])
    view = ISIView(session_from_trains({8: train, 9: regular}), refractory_ms=1.0)
    view.selection.unit_ids = [8, 9]
    expected = 3 * 100.0 / (train.size - 1)
    assert view.violations_percent.loc[8] == pytest.approx(expected)
    assert view.violations_percent.loc[9] == 0.0
    assert f"{expected:.2f}%" in view._info.object and "0.00%" in view._info.object
    view.refractory_ms = 0.4
    assert view.violations_percent.loc[8] == 0.0
    shade = view.isi_shade
    assert shade.visible and (shade.left, shade.right) == (0.0, 0.4)
    view.refractory_ms = 0.0
    assert not view.isi_shade.visible


def test_rate_plot_follows_time_window_and_selection():
    rng = np.random.default_rng(1)
    trains = {u: np.unique(rng.integers(0, int(DURATION_S * FS), 300)) for u in (2, 4, 6)}
    view = ISIView(session_from_trains(trains))
    assert view.unit_ids == [] and drawn_histograms(view) == {}
    pn.panel(view).get_root()
    view.selection.unit_ids = [6, 2]
    assert list(drawn_histograms(view)) == ["6", "2"]
    assert view.x_range_s == (0.0, DURATION_S)
    view.selection.time_window_s = (5.0, 7.5)
    assert view.x_range_s == (5.0, 7.5)
    assert (view.rate_figure.x_range.start, view.rate_figure.x_range.end) == (5.0, 7.5)
    rates, _ = sv.compute.firing_rates(view.sorting, 1.0, unit_ids=[6, 2])
    np.testing.assert_allclose(view.rates_hz, rates)
    # y follows the rates inside the window: bins [5, 6), [6, 7), [7, 8)
    assert view.rate_y_max_hz == pytest.approx(rates[:, 5:8].max() * 1.05)
    assert view.rate_figure.y_range.end == view.rate_y_max_hz
    assert list(drawn_rates(view)) == ["6", "2"]
    np.testing.assert_allclose(drawn_rates(view)["2"][1][0::2], rates[1])


def test_merge_gives_the_merged_units_isi_and_rate():
    rng = np.random.default_rng(2)
    trains = {u: np.unique(rng.integers(0, int(DURATION_S * FS), 500)) for u in (2, 4, 6)}
    session = session_from_trains(trains)
    view = ISIView(session)
    view.selection.unit_ids = [2, 4]
    before = view.rates_hz.copy()
    new_id = view.curation.merge([2, 4])
    view.selection.unit_ids = [new_id]
    merged = np.sort(np.r_[trains[2], trains[4]])
    np.testing.assert_allclose(view.rates_hz[0], before.sum(axis=0))  # rates add up
    np.testing.assert_array_equal(view.isi_counts[0], sv.compute.isi_histograms(
        view.sorting, 50.0, 1.0, unit_ids=[new_id])[0][0])
    # independent: the merged train's intervals, 1 ms bins over [0, 50] ms (samples: 30)
    reference = np.histogram(np.diff(merged), bins=np.arange(51) * 30)[0]
    np.testing.assert_array_equal(view.isi_counts[0], reference)


def test_hidden_view_does_no_work_until_shown():
    rng = np.random.default_rng(3)
    trains = {u: np.unique(rng.integers(0, int(DURATION_S * FS), 300)) for u in (2, 4)}
    view = ISIView(session_from_trains(trains), active=False)
    calls = []
    isi, rates = view.isi_histograms, view.firing_rates
    view.isi_histograms = lambda units: calls.append(("isi", list(units))) or isi(units)
    view.firing_rates = lambda units: calls.append(("rate", list(units))) or rates(units)
    view.selection.unit_ids = [2]
    view.selection.unit_ids = [4, 2]
    view.rate_bin_s = 0.5
    assert calls == [] and view.unit_ids == []
    view.active = True
    assert calls == [("isi", [4, 2]), ("rate", [4, 2])]
    assert view.rates_hz.shape == (2, 40)


def test_panel_renders_with_and_without_selection():
    rng = np.random.default_rng(4)
    trains = {u: np.unique(rng.integers(0, int(DURATION_S * FS), 300)) for u in (2, 4)}
    view = ISIView(session_from_trains(trains))
    pn.panel(view).get_root()
    view.selection.unit_ids = [4, 2]
    pn.panel(view).get_root()


def test_new_selection_updates_the_same_bokeh_figures_in_place():
    rng = np.random.default_rng(5)
    trains = {u: np.unique(rng.integers(0, int(DURATION_S * FS), 400)) for u in (2, 4, 6)}
    view = ISIView(session_from_trains(trains))
    view.selection.unit_ids = [2]
    root = view.__panel__().get_root()
    isi_fig, rate_fig = view.isi_figure, view.rate_figure
    ids = {m.id for m in root.references()}
    assert isi_fig.id in ids and rate_fig.id in ids
    isi_before = np.asarray(view.isi_source.data["top"]).copy()
    rates_before = list(view.rate_source.data["unit"])
    view.selection.unit_ids = [4, 6]
    assert view.isi_figure is isi_fig and view.rate_figure is rate_fig
    assert view._isi_pane.object is isi_fig and view._rate_pane.object is rate_fig
    assert isi_fig.renderers[0].data_source is view.isi_source
    isi_after = np.asarray(view.isi_source.data["top"])
    assert isi_before.size == 50 and isi_after.size == 100
    reference = np.stack([np.histogram(np.diff(trains[u]), bins=np.arange(51) * 30)[0]
                          for u in (4, 6)])
    np.testing.assert_array_equal(isi_after, reference.ravel())
    assert rates_before == ["2"] and list(view.rate_source.data["unit"]) == ["4", "6"]
    assert view.isi_figure.y_range.end == pytest.approx(reference.max() * 1.05)
