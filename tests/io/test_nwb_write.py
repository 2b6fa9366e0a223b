"""NWB writer: read back by pynwb, SpikeInterface's NWB extractors and nwbinspector."""

import datetime as dt
import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

pynwb = pytest.importorskip("pynwb")

from spikeviz.datasets import generate  # noqa: E402
from spikeviz.errors import InputError  # noqa: E402
from spikeviz.io.nwb_write import load_metadata, write_nwb  # noqa: E402
from spikeviz.model import Recording, Session, Sorting  # noqa: E402

DANDI_METADATA = {
    "NWBFile": {"session_start_time": "2024-05-01T10:00:00+02:00",
                "session_description": "Acute Neuropixels recording in V1.",
                "identifier": "spikeviz-test-0001", "experimenter": ["Doe, Jane"],
                "institution": "Test Institute", "lab": "Test Lab",
                "experiment_description": "Synthetic ground truth for the writer tests.",
                "keywords": ["spike sorting", "synthetic"], "session_id": "s01"},
    "Subject": {"subject_id": "m42", "species": "Mus musculus", "sex": "F", "age": "P90D",
                "description": "Synthetic mouse.", "strain": "C57BL/6J", "weight": "25 g"},
    "Ecephys": {"Device": [{"name": "Probe", "description": "Synthetic 2-column probe.",
                            "manufacturer": "spikeviz"}],
                "ElectrodeGroup": [{"name": "ElectrodeGroup", "description": "The shank.",
                                    "location": "VISp", "device": "Probe"}],
                "ElectricalSeries": {"name": "ElectricalSeriesRaw",
                                     "description": "Raw broadband traces."}},
}


@pytest.fixture(scope="module")
def truth():
    return generate(duration_s=4.0, num_channels=16, num_units=6, seed=1)


@pytest.fixture(scope="module")
def session(truth):
    session = truth.session()
    session.cache_dir = None
    return session


@pytest.fixture(scope="module")
def full_file(session, tmp_path_factory):
    """Recording, templates and metrics (compute=True), DANDI metadata."""
    path = tmp_path_factory.mktemp("nwb") / "full.nwb"
    calls = []
    write_nwb(session, path, DANDI_METADATA, include_recording=True, compute=True,
              chunk_mb=0.2, progress=lambda step, f: calls.append((step, f)))
    return path, calls


def read(path):
    io = pynwb.NWBHDF5IO(str(path), "r")
    return io, io.read()


def inspect(path):
    from nwbinspector import inspect_nwbfile, load_config

    messages = list(inspect_nwbfile(nwbfile_path=str(path), config=load_config("dandi")))
    for m in messages:
        print(m.importance.name, m.check_function_name, m.object_name, m.message)
    return messages


def serious(messages):
    return [m for m in messages
            if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR",
                                     "PYNWB_VALIDATION")]


# -- Units --------------------------------------------------------------------------------
def test_spike_times_ids_labels_and_metrics(session, full_file):
    path, _ = full_file
    sorting = session.sorting
    fs = sorting.sampling_frequency
    io, nwb = read(path)
    with io:
        units = nwb.units
        np.testing.assert_array_equal(units.id[:], sorting.unit_ids)
        assert "unit_name" not in units.colnames
        assert units.resolution == 1.0 / fs
        for i, uid in enumerate(sorting.unit_ids):
            times = np.asarray(units["spike_times"][i])
            assert times.dtype == np.float64
            np.testing.assert_array_equal(times, sorting.spike_train(uid) / fs)
            np.testing.assert_array_equal(np.round(times * fs).astype(np.int64),
                                          sorting.spike_train(uid))
            np.testing.assert_array_equal(units["obs_intervals"][i],
                                          [[0.0, sorting.num_samples / fs]])
        assert list(units["quality"][:]) == sorting.labels.tolist()
        metrics = session.compute("quality_metrics")
        assert len(metrics.columns) >= 5
        for name in metrics.columns:
            np.testing.assert_allclose(np.asarray(units[name][:], dtype=float),
                                       metrics[name].to_numpy(dtype=float), equal_nan=True)
            assert units[name].description and "exported" not in units[name].description
        assert "Hz" in units["firing_rate"].description
        # properties of the ground-truth unit table, each with its dtype
        table = sorting.unit_table
        assert list(units["kind"][:]) == table["kind"].tolist()
        np.testing.assert_array_equal(units["drifting"][:], table["drifting"].to_numpy())
        np.testing.assert_allclose(units["z_um"][:], table["z_um"].to_numpy())


