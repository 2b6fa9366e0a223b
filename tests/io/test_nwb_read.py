"""The NWB reader against pynwb (and SpikeInterface's NWB readers) on a real file and on files
written here with pynwb directly (never with our writer)."""

from __future__ import annotations

import gc
import shutil
from datetime import UTC, datetime

import h5py
import numpy as np
import pytest

from spikeviz.errors import InputError
from spikeviz.io import nwb
from tests.conftest import shared_path
from tests.io.nwb_helpers import open_nwb

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO, NWBFile  # noqa: E402
from pynwb.ecephys import LFP, ElectricalSeries  # noqa: E402
from pynwb.misc import Units  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:The linked table for DynamicTableRegion:UserWarning")

FS = 30_000.0
REAL_NAME = "sub-4_ses-4_ecephys+image.nwb"




# -- the real file ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real(tmp_path_factory):
    src = shared_path("nwb", REAL_NAME)
    dst = tmp_path_factory.mktemp("nwb") / REAL_NAME
    shutil.copy(src, dst)
    return dst


def test_real_file_counts_ids_and_trains_match_pynwb(real):
    session = nwb.read_session(real, sampling_frequency=FS)
    sorting = session.sorting
    assert (sorting.num_units, sorting.num_spikes) == (35, 214_278)
    io, nwbfile = open_nwb(real)
    with io:
        units = nwbfile.units
        np.testing.assert_array_equal(sorting.unit_ids, units.id.data[:])
        for i, unit_id in enumerate(units.id.data[:]):
            want = np.sort(np.round(np.asarray(units["spike_times"][i]) * FS).astype(np.int64))
            np.testing.assert_array_equal(sorting.spike_train(unit_id), want)
        # per-unit electrodes: the electrodes table's ids of the unit's rows
        table_ids = nwbfile.electrodes.id.data[:]
        rows = units["electrodes"].data[:]
        got = [list(e) for e in sorting.unit_table["electrodes"]]
        assert got == [[table_ids[r]] for r in rows]
        # channels and geometry: ids, x/y (no rel_x in this file), location, group
        e = nwbfile.electrodes
        np.testing.assert_array_equal(session.channel_ids, table_ids)
        np.testing.assert_allclose(session.channel_locations_um,
                                   np.c_[e["x"].data[:], e["y"].data[:]])
        assert session.results["nwb_geometry_source"] == "x/y"
        electrodes = session.results["nwb_electrodes"]
        assert list(electrodes["location"]) == [v.decode() for v in e["location"].data[:]]
        assert list(electrodes["group"]) == [g.name for g in e["group"].data[:]]
        np.testing.assert_array_equal(electrodes["origChannel"], e["origChannel"].data[:])
    assert session.recording is None
    assert session.results["nwb_time_base"] == {
        "sampling_frequency": FS, "frequency_from": "argument", "t0_s": 0.0,
        "t0_from": "0 (no recording)"}


def test_real_file_matches_spikeinterface(real):
    se = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    session = nwb.read_session(real, sampling_frequency=FS)
    theirs = se.NwbSortingExtractor(str(real), sampling_frequency=FS)
    np.testing.assert_array_equal(session.sorting.unit_ids, theirs.unit_ids)
    counts = theirs.count_num_spikes_per_unit()
    for unit_id in theirs.unit_ids:
        assert session.sorting.spike_counts()[unit_id] == counts[unit_id]
        np.testing.assert_array_equal(session.sorting.spike_train(unit_id),
                                      np.sort(theirs.get_unit_spike_train(unit_id)))


def test_real_file_without_a_rate_asks_for_one(real):
    with pytest.raises(InputError, match="sampling_frequency") as err:
        nwb.read_session(real)
    assert REAL_NAME in str(err.value) and err.value.field == "/units/resolution"


