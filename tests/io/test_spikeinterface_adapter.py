"""SpikeInterface adapters: SpikeInterface's own objects and readers are the references."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from spikeviz.io import spikeglx
from spikeviz.io import spikeinterface_ as adapter
from spikeviz.model import Templates
from spikeviz.model import analysis as analysis_module

sc = pytest.importorskip("spikeinterface.core")

META_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "spikeglx_meta"
if not META_DIR.is_dir():
    META_DIR = Path("/work/shared/data/spikeglx_meta")

EXTENSIONS = ["random_spikes", "templates", "noise_levels", "spike_amplitudes",
              "unit_locations", "correlograms", "isi_histograms", "template_similarity",
              "quality_metrics"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def gt():
    """A seeded ground-truth recording (float32, filtered, 8 channels) and sorting (str ids)."""
    recording, sorting = sc.generate_ground_truth_recording(
        durations=[6.0], num_channels=8, num_units=5, seed=7)
    return recording, sorting


@pytest.fixture(scope="module")
def scaled_int16():
    """An int16 NumpyRecording with per-channel gains/offsets, a probe and two groups."""
    from probeinterface import generate_linear_probe

    rng = np.random.default_rng(3)
    traces = rng.integers(-2000, 2000, size=(3000, 6), dtype=np.int16)
    recording = sc.NumpyRecording(traces, 20000.0, channel_ids=np.array([10, 11, 12, 20, 21,
                                                                         22]))
    probe = generate_linear_probe(num_elec=6, ypitch=25)
    probe.set_device_channel_indices(np.arange(6))
    recording.set_probe(probe)
    recording.set_channel_gains(np.linspace(0.19, 0.25, 6))
    recording.set_channel_offsets(np.linspace(-10, 10, 6))
    recording.set_channel_groups(np.array([0, 0, 0, 1, 1, 1]))
    return recording


def _analyzer(recording, sorting, **kwargs):
    analyzer = sc.create_sorting_analyzer(sorting, recording, sparse=False, **kwargs)
    analyzer.compute(EXTENSIONS, verbose=False)
    return analyzer


# -- recordings -----------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["gt", "scaled_int16"])
def test_recording_windows_geometry_and_gains_equal_spikeinterface(which, request):
    si_rec = request.getfixturevalue(which)
    si_rec = si_rec[0] if isinstance(si_rec, tuple) else si_rec
    rec = adapter.from_spikeinterface(si_rec)
    assert isinstance(rec, sv.Recording)
    assert rec.num_samples == si_rec.get_num_samples() and rec.dtype == si_rec.get_dtype()
    assert rec.sampling_frequency == si_rec.sampling_frequency
    assert rec.channel_ids.tolist() == list(si_rec.channel_ids)
    assert rec.gain_known and rec.is_filtered == si_rec.is_filtered()
    np.testing.assert_array_equal(rec.gains_to_uv, si_rec.get_channel_gains())
    np.testing.assert_array_equal(rec.offsets_to_uv, si_rec.get_channel_offsets())
    np.testing.assert_array_equal(rec.channel_locations_um, si_rec.get_channel_locations())
    np.testing.assert_array_equal(rec.channel_groups, si_rec.get_channel_groups())
    ids = si_rec.channel_ids
    for start, end, chans in [(0, 100, None), (1234, 2345, [ids[4], ids[1], ids[5]]),
                              (2999, 2999, None), (10, 500, [ids[2]])]:
        raw = si_rec.get_traces(start_frame=start, end_frame=end, channel_ids=chans)
        np.testing.assert_array_equal(rec.traces(start, end, chans, scaled=False), raw)
        uv = si_rec.get_traces(start_frame=start, end_frame=end, channel_ids=chans,
                               return_in_uV=True)
        np.testing.assert_allclose(rec.traces(start, end, chans), uv, rtol=1e-6, atol=1e-4)


def test_recording_without_gains_or_probe_says_gain_unknown():
    traces = np.arange(40, dtype=np.int16).reshape(10, 4)
    rec = adapter.from_spikeinterface(sc.NumpyRecording(traces, 1000.0))
    assert not rec.gain_known and rec.channel_locations_um is None
    np.testing.assert_array_equal(rec.traces(2, 5, scaled=False), traces[2:5])


def test_recording_fingerprint_does_not_read_the_traces(gt, monkeypatch):
    rec = adapter.from_spikeinterface(gt[0])
    first = rec.fingerprint()
    monkeypatch.setattr(type(gt[0]), "get_traces", lambda *a, **k: pytest.fail("read"))
    assert rec.fingerprint() == first
    # in memory (not JSON-describable): the same object, the same key; another, another key
    assert adapter.from_spikeinterface(gt[0]).fingerprint() == first
    other = sc.generate_ground_truth_recording(durations=[6.0], num_channels=8, num_units=5,
                                               seed=7)[0]
    assert adapter.from_spikeinterface(other).fingerprint() != first


# -- sortings -------------------------------------------------------------------------------
def test_sorting_trains_ids_and_properties_str_ids(gt):
    si_sorting = gt[1]
    sorting = adapter.from_spikeinterface(si_sorting)
    assert sorting.unit_ids.dtype.kind == "U"
    assert sorting.unit_ids.tolist() == [str(u) for u in si_sorting.unit_ids]
    for unit_id in si_sorting.unit_ids:
        np.testing.assert_array_equal(sorting.spike_train(unit_id),
                                      si_sorting.get_unit_spike_train(unit_id))
    np.testing.assert_array_equal(sorting.unit_table["main_channel_id"],
                                  si_sorting.get_property("main_channel_id"))
    locations = np.stack(sorting.unit_table["gt_unit_locations"].to_numpy())
    np.testing.assert_array_equal(locations, si_sorting.get_property("gt_unit_locations"))


def test_sorting_int_ids_quality_becomes_label_and_num_samples_from_recording(gt):
    samples = np.array([5, 9, 9, 40, 77, 100, 250])
    labels = np.array([3, 8, 3, 8, 12, 3, 12])
    si_sorting = sc.NumpySorting.from_samples_and_labels([samples], [labels], 1000.0,
                                                         unit_ids=np.array([3, 8, 12, 50]))
    si_sorting.set_property("quality", np.array(["Good", "mua", "NOISE", ""]))
    si_sorting.set_property("snr", np.array([1.5, 2.0, 3.5, np.nan]))
    si_sorting.register_recording(sc.NumpyRecording(np.zeros((300, 2), np.float32), 1000.0))
    sorting = adapter.from_spikeinterface(si_sorting)
    assert sorting.unit_ids.dtype == np.int64 and sorting.unit_ids.tolist() == [3, 8, 12, 50]
    assert sorting.labels.tolist() == ["good", "mua", "noise", "unsorted"]
    assert "quality" not in sorting.unit_table
    np.testing.assert_array_equal(sorting.unit_table["snr"], [1.5, 2.0, 3.5, np.nan])
    assert sorting.num_samples == 300
    for unit_id in (3, 8, 12, 50):
        np.testing.assert_array_equal(sorting.spike_train(unit_id),
                                      si_sorting.get_unit_spike_train(unit_id))
    back = adapter.to_spikeinterface(sorting)
    assert list(back.get_property("quality")) == ["good", "mua", "noise", ""]
    np.testing.assert_array_equal(back.get_property("snr"), si_sorting.get_property("snr"))


# -- to SpikeInterface ----------------------------------------------------------------------
def test_round_trip_to_spikeinterface_equals_the_originals(gt, scaled_int16):
    recording, sorting = gt
    for si_rec in (recording, scaled_int16):
        back = adapter.to_spikeinterface(adapter.from_spikeinterface(si_rec))
        assert isinstance(back, sc.BaseRecording) and back.get_num_segments() == 1
        assert list(back.channel_ids) == list(si_rec.channel_ids)
        assert back.get_dtype() == si_rec.get_dtype()
        assert back.sampling_frequency == si_rec.sampling_frequency
        np.testing.assert_array_equal(back.get_channel_gains(), si_rec.get_channel_gains())
        np.testing.assert_array_equal(back.get_channel_offsets(), si_rec.get_channel_offsets())
        np.testing.assert_array_equal(back.get_channel_locations(),
                                      si_rec.get_channel_locations())
        np.testing.assert_array_equal(back.get_channel_groups(), si_rec.get_channel_groups())
        assert back.is_filtered() == si_rec.is_filtered()
        ids = si_rec.channel_ids
        for kw in ({}, {"channel_ids": [ids[3], ids[0]]}, {"return_in_uV": True}):
            np.testing.assert_array_equal(back.get_traces(start_frame=7, end_frame=2100, **kw),
                                          si_rec.get_traces(start_frame=7, end_frame=2100,
                                                            **kw))
    back = adapter.to_spikeinterface(adapter.from_spikeinterface(sorting))
    assert isinstance(back, sc.BaseSorting)
    assert list(back.unit_ids) == list(sorting.unit_ids)
    np.testing.assert_array_equal(back.to_spike_vector(), sorting.to_spike_vector())
    for key in sorting.get_property_keys():
        np.testing.assert_array_equal(back.get_property(key), sorting.get_property(key))


def test_spikeviz_objects_to_spikeinterface_and_back():
    rng = np.random.default_rng(0)
    traces = rng.normal(size=(2000, 4)).astype(np.float32)
    rec = sv.Recording.from_array(traces, 10000.0, channel_locations=np.c_[np.zeros(4),
                                                                           np.arange(4) * 20.],
                                  gains_to_uv=[1, 2, 3, 4], channel_groups=[1, 1, 2, 2])
    si_rec = adapter.to_spikeinterface(rec)
    np.testing.assert_array_equal(si_rec.get_traces(), traces)
    np.testing.assert_allclose(si_rec.get_traces(return_in_uV=True), rec.traces())
    again = adapter.from_spikeinterface(si_rec)
    np.testing.assert_array_equal(again.channel_locations_um, rec.channel_locations_um)
    np.testing.assert_array_equal(again.channel_groups, [1, 1, 2, 2])
    sorting = sv.Sorting.from_arrays([3, 10, 10, 1500], [1, 0, 1, 0], 10000.0,
                                     unit_ids=["a", "b"])
    sorting = sorting.with_unit_table(pd.DataFrame({"label": ["good", None]},
                                                   index=sorting.unit_ids))
    si_sorting = adapter.to_spikeinterface(sorting)
    assert list(si_sorting.get_property("quality")) == ["good", ""]
    assert list(si_sorting.get_unit_spike_train("b")) == [3, 10]
    again = adapter.from_spikeinterface(si_sorting)
    assert again.labels.tolist() == ["good", "unsorted"]
    np.testing.assert_array_equal(again.sample_index, sorting.sample_index)
    np.testing.assert_array_equal(again.unit_index, sorting.unit_index)
    # a Session: an analyzer (nothing computed) with a recording, else its sorting
    session = sv.Session(sorting, recording=rec)
    analyzer = adapter.to_spikeinterface(session)
    assert isinstance(analyzer, sc.SortingAnalyzer)
    assert analyzer.get_loaded_extension_names() == []
    assert analyzer.get_num_samples() == 2000
    assert isinstance(adapter.to_spikeinterface(sv.Session(sorting)), sc.BaseSorting)


# -- SortingAnalyzer ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analyzer(gt):
    return _analyzer(*gt)


def _forbid_running(monkeypatch, names):
    for name in names:
        step = analysis_module.STEPS[name]

        def fail(*args, _name=name, **kwargs):
            raise AssertionError(f"{_name} was recomputed")

        monkeypatch.setitem(analysis_module.STEPS, name, dataclasses.replace(step, run=fail))


def test_analyzer_session_returns_its_extensions_without_recomputing(analyzer, monkeypatch):
    session = adapter.from_spikeinterface(analyzer)
    reused = session.results["spikeinterface_reused"]
    assert {"random_spikes", "templates", "noise_levels", "correlograms", "isi_histograms",
            "template_similarity", "unit_locations", "quality_metrics"} <= set(reused)
    _forbid_running(monkeypatch, list(reused))
    ext = {name: analyzer.get_extension(name).get_data() for name in EXTENSIONS}
    window = {"ms_before": 1.0, "ms_after": 2.0}
    templates = session.compute("templates", **window)
    np.testing.assert_array_equal(templates.data, ext["templates"])
    np.testing.assert_array_equal(templates.std,
                                  analyzer.get_extension("templates").data["std"])
    assert templates.nbefore == analyzer.get_extension("templates").nbefore
    assert templates.channel_ids.tolist() == list(analyzer.channel_ids)
    # the analyzer's draw, less the spikes too near the ends for a whole snippet (noted)
    drawn = ext["random_spikes"]
    times = analyzer.sorting.to_spike_vector()["sample_index"][drawn]
    nbefore, nafter = templates.nbefore, templates.num_samples - templates.nbefore
    inside = (times >= nbefore) & (times < analyzer.get_num_samples() - nafter)
    np.testing.assert_array_equal(session.compute("random_spikes", **window), drawn[inside])
    if not inside.all():
        assert f"{(~inside).sum()} of {inside.size}" in session.results["spikeinterface_notes"][0]
    counts, edges = session.compute("correlograms")
    np.testing.assert_array_equal(counts, ext["correlograms"][0])
    np.testing.assert_array_equal(edges, ext["correlograms"][1])
    np.testing.assert_array_equal(session.compute("isi_histograms")[0], ext["isi_histograms"][0])
    np.testing.assert_array_equal(
        session.compute("template_similarity", **reused["template_similarity"]).to_numpy(),
        ext["template_similarity"])
    loc = session.compute("unit_locations", **reused["unit_locations"])
    np.testing.assert_array_equal(loc.to_numpy(), ext["unit_locations"])
    np.testing.assert_array_equal(session.compute("noise_levels", **reused["noise_levels"]),
                                  ext["noise_levels"])
    metrics = session.compute("quality_metrics", **reused["quality_metrics"])
    np.testing.assert_array_equal(metrics.to_numpy(), ext["quality_metrics"][metrics.columns]
                                  .to_numpy())
    assert session.analysis.computed == ["unit_peaks"]  # peak channels of the seeded templates
    # every SpikeInterface metric is a unit-table column too (exports carry them)
    table = session.sorting.unit_table
    for column in ext["quality_metrics"].columns:
        np.testing.assert_array_equal(table[column].to_numpy(),
                                      ext["quality_metrics"][column].to_numpy())


def test_reused_values_are_what_spikeviz_computes_from_the_same_templates(analyzer):
    """Honesty of the mapping: from the analyzer's templates alone, spikeviz's own steps give
    SpikeInterface's similarity, locations, correlograms, ISI histograms and metrics."""
    session = adapter.from_spikeinterface(analyzer)
    reused = session.results["spikeinterface_reused"]
    fresh = sv.Session(session.sorting, recording=session.recording, filter_band_hz=None)
    for name in ("random_spikes", "templates"):
        fresh.analysis.store(name, *session.analysis.arrays(name, **reused[name]),
                             **reused[name])
    for name in ("template_similarity", "unit_locations", "correlograms", "isi_histograms",
                 "quality_metrics"):
        ours, theirs = fresh.compute(name, **reused[name]), session.compute(name, **reused[name])
        if isinstance(ours, tuple):
            ours, theirs = ours[0], theirs[0]
        np.testing.assert_allclose(np.asarray(ours, float), np.asarray(theirs, float),
                                   rtol=1e-4, atol=1e-4, err_msg=name)
    assert name in fresh.analysis.computed


