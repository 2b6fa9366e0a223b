"""ISI / firing-rate view at the Param level: regular trains, known rates, ISI violations,
the time window, selection and curation following, deferred work while hidden."""

from __future__ import annotations

import numpy as np
import pytest

import spikeviz as sv

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

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
    return {el.label: el for el in view.isi_plot if isinstance(el, hv.Histogram)}


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
    hist = drawn_histograms(view)["5"]
    np.testing.assert_array_equal(hist.dimension_values(1), expected)

    view.log_bins = True
    edges = view.isi_edges_ms
    assert np.all(np.diff(np.log(edges)) == pytest.approx(np.log(edges[1] / edges[0])))
    where = np.searchsorted(edges, 10.0, side="right") - 1
    assert view.isi_counts[0, where] == train.size - 1
    assert view.isi_counts.sum() == train.size - 1
    assert view.violations_percent.loc[5] == 0.0
    hv.render(view.isi_plot)


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
    curve = next(el for el in view.rate_plot if isinstance(el, hv.Curve) and el.label == "3")
    xs, ys = curve.dimension_values(0), curve.dimension_values(1)
    np.testing.assert_allclose(xs[0::2], view.rate_edges_s[:-1])
    np.testing.assert_allclose(xs[1::2], view.rate_edges_s[1:])
    np.testing.assert_allclose(ys[0::2], np.array(expected) / 2.0)
    np.testing.assert_allclose(ys[1::2], np.array(expected) / 2.0)
    hv.render(view.rate_plot)


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
    spans = [el for el in view.isi_plot if isinstance(el, hv.VSpan)]
    assert len(spans) == 1 and spans[0].data == [0.0, 0.4]


def test_rate_plot_follows_time_window_and_selection():
    rng = np.random.default_rng(1)
    trains = {u: np.unique(rng.integers(0, int(DURATION_S * FS), 300)) for u in (2, 4, 6)}
    view = ISIView(session_from_trains(trains))
    assert view.unit_ids == []
    hv.render(view.isi_plot)
    hv.render(view.rate_plot)
    view.selection.unit_ids = [6, 2]
    assert list(drawn_histograms(view)) == ["6", "2"]
    assert view.x_range_s == (0.0, DURATION_S)
    view.selection.time_window_s = (5.0, 7.5)
    assert view.x_range_s == (5.0, 7.5)
    assert view.rate_plot.opts.get().kwargs["xlim"] == (5.0, 7.5)
    rates, _ = sv.compute.firing_rates(view.sorting, 1.0, unit_ids=[6, 2])
    np.testing.assert_allclose(view.rates_hz, rates)


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
