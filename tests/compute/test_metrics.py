"""Quality metrics: analytic cases, and SpikeInterface's compute_quality_metrics fed the same
amplitudes, templates, noise levels and PC projections."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spikeviz.compute.metrics import (
    METRIC_NAMES,
    amplitude_cutoff,
    amplitude_cutoff_one,
    amplitude_median,
    compute_quality_metrics,
    firing_range,
    firing_rate,
    isi_violations,
    presence_ratio,
    snr,
)
from spikeviz.compute.pc_metrics import d_prime, mahalanobis_metrics, pc_metrics
from spikeviz.errors import InputError

FS = 30000.0


def _vector(trains):
    """Time-sorted spike vector from a list of per-unit trains (samples)."""
    s = np.concatenate([np.asarray(t, dtype=np.int64) for t in trains])
    u = np.concatenate([np.full(len(t), i, dtype=np.int32) for i, t in enumerate(trains)])
    order = np.argsort(s, kind="stable")
    return s[order], u[order]


# --------------------------------------------------------------------------- analytic: trains

def test_regular_train_has_no_isi_violations():
    train = np.arange(0, 60 * 30000, 100)            # 3.33 ms ISIs
    ratio, count = isi_violations(train, np.zeros(train.size, np.int32), 1, FS, 60.0)
    assert count.dtype == np.int64
    np.testing.assert_array_equal(count, [0])
    np.testing.assert_array_equal(ratio, [0.0])


def test_planted_violations_count_and_ratio():
    duration_s, num_samples = 100.0, 3_000_000
    regular = np.arange(0, num_samples, 3000)         # 10 Hz, 100 ms apart
    planted = regular[5:45] + 15                      # 40 spikes 0.5 ms after a regular one
    base = 3000 * 667                                 # a regular spike
    triple = np.array([base + 1, base + 31])          # ISIs of 1 and 30 samples: 2 violations
    trains = [np.sort(np.r_[regular, planted, triple]), regular]
    s, u = _vector(trains)
    for min_isi_ms in (0.0, 0.3):
        ratio, count = isi_violations(s, u, 2, FS, duration_s, isi_threshold_ms=1.5,
                                      min_isi_ms=min_isi_ms)
        n = trains[0].size
        assert count[0] == 42 and count[1] == 0
        expected = (42 / (2 * n * (1.5e-3 - min_isi_ms * 1e-3))) / (n / duration_s)
        np.testing.assert_allclose(ratio[0], expected, rtol=1e-12)
    # 0.4 ms = 12 samples: only the 1-sample ISI
    _, count = isi_violations(s, u, 2, FS, duration_s, isi_threshold_ms=0.4)
    assert count[0] == 1


def test_isi_needs_time_order_within_units():
    s = np.array([10, 5, 20], dtype=np.int64)
    u = np.array([0, 0, 1], dtype=np.int32)
    with pytest.raises(InputError, match="time order"):
        isi_violations(s, u, 2, FS, 1.0)
    # unit-grouped trains (not globally sorted) are fine
    _, count = isi_violations(np.array([100, 110, 5, 6]), np.array([0, 0, 1, 1]), 2, FS, 1.0)
    np.testing.assert_array_equal(count, [1, 1])


def test_presence_ratio_with_silent_period():
    num_samples = int(100 * FS)                       # 100 s, 10 bins of 10 s
    active = np.r_[np.arange(0, int(30 * FS), 3000), np.arange(int(60 * FS), num_samples, 3000)]
    sparse_bins = np.arange(5) * int(20 * FS) + 7     # one spike in every other bin
    # 100 spikes in each of the first 5 bins, 20 in each of the last 5 (mean 60 per bin)
    two_rates = np.r_[np.arange(0, int(50 * FS), 3000), np.arange(int(50 * FS), num_samples,
                                                                  15000)]
    s, u = _vector([active, sparse_bins, [], two_rates])
    pr = presence_ratio(s, u, 4, num_samples, FS, bin_duration_s=10)
    np.testing.assert_allclose(pr[[0, 1, 3]], [0.7, 0.5, 1.0])
    assert np.isnan(pr[2])
    # active = more than floor(mean spikes per bin * 0.5) spikes: 35, 0, -, 30
    pr = presence_ratio(s, u, 4, num_samples, FS, bin_duration_s=10, mean_fr_ratio_thresh=0.5)
    np.testing.assert_allclose(pr[[0, 1, 3]], [0.7, 0.5, 0.5])
    # recording shorter than a bin -> NaN everywhere
    assert np.all(np.isnan(presence_ratio(s, u, 4, num_samples, FS, bin_duration_s=200)))


def test_bins_drop_the_partial_last_bin_and_close_the_last_edge():
    num_samples = 25 * 30000 + 17                     # bins of 10 s: [0,10) [10,20]
    last_edge = 20 * 30000
    s, u = _vector([[last_edge], [last_edge + 1], [5]])
    pr = presence_ratio(s, u, 3, num_samples, FS, bin_duration_s=10)
    np.testing.assert_allclose(pr, [0.5, 0.0, 0.5])
    fr = firing_range(s, u, 3, num_samples, FS, bin_size_s=10, percentiles=(0, 100))
    np.testing.assert_allclose(fr, [0.1, 0.0, 0.1])


def test_firing_rate_of_units_with_zero_and_one_spike():
    num_samples = int(50 * FS)
    s, u = _vector([[], [1234], np.arange(0, num_samples, 300)])
    out = compute_quality_metrics(s, u, 3, FS, num_samples)
    np.testing.assert_array_equal(out["num_spikes"], [0, 1, 5000])
    assert out["num_spikes"].dtype == np.int64
    assert np.isnan(out["firing_rate"][0])
    np.testing.assert_allclose(out["firing_rate"][1:], [1 / 50, 100.0])
    np.testing.assert_array_equal(out["isi_violations_count"], [-1, 0, 0])
    assert np.isnan(out["isi_violations_ratio"][0]) and out["isi_violations_ratio"][1] == 0
    assert np.isnan(out["presence_ratio"]).all()       # 50 s < the default 60 s bin
    assert np.isnan(out["firing_range"][0])
    # unit 1: one bin at 0.2 Hz, nine at 0: 95th percentile at rank 8.55 of 0..9 -> 0.55 * 0.2
    np.testing.assert_allclose(out["firing_range"][1:], [0.55 * 0.2, 0.0])
    np.testing.assert_array_equal(firing_rate([0, 3], 1.5), [np.nan, 2.0])


def test_firing_range_half_silent():
    num_samples = int(100 * FS)                      # 20 bins of 5 s
    train = np.concatenate([b * int(5 * FS) + np.arange(40) * 1000 for b in range(0, 20, 2)])
    s, u = _vector([train, np.arange(0, num_samples, 1500)])
    fr = firing_range(s, u, 2, num_samples, FS)
    # rates: ten bins at 0 Hz, ten at 8 Hz -> 95th percentile 8, 5th percentile 0
    np.testing.assert_allclose(fr, [8.0, 0.0])


# --------------------------------------------------------------------------- analytic: amplitudes

def test_amplitude_cutoff_of_truncated_gaussian():
    rng = np.random.default_rng(0)
    full = rng.normal(100.0, 10.0, 200_000)
    cut = full[full > 90.0]                          # 15.87 % of the distribution missing
    assert amplitude_cutoff_one(full) < 0.01
    np.testing.assert_allclose(amplitude_cutoff_one(cut), 0.1587, atol=0.03)
    np.testing.assert_allclose(amplitude_cutoff_one(-cut), amplitude_cutoff_one(cut))
    assert amplitude_cutoff_one(full[full > 100.0]) > 0.4       # half of it cut away
    assert np.isnan(amplitude_cutoff_one(cut[:499]))            # < 5 per bin
    assert np.isnan(amplitude_cutoff_one(cut[:499], amplitudes_bins_min_ratio=5))
    assert not np.isnan(amplitude_cutoff_one(cut[:499], num_histogram_bins=50))
    labels = np.r_[np.zeros(cut.size, np.int32), np.ones(full.size, np.int32)]
    both = amplitude_cutoff(np.r_[cut, full], labels, 3)
    np.testing.assert_allclose(both[:2], [amplitude_cutoff_one(cut), amplitude_cutoff_one(full)])
    assert np.isnan(both[2])


def test_amplitude_median_and_snr():
    amps = np.array([-10.0, -30.0, -20.0, 5.0, 7.0], dtype=np.float32)
    labels = np.array([0, 0, 0, 2, 2], dtype=np.int32)
    med = amplitude_median(amps, labels, 3)
    np.testing.assert_allclose(med, [-20.0, np.nan, 6.0])
    np.testing.assert_allclose(snr([-50.0, 30.0], [10.0, 2.0, 5.0], [0, 2]), [5.0, 6.0])
    with pytest.raises(InputError, match="peak_channels"):
        snr([1.0], [1.0], [3])


# --------------------------------------------------------------------------- analytic: PCs

def test_mahalanobis_metrics_on_an_exact_covariance():
    """Own spikes ±a e_i (mean 0, covariance exactly I): D² of others is their squared norm."""
    from scipy.stats import chi2

    d = 3
    a = np.sqrt((2 * d - 1) / 2)
    own = np.concatenate([a * np.eye(d), -a * np.eye(d)])
    radii = np.array([1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0])
    other = radii[:, None] * np.array([[0.0, 1.0, 0.0]])
    x = np.concatenate([own, other])
    y = np.r_[np.ones(2 * d, bool), np.zeros(radii.size, bool)]
    iso, l_ratio = mahalanobis_metrics(x, y)
    n = min(2 * d, radii.size)
    np.testing.assert_allclose(iso, radii[n - 1] ** 2, rtol=1e-12)
    np.testing.assert_allclose(l_ratio, chi2.sf(radii**2, d).sum() / (2 * d), rtol=1e-9)
    # too few spikes for the dimension, or fewer than 2 others
    assert np.isnan(mahalanobis_metrics(x[:, :3], np.r_[np.ones(3, bool), np.zeros(11, bool)])[0])
    assert np.isnan(mahalanobis_metrics(x[:7], y[:7])[0])


def test_d_prime_of_two_gaussians():
    rng = np.random.default_rng(1)
    own = rng.normal(0.0, 1.0, (4000, 3))
    other = rng.normal(0.0, 1.0, (6000, 3))
    other[:, 1] += 3.0                               # separated by 3 sigma along one axis
    x = np.concatenate([own, other])
    y = np.r_[np.ones(4000, bool), np.zeros(6000, bool)]
    np.testing.assert_allclose(d_prime(x, y), 3.0, rtol=0.05)
    np.testing.assert_allclose(d_prime(x, ~y), 3.0, rtol=0.05)   # oriented: positive
    # a constant feature (zero variance) is dropped, as a collinear direction
    x0 = np.concatenate([x, np.zeros((x.shape[0], 1))], axis=1)
    np.testing.assert_allclose(d_prime(x0, y), d_prime(x, y), rtol=1e-9)
    assert np.isnan(d_prime(x, np.ones(x.shape[0], bool)))


def test_pc_neighbourhood_uses_peak_channels_and_zero_fill():
    """A unit whose peak channel is outside u's channels is not in u's neighbourhood."""
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 200).astype(np.int32)
    chans = np.array([[0, 1], [1, 2], [5, 6]])
    proj = rng.normal(0, 1, (600, 2, 2)).astype(np.float32)
    proj[labels == 1] += 4.0
    out = pc_metrics(proj, labels, chans, np.array([0, 1, 6]), 3)
    # unit 0's neighbourhood: units 0 and 1 on channels 0, 1; unit 1 has channel 1 only there
    own = proj[labels == 0].reshape(200, -1).astype(np.float64)
    other = np.zeros((200, 2, 2))
    other[:, :, 1] = proj[labels == 1][:, :, 0]
    x = np.concatenate([own, other.reshape(200, -1)])
    y = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    np.testing.assert_allclose(out["isolation_distance"][0], mahalanobis_metrics(x, y)[0])
    np.testing.assert_allclose(out["d_prime"][0], d_prime(x, y))
    assert np.isnan(out["isolation_distance"][2])    # alone in its neighbourhood
    single = pc_metrics(proj[:200], labels[:200], chans[:1], np.array([0]), 1)
    assert np.isnan(single["d_prime"]).all()


# --------------------------------------------------------------------------- API

def test_requested_metrics_and_errors():
    s, u = _vector([np.arange(0, 300000, 500), np.arange(7, 300000, 800)])
    out = compute_quality_metrics(s, u, 2, FS, 300000)
    assert list(out) == ["num_spikes", "firing_rate", "presence_ratio", "isi_violations_ratio",
                         "isi_violations_count", "firing_range"]
    amps = np.ones(s.size)
    out = compute_quality_metrics(s, u, 2, FS, 300000, metric_names=["isi_violation",
                                  "amplitude_median"], amplitudes=amps)
    assert list(out) == ["isi_violations_ratio", "isi_violations_count", "amplitude_median"]
    with pytest.raises(InputError, match="needs amplitudes"):
        compute_quality_metrics(s, u, 2, FS, 300000, metric_names=["amplitude_cutoff"])
    with pytest.raises(InputError, match="unknown metric"):
        compute_quality_metrics(s, u, 2, FS, 300000, metric_names=["silhouette"])
    with pytest.raises(InputError, match="unknown parameter"):
        compute_quality_metrics(s, u, 2, FS, 300000, bin_duration=3)
    with pytest.raises(InputError, match="unit_index"):
        compute_quality_metrics(s, u, 1, FS, 300000)
    with pytest.raises(InputError, match="one value per spike"):
        compute_quality_metrics(s, u, 2, FS, 300000, amplitudes=amps[:-1])
    with pytest.raises(InputError, match="unit_index"):
        amplitude_median(amps, u, 1)
    with pytest.raises(InputError, match="pc_spike_indices"):
        compute_quality_metrics(s, u, 2, FS, 300000, metric_names=["d_prime"],
                                pc_projections=np.zeros((1, 5, 1)),
                                pc_spike_indices=[s.size], pc_unit_channels=[[0], [0]],
                                peak_channels=[0, 0])
    assert set(METRIC_NAMES) >= set(out)


# --------------------------------------------------------------------------- SpikeInterface

SI_METRICS = ["num_spikes", "firing_rate", "presence_ratio", "isi_violation", "snr",
              "amplitude_cutoff", "amplitude_median", "firing_range", "mahalanobis", "d_prime"]


@pytest.fixture(scope="module")
def si_case():
    """SI ground truth (10 units) plus: a 4-spike unit, a unit with 40 planted refractory
    violations (0.8 ms), a unit silent in the second half, a 1-spike unit."""
    si_core = pytest.importorskip("spikeinterface.core")
    pytest.importorskip("sklearn")
    rec, gt = si_core.generate_ground_truth_recording(durations=[30], num_channels=16,
                                                      num_units=10, seed=7)
    fs = rec.sampling_frequency
    vec = gt.to_spike_vector()
    s, u = vec["sample_index"].astype(np.int64), vec["unit_index"].astype(np.int64)
    rng = np.random.default_rng(1)
    s0, s1, s2 = s[u == 0], s[u == 1], s[u == 2]
    extra = [s0[::100][:4],
             np.r_[s1, rng.choice(s1[:-1], 40, replace=False) + int(0.0008 * fs)],
             s2[s2 < 15 * fs],
             s0[5:6]]
    samples = np.concatenate([s, *extra])
    units = np.concatenate([u] + [np.full(len(x), 10 + i) for i, x in enumerate(extra)])
    order = np.lexsort((units, samples))
    sorting = si_core.NumpySorting.from_samples_and_labels([samples[order]], [units[order]], fs)
    analyzer = si_core.create_sorting_analyzer(sorting, rec, format="memory")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer.compute("random_spikes", seed=0, max_spikes_per_unit=200)
        for name in ("waveforms", "templates", "noise_levels", "spike_amplitudes",
                     "principal_components"):
            analyzer.compute(name)
    from spikeinterface.core.template_tools import get_template_amplitude_on_main_channel

    vec = sorting.to_spike_vector()
    proj = analyzer.get_extension("principal_components").data["pca_projection"]
    unit_channels = np.full((analyzer.get_num_units(), proj.shape[2]), -1)
    for i, unit_id in enumerate(analyzer.unit_ids):
        ind = analyzer.sparsity.unit_id_to_channel_indices[unit_id]
        unit_channels[i, :ind.size] = ind
    inputs = dict(
        sample_index=vec["sample_index"].astype(np.int64),
        unit_index=vec["unit_index"].astype(np.int32),
        num_units=analyzer.get_num_units(), sampling_frequency=fs,
        num_samples=rec.get_num_samples(),
        amplitudes=analyzer.get_extension("spike_amplitudes").get_data(),
        peak_amplitudes=np.asarray(get_template_amplitude_on_main_channel(analyzer,
                                                                          with_dict=False)),
        noise_levels=analyzer.get_extension("noise_levels").get_data(),
        peak_channels=analyzer.get_main_channels(outputs="index"),
        pc_projections=proj,
        pc_spike_indices=analyzer.get_extension("random_spikes").get_data(),
        pc_unit_channels=unit_channels)
    default_metrics, _ = _si_metrics(analyzer)
    return analyzer, inputs, default_metrics


def _si_metrics(analyzer, metric_params=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ext = analyzer.compute("quality_metrics", metric_names=SI_METRICS,
                               metric_params=metric_params or {}, delete_existing_metrics=True)
    return ext.get_data(), ext


def _max_rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    both = np.isfinite(a) & np.isfinite(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(a[both] - b[both]) / np.abs(b[both])
    return float(np.max(np.where(b[both] == 0, np.abs(a[both]), rel), initial=0.0))


NON_PC = ["num_spikes", "firing_rate", "presence_ratio", "isi_violations_ratio",
          "isi_violations_count", "snr", "amplitude_cutoff", "amplitude_median", "firing_range"]

PARAM_SETS = [
    ({}, {}),
    ({"presence_ratio": {"bin_duration_s": 5, "mean_fr_ratio_thresh": 0.5},
      "isi_violation": {"isi_threshold_ms": 2.0, "min_isi_ms": 0.2},
      "amplitude_cutoff": {"num_histogram_bins": 20, "histogram_smoothing_value": 2,
                           "amplitudes_bins_min_ratio": 5},
      "firing_range": {"bin_size_s": 2, "percentiles": (10, 90)}},
     {"bin_duration_s": 5, "mean_fr_ratio_thresh": 0.5, "isi_threshold_ms": 2.0,
      "min_isi_ms": 0.2, "num_histogram_bins": 20, "histogram_smoothing_value": 2,
      "amplitudes_bins_min_ratio": 5, "bin_size_s": 2, "percentiles": (10, 90)}),
]


@pytest.mark.parametrize(("si_params", "our_params"), PARAM_SETS)
def test_non_pc_metrics_equal_spikeinterface(si_case, si_params, our_params):
    analyzer, inputs, default_metrics = si_case
    expected = _si_metrics(analyzer, si_params)[0] if si_params else default_metrics
    ours = compute_quality_metrics(**inputs, **our_params)
    assert list(ours) == list(METRIC_NAMES)
    for name in NON_PC:
        b = expected[name].to_numpy(dtype=float)
        np.testing.assert_array_equal(np.isnan(ours[name]), np.isnan(b), err_msg=name)
        assert _max_rel(ours[name], b) <= 1e-6, (name, ours[name], b)   # measured: 0
    assert expected["isi_violations_count"].iloc[11] >= 40             # planted violations
    if si_params:
        assert np.isfinite(ours["amplitude_cutoff"]).sum() >= 10
        assert ours["presence_ratio"][12] == 0.5                      # silent second half


def test_pc_metrics_close_to_spikeinterface(si_case):
    """Same projections; SpikeInterface computes the unit mean (and d′'s LDA) in float32 from
    the float32 projections, we in float64: measured max relative differences 8.5e-7
    (isolation distance), 8.9e-7 (d′), 5.7e-6 (L-ratio; 1.2e-4 on an L-ratio of 1e-14)."""
    _, inputs, expected = si_case
    ours = compute_quality_metrics(**inputs)
    own = np.bincount(inputs["unit_index"][inputs["pc_spike_indices"]])
    dims = 5 * (inputs["pc_unit_channels"] >= 0).sum(axis=1)
    few = own <= dims                                 # unit 10 (4 spikes), unit 13 (1 spike)
    assert few[10] and few[13] and few.sum() == 2
    for name, rtol in [("isolation_distance", 1e-5), ("l_ratio", 1e-4), ("d_prime", 1e-5)]:
        b = expected[name].to_numpy(dtype=float)
        a = ours[name]
        np.testing.assert_allclose(a[~few], b[~few], rtol=rtol, atol=1e-12, err_msg=name)
    # Deliberate difference: no covariance from <= dims spikes (SI returns inv() of a singular
    # matrix: 3e17 here for unit 10)
    assert np.isnan(ours["isolation_distance"][few]).all()
    assert np.isnan(ours["l_ratio"][few]).all()
    np.testing.assert_allclose(ours["d_prime"][few], expected["d_prime"].to_numpy()[few],
                               rtol=1e-5)
    assert (expected["d_prime"] > 0).all()            # SI's sign agrees with our orientation


def test_pc_metrics_equal_spikeinterface_functions_in_float64(si_case):
    """SpikeInterface's own neighbourhoods (its _prepare_data) and its mahalanobis_metrics /
    d_prime_metric on float64 features give our numbers to rounding."""
    from spikeinterface.metrics.quality.pca_metrics import d_prime_metric, mahalanobis_metrics

    analyzer, inputs, _ = si_case
    ext = analyzer.get_extension("quality_metrics")   # computed with the PC metrics
    neighbourhoods = ext._prepare_data(analyzer)["pca_data_per_unit"]
    ours = compute_quality_metrics(**{**inputs, "pc_projections":
                                      inputs["pc_projections"].astype(np.float64)})
    compared = 0
    for i, unit_id in enumerate(analyzer.unit_ids):
        data = neighbourhoods[unit_id]
        pcs, labels = data["pcs_flat"].astype(np.float64), data["labels"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dp = d_prime_metric(pcs, labels, unit_id)
        np.testing.assert_allclose(ours["d_prime"][i], dp, rtol=1e-9)
        if np.sum(labels == unit_id) <= pcs.shape[1]:
            continue                                  # singular covariance (see above)
        iso, lr = mahalanobis_metrics(pcs, labels, unit_id)
        np.testing.assert_allclose(ours["isolation_distance"][i], iso, rtol=1e-9)
        np.testing.assert_allclose(ours["l_ratio"][i], lr, rtol=1e-9, atol=1e-15)
        compared += 1
    assert compared == len(analyzer.unit_ids) - 2