def test_spike_amplitudes_reused_when_main_channels_are_the_peak_channels(gt, monkeypatch):
    recording, sorting = gt
    sorting = sc.NumpySorting.from_sorting(sorting)  # without the main_channel_id property
    analyzer = _analyzer(recording, sorting, peak_sign="neg")
    session = adapter.from_spikeinterface(analyzer)
    reused = session.results["spikeinterface_reused"]
    assert "spike_amplitudes" in reused, session.results["spikeinterface_not_reused"]
    _forbid_running(monkeypatch, list(reused))
    np.testing.assert_array_equal(session.compute("spike_amplitudes"),
                                  analyzer.get_extension("spike_amplitudes").get_data())
    names = reused["quality_metrics"]["metric_names"]
    assert {"amplitude_cutoff", "amplitude_median"} <= set(names)
    metrics = session.compute("quality_metrics", metric_names=names)
    np.testing.assert_allclose(metrics["amplitude_median"],
                               analyzer.get_extension("quality_metrics").get_data()
                               ["amplitude_median"])


def test_analyzer_with_sparse_templates_or_without_recording(gt):
    recording, sorting = gt
    sparse = sc.create_sorting_analyzer(sorting, recording, sparse=True)
    sparse.compute(["random_spikes", "templates", "correlograms", "quality_metrics"],
                   verbose=False)
    session = adapter.from_spikeinterface(sparse)
    assert "templates" not in session.results["spikeinterface_reused"]
    assert "sparse" in session.results["spikeinterface_not_reused"]["templates"]
    assert "correlograms" in session.results["spikeinterface_reused"]
    kept = session.results["spikeinterface_templates"]  # still there, for the views
    assert isinstance(kept, Templates)
    np.testing.assert_array_equal(kept.data, sparse.get_extension("templates").get_data())
    no_rec = adapter.from_spikeinterface(sparse, load_recording=False)
    assert no_rec.recording is None
    # without a recording the default quality_metrics() are SpikeInterface's train metrics
    metrics = no_rec.compute("quality_metrics")
    assert no_rec.analysis.computed == []
    si_metrics = sparse.get_extension("quality_metrics").get_data()
    np.testing.assert_array_equal(metrics["firing_rate"], si_metrics["firing_rate"])


