"""HDF5 spike files in SpikeLab's four layouts: write → read round trips for every style and
time unit, files written by hand with h5py in SpikeLab's layout, bad files, and the writer's
discipline (atomic, no overwrite, nothing left behind)."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.datasets import generate
from spikeviz.errors import InputError
from spikeviz.io import hdf5
from spikeviz.io.hdf5_write import write_hdf5

FS = 30_000.0
STYLES = ("ragged", "group", "paired")
UNITS = ("s", "ms", "samples")


# -- sessions --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated():
    return generate(duration_s=6.0, num_channels=8, num_units=6, seed=4)


@pytest.fixture(scope="module")
def string_ids(generated):
    """The generated sorter output with string ids whose natural order differs from their
    order (unit10 before unit2), a unit without spikes, labels and typed columns."""
    s = generated.sorter_output.sorting
    n = s.num_units
    ids = [f"unit{k}" for k in (10, 2, 1, 33, 4, 5, 6, 7, 8, 9)[:n]] + ["empty"]
    table = pd.DataFrame({
        "label": (["good", "mua", "noise", "unsorted"] * 4)[:n + 1],
        "depth_um": np.linspace(0.0, 200.0, n + 1),
        "channel": np.arange(n + 1, dtype=np.int64) * 3,
        "is_soma": np.arange(n + 1) % 2 == 0,
        "region": (["CA1 pyramidal", "DG"] * (n + 1))[:n + 1],
    }, index=ids)
    return sv.Sorting.from_arrays(s.sample_index, s.unit_index, s.sampling_frequency,
                                  unit_ids=ids, unit_table=table, num_samples=s.num_samples)


@pytest.fixture(scope="module")
def int_ids(generated):
    """Integer ids in an order that is not sorted (group datasets natural-sort differently)."""
    s = generated.sorter_output.sorting
    ids = np.array([12, 3, 100, 7, 20, 1, 9, 44, 5][:s.num_units])
    return sv.Sorting.from_arrays(s.sample_index, s.unit_index, s.sampling_frequency,
                                  unit_ids=ids, unit_table=s.unit_table.set_axis(ids),
                                  num_samples=s.num_samples)


def assert_same_sorting(got: sv.Sorting, want: sv.Sorting):
    np.testing.assert_array_equal(got.unit_ids, want.unit_ids)
    assert got.unit_ids.dtype.kind == want.unit_ids.dtype.kind
    assert got.sampling_frequency == want.sampling_frequency
    assert got.num_spikes == want.num_spikes
    for unit_id in want.unit_ids:
        np.testing.assert_array_equal(got.spike_train(unit_id), want.spike_train(unit_id),
                                      err_msg=f"unit {unit_id}")
    assert got.labels.to_dict() == want.labels.to_dict()


def histogram_counts(sorting: sv.Sorting, bin_ms: float, num_bins: int) -> np.ndarray:
    """Counts per (unit, bin) by np.histogram over bins [j*B, (j+1)*B), B in samples."""
    edges = np.arange(num_bins + 1) * (bin_ms * sorting.sampling_frequency / 1000.0)
    return np.array([np.histogram(sorting.spike_train(u), bins=edges)[0]
                     for u in sorting.unit_ids]).reshape(sorting.num_units, num_bins)


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("time_unit", UNITS)
@pytest.mark.parametrize("style", STYLES)
def test_roundtrip_is_exact(string_ids, tmp_path, style, time_unit):
    path = write_hdf5(string_ids, tmp_path / "s.h5", style=style, time_unit=time_unit)
    assert hdf5.sniff(path)
    session = hdf5.read_session(path)
    assert session.format == "hdf5"
    got = session.sorting
    assert_same_sorting(got, string_ids)
    assert got.spike_counts()["empty"] == 0
    assert got.num_samples == string_ids.num_samples
    table = got.unit_table
    for column in ("depth_um", "channel", "is_soma", "region"):
        assert table[column].tolist() == string_ids.unit_table[column].tolist(), column
    assert table["channel"].dtype == np.int64 and table["is_soma"].dtype == bool


@pytest.mark.parametrize("style", [*STYLES, "raster"])
def test_integer_ids_keep_their_order(int_ids, tmp_path, style):
    path = write_hdf5(int_ids, tmp_path / "i.hdf5", style=style, time_unit="ms")
    got = hdf5.read_session(path).sorting
    np.testing.assert_array_equal(got.unit_ids, int_ids.unit_ids)
    assert got.unit_ids.dtype == np.int64
    assert got.labels.to_dict() == int_ids.labels.to_dict()


@pytest.mark.parametrize("bin_ms", [1.0, 2.5, 40.0])
def test_raster_counts_are_exact(string_ids, tmp_path, bin_ms):
    path = write_hdf5(string_ids, tmp_path / "r.h5", style="raster", bin_ms=bin_ms)
    with h5py.File(path) as f:
        stored = f["raster"][()]
        assert f["raster"].attrs["bin_size_ms"] == bin_ms
        assert stored.dtype.kind == "u"
    num_bins = stored.shape[1]
    samples_per_bin = bin_ms * FS / 1000.0
    assert num_bins == int(np.ceil(string_ids.num_samples / samples_per_bin))
    want = histogram_counts(string_ids, bin_ms, num_bins)
    np.testing.assert_array_equal(stored, want)
    got = hdf5.read_session(path).sorting
    np.testing.assert_array_equal(got.unit_ids, string_ids.unit_ids)
    np.testing.assert_array_equal(histogram_counts(got, bin_ms, num_bins), want)
    assert got.labels.to_dict() == string_ids.labels.to_dict()
    assert got.num_samples == string_ids.num_samples


def test_raster_with_bins_of_a_fractional_number_of_samples(tmp_path, rng):
    fs = 24414.0625  # TDT's rate: 1 ms = 24.4140625 samples
    times = np.sort(rng.integers(0, int(fs * 3), 4000))
    sorting = sv.Sorting.from_arrays(times, rng.integers(0, 5, times.size), fs)
    path = write_hdf5(sorting, tmp_path / "r.h5", style="raster", bin_ms=1.0)
    with h5py.File(path) as f:
        stored = f["raster"][()]
    want = histogram_counts(sorting, 1.0, stored.shape[1])
    np.testing.assert_array_equal(stored, want)
    got = hdf5.read_session(path).sorting
    np.testing.assert_array_equal(histogram_counts(got, 1.0, stored.shape[1]), want)


@pytest.mark.parametrize("style", [*STYLES, "raster"])
def test_empty_sorting(tmp_path, style):
    sorting = sv.Sorting.from_arrays([], [], FS, unit_ids=np.array(["a", "b"]))
    got = hdf5.read_session(write_hdf5(sorting, tmp_path / "e.h5", style=style)).sorting
    assert got.num_spikes == 0
    np.testing.assert_array_equal(got.unit_ids, ["a", "b"])


def test_quality_metrics_are_written_as_unit_table_columns(tmp_path, int_ids):
    session = sv.Session(int_ids, cache_dir=None)
    metrics = session.compute("quality_metrics")
    path = write_hdf5(session, tmp_path / "m.h5")
    with h5py.File(path) as f:
        assert set(metrics.columns) <= set(f["unit_table"])
        np.testing.assert_allclose(f["unit_table/firing_rate"][()],
                                   metrics["firing_rate"].to_numpy())
    table = hdf5.read_session(path).sorting.unit_table
    np.testing.assert_allclose(table["firing_rate"].to_numpy(),
                               metrics["firing_rate"].to_numpy())


# -- the files, checked with plain h5py --------------------------------------------------------
def test_file_layout_dtypes_and_attributes(string_ids, tmp_path):
    counts = string_ids.spike_counts().to_numpy()
    paths = {(style, unit): write_hdf5(string_ids, tmp_path / f"{style}-{unit}.h5",
                                       style=style, time_unit=unit)
             for style in STYLES for unit in ("s", "samples")}
    for (style, unit), path in paths.items():
        with h5py.File(path) as f:
            assert f.attrs["format"] == "spikeviz.spikes" and f.attrs["format_version"] == 1
            assert f.attrs["style"] == style and f.attrs["time_unit"] == unit
            assert f.attrs["fs_Hz"] == FS and f.attrs["start_time"] == 0.0
            assert f.attrs["num_samples"] == string_ids.num_samples
            assert f.attrs["length_ms"] == pytest.approx(string_ids.num_samples / FS * 1e3)
            assert f["unit_ids"].asstr()[()].tolist() == string_ids.unit_ids.tolist()
            assert f["unit_table/label"].asstr()[()].tolist() == string_ids.labels.tolist()
            time_dtype = np.int64 if unit == "samples" else np.float64
            if style == "ragged":
                assert f["spike_times"].dtype == time_dtype
                assert f["spike_times"].compression == "gzip" and f["spike_times"].chunks
                np.testing.assert_array_equal(f["spike_times_index"][()], np.cumsum(counts))
                assert f["spike_times_index"].dtype == np.int64
                first = f["spike_times"][:counts[0]]
                want = string_ids.spike_train(string_ids.unit_ids[0])
                np.testing.assert_array_equal(first, want if unit == "samples" else want / FS)
            elif style == "group":
                assert f["units"].attrs["time_unit"] == unit
                names = [str(u) for u in string_ids.unit_ids]
                assert sorted(f["units"]) == sorted(names)
                for name, n in zip(names, counts, strict=True):
                    assert f["units"][name].shape == (n,)
                    assert f["units"][name].dtype == time_dtype
                    assert f["units"][name].attrs["unit_id"] == name
            else:
                assert f["idces"].dtype == np.int32 and f["times"].dtype == time_dtype
                np.testing.assert_array_equal(f["idces"][()], string_ids.unit_index)
                if unit == "samples":
                    np.testing.assert_array_equal(f["times"][()], string_ids.sample_index)


def test_compression_options(string_ids, tmp_path):
    for compression, expected in (("lzf", "lzf"), (None, None), (9, "gzip")):
        path = write_hdf5(string_ids, tmp_path / f"{compression}.h5", compression=compression)
        with h5py.File(path) as f:
            assert f["spike_times"].compression == expected
        assert_same_sorting(hdf5.read_session(path).sorting, string_ids)


# -- files in SpikeLab's layout, written by hand ---------------------------------------------
def _h5(path, attrs=None, **datasets):
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs or {})
        for name, data in datasets.items():
            f.create_dataset(name.replace("__", "/"), data=data)
    return path


TRAINS_S = [np.array([0.001, 0.5, 1.25]), np.array([], dtype=float), np.array([0.2, 2.0])]
SAMPLES = [np.rint(t * FS).astype(np.int64) for t in TRAINS_S]


def _check_trains(sorting, trains=SAMPLES, ids=None):
    ids = list(range(len(trains))) if ids is None else ids
    assert sorting.unit_ids.tolist() == ids
    for uid, want in zip(ids, trains, strict=True):
        np.testing.assert_array_equal(sorting.spike_train(uid), want)


def test_spikelab_ragged_cumulative_end(tmp_path):
    flat = np.concatenate(TRAINS_S)
    index = np.cumsum([t.size for t in TRAINS_S])  # SpikeLab's exporter: [3, 3, 5]
    path = _h5(tmp_path / "r.h5", {"start_time": 0.0, "length_ms": 3000.0},
               spike_times=flat, spike_times_index=index)
    assert hdf5.sniff(path)
    session = hdf5.read_session(path, sampling_frequency=FS, time_unit="s")
    _check_trains(session.sorting)
    assert session.sorting.num_samples == 3 * int(FS)
    # SpikeLab's own loader keywords work too
    sorting = hdf5.read_session(path, fs_Hz=FS, spike_times_unit="s").sorting
    _check_trains(sorting)


def test_spikelab_ragged_leading_zero(tmp_path):
    flat = np.concatenate(TRAINS_S)
    index = np.r_[0, np.cumsum([t.size for t in TRAINS_S])]
    with_ids = _h5(tmp_path / "ids.h5", {"fs_Hz": FS, "time_unit": "s"}, spike_times=flat,
                   spike_times_index=index, unit_ids=np.array([4, 5, 6]))
    _check_trains(hdf5.read_session(with_ids).sorting, ids=[4, 5, 6])
    bare = _h5(tmp_path / "bare.h5", {"sampling_frequency": FS}, spike_times=flat,
               spike_times_index=index)
    with pytest.warns(UserWarning, match="leading-zero"):
        _check_trains(hdf5.read_session(bare, time_unit="s").sorting)


def test_ragged_first_unit_empty_needs_the_unit_count(tmp_path):
    trains = [np.array([], dtype=float), np.array([0.1, 0.2])]
    path = _h5(tmp_path / "r.h5", {"fs_Hz": FS, "time_unit": "s"},
               spike_times=np.concatenate(trains), spike_times_index=np.array([0, 2]))
    sorting = hdf5.read_session(path, num_units=2).sorting
    _check_trains(sorting, [np.array([], np.int64), np.array([3000, 6000])])


def test_spikelab_nwb_like_units_group(tmp_path):
    """SpikeLab's ``export_spikedata_to_nwb`` layout (units/spike_times, _index, id)."""
    path = _h5(tmp_path / "n.h5", {"start_time": 0.0, "length_ms": 2500.0},
               units__spike_times=np.concatenate(TRAINS_S),
               units__spike_times_index=np.cumsum([t.size for t in TRAINS_S]),
               units__id=np.array([10, 11, 12]))
    _check_trains(hdf5.read_session(path, sampling_frequency=FS).sorting, ids=[10, 11, 12])


