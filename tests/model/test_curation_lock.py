"""One writer per curation log: the lock, the generation check, sidecar cleanup, durability."""

import gc
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from spikeviz import atomic
from spikeviz.errors import InputError
from spikeviz.model.curation import Curation
from spikeviz.model.curation_log import LogLockedError
from spikeviz.model.session import Session
from spikeviz.model.sorting import Sorting

FS = 30000.0

def make_sorting():
    """The same sorting here and in the helper processes (no randomness)."""
    n = 60
    sample_index = (np.arange(n, dtype=np.int64) * 997) % 100_003
    sample_index.sort()
    unit_index = (np.arange(n) * 7 % 5).astype(np.int32)
    return Sorting.from_arrays(sample_index, unit_index, FS, unit_ids=[10, 20, 30, 40, 50])


def trains(sorting):
    return {u: sorting.spike_train(u).tolist() for u in sorting.unit_ids.tolist()}


def helper(path, body):
    """A Python process that opens the log at ``path`` and runs ``body`` (``c``: the result)."""
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from spikeviz.model.curation import Curation
        from spikeviz.model.sorting import Sorting
        FS = {FS!r}
        path = {str(path)!r}
    """) + inspect.getsource(make_sorting) + textwrap.dedent(body)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.Popen([sys.executable, "-c", code], cwd=repo, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


HOLD = """
    c = Curation(make_sorting(), log_path=path)
    c.merge([10, 20])
    print("holding", flush=True)
    sys.stdin.readline()