def test_waveforms_are_volts_on_the_units_electrodes(session, full_file):
    path, _ = full_file
    templates = session.compute("templates")
    io, nwb = read(path)
    with io:
        units = nwb.units
        mean = np.asarray(units["waveform_mean"].data[:])
        n_units, n_samples, n_channels = templates.data.shape
        assert mean.shape == (n_units, n_samples, n_channels)
        assert units.waveform_unit == "volts" and units.waveform_rate == 30000.0
        assert units.waveform_time_before_peak_in_ms == pytest.approx(
            templates.nbefore / 30.0)
        np.testing.assert_allclose(mean, templates.data * 1e-6, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(units["waveform_sd"].data[:], templates.std * 1e-6,
                                   rtol=1e-5, atol=1e-12)
        names = nwb.electrodes["channel_name"][:]
        for i in range(n_units):
            rows = units["electrodes"][i].index.to_numpy()
            assert [names[r] for r in rows] == [str(c) for c in templates.channel_ids]


def test_electrodes_geometry_and_metadata(session, full_file):
    path, _ = full_file
    io, nwb = read(path)
    with io:
        electrodes = nwb.electrodes.to_dataframe()
        locations = session.recording.channel_locations_um
        np.testing.assert_array_equal(electrodes["rel_x"], locations[:, 0])
        np.testing.assert_array_equal(electrodes["rel_y"], locations[:, 1])
        assert electrodes["channel_name"].tolist() == [str(c) for c in
                                                       session.recording.channel_ids]
        assert set(electrodes["location"]) == {"VISp"}
        assert set(electrodes["group_name"]) == {"ElectrodeGroup"}
        assert nwb.devices["Probe"].model.manufacturer == "spikeviz"
        start = nwb.session_start_time
        assert start == dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        assert start.utcoffset() == dt.timedelta(hours=2)
        assert nwb.identifier == "spikeviz-test-0001"
        assert list(nwb.experimenter) == ["Doe, Jane"]
        assert list(nwb.keywords[:]) == ["spike sorting", "synthetic"]
        subject = nwb.subject
        assert (subject.subject_id, subject.species, subject.sex, subject.age) == \
            ("m42", "Mus musculus", "F", "P90D")
        assert subject.weight == "25 g"


def test_recording_is_written_in_chunks_with_progress(session, full_file):
    path, calls = full_file
    rec = session.recording
    io, nwb = read(path)
    with io:
        series = nwb.acquisition["ElectricalSeriesRaw"]
        assert series.data.dtype == rec.dtype and series.data.shape == (rec.num_samples, 16)
        assert series.data.compression == "gzip"
        assert series.data.chunks[1] == 16 and series.data.chunks[0] < rec.num_samples
        assert series.rate == 30000.0 and series.starting_time == 0.0
        assert series.conversion == pytest.approx(0.195e-6) and series.offset == 0.0
        np.testing.assert_array_equal(series.data[5000:5300], rec.traces(5000, 5300,
                                                                        scaled=False))
    fractions = [f for step, f in calls if step == "recording"]
    assert len(fractions) > 1 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert calls[0] == ("nwb", 0.0) and calls[-1] == ("nwb", 1.0)


# -- SpikeInterface ------------------------------------------------------------------------
def test_spikeinterface_reads_the_sorting_and_recording(session, full_file):
    nwbext = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    path, _ = full_file
    sorting = session.sorting
    si_sorting = nwbext.NwbSortingExtractor(
        str(path), electrical_series_path="acquisition/ElectricalSeriesRaw")
    assert si_sorting.sampling_frequency == sorting.sampling_frequency
    assert list(si_sorting.unit_ids) == sorting.unit_ids.tolist()
    assert np.asarray(si_sorting.unit_ids).dtype.kind == "i"
    for uid in sorting.unit_ids:
        np.testing.assert_array_equal(si_sorting.get_unit_spike_train(uid),
                                      sorting.spike_train(uid))
    assert list(si_sorting.get_property("quality")) == sorting.labels.tolist()

    si_rec = nwbext.NwbRecordingExtractor(str(path))
    rec = session.recording
    assert list(si_rec.channel_ids) == [str(c) for c in rec.channel_ids]
    np.testing.assert_array_equal(si_rec.get_channel_locations(), rec.channel_locations_um)
    np.testing.assert_allclose(si_rec.get_traces(start_frame=1000, end_frame=1600,
                                                 return_in_uV=True),
                               rec.traces(1000, 1600), rtol=1e-5, atol=1e-3)


def test_sorting_only_file_reads_in_spikeinterface(truth, tmp_path):
    nwbext = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    sorting = truth.sorter_output.sorting
    path = write_nwb(Session(sorting), tmp_path / "sorting.nwb", DANDI_METADATA)
    si_sorting = nwbext.NwbSortingExtractor(str(path))
    assert si_sorting.sampling_frequency == sorting.sampling_frequency
    assert list(si_sorting.unit_ids) == sorting.unit_ids.tolist()
    for uid in sorting.unit_ids:
        np.testing.assert_array_equal(si_sorting.get_unit_spike_train(uid),
                                      sorting.spike_train(uid))
    io, nwb = read(path)
    with io:
        assert nwb.electrodes is None and not nwb.acquisition
        assert "waveform_mean" not in nwb.units.colnames
        assert list(nwb.units["quality"][:]) == sorting.labels.tolist()


def test_string_ids_zero_spike_units_and_odd_columns(tmp_path):
    nwbext = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    ids = ["b", "a", "empty", "c"]
    table = pd.DataFrame({
        "label": ["good", "noise", None, "mua"],
        "depth_um": [10.0, np.nan, 30.0, 40.0],
        "count": pd.array([1, None, 3, 4], dtype="Int64"),
        "flag": [True, False, True, True],
        "note": ["x", None, "z", "w"],
        "waveform_list": [[1, 2], [3], [], [4]],
        "spike_times": [1, 2, 3, 4],
    }, index=pd.Index(ids, name="unit_id"))
    sample_index = np.array([30, 300, 3000, 4000, 4500, 9000])
    unit_index = np.array([0, 1, 0, 3, 3, 1])
    sorting = Sorting.from_arrays(sample_index, unit_index, 30000.0, unit_ids=ids,
                                  unit_table=table)
    with pytest.warns(UserWarning, match="waveform_list.*spike_times|spike_times"):
        path = write_nwb(Session(sorting), tmp_path / "s.nwb")
    io, nwb = read(path)
    with io:
        units = nwb.units
        np.testing.assert_array_equal(units.id[:], np.arange(4))
        assert list(units["unit_name"][:]) == ids
        assert len(units["spike_times"][2]) == 0
        np.testing.assert_array_equal(units["spike_times"][1], [300 / 30000, 9000 / 30000])
        assert list(units["quality"][:]) == ["good", "noise", "unsorted", "mua"]
        np.testing.assert_array_equal(units["depth_um"][:], [10.0, np.nan, 30.0, 40.0])
        np.testing.assert_array_equal(units["count"][:], [1.0, np.nan, 3.0, 4.0])
        assert units["flag"].data.dtype == bool
        assert list(units["note"][:]) == ["x", "", "z", "w"]
        assert "waveform_list" not in units.colnames
        assert units["spike_times"].target.description.startswith("Spike times")
    si_sorting = nwbext.NwbSortingExtractor(str(path))
    assert [str(u) for u in si_sorting.unit_ids] == ids
    assert si_sorting.get_unit_spike_train("empty").size == 0
    np.testing.assert_array_equal(si_sorting.get_unit_spike_train("c"), [4000, 4500])


def test_negative_integer_ids_become_unit_names(tmp_path):
    sorting = Sorting.from_arrays([10, 20], [0, 1], 30000.0, unit_ids=[-1, 5])
    path = write_nwb(Session(sorting), tmp_path / "neg.nwb")
    io, nwb = read(path)
    with io:
        assert list(nwb.units["unit_name"][:]) == ["-1", "5"]


def test_channel_groups_and_per_channel_gains(tmp_path):
    nwbext = pytest.importorskip("spikeinterface.extractors.nwbextractors")
    rng = np.random.default_rng(0)
    traces = rng.integers(-500, 500, size=(3000, 4)).astype(np.int16)
    gains = np.array([0.195, 0.195, 0.5, 0.5])
    rec = Recording.from_array(traces, 30000.0, channel_locations=[[0, 0], [0, 20], [200, 0],
                                                                    [200, 20]],
                               channel_ids=np.array([10, 11, 20, 21]),
                               channel_groups=[0, 0, 1, 1], gains_to_uv=gains,
                               offsets_to_uv=-10.0)
    sorting = Sorting.from_arrays([100, 200], [0, 0], 30000.0)
    metadata = {"NWBFile": {"session_start_time": "2024-05-01T10:00:00Z"},
                "Ecephys": {"ElectrodeGroup": [{"name": "1", "location": "CA1",
                                                "description": "Shank 1."}]}}
    path = write_nwb(Session(sorting, recording=rec), tmp_path / "g.nwb", metadata,
                     include_recording=True, compression="lzf")
    io, nwb = read(path)
    with io:
        assert set(nwb.electrode_groups) == {"0", "1"}
        assert nwb.electrode_groups["1"].location == "CA1"
        assert list(nwb.electrodes["location"][:]) == ["unknown", "unknown", "CA1", "CA1"]
        series = nwb.acquisition["ElectricalSeries"]
        np.testing.assert_allclose(series.channel_conversion[:], gains, rtol=1e-6)
        assert series.offset == pytest.approx(-10e-6)
    si_rec = nwbext.NwbRecordingExtractor(str(path))
    np.testing.assert_allclose(si_rec.get_traces(return_in_uV=True), rec.traces(),
                               rtol=1e-5, atol=1e-3)
    assert list(si_rec.get_channel_groups()) == ["0", "0", "1", "1"]


# -- nwbinspector --------------------------------------------------------------------------
def test_nwbinspector_clean_with_dandi_metadata(full_file):
    path, _ = full_file
    assert serious(inspect(path)) == []


def test_nwbinspector_names_missing_subject(session, tmp_path):
    metadata = {"NWBFile": {"session_start_time": "2024-05-01T10:00:00+00:00"}}
    path = write_nwb(session, tmp_path / "nosubject.nwb", metadata)
    found = serious(inspect(path))
    assert found and all("subject" in (m.check_function_name + m.message).lower()
                         for m in found)


# -- metadata ------------------------------------------------------------------------------
@pytest.mark.parametrize("metadata, field", [
    ({"Session": {}}, "metadata"),
    ({"NWBFile": {"session_start_time": "2024-05-01T10:00:00"}}, "NWBFile.session_start_time"),
    ({"NWBFile": {"session_start_time": dt.datetime(2024, 5, 1)}},
     "NWBFile.session_start_time"),
    ({"NWBFile": {"session_start_time": "yesterday"}}, "NWBFile.session_start_time"),
    ({"NWBFile": {"session_start_time": "2999-01-01T00:00:00Z"}},
     "NWBFile.session_start_time"),
    ({"NWBFile": {"lab": 3}}, "NWBFile.lab"),
    ({"NWBFile": {"colour": "red"}}, "NWBFile"),
    ({"NWBFile": {"keywords": []}}, "NWBFile.keywords"),
    ({"Subject": {"sex": "female"}}, "Subject.sex"),
    ({"Subject": {"age": "90 days"}}, "Subject.age"),
    ({"Subject": {"species": "mouse"}}, "Subject.species"),
    ({"Subject": {"subject_id": "a/b"}}, "Subject.subject_id"),
    ({"Subject": {"weight": "25"}}, "Subject.weight"),
    ({"Subject": {"date_of_birth": "2024-01-01"}}, "Subject.date_of_birth"),
    ({"Ecephys": {"Device": [{"description": "no name"}]}}, "Ecephys.Device[0]"),
    ({"Ecephys": {"ElectrodeGroup": [{"name": "g", "device": "missing"}]}},
     "Ecephys.ElectrodeGroup[0].device"),
    ({"Ecephys": {"ElectrodeGroup": [{"name": "a"}, {"name": "b"}]}}, "Ecephys.ElectrodeGroup"),
])
def test_bad_metadata_is_refused_before_any_file(session, tmp_path, metadata, field):
    with pytest.raises(InputError) as err:
        write_nwb(session, tmp_path / "bad.nwb", metadata)
    assert err.value.field == field
    assert list(tmp_path.iterdir()) == []


def test_missing_start_time_is_a_recorded_placeholder(tmp_path):
    sorting = Sorting.from_arrays([10, 20], [0, 1], 30000.0)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with pytest.warns(UserWarning, match="session_start_time"):
        path = write_nwb(Session(sorting), tmp_path / "t.nwb")
    io, nwb = read(path)
    with io:
        assert nwb.session_start_time.utcoffset() == dt.timedelta(0)
        assert nwb.session_start_time >= before
        assert "placeholder" in nwb.notes
        assert nwb.subject is None
        assert len(nwb.identifier) == 36  # a uuid4


def test_load_metadata_yaml_and_json(tmp_path):
    yaml_path = tmp_path / "meta.yaml"
    yaml_path.write_text("NWBFile:\n  session_start_time: '2024-05-01T10:00:00+02:00'\n"
                         "Subject:\n  subject_id: m1\n  age: P90D\n")
    assert load_metadata(yaml_path)["Subject"]["age"] == "P90D"
    json_path = tmp_path / "meta.json"
    json_path.write_text(json.dumps(DANDI_METADATA))
    assert load_metadata(json_path) == DANDI_METADATA
    bad = tmp_path / "bad.yaml"
    bad.write_text("NWBFile: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML") as err:
        load_metadata(bad)
    assert err.value.path == bad
    code = tmp_path / "code.yaml"
    code.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(InputError):
        load_metadata(code)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"Subject": {"sex": "x"}}))
    with pytest.raises(InputError) as err:
        load_metadata(wrong)
    assert err.value.field == "Subject.sex" and err.value.path == wrong
    with pytest.raises(InputError, match="no such"):
        load_metadata(tmp_path / "absent.yaml")


