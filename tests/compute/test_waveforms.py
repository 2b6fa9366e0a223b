"""Snippets, templates, peak channels, sparsity and spike amplitudes.

Checked against SpikeInterface 0.105 (SortingAnalyzer on the same int16 recording and the same
random spikes) and against analytic cases and a plain-numpy reference (whole trace scaled and
zero padded) for chunk boundaries, recording ends, threads and bounded reads.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeviz.compute.unit_templates import sparsity_mask
from spikeviz.compute.waveforms import (
    accumulate_templates,
    compute_spike_amplitudes,
    compute_templates,
    extract_waveforms,
    peak_amplitudes,
    peak_channels,
    peak_shifts,
    radius_sparsity,
    select_random_spikes,
    sparsity_from_templates,
)
from spikeviz.errors import InputError

GAIN_TO_UV = 0.195
PEAK_SIGNS = ("neg", "pos", "both")


# -- SpikeInterface case -----------------------------------------------------------------------
def build_si_case(folder, seed=21, duration_s=20.0, num_channels=16, num_units=8):
    """SI ground truth written as int16 counts (gain 0.195 µV) and read back on both sides.

    The analyzer (dense, in memory, peak_sign="neg") is given our peak channels so that SI's
    main-channel-based extensions use the channels ours derive from the templates.
    """
    sc = pytest.importorskip("spikeinterface.core")
    pytest.importorskip("spikeinterface.postprocessing")
    from spikeinterface.preprocessing import scale

    rec, sorting = sc.generate_ground_truth_recording(
        durations=[duration_s], num_channels=num_channels, num_units=num_units, seed=seed)
    path = folder / "traces.int16"
    counts = scale(rec, gain=1.0 / GAIN_TO_UV, offset=0.0, dtype="int16")
    sc.write_binary_recording(counts, file_paths=[path], dtype="int16",
                              add_file_extension=False, n_jobs=1, progress_bar=False)
    fs = rec.sampling_frequency
    si_rec = sc.read_binary(path, sampling_frequency=fs, dtype="int16",
                            num_channels=num_channels, gain_to_uV=GAIN_TO_UV, offset_to_uV=0.0)
    si_rec.set_probe(rec.get_probe())
    raw = np.memmap(path, dtype=np.int16, mode="r").reshape(-1, num_channels)
    vector = sorting.to_spike_vector()
    case = dict(
        si_rec=si_rec, sorting=sorting, raw=raw, fs=fs, num_samples=raw.shape[0],
        sample_index=vector["sample_index"].astype(np.int64),
        unit_index=vector["unit_index"].astype(np.int32), num_units=num_units,
        gains=np.full(num_channels, GAIN_TO_UV), offsets=np.zeros(num_channels),
        locations=si_rec.get_channel_locations(), nbefore=round(fs / 1000),
        nafter=round(2 * fs / 1000))
    case["read_raw"] = lambda start, end: raw[start:end]
    sel = select_random_spikes(case["sample_index"], case["unit_index"], num_units, 500, seed=0)
    wfs = extract_waveforms(case["read_raw"], raw.shape[0], case["sample_index"][sel],
                            case["nbefore"], case["nafter"], case["gains"], case["offsets"])
    ours = compute_templates(wfs, case["unit_index"][sel], num_units)
    main = peak_channels(ours["average"], case["nbefore"], "neg")
    analyzer = sc.create_sorting_analyzer(sorting, si_rec, format="memory", sparse=False,
                                          main_channel_indices=main, peak_sign="neg")
    analyzer.compute("random_spikes", max_spikes_per_unit=500, seed=0)
    analyzer.compute("waveforms", ms_before=1.0, ms_after=2.0)
    analyzer.compute("templates", operators=["average", "std", "median"])
    case.update(analyzer=analyzer, selection=sel, waveforms=wfs, templates=ours, main=main)
    return case


@pytest.fixture(scope="module")
def si_case(tmp_path_factory):
    return build_si_case(tmp_path_factory.mktemp("si_gt"))


def si_templates_object(case, array):
    from spikeinterface.core import Templates
    rec = case["si_rec"]
    return Templates(templates_array=np.asarray(array), sampling_frequency=case["fs"],
                     nbefore=case["nbefore"], channel_ids=rec.channel_ids,
                     unit_ids=case["sorting"].unit_ids, probe=rec.get_probe(), is_in_uV=True)


def test_random_spikes_are_spikeinterface_selection(si_case):
    from spikeinterface.core.sorting_tools import random_spikes_selection
    si = si_case["analyzer"].get_extension("random_spikes").get_data()
    np.testing.assert_array_equal(si_case["selection"], si)
    margin, n = 40, si_case["num_samples"]
    ours = select_random_spikes(si_case["sample_index"], si_case["unit_index"],
                                si_case["num_units"], 100, seed=2205, start_sample=margin,
                                end_sample=n - margin)
    theirs = random_spikes_selection(si_case["sorting"], [n], "uniform", 100,
                                     margin_size=margin, seed=2205)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == np.int64


def test_waveforms_match_spikeinterface(si_case):
    si = si_case["analyzer"].get_extension("waveforms").get_data()
    ours = si_case["waveforms"]
    assert ours.dtype == np.float32 and ours.shape == si.shape
    # SI scales in float32, we round float64: at most one float32 ulp apart
    assert np.abs(ours - si).max() <= 1e-6 * np.abs(si).max()


def test_sparse_waveforms_match_spikeinterface(si_case):
    sc = pytest.importorskip("spikeinterface.core")
    sparse = radius_sparsity(si_case["main"], si_case["locations"], 60.0)
    assert (sparse == -1).any()  # units have different channel counts: padding is exercised
    mask = sparsity_mask(sparse, len(si_case["gains"]))
    sparsity = sc.ChannelSparsity(mask, si_case["sorting"].unit_ids,
                                  si_case["si_rec"].channel_ids)
    analyzer = sc.create_sorting_analyzer(si_case["sorting"], si_case["si_rec"],
                                          format="memory", sparsity=sparsity,
                                          main_channel_indices=si_case["main"], peak_sign="neg")
    analyzer.compute("random_spikes", max_spikes_per_unit=500, seed=0)
    analyzer.compute("waveforms", ms_before=1.0, ms_after=2.0)
    si = analyzer.get_extension("waveforms").get_data()
    sel = si_case["selection"]
    ours = extract_waveforms(si_case["read_raw"], si_case["num_samples"],
                             si_case["sample_index"][sel], si_case["nbefore"],
                             si_case["nafter"], si_case["gains"], si_case["offsets"],
                             spike_unit_index=si_case["unit_index"][sel],
                             sparse_channel_indices=sparse)
    assert ours.shape == si.shape
    assert np.abs(ours - si).max() <= 1e-6 * np.abs(si).max()


@pytest.mark.parametrize("operator", ["average", "std", "median"])
def test_templates_match_spikeinterface(si_case, operator):
    si = si_case["analyzer"].get_extension("templates").get_templates(operator=operator)
    ours = si_case["templates"][operator]
    assert ours.dtype == np.float32 and ours.shape == si.shape
    peak = np.abs(si_case["templates"]["average"]).max()
    assert np.abs(ours - si).max() <= 1e-4 * peak


def test_accumulated_templates_match_spikeinterface(si_case):
    ext = si_case["analyzer"].get_extension("templates")
    sel = si_case["selection"]
    mean, std = accumulate_templates(si_case["read_raw"], si_case["num_samples"],
                                     si_case["sample_index"][sel], si_case["unit_index"][sel],
                                     si_case["num_units"], si_case["nbefore"],
                                     si_case["nafter"], si_case["gains"], si_case["offsets"])
    peak = np.abs(mean).max()
    assert np.abs(mean - ext.get_templates(operator="average")).max() <= 1e-4 * peak
    assert np.abs(std - ext.get_templates(operator="std")).max() <= 1e-4 * peak


@pytest.mark.parametrize("peak_sign", PEAK_SIGNS)
def test_peak_channel_shift_amplitude_match_spikeinterface(si_case, peak_sign):
    from spikeinterface.core.template_tools import (
        get_template_amplitude_on_main_channel,
        get_template_peak_shift_on_main_channel,
    )
    array = si_case["analyzer"].get_extension("templates").get_templates(operator="average")
    templates = si_templates_object(si_case, array)
    nb = si_case["nbefore"]
    main = templates.get_main_channels(peak_sign=peak_sign, peak_mode="extremum")
    np.testing.assert_array_equal(peak_channels(array, nb, peak_sign), main)
    shifts = get_template_peak_shift_on_main_channel(templates, peak_sign=peak_sign,
                                                     with_dict=False)
    np.testing.assert_array_equal(peak_shifts(array, nb, peak_sign), shifts)
    amps = get_template_amplitude_on_main_channel(templates, peak_sign=peak_sign,
                                                  peak_mode="extremum", with_dict=False)
    np.testing.assert_allclose(peak_amplitudes(array, nb, peak_sign), amps, rtol=1e-12)
    # and the same from our own templates of the same spikes
    np.testing.assert_array_equal(peak_channels(si_case["templates"]["average"], nb, peak_sign),
                                  main)


def test_spike_amplitudes_match_spikeinterface(si_case):
    analyzer = si_case["analyzer"]
    analyzer.compute("spike_amplitudes")
    si = analyzer.get_extension("spike_amplitudes").get_data()
    shifts = peak_shifts(si_case["templates"]["average"], si_case["nbefore"], "neg")
    ours = compute_spike_amplitudes(si_case["read_raw"], si_case["num_samples"],
                                    si_case["sample_index"], si_case["unit_index"],
                                    si_case["main"], shifts, si_case["gains"],
                                    si_case["offsets"], chunk_samples=10007, n_jobs=2)
    assert ours.dtype == np.float32 and ours.shape == si.shape
    np.testing.assert_allclose(ours, si, rtol=1e-6, atol=0)


def test_spike_amplitudes_with_peak_shifts_match_spikeinterface(si_case):
    """Spike times moved off the peak by -3..+3 samples per unit: shifts are found and used."""
    sc = pytest.importorskip("spikeinterface.core")
    moved = si_case["sample_index"] + (si_case["unit_index"] % 7 - 3)
    order = np.argsort(moved, kind="stable")
    samples, units = moved[order], si_case["unit_index"][order]
    unit_ids = si_case["sorting"].unit_ids
    sorting = sc.NumpySorting.from_samples_and_labels([samples], [unit_ids[units]], si_case["fs"],
                                                      unit_ids=unit_ids)
    analyzer = sc.create_sorting_analyzer(sorting, si_case["si_rec"], format="memory",
                                          sparse=False, main_channel_indices=si_case["main"],
                                          peak_sign="neg")
    analyzer.compute("random_spikes", max_spikes_per_unit=200, seed=4)
    analyzer.compute("templates", ms_before=1.0, ms_after=2.0, operators=["average"])
    analyzer.compute("spike_amplitudes")
    si = analyzer.get_extension("spike_amplitudes").get_data()

    sel = select_random_spikes(samples, units, si_case["num_units"], 200, seed=4)
    mean, _ = accumulate_templates(si_case["read_raw"], si_case["num_samples"], samples[sel],
                                   units[sel], si_case["num_units"], si_case["nbefore"],
                                   si_case["nafter"], si_case["gains"], si_case["offsets"])
    np.testing.assert_array_equal(peak_channels(mean, si_case["nbefore"], "neg"),
                                  si_case["main"])
    shifts = peak_shifts(mean, si_case["nbefore"], "neg")
    np.testing.assert_array_equal(shifts, 3 - np.arange(si_case["num_units"]) % 7)
    ours = compute_spike_amplitudes(si_case["read_raw"], si_case["num_samples"], samples, units,
                                    si_case["main"], shifts, si_case["gains"],
                                    si_case["offsets"], chunk_samples=4099)
    np.testing.assert_allclose(ours, si, rtol=1e-6, atol=0)


@pytest.mark.parametrize("peak_sign", PEAK_SIGNS)
@pytest.mark.parametrize("method,value", [("radius", 100.0), ("radius", 45.0),
                                          ("best_channels", 5), ("best_channels", 2)])
def test_sparsity_matches_spikeinterface(si_case, peak_sign, method, value):
    from spikeinterface.core import ChannelSparsity
    array = si_case["analyzer"].get_extension("templates").get_templates(operator="average")
    templates = si_templates_object(si_case, array)
    if method == "radius":
        si = ChannelSparsity.from_radius(templates, value, peak_sign=peak_sign,
                                         peak_mode="extremum")
        ours = sparsity_from_templates(array, si_case["locations"], si_case["nbefore"],
                                       "radius", radius_um=value, peak_sign=peak_sign)
    else:
        si = ChannelSparsity.from_best_channels(templates, value, peak_sign=peak_sign,
                                                amplitude_mode="extremum")
        ours = sparsity_from_templates(array, si_case["locations"], si_case["nbefore"],
                                       "best_channels", num_channels=value,
                                       peak_sign=peak_sign)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(sparsity_mask(ours, array.shape[2]), si.mask)
    for row in ours:  # ascending, padding last
        valid = row[row >= 0]
        assert np.all(np.diff(valid) > 0) and np.all(row[valid.size:] == -1)


@pytest.mark.parametrize("method", ["radius", "best_channels"])
def test_estimate_sparsity_end_to_end(si_case, method):
    """SI's estimate_sparsity (100 spikes, seed 2205, 1 ms / 2.5 ms, margin) rebuilt from ours."""
    from spikeinterface.core import estimate_sparsity
    si = estimate_sparsity(si_case["sorting"], si_case["si_rec"], method=method,
                           peak_sign="neg", radius_um=100.0, num_channels=5,
                           progress_bar=False)
    fs, n = si_case["fs"], si_case["num_samples"]
    nbefore, nafter = round(fs / 1000), round(2.5 * fs / 1000)
    margin = max(nbefore, nafter)
    sel = select_random_spikes(si_case["sample_index"], si_case["unit_index"],
                               si_case["num_units"], 100, seed=2205, start_sample=margin,
                               end_sample=n - margin)
    mean, _ = accumulate_templates(si_case["read_raw"], n, si_case["sample_index"][sel],
                                   si_case["unit_index"][sel], si_case["num_units"], nbefore,
                                   nafter, si_case["gains"], si_case["offsets"])
    ours = sparsity_from_templates(mean, si_case["locations"], nbefore, method,
                                   radius_um=100.0, num_channels=5, peak_sign="neg")
    np.testing.assert_array_equal(sparsity_mask(ours, mean.shape[2]), si.mask)