# -- multi-segment ----------------------------------------------------------------------------
def test_multi_segment_objects_need_a_segment_index():
    recording = sc.generate_recording(num_channels=3, durations=[1.0, 2.0], seed=1)
    with pytest.raises(InputError, match=r"2 segments.*segment_index"):
        adapter.from_spikeinterface(recording)
    second = adapter.from_spikeinterface(recording, segment_index=1)
    assert second.num_samples == recording.get_num_samples(segment_index=1)
    np.testing.assert_array_equal(second.traces(5, 50, scaled=False),
                                  recording.get_traces(segment_index=1, start_frame=5,
                                                       end_frame=50))
    with pytest.raises(InputError, match="segment_index"):
        adapter.from_spikeinterface(recording, segment_index=2)
    sorting = sc.generate_sorting(num_units=3, durations=[1.0, 2.0], seed=1)
    with pytest.raises(InputError, match="2 segments"):
        adapter.from_spikeinterface(sorting)
    one = adapter.from_spikeinterface(sorting, segment_index=1)
    for unit_id in sorting.unit_ids:
        np.testing.assert_array_equal(one.spike_train(unit_id),
                                      sorting.get_unit_spike_train(unit_id, segment_index=1))


# -- reading paths --------------------------------------------------------------------------
def _spikeglx_folder(tmp_path: Path, meta_name: str) -> Path:
    if not META_DIR.is_dir():
        pytest.skip(f"real SpikeGLX .meta files not found ({META_DIR})")
    folder = tmp_path / "run_g0"
    folder.mkdir()
    meta = folder / "run_g0_t0.imec0.ap.meta"
    shutil.copy(META_DIR / meta_name, meta)
    text = meta.read_text()
    size = int(next(line for line in text.splitlines()
                    if line.startswith("fileSizeBytes=")).split("=")[1])
    n = int(next(line for line in text.splitlines()
                 if line.startswith("nSavedChans=")).split("=")[1])
    bin_path = meta.with_suffix(".bin")
    with open(bin_path, "wb") as f:  # sparse: zeros except a random first stretch
        f.truncate(size)
        f.write(np.random.default_rng(1).integers(-500, 500, size=(4000, n),
                                                  dtype=np.int16).tobytes())
    return folder