# -- files written here with pynwb ------------------------------------------------------------
def _nwbfile(num_channels=6, rel=True, channel_names=None):
    nwbfile = NWBFile(session_description="test", identifier="spikeviz-test",
                      session_start_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    device = nwbfile.create_device("probe")
    groups = [nwbfile.create_electrode_group(f"shank{g}", "a shank", "CA1", device)
              for g in range(2)]
    if channel_names is not None:
        nwbfile.add_electrode_column("channel_name", "channel names")
    for i in range(num_channels):
        extra = {"rel_x": float(16 * (i % 2)), "rel_y": float(20 * i)} if rel else {}
        if channel_names is not None:
            extra["channel_name"] = channel_names[i]
        nwbfile.add_electrode(x=1000.0 + i, y=2000.0 + i, z=3000.0, location=f"L{i}",
                              group=groups[i // 3], **extra)
    return nwbfile, groups


def _region(nwbfile, rows):
    return nwbfile.create_electrode_table_region(list(rows), "channels")


def _units(trains, name="units", columns=(), **kwargs):
    units = Units(name=name, **kwargs)
    for column, description in columns:
        units.add_column(column, description)
    return units


def _write(nwbfile, path):
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def _simple_units(nwbfile, trains, name="units", where="file", **unit_kwargs):
    units = Units(name=name, **unit_kwargs)
    for train in trains:
        units.add_unit(spike_times=np.asarray(train, dtype=float))
    if where == "file":
        nwbfile.units = units
    else:
        module = nwbfile.processing.get("ecephys") or nwbfile.create_processing_module(
            "ecephys", "sorting")
        module.add(units)
    return units


def _traces(num_samples, num_channels, seed=0):
    return np.random.default_rng(seed).integers(-2000, 2000, (num_samples, num_channels),
                                                dtype=np.int16)


@pytest.fixture
def with_series(tmp_path):
    """A file with a rate-based series (gains, offset, start time 2.5 s) and units."""
    nwbfile, _ = _nwbfile()
    data = _traces(30_000, 5)
    series = ElectricalSeries(name="ElectricalSeriesRaw", data=data,
                              electrodes=_region(nwbfile, [0, 2, 3, 4, 5]), rate=FS,
                              starting_time=2.5, conversion=2.5e-6,
                              channel_conversion=np.array([1.0, 0.5, 2.0, 1.0, 1.5]),
                              offset=-1e-3)
    nwbfile.add_acquisition(series)
    _simple_units(nwbfile, [[2.5, 2.6, 3.0], [2.75, 3.2]], resolution=1 / 20_000)
    return _write(nwbfile, tmp_path / "series.nwb"), data


def test_rate_series_traces_in_microvolts_equal_pynwb_times_gains(with_series):
    path, _ = with_series
    session = nwb.read_session(path)
    rec = session.recording
    assert rec is not None and rec.sampling_frequency == FS
    io, nwbfile = open_nwb(path)
    with io:
        es = nwbfile.acquisition["ElectricalSeriesRaw"]
        stored = es.data[100:400]
        want = (stored * es.conversion * es.channel_conversion[:] + es.offset) * 1e6
        np.testing.assert_allclose(rec.traces(100, 400), want, rtol=1e-6, atol=1e-2)
        np.testing.assert_array_equal(rec.traces(100, 400, scaled=False), stored)
    np.testing.assert_array_equal(rec.channel_ids, [0, 2, 3, 4, 5])
    np.testing.assert_allclose(rec.channel_locations_um,
                               [[0, 0], [0, 40], [16, 60], [0, 80], [16, 100]])
    np.testing.assert_array_equal(rec.channel_groups, [0, 0, 1, 1, 1])
    assert session.results["nwb_channel_groups"] == ["shank0", "shank1"]
    assert session.results["nwb_geometry_source"] == "rel_x/rel_y"
    # spike times are counted from the series' start, at its rate (not the units' resolution)
    np.testing.assert_array_equal(session.sorting.spike_train(0), [0, 3000, 15_000])
    np.testing.assert_array_equal(session.sorting.spike_train(1), [7500, 21_000])
    assert session.results["nwb_time_base"]["t0_s"] == 2.5
    assert session.sorting.num_samples == 30_000
    # an explicit rate overrides the file's, for the spikes and the traces alike
    with pytest.warns(UserWarning, match="rate 30000 Hz overridden"):
        other = nwb.read_session(path, sampling_frequency=FS / 2)
    assert other.recording.sampling_frequency == other.sorting.sampling_frequency == FS / 2
    np.testing.assert_array_equal(other.sorting.spike_train(1), [3750, 10_500])


def test_rate_series_matches_spikeinterface_recording(with_series):
    se = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    path, _ = with_series
    rec = nwb.read_recording(path)
    theirs = se.NwbRecordingExtractor(str(path))
    np.testing.assert_allclose(rec.gains_to_uv, theirs.get_channel_gains(), rtol=1e-6)
    np.testing.assert_allclose(rec.offsets_to_uv, theirs.get_channel_offsets(), rtol=1e-6)
    np.testing.assert_allclose(rec.traces(0, 500),
                               theirs.get_traces(start_frame=0, end_frame=500,
                                                 return_in_uV=True), rtol=1e-5, atol=1e-2)


def test_sorting_only_never_opens_the_traces(with_series, monkeypatch):
    path, _ = with_series
    reads = _record_reads(monkeypatch)
    session = nwb.read_session(path, load_recording=False)
    assert session.recording is None
    assert not [r for r in reads if r[0].endswith("ElectricalSeriesRaw/data")]
    # the time base still comes from the series, so sample indices do not depend on the flag
    np.testing.assert_array_equal(session.sorting.spike_train(0), [0, 3000, 15_000])
    assert session.results["nwb_electrodes"].shape[0] == 6


def test_units_resolution_gives_the_rate_without_a_series(tmp_path):
    nwbfile, _ = _nwbfile()
    _simple_units(nwbfile, [[0.5, 1.0]], resolution=1 / 20_000)
    session = nwb.read_session(_write(nwbfile, tmp_path / "res.nwb"))
    assert session.sorting.sampling_frequency == 20_000
    np.testing.assert_array_equal(session.sorting.spike_train(0), [10_000, 20_000])
    assert session.results["nwb_time_base"]["frequency_from"] == "1 / /units resolution"


def test_timestamps_series(tmp_path):
    nwbfile, _ = _nwbfile()
    data = _traces(5000, 6, seed=1)
    timestamps = 10.0 + np.arange(5000) / 20_000.0
    nwbfile.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=data,
                                             electrodes=_region(nwbfile, range(6)),
                                             timestamps=timestamps, conversion=1e-6))
    _simple_units(nwbfile, [[10.0, 10.1], [10.2]])
    session = nwb.read_session(_write(nwbfile, tmp_path / "ts.nwb"))
    rec = session.recording
    assert rec.sampling_frequency == pytest.approx(20_000, rel=1e-9)
    np.testing.assert_array_equal(session.sorting.spike_train(0), [0, 2000])
    np.testing.assert_array_equal(session.sorting.spike_train(1), [4000])
    np.testing.assert_allclose(rec.traces(10, 20), data[10:20].astype(float), rtol=1e-6)
    np.testing.assert_array_equal(rec.offsets_to_uv, 0)


def _two_of_each(path):
    nwbfile, _ = _nwbfile()
    for name, rate in (("ElectricalSeriesAP", FS), ("ElectricalSeriesLF", 2500.0)):
        nwbfile.add_acquisition(ElectricalSeries(
            name=name, data=_traces(3000, 6), electrodes=_region(nwbfile, range(6)),
            rate=rate))
    lfp = LFP(electrical_series=ElectricalSeries(
        name="ElectricalSeriesLFP", data=_traces(300, 2), rate=1000.0,
        electrodes=_region(nwbfile, [0, 1])))
    _simple_units(nwbfile, [[0.01, 0.05], [0.02]])
    _simple_units(nwbfile, [[0.03]], name="kilosort", where="processing")
    nwbfile.processing["ecephys"].add(lfp)
    return _write(nwbfile, path)


def test_several_units_tables_are_chosen_by_name(tmp_path):
    path = _two_of_each(tmp_path / "two.nwb")
    with pytest.raises(InputError, match="several Units tables") as err:
        nwb.read_session(path, electrical_series_name="ElectricalSeriesAP")
    assert "/processing/ecephys/kilosort" in str(err.value) and "/units" in str(err.value)
    assert err.value.field == "units_name" and "two.nwb" in str(err.value)
    chosen = nwb.read_session(path, units_name="kilosort",
                              electrical_series_name="ElectricalSeriesAP")
    assert chosen.sorting.num_spikes == 1 and chosen.results["nwb_units"] == \
        "/processing/ecephys/kilosort"
    by_path = nwb.read_session(path, units_name="/units",
                               electrical_series_name="ElectricalSeriesAP")
    assert by_path.sorting.num_spikes == 3
    with pytest.raises(InputError, match="no Units table named 'nope'"):
        nwb.read_session(path, units_name="nope")


def test_several_series_chosen_by_name_or_by_the_raw_rule(tmp_path):
    path = _two_of_each(tmp_path / "two.nwb")
    with pytest.warns(UserWarning, match="using ElectricalSeries /acquisition/ElectricalSeriesAP"):
        auto = nwb.read_session(path, units_name="units")
    assert auto.recording.sampling_frequency == FS
    assert auto.results["nwb_electrical_series"] == "/acquisition/ElectricalSeriesAP"
    lfp = nwb.read_recording(path, electrical_series_name="ElectricalSeriesLFP")
    assert (lfp.sampling_frequency, lfp.num_channels, lfp.num_samples) == (1000.0, 2, 300)
    lf = nwb.read_session(path, units_name="units", electrical_series_name="ElectricalSeriesLF")
    assert lf.sorting.sampling_frequency == 2500.0
    np.testing.assert_array_equal(lf.sorting.spike_train(0), [25, 125])
    with pytest.raises(InputError, match="no ElectricalSeries named 'X'") as err:
        nwb.read_recording(path, electrical_series_name="X")
    assert "ElectricalSeriesLFP" in str(err.value)


def test_ambiguous_series_raise_listing_them(tmp_path):
    nwbfile, _ = _nwbfile()
    for name in ("shankA", "shankB"):
        nwbfile.add_acquisition(ElectricalSeries(name=name, data=_traces(100, 6),
                                                 electrodes=_region(nwbfile, range(6)),
                                                 rate=FS))
    _simple_units(nwbfile, [[0.001]])
    path = _write(nwbfile, tmp_path / "amb.nwb")
    with pytest.raises(InputError, match="several ElectricalSeries") as err:
        nwb.read_session(path)
    assert "/acquisition/shankA" in str(err.value) and err.value.field == \
        "electrical_series_name"
    assert nwb.read_session(path, electrical_series_name="shankB").recording.num_samples == 100


def test_series_only_in_processing_is_not_used_unless_named(tmp_path):
    nwbfile, _ = _nwbfile()
    module = nwbfile.create_processing_module("ecephys", "lfp")
    module.add(LFP(electrical_series=ElectricalSeries(
        name="lfp", data=_traces(100, 6), electrodes=_region(nwbfile, range(6)), rate=1000.0,
        starting_time=5.0)))
    _simple_units(nwbfile, [[5.5]], resolution=1 / FS)
    path = _write(nwbfile, tmp_path / "lfp.nwb")
    session = nwb.read_session(path)
    assert session.recording is None and session.sorting.spike_train(0)[0] == 5.5 * FS
    with pytest.raises(InputError, match="used only when named"):
        nwb.read_recording(path)


def test_unit_names_custom_columns_labels_groups_obs_intervals(tmp_path):
    nwbfile, groups = _nwbfile()
    units = Units(name="units", electrode_table=nwbfile.electrodes)
    for column, description in (("unit_name", "names"), ("quality", "phy label"),
                                ("snr", "signal to noise"), ("vec", "2 values per unit")):
        units.add_column(column, description)
    rows = [[0, 1], [2], [3, 4, 5]]
    names, quality = ["alpha", "beta", "gamma"], ["Good", " MUA", ""]
    for i in range(3):
        units.add_unit(spike_times=[0.1 * (i + 1), 0.5], electrodes=rows[i],
                       electrode_group=groups[i // 2],
                       obs_intervals=[[0.0, 1.0], [2.0, 3.0]][:i + 1],
                       unit_name=names[i], quality=quality[i], snr=1.5 * i, vec=[i, -i])
    nwbfile.units = units
    session = nwb.read_session(_write(nwbfile, tmp_path / "cols.nwb"), sampling_frequency=FS)
    table = session.sorting.unit_table
    assert session.sorting.unit_ids.tolist() == names
    assert session.sorting.spike_train("beta").tolist() == [6000, 15_000]
    assert table["label"].tolist() == ["good", "mua", "unsorted"]
    assert "quality" not in table  # folded into the normalised label
    np.testing.assert_allclose(table["snr"], [0.0, 1.5, 3.0])
    assert [list(v) for v in table["vec"]] == [[0, 0], [1, -1], [2, -2]]
    assert [list(v) for v in table["electrodes"]] == rows  # ids = rows here (id 0..5)
    assert table["electrode_group"].tolist() == ["shank0", "shank0", "shank1"]
    intervals = table["obs_intervals_s"]
    assert intervals["alpha"].shape == (1, 2) and intervals["beta"].tolist() == \
        [[0.0, 1.0], [2.0, 3.0]]


def test_integer_like_unit_names_become_integer_ids_and_channel_names(tmp_path):
    nwbfile, _ = _nwbfile(channel_names=["ch10", "ch11", "ch12", "ch13", "ch14", "ch15"])
    units = Units(name="units", electrode_table=nwbfile.electrodes)
    units.add_column("unit_name", "names")
    for name, rows in (("7", [1]), ("12", [5])):
        units.add_unit(spike_times=[0.1], unit_name=name, electrodes=rows)
    nwbfile.units = units
    session = nwb.read_session(_write(nwbfile, tmp_path / "names.nwb"), sampling_frequency=FS)
    assert session.sorting.unit_ids.tolist() == [7, 12]
    assert session.sorting.unit_ids.dtype.kind == "i"
    assert session.channel_ids.tolist() == [f"ch{i}" for i in range(10, 16)]
    assert [list(e) for e in session.sorting.unit_table["electrodes"]] == [["ch11"], ["ch15"]]


def test_marked_unit_names_stay_strings(tmp_path):
    """Our writer marks string ids in the unit_name description; unmarked names that are all
    canonical integers (SpikeInterface's str(id)) become int64 (test above)."""
    from spikeviz.io.nwb_read_tables import STRING_IDS_MARK

    nwbfile, _ = _nwbfile()
    units = Units(name="units")
    units.add_column("unit_name", f"Unit id as given by the spike sorting ({STRING_IDS_MARK}).")
    for name in ("1", "2", "10"):
        units.add_unit(spike_times=[0.1], unit_name=name)
    nwbfile.units = units
    session = nwb.read_session(_write(nwbfile, tmp_path / "marked.nwb"), sampling_frequency=FS)
    assert session.sorting.unit_ids.tolist() == ["1", "2", "10"]
    assert session.sorting.unit_ids.dtype.kind == "U"


def test_waveform_mean_and_sd_become_templates_in_microvolts(tmp_path):
    nwbfile, _ = _nwbfile()
    rng = np.random.default_rng(3)
    mean = rng.normal(0, 50e-6, (2, 40, 6))
    sd = np.abs(rng.normal(0, 5e-6, (2, 40, 6)))
    units = Units(name="units", waveform_rate=FS, waveform_unit="volts")
    for i in range(2):
        units.add_unit(spike_times=[0.01 * (i + 1)], waveform_mean=mean[i], waveform_sd=sd[i])
    nwbfile.units = units
    session = nwb.read_session(_write(nwbfile, tmp_path / "wf.nwb"), sampling_frequency=FS)
    templates = session.results["nwb_templates"]
    np.testing.assert_allclose(templates.data, mean * 1e6, rtol=1e-5)
    np.testing.assert_allclose(templates.std, sd * 1e6, rtol=1e-5)
    np.testing.assert_array_equal(templates.unit_ids, [0, 1])
    np.testing.assert_array_equal(templates.channel_ids, np.arange(6))
    assert templates.units == "uV" and templates.sampling_frequency == FS
    assert "waveform_mean" not in session.sorting.unit_table


def test_sparse_waveform_mean_follows_each_units_electrodes(tmp_path):
    nwbfile, _ = _nwbfile()
    mean = np.random.default_rng(4).normal(0, 1e-4, (2, 30, 2))
    units = Units(name="units", electrode_table=nwbfile.electrodes)
    for i, rows in enumerate(([4, 5], [0, 2])):
        units.add_unit(spike_times=[0.02], electrodes=rows, waveform_mean=mean[i])
    nwbfile.units = units
    session = nwb.read_session(_write(nwbfile, tmp_path / "sparse.nwb"), sampling_frequency=FS)
    templates = session.results["nwb_templates"]
    np.testing.assert_array_equal(templates.sparse_channel_indices, [[4, 5], [0, 2]])
    np.testing.assert_allclose(templates.dense(1)[:, 2], mean[1, :, 1] * 1e6, rtol=1e-5)


def test_old_schema_without_optional_fields(tmp_path):
    """NWB 2.0-like: no rel_x/rel_y, no channel_conversion, no offset, no Units resolution."""
    nwbfile, _ = _nwbfile(rel=False)
    data = _traces(2000, 6, seed=2)
    nwbfile.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=data,
                                             electrodes=_region(nwbfile, range(6)),
                                             rate=FS, conversion=1.95e-7))
    _simple_units(nwbfile, [[0.01, 0.02]])
    path = _write(nwbfile, tmp_path / "old.nwb")
    with h5py.File(path, "a") as f:
        f.attrs["nwb_version"] = "2.0.0"
        data_attrs = f["acquisition/ElectricalSeries/data"].attrs
        if "offset" in data_attrs:
            del data_attrs["offset"]
        assert "channel_conversion" not in f["acquisition/ElectricalSeries"]
        assert "resolution" not in f["units"].attrs
    session = nwb.read_session(path)
    rec = session.recording
    np.testing.assert_allclose(rec.gains_to_uv, 0.195)
    np.testing.assert_array_equal(rec.offsets_to_uv, 0)
    np.testing.assert_allclose(rec.channel_locations_um, np.c_[1000.0 + np.arange(6),
                                                               2000.0 + np.arange(6)])
    assert session.results["nwb_geometry_source"] == "x/y"
    np.testing.assert_array_equal(session.sorting.spike_train(0), [300, 600])