def test_spikelab_group_natural_order(tmp_path):
    names = [str(i) for i in range(12)]
    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        for i in np.random.default_rng(0).permutation(12):  # creation order is irrelevant
            f.create_dataset(f"units/{i}", data=np.array([0.001 * (i + 1)]))
    sorting = hdf5.read_session(path, sampling_frequency=FS, time_unit="s").sorting
    assert sorting.unit_ids.tolist() == list(range(12))
    assert [sorting.spike_train(i)[0] for i in range(12)] == [30 * (i + 1) for i in range(12)]
    assert sorted(names) != names  # lexicographic order would have been wrong

    path = tmp_path / "named.h5"
    with h5py.File(path, "w") as f:
        f.attrs["fs_Hz"] = FS
        for name in ("unit10", "unit2", "unit1"):
            f.create_dataset(f"units/{name}", data=np.array([int(name[4:])]))
    sorting = hdf5.read_session(path, time_unit="samples").sorting
    assert sorting.unit_ids.tolist() == ["unit1", "unit2", "unit10"]
    assert sorting.spike_train("unit10").tolist() == [10]


def test_spikelab_paired_ms(tmp_path):
    idces = np.array([2, 0, 0, 2, 0])
    times_ms = np.array([200.0, 1.0, 500.0, 2000.0, 1250.0])
    path = _h5(tmp_path / "p.h5", {"start_time": 0.0, "length_ms": 2500.0}, idces=idces,
               times=times_ms)
    with pytest.raises(InputError, match=r"p\.h5.*time_unit"):
        hdf5.read_session(path, sampling_frequency=FS)
    sorting = hdf5.read_session(path, sampling_frequency=FS, times_unit="ms").sorting
    _check_trains(sorting)  # unit 1 has no spikes but lies below the largest index
    strings = _h5(tmp_path / "ps.h5", {"fs_Hz": FS, "time_unit": "samples"},
                  idces=np.array(["b", "a", "b"], dtype="S"), times=np.array([5, 6, 7]))
    sorting = hdf5.read_session(strings).sorting
    assert sorting.unit_ids.tolist() == ["a", "b"]
    assert sorting.spike_train("b").tolist() == [5, 7]


