import h5py
import numpy as np
import pytest

import spikeviz as sv
from spikeviz.errors import InputError


class RecordingBackend:
    """Wraps an array and records every index it is asked for."""

    def __init__(self, array):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.requests = []

    def __getitem__(self, key):
        self.requests.append(key)
        return self.array[key]


@pytest.fixture
def raw(rng):
    return rng.integers(-1000, 1000, size=(1000, 6)).astype(np.int16)


def test_traces_window_channels_and_scaling(raw):
    gains = np.array([0.5, 1, 2, 3, 4, 5.0])
    rec = sv.Recording.from_array(raw, 1000.0, gains_to_uv=gains, offsets_to_uv=1.0)
    out = rec.traces(100, 110, channel_ids=[4, 1])
    expected = raw[100:110][:, [4, 1]].astype(np.float32) * gains[[4, 1]].astype(np.float32) + 1
    np.testing.assert_allclose(out, expected)
    assert out.dtype == np.float32 and out.shape == (10, 2)
    np.testing.assert_array_equal(rec.traces(5, 7, scaled=False), raw[5:7])
    assert rec.num_samples == 1000 and rec.num_channels == 6 and rec.duration_s == 1.0


def test_reads_only_the_requested_window(raw):
    backend = RecordingBackend(raw)
    rec = sv.Recording(backend, 1000.0)
    rec.traces(200, 300, channel_ids=[0, 2, 4])
    rec.traces(10, 20, channel_ids=[5, 0])
    rows = [key[0] for key in backend.requests]
    assert rows == [slice(200, 300), slice(10, 20)]


def test_h5py_backend_with_unordered_channels(tmp_path, raw):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["traces"] = raw
    with h5py.File(tmp_path / "r.h5", "r") as f:
        rec = sv.Recording(f["traces"], 1000.0, channel_ids=np.array(list("abcdef")))
        np.testing.assert_array_equal(rec.traces(3, 9, ["f", "a", "c"], scaled=False),
                                      raw[3:9][:, [5, 0, 2]])


def test_window_outside_recording_is_an_error(raw):
    rec = sv.Recording.from_array(raw, 1000.0)
    for start, end in [(-1, 5), (10, 5), (0, 1001)]:
        with pytest.raises(InputError, match="outside"):
            rec.traces(start, end)
    with pytest.raises(KeyError, match="no channel"):
        rec.traces(0, 5, channel_ids=[17])


def test_geometry_and_gains_validated(raw):
    with pytest.raises(InputError, match=r"\(6, 2\)"):
        sv.Recording.from_array(raw, 1000.0, channel_locations=np.zeros((5, 2)))
    with pytest.raises(InputError, match="one value per channel"):
        sv.Recording.from_array(raw, 1000.0, gains_to_uv=[1, 2])
    with pytest.raises(InputError, match="2-D"):
        sv.Recording.from_array(raw[:, 0], 1000.0)
    with pytest.raises(InputError, match="sampling_frequency"):
        sv.Recording.from_array(raw, 0)


def test_session_checks_rate_and_length(raw):
    rec = sv.Recording.from_array(raw, 1000.0)
    ok = sv.Session(sv.Sorting.from_arrays([1, 999], [0, 0], 1000.0), rec)
    assert ok.sorting.num_samples == 1000 and ok.num_channels == 6
    assert ok.info()["has_recording"] is True
    with pytest.raises(InputError, match="differs"):
        sv.Session(sv.Sorting.from_arrays([1], [0], 2000.0), rec)
    with pytest.raises(InputError, match="only 1000 samples"):
        sv.Session(sv.Sorting.from_arrays([1, 1000], [0, 0], 1000.0), rec)
