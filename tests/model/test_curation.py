"""Curation: action sequences, undo/redo, ids, the log on disk, SpikeInterface format v2."""

import json
import pathlib

import numpy as np
import pytest

from spikeviz.errors import InputError
from spikeviz.model.curation import Curation
from spikeviz.model.sorting import Sorting

FS = 30000.0


def make_sorting(num_units=4, per_unit=6, seed=0, ids=None):
    rng = np.random.default_rng(seed)
    n = num_units * per_unit
    sample_index = np.sort(rng.choice(100_000, n, replace=False)).astype(np.int64)
    unit_index = rng.permutation(np.repeat(np.arange(num_units), per_unit)).astype(np.int32)
    return Sorting.from_arrays(sample_index, unit_index, FS, unit_ids=ids)


def trains(sorting):
    return {u: sorting.spike_train(u).tolist() for u in sorting.unit_ids.tolist()}


def test_merge_split_undo_redo_analytic(tmp_path):
    s = make_sorting(ids=[10, 20, 30, 40])
    t0 = trains(s)
    c = Curation(s)
    assert trains(c.sorting) == t0 and not c.can_undo and not c.can_redo
    m = c.merge([10, 30])
    assert m == 41
    assert trains(c.sorting) == {20: t0[20], 40: t0[40], 41: sorted(t0[10] + t0[30])}
    sel = c.sorting.spike_indices(41)[::2]
    a, b = c.split(41, sel)
    assert (a, b) == (42, 43)
    merged = sorted(t0[10] + t0[30])
    assert c.sorting.spike_train(42).tolist() == merged[::2]
    assert c.sorting.spike_train(43).tolist() == merged[1::2]
    # split of a split, with a boolean mask over the unit's spikes
    mask = np.zeros(len(merged[::2]), bool)
    mask[0] = True
    x, y = c.split(42, mask)
    assert c.sorting.spike_train(x).tolist() == merged[:1]
    assert c.sorting.spike_train(y).tolist() == merged[::2][1:]
    assert c.sorting.unit_ids.tolist() == [20, 40, 43, 44, 45]
    c.remove([20])
    assert 20 not in c.sorting.unit_ids and c.sorting.num_spikes == s.num_spikes - 6
    assert c.undo() and 20 in c.sorting.unit_ids
    assert c.undo() and c.undo()
    assert trains(c.sorting) == {20: t0[20], 40: t0[40], 41: merged}
    assert c.undo() and trains(c.sorting) == t0 and not c.can_undo
    assert not c.undo()
    assert c.redo() and c.redo()
    assert c.sorting.spike_train(42).tolist() == merged[::2]
    # a new action clears redo; ids are never reused
    assert c.can_redo
    new = c.merge([20, 40])
    assert new == 46 and not c.can_redo and not c.redo()


def test_split_positions_after_removal_map_to_the_right_spikes():
    s = make_sorting(ids=[0, 1, 2, 3])
    c = Curation(s)
    c.remove(0)
    positions = c.sorting.spike_indices(2)[:3]
    a, b = c.split(2, positions)
    assert c.sorting.spike_train(a).tolist() == s.spike_train(2)[:3].tolist()
    assert c.sorting.spike_train(b).tolist() == s.spike_train(2)[3:].tolist()


def test_labels_and_tags_survive_merges_and_splits():
    s = make_sorting(ids=[1, 2, 3, 4])
    c = Curation(s)
    c.label([1, 2], "good")
    c.tag(1, ["burst", "edge"])
    c.tag(2, "drift")
    m = c.merge([1, 2])
    assert c.sorting.unit_table.loc[m, "label"] == "good"
    assert c.tags_of(m) == ["burst", "drift", "edge"]
    c.label(3, "mua")
    m2 = c.merge([m, 3])
    assert c.sorting.unit_table.loc[m2, "label"] == "unsorted"
    a, b = c.split(m2, c.sorting.spike_indices(m2)[:2])
    assert c.tags_of(a) == c.tags_of(b) == ["burst", "drift", "edge"]
    c.untag(a, ["drift", "absent"])
    assert c.tags_of(a) == ["burst", "edge"]
    assert c.sorting.unit_table.loc[a, "tags"] == "burst,edge"
    c.undo()
    assert c.tags_of(a) == ["burst", "drift", "edge"]