def test_spikelab_raster(tmp_path):
    counts = np.array([[1, 0, 3, 0], [0, 2, 0, 1]])
    path = tmp_path / "r.h5"
    with h5py.File(path, "w") as f:
        f.attrs["start_time"] = 0.0
        f.create_dataset("raster", data=counts).attrs["bin_size_ms"] = 10.0
    sorting = hdf5.read_session(path, sampling_frequency=FS).sorting
    assert sorting.unit_ids.tolist() == [0, 1]
    np.testing.assert_array_equal(histogram_counts(sorting, 10.0, 4), counts)
    # SpikeData.from_raster's placement: spike k of n at start + k * width / (n + 1)
    assert sorting.spike_train(0).tolist() == [150, 600 + 75, 600 + 150, 600 + 225]
    assert sorting.spike_train(1).tolist() == [300 + 100, 300 + 200, 900 + 150]
    assert sorting.num_samples == 1200
    with pytest.raises(InputError, match="bin_ms"):
        _h5(tmp_path / "nobin.h5", raster=counts)
        hdf5.read_session(tmp_path / "nobin.h5", sampling_frequency=FS)
    sorting = hdf5.read_session(tmp_path / "nobin.h5", sampling_frequency=FS,
                                raster_bin_size_ms=10.0).sorting
    np.testing.assert_array_equal(histogram_counts(sorting, 10.0, 4), counts)