# -- files ---------------------------------------------------------------------------------
def small_session(**recording_kwargs):
    traces = np.arange(60000, dtype=np.int16).reshape(-1, 4) % 1000
    rec = Recording.from_array(traces, 30000.0, **recording_kwargs)
    return Session(Sorting.from_arrays([100, 200, 300], [0, 1, 0], 30000.0), recording=rec)


def test_existing_file_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "x.nwb"
    path.write_bytes(b"old")
    with pytest.raises(InputError, match="already exists"):
        write_nwb(small_session(), path)
    assert path.read_bytes() == b"old"
    write_nwb(small_session(), path, overwrite=True)
    io, nwb = read(path)
    with io:
        assert len(nwb.units) == 2


def test_unwritable_destinations_leave_nothing(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        write_nwb(small_session(), tmp_path / "missing" / "x.nwb")
    with pytest.raises(InputError, match="could not write"):
        write_nwb(small_session(), "/proc/spikeviz-test.nwb")  # refused even to root
    assert not any(p.name.startswith(".spikeviz-test") for p in os.scandir("/proc"))
    if os.geteuid() != 0:  # permissions do not bind root
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="not writable"):
            write_nwb(small_session(), locked / "x.nwb")
        assert list(locked.iterdir()) == []


def test_failure_while_writing_chunks_leaves_nothing(tmp_path):
    session = small_session()
    rec = session.recording
    original = rec.traces
    calls = []

    def failing(start, end, *args, **kwargs):
        calls.append(start)
        if len(calls) == 3:
            raise RuntimeError("disk unplugged")
        return original(start, end, *args, **kwargs)

    rec.traces = failing
    with pytest.raises(RuntimeError, match="disk unplugged"):
        write_nwb(session, tmp_path / "x.nwb", include_recording=True, chunk_mb=0.002)
    assert len(calls) == 3  # failed in the middle, after chunks were written
    assert list(tmp_path.iterdir()) == []