# -- lazy traces ------------------------------------------------------------------------------
def _record_reads(monkeypatch):
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        out = original(self, key)
        reads.append((self.name, np.shape(out)))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    return reads


def test_a_long_series_is_only_read_in_windows(tmp_path, monkeypatch):
    """10^7 samples x 4 channels (unallocated chunks: a tiny file) open without a read."""
    nwbfile, _ = _nwbfile()
    nwbfile.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=_traces(10, 4),
                                             electrodes=_region(nwbfile, range(4)), rate=FS))
    _simple_units(nwbfile, [[1.0, 300.0]])
    path = _write(nwbfile, tmp_path / "long.nwb")
    with h5py.File(path, "a") as f:
        group = f["acquisition/ElectricalSeries"]
        attrs = dict(group["data"].attrs)
        del group["data"]
        big = group.create_dataset("data", shape=(10_000_000, 4), dtype="int16",
                                   chunks=(65_536, 4), fillvalue=7)
        big.attrs.update(attrs)
    assert path.stat().st_size < 1_000_000
    reads = _record_reads(monkeypatch)
    session = nwb.read_session(path)
    rec = session.recording
    assert rec.num_samples == 10_000_000
    assert not [r for r in reads if r[0] == "/acquisition/ElectricalSeries/data"]
    window = rec.traces(5_000_000, 5_000_100, scaled=False)
    assert window.shape == (100, 4) and (window == 7).all()
    data_reads = [r for r in reads if r[0] == "/acquisition/ElectricalSeries/data"]
    assert data_reads == [("/acquisition/ElectricalSeries/data", (100, 4))]