def test_start_time_is_sample_zero(tmp_path):
    path = _h5(tmp_path / "st.h5", {"start_time": -500.0, "fs_Hz": FS, "time_unit": "ms"},
               idces=np.array([0, 0]), times=np.array([-500.0, 0.0]))
    assert hdf5.read_session(path).sorting.spike_train(0).tolist() == [0, 15000]


def test_sampling_frequency_argument_completes_and_overrides(tmp_path, string_ids):
    path = write_hdf5(string_ids, tmp_path / "s.h5", time_unit="samples")
    with pytest.warns(UserWarning, match="overrides"):
        got = hdf5.read_session(path, sampling_frequency=20_000.0).sorting
    assert got.sampling_frequency == 20_000.0
    np.testing.assert_array_equal(got.sample_index, string_ids.sample_index)


# -- bad files ---------------------------------------------------------------------------------
def _ragged(tmp_path, index, flat=(0.1, 0.2, 0.3), **extra):
    return _h5(tmp_path / "bad.h5", {"fs_Hz": FS, "time_unit": "s"},
               spike_times=np.array(flat), spike_times_index=np.asarray(index), **extra)


@pytest.mark.parametrize("index, extra, message", [
    ([2, 1, 3], {}, "must not decrease"),
    ([1, 2, 5], {}, "past the end"),
    ([1, 2], {}, "last value 2 should equal"),
    ([1.0, 3.0], {}, "integer"),
    ([-1, 3], {}, ">= 0"),
    ([1, 2, 2, 3], {"unit_ids": np.array([1, 2])}, "has 4 entries"),
    ([1, 3], {"unit_ids": np.array([1, 2, 3, 4])}, "has 2 entries"),
])
def test_inconsistent_ragged_index(tmp_path, index, extra, message):
    path = _ragged(tmp_path, index, **extra)
    with pytest.raises(InputError, match=message) as err:
        hdf5.read_session(path)
    assert "bad.h5" in str(err.value) and "spike_times_index" in str(err.value)