def test_recording_problems_are_input_errors(tmp_path):
    sorting = Sorting.from_arrays([1], [0], 30000.0)
    with pytest.raises(InputError, match="no recording") as err:
        write_nwb(Session(sorting), tmp_path / "x.nwb", include_recording=True)
    assert err.value.field == "include_recording"
    with pytest.raises(InputError, match="gain to µV is unknown"):
        write_nwb(small_session(gain_known=False), tmp_path / "x.nwb", include_recording=True)
    for kwargs, field in [({"compression": "zstd"}, "compression"),
                          ({"compression_level": 12}, "compression_level"),
                          ({"chunk_mb": 0}, "chunk_mb")]:
        with pytest.raises(InputError) as err:
            write_nwb(small_session(), tmp_path / "x.nwb", **kwargs)
        assert err.value.field == field
    assert list(tmp_path.iterdir()) == []


def test_uncompressed_write_and_metadata_file_path(tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"NWBFile": {"session_start_time": "2024-05-01T10:00:00Z"}}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete start time: no placeholder warning
        path = write_nwb(small_session(), tmp_path / "x.nwb", metadata=meta,
                         include_recording=True, compression=None)
    io, nwb = read(path)
    with io:
        assert nwb.acquisition["ElectricalSeries"].data.compression is None
        assert nwb.units["spike_times"].data.compression is None