"""


def test_second_opener_in_this_process_is_refused_until_close(tmp_path):
    path = tmp_path / "curation.json"
    first = Curation(make_sorting(), log_path=path)
    first.merge([10, 20])
    with pytest.raises(LogLockedError) as error:
        Curation(make_sorting(), log_path=path)
    assert isinstance(error.value, InputError) and error.value.path == path
    text = str(error.value)
    assert str(path) in text and "already open in this process" in text
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in text
    assert "cache_dir=None" in text
    first.close()
    first.close()  # idempotent
    with pytest.raises(InputError, match="closed"):
        first.label(30, "good")
    assert first.sorting.num_units == 4  # still readable
    with Curation(make_sorting(), log_path=path) as again:
        assert again.can_undo and again.sorting.num_units == 4
    Curation(make_sorting(), log_path=path).close()  # the with block released it


def test_garbage_collection_releases_the_lock(tmp_path):
    path = tmp_path / "curation.json"
    c = Curation(make_sorting(), log_path=path)
    c.merge([10, 20])
    del c
    gc.collect()
    Curation(make_sorting(), log_path=path).merge([30, 40])  # an unreachable one, too
    with Curation(make_sorting(), log_path=path) as c:
        assert len(c.actions) == 2


def test_a_failed_open_releases_the_lock(tmp_path):
    path = tmp_path / "curation.json"
    with Curation(make_sorting(), log_path=path) as c:
        c.merge([10, 20])
    other = Sorting.from_arrays(np.arange(10, dtype=np.int64), np.zeros(10, np.int32), FS)
    with pytest.raises(InputError, match="another sorting"):
        Curation(other, log_path=path)
    Curation(make_sorting(), log_path=path).close()


def test_another_process_holding_the_log_is_named_and_kill_9_frees_it(tmp_path):
    path = tmp_path / "curation.json"
    holder = helper(path, HOLD)
    try:
        assert holder.stdout.readline().strip() == "holding", holder.stderr.read()
        with pytest.raises(LogLockedError) as error:
            Curation(make_sorting(), log_path=path)
        text = str(error.value)
        assert str(path) in text and "open in another spikeviz process" in text
        assert f"(pid {holder.pid} on host {socket.gethostname()})" in text
        assert "close it there, or open this session with cache_dir=None" in text
        assert not list(tmp_path.glob("curation.json.orphan-*"))
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs in the holder
        holder.wait(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    with Curation(make_sorting(), log_path=path) as c:  # no stale lock
        assert len(c.actions) == 1  # the holder's merge was saved
        c.label(30, "good")


def test_a_process_opening_a_log_held_here_is_refused(tmp_path):
    path = tmp_path / "curation.json"
    with Curation(make_sorting(), log_path=path) as c:
        c.merge([10, 20])
        other = helper(path, """
            from spikeviz.errors import InputError
            try:
                Curation(make_sorting(), log_path=path)
            except InputError as error:
                print(type(error).__name__, error)
        """)
        out, err = other.communicate(timeout=120)
        assert other.returncode == 0, err
        assert out.startswith("LogLockedError ")
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in out
        assert "open in another spikeviz process" in out
        c.label(30, "good")  # this curation's log is untouched by the refused opener
    with Curation(make_sorting(), log_path=path) as again:
        assert len(again.actions) == 2


def test_session_curation_surfaces_the_lock(tmp_path):
    cache = tmp_path / "cache"
    first = Session(make_sorting(), cache_dir=cache)
    first.curation.merge([10, 20])
    second = Session(make_sorting(), cache_dir=cache)
    with pytest.raises(LogLockedError, match="already open in this process"):
        second.curation  # noqa: B018
    assert not list(cache.glob("curation.json.orphan-*"))  # never moved aside
    assert Session(make_sorting(), cache_dir=None).curation.log_path is None  # the way out
    first.curation.close()
    assert second.curation.can_undo


def test_a_log_changed_behind_the_lock_is_not_overwritten(tmp_path):
    path = tmp_path / "curation.json"
    c = Curation(make_sorting(), log_path=path)
    c.merge([10, 20])
    document = json.loads(path.read_text())
    assert document["generation"] == 2  # created, then one action
    document["generation"] = 7  # another writer (bypassing the lock) saved
    document["actions"].append({"op": "label", "unit_ids": [30], "label": "noise"})
    document["position"] = 2
    path.write_text(json.dumps(document))
    before, on_disk = trains(c.sorting), path.read_text()
    for change in (lambda: c.label(30, "good"), c.undo,
                   lambda: c.split(40, c.sorting.spike_indices(40)[:2])):
        with pytest.raises(InputError) as error:
            change()
        assert error.value.path == path and error.value.field == "generation"
        assert "generation 7 on disk" in str(error.value)
        assert "not overwritten" in str(error.value)
    assert trains(c.sorting) == before and len(c.actions) == 1  # the memory state is kept
    assert c.sorting.labels[30] == "unsorted"
    assert path.read_text() == on_disk
    del document["generation"]  # an older spikeviz, which knows no lock, wrote it
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match="generation 0 on disk"):
        c.label(30, "good")
    c.close()
    with Curation(make_sorting(), log_path=path) as again:  # the other writer's log, resumed
        assert again.sorting.labels[30] == "noise"
        again.label(30, "good")
        assert json.loads(path.read_text())["generation"] == 1


def sidecars(path):
    return sorted(p.name for p in path.with_name(path.name + ".spikes").iterdir())


def referenced(path):
    document = json.loads(path.read_text())
    return sorted({g["file"] for a in document["actions"] if a["op"] == "split"
                   for g in a["groups"]})


def test_sidecars_of_overwritten_splits_are_removed_redoable_ones_stay(tmp_path):
    path = tmp_path / "curation.json"
    c = Curation(make_sorting(), log_path=path)
    c.split(10, c.sorting.spike_indices(10)[:3])
    first = sidecars(path)
    c.undo()
    assert sidecars(path) == first  # undone, still redoable
    c.split(10, c.sorting.spike_indices(10)[3:5])  # overwrites the undone split
    assert len(sidecars(path)) == 1 and sidecars(path) != first
    a, _ = c.split(20, c.sorting.spike_indices(20)[:4])
    c.split(a, c.sorting.spike_indices(a)[:2])
    c.undo()  # this split stays redoable
    assert len(sidecars(path)) == 3 and sidecars(path) == referenced(path)
    expected = trains(c.sorting)
    c.redo()
    redone = trains(c.sorting)
    c.undo()
    stray = path.with_name(path.name + ".spikes") / ("0" * 64 + ".npy")
    np.save(stray, np.arange(3))  # left by an older spikeviz
    c.undo()
    c.redo()  # any save sweeps it; the redoable split keeps its file
    assert not stray.exists() and len(sidecars(path)) == 3
    assert sidecars(path) == referenced(path)
    c.close()
    with Curation(make_sorting(), log_path=path) as again:
        assert trains(again.sorting) == expected and again.can_redo
        assert again.redo() and trains(again.sorting) == redone
        again.undo()
        again.remove(50)  # drops the redoable split: its file goes
        assert len(sidecars(path)) == 2 and sidecars(path) == referenced(path)


def test_random_actions_resume_exactly_and_leave_no_stale_sidecars(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "curation.json"
    c = Curation(make_sorting(), log_path=path)
    for _ in range(60):
        ids = c.sorting.unit_ids.tolist()
        roll = rng.random()
        try:
            if roll < 0.3:
                unit = ids[rng.integers(len(ids))]
                n = c.sorting.spike_indices(unit).size
                if n > 1:
                    c.split(unit, np.arange(n) < rng.integers(1, n))
            elif roll < 0.45 and len(ids) > 2:
                c.merge(rng.choice(ids, 2, replace=False).tolist())
            elif roll < 0.75:
                c.undo()
            elif roll < 0.85:
                c.redo()
            else:
                c.label(ids[rng.integers(len(ids))], "good")
        except InputError:
            pass
    assert sidecars(path) == referenced(path)
    expected, table = trains(c.sorting), c.sorting.unit_table.copy()
    done, undone = len(c.actions), len(c.undone_actions)
    c.close()
    with Curation(make_sorting(), log_path=path) as again:
        assert trains(again.sorting) == expected and again.sorting.unit_table.equals(table)
        assert (len(again.actions), len(again.undone_actions)) == (done, undone)
        while again.redo():
            pass


def test_each_save_is_flushed_to_disk(tmp_path, monkeypatch):
    path = tmp_path / "curation.json"
    c = Curation(make_sorting(), log_path=path)
    synced = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    c.label(10, "good")
    assert len(synced) == 2  # the new document, then its folder (after the rename)
    synced.clear()
    c.split(20, c.sorting.spike_indices(20)[:2])
    assert len(synced) == 4  # the split's file too
    c.close()


def test_without_file_locks_a_warning_and_the_generation_check_remain(tmp_path, monkeypatch):
    from spikeviz.model import curation_log
    monkeypatch.setattr(curation_log, "fcntl", None)  # as on a platform without locks
    monkeypatch.setattr(curation_log, "msvcrt", None)
    path = tmp_path / "curation.json"
    with pytest.warns(UserWarning, match="without a lock"):
        c = Curation(make_sorting(), log_path=path)
    c.merge([10, 20])
    with pytest.warns(UserWarning, match="without a lock"):
        other = Curation(make_sorting(), log_path=path)
    other.label(30, "good")
    with pytest.raises(InputError, match="changed by another writer"):
        c.label(40, "good")
    assert len(c.actions) == 1 and len(other.actions) == 2