def test_paired_lengths_must_match(tmp_path):
    path = _h5(tmp_path / "p.h5", {"fs_Hz": FS, "time_unit": "s"}, idces=np.array([0, 1]),
               times=np.array([0.1, 0.2, 0.3]))
    with pytest.raises(InputError, match=r"p\.h5.*'idces'.*2 entries.*3.*same length"):
        hdf5.read_session(path)
    bad = _h5(tmp_path / "q.h5", {"fs_Hz": FS, "time_unit": "s"}, idces=np.array([0, 5]),
              times=np.array([0.1, 0.2]), unit_ids=np.array([1, 2]))
    with pytest.raises(InputError, match=r"q\.h5.*'idces'.*\[0, 2\)"):
        hdf5.read_session(bad)


def test_missing_sampling_rate(tmp_path):
    path = _h5(tmp_path / "r.h5", {"time_unit": "s"}, spike_times=np.array([0.1]),
               spike_times_index=np.array([1]))
    with pytest.raises(InputError, match=r"r\.h5.*fs_Hz.*sampling_frequency="):
        hdf5.read_session(path)
    assert hdf5.read_session(path, sampling_frequency=FS).sorting.spike_train(0)[0] == 3000


def test_unknown_and_ambiguous_layouts(tmp_path):
    path = _h5(tmp_path / "u.h5", {"fs_Hz": FS}, foo=np.arange(3))
    assert not hdf5.sniff(path)
    with pytest.raises(InputError, match=r"u\.h5.*'style'.*no spike layout.*foo"):
        hdf5.read_session(path)
    both = _h5(tmp_path / "a.h5", {"fs_Hz": FS, "time_unit": "s"}, raster=np.ones((2, 3)),
               idces=np.array([0]), times=np.array([0.1]))
    with pytest.raises(InputError, match=r"a\.h5.*ambiguous.*raster and paired"):
        hdf5.read_session(both)
    assert hdf5.read_session(both, style="paired").sorting.num_spikes == 1
    with pytest.raises(InputError, match=r"a\.h5.*'ragged' needs spike_times"):
        hdf5.read_session(both, style="ragged")