@pytest.mark.parametrize("meta_name", ["Noise_g0_t0.imec0.ap.meta", "NP2_4_shanks.imec0.ap.meta"])
def test_spikeglx_folder_through_spikeinterface_equals_the_native_reader(tmp_path, meta_name):
    folder = _spikeglx_folder(tmp_path, meta_name)
    assert adapter.sniff(folder) and not spikeglx.sniff(folder)
    via_si = adapter.read_recording(folder)
    native = spikeglx.read_recording(next(folder.glob("*.bin")))
    neural = np.flatnonzero(np.isfinite(native.channel_locations_um[:, 0]))
    assert via_si.num_channels == neural.size  # SpikeInterface leaves the sync channel out
    assert via_si.num_samples == native.num_samples
    assert via_si.sampling_frequency == native.sampling_frequency
    ids = native.channel_ids[neural]
    np.testing.assert_array_equal(via_si.traces(100, 3900, scaled=False),
                                  native.traces(100, 3900, ids, scaled=False))
    np.testing.assert_allclose(via_si.traces(100, 3900), native.traces(100, 3900, ids),
                               rtol=1e-5)
    np.testing.assert_allclose(via_si.gains_to_uv, native.gains_to_uv[neural], rtol=1e-6)
    np.testing.assert_allclose(via_si.channel_locations_um,
                               native.channel_locations_um[neural])
    session = adapter.read_session(folder)
    assert session.sorting.num_units == 0 and session.recording.num_samples == native.num_samples


