"""Similarity view at the Param level: correlogram evidence ranks the two halves of one neuron
first, row clicks, wizard order and walks, curation and selection following, hidden view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv

pn = pytest.importorskip("panel")

from spikeviz.views.similarity import (  # noqa: E402
    TABLE_COLUMNS,
    Similarity,
    refractory_coincidences,
)

FS = 30_000.0
DURATION_S = 60.0


def refractory_train(rng, rate_hz, refractory_s=0.003):
    """Poisson train with a dead time: intervals = refractory + exponential (samples)."""
    n = int(rate_hz * DURATION_S * 1.5)
    intervals = refractory_s + rng.exponential(1.0 / rate_hz, n)
    times = np.cumsum(intervals)
    return np.round(times[times < DURATION_S - 0.01] * FS).astype(np.int64)


@pytest.fixture(scope="module")
def trains():
    """Unit 1 and 2 are the two halves (alternate spikes) of one neuron with a 3 ms dead
    time; 3..8 independent neurons. Ids 1..8 (unit 8 also fires a lot)."""
    rng = np.random.default_rng(7)
    neuron = refractory_train(rng, 40.0)
    out = {1: neuron[0::2], 2: neuron[1::2]}
    for u, rate in zip(range(3, 9), [15.0, 25.0, 30.0, 10.0, 35.0, 45.0], strict=True):
        out[u] = refractory_train(rng, rate)
    return out


def make_session(trains, table=None) -> sv.Session:
    ids = list(trains)
    samples = np.concatenate([trains[u] for u in ids])
    units = np.concatenate([np.full(trains[u].size, i, dtype=np.int32)
                            for i, u in enumerate(ids)])
    order = np.argsort(samples, kind="stable")
    sorting = sv.Sorting.from_arrays(samples[order], units[order], FS, unit_ids=ids,
                                     unit_table=table, num_samples=int(DURATION_S * FS))
    return sv.Session(sorting, cache_dir=None)


def test_refractory_coincidences_match_brute_force(trains):
    sorting = make_session(trains).sorting
    for refractory_ms in (0.5, 1.0, 2.5):
        found = refractory_coincidences(sorting, 3, refractory_ms)
        t = trains[3]
        for position, u in enumerate(sorting.unit_ids.tolist()):
            lags = np.abs(trains[u][None, :] - t[:, None]) * 1e3 / FS
            expected = int(np.count_nonzero(lags < refractory_ms))
            if u == 3:
                expected -= t.size  # a spike is not its own partner
            assert found[position] == expected, (refractory_ms, u)


def test_two_halves_of_one_neuron_rank_first_without_recording(trains):
    view = Similarity(make_session(trains))
    assert not view.has_templates
    view.selection.unit_ids = [1]
    frame = view.frame
    assert view.best_unit_id == 1
    assert frame.index[0] == 2 and sorted(frame.index) == [2, 3, 4, 5, 6, 7, 8]
    assert frame.loc[2, "ccg_observed"] == 0  # they share the neuron's refractory period
    assert frame.loc[2, "ccg_contamination"] == 0.0
    assert frame.loc[2, "ccg_expected"] > 5
    assert frame.loc[2, "score"] > frame["score"].iloc[1:].max()
    assert frame["similarity"].isna().all()
    # independent expected count: n_a n_b (2r - 1) / num_samples, r = 30 samples
    n1, n5 = trains[1].size, trains[5].size
    assert frame.loc[5, "ccg_expected"] == pytest.approx(n1 * n5 * 59 / (DURATION_S * FS))
    assert frame.loc[5, "num_spikes"] == n5 and frame.loc[5, "label"] == "unsorted"
    assert "correlogram evidence only" in view._info.object
    table = view.table.value
    assert table["unit_id"].tolist() == frame.index.tolist()
    assert {"score", "similarity", "ccg_contamination", "label", "num_spikes"} <= \
        set(table.columns)


def test_row_click_selects_best_and_that_unit(trains):
    view = Similarity(make_session(trains))
    view.selection.unit_ids = [4]
    third = view.similar_ids[2]
    view.table.selection = [2]  # a click on the third row
    assert view.selection.unit_ids == [4, third]
    assert view.best_unit_id == 4 and view.table.selection == [2]
    assert view.select_similar(view.similar_ids[0]) == [4, view.similar_ids[0]]
    assert view.table.selection == [0]


def test_next_similar_walks_the_list_in_order(trains):
    view = Similarity(make_session(trains))
    view.selection.unit_ids = [1]
    similar = view.similar_ids
    walked = [view.next_similar() for _ in similar]
    assert walked == similar
    assert view.selection.unit_ids == [1, similar[-1]]
    assert view.next_similar() == similar[-1]  # stays on the last
    back = [view.previous_similar() for _ in similar[:-1]]
    assert back == similar[-2::-1]
    assert view.previous_similar() == similar[0]  # stays on the first
    assert view.selection.unit_ids == [1, similar[0]]


def test_wizard_order_is_deterministic_and_visits_every_unit(trains):
    amplitude = pd.Series([50.0, 80.0, 20.0, np.nan, 90.0, 65.0, 10.0, 30.0],
                          index=pd.Index(list(trains), name="unit_id"))
    labels = ["good", "unsorted", "unsorted", "mua", "unsorted", "noise", "unsorted", "good"]
    table = pd.DataFrame({"amplitude_uv": amplitude, "label": labels})
    session = make_session(trains, table)
    view = Similarity(session)
    # unsorted first (by amplitude desc), then the others (by amplitude desc, NaN last)
    expected = [5, 2, 3, 7, 6, 1, 8, 4]
    assert view.best_order() == expected
    assert Similarity(make_session(trains, table)).best_order() == expected
    visited = [view.next_best() for _ in expected]
    assert visited == expected and view.selection.unit_ids == [4]
    assert view.next_best() == 4  # stays on the last
    assert [view.previous_best() for _ in range(2)] == [8, 1]
    # labelling during the walk does not reshuffle it
    view.curation.label([2], "good")
    assert view.best_order() == expected
    # a merge makes a new unit: the order covers the new set of units
    new_id = view.curation.merge([3, 6])
    order = view.best_order()
    assert sorted(order, key=str) == sorted(view.sorting.unit_ids.tolist(), key=str)
    assert new_id in order and 3 not in order


def test_wizard_without_quality_column_uses_spike_counts(trains):
    view = Similarity(make_session(trains))
    counts = view.sorting.spike_counts()
    order = view.best_order()
    assert order == sorted(counts.index, key=lambda u: (-counts[u], list(trains).index(u)))
    view.selection.unit_ids = []
    assert view.next_best() == order[0] and view.selection.unit_ids == [order[0]]
    view.next_similar()
    assert view.selection.unit_ids == [order[0], view.similar_ids[0]]


def test_follows_curation(trains):
    view = Similarity(make_session(trains))
    view.selection.unit_ids = [3]
    assert 1 in view.similar_ids and 2 in view.similar_ids
    new_id = view.curation.merge([1, 2])
    assert view.sorting.unit_ids.tolist()[-1] == new_id
    assert new_id in view.similar_ids and 1 not in view.similar_ids
    merged = np.sort(np.r_[trains[1], trains[2]])
    assert view.frame.loc[new_id, "num_spikes"] == merged.size
    lags = np.abs(merged[None, :] - trains[3][:, None])
    assert view.frame.loc[new_id, "ccg_observed"] == np.count_nonzero(lags < 30)
    view.selection.unit_ids = [new_id]
    assert view.best_unit_id == new_id and new_id not in view.similar_ids
    view.curation.undo()
    assert view.best_unit_id is None or view.best_unit_id in view.sorting.unit_ids


def test_hidden_view_does_no_work_until_shown(trains):
    view = Similarity(make_session(trains), active=False)
    calls = []
    compute = view.compute
    view.compute = lambda unit_id: calls.append(unit_id) or compute(unit_id)
    view.selection.unit_ids = [3]
    view.selection.unit_ids = [5]
    view.refractory_ms = 1.5
    assert calls == [] and view.best_unit_id is None
    view.active = True
    assert calls == [5] and view.best_unit_id == 5
    # navigation works (and computes what it needs) even while hidden
    view.active = False
    view.selection.unit_ids = [6]
    assert view.next_similar() == view.similar_ids[0] and view.best_unit_id == 6


def test_with_a_recording_template_similarity_ranks_the_same_waveform_first():
    """Units 1 and 2: one neuron (same waveform on channels 0-1, shared dead time); units
    3..5 fire other waveforms on other channels."""
    rng = np.random.default_rng(3)
    duration_s, num_channels = 12.0, 8
    num_samples = int(duration_s * FS)
    traces = rng.normal(0.0, 2.0, (num_samples, num_channels)).astype(np.float32)
    shape = -np.exp(-0.5 * ((np.arange(60) - 20) / 4.0) ** 2)
    neuron = refractory_train(rng, 40.0)
    neuron = neuron[(neuron > 100) & (neuron < num_samples - 100)]
    trains = {1: neuron[0::2], 2: neuron[1::2]}
    footprints = {1: [0, 1], 3: [2, 3], 4: [4, 5], 5: [6, 7]}
    for u in (3, 4, 5):
        t = refractory_train(rng, 20.0)
        trains[u] = t[(t > 100) & (t < num_samples - 100)]
    for u, t in trains.items():
        for c, gain in zip(footprints.get(u, footprints[1]), (80.0, 40.0), strict=True):
            for s in t:
                traces[s - 20:s + 40, c] += gain * shape
    ids = list(trains)
    samples = np.concatenate([trains[u] for u in ids])
    units = np.concatenate([np.full(trains[u].size, i, np.int32) for i, u in enumerate(ids)])
    order = np.argsort(samples, kind="stable")
    sorting = sv.Sorting.from_arrays(samples[order], units[order], FS, unit_ids=ids,
                                     num_samples=num_samples)
    locations = np.column_stack([np.zeros(num_channels), np.arange(num_channels) * 20.0])
    recording = sv.Recording.from_array(traces, FS, channel_locations=locations)
    view = Similarity(sv.Session(sorting, recording, cache_dir=None, filter_band_hz=None))
    assert view.has_templates
    view.selection.unit_ids = [1]
    frame = view.frame
    assert frame.index[0] == 2
    assert frame.loc[2, "similarity"] > 0.95
    assert frame["similarity"].iloc[1:].max() < 0.5
    assert "template similarity" in view._info.object
    assert view.next_similar() == 2 and view.selection.unit_ids == [1, 2]


def test_panel_renders(trains):
    view = Similarity(make_session(trains))
    pn.panel(view).get_root()
    view.selection.unit_ids = [2]
    pn.panel(view).get_root()
    assert view.table.value["unit_id"].iloc[0] == 1


def test_new_selection_updates_the_same_table_model_in_place(trains):
    session = make_session(trains)
    view = Similarity(session)
    view.selection.unit_ids = [3]
    root = view.__panel__().get_root()
    table = view.table
    models = [m for m in root.references() if type(m).__name__ == "DataTabulator"]
    assert len(models) == 1
    model, source = models[0], models[0].source
    first = list(source.data["unit_id"])
    calls = []
    compute = view.compute
    view.compute = lambda unit_id: calls.append(unit_id) or compute(unit_id)
    view.selection.unit_ids = [1]
    assert view.table is table and view._layout[1] is table
    again = [m for m in root.references() if type(m).__name__ == "DataTabulator"]
    assert again == [model] and model.source is source  # same Bokeh model, new data
    second = list(source.data["unit_id"])
    assert second != first and second[0] == 2  # the other half of unit 1's neuron
    # independent: the table is similar_units' ranking of every other unit
    expected = view.sorting.unit_ids[view.sorting.unit_ids != 1]
    assert sorted(second) == sorted(expected.tolist())
    # a row click ([best, that unit]) keeps the table; a unit seen before is remembered
    view.select_similar(second[1])
    assert list(source.data["unit_id"]) == second
    view.selection.unit_ids = [3]
    assert list(source.data["unit_id"]) == first and calls == [1]


def test_table_columns_never_change(trains):
    """Regression: changing a shown Tabulator's columns during a merge raised a JS error."""
    view = Similarity(make_session(trains))
    empty = list(view.table.value.columns)
    # both evidence sources' columns (template + CCG suggestions, CCG-only fallback)
    assert empty == TABLE_COLUMNS and {"ccg_refractory_ratio", "ccg_contamination"} <= set(empty)
    view.selection.unit_ids = [4]
    assert len(view.table.value) > 0
    assert list(view.table.value.columns) == empty
    view.selection.unit_ids = []
    assert list(view.table.value.columns) == empty