def test_group_ids_must_match_unit_ids(tmp_path):
    path = _h5(tmp_path / "g.h5", {"fs_Hz": FS, "time_unit": "s"}, units__a=np.array([0.1]),
               units__b=np.array([0.2]), unit_ids=np.array(["a", "c"], dtype=h5py.string_dtype()))
    with pytest.raises(InputError, match=r"g\.h5.*unit_ids.*\['c'\]"):
        hdf5.read_session(path)


def test_not_ours(tmp_path):
    nwb = _h5(tmp_path / "n.h5", {"nwb_version": "2.7.0"}, units__spike_times=np.array([0.1]),
              units__spike_times_index=np.array([1]))
    assert not hdf5.sniff(nwb)
    with pytest.raises(InputError, match="NWB"):
        hdf5.read_session(nwb)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    assert not hdf5.sniff(junk)
    with pytest.raises(InputError, match=r"junk\.h5.*not a readable HDF5"):
        hdf5.read_session(junk)
    other = _h5(tmp_path / "x.txt", spike_times=np.array([0.1]), spike_times_index=[1])
    assert not hdf5.sniff(other)


# -- writer discipline -------------------------------------------------------------------------
def test_refuses_to_overwrite(tmp_path, string_ids):
    path = write_hdf5(string_ids, tmp_path / "s.h5")
    before = path.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        write_hdf5(string_ids, path, style="paired")
    assert path.read_bytes() == before
    write_hdf5(string_ids, path, style="paired", overwrite=True)
    with h5py.File(path) as f:
        assert f.attrs["style"] == "paired"
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_unwritable_destination_leaves_nothing(tmp_path, string_ids):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(InputError, match="not writable"):
            write_hdf5(string_ids, folder / "s.h5")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("style", [*STYLES, "raster"])
def test_error_mid_write_leaves_nothing(tmp_path, string_ids, style):
    calls = []

    def explode(step, fraction):
        calls.append((step, fraction))
        if len(calls) == 3:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_hdf5(string_ids, tmp_path / "s.h5", style=style, progress=explode)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("empty", [False, True], ids=["spikes", "empty"])
@pytest.mark.parametrize("style", [*STYLES, "raster"])
def test_progress_ends_at_one_before_the_rename(tmp_path, string_ids, style, empty):
    """The last report is ("hdf5", 1.0), made when the temporary file is complete on disk (a
    copy of its bytes reads back) but not yet renamed; failing there leaves nothing behind."""
    sorting = sv.Sorting.from_arrays([], [], FS, unit_ids=np.array(["a"])) if empty \
        else string_ids
    folder = tmp_path / "ok"
    folder.mkdir()
    path = folder / "s.h5"
    calls, at_end = [], []

    def record(step, fraction):
        calls.append((step, fraction))
        if fraction == 1.0 and step == "hdf5":
            (tmp,) = [p for p in folder.iterdir()]  # the temporary file, nothing else
            copy = shutil.copy(tmp, tmp_path / "copy.h5")  # its bytes on disk, not h5py's cache
            at_end.append((path.exists(), hdf5.read_session(copy).sorting))

    write_hdf5(sorting, path, style=style, progress=record)
    assert calls[0] == ("hdf5", 0.0) and calls[-1] == ("hdf5", 1.0)
    assert all(0.0 <= x <= 1.0 for _, x in calls)
    assert len(at_end) == 1
    existed, complete = at_end[0]
    assert not existed
    final = hdf5.read_session(path).sorting
    assert_same_sorting(complete, final)
    if style != "raster":  # rasters are lossy in time
        assert_same_sorting(final, sorting)

    folder = tmp_path / "fail"
    folder.mkdir()

    def fail_at_the_end(step, fraction):
        if (step, fraction) == ("hdf5", 1.0):
            raise KeyboardInterrupt  # not an Exception: cleanup must not depend on that

    with pytest.raises(KeyboardInterrupt):
        write_hdf5(sorting, folder / "s.h5", style=style, progress=fail_at_the_end)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"style": "csv"}, "unknown style"),
    ({"time_unit": "us"}, "unknown time unit"),
    ({"style": "raster", "bin_ms": 0.01}, "at least one sample"),
    ({"style": "raster", "bin_ms": float("nan")}, "bin_ms"),
    ({"compression": "zstd"}, "compression"),
])
def test_bad_arguments_write_nothing(tmp_path, string_ids, kwargs, message):
    with pytest.raises(InputError, match=message):
        write_hdf5(string_ids, tmp_path / "s.h5", **kwargs)
    with pytest.raises(InputError, match=r"\.h5 or \.hdf5"):
        write_hdf5(string_ids, tmp_path / "s.nwb")
    assert list(tmp_path.iterdir()) == []