def test_templates_without_a_gain_are_left_out_with_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    traces = rng.normal(0, 30, (30000, 4)).astype(np.int16)
    rec = Recording.from_array(traces, 30000.0, gain_known=False)
    sorting = Sorting.from_arrays(np.arange(100, 29000, 300), np.zeros(97, int), 30000.0)
    session = Session(sorting, recording=rec, cache_dir=None)
    with pytest.warns(UserWarning, match="waveform_mean/waveform_sd left out.*raw"):
        path = write_nwb(session, tmp_path / "raw.nwb", compute=True,
                         metadata={"NWBFile": {"session_start_time": "2024-05-01T10:00:00Z"}})
    io, nwb = read(path)
    with io:
        assert "waveform_mean" not in nwb.units.colnames
        assert len(nwb.electrodes) == 4 and "snr" in nwb.units.colnames


def test_channels_without_a_recording_still_give_electrodes(tmp_path):
    sorting = Sorting.from_arrays([10, 20], [0, 1], 30000.0)
    session = Session(sorting, channel_ids=np.array([3, 1, 2]),
                      channel_locations_um=np.array([[0.0, 0.0], [0.0, 20.0], [16.0, 40.0]]))
    path = write_nwb(session, tmp_path / "ch.nwb",
                     metadata={"NWBFile": {"session_start_time": "2024-05-01T10:00:00Z"}})
    io, nwb = read(path)
    with io:
        frame = nwb.electrodes.to_dataframe()
        assert frame["channel_name"].tolist() == ["3", "1", "2"]
        np.testing.assert_array_equal(frame[["rel_x", "rel_y"]].to_numpy(),
                                      session.channel_locations_um)
        assert list(nwb.electrode_groups) == ["ElectrodeGroup"]
        assert not nwb.acquisition