def test_spikeinterface_saved_folders_open(gt, tmp_path):
    recording, sorting = gt
    saved = recording.save(folder=tmp_path / "rec", verbose=False)
    assert adapter.sniff(tmp_path / "rec")
    rec = adapter.read_recording(tmp_path / "rec")
    assert rec.source == str(tmp_path / "rec")
    np.testing.assert_array_equal(rec.traces(0, 5000, scaled=False),
                                  recording.get_traces(start_frame=0, end_frame=5000))
    np.testing.assert_array_equal(rec.channel_locations_um, saved.get_channel_locations())
    assert rec.fingerprint() == adapter.read_recording(tmp_path / "rec").fingerprint()
    sorting.save(folder=tmp_path / "sorting")
    session = adapter.read_session(tmp_path / "sorting")
    assert session.recording is None and session.format == "spikeinterface"
    assert session.sorting.num_spikes == sorting.to_spike_vector().size
    analyzer = sc.create_sorting_analyzer(sorting, saved, sparse=False, format="binary_folder",
                                          folder=tmp_path / "analyzer")
    analyzer.compute(["random_spikes", "templates", "correlograms"], verbose=False)
    session = adapter.read_session(tmp_path / "analyzer")
    assert {"templates", "correlograms"} <= set(session.results["spikeinterface_reused"])
    np.testing.assert_array_equal(session.compute("templates").data,
                                  analyzer.get_extension("templates").get_data())
    with pytest.raises(InputError, match="raw traces"):
        adapter.read_recording(tmp_path / "sorting")
    assert not adapter.sniff(tmp_path / "nothing") and not adapter.sniff(tmp_path)