# -- plain-numpy reference ---------------------------------------------------------------------
def reference_snippets(raw, samples, nbefore, nafter, gains, offsets, channels=None,
                       units=None):
    """Whole trace scaled in float64, zero padded; snippet = padded slice (float32)."""
    n = raw.shape[0]
    scaled = raw.astype(np.float64) * gains + offsets
    out = np.zeros((len(samples), nbefore + nafter, raw.shape[1]))
    for k, s in enumerate(samples):
        for t in range(nbefore + nafter):
            r = s - nbefore + t
            if 0 <= r < n:
                out[k, t] = scaled[r]
    if channels is not None:
        idx = channels[units]
        out = np.where(idx[:, None, :] >= 0,
                       np.take_along_axis(out, np.maximum(idx, 0)[:, None, :], axis=2), 0.0)
    return out.astype(np.float32)


class RecordingReads:
    """read_raw over an array that records every (start, end) asked for."""

    def __init__(self, raw):
        self.raw, self.calls = raw, []

    def __call__(self, start, end):
        self.calls.append((start, end))
        return self.raw[start:end]


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(5)
    n, c = 2000, 6
    raw = rng.integers(-3000, 3000, (n, c)).astype(np.int16)
    gains = rng.uniform(0.1, 3.0, c)
    offsets = rng.uniform(-50, 50, c)
    samples = np.sort(np.concatenate([
        rng.integers(0, n, 300), [0, 1, 2, 5, n - 1, n - 2, n - 7, 500, 500, 500]]))
    units = rng.integers(0, 4, samples.size).astype(np.int32)
    return dict(raw=raw, n=n, gains=gains, offsets=offsets, samples=samples, units=units)


