"""Generator → Phy folder (+ raw .dat, ground-truth .npz) → spikeviz.load: nothing changes."""

import json

import numpy as np
import pytest

import spikeviz as sv
from spikeviz.datasets import generate, generate_to_folder

PARAMS = dict(duration_s=6.0, num_channels=32, num_units=8, seed=3)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = generate_to_folder(tmp_path_factory.mktemp("gen") / "out", **PARAMS)
    return generate(**PARAMS), folder


def test_sorted_output_reads_back_identically(written):
    gt, folder = written
    session = sv.load(folder)
    assert session.format == "phy"
    expected = gt.sorter_output.sorting
    got = session.sorting
    assert got.sampling_frequency == expected.sampling_frequency
    np.testing.assert_array_equal(got.unit_ids, expected.unit_ids)
    np.testing.assert_array_equal(got.sample_index, expected.sample_index)
    for u in expected.unit_ids:
        np.testing.assert_array_equal(got.spike_train(u), expected.spike_train(u))
    assert got.labels.to_dict() == expected.labels.to_dict()
    np.testing.assert_allclose(got.spike_properties["amplitudes"],
                               expected.spike_properties["amplitudes"])


def test_ground_truth_reads_back_identically(written):
    gt, folder = written
    truth = sv.load(folder / "ground_truth.npz").sorting
    np.testing.assert_array_equal(truth.unit_ids, gt.sorting.unit_ids)
    for u in gt.sorting.unit_ids:
        np.testing.assert_array_equal(truth.spike_train(u), gt.sorting.spike_train(u))
    mapping = json.loads((folder / "ground_truth.json").read_text())
    assert mapping  # the split/merge bookkeeping is there for the comparison tools


def test_raw_recording_and_geometry_read_back(written):
    gt, folder = written
    session = sv.load(folder)
    rec = session.recording
    assert rec is not None and rec.num_channels == gt.num_channels
    assert rec.num_samples == gt.num_samples and session.sorting.num_samples == gt.num_samples
    np.testing.assert_array_equal(rec.traces(1000, 1300, scaled=False),
                                  np.asarray(gt.traces[1000:1300]))
    np.testing.assert_array_equal(session.channel_locations_um, gt.channel_locations_um)


def test_cli_generate_then_info(tmp_path):
    from spikeviz.app.cli import main

    out = tmp_path / "g"
    assert main(["generate", str(out), "--duration", "3", "--channels", "16", "--units", "5",
                 "--seed", "9"]) == 0
    info = sv.load(out).info()
    assert info["format"] == "phy" and info["has_recording"] and info["num_channels"] == 16
    assert info["duration_s"] == pytest.approx(3.0)
    assert main(["generate", str(out), "--duration", "3"]) == 2  # refuses to overwrite
