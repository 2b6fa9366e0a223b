"""NWB → spikeviz → NWB and spikeviz → NWB → spikeviz: what the reader gives back is written
back the way NWB means it (obs_intervals, electrodes, waveforms, string ids), checked with
pynwb, SpikeInterface and our reader. Source files are written here with pynwb directly, or
are the real file in ``../shared/data``."""

from __future__ import annotations

import shutil
import warnings
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from spikeviz.io import nwb
from spikeviz.io.nwb_write import write_nwb
from spikeviz.model import Session, Sorting
from tests.conftest import shared_path
from tests.io.nwb_helpers import open_nwb

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO, NWBFile  # noqa: E402
from pynwb.misc import Units  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:The linked table for DynamicTableRegion:UserWarning")

FS = 30_000.0
META = {"NWBFile": {"session_start_time": "2024-05-01T10:00:00Z"}}
REAL_NAME = "sub-4_ses-4_ecephys+image.nwb"


def _rewrite(session, tmp_path):
    """``session`` written to ``tmp_path/out.nwb``; no column may be left out."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = write_nwb(session, tmp_path / "out.nwb", META)
    _no_left_out_warning(record)
    return out


def _source_file(num_channels=6):
    nwbfile = NWBFile(session_description="test", identifier="spikeviz-reexport",
                      session_start_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    device = nwbfile.create_device("probe")
    group = nwbfile.create_electrode_group("shank0", "a shank", "CA1", device)
    for i in range(num_channels):
        nwbfile.add_electrode(location="CA1", group=group, rel_x=float(16 * (i % 2)),
                              rel_y=float(20 * i))
    return nwbfile


def _save(nwbfile, path):
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def _text(column: pd.Series) -> pd.Series:
    """Bytes (as this NWB 2.4 file stores its strings) decoded; numbers as they are."""
    return column.map(lambda v: v.decode() if isinstance(v, bytes) else v)


def _no_left_out_warning(record):
    texts = [str(w.message) for w in record]
    assert not [t for t in texts if "left out" in t or "replaced" in t], texts


# -- 1. obs_intervals and electrodes --------------------------------------------------------
@pytest.fixture
def intervals_file(tmp_path):
    """Three units with their own obs_intervals and (ragged) electrodes, no waveforms."""
    nwbfile = _source_file()
    units = Units(name="units", electrode_table=nwbfile.electrodes, resolution=1 / FS)
    units.add_column("depth", "depth in µm")
    specs = [([0.1, 0.2], [[0.0, 1.0], [2.0, 3.5]], [0, 1], 10.0),
             ([2.5], [[2.0, 3.0]], [5], 20.0),
             ([0.5, 0.6, 0.7], [[0.0, 4.0]], [2, 3, 4], 30.0)]
    for times, intervals, rows, depth in specs:
        units.add_unit(spike_times=times, obs_intervals=intervals, electrodes=rows, depth=depth)
    nwbfile.units = units
    return _save(nwbfile, tmp_path / "source.nwb"), specs


def test_obs_intervals_and_electrodes_are_written_back(intervals_file, tmp_path):
    path, specs = intervals_file
    session = nwb.read_session(path, sampling_frequency=FS)
    out = _rewrite(session, tmp_path)
    io, nwbfile = open_nwb(out)
    with io:
        units = nwbfile.units
        names = list(nwbfile.electrodes["channel_name"][:])
        for i, (_, intervals, rows, _) in enumerate(specs):
            np.testing.assert_array_equal(units["obs_intervals"][i], intervals)
            got = units["electrodes"][i].index.to_numpy()
            assert [names[r] for r in got] == [str(r) for r in rows]
    again = nwb.read_session(out, sampling_frequency=FS)
    before, after = session.sorting.unit_table, again.sorting.unit_table
    for unit_id in before.index:
        np.testing.assert_array_equal(after.at[unit_id, "obs_intervals_s"],
                                      before.at[unit_id, "obs_intervals_s"])
        np.testing.assert_array_equal(after.at[unit_id, "electrodes"],
                                      before.at[unit_id, "electrodes"])
    np.testing.assert_array_equal(after["depth"], before["depth"])


def test_spikeinterface_reads_the_rewritten_units(intervals_file, tmp_path):
    nwbext = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    path, specs = intervals_file
    out = write_nwb(nwb.read_session(path, sampling_frequency=FS), tmp_path / "out.nwb", META)
    si = nwbext.NwbSortingExtractor(str(out), sampling_frequency=FS)
    assert list(si.unit_ids) == [0, 1, 2]
    for uid, (times, *_rest) in zip(si.unit_ids, specs, strict=True):
        np.testing.assert_array_equal(si.get_unit_spike_train(uid),
                                      np.round(np.asarray(times) * FS).astype(np.int64))


def test_missing_intervals_get_the_whole_recording_and_bad_ones_are_refused(tmp_path):
    sorting = Sorting.from_arrays([10, 20, 30], [0, 1, 2], FS, num_samples=3 * int(FS),
                                  unit_table=pd.DataFrame({"obs_intervals_s": pd.Series(
                                      [np.array([[0.5, 1.0]]), None, np.zeros((0, 2))],
                                      dtype=object)}, index=[0, 1, 2]))
    out = write_nwb(Session(sorting), tmp_path / "ok.nwb", META)
    io, nwbfile = open_nwb(out)
    with io:
        intervals = nwbfile.units["obs_intervals"]
        np.testing.assert_array_equal(intervals[0], [[0.5, 1.0]])
        np.testing.assert_array_equal(intervals[1], [[0.0, 3.0]])
        assert np.shape(intervals[2]) == (0, 2)
    for bad in ([[1.0, 0.5]], [[0.0, np.nan]], [1.0, 2.0, 3.0], "all"):
        table = pd.DataFrame({"obs_intervals_s": pd.Series([bad, None, None], dtype=object)},
                             index=[0, 1, 2])
        with pytest.raises(InputError, match=r"unit 0.*start, stop") as err:
            write_nwb(Session(sorting.with_unit_table(table)), tmp_path / "bad.nwb", META)
        assert err.value.field == "unit_table.obs_intervals_s"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.nwb"]


def test_electrodes_that_cannot_be_written_and_other_arrays_warn(tmp_path):
    table = pd.DataFrame({"electrodes": pd.Series([np.array([0, 1]), np.array([9])],
                                                  dtype=object),
                          "vector": pd.Series([np.ones(3), np.zeros(3)], dtype=object)},
                         index=[0, 1])
    sorting = Sorting.from_arrays([10, 20], [0, 1], FS, unit_table=table)
    session = Session(sorting, channel_ids=np.arange(4),
                      channel_locations_um=np.c_[np.zeros(4), np.arange(4.0)])
    with pytest.warns(UserWarning) as record:
        out = write_nwb(session, tmp_path / "x.nwb", META)
    texts = " | ".join(str(w.message) for w in record)
    assert "'electrodes' left out: channel ids ['9']" in texts
    assert "'vector'" in texts and "not one number" in texts
    io, nwbfile = open_nwb(out)
    with io:
        assert "electrodes" not in nwbfile.units.colnames
        assert "vector" not in nwbfile.units.colnames
    with pytest.warns(UserWarning, match="'electrodes' left out: the session has no channels"):
        write_nwb(Session(sorting), tmp_path / "y.nwb", META)
    grouped = sorting.with_unit_table(pd.DataFrame({"electrode_group": ["shank9", "x"]},
                                                   index=[0, 1]))
    with pytest.warns(UserWarning, match=r"'electrode_group' left out: groups \['shank9'"):
        write_nwb(Session(grouped, channel_ids=np.arange(4)), tmp_path / "z.nwb",
                  {**META, "Ecephys": {"ElectrodeGroup": [{"name": "x"}]}})


def test_single_channel_ids_and_missing_electrodes(tmp_path):
    table = pd.DataFrame({"electrodes": pd.Series([3, None, np.array([1, 0])], dtype=object)},
                         index=[0, 1, 2])
    sorting = Sorting.from_arrays([10, 20, 30], [0, 1, 2], FS, unit_table=table)
    session = Session(sorting, channel_ids=np.arange(4))
    out = write_nwb(session, tmp_path / "x.nwb", META)
    io, nwbfile = open_nwb(out)
    with io:
        region = nwbfile.units["electrodes"]
        assert [list(region[i].index) for i in range(3)] == [[3], [], [1, 0]]


# -- 2. templates read from NWB -------------------------------------------------------------
def _waveform_file(path, sparse: bool, rate=FS, before_ms=0.5):
    nwbfile = _source_file()
    rng = np.random.default_rng(8)
    channels = 2 if sparse else 6
    mean = rng.normal(0, 50e-6, (3, 24, channels)).astype(np.float32)
    sd = np.abs(rng.normal(0, 5e-6, (3, 24, channels))).astype(np.float32)
    units = Units(name="units", electrode_table=nwbfile.electrodes, waveform_rate=rate,
                  waveform_unit="volts", waveform_time_before_peak_in_ms=before_ms)
    rows = ([4, 5], [0, 2], [3, 1]) if sparse else ([0, 1, 2, 3, 4, 5],) * 3
    for i in range(3):
        units.add_unit(spike_times=[0.01 * (i + 1), 0.5], electrodes=list(rows[i]),
                       waveform_mean=mean[i], waveform_sd=sd[i])
    nwbfile.units = units
    return _save(nwbfile, path), mean, sd, rows


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_templates_read_from_nwb_are_written_back(tmp_path, sparse):
    path, mean, sd, rows = _waveform_file(tmp_path / "wf.nwb", sparse, rate=20_000.0)
    session = nwb.read_session(path, sampling_frequency=FS)
    assert session.sorting.num_samples is None  # no recording: templates cannot be computed
    out = _rewrite(session, tmp_path)
    io, nwbfile = open_nwb(out)
    with io:
        units = nwbfile.units
        np.testing.assert_allclose(units["waveform_mean"].data[:], mean, rtol=1e-5)
        np.testing.assert_allclose(units["waveform_sd"].data[:], sd, rtol=1e-5)
        assert units.waveform_rate == 20_000.0  # the templates' own rate, not the sorting's
        assert units.waveform_time_before_peak_in_ms == pytest.approx(0.5)
        for i in range(3):
            assert list(units["electrodes"][i].index) == list(rows[i])
    again = nwb.read_session(out, sampling_frequency=FS).results["nwb_templates"]
    first = session.results["nwb_templates"]
    np.testing.assert_allclose(again.data, first.data, rtol=1e-6)
    np.testing.assert_allclose(again.std, first.std, rtol=1e-6)
    assert again.nbefore == first.nbefore == 10
    if sparse:
        np.testing.assert_array_equal(again.sparse_channel_indices, rows)
    else:
        assert again.sparse_channel_indices is None


def test_sparse_rewrite_passes_nwbinspector_and_spikeinterface(tmp_path):
    nwbext = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    from nwbinspector import inspect_nwbfile, load_config

    path, mean, *_ = _waveform_file(tmp_path / "wf.nwb", sparse=True)
    meta = {"NWBFile": {**META["NWBFile"], "session_description": "Re-exported units.",
                        "experimenter": ["Doe, Jane"], "institution": "Test Institute",
                        "experiment_description": "NWB re-export test."},
            "Subject": {"subject_id": "m1", "species": "Mus musculus", "sex": "F",
                        "age": "P90D"}}
    out = write_nwb(nwb.read_session(path, sampling_frequency=FS), tmp_path / "out.nwb", meta)
    messages = list(inspect_nwbfile(nwbfile_path=str(out), config=load_config("dandi")))
    serious = [m for m in messages if m.importance.name in (
        "CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR", "PYNWB_VALIDATION")]
    assert serious == [], [m.message for m in serious]
    si = nwbext.NwbSortingExtractor(str(out), sampling_frequency=FS)
    assert si.get_num_units() == 3
    np.testing.assert_allclose(si.get_property("waveform_mean"), mean, rtol=1e-5)


def test_padded_sparse_templates_are_written_dense_with_zeros(tmp_path):
    from spikeviz.model import Templates

    data = np.random.default_rng(2).normal(0, 50, (2, 10, 2)).astype(np.float32)
    templates = Templates(data, [0, 1], np.arange(4), sparse_channel_indices=[[2, 3], [1, -1]],
                          sampling_frequency=FS, nbefore=3)
    sorting = Sorting.from_arrays([10, 20], [0, 1], FS)
    session = Session(sorting, channel_ids=np.arange(4),
                      results={"nwb_templates": templates})
    out = write_nwb(session, tmp_path / "x.nwb", META)
    io, nwbfile = open_nwb(out)
    with io:
        mean = nwbfile.units["waveform_mean"].data[:]
        assert mean.shape == (2, 10, 4)
        for i in range(2):
            np.testing.assert_allclose(mean[i], templates.dense(i) * 1e-6, rtol=1e-6)
            assert list(nwbfile.units["electrodes"][i].index) == [0, 1, 2, 3]


def test_templates_of_other_units_are_left_out_with_a_warning(tmp_path):
    path, *_ = _waveform_file(tmp_path / "wf.nwb", sparse=False)
    session = nwb.read_session(path, sampling_frequency=FS)
    merged = Sorting.from_arrays(session.sorting.sample_index, np.zeros(6, int), FS,
                                 unit_ids=[99])
    with pytest.warns(UserWarning, match="left out: they do not cover every unit"):
        out = write_nwb(Session(merged, channel_ids=session.channel_ids,
                                results=session.results), tmp_path / "out.nwb", META)
    io, nwbfile = open_nwb(out)
    with io:
        assert "waveform_mean" not in nwbfile.units.colnames


def test_templates_replace_differing_unit_electrodes_with_a_warning(tmp_path):
    path, *_ = _waveform_file(tmp_path / "wf.nwb", sparse=True)
    session = nwb.read_session(path, sampling_frequency=FS)
    table = session.sorting.unit_table.copy()
    table["electrodes"] = pd.Series([np.array([0])] * 3, index=table.index, dtype=object)
    changed = Session(session.sorting.with_unit_table(table), channel_ids=session.channel_ids,
                      results=session.results)
    with pytest.warns(UserWarning, match="'electrodes' are replaced by the channels"):
        out = write_nwb(changed, tmp_path / "out.nwb", META)
    io, nwbfile = open_nwb(out)
    with io:
        assert list(nwbfile.units["electrodes"][0].index) == [4, 5]


# -- 3. string ids that look like integers --------------------------------------------------
@pytest.mark.parametrize("ids", [["1", "2", "10"], ["007", "x", "3"], [4, 9, 12], [-1, 2, 3]])
def test_unit_ids_keep_their_type(tmp_path, ids):
    sorting = Sorting.from_arrays([10, 20, 30, 40], [0, 1, 2, 2], FS, unit_ids=ids)
    out = write_nwb(Session(sorting), tmp_path / "ids.nwb", META)
    back = nwb.read_session(out, sampling_frequency=FS).sorting
    assert back.unit_ids.tolist() == ids
    assert back.unit_ids.dtype.kind == sorting.unit_ids.dtype.kind
    for uid in ids:
        np.testing.assert_array_equal(back.spike_train(uid), sorting.spike_train(uid))
    nwbext = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    si = nwbext.NwbSortingExtractor(str(out), sampling_frequency=FS)
    assert [str(u) for u in si.unit_ids] == [str(u) for u in ids]


def test_unmarked_integer_names_still_read_as_integers(tmp_path):
    """As SpikeInterface/neuroconv write them: unit_name = str(id), no mark."""
    nwbfile = _source_file()
    units = Units(name="units")
    units.add_column("unit_name", "Unique reference for each unit.")
    for name in ("1", "2", "10"):
        units.add_unit(spike_times=[0.1], unit_name=name)
    nwbfile.units = units
    session = nwb.read_session(_save(nwbfile, tmp_path / "si.nwb"), sampling_frequency=FS)
    assert session.sorting.unit_ids.tolist() == [1, 2, 10]


# -- 4. the real file -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def real(tmp_path_factory):
    src = shared_path("nwb", REAL_NAME)
    dst = tmp_path_factory.mktemp("real") / REAL_NAME
    shutil.copy(src, dst)
    return dst


def test_real_file_reexports_identically(real, tmp_path):
    before = sv.load(real, sampling_frequency=FS)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = sv.export.to_nwb(before, tmp_path / "again.nwb", metadata=META)
    _no_left_out_warning(record)
    after = sv.load(out, sampling_frequency=FS)
    a, b = before.sorting, after.sorting
    np.testing.assert_array_equal(b.unit_ids, a.unit_ids)
    assert b.unit_ids.dtype == a.unit_ids.dtype
    assert b.sampling_frequency == a.sampling_frequency
    np.testing.assert_array_equal(b.sample_index, a.sample_index)
    np.testing.assert_array_equal(b.unit_index, a.unit_index)
    assert b.labels.to_dict() == a.labels.to_dict()
    np.testing.assert_array_equal(after.channel_ids, before.channel_ids)
    np.testing.assert_array_equal(after.channel_locations_um, before.channel_locations_um)
    # the unit tables, column by column
    ta, tb = a.unit_table, b.unit_table
    assert set(ta.columns) <= set(tb.columns)
    assert set(tb.columns) - set(ta.columns) <= {"label"}
    assert "electrodes" in ta.columns
    for name in ta.columns:
        for unit_id in ta.index:
            x, y = ta.at[unit_id, name], tb.at[unit_id, name]
            if np.ndim(x):
                np.testing.assert_array_equal(y, x, err_msg=f"{name} of unit {unit_id}")
            else:
                assert x == y or (pd.isna(x) and pd.isna(y)), (name, unit_id)
    # and the file itself, against pynwb's view of the original
    io_a, nwb_a = open_nwb(real)
    io_b, nwb_b = open_nwb(out)
    with io_a, io_b:
        ua, ub = nwb_a.units, nwb_b.units
        np.testing.assert_array_equal(ub.id[:], ua.id[:])
        for i in range(len(ua)):
            want = np.sort(np.round(np.asarray(ua["spike_times"][i]) * FS))
            np.testing.assert_array_equal(np.round(np.asarray(ub["spike_times"][i]) * FS), want)
        rows_a = np.asarray(ua["electrodes"].data[:])
        rows_b = [list(ub["electrodes"][i].index) for i in range(len(ub))]
        assert rows_b == [[r] for r in rows_a.tolist()]
        # the electrodes table: groups, locations, brain coordinates and extra columns
        assert set(nwb_b.electrode_groups) == set(nwb_a.electrode_groups)
        for name, group in nwb_a.electrode_groups.items():
            assert nwb_b.electrode_groups[name].location == group.location
        ea, eb = nwb_a.electrodes.to_dataframe(), nwb_b.electrodes.to_dataframe()
        for name in ("x", "y", "z", "imp", "location", "filtering", "origChannel"):
            want, got = _text(ea[name]), _text(eb[name])
            pd.testing.assert_series_equal(got, want, check_dtype=False, obj=name)
        assert [g.name for g in eb["group"]] == [g.name for g in ea["group"]]
        assert "rel_x" not in eb  # brain coordinates are not relabelled as probe positions
    assert after.results["nwb_geometry_source"] == "x/y"


def test_electrode_groups_locations_and_columns_are_carried_over(tmp_path):
    nwbfile = NWBFile(session_description="test", identifier="spikeviz-electrodes",
                      session_start_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    device = nwbfile.create_device("probe")
    groups = [nwbfile.create_electrode_group(f"shank{g}", "a shank", "VISp", device)
              for g in range(2)]
    nwbfile.add_electrode_column("impedance_kohm", "impedance in kOhm")
    for i in range(4):
        nwbfile.add_electrode(x=100.0 + i, y=200.0, z=300.0, location=["VISp", "VISp",
                              "CA1", "DG"][i], group=groups[i // 2], rel_x=0.0,
                              rel_y=20.0 * i, impedance_kohm=150.0 + i)
    units = Units(name="units", electrode_table=nwbfile.electrodes)
    units.add_unit(spike_times=[0.1, 0.2], electrodes=[2], electrode_group=groups[1])
    nwbfile.units = units
    session = nwb.read_session(_save(nwbfile, tmp_path / "src.nwb"), sampling_frequency=FS)
    assert session.sorting.unit_table["electrode_group"].tolist() == ["shank1"]
    out = _rewrite(session, tmp_path)
    io, back = open_nwb(out)
    with io:
        assert {n: g.location for n, g in back.electrode_groups.items()} == {
            "shank0": "VISp", "shank1": "CA1"}  # the most common location of its channels
        frame = back.electrodes.to_dataframe()
        assert frame["location"].tolist() == ["VISp", "VISp", "CA1", "DG"]
        assert frame["group_name"].tolist() == ["shank0", "shank0", "shank1", "shank1"]
        np.testing.assert_array_equal(frame["impedance_kohm"], [150.0, 151.0, 152.0, 153.0])
        np.testing.assert_array_equal(frame["x"], [100.0, 101.0, 102.0, 103.0])
        np.testing.assert_array_equal(frame["rel_y"], [0.0, 20.0, 40.0, 60.0])
        assert list(back.units["electrodes"][0].index) == [2]
        assert back.units["electrode_group"][0].name == "shank1"
    again = nwb.read_session(out, sampling_frequency=FS).sorting.unit_table
    assert again["electrode_group"].tolist() == ["shank1"]
    # metadata still wins for what it names
    meta = {**META, "Ecephys": {"ElectrodeGroup": [{"name": "shank1", "location": "LGd"}]}}
    out = write_nwb(session, tmp_path / "meta.nwb", meta)
    io, back = open_nwb(out)
    with io:
        assert back.electrode_groups["shank1"].location == "LGd"
        assert list(back.electrodes["location"][:]) == ["VISp", "VISp", "LGd", "LGd"]


def test_recording_read_from_nwb_keeps_its_group_names(tmp_path):
    from pynwb.ecephys import ElectricalSeries

    nwbfile = NWBFile(session_description="test", identifier="spikeviz-series",
                      session_start_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    device = nwbfile.create_device("probe")
    groups = [nwbfile.create_electrode_group(name, "a shank", "CA1", device)
              for name in ("left", "right")]
    for i in range(5):
        nwbfile.add_electrode(location="CA1", group=groups[int(i >= 2)], rel_x=0.0,
                              rel_y=20.0 * i, x=1.0, y=2.0, z=3.0)
    data = np.random.default_rng(1).integers(-100, 100, (3000, 4), dtype=np.int16)
    region = nwbfile.create_electrode_table_region([0, 2, 3, 4], "recorded channels")
    nwbfile.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=data, rate=FS,
                                             electrodes=region, conversion=1e-6))
    units = Units(name="units", electrode_table=nwbfile.electrodes)
    units.add_unit(spike_times=[0.01, 0.05], electrodes=[3])
    nwbfile.units = units
    session = nwb.read_session(_save(nwbfile, tmp_path / "src.nwb"))
    assert session.recording.channel_ids.tolist() == [0, 2, 3, 4]
    out = write_nwb(session, tmp_path / "out.nwb", META, include_recording=True)
    io, back = open_nwb(out)
    with io:
        assert list(back.electrodes["group_name"][:]) == ["left", "right", "right", "right"]
        assert list(back.electrodes["channel_name"][:]) == ["0", "2", "3", "4"]
        assert list(back.units["electrodes"][0].index) == [2]  # channel 3: the third row
        np.testing.assert_array_equal(back.acquisition["ElectricalSeries"].data[:], data)
    # groups that no longer match the recording's: the recording's own, named by number
    session.recording.channel_groups = np.array([0, 0, 1, 1])
    out = write_nwb(session, tmp_path / "regrouped.nwb", META)
    io, back = open_nwb(out)
    with io:
        assert list(back.electrodes["group_name"][:]) == ["0", "0", "1", "1"]
    del session


def test_computed_templates_win_over_those_of_the_file(tmp_path):
    from pynwb.ecephys import ElectricalSeries

    nwbfile = _source_file(num_channels=4)
    rng = np.random.default_rng(5)
    data = rng.normal(0, 20, (30_000, 4)).astype(np.int16)
    nwbfile.add_acquisition(ElectricalSeries(
        name="ElectricalSeries", data=data, rate=FS, conversion=1e-6,
        electrodes=nwbfile.create_electrode_table_region([0, 1, 2, 3], "all")))
    units = Units(name="units", waveform_rate=FS, waveform_unit="volts")
    times = np.arange(0.01, 0.95, 0.01)
    units.add_unit(spike_times=times, waveform_mean=np.ones((7, 4)) * 1e-5)
    nwbfile.units = units
    session = nwb.read_session(_save(nwbfile, tmp_path / "src.nwb"))
    session.cache_dir = None
    assert session.results["nwb_templates"].data.shape == (1, 7, 4)
    kept = write_nwb(session, tmp_path / "kept.nwb", META)  # nothing computed: the file's
    computed = write_nwb(session, tmp_path / "computed.nwb", META, compute=True)
    io_a, a = open_nwb(kept)
    io_b, b = open_nwb(computed)
    with io_a, io_b:
        np.testing.assert_allclose(a.units["waveform_mean"].data[:], 1e-5, rtol=1e-6)
        templates = session.compute("templates")
        assert b.units["waveform_mean"].data.shape == templates.data.shape != (1, 7, 4)
        np.testing.assert_allclose(b.units["waveform_mean"].data[:], templates.data * 1e-6,
                                   rtol=1e-5, atol=1e-12)


def test_series_starting_time_is_written_back(tmp_path):
    """Spike samples count from the series' first sample (t0 = starting_time); a re-export
    puts every spike, the observation intervals and the series back at their original times
    in the file's clock."""
    from pynwb.ecephys import ElectricalSeries

    f = NWBFile("t0", "t0-file", datetime(2024, 1, 1, tzinfo=UTC))
    device = f.create_device("probe")
    group = f.create_electrode_group("0", "shank", "CA1", device)
    for i in range(4):
        f.add_electrode(group=group, location="CA1", x=0.0, y=20.0 * i, z=0.0)
    region = f.create_electrode_table_region(list(range(4)), "all")
    data = (np.random.default_rng(0).normal(size=(60_000, 4)) * 50).astype("int16")
    f.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=data, electrodes=region,
                                       rate=30_000.0, starting_time=100.0, conversion=1e-6))
    f.add_unit(spike_times=[100.5, 101.0, 101.5], obs_intervals=[[100.0, 102.0]])
    f.add_unit(spike_times=[100.25, 101.75], obs_intervals=[[100.0, 102.0]])
    src = tmp_path / "t0.nwb"
    with NWBHDF5IO(str(src), "w") as io:
        io.write(f)
    session = sv.load(src)
    np.testing.assert_array_equal(session.sorting.spike_train(0), [15_000, 30_000, 45_000])
    for include in (False, True):
        out = tmp_path / f"re_{include}.nwb"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sv.export.to_nwb(session, out, include_recording=include)
        with NWBHDF5IO(str(out), "r") as io:
            back = io.read()
            np.testing.assert_allclose(back.units["spike_times"][0], [100.5, 101.0, 101.5],
                                       rtol=0, atol=1e-12)
            np.testing.assert_allclose(back.units["obs_intervals"][1], [[100.0, 102.0]])
            if include:
                assert back.acquisition["ElectricalSeries"].starting_time == 100.0
        again = sv.load(out, sampling_frequency=30_000.0)
        # with the series, samples count from its first sample again; without one, from
        # session_start_time (the times in seconds are the same either way)
        shift = 0 if include else 3_000_000
        np.testing.assert_array_equal(again.sorting.spike_train(1),
                                      np.array([7_500, 52_500]) + shift)


