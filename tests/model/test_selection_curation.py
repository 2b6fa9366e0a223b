"""A Selection bound to a Curation follows it; Session.curation / selection / curated."""

import gc
import json
import pathlib

import numpy as np
import pytest

from spikeviz.errors import InputError
from spikeviz.model import session as session_module
from spikeviz.model.curated import CuratedAnalysis
from spikeviz.model.curation import Curation
from spikeviz.model.selection import Selection
from spikeviz.model.session import Session
from spikeviz.model.sorting import Sorting

FS = 30000.0


def make_sorting(num_units=5, per_unit=40, seed=0):
    rng = np.random.default_rng(seed)
    n = num_units * per_unit
    sample_index = np.sort(rng.choice(3_000_000, n, replace=False)).astype(np.int64)
    unit_index = rng.permutation(np.repeat(np.arange(num_units), per_unit)).astype(np.int32)
    return Sorting.from_arrays(sample_index, unit_index, FS, unit_ids=[10, 20, 30, 40, 50],
                               num_samples=3_000_000)


@pytest.fixture
def bound():
    session = Session(make_sorting(), channel_ids=np.arange(4), cache_dir=None)
    curation = Curation(session.sorting)
    return session, curation, Selection.for_session(session, curation=curation)


def events_of(selection):
    seen = []
    selection.param.watch(lambda *events: seen.append({e.name for e in events}),
                          ["unit_ids", "spike_indices", "time_window_s", "channel_ids"])
    return seen


def test_ids_are_checked_against_the_current_curated_sorting(bound):
    _, curation, selection = bound
    merged = curation.merge([10, 20])
    selection.unit_ids = [merged, 30]
    with pytest.raises(InputError, match="no unit"):
        selection.unit_ids = [10]
    assert selection.unit_ids == [merged, 30] and selection.sorting is curation.sorting
    spikes = curation.sorting.spike_indices(merged)
    selection.spike_indices = spikes
    with pytest.raises(InputError):
        selection.spike_indices = [curation.sorting.num_spikes]


def test_merge_drops_gone_ids_and_keeps_the_rest_in_one_event(bound):
    _, curation, selection = bound
    selection.param.update(unit_ids=[30, 10, 50], time_window_s=(1.0, 2.0), channel_ids=[1, 2],
                           spike_indices=[0, 5, 9])
    seen = events_of(selection)
    merged = curation.merge([10, 20])
    assert selection.unit_ids == [30, 50]
    assert selection.spike_indices.tolist() == [0, 5, 9]  # same spike vector: still valid
    assert selection.time_window_s == (1.0, 2.0) and selection.channel_ids == [1, 2]
    assert seen == [{"unit_ids"}]
    selection.unit_ids = [merged]
    curation.label([merged], "good")  # labels only: nothing changes
    assert selection.unit_ids == [merged] and seen == [{"unit_ids"}, {"unit_ids"}]
    curation.undo()  # the label
    curation.undo()  # the merge: the merged unit is gone again
    assert selection.unit_ids == [] and selection.spike_indices.tolist() == [0, 5, 9]


def test_removal_and_its_undo_clear_the_spikes(bound):
    _, curation, selection = bound
    selection.param.update(unit_ids=[30, 40], spike_indices=[1, 2, 3])
    seen = events_of(selection)
    curation.remove([40])
    assert selection.unit_ids == [30] and selection.spike_indices is None
    assert seen == [{"unit_ids", "spike_indices"}]  # one event for both
    selection.spike_indices = [4]
    curation.undo()
    assert selection.spike_indices is None and selection.unit_ids == [30]


def test_split_keeps_valid_spikes_and_drops_the_split_unit(bound):
    _, curation, selection = bound
    train = curation.sorting.spike_indices(30)
    selection.param.update(unit_ids=[30, 10], spike_indices=train[:5])
    a, _ = curation.split(30, selection.spike_indices)
    assert selection.unit_ids == [10]
    np.testing.assert_array_equal(selection.spike_indices, train[:5])
    assert (curation.sorting.unit_index[selection.spike_indices]
            == curation.sorting.unit_index_of(a)).all()