def test_ids_never_reused_after_undo(tmp_path):
    s = make_sorting(ids=[0, 5, 7, 9])
    c = Curation(s, log_path=tmp_path / "log.json")
    assert c.merge([0, 5]) == 10
    c.undo()
    assert c.merge([7, 9]) == 11
    c.close()
    c = Curation(s, log_path=tmp_path / "log.json")  # also across a restart
    c.undo()
    assert c.merge([0, 9]) == 12


def test_string_ids():
    s = make_sorting(ids=["a", "b", "7", "c"])
    c = Curation(s)
    m = c.merge(["a", "b"])
    assert m == "8" and c.sorting.unit_ids.dtype.kind == "U"
    assert c.split("c", c.sorting.spike_indices("c")[:1]) == ("9", "10")


@pytest.mark.parametrize("call, field", [
    (lambda c: c.merge([0, 99]), "unit_ids"),
    (lambda c: c.merge([0]), "unit_ids"),
    (lambda c: c.merge([0, 0]), "unit_ids"),
    (lambda c: c.label(["0"], "good"), "unit_ids"),
    (lambda c: c.label([0], "great"), "label"),
    (lambda c: c.tag([0], [""]), "tags"),
    (lambda c: c.split(0, []), "spike_indices"),
    (lambda c: c.split(0, c.sorting.spike_indices(0)), "spike_indices"),
    (lambda c: c.split(0, c.sorting.spike_indices(1)[:1]), "spike_indices"),
    (lambda c: c.split(0, np.zeros(3, bool)), "spike_indices"),
    (lambda c: c.split(0, [10**9]), "spike_indices"),
    (lambda c: c.split(99, [0]), "unit_id"),
])
def test_bad_input_names_the_field(call, field):
    c = Curation(make_sorting())
    with pytest.raises(InputError) as error:
        call(c)
    assert error.value.field == field
    assert not c.can_undo


def test_actions_on_removed_units_are_refused():
    c = Curation(make_sorting())
    c.remove(1)
    with pytest.raises(InputError, match="removed"):
        c.label(1, "good")
    m = c.merge([2, 3])
    with pytest.raises(InputError, match="no longer exists"):
        c.merge([2, 0])
    assert m in c.sorting.unit_ids


def test_resume_from_disk_exactly(tmp_path):
    s = make_sorting(num_units=6, per_unit=20, seed=3)
    path = tmp_path / "curation.json"
    c = Curation(s, log_path=path)
    m = c.merge([0, 1])
    a, _ = c.split(m, c.sorting.spike_indices(m)[5:17])
    c.label(a, "good")
    c.tag(2, "x")
    c.remove(3)
    full = trains(c.sorting)
    c.undo()
    c.undo()
    expected, table = trains(c.sorting), c.sorting.unit_table.copy()
    c.close()
    again = Curation(s, log_path=path)
    assert trains(again.sorting) == expected
    assert again.sorting.unit_table.equals(table)
    assert again.can_redo and again.can_undo
    assert len(again.actions) == 3 and len(again.undone_actions) == 2
    assert again.redo() and again.redo() and not again.redo()
    assert trains(again.sorting) == full
    assert (path.parent / "curation.json.spikes").is_dir()
    document = json.loads(path.read_text())
    assert document["format_version"] == 1 and document["position"] == 5
    assert document["sorting"]["spikes_hash"] == s.spikes_hash()


def test_log_of_another_sorting_is_refused(tmp_path):
    path = tmp_path / "curation.json"
    Curation(make_sorting(seed=1), log_path=path).merge([0, 1])
    with pytest.raises(InputError) as error:
        Curation(make_sorting(seed=2), log_path=path)
    assert error.value.path == path and error.value.field == "sorting.spikes_hash"
    assert "another sorting" in str(error.value)


def test_corrupt_log_and_sidecar_are_refused(tmp_path):
    s = make_sorting()
    path = tmp_path / "curation.json"
    c = Curation(s, log_path=path)
    c.split(0, c.sorting.spike_indices(0)[:2])
    c.close()
    (sidecar,) = (tmp_path / "curation.json.spikes").iterdir()
    np.save(sidecar, np.array([0, 1], dtype=np.int64))
    with pytest.raises(InputError, match="corrupt"):
        Curation(s, log_path=path)
    path.write_text("{not json")
    with pytest.raises(InputError) as error:
        Curation(s, log_path=path)
    assert error.value.path == path