def test_sniff_is_cheap_and_specific(tmp_path):
    (tmp_path / "a.rhd").write_bytes(b"")
    (tmp_path / "oe" / "Record Node 101").mkdir(parents=True)
    (tmp_path / "oe" / "Record Node 101" / "settings.xml").write_text("<SETTINGS/>")
    (tmp_path / "x.bin").write_bytes(b"")
    assert adapter.kind(tmp_path / "a.rhd") == "intan"
    assert adapter.kind(tmp_path / "oe") == "openephys"
    assert adapter.kind(tmp_path / "x.bin") is None
    with pytest.raises(InputError, match="SpikeInterface could not read it as intan"):
        adapter.read_recording(tmp_path / "a.rhd")


# -- without SpikeInterface -------------------------------------------------------------------
def test_a_clear_message_without_spikeinterface(monkeypatch, gt, tmp_path):
    for name in list(sys.modules):
        if name == "spikeinterface" or name.startswith("spikeinterface."):
            monkeypatch.setitem(sys.modules, name, None)
    hint = r"SpikeInterface is not installed; install it with `pip install spikeviz\[spike"
    for call in (lambda: adapter.from_spikeinterface(gt[0]),
                 lambda: adapter.to_spikeinterface(sv.Sorting.from_arrays([1], [0], 1000.0)),
                 lambda: adapter.read_session(tmp_path),
                 lambda: adapter.read_recording(tmp_path)):
        with pytest.raises(adapter.SpikeInterfaceMissing, match=hint) as info:
            call()
        assert isinstance(info.value, ImportError) and isinstance(info.value, InputError)
        assert "pip install spikeinterface" in str(info.value)