@pytest.mark.parametrize("fs", [30000.0, 32000.5, 30000.27, 19531.25])
def test_seconds_round_trip_to_samples_exactly(fs):
    from spikeviz.io.nwb_write_units import spike_times_s

    rng = np.random.default_rng(7)
    samples = np.sort(np.concatenate([rng.integers(0, 10 ** k, 20000) for k in range(3, 16)]))
    sorting = Sorting.from_arrays(samples, np.zeros(samples.size, np.int32), fs)
    times, ends = spike_times_s(sorting)
    assert ends.tolist() == [samples.size]
    np.testing.assert_array_equal(np.round(times * fs).astype(np.int64), samples)


def test_unknown_mouse_electrode_location_is_warned_and_flagged(session, tmp_path):
    """Without a group location, mouse data get a warning naming the fix, and nwbinspector
    indeed flags 'unknown' (so the warning is not noise); with it, nothing is flagged."""
    metadata = {k: dict(v) for k, v in DANDI_METADATA.items() if k != "Ecephys"}
    path = tmp_path / "noloc.nwb"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_nwb(session, path, metadata)
    assert any("ElectrodeGroup" in str(w.message) and "location" in str(w.message)
               for w in caught)
    names = {m.check_function_name for m in serious(inspect(path))}
    assert names == {"check_electrodes_location_allen_ccf"}
    metadata["Ecephys"] = {"ElectrodeGroup": [{"name": "shank", "description": "The shank.",
                                               "location": "VISp"}]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_nwb(session, tmp_path / "loc.nwb", metadata)
    assert not any("location" in str(w.message) for w in caught)
    assert serious(inspect(tmp_path / "loc.nwb")) == []


def test_per_channel_offsets_are_written_with_a_warning(tmp_path):
    """NWB has one offset per series: per-channel offsets go to electrodes.offset (which
    SpikeInterface applies) and the user is told that the plain NWB formula ignores them."""
    session = small_session(gains_to_uv=[0.5] * 4, offsets_to_uv=[-10.0, 5.0, 0.0, 100.0])
    with pytest.warns(UserWarning, match="offsets differ between channels"):
        write_nwb(session, tmp_path / "o.nwb", include_recording=True)
    uniform = small_session(gains_to_uv=[0.5] * 4, offsets_to_uv=[3.0] * 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_nwb(uniform, tmp_path / "u.nwb", include_recording=True)
    assert not any("offsets differ" in str(w.message) for w in caught)
    io, nwbfile = read(tmp_path / "o.nwb")
    try:
        np.testing.assert_allclose(nwbfile.electrodes["offset"][:],
                                   [-10e-6, 5e-6, 0.0, 100e-6])
    finally:
        io.close()