def test_crash_mid_write_leaves_the_previous_log(tmp_path, monkeypatch):
    s = make_sorting()
    path = tmp_path / "curation.json"
    c = Curation(s, log_path=path)
    c.merge([0, 1])
    before_text = path.read_text()
    before = trains(c.sorting)

    def crash(self, data):
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pathlib.Path, "write_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        c.label(2, "good")
    with pytest.raises(KeyboardInterrupt):
        c.undo()
    monkeypatch.undo()
    assert path.read_text() == before_text
    assert trains(c.sorting) == before and len(c.actions) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curation.json", "curation.json.lock"]
    c.label(2, "good")  # the in-memory curation is still consistent
    c.close()
    with Curation(s, log_path=path) as again:
        assert again.sorting.unit_table.loc[2, "label"] == "good"
        again.undo()
        assert trains(again.sorting) == before


def test_watchers_see_every_change():
    c = Curation(make_sorting())
    seen = []
    c.param.watch(lambda e: seen.append(e.new.num_units), "sorting")
    c.merge([0, 1])
    c.undo()
    c.redo()
    c.label(2, "noise")
    assert seen == [3, 4, 3, 3]


def test_spike_properties_and_table_columns_are_carried():
    s = make_sorting()
    amps = np.arange(s.num_spikes, dtype=np.float32)
    table = s.unit_table.assign(depth=[1.0, 2.0, 3.0, 4.0])
    s = Sorting(s.sample_index, s.unit_index, FS, unit_table=table,
                spike_properties={"amplitudes": amps})
    c = Curation(s)
    c.remove(0)
    m = c.merge([1, 2])
    keep = s.unit_index != 0
    np.testing.assert_array_equal(c.sorting.spike_properties["amplitudes"], amps[keep])
    assert c.sorting.unit_table.loc[3, "depth"] == 4.0
    assert np.isnan(c.sorting.unit_table.loc[m, "depth"])


# -- SpikeInterface curation format v2 ---------------------------------------------------------
def si_sorting(sorting):
    core = pytest.importorskip("spikeinterface.core")
    labels = sorting.unit_ids[sorting.unit_index]
    return core.NumpySorting.from_samples_and_labels(
        [sorting.sample_index], [labels], sorting.sampling_frequency,
        unit_ids=sorting.unit_ids)


def si_trains(si):
    return {u.item() if hasattr(u, "item") else u: si.get_unit_spike_train(u).tolist()
            for u in si.unit_ids}


def si_apply(sorting, curation):
    si_curation = pytest.importorskip("spikeinterface.curation")
    if isinstance(curation, dict):
        si_curation.validate_curation_dict(curation)
    return si_curation.apply_curation(si_sorting(sorting), curation)


def simple_curation():
    s = make_sorting(num_units=7, per_unit=10, seed=5, ids=[3, 5, 8, 13, 21, 34, 55])
    c = Curation(s)
    c.label([3, 5], "good")
    c.tag(3, "burst")
    c.label(34, "noise")
    m = c.merge([8, 13])
    c.merge([m, 55])
    c.remove(21)
    c.split(5, c.sorting.spike_indices(5)[[0, 3, 4]])
    return s, c


def test_si_v2_dict_applies_to_the_same_trains():
    s, c = simple_curation()
    d = c.to_spikeinterface_curation()
    json.dumps(d)
    assert d["format_version"] == "2" and d["removed"] == [21]
    assert d["merges"] == [{"unit_ids": [8, 13, 55], "new_unit_id": 57}]
    curated = si_apply(s, d)
    assert si_trains(curated) == trains(c.sorting)
    assert curated.get_property("quality")[list(curated.unit_ids).index(3)] == "good"


def test_si_v2_dict_round_trip():
    s, c = simple_curation()
    d = c.to_spikeinterface_curation()
    back = Curation.from_spikeinterface_curation(s, d)
    assert trains(back.sorting) == trains(c.sorting)
    assert back.sorting.unit_table.loc[3, "label"] == "good"
    assert back.tags_of(3) == ["burst"]
    assert back.sorting.unit_table.loc[34, "label"] == "noise"
    assert back.can_undo


def complex_curation(tmp_path=None):
    s = make_sorting(num_units=5, per_unit=12, seed=7)
    c = Curation(s, log_path=None if tmp_path is None else tmp_path / "c.json")
    m = c.merge([0, 1])
    a, b = c.split(m, c.sorting.spike_indices(m)[::3])   # split a merge
    x, y = c.split(2, c.sorting.spike_indices(2)[:4])
    c.merge([a, x])                                        # a part merged with a part
    c.remove(y)                                            # part of a split removed
    c.label(b, "mua")
    c.tag(b, "check")
    c.split(3, np.arange(12) < 6)                          # plain split
    return s, c