def _open_handles(path) -> int:
    ids = h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)
    return sum(1 for i in ids if i.name.decode() == str(path))


def test_the_file_stays_open_while_the_recording_lives(with_series):
    path, data = with_series
    assert _open_handles(path) == 0
    recording = nwb.read_session(path).recording
    gc.collect()
    assert _open_handles(path) == 1
    np.testing.assert_array_equal(recording.traces(0, 3, scaled=False), data[:3])
    del recording
    gc.collect()
    assert _open_handles(path) == 0
    sorting_only = nwb.read_session(path, load_recording=False)
    assert sorting_only.sorting.num_units == 2
    assert _open_handles(path) == 0
    with pytest.raises(InputError, match="no Units table named"):
        nwb.read_session(path, units_name="nope")  # fails after the file was opened
    gc.collect()
    assert _open_handles(path) == 0


# -- sniff and bad input ----------------------------------------------------------------------
def test_sniff(tmp_path, with_series):
    path, _ = with_series
    assert nwb.sniff(path)
    renamed = tmp_path / "renamed.h5"
    shutil.copy(path, renamed)
    assert nwb.sniff(renamed)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    assert not nwb.sniff(plain)
    (tmp_path / "text.h5").write_text("hello")
    assert not nwb.sniff(tmp_path / "text.h5")
    assert not nwb.sniff(tmp_path)