@pytest.mark.parametrize("chunk_samples", [1, 7, 97, 1000, 30000])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_snippets_equal_reference_across_chunk_boundaries_and_ends(small, chunk_samples, n_jobs):
    nbefore, nafter = 9, 14
    reads = RecordingReads(small["raw"])
    ours = extract_waveforms(reads, small["n"], small["samples"], nbefore, nafter,
                             small["gains"], small["offsets"], chunk_samples=chunk_samples,
                             n_jobs=n_jobs)
    ref = reference_snippets(small["raw"], small["samples"], nbefore, nafter, small["gains"],
                             small["offsets"])
    np.testing.assert_array_equal(ours, ref)
    assert ours[0, :nbefore].max() == 0 and ours[0, nbefore:].any()  # spike at sample 0
    assert ours[-1, nbefore + 1:].max() == 0  # spike at the last sample: padded after it
    # bounded reads: every window within chunk + margins, inside the recording, no chunk twice
    rows = [end - start for start, end in reads.calls]
    assert max(rows) <= chunk_samples + nbefore + nafter
    assert all(0 <= s < e <= small["n"] for s, e in reads.calls)
    assert len(reads.calls) <= -(-small["n"] // chunk_samples)
    starts = [s for s, _ in reads.calls]
    assert starts == sorted(starts)


@pytest.mark.parametrize("chunk_samples", [13, 30000])
def test_sparse_snippets_equal_reference(small, chunk_samples):
    channels = np.array([[0, 2, 5], [1, -1, -1], [3, 4, -1], [5, 0, 1]])
    nbefore, nafter = 4, 11
    args = (small["n"], small["samples"], nbefore, nafter, small["gains"], small["offsets"])
    one = extract_waveforms(RecordingReads(small["raw"]), *args, spike_unit_index=small["units"],
                            sparse_channel_indices=channels, chunk_samples=chunk_samples)
    two = extract_waveforms(RecordingReads(small["raw"]), *args, spike_unit_index=small["units"],
                            sparse_channel_indices=channels, chunk_samples=chunk_samples,
                            n_jobs=2)
    ref = reference_snippets(small["raw"], small["samples"], nbefore, nafter, small["gains"],
                             small["offsets"], channels, small["units"])
    assert one.shape == (small["samples"].size, nbefore + nafter, 3)
    np.testing.assert_array_equal(one, ref)
    np.testing.assert_array_equal(two, one)
    assert not one[small["units"] == 1][:, :, 1:].any()  # -1 pads are zeros


def test_spikes_outside_recording_give_zeros_without_reading_outside(small):
    reads = RecordingReads(small["raw"])
    samples = np.array([-500, -3, small["n"] + 2, small["n"] + 400])
    out = extract_waveforms(reads, small["n"], samples, 5, 5, small["gains"], small["offsets"],
                            chunk_samples=50)
    ref = reference_snippets(small["raw"], samples, 5, 5, small["gains"], small["offsets"])
    np.testing.assert_array_equal(out, ref)
    assert not out[[0, 3]].any() and out[1].any() and out[2].any()
    assert all(0 <= s < e <= small["n"] for s, e in reads.calls)


@pytest.mark.parametrize("chunk_samples", [1, 61, 30000])
def test_accumulated_templates_equal_reference_and_threads(small, chunk_samples):
    nbefore, nafter = 6, 8
    args = (small["n"], small["samples"], small["units"], 5, nbefore, nafter, small["gains"],
            small["offsets"])
    reads = RecordingReads(small["raw"])
    mean1, std1 = accumulate_templates(reads, *args, chunk_samples=chunk_samples)
    mean2, std2 = accumulate_templates(RecordingReads(small["raw"]), *args,
                                       chunk_samples=chunk_samples, n_jobs=2)
    ref = reference_snippets(small["raw"], small["samples"], nbefore, nafter, small["gains"],
                             small["offsets"]).astype(np.float64)
    for u in range(4):
        wf = ref[small["units"] == u]
        np.testing.assert_allclose(mean1[u], wf.mean(axis=0), rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(std1[u], wf.std(axis=0), rtol=1e-5, atol=1e-3)
    assert not mean1[4].any() and not std1[4].any()  # unit 4 has no spike
    np.testing.assert_array_equal(mean1, mean2)
    np.testing.assert_array_equal(std1, std2)
    assert max(e - s for s, e in reads.calls) <= chunk_samples + nbefore + nafter


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_spike_amplitudes_equal_reference(small, n_jobs):
    channel = np.array([0, 5, 2, 3])
    shift = np.array([0, -3, 4, 2])
    reads = RecordingReads(small["raw"])
    out = compute_spike_amplitudes(reads, small["n"], small["samples"], small["units"], channel,
                                   shift, small["gains"], small["offsets"], chunk_samples=37,
                                   n_jobs=n_jobs)
    scaled = small["raw"].astype(np.float64) * small["gains"] + small["offsets"]
    t = small["samples"] + shift[small["units"]]
    inside = (t >= 0) & (t < small["n"])
    expected = np.zeros(t.size)
    expected[inside] = scaled[t[inside], channel[small["units"][inside]]]
    assert not inside.all()  # spikes whose shifted sample falls off either end
    np.testing.assert_array_equal(out, expected.astype(np.float32))
    assert max(e - s for s, e in reads.calls) <= 37 + 3 + 4 + 1


# -- analytic cases ----------------------------------------------------------------------------
def planted_recording():
    """Zero int16 traces with waveform A (unit 0) and B (unit 1) planted at known samples."""
    n, c, nbefore, nafter = 5000, 5, 10, 20
    t = np.arange(nbefore + nafter)
    shape = np.exp(-0.5 * ((t - nbefore - 2) / 2.0) ** 2)
    a = np.round(-400 * shape[:, None] * np.array([0.2, 0.6, 1.0, 0.5, 0.1])).astype(np.int16)
    b = np.round(300 * shape[:, None] * np.array([0.1, 0.3, 0.4, 0.9, 1.0])).astype(np.int16)
    b[nbefore - 3, 1] = -100  # a small negative bump on channel 1 for unit 1
    samples = np.array([100, 400, 1333, 2000, 2999, 4000, 4500])
    units = np.array([0, 1, 0, 0, 1, 0, 1], dtype=np.int32)
    raw = np.zeros((n, c), dtype=np.int16)
    for s, u in zip(samples, units, strict=True):
        raw[s - nbefore:s + nafter] += a if u == 0 else b
    gains = np.array([0.5, 1.0, 2.0, 0.25, 1.5])
    offsets = np.array([0.0, 3.0, -2.0, 1.0, 0.0])
    return raw, samples, units, a, b, gains, offsets, nbefore, nafter


def test_planted_waveforms_give_exact_templates_peaks_and_amplitudes():
    raw, samples, units, a, b, gains, offsets, nbefore, nafter = planted_recording()
    reads = RecordingReads(raw)
    wfs = extract_waveforms(reads, raw.shape[0], samples, nbefore, nafter, gains, offsets,
                            chunk_samples=333, n_jobs=2)
    # units 0, 1 planted; unit 2 has no spike
    templates = compute_templates(wfs, units, 3)
    expected = [a * gains + offsets, b * gains + offsets]
    for u in (0, 1):
        np.testing.assert_allclose(templates["average"][u], expected[u], rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(templates["median"][u], expected[u], rtol=1e-6, atol=1e-5)
        assert np.abs(templates["std"][u]).max() <= 1e-4
    for op in ("average", "std", "median"):
        assert not templates[op][2].any()
    mean, std = accumulate_templates(reads, raw.shape[0], samples, units, 3, nbefore, nafter,
                                     gains, offsets, chunk_samples=333)
    np.testing.assert_allclose(mean[:2], templates["average"][:2], atol=1e-4)
    assert np.abs(std).max() <= 1e-3 and not mean[2].any()

    tpl = templates["average"][:2]
    # unit 0: most negative on channel 2 (-400 * 2 µV - 2), 2 samples after the spike
    np.testing.assert_array_equal(peak_channels(tpl, nbefore, "neg"), [2, 1])
    np.testing.assert_array_equal(peak_shifts(tpl, nbefore, "neg"), [2, -3])
    np.testing.assert_allclose(peak_amplitudes(tpl, nbefore, "neg"), [802.0, 97.0], rtol=1e-6)
    # unit 1 positive: largest maximum on channel 4 (300 * 1.5)
    np.testing.assert_array_equal(peak_channels(tpl, nbefore, "pos"), [1, 4])
    np.testing.assert_array_equal(peak_shifts(tpl, nbefore, "pos"), [-nbefore, 2])
    np.testing.assert_allclose(peak_amplitudes(tpl, nbefore, "pos")[1], 450.0, rtol=1e-6)
    np.testing.assert_array_equal(peak_channels(tpl, nbefore, "both"), [2, 4])
    np.testing.assert_allclose(peak_amplitudes(tpl, nbefore, "both"), [802.0, 450.0], rtol=1e-6)

    amps = compute_spike_amplitudes(reads, raw.shape[0], samples, units,
                                    peak_channels(tpl, nbefore, "neg"),
                                    peak_shifts(tpl, nbefore, "neg"), gains, offsets)
    np.testing.assert_allclose(amps, np.where(units == 0, -802.0, -97.0), rtol=1e-6)


def test_templates_equal_numpy_for_zero_one_and_even_counts():
    rng = np.random.default_rng(3)
    units = np.array([1, 2, 2, 3, 3, 3, 2, 2, 4, 4, 4, 4, 4, 4, 4], dtype=np.int32)
    wfs = rng.normal(0, 50, (units.size, 7, 3)).astype(np.float32)
    wfs[3:6] = np.round(wfs[3:6])  # ties in the median
    wfs[4] = wfs[3]
    out = compute_templates(wfs, units, 6, operators=("median", "average", "std"))
    assert list(out) == ["median", "average", "std"]
    for op, fn in [("average", np.mean), ("std", np.std), ("median", np.median)]:
        assert out[op].dtype == np.float32 and out[op].shape == (6, 7, 3)
        for u in range(6):
            sel = wfs[units == u].astype(np.float64)
            want = fn(sel, axis=0) if sel.size else np.zeros((7, 3))
            np.testing.assert_allclose(out[op][u], want, rtol=1e-6, atol=1e-4)
    threaded = compute_templates(wfs, units, 6, operators=("median", "average", "std"), n_jobs=2)
    for op in out:
        np.testing.assert_array_equal(threaded[op], out[op])
    np.testing.assert_array_equal(out["average"][1], wfs[0])  # a single spike
    assert not out["std"][1].any()
    assert not out["median"][0].any() and not out["average"][5].any()  # no spike


def test_sparsity_analytic_linear_probe():
    locations = np.column_stack([np.zeros(8), 20.0 * np.arange(8)])
    templates = np.zeros((3, 5, 8), dtype=np.float32)
    templates[0, 2, 0] = -10  # peak at the probe's end
    templates[1, 2, 4] = -10
    templates[2, 1, :] = -np.array([1, 2, 3, 9, 8, 7, 6, 5])
    radius = sparsity_from_templates(templates, locations, 2, "radius", radius_um=40.0)
    np.testing.assert_array_equal(radius, [[0, 1, 2, -1, -1], [2, 3, 4, 5, 6],
                                           [1, 2, 3, 4, 5]])
    best = sparsity_from_templates(templates[2:], locations, 2, "best_channels", num_channels=3)
    np.testing.assert_array_equal(best, [[3, 4, 5]])
    ties = sparsity_from_templates(templates[:1], locations, 2, "best_channels", num_channels=2)
    np.testing.assert_array_equal(ties, [[0, 1]])  # all others tie at 0: lowest channel first
    np.testing.assert_array_equal(radius_sparsity([7], locations, 20.0), [[6, 7]])


def test_select_random_spikes_rules():
    rng = np.random.default_rng(0)
    samples = np.sort(rng.integers(0, 10_000, 1000))
    units = rng.integers(0, 5, 1000).astype(np.int32)
    units[units == 3] = 0  # unit 3 has no spike
    units[np.flatnonzero(units == 4)[1:]] = 1  # unit 4 has one
    sel = select_random_spikes(samples, units, 6, 50, seed=1, start_sample=100,
                               end_sample=9000)
    assert np.all(np.diff(sel) > 0)
    assert np.all((samples[sel] >= 100) & (samples[sel] < 9000))
    counts = np.bincount(units[sel], minlength=6)
    in_window = np.bincount(units[(samples >= 100) & (samples < 9000)], minlength=6)
    np.testing.assert_array_equal(counts, np.minimum(in_window, 50))
    np.testing.assert_array_equal(sel, select_random_spikes(samples, units, 6, 50, seed=1,
                                                            start_sample=100, end_sample=9000))
    assert not np.array_equal(sel, select_random_spikes(samples, units, 6, 50, seed=2,
                                                        start_sample=100, end_sample=9000))
    assert select_random_spikes(samples, units, 6, 0).size == 0
    everything = select_random_spikes(samples, units, 6, 10_000)
    np.testing.assert_array_equal(everything, np.arange(1000))


def test_empty_inputs():
    reads = RecordingReads(np.zeros((100, 3), dtype=np.int16))
    empty = np.zeros(0, dtype=np.int64)
    ones, zeros = np.ones(3), np.zeros(3)
    assert extract_waveforms(reads, 100, empty, 2, 3, ones, zeros).shape == (0, 5, 3)
    mean, std = accumulate_templates(reads, 100, empty, empty, 2, 2, 3, ones, zeros)
    assert mean.shape == (2, 5, 3) and not mean.any() and not std.any()
    assert compute_spike_amplitudes(reads, 100, empty, empty, [0], [0], ones, zeros).size == 0
    assert reads.calls == []
    assert compute_templates(np.zeros((0, 5, 3), np.float32), empty, 2)["median"].shape == (2, 5, 3)


def test_bad_input_is_reported():
    raw = np.zeros((100, 3), dtype=np.int16)
    ones, zeros = np.ones(3), np.zeros(3)
    with pytest.raises(InputError, match="ascending"):
        extract_waveforms(lambda a, b: raw[a:b], 100, np.array([5, 3]), 2, 2, ones, zeros)
    with pytest.raises(InputError, match="read_raw"):
        extract_waveforms(lambda a, b: raw[a:b, :2], 100, np.array([5]), 2, 2, ones, zeros)
    for n_jobs in (1, 2):  # the error reaches the caller, threads do not hang
        with pytest.raises(InputError, match="read_raw"):
            accumulate_templates(lambda a, b: raw[a:b, :2], 100, np.array([5, 50]),
                                 np.array([0, 1]), 2, 2, 2, ones, zeros, chunk_samples=10,
                                 n_jobs=n_jobs)
    with pytest.raises(InputError, match="unit_index"):
        accumulate_templates(lambda a, b: raw[a:b], 100, np.array([5]), np.array([3]), 2, 2, 2,
                             ones, zeros)
    with pytest.raises(InputError, match="spike_unit_index"):
        extract_waveforms(lambda a, b: raw[a:b], 100, np.array([5]), 2, 2, ones, zeros,
                          sparse_channel_indices=np.array([[0, 1]]))
    with pytest.raises(InputError, match="peak_sign"):
        peak_channels(np.zeros((1, 4, 3)), 1, "up")
    with pytest.raises(InputError, match="operators"):
        compute_templates(np.zeros((1, 4, 3)), np.array([0]), 1, operators=("mean",))
    with pytest.raises(InputError, match="method"):
        sparsity_from_templates(np.zeros((1, 4, 3)), np.zeros((3, 2)), 1, method="snr")