def test_si_steps_apply_to_the_same_trains(tmp_path):
    s, c = complex_curation(tmp_path)
    with pytest.raises(InputError) as error:
        c.to_spikeinterface_curation()
    assert error.value.field == "curation" and "steps" in str(error.value)
    steps = c.to_spikeinterface_curation_steps()
    json.dumps(steps)
    si_curation = pytest.importorskip("spikeinterface.curation")
    for step in steps:
        si_curation.validate_curation_dict(step)
    curated = si_apply(s, steps)
    assert si_trains(curated) == trains(c.sorting)
    back = Curation.from_spikeinterface_curation(s, steps, log_path=tmp_path / "back.json")
    assert trains(back.sorting) == trains(c.sorting)
    for column in ("label", "tags"):
        assert back.sorting.unit_table[column].sort_index().equals(
            c.sorting.unit_table[column].sort_index())
    back.close()
    again = Curation(s, log_path=tmp_path / "back.json")
    assert trains(again.sorting) == trains(c.sorting)


def test_si_steps_without_actions_and_with_only_labels():
    s = make_sorting()
    c = Curation(s)
    assert si_trains(si_apply(s, c.to_spikeinterface_curation_steps())) == trains(s)
    c.label(1, "good")
    steps = c.to_spikeinterface_curation_steps()
    assert len(steps) == 1 and steps[0]["manual_labels"][0]["unit_id"] == 1


def test_si_import_labels_mode_split_and_bad_dicts():
    s = make_sorting(num_units=3, per_unit=6)
    labels = [0, 1, 0, 2, 2, 0]
    d = {"format_version": "2", "unit_ids": [0, 1, 2],
         "splits": [{"unit_id": 1, "mode": "labels", "labels": labels}],
         "merges": [{"unit_ids": [0, 2], "new_unit_id": 100}]}
    c = Curation.from_spikeinterface_curation(s, d)
    curated = si_apply(s, d)
    assert si_trains(curated) == trains(c.sorting)
    assert c.merge([c.sorting.unit_ids[0], c.sorting.unit_ids[1]]) > 100
    with pytest.raises(InputError) as error:
        Curation.from_spikeinterface_curation(s, {"format_version": "2", "unit_ids": [0, 1]})
    assert error.value.field == "curation.unit_ids"
    with pytest.raises(InputError) as error:
        Curation.from_spikeinterface_curation(
            s, {"format_version": "2", "unit_ids": [0, 1, 2], "merges": [{"unit_ids": [0, 9]}]})
    assert error.value.field == "curation.unit_ids"


def test_unchanged_curation_shares_the_original_arrays():
    """Until a merge or split, the curated sorting shares the original spike arrays (no copy
    of the 10 M-element vectors) and gives the same spikes as a fresh build."""
    s = make_sorting(num_units=5, per_unit=40, seed=4, ids=[7, 3, 11, 2, 9])
    c = Curation(s)
    assert c.sorting.sample_index.base is s.sample_index.base or \
        np.shares_memory(c.sorting.sample_index, s.sample_index)
    assert np.shares_memory(c.sorting.unit_index, s.unit_index) and c._slots is None
    c.label([3], "good")
    c.tag([9], "x")
    assert np.shares_memory(c.sorting.unit_index, s.unit_index) and c._slots is None
    for u in s.unit_ids.tolist():
        np.testing.assert_array_equal(c.original_spike_indices(u), s.spike_indices(u))
    assert c.sorting.unit_table.loc[3, "label"] == "good"
    assert c.sorting.unit_table.loc[9, "tags"] == "x"
    before = trains(c.sorting)
    new = c.merge([7, 2])
    assert c._slots is not None and not np.shares_memory(c.sorting.unit_index, s.unit_index)
    np.testing.assert_array_equal(c.original_spike_indices(new), np.sort(np.concatenate(
        [s.spike_indices(7), s.spike_indices(2)])))
    c.undo()
    assert np.shares_memory(c.sorting.unit_index, s.unit_index)
    assert trains(c.sorting) == before
    c.remove([11])
    assert c.sorting.num_spikes == s.num_spikes - s.spike_counts()[11]
    c.undo()
    assert trains(c.sorting) == before and c.sorting.unit_table.loc[3, "label"] == "good"