def test_not_an_nwb_file(tmp_path):
    fake = tmp_path / "fake.nwb"
    fake.write_text("not hdf5")
    with pytest.raises(InputError, match="not an NWB file") as err:
        nwb.read_session(fake)
    assert "fake.nwb" in str(err.value) and err.value.field == "nwb_version"
    plain = tmp_path / "plain.nwb"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(InputError, match="nwb_version"):
        nwb.read_session(plain)
    with pytest.raises(InputError, match="no such file"):
        nwb.read_session(tmp_path / "missing.nwb")


def test_nwb_without_units(tmp_path):
    nwbfile, _ = _nwbfile()
    path = _write(nwbfile, tmp_path / "nounits.nwb")
    with pytest.raises(InputError, match="no Units table") as err:
        nwb.read_session(path, sampling_frequency=FS)
    assert "nounits.nwb" in str(err.value) and err.value.field == "units"


@pytest.fixture
def units_file(tmp_path):
    nwbfile, _ = _nwbfile()
    _simple_units(nwbfile, [[0.1, 0.2], [0.3], [0.4, 0.5, 0.6]])
    return _write(nwbfile, tmp_path / "units.nwb")


def test_index_past_the_end(units_file):
    with h5py.File(units_file, "a") as f:
        f["units/spike_times_index"][2] = 9
    with pytest.raises(InputError, match="past the end") as err:
        nwb.read_session(units_file, sampling_frequency=FS)
    assert "units.nwb" in str(err.value)
    assert err.value.field == "/units/spike_times_index"