# -- model additions ------------------------------------------------------------------------
def test_a_backend_with_a_fingerprint_is_never_hashed_by_content():
    class Backend:
        shape, dtype = (100, 2), np.dtype(np.int16)

        def __getitem__(self, key):
            return np.ones((100, 2), np.int16)[key]

        def __array__(self, *args, **kwargs):
            raise AssertionError("content hashed")

        def fingerprint(self):
            return "abc"

    rec = sv.Recording(Backend(), 1000.0)
    assert rec.fingerprint() == sv.Recording(Backend(), 1000.0).fingerprint()
    assert rec.fingerprint() != sv.Recording(Backend(), 2000.0).fingerprint()
    np.testing.assert_array_equal(rec.traces(3, 7, [1, 0], scaled=False), np.ones((4, 2)))


def test_analysis_store_seeds_a_result_and_its_dependents_use_it():
    rec = sv.Recording.from_array(np.zeros((1000, 2), np.float32), 1000.0)
    sorting = sv.Sorting.from_arrays([100, 200, 300], [0, 1, 0], 1000.0)
    session = sv.Session(sorting, recording=rec, cache_dir=None)
    average = np.full((2, 3, 2), 7.0, np.float32)
    session.analysis.store("random_spikes", {"spike_indices": np.array([0, 1, 2])},
                           {"nbefore": 1, "nafter": 2}, seed=5)
    session.analysis.store("templates", {"average": average, "std": average * 0,
                                         "num_spikes_used": np.array([2, 1])},
                           {"nbefore": 1, "nafter": 2}, seed=5)
    assert session.analysis.is_available("templates", seed=5)
    assert not session.analysis.is_available("templates")
    np.testing.assert_array_equal(session.compute("templates", seed=5).data, average)
    peaks = session.compute("unit_peaks", seed=5)  # computed from the stored templates
    assert (peaks["peak_uv"] == 7.0).all()
    assert session.analysis.computed == ["unit_peaks"]
    with pytest.raises(ValueError):
        session.compute("templates", seed=5).data[0, 0, 0] = 1.0
    with pytest.raises(InputError, match="needs a recording"):
        sv.Session(sorting).analysis.store("templates", {"average": average})
    with pytest.raises(InputError, match="takes no parameter"):
        session.analysis.store("templates", {"average": average}, bogus=1)


def test_a_folder_holding_a_pickle_is_never_loaded(tmp_path):
    """SpikeInterface unpickles ``cached.pkl`` when a folder has no JSON description; a
    pickle runs code, so spikeviz refuses the folder before SpikeInterface sees it."""
    import pickle

    from spikeviz.io import spikeinterface_ as adapter

    marker = tmp_path / "pwned.txt"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("PWNED",))

    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "provenance.json").write_text("{}")
    (evil / "cached.pkl").write_bytes(pickle.dumps(Payload()))
    assert adapter.sniff(evil)
    with pytest.raises(InputError, match="pickle"):
        sv.load(evil)
    assert not marker.exists()
