"""Session.compute / precompute end to end on a generated Phy folder with its recording."""

import shutil

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.app.cli import main
from spikeviz.datasets import generate_to_folder
from spikeviz.model.session import default_precompute

ALL_WITH_TRACES = {"unit_peaks", "firing_rates", "isi_histograms", "correlograms", "noise_levels",
                   "random_spikes", "templates", "sparsity", "waveforms", "spike_amplitudes",
                   "principal_components", "template_similarity", "merge_suggestions",
                   "unit_locations", "quality_metrics", "feature_projections"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generate_to_folder(tmp_path_factory.mktemp("gen") / "phy", duration_s=20.0,
                              num_channels=16, num_units=6, seed=3)


@pytest.fixture
def folder(generated, tmp_path):
    copy = tmp_path / "phy"
    shutil.copytree(generated, copy)
    return copy


def test_precompute_then_a_second_session_computes_nothing(folder):
    first = sv.load(folder)
    ran = first.precompute()
    assert set(ran) == ALL_WITH_TRACES
    metrics = first.compute("quality_metrics")
    assert list(metrics.index) == list(first.sorting.unit_ids)
    for column in ("firing_rate", "snr", "isi_violations_ratio", "amplitude_median",
                   "isolation_distance", "presence_ratio"):
        assert column in metrics.columns

    second = sv.load(folder)
    assert second.precompute() == []
    assert second.analysis.computed == []
    assert set(second.analysis.cache.hits) == set(default_precompute(second))
    pd.testing.assert_frame_equal(second.compute("quality_metrics"), metrics)
    t1, t2 = first.compute("templates"), second.compute("templates")
    np.testing.assert_array_equal(t1.data, t2.data)
    assert second.analysis.computed == []


def test_changing_a_parameter_recomputes_only_what_depends_on_it(folder):
    sv.load(folder).precompute()
    s = sv.load(folder)
    wide = s.compute("templates", ms_before=1.5)
    assert s.analysis.computed == ["random_spikes", "templates"]
    assert wide.nbefore == 45 and wide.data.shape[1] == 45 + 60
    s.compute("correlograms", window_ms=20.0, bin_ms=0.5)
    assert s.analysis.computed[-1] == "correlograms"
    s.compute("quality_metrics", isi_threshold_ms=2.0)
    assert s.analysis.computed[-1] == "quality_metrics"
    assert "templates" not in s.analysis.computed[2:]  # the default ones came from disk


def test_a_changed_recording_is_not_served_from_the_cache(folder):
    sv.load(folder).compute("noise_levels")
    dat = folder / "recording.dat"
    raw = np.memmap(dat, dtype=np.int16, mode="r+")
    raw[:1000] = 0
    raw.flush()
    del raw
    s = sv.load(folder)
    s.compute("noise_levels")
    assert s.analysis.computed == ["noise_levels"]


def test_results_have_the_documented_shapes_and_units(folder):
    s = sv.load(folder)
    n_units, n_channels = s.sorting.num_units, s.recording.num_channels
    t = sv.compute.templates(s)
    assert t.data.shape == (n_units, 90, n_channels) and t.data.dtype == np.float32
    assert t.units == "uV" and t.nbefore == 30 and t.std.shape == t.data.shape
    amplitudes = s.compute("spike_amplitudes")
    assert amplitudes.shape == (s.sorting.num_spikes,)
    assert np.median(amplitudes) < 0  # negative-going spikes, µV
    waveforms = s.compute("waveforms")
    snippets, spikes, channels = waveforms.for_unit(0)
    assert snippets.shape[1:] == (90, channels.size) and spikes.size == snippets.shape[0]
    locations = s.compute("unit_locations")
    assert list(locations.columns) == ["x_um", "y_um"]
    similarity = s.compute("template_similarity")
    np.testing.assert_allclose(np.diag(similarity.to_numpy()), 1.0, atol=1e-6)
    counts, edges = sv.compute.correlograms(s)
    assert counts.shape == (n_units, n_units, 50) and edges[0] == -25.0
    direct, _ = sv.compute.correlograms(s.sorting)
    np.testing.assert_array_equal(counts, direct)
    some = list(s.sorting.unit_ids[[2, 0]])
    subset, _ = sv.compute.correlograms(s.sorting, unit_ids=some)
    np.testing.assert_array_equal(subset, counts[np.ix_([2, 0], [2, 0])])
    noise = sv.compute.noise_levels(s)
    assert noise.shape == (n_channels,) and (noise > 0).all()
    merges = s.compute("merge_suggestions")
    assert list(merges.columns[:2]) == ["unit_id_a", "unit_id_b"]


def test_without_a_recording_only_train_metrics(folder, tmp_path):
    s = sv.load(folder)
    sorting_only = sv.Session(s.sorting, source=str(folder), format="phy")
    names = default_precompute(sorting_only)
    assert "templates" not in names
    sorting_only.precompute()
    metrics = sv.compute.quality_metrics(sorting_only)
    assert {"firing_rate", "presence_ratio", "isi_violations_ratio"} <= set(metrics.columns)
    assert "snr" not in metrics.columns
    rate = s.sorting.spike_counts() / s.sorting.duration_s
    np.testing.assert_allclose(metrics["firing_rate"].to_numpy(), rate.to_numpy())


def test_cli_precompute_reports_cached_results_the_second_time(folder, capsys):
    assert main(["precompute", str(folder), "--quiet", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "computed: firing_rates" in out and "already cached: nothing" in out
    assert main(["precompute", str(folder), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "computed: nothing" in out
    assert main(["precompute", str(folder), "--only", "templates,nope"]) == 2
    assert "unknown result(s) nope" in capsys.readouterr().err


def test_cli_progress_bar_lists_every_step(folder, capsys):
    assert main(["precompute", str(folder), "--only", "templates,quality_metrics"]) == 0
    lines = capsys.readouterr().err.splitlines()
    # dependencies first, one line per step actually computed, numbered out of the plan
    steps = [line.split()[1] for line in lines]
    assert steps[:2] == ["random_spikes", "templates"] and steps[-1] == "quality_metrics"
    assert lines[-1].startswith(f"[{len(lines)}/{len(lines)}] quality_metrics done in")


def test_median_templates_peaks_and_all_spike_projections_agree_with_their_sources(folder):
    s = sv.load(folder)
    wf = s.compute("waveforms")
    medians = s.compute("median_templates")
    snippets, _, channels = wf.for_unit(1)
    np.testing.assert_allclose(medians.dense(1)[:, channels], np.median(snippets, axis=0),
                               rtol=1e-6, atol=1e-4)
    assert medians.sparse_channel_indices is not None

    t = s.compute("templates")
    peaks = s.compute("unit_peaks")
    for row, unit_id in enumerate(s.sorting.unit_ids):
        chan = int(peaks.loc[unit_id, "peak_channel_index"])
        assert t.data[row, :, chan].min() == pytest.approx(peaks.loc[unit_id, "peak_uv"])
        assert t.data[row].min() == t.data[row, :, chan].min()  # most negative channel
        assert s.recording.channel_ids[chan] == peaks.loc[unit_id, "peak_channel_id"]

    sampled = s.compute("principal_components")
    every = s.compute("principal_components", all_spikes=True)
    assert every["projections"].shape[0] == s.sorting.num_spikes
    np.testing.assert_array_equal(every["spike_indices"], np.arange(s.sorting.num_spikes))
    rows = np.asarray(sampled["spike_indices"])
    np.testing.assert_allclose(every["projections"][rows], sampled["projections"],
                               rtol=1e-5, atol=1e-3)


def test_unfiltered_recordings_are_band_passed_before_computing_and_the_key_says_so(folder):
    s = sv.load(folder)
    assert not s.recording.is_filtered
    assert s.analysis.filter_band_hz() == (300.0, 6000.0)
    filtered = s.compute("noise_levels").to_numpy()
    s.filter_band_hz = None  # the stored traces as they are: LFP and line noise included
    raw = s.compute("noise_levels").to_numpy()
    assert s.analysis.computed == ["noise_levels", "noise_levels"]
    assert np.all(filtered < raw)  # the generator adds 40 µV of LFP and 3 µV of 50 Hz
    s.filter_band_hz = (300.0, None)  # a high-pass only
    s.compute("noise_levels")
    assert len(s.analysis.computed) == 3