def test_decreasing_index(units_file):
    with h5py.File(units_file, "a") as f:
        f["units/spike_times_index"][1] = 1
        f["units/spike_times_index"][0] = 2
    with pytest.raises(InputError, match="decreases at row 1") as err:
        nwb.read_session(units_file, sampling_frequency=FS)
    assert "units.nwb" in str(err.value) and err.value.field == "/units/spike_times_index"


def test_spikes_but_no_rate(units_file):
    with pytest.raises(InputError, match="pass sampling_frequency") as err:
        nwb.read_session(units_file)
    assert "units.nwb" in str(err.value) and err.value.field == "/units/resolution"


def test_spikes_before_the_recording_starts(tmp_path):
    nwbfile, _ = _nwbfile()
    nwbfile.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=_traces(100, 6),
                                             electrodes=_region(nwbfile, range(6)), rate=FS,
                                             starting_time=10.0))
    _simple_units(nwbfile, [[10.001], [9.0]])
    path = _write(nwbfile, tmp_path / "early.nwb")
    with pytest.raises(InputError, match=r"spike at 9\.000000 s \(unit 1\) lies before") as err:
        nwb.read_session(path)
    assert "early.nwb" in str(err.value) and err.value.field == "/units/spike_times"


def test_nan_spike_times(units_file):
    with h5py.File(units_file, "a") as f:
        f["units/spike_times"][1] = np.nan
    with pytest.raises(InputError, match="NaN") as err:
        nwb.read_session(units_file, sampling_frequency=FS)
    assert err.value.field == "/units/spike_times"


