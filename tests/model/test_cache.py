"""The disk cache and the lazy Analysis: keys, trust, invalidation, atomicity."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from spikeviz.model import cache as cache_mod
from spikeviz.model.analysis import STEPS, Step, register
from spikeviz.model.cache import DiskCache, cache_folder_for, hash_arrays


# -- hashing --------------------------------------------------------------------------------
def test_hash_arrays_sees_content_dtype_and_shape():
    a = np.arange(10, dtype=np.int64)
    assert hash_arrays(a) == hash_arrays(a.copy())
    assert hash_arrays(a) != hash_arrays(a.astype(np.int32))
    assert hash_arrays(a) != hash_arrays(a.reshape(2, 5))
    b = a.copy()
    b[7] += 1
    assert hash_arrays(a) != hash_arrays(b)


def test_hash_of_large_arrays_in_blocks_equals_itself_and_sees_last_byte(monkeypatch):
    monkeypatch.setattr(cache_mod, "_HASH_BLOCK", 1000)  # force the threaded block path
    a = np.random.default_rng(0).integers(0, 100, 10_000).astype(np.int64)
    h = hash_arrays(a)
    assert h == hash_arrays(a.copy())
    a[-1] += 1
    assert hash_arrays(a) != h


def test_spikes_hash_depends_on_spikes_not_on_table():
    s = sv.Sorting.from_arrays([10, 20, 30], [0, 1, 0], 30000.0)
    same = sv.Sorting.from_arrays([10, 20, 30], [0, 1, 0], 30000.0)
    moved = sv.Sorting.from_arrays([10, 20, 31], [0, 1, 0], 30000.0)
    relabelled = sv.Sorting.from_arrays([10, 20, 30], [0, 1, 0], 30000.0, unit_ids=[5, 6])
    other_rate = sv.Sorting.from_arrays([10, 20, 30], [0, 1, 0], 20000.0)
    assert s.spikes_hash() == same.spikes_hash() == s.with_num_samples(100).spikes_hash()
    assert len({s.spikes_hash(), moved.spikes_hash(), relabelled.spikes_hash(),
                other_rate.spikes_hash()}) == 4


def test_recording_fingerprint_follows_file_and_scaling(tmp_path):
    path = tmp_path / "r.dat"
    np.arange(40, dtype=np.int16).tofile(path)
    mm = np.memmap(path, dtype=np.int16, mode="r").reshape(-1, 4)
    a = sv.Recording(mm, 30000.0)
    assert a.fingerprint() == sv.Recording(mm, 30000.0).fingerprint()
    assert a.fingerprint() != sv.Recording(mm, 30000.0, gains_to_uv=0.195).fingerprint()
    assert a.fingerprint() != sv.Recording(mm, 25000.0).fingerprint()
    before = a.fingerprint()
    np.arange(1, 41, dtype=np.int16).tofile(path)  # rewritten in place
    os.utime(path, ns=(1, 1))
    assert sv.Recording(np.memmap(path, dtype=np.int16, mode="r").reshape(-1, 4),
                        30000.0).fingerprint() != before
    in_memory = sv.Recording.from_array(np.zeros((5, 2), np.float32), 1000.0)
    changed = sv.Recording.from_array(np.ones((5, 2), np.float32), 1000.0)
    assert in_memory.fingerprint() != changed.fingerprint()


# -- DiskCache ------------------------------------------------------------------------------
def test_store_and_load_round_trip_as_readonly_memmaps(tmp_path):
    cache = DiskCache(tmp_path / "c")
    data = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array([1, 2])}
    assert cache.store("thing", "k" * 64, data, {"nbefore": 3}, {"why": "test"})
    arrays, attrs = cache.load("thing", "k" * 64)
    np.testing.assert_array_equal(arrays["x"], data["x"])
    assert arrays["x"].dtype == np.float32 and attrs == {"nbefore": 3}
    assert isinstance(arrays["x"], np.memmap) and not arrays["x"].flags.writeable
    assert cache.writes == ["thing"] and cache.hits == ["thing"]
    # no temporary folders are left behind
    assert [p.name for p in (tmp_path / "c").iterdir()] == [f"thing-{'k' * 16}"]


def test_an_entry_is_not_trusted_when_the_key_or_the_arrays_do_not_match(tmp_path):
    cache = DiskCache(tmp_path)
    key = "a" * 64
    cache.store("t", key, {"x": np.arange(5)}, {}, {})
    entry = tmp_path / f"t-{'a' * 16}"
    assert cache.load("t", "a" * 16 + "b" * 48) is None  # same folder name, other key
    meta = json.loads((entry / "meta.json").read_text())
    meta["arrays"]["x"]["shape"] = [6]
    (entry / "meta.json").write_text(json.dumps(meta))
    assert cache.load("t", key) is None  # array differs from what was recorded
    cache.store("t", key, {"x": np.arange(5)}, {}, {})
    (entry / "x.npy").write_bytes((entry / "x.npy").read_bytes()[:-8])  # truncated
    assert cache.load("t", key) is None
    (entry / "meta.json").write_text("{not json")
    assert cache.load("t", key) is None
    assert cache.hits == []


def test_object_arrays_are_refused_and_nothing_is_left(tmp_path):
    cache = DiskCache(tmp_path)
    with pytest.raises(TypeError):
        cache.store("t", "c" * 64, {"x": np.array([object()])}, {}, {})
    assert list(tmp_path.iterdir()) == []


def test_memory_only_cache_never_hits():
    cache = DiskCache(None)
    assert not cache.store("t", "d" * 64, {"x": np.arange(2)}, {}, {})
    assert cache.load("t", "d" * 64) is None


def test_cache_folder_beside_the_source_or_in_the_user_cache(tmp_path, monkeypatch):
    folder = tmp_path / "phy"
    folder.mkdir()
    file = tmp_path / "s.npz"
    file.write_bytes(b"")
    assert cache_folder_for(folder) == folder.resolve() / ".spikeviz"
    assert cache_folder_for(file) == tmp_path.resolve() / ".spikeviz" / "s.npz"
    assert cache_folder_for("") is None and cache_folder_for(tmp_path / "missing") is None
    monkeypatch.setenv("SPIKEVIZ_CACHE_DIR", str(tmp_path / "user"))
    monkeypatch.setattr(cache_mod, "_writable", lambda path: False)  # a read-only source
    other = cache_folder_for(folder)
    assert other.parent == tmp_path / "user" and other.name.startswith("phy-")
    assert other != cache_folder_for(file)


# -- Analysis mechanics with a toy step ------------------------------------------------------
CALLS = []


def _run_toy(ctx, params, deps):
    CALLS.append(params)
    s = ctx.session.sorting
    counts = np.bincount(s.unit_index, minlength=s.num_units) * params["scale"]
    return {"counts": counts}, {"scale": params["scale"]}


def _run_toy_total(ctx, params, deps):
    CALLS.append(("total", params))
    return {"total": np.array([deps["toy"][0]["counts"].sum()])}, {}


@pytest.fixture
def toy_steps():
    register(Step("toy", 1, {"scale": 1}, _run_toy))
    register(Step("toy_total", 1, {"scale": 1}, _run_toy_total,
                  depends=lambda ctx, p: {"toy": {"scale": p["scale"]}},
                  wrap=lambda ctx, a, at, p: int(a["total"][0])))
    CALLS.clear()
    yield
    STEPS.pop("toy")
    STEPS.pop("toy_total")


def _session(tmp_path, times=(10, 20, 30, 40)):
    sorting = sv.Sorting.from_arrays(list(times), [0, 1, 1, 1][:len(times)], 30000.0)
    return sv.Session(sorting, cache_dir=tmp_path / "cache")


def test_second_session_on_the_same_data_computes_nothing(tmp_path, toy_steps):
    first = _session(tmp_path)
    assert first.compute("toy_total") == 4
    assert first.analysis.computed == ["toy", "toy_total"]
    assert first.compute("toy_total") == 4 and len(CALLS) == 2  # memory hit
    second = _session(tmp_path)
    assert second.compute("toy_total") == 4
    assert second.analysis.computed == [] and len(CALLS) == 2
    assert second.analysis.cache.hits == ["toy_total"]  # dependencies not even opened
    assert second.analysis.is_available("toy", scale=1)


def test_changing_a_parameter_or_the_spikes_recomputes(tmp_path, toy_steps):
    _session(tmp_path).compute("toy_total")
    again = _session(tmp_path)
    assert again.compute("toy_total", scale=3) == 12
    assert again.analysis.computed == ["toy", "toy_total"]
    moved = _session(tmp_path, times=(10, 20, 30, 41))
    assert not moved.analysis.is_available("toy_total")
    moved.compute("toy_total")
    assert moved.analysis.computed == ["toy", "toy_total"]


def test_a_bumped_step_version_recomputes(tmp_path, toy_steps):
    _session(tmp_path).compute("toy")
    STEPS["toy"] = Step("toy", 2, {"scale": 1}, _run_toy)
    again = _session(tmp_path)
    again.compute("toy")
    assert again.analysis.computed == ["toy"]


def test_unknown_results_and_parameters_are_clear_errors(tmp_path, toy_steps):
    s = _session(tmp_path)
    with pytest.raises(InputError, match="unknown result 'nope'"):
        s.compute("nope")
    with pytest.raises(InputError, match="toy takes no parameter bogus; it takes scale"):
        s.compute("toy", bogus=1)


def test_sessions_without_a_source_keep_results_in_memory_only(toy_steps):
    sorting = sv.Sorting.from_arrays([1, 2], [0, 0], 1000.0)
    s = sv.Session(sorting)
    assert s.analysis.cache.folder is None
    assert s.compute("toy_total") == 2


def test_steps_that_need_traces_say_so(tmp_path):
    s = _session(tmp_path)
    with pytest.raises(InputError, match="needs the raw recording"):
        s.compute("templates")


def test_cache_entries_live_beside_a_folder_source(tmp_path, toy_steps):
    folder = tmp_path / "src"
    folder.mkdir()
    sorting = sv.Sorting.from_arrays([1, 2], [0, 0], 1000.0)
    s = sv.Session(sorting, source=str(folder))
    s.compute("toy")
    entries = list((folder / ".spikeviz").iterdir())
    assert [Path(e).name.split("-")[0] for e in entries] == ["toy"]


# -- regressions from review -----------------------------------------------------------------
def test_a_session_changed_during_a_computation_cannot_poison_the_cache(tmp_path, toy_steps):
    session = _session(tmp_path)
    other = session.sorting.select_units([0])

    def run(ctx, params, deps):  # the user curates while the result is being computed
        session.sorting = other
        return _run_toy(ctx, params, deps)

    STEPS["toy"] = Step("toy", 1, {"scale": 1}, run)
    counts = session.compute("toy")["counts"]
    np.testing.assert_array_equal(counts, [1, 3])  # the sorting the request started with
    fresh = _session(tmp_path)
    np.testing.assert_array_equal(fresh.compute("toy")["counts"], [1, 3])
    assert fresh.analysis.computed == []


def test_results_are_read_only_and_tables_are_copies(tmp_path, toy_steps):
    session = _session(tmp_path)
    counts = session.compute("toy")["counts"]
    with pytest.raises(ValueError):
        counts *= 2
    memory_only = sv.Session(sv.Sorting.from_arrays([1, 2], [0, 0], 1000.0))
    with pytest.raises(ValueError):
        memory_only.compute("toy")["counts"][0] = 7
    frame = memory_only.compute("firing_rates")  # tuple of arrays
    assert not frame[0].flags.writeable


def test_damaged_entries_are_misses_not_crashes(tmp_path):
    cache = DiskCache(tmp_path)
    key = "e" * 64
    cache.store("t", key, {"x": np.arange(3)}, {}, {})
    entry = tmp_path / f"t-{'e' * 16}"
    (entry / "x.npy").write_bytes(b"")
    assert cache.load("t", key) is None
    cache.store("t", key, {"x": np.arange(3)}, {}, {})
    meta = json.loads((entry / "meta.json").read_text())
    meta["arrays"] = ["x"]
    (entry / "meta.json").write_text(json.dumps(meta))
    assert cache.load("t", key) is None


def test_integer_and_float_parameters_name_one_result(tmp_path):
    s = _session(tmp_path)
    a = s.compute("correlograms", window_ms=20, bin_ms=1)
    b = s.compute("correlograms", window_ms=20.0, bin_ms=1.0)
    assert a[0] is b[0] and s.analysis.computed == ["correlograms"]


def test_looking_at_the_cache_does_not_count_as_a_hit(tmp_path, toy_steps):
    _session(tmp_path).compute("toy_total")
    again = _session(tmp_path)
    assert again.analysis.plan(["toy_total"]) == []
    assert again.analysis.is_available("toy_total")
    assert again.analysis.cache.hits == []


def test_an_empty_sorting_without_a_recording_precomputes(tmp_path):
    empty = sv.Session(sv.Sorting.from_arrays([], [], 30000.0, unit_ids=[5, 6]))
    empty.precompute()
    metrics = sv.compute.quality_metrics(empty)
    assert list(metrics.index) == [5, 6] and (metrics["num_spikes"] == 0).all()
    assert metrics["firing_rate"].isna().all()
