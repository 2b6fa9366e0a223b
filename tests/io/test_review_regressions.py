"""Bad or unusual input found in review: each gives a clear error or the right numbers."""

import shutil

import numpy as np
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from spikeviz.io.npz import write_sorting
from tests.conftest import shared_path
from tests.io.phy_folders import write_folder


def set_param(folder, line):
    with open(folder / "params.py", "a") as f:
        f.write(line + "\n")


@pytest.mark.parametrize("dtype", ["object", "U2", "V2", "bool", "complex64"])
def test_data_controlled_dtype_is_refused(tmp_path, rng, dtype):
    folder, _, _ = write_folder(tmp_path / "ks", rng, dat=True)
    set_param(folder, f"dtype = {dtype!r}")
    with pytest.raises(InputError, match=r"raw.dat.*integers or floats"):
        sv.load(folder)


@pytest.mark.parametrize("line, field", [
    ("n_channels_dat = 'x'", "n_channels_dat"),
    ("gain_to_uv = 'abc'", "gain_to_uv"),
    ("gain_to_uv = -1", "gain_to_uv"),
    ("sample_rate = 0", "sample_rate"),
    ("sample_rate = True", "sample_rate"),
    ("offset = -4", "offset"),
])
def test_bad_params_values_name_params_py(tmp_path, rng, line, field):
    folder, _, _ = write_folder(tmp_path / "ks", rng, dat=True)
    set_param(folder, line)
    with pytest.raises(InputError) as err:
        sv.load(folder)
    assert "params.py" in str(err.value) and err.value.field == field


def test_recording_path_gets_the_raw_layout_and_rate(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng, dat=True)
    raw = tmp_path / "other.dat"
    shutil.copy(folder / "raw.dat", raw)
    session = sv.load(folder, recording=raw, num_channels=8, gain_to_uv=0.5)
    assert session.recording.source == str(raw)
    assert session.recording.sampling_frequency == 30000.0 and session.recording.gain_known
    # the Phy geometry is kept for the new recording
    np.testing.assert_array_equal(session.channel_locations_um,
                                  np.load(folder / "channel_positions.npy"))
    np.testing.assert_array_equal(session.recording.channel_locations_um,
                                  np.load(folder / "channel_positions.npy"))


def test_recording_with_too_few_channels_is_refused(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng)
    raw = tmp_path / "four.dat"
    np.zeros((700_000, 4), np.int16).tofile(raw)
    with pytest.raises(InputError, match=r"channel_map.npy.*does not belong"):
        sv.load(folder, recording=raw, num_channels=4)


def test_session_does_not_change_the_callers_sorting():
    sorting = sv.Sorting.from_arrays([1, 50], [0, 0], 100.0)
    short = sv.Session(sorting, sv.Recording.from_array(np.zeros((100, 1)), 100.0))
    long = sv.Session(sorting, sv.Recording.from_array(np.zeros((1000, 1)), 100.0))
    assert sorting.num_samples is None
    assert short.sorting.duration_s == 1.0 and long.sorting.duration_s == 10.0
    assert short.info()["duration_s"] == 1.0 and long.info()["duration_s"] == 10.0
    with pytest.raises(TypeError):
        sorting.num_samples = 5  # constant: derive with with_num_samples
    with pytest.raises(TypeError):
        sorting.unit_table = sorting.unit_table.iloc[::-1]
    with pytest.raises(InputError, match="indexed by unit_id"):
        sv.Sorting.from_arrays([1, 2], [0, 1], 10.0).with_unit_table(
            sorting.unit_table.iloc[::-1])


def test_spikeglx_subset_channel_ids_map_through_channel_map(tmp_path, rng):
    meta_src = shared_path("spikeglx_meta", "NP2_2013_subset_channels.imec0.ap.meta")
    folder, _, _ = write_folder(tmp_path / "ks", rng, num_channels=8)
    meta = sv.io.spikeglx.read_meta(meta_src)
    n = int(meta["nSavedChans"])
    samples = 700_000
    text = meta_src.read_text()
    old = next(line for line in text.splitlines() if line.startswith("fileSizeBytes="))
    (folder / "rec.ap.meta").write_text(text.replace(old, f"fileSizeBytes={samples * n * 2}"))
    np.zeros((samples, n), np.int16).tofile(folder / "rec.ap.bin")
    set_param(folder, "dat_path = 'rec.ap.bin'")
    np.save(folder / "channel_map.npy", np.arange(34, 42, dtype=np.int32))  # columns 34..41
    session = sv.load(folder)
    ids = session.recording.channel_ids
    np.testing.assert_array_equal(session.channel_ids, ids[34:42])
    assert session.channel_ids.tolist() != list(range(34, 42))  # the subset skips channels


def test_npz_edge_cases(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.npz"):
        sv.load(tmp_path / "empty.npz")
    np.savez(tmp_path / "noseg.npz", unit_ids=np.array([1]), num_segment=np.array([]),
             sampling_frequency=np.array([1.0]))
    with pytest.raises(InputError, match=r"noseg.npz.*num_segment"):
        sv.load(tmp_path / "noseg.npz")
    np.savez(tmp_path / "two.npz", unit_ids=np.array([1]), num_segment=np.array([2]),
             sampling_frequency=np.array([100.0]), spike_indexes_seg0=np.array([1]),
             spike_labels_seg0=np.array([1]), spike_indexes_seg1=np.array([1, 2]),
             spike_labels_seg1=np.array([1, 1]))
    with pytest.warns(UserWarning, match="2 segments"):
        assert sv.load(tmp_path / "two.npz").sorting.num_spikes == 1
    assert sv.io.npz.read_sorting(tmp_path / "two.npz", segment_index=1).num_spikes == 2
    path = write_sorting(sv.Sorting.from_arrays([1], [0], 10.0, unit_ids=[5]), tmp_path / "w.npz")
    with pytest.raises(InputError) as err:
        sv.load(path, sampling_frequency=20.0)
    assert str(err.value).count("field") == 1


def test_empty_lists_and_strict_ids():
    s = sv.Sorting.from_arrays([], [], 30000.0)
    assert s.num_spikes == 0 and s.num_units == 0
    s = sv.Sorting.from_unit_ids([1, 2, 3], [2, 2, 5], 10.0)
    for bad in (2.0, True, "2"):
        with pytest.raises(KeyError):
            s.spike_train(bad)
    with pytest.raises(InputError, match="all integers or all strings"):
        sv.Sorting.from_arrays([1, 2], [0, 1], 10.0, unit_ids=[1, "a"])
    with pytest.raises(InputError, match="int64"):
        sv.Sorting.from_arrays([1], [0], 10.0, unit_ids=np.array([2**63 + 1], np.uint64))


def test_spike_train_s_window_agrees_with_the_seconds_it_returns(rng):
    fs = 30000.0
    times = np.sort(rng.choice(3_000_000, 4000, replace=False))
    s = sv.Sorting.from_arrays(times, np.zeros(times.size, np.int32), fs)
    t = times / fs
    for k in range(0, 4000, 7):
        a, b = t[k], t[min(k + 37, 3999)]
        np.testing.assert_array_equal(s.spike_train_s(0, a, b), t[(t >= a) & (t < b)])


def test_traces_window_must_be_integers():
    rec = sv.Recording.from_array(np.zeros((10, 3)), 100.0)
    with pytest.raises(InputError, match="integers"):
        rec.traces(0.5, 2)
    with pytest.raises(InputError, match="list of channel ids"):
        rec.traces(0, 2, 1)