def test_repeated_unit_names(tmp_path):
    nwbfile, _ = _nwbfile()
    units = Units(name="units")
    units.add_column("unit_name", "names")
    for _ in range(2):
        units.add_unit(spike_times=[0.1], unit_name="a")
    nwbfile.units = units
    with pytest.raises(InputError, match="unit ids repeat") as err:
        nwb.read_session(_write(nwbfile, tmp_path / "dup.nwb"), sampling_frequency=FS)
    assert "dup.nwb" in str(err.value) and err.value.field == "/units/unit_name"


def test_units_without_spike_times(tmp_path):
    nwbfile, _ = _nwbfile()
    units = Units(name="units")
    units.add_column("snr", "snr")
    units.add_row(snr=1.0)
    nwbfile.units = units
    with pytest.raises(InputError, match="no spike_times column") as err:
        nwb.read_session(_write(nwbfile, tmp_path / "nospk.nwb"), sampling_frequency=FS)
    assert "nospk.nwb" in str(err.value) and err.value.field == "/units/spike_times"


def test_nwb1_and_unreadable_files(tmp_path):
    old = tmp_path / "v1.nwb"
    with h5py.File(old, "w") as f:
        f["nwb_version"] = "NWB-1.0.6"
    with pytest.raises(InputError, match=r"NWB 1\.x") as err:
        nwb.read_session(old)
    assert "v1.nwb" in str(err.value)
    broken = tmp_path / "broken.nwb"
    with h5py.File(broken, "w") as f:
        f.attrs["nwb_version"] = "2.5.0"
        f.attrs["neurodata_type"] = "NWBFile"
        f.attrs["namespace"] = "core"
    with pytest.raises(InputError, match="pynwb cannot read") as err:
        nwb.read_session(broken)
    assert "broken.nwb" in str(err.value)