def test_plain_selection_is_unchanged():
    sorting = make_sorting()
    selection = Selection(sorting, unit_ids=[20])
    assert selection.sorting is sorting and selection.curation is None
    with pytest.raises(InputError):
        Selection(sorting, unit_ids=[21])
    assert Selection(unit_ids=[np.int64(2)]).unit_ids == [2]


def test_dispose_and_garbage_selections_stop_following(bound):
    session, curation, selection = bound
    selection.unit_ids = [10]
    selection.dispose()
    curation.merge([10, 20])
    assert selection.unit_ids == [10]  # no longer follows
    before = len(curation.param.watchers.get("sorting", {}).get("value", []))
    extra = Selection.for_session(session, curation=curation)
    assert len(curation.param.watchers["sorting"]["value"]) == before + 1
    del extra
    gc.collect()
    curation.label([30], "good")  # the dead selection's watcher removes itself
    assert len(curation.param.watchers["sorting"]["value"]) == before


def test_session_curation_selection_and_curated_are_shared(tmp_path):
    session = Session(make_sorting(), cache_dir=tmp_path / "cache")
    assert session.curation is session.curation
    assert session.curation.log_path == tmp_path / "cache" / "curation.json"
    assert session.selection is session.selection
    assert session.selection.curation is session.curation
    assert isinstance(session.curated, CuratedAnalysis)
    assert session.curated is session.curated and session.curated.curation is session.curation
    merged = session.curation.merge([10, 20])
    assert merged in session.curated.unit_frame().index
    session.selection.unit_ids = [merged]
    assert Session(make_sorting(), cache_dir=None).curation.log_path is None


def test_log_beside_the_source_is_resumed_and_survives_a_crash(tmp_path, monkeypatch):
    source = tmp_path / "phy"
    source.mkdir()
    first = Session(make_sorting(), source=str(source))
    log_path = first.curation.log_path
    assert log_path == source / ".spikeviz" / "curation.json" and log_path.exists()
    merged = first.curation.merge([10, 20])
    first.curation.label([30], "good")

    def crash(self, data):  # the process dies halfway through writing the next log
        pathlib.Path(self).write_text("")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pathlib.Path, "write_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        first.curation.remove([40])
    monkeypatch.undo()
    json.loads(log_path.read_text())  # the log on disk is whole
    first.curation.close()  # one writer per log: the first session lets go of it
    again = Session(make_sorting(), source=str(source))
    assert again.curation.sorting.unit_ids.tolist() == [30, 40, 50, merged]
    assert again.curation.sorting.labels[30] == "good"
    assert again.selection.sorting is again.curation.sorting


def test_orphan_log_is_moved_aside(tmp_path):
    cache = tmp_path / "cache"
    Session(make_sorting(seed=1), cache_dir=cache).curation.merge([10, 20])
    with pytest.warns(UserWarning, match="moved to"):
        curation = Session(make_sorting(seed=2), cache_dir=cache).curation
    assert curation.sorting.num_units == 5 and not curation.can_undo
    assert len(list(cache.glob("curation.json.orphan-*"))) == 1


def test_unwritable_cache_dir_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    monkeypatch.setenv("SPIKEVIZ_CACHE_DIR", str(tmp_path / "user"))
    monkeypatch.setattr(session_module, "_writable", lambda folder: False)  # as for non-root
    session = Session(make_sorting(), cache_dir=locked / "cache")
    path = session.curation.log_path
    assert path.is_relative_to(tmp_path / "user") and path.exists() and not locked.exists()
    session.curation.merge([10, 20])
    session.curation.close()
    again = Session(make_sorting(), cache_dir=locked / "cache")
    assert again.curation.log_path == path and again.curation.can_undo  # found again


def test_folder_that_cannot_be_created_keeps_the_curation_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SPIKEVIZ_CACHE_DIR", str(blocker / "user"))
    with pytest.warns(UserWarning, match="memory only"):
        curation = Session(make_sorting(), cache_dir=blocker / "cache").curation
    assert curation.log_path is None
    curation.merge([10, 20])
