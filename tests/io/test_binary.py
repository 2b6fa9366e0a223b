import json

import numpy as np
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from tests.conftest import shared_path


def test_locust_tetrode_matches_spikeinterface():
    folder = shared_path("tdc_locust")
    info = json.loads((folder / "info.json").read_text())
    path = folder / "locust_trial_01.raw"
    rec = sv.read_recording(path, sampling_frequency=info["sample_rate"], num_channels=4,
                            dtype=info["dtype"])
    assert rec.num_samples == 431_548 and rec.num_channels == 4
    assert rec.duration_s == pytest.approx(431_548 / 15000.0)
    se = pytest.importorskip("spikeinterface.extractors")
    theirs = se.read_binary(path, sampling_frequency=15000.0, num_channels=4, dtype="int16")
    np.testing.assert_array_equal(rec.traces(1000, 5000, scaled=False),
                                  theirs.get_traces(start_frame=1000, end_frame=5000))
    session = sv.load(path, sampling_frequency=15000.0, num_channels=4)
    assert session.format == "binary" and session.sorting.num_units == 0
    assert session.info()["duration_s"] == pytest.approx(rec.duration_s)
    assert session.info()["has_recording"] is True


def test_header_offset_and_dtype(tmp_path, rng):
    data = rng.normal(size=(500, 3)).astype(np.float32)
    path = tmp_path / "x.bin"
    path.write_bytes(b"H" * 64 + data.tobytes())
    rec = sv.read_recording(path, format="binary", sampling_frequency=1000, num_channels=3,
                            dtype="float32", offset=64, gain_to_uv=2.0)
    np.testing.assert_array_equal(rec.traces(10, 20, scaled=False), data[10:20])
    np.testing.assert_allclose(rec.traces(10, 20, [2]), data[10:20, [2]] * 2)


def test_memory_is_not_loaded(tmp_path):
    path = tmp_path / "big.dat"
    with open(path, "wb") as f:
        f.truncate(384 * 2 * 3_000_000)  # 2.3 GB sparse file
    rec = sv.read_recording(path, sampling_frequency=30000, num_channels=384)
    assert rec.num_samples == 3_000_000
    assert rec.traces(2_999_000, 3_000_000).shape == (1000, 384)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_channels=3), "sampling_frequency"),
    (dict(sampling_frequency=1000), "num_channels"),
    (dict(sampling_frequency=1000, num_channels=7), "whole number of samples"),
    (dict(sampling_frequency=1000, num_channels=3, dtype="int17"), "dtype"),
    (dict(sampling_frequency=1000, num_channels=3, offset=10**9), "offset"),
])
def test_bad_layouts(tmp_path, kwargs, match):
    path = tmp_path / "r.dat"
    np.zeros((100, 3), np.int16).tofile(path)
    with pytest.raises(InputError, match=match) as err:
        sv.read_recording(path, format="binary", **kwargs)
    assert "r.dat" in str(err.value)
