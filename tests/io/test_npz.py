import numpy as np
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from spikeviz.io.npz import write_sorting
from tests.conftest import random_spikes


@pytest.mark.parametrize("ids", [np.array([3, 8, 20, 21]), np.array(["a", "bb", "c", "d"])])
def test_roundtrip_with_spikeinterface_both_ways(tmp_path, rng, ids):
    si = pytest.importorskip("spikeinterface.core")
    times, units = random_spikes(rng, 4000, 4)
    ours = sv.Sorting.from_arrays(times, units, 25000.0, unit_ids=ids)
    path = write_sorting(ours, tmp_path / "s.npz")
    theirs = si.read_npz_sorting(path)
    assert list(theirs.get_unit_ids()) == list(ids)
    for u in ids:
        np.testing.assert_array_equal(theirs.get_unit_spike_train(u), ours.spike_train(u))
    # and SpikeInterface's writer read by us
    si.NpzSortingExtractor.write_sorting(theirs, tmp_path / "si.npz")
    back = sv.load(tmp_path / "si.npz")
    assert back.format == "npz" and back.sorting.sampling_frequency == 25000.0
    for u in ids:
        np.testing.assert_array_equal(back.sorting.spike_train(u), ours.spike_train(u))


def test_write_is_atomic_and_refuses_overwrite(tmp_path):
    s = sv.Sorting.from_arrays([1, 2], [0, 1], 100.0)
    path = write_sorting(s, tmp_path / "a.npz")
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"already exists"):
        write_sorting(sv.Sorting.from_arrays([5], [0], 100.0), path)
    assert path.read_bytes() == before
    write_sorting(sv.Sorting.from_arrays([5], [0], 100.0), path, overwrite=True)
    assert sv.load(path).sorting.num_spikes == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]  # no temporary left behind


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, unit_ids=np.array([object()], dtype=object), num_segment=np.array([1]),
             sampling_frequency=np.array([1.0]), spike_indexes_seg0=np.array([1]),
             spike_labels_seg0=np.array([0]))
    with pytest.raises(InputError, match=r"evil.npz.*object arrays"):
        sv.load(path)


def test_missing_key_and_bad_archive(tmp_path):
    np.savez(tmp_path / "m.npz", unit_ids=np.array([1]))
    with pytest.raises(InputError, match=r"m.npz.*num_segment"):
        sv.load(tmp_path / "m.npz")
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputError, match=r"z.npz.*not a readable"):
        sv.load(tmp_path / "z.npz")
    (tmp_path / "t.npz").write_text("not a sorting")  # numpy would speak of pickles
    with pytest.raises(InputError, match=r"t.npz.*not a readable .npz.*numpy.savez") as err:
        sv.load(tmp_path / "t.npz")
    assert "pickle" not in str(err.value)


def test_labels_not_in_unit_ids(tmp_path):
    np.savez(tmp_path / "u.npz", unit_ids=np.array([1, 2]), num_segment=np.array([1]),
             sampling_frequency=np.array([30000.0]), spike_indexes_seg0=np.array([1, 2]),
             spike_labels_seg0=np.array([1, 9]))
    with pytest.raises(InputError, match=r"u.npz.*\[9\] not listed"):
        sv.load(tmp_path / "u.npz")


def test_same_sorting_gives_same_bytes(tmp_path):
    s = sv.Sorting.from_arrays([1, 2, 9], [0, 1, 0], 100.0)
    a = write_sorting(s, tmp_path / "a.npz").read_bytes()
    import time

    time.sleep(2.1)  # zip timestamps have 2 s resolution
    b = write_sorting(s, tmp_path / "b.npz").read_bytes()
    assert a == b