def test_session_and_subject_facts_of_the_source_file_are_kept(tmp_path):
    """NWB → NWB keeps the source's session start, description and subject (the user's
    metadata wins field by field); a source value the checks refuse is dropped, said."""
    src = shared_path("nwb", "sub-4_ses-4_ecephys+image.nwb")
    session = sv.load(shutil.copy(src, tmp_path / "src.nwb"), sampling_frequency=30_000.0)
    out = tmp_path / "re.nwb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sv.export.to_nwb(session, out, metadata={"Subject": {"subject_id": "P4"}})
    with NWBHDF5IO(str(src), "r") as io_a, NWBHDF5IO(str(out), "r") as io_b:
        a, b = io_a.read(), io_b.read()
        assert b.session_start_time == a.session_start_time
        assert b.session_description == a.session_description
        assert b.lab == a.lab and b.experiment_description == a.experiment_description
        assert (b.subject.species, b.subject.sex, b.subject.age) == \
            (a.subject.species, a.subject.sex, a.subject.age)
        assert b.subject.subject_id == "P4"  # the user's value wins
        assert b.identifier != a.identifier  # a new file gets a new identifier

    # a source age that is not ISO 8601: dropped with a warning, the export goes on
    f = NWBFile("odd", "odd-1", datetime(2024, 1, 1, tzinfo=UTC))
    from pynwb.file import Subject

    f.subject = Subject(subject_id="s1", species="Mus musculus", sex="F", age="90 days")
    f.units = Units(name="units")
    f.add_unit(spike_times=[0.5, 1.0])
    odd = tmp_path / "odd.nwb"
    with NWBHDF5IO(str(odd), "w") as io:
        io.write(f)
    loaded = sv.load(odd, sampling_frequency=30_000.0)
    with pytest.warns(UserWarning, match=r"Subject\.age was left out"):
        sv.export.to_nwb(loaded, tmp_path / "odd_re.nwb")
    with NWBHDF5IO(str(tmp_path / "odd_re.nwb"), "r") as io:
        subject = io.read().subject
        assert (subject.species, subject.sex, subject.age) == ("Mus musculus", "F", None)