def test_destination_folder_missing_or_a_file(tmp_path, string_ids):
    with pytest.raises(InputError, match="does not exist"):
        write_hdf5(string_ids, tmp_path / "missing" / "s.h5")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError):
        write_hdf5(string_ids, tmp_path / "file" / "s.h5")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_hdf5_failure_leaves_nothing(tmp_path, string_ids, monkeypatch):
    from spikeviz.io import hdf5_write

    class Failing(h5py.File):
        def create_dataset(self, *args, **kwargs):
            raise OSError("disk full")

    monkeypatch.setattr(hdf5_write.h5py, "File", Failing)
    with pytest.raises(OSError, match="disk full"):
        write_hdf5(string_ids, tmp_path / "s.h5")
    assert list(tmp_path.iterdir()) == []


# -- details -----------------------------------------------------------------------------------
def test_raster_bins_are_half_open_from_sample_zero(tmp_path):
    sorting = sv.Sorting.from_arrays([0, 29, 30, 59, 60], [0] * 5, FS)
    path = write_hdf5(sorting, tmp_path / "r.h5", style="raster", bin_ms=1.0)
    with h5py.File(path) as f:
        assert f["raster"][()].tolist() == [[2, 2, 1]]
    assert hdf5.read_session(path).sorting.spike_train(0).tolist() == [10, 20, 40, 50, 60]


def test_group_names_for_ids_that_are_not_valid_dataset_names(tmp_path):
    ids = np.array(["shank1/unit2", "shank1/ünit10", "."])
    sorting = sv.Sorting.from_arrays([5, 9, 12], [2, 0, 0], FS, unit_ids=ids)
    path = write_hdf5(sorting, tmp_path / "g.h5", style="group", time_unit="samples")
    with h5py.File(path) as f:
        assert list(f["units"]) == ["unit0", "unit1", "unit2"]
    got = hdf5.read_session(path).sorting
    assert got.unit_ids.tolist() == ids.tolist()
    assert got.spike_train("shank1/unit2").tolist() == [9, 12]
    assert got.spike_train("shank1/ünit10").tolist() == []
    assert got.spike_train(".").tolist() == [5]


def test_columns_that_cannot_be_stored_are_skipped_with_a_warning(tmp_path):
    table = pd.DataFrame({"label": ["good", "mua"], "channels": [[1, 2], [3]],
                          "note": ["a", None], "snr": [3.5, np.nan]}, index=[0, 1])
    sorting = sv.Sorting.from_arrays([1, 2], [0, 1], FS, unit_table=table)
    with pytest.warns(UserWarning, match=r"\['channels', 'note'\]"):
        path = write_hdf5(sorting, tmp_path / "c.h5")
    got = hdf5.read_session(path).sorting.unit_table
    assert list(got.columns) == ["label", "snr"]
    assert got["label"].tolist() == ["good", "mua"]
    np.testing.assert_array_equal(got["snr"].to_numpy(), [3.5, np.nan])


def test_bad_attributes(tmp_path):
    path = _h5(tmp_path / "b.h5", {"fs_Hz": FS, "time_unit": "s", "start_time": "noon"},
               spike_times=np.array([0.1]), spike_times_index=np.array([1]))
    with pytest.raises(InputError, match=r"b\.h5.*'start_time'"):
        hdf5.read_session(path)
    path = _h5(tmp_path / "c.h5", {"fs_Hz": -1.0, "time_unit": "parsecs"},
               spike_times=np.array([0.1]), spike_times_index=np.array([1]))
    with pytest.raises(InputError, match=r"c\.h5.*'fs_Hz'.*positive"):
        hdf5.read_session(path)
    with pytest.raises(InputError, match=r"c\.h5.*'time_unit'.*parsecs"):
        hdf5.read_session(path, sampling_frequency=FS)
    path = _h5(tmp_path / "d.h5", {"fs_Hz": FS, "time_unit": "samples"},
               spike_times=np.array([1.5]), spike_times_index=np.array([1]))
    with pytest.raises(InputError, match=r"d\.h5.*'/spike_times'.*whole numbers"):
        hdf5.read_session(path)
