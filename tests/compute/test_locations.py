"""Unit locations: SpikeInterface 0.105's unit_locations extension and analytic cases.

The SI analyzer is dense and was given our peak channels (peak_sign="neg"), so its radius
sparsity (75 µm around the analyzer's main channel) is the one ours builds from the templates.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeviz.compute.locations import compute_unit_locations
from spikeviz.compute.unit_templates import radius_sparsity
from spikeviz.errors import InputError

from .test_waveforms import build_si_case

# scipy's least_squares stops at ftol/xtol 1e-8; our residuals are the same function written
# differently, so fits started from the same point agree to well below this (measured ~1e-6 µm)
MONOPOLAR_TOLERANCE_UM = 1e-3


@pytest.fixture(scope="module")
def si_case(tmp_path_factory):
    return build_si_case(tmp_path_factory.mktemp("si_gt_locations"), seed=33)


def si_locations(case, **params):
    analyzer = case["analyzer"]
    analyzer.compute("unit_locations", **params)
    return analyzer.get_extension("unit_locations").get_data()


@pytest.mark.parametrize("feature", ["ptp", "mean", "energy", "peak_voltage"])
def test_center_of_mass_matches_spikeinterface(si_case, feature):
    si = si_locations(si_case, method="center_of_mass", feature=feature)
    si_templates = si_case["analyzer"].get_extension("templates").get_templates()
    ours = compute_unit_locations(si_templates, si_case["locations"], si_case["nbefore"],
                                  method="center_of_mass", feature=feature)
    assert ours.dtype == np.float64 and ours.shape == (si_case["num_units"], 2)
    np.testing.assert_allclose(ours, si, rtol=1e-6, atol=1e-6)
    # from our own templates of the same spikes (templates agree to ~1e-6 of the peak)
    own = compute_unit_locations(si_case["templates"]["average"], si_case["locations"],
                                 si_case["nbefore"], method="center_of_mass", feature=feature)
    np.testing.assert_allclose(own, si, atol=1e-3)


def test_center_of_mass_radius_matches_spikeinterface(si_case):
    si = si_locations(si_case, method="center_of_mass", radius_um=40.0)
    si_templates = si_case["analyzer"].get_extension("templates").get_templates()
    ours = compute_unit_locations(si_templates, si_case["locations"], si_case["nbefore"],
                                  radius_um=40.0)
    np.testing.assert_allclose(ours, si, rtol=1e-6, atol=1e-6)
    wide = compute_unit_locations(si_templates, si_case["locations"], si_case["nbefore"])
    assert np.abs(wide - ours).max() > 0.1  # the radius matters


@pytest.mark.parametrize("feature", ["ptp", "energy", "peak_voltage"])
def test_monopolar_triangulation_matches_spikeinterface(si_case, feature):
    si = si_locations(si_case, method="monopolar_triangulation", feature=feature)
    si_templates = si_case["analyzer"].get_extension("templates").get_templates()
    ours = compute_unit_locations(si_templates, si_case["locations"], si_case["nbefore"],
                                  method="monopolar_triangulation", feature=feature)
    assert ours.shape == (si_case["num_units"], 3)
    assert np.all(ours[:, 2] >= 1.0)
    np.testing.assert_allclose(ours, si, atol=MONOPOLAR_TOLERANCE_UM)


def test_monopolar_with_alpha_matches_spikeinterface(si_case):
    si = si_locations(si_case, method="monopolar_triangulation", return_alpha=True,
                      radius_um=100.0, max_distance_um=500.0)
    si_templates = si_case["analyzer"].get_extension("templates").get_templates()
    ours = compute_unit_locations(si_templates, si_case["locations"], si_case["nbefore"],
                                  method="monopolar_triangulation", return_alpha=True,
                                  radius_um=100.0, max_distance_um=500.0)
    assert ours.shape == (si_case["num_units"], 4)
    np.testing.assert_allclose(ours[:, :3], si[:, :3], atol=MONOPOLAR_TOLERANCE_UM)
    np.testing.assert_allclose(ours[:, 3], si[:, 3], rtol=1e-4)


# -- analytic cases ----------------------------------------------------------------------------
def probe(columns=2, rows=10, pitch=20.0):
    x, y = np.meshgrid(np.arange(columns) * 30.0, np.arange(rows) * pitch)
    return np.column_stack([x.ravel(), y.ravel()])


def point_source_templates(sources, locations, nbefore=5, num_samples=15):
    """Templates whose trough on each channel is -alpha / distance to (x, y, z)."""
    shape = np.zeros(num_samples)
    shape[nbefore] = -1.0
    shape[nbefore + 3] = 0.25
    out = np.zeros((len(sources), num_samples, locations.shape[0]), dtype=np.float32)
    for u, (x, y, z, alpha) in enumerate(sources):
        d = np.sqrt((locations[:, 0] - x) ** 2 + (locations[:, 1] - y) ** 2 + z * z)
        out[u] = shape[:, None] * (alpha / d)[None, :]
    return out


def test_monopolar_recovers_a_point_source():
    locations = probe()
    sources = [(10.0, 90.0, 25.0, 5000.0), (28.0, 40.0, 12.0, 3000.0)]
    templates = point_source_templates(sources, locations)
    # all channels: the fit is exact up to float32 rounding of the templates
    everything = np.tile(np.arange(locations.shape[0]), (2, 1))
    for feature in ("ptp", "peak_voltage", "energy"):
        fit = compute_unit_locations(templates, locations, 5, everything,
                                     method="monopolar_triangulation", feature=feature,
                                     return_alpha=True)
        np.testing.assert_allclose(fit[:, :3], np.array(sources)[:, :3], atol=1e-2)
    fit = compute_unit_locations(templates, locations, 5, everything,
                                 method="monopolar_triangulation", return_alpha=True)
    np.testing.assert_allclose(fit[:, 3], [1.25 * 5000.0, 1.25 * 3000.0], rtol=1e-4)


def test_center_of_mass_analytic():
    locations = probe(columns=1, rows=6, pitch=10.0)
    templates = np.zeros((3, 6, 6), dtype=np.float32)
    templates[0, 2, 1] = -4.0  # ptp 4 on channel 1, ptp 12 on channel 3
    templates[0, 2, 3] = -12.0
    templates[1, 2, 5] = -1.0  # only channel 5 within the radius of its peak
    sparse = np.array([[1, 3, -1], [4, 5, -1], [0, 1, 2]])
    com = compute_unit_locations(templates, locations, 2, sparse)
    np.testing.assert_allclose(com[0], [0.0, (4 * 10 + 12 * 30) / 16])
    np.testing.assert_allclose(com[1], [0.0, 50.0])
    assert np.all(np.isnan(com[2]))  # all-zero template: no weight, no location
    # default sparsity: radius 75 µm around the peak channel covers the whole 50 µm probe here
    np.testing.assert_allclose(compute_unit_locations(templates[:1], locations, 2)[0],
                               [0.0, (4 * 10 + 12 * 30) / 16])
    near = radius_sparsity([3], locations, 20.0)  # channels 1..5
    np.testing.assert_allclose(compute_unit_locations(templates[:1], locations, 2, near)[0],
                               [0.0, (4 * 10 + 12 * 30) / 16])
    mono = compute_unit_locations(templates[2:], locations, 2,
                                  method="monopolar_triangulation")
    assert mono.shape == (1, 3) and np.all(np.isnan(mono))


def test_bad_arguments():
    templates = np.zeros((1, 5, 4), dtype=np.float32)
    locations = probe(columns=1, rows=4)
    with pytest.raises(InputError, match="method"):
        compute_unit_locations(templates, locations, 2, method="grid_convolution")
    with pytest.raises(InputError, match="unknown arguments"):
        compute_unit_locations(templates, locations, 2, radius=30)
    with pytest.raises(InputError, match="feature"):
        compute_unit_locations(templates, locations, 2, method="monopolar_triangulation",
                               feature="mean")
    with pytest.raises(InputError, match="optimizer"):
        compute_unit_locations(templates, locations, 2, method="monopolar_triangulation",
                               optimizer="minimize_with_log_penality")
    with pytest.raises(InputError, match="channel_locations_um"):
        compute_unit_locations(templates, locations[:3], 2)
    with pytest.raises(InputError, match="sparse_channel_indices"):
        compute_unit_locations(templates, locations, 2, np.array([[0, 4]]))
