"""Comparison views at the Param level: the heatmaps' cells and taps, the performance table,
the pair view's matched spikes, cross-correlogram and templates, the pair selection."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from tests.comparison_cases import ground_truth_folders, perturbed_copy
from tests.compute.test_comparison import FS, perturbed_pair

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

from spikeviz.model.comparison_selection import ComparisonSelection  # noqa: E402
from spikeviz.views.comparison_matrix import AgreementMatrix, ConfusionMatrix  # noqa: E402
from spikeviz.views.comparison_pair import PairView, pair_correlogram  # noqa: E402
from spikeviz.views.comparison_performance import (  # noqa: E402
    PerformanceView,
    performance_table,
    unit_snr,
)


@pytest.fixture(scope="module")
def gt_comparison():
    """Random trains vs a perturbed copy (split, merge, noise, empty units), ground truth."""
    (t1, u1), (t2, u2), n1, n2 = perturbed_pair(7)
    a = sv.Sorting.from_arrays(t1, u1, FS, unit_ids=np.arange(100, 100 + n1))
    b = sv.Sorting.from_arrays(t2, u2, FS, unit_ids=np.array([f"t{k}" for k in range(n2)]))
    return sv.compare(a, b, ground_truth=True, exhaustive_gt=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero templates / renumbered ids of the Phy export
        return ground_truth_folders(tmp_path_factory.mktemp("cmp"), duration_s=20.0,
                                    num_channels=16, num_units=8)


@pytest.fixture(scope="module")
def session_comparison(folders):
    truth, tested = (sv.load(p) for p in folders)
    return sv.compare(truth, tested, ground_truth=True, exhaustive_gt=True)


# -- heatmaps ------------------------------------------------------------------------------
def test_agreement_image_is_the_ordered_matrix_and_taps_select_its_cells(gt_comparison):
    c = gt_comparison
    m = AgreementMatrix(c)
    ordered = c.ordered_agreement()
    np.testing.assert_array_equal(m.values, ordered.to_numpy().astype(np.float32))
    image = m._image()
    n_rows, n_cols = m.shape
    assert (n_rows, n_cols) == ordered.shape
    rng = np.random.default_rng(0)
    for i, j in zip(rng.integers(0, n_rows, 25), rng.integers(0, n_cols, 25), strict=True):
        x, y = j + rng.uniform(0.05, 0.95), n_rows - i - rng.uniform(0.05, 0.95)
        assert image[x, y] == pytest.approx(ordered.iat[i, j], abs=1e-7)  # what is drawn
        m._tap.event(x=x, y=y)  # what a click does
        assert m.selection.pair == (ordered.index[i], ordered.columns[j])
    before = m.selection.pair
    m._tap.event(x=-0.5, y=1.0)  # outside the matrix: nothing
    m._tap.event(x=n_cols + 0.5, y=1.0)
    assert m.selection.pair == before
    # the matches are marked where they are drawn
    rows, cols = m.matched_cells()
    marked = {(ordered.index[r], ordered.columns[k]) for r, k in zip(rows, cols, strict=True)}
    assert marked == {(u, v) for u, v in c.matches.items() if not pd.isna(v)}
    points = m._marks()
    assert {m.pair_at(x, y) for x, y in zip(points["x"], points["y"], strict=True)} == marked


def test_agreement_unit_order_and_outline(gt_comparison):
    c = gt_comparison
    m = AgreementMatrix(c, order="unit id")
    np.testing.assert_array_equal(m.values, c.agreement.to_numpy().astype(np.float32))
    m.order = "best match"
    np.testing.assert_array_equal(m.values,
                                  c.ordered_agreement().to_numpy().astype(np.float32))
    u1, u2 = c.ordered_agreement().index[2], c.ordered_agreement().columns[5]
    m.selection.select(u1, u2)
    (box,) = m._outline(m.selection.pair).data.to_numpy().tolist()
    n_rows = m.shape[0]
    assert box == [5, n_rows - 3, 6, n_rows - 2]  # row 2 from the top, column 5


def test_heatmap_of_1000_by_1000_units_is_one_image():
    rng = np.random.default_rng(1)
    n = 1000
    t = np.sort(rng.integers(0, 600 * int(FS), n * 20))
    u = rng.integers(0, n, t.size)
    a = sv.Sorting.from_arrays(t, u, FS)
    b = sv.Sorting.from_arrays(t + 3, rng.permutation(n)[u], FS)
    m = AgreementMatrix(sv.compare(a, b))
    assert m.shape == (n, n)
    from bokeh.models import GlyphRenderer, Image, Rect

    root = pn.panel(m).get_root()
    glyphs = [r.glyph for r in root.select({"type": GlyphRenderer})]
    assert sum(isinstance(g, Image) for g in glyphs) == 1
    assert not any(isinstance(g, Rect) for g in glyphs)
    # every unit is matched to its permuted copy, all on the diagonal
    rows, cols = m.matched_cells()
    assert rows.size == n and np.array_equal(rows, cols)


def test_confusion_matrix_cells_and_taps(gt_comparison):
    c = gt_comparison
    v = ConfusionMatrix(c)
    cm = c.confusion_matrix()
    np.testing.assert_array_equal(v.values, cm.to_numpy().astype(np.float32))
    n_rows, n_cols = v.shape
    v.tap(0.5, n_rows - 0.5)  # top-left: the first matched pair
    assert v.selection.pair == (cm.index[0], cm.columns[0])
    assert c.matches[cm.index[0]] == cm.columns[0]
    v.tap(n_cols - 0.5, n_rows - 1.5)  # FN column of row 1: the ground-truth unit alone
    assert v.selection.pair == (cm.index[1], None)
    v.tap(2.5, 0.5)  # FP row of column 2: the tested unit alone
    assert v.selection.pair == (None, cm.columns[2])
    labels = v._marks()
    assert sorted(int(s.replace(",", "")) for s in labels["text"]) == \
        sorted(int(x) for x in cm.to_numpy().ravel() if x > 0)


# -- selection -----------------------------------------------------------------------------
def test_selection_checks_ids_and_normalises(gt_comparison):
    s = ComparisonSelection(gt_comparison)
    s.select(np.int64(101), np.str_("t3"))
    assert s.pair == (101, "t3") and type(s.unit1) is int and type(s.unit2) is str
    with pytest.raises(InputError, match="not a unit"):
        s.select(101, "nope")
    assert s.pair == (101, "t3")
    events = []
    s.param.watch(lambda *e: events.append(len(e)), ["unit1", "unit2"])
    s.select(102, "t4")
    assert events == [2]  # one event with both


# -- performance ---------------------------------------------------------------------------
def test_performance_table_equals_the_comparison_and_rows_select(gt_comparison):
    c = gt_comparison
    view = PerformanceView(c)
    perf = c.performance
    t = view.table
    assert t["gt_unit_id"].tolist() == perf.index.tolist()
    for name in ("accuracy", "recall", "precision", "false_discovery_rate", "miss_rate"):
        np.testing.assert_array_equal(t[name].to_numpy(), perf[name].to_numpy())
    for name in ("tp", "fn", "fp", "num_gt", "num_tested"):
        assert t[name].tolist() == perf[name].tolist()
    assert [None if pd.isna(v) else v for v in perf["tested_id"]] == t["tested_id"].tolist()
    rates = c.sorting1.spike_counts().to_numpy() / c.sorting1.duration_s
    np.testing.assert_allclose(t["firing_rate_hz"].to_numpy(), rates)
    assert "snr" not in t  # no recording
    shown = view.tabulator.value
    assert shown["accuracy"].tolist() == perf["accuracy"].tolist()
    for row in range(len(t)):
        view.click_row(row)
        assert view.selection.pair == (perf.index[row], None if pd.isna(
            perf["tested_id"].iloc[row]) else perf["tested_id"].iloc[row])
        assert view.tabulator.selection == [row]
    counts = view.category_counts()
    assert counts == {k.removeprefix("num_").replace("_", " "): v
                      for k, v in c.category_counts.items() if k not in ("num_gt",
                                                                          "num_sorter")}
    pn.panel(view).get_root()


def test_two_sorter_table_lists_matches(gt_comparison):
    c = sv.compare(gt_comparison.sorting1, gt_comparison.sorting2)
    t = performance_table(c)
    scores = c.agreement
    for _, row in t.iterrows():
        match = c.matches[row["unit1"]]
        if pd.isna(match):
            assert row["unit2"] is None and np.isnan(row["agreement"])
        else:
            assert row["unit2"] == match
            assert row["agreement"] == scores.loc[row["unit1"], match]
            assert row["coincident"] == c.match_counts.loc[row["unit1"], match]
        assert row["best_agreement"] == scores.loc[row["unit1"]].max()


def test_snr_is_the_template_peak_over_noise(session_comparison):
    s = session_comparison.session1
    snr = unit_snr(s)
    tpl = s.compute("templates")
    noise = np.asarray(s.compute("noise_levels"))
    for row, unit in enumerate(tpl.unit_ids[:4]):
        data = tpl.dense(row)
        channel = int(np.argmax(-data.min(axis=0)))  # most negative value: peak sign 'neg'
        expected = abs(data[:, channel].min()) / noise[channel]
        assert snr[unit] == pytest.approx(expected, rel=1e-5)
    view = PerformanceView(session_comparison)
    np.testing.assert_array_equal(view.table["snr"].to_numpy(),
                                  snr.reindex(session_comparison.unit_ids1).to_numpy())


# -- pair ----------------------------------------------------------------------------------
def test_pair_view_matched_spikes_and_correlogram(gt_comparison):
    c = gt_comparison
    pair = PairView(c)
    assert pair.data.unit1 is None and "Tap a cell" in pair._caption.object
    matched = [(u, v) for u, v in c.matches.items() if not pd.isna(v)]
    for u1, u2 in [*matched[:4], (c.unit_ids1[0], c.unit_ids2[-2])]:
        pair.selection.select(u1, u2)
        d = pair.data
        idx1, idx2 = c.matched_spikes(u1, u2)
        np.testing.assert_array_equal(d.matched1, idx1)
        np.testing.assert_array_equal(d.matched2, idx2)
        np.testing.assert_array_equal(d.train1, c.sorting1.spike_train(u1))
        frame = pair.raster_frame()
        top = frame[frame["row"] == 1]
        matched_times = top["time_s"][top["kind"] == "matched 1"].to_numpy()
        np.testing.assert_array_equal(matched_times, d.train1[idx1] / FS)
        assert (frame["kind"] == "matched 2").sum() == idx2.size
        # the cross-correlogram is sv.compute.correlograms of the two trains
        t = np.concatenate([d.train1, d.train2])
        u = np.repeat([0, 1], [d.train1.size, d.train2.size])
        order = np.argsort(t, kind="stable")
        both = sv.Sorting.from_arrays(t[order], u[order], FS)
        counts, edges = sv.compute.correlograms(both, window_ms=pair.ccg_window_ms,
                                                bin_ms=pair.ccg_bin_ms, unit_ids=[0, 1])
        np.testing.assert_array_equal(d.ccg_counts, counts[0, 1])
        np.testing.assert_array_equal(d.ccg_edges_ms, edges)
        # analytic: every matched pair has |lag| <= delta, inside the bins around 0
        delta_ms = c.delta_samples / FS * 1e3
        near = (edges[:-1] >= -delta_ms - pair.ccg_bin_ms) & (edges[1:] <= delta_ms +
                                                                pair.ccg_bin_ms)
        assert d.ccg_counts[near].sum() >= idx1.size
        assert d.coincident == c.match_counts.loc[u1, u2]
        assert d.agreement == c.agreement.loc[u1, u2]
        assert f"{u1}" in pair._caption.object and f"{u2}" in pair._caption.object
    assert "no recording" in pair.data.template_note and not pair.data.templates
    pair.selection.select(c.unit_ids1[0], None)
    assert pair.data.ccg_counts.size == 0 and pair.data.matched1.size == 0


def test_pair_correlogram_of_shifted_copy():
    train = np.arange(1000, 300_000, 997, dtype=np.int64)
    counts, edges = pair_correlogram(train, train - 30, FS, window_ms=10.0, bin_ms=0.5)
    # t1 - t2 = +30 samples = +1 ms for every spike (trains 997 samples apart: no other pair)
    assert counts.sum() == train.size
    assert counts[np.searchsorted(edges, 1.0, side="right") - 1] == train.size


def test_pair_view_overlays_both_templates(session_comparison):
    c = session_comparison
    u1 = c.unit_ids1[0]
    u2 = c.matches[u1]
    pair = PairView(c, num_channels=4)
    pair.selection.select(u1, u2)
    d = pair.data
    assert set(d.templates) == {1, 2} and len(d.channels) == 4
    t1 = c.session1.compute("templates")
    row = list(t1.unit_ids).index(u1)
    dense = t1.dense(row)
    cols = [list(t1.channel_ids).index(ch) for ch in d.channels]
    np.testing.assert_array_equal(d.templates[1], dense[:, cols])
    biggest = np.sort(np.argsort(-np.ptp(dense, axis=0), kind="stable")[:4])
    assert cols == biggest.tolist()  # unit1's largest channels
    assert d.template_ms[t1.nbefore] == 0.0
    pn.panel(pair).get_root()


def test_pair_view_hidden_defers(gt_comparison):
    pair = PairView(gt_comparison, active=False)
    pair.selection.select(gt_comparison.unit_ids1[1], None)
    assert pair.data.unit1 is None
    pair.active = True
    assert pair.data.unit1 == gt_comparison.unit_ids1[1]


def test_perturbed_copy_categories():
    from spikeviz import datasets

    gt = datasets.generate(duration_s=30.0, num_channels=16, num_units=10, seed=3).sorting
    tested = perturbed_copy(gt)
    c = sv.compare(gt, tested, ground_truth=True, exhaustive_gt=True)
    cats = c.unit_categories
    assert list(cats.index[cats["overmerged"]]) == ["merged"]
    assert "noise" in set(cats.index[cats["false_positive"]])
    good = [u for u in tested.unit_ids if u.startswith("good")]
    assert set(cats.index[cats["well_detected"]]) == set(good)