def test_single_channel_series_with_one_dimensional_data(tmp_path):
    nwbfile, _ = _nwbfile()
    data = _traces(1000, 1, seed=5)[:, 0]
    nwbfile.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=data,
                                             electrodes=_region(nwbfile, [3]), rate=FS,
                                             conversion=1e-6))
    rec = nwb.read_recording(_write(nwbfile, tmp_path / "one.nwb"))
    assert (rec.num_samples, rec.num_channels) == (1000, 1)
    np.testing.assert_array_equal(rec.channel_ids, [3])
    np.testing.assert_allclose(rec.traces(10, 20)[:, 0], data[10:20].astype(float))
    np.testing.assert_allclose(rec.traces(10, 20, channel_ids=[3])[:, 0],
                               data[10:20].astype(float))


def test_per_channel_offsets_and_integer_group_names_like_spikeinterface(tmp_path):
    se = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    nwbfile = NWBFile(session_description="t", identifier="t",
                      session_start_time=datetime(2024, 1, 1, tzinfo=UTC))
    device = nwbfile.create_device("probe")
    groups = {g: nwbfile.create_electrode_group(str(g), "shank", "CA1", device) for g in (0, 3)}
    nwbfile.add_electrode_column("offset", "per-channel offset in volts")
    for i, g in enumerate((0, 0, 3, 3)):
        nwbfile.add_electrode(location="CA1", group=groups[g], rel_x=0.0, rel_y=20.0 * i,
                              offset=-1e-3 * (i + 1))
    data = _traces(200, 4, seed=6)
    nwbfile.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=data,
                                             electrodes=_region(nwbfile, range(4)), rate=FS,
                                             conversion=0.5e-6))
    path = _write(nwbfile, tmp_path / "offsets.nwb")
    rec = nwb.read_recording(path)
    np.testing.assert_allclose(rec.offsets_to_uv, [-1000, -2000, -3000, -4000])
    np.testing.assert_array_equal(rec.channel_groups, [0, 0, 3, 3])
    theirs = se.NwbRecordingExtractor(str(path))
    np.testing.assert_allclose(rec.offsets_to_uv, theirs.get_channel_offsets())
    np.testing.assert_allclose(rec.traces(0, 50), theirs.get_traces(
        start_frame=0, end_frame=50, return_in_uV=True), rtol=1e-5, atol=1e-2)


def test_series_time_base_matches_spikeinterface_sorting(with_series):
    se = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    path, _ = with_series
    ours = nwb.read_session(path, load_recording=False).sorting
    theirs = se.NwbSortingExtractor(str(path),
                                    electrical_series_path="acquisition/ElectricalSeriesRaw")
    assert theirs.sampling_frequency == ours.sampling_frequency
    for unit_id in theirs.unit_ids:
        np.testing.assert_array_equal(ours.spike_train(unit_id),
                                      theirs.get_unit_spike_train(unit_id))


def test_an_empty_units_table_is_an_empty_sorting(tmp_path):
    nwbfile, _ = _nwbfile()
    nwbfile.units = Units(name="units")
    session = nwb.read_session(_write(nwbfile, tmp_path / "empty.nwb"), sampling_frequency=FS)
    assert (session.sorting.num_units, session.sorting.num_spikes) == (0, 0)
    assert session.sorting.sampling_frequency == FS
