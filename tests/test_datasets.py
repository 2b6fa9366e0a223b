"""The seeded synthetic ground-truth generator and the Phy folder writer."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import spikeviz as sv
from spikeviz import datasets
from spikeviz.errors import InputError
from spikeviz.io.npz import read_sorting
from spikeviz.io.phy_write import write_phy_folder

SMALL = {"duration_s": 8.0, "num_channels": 32, "num_units": 10}


@pytest.fixture(scope="module")
def gt():
    return datasets.generate(seed=3, **SMALL)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders from the same seed and one from another seed."""
    root = tmp_path_factory.mktemp("generated")
    a = datasets.generate_to_folder(root / "a", seed=3, **SMALL)
    b = datasets.generate_to_folder(root / "b", seed=3, **SMALL)
    c = datasets.generate_to_folder(root / "c", seed=4, **SMALL)
    return a, b, c


@pytest.fixture(scope="module")
def raw_uv(gt):
    return np.asarray(gt.traces).astype(np.float32) * gt.gain_to_uv


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _npz_members(path: Path) -> dict:
    # np.savez stamps the time into the zip entries: compare the stored arrays' bytes
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _phy_train(folder: Path, cluster_id: int) -> np.ndarray:
    times = np.load(folder / "spike_times.npy").astype(np.int64)
    clusters = np.load(folder / "spike_clusters.npy")
    return times[clusters == cluster_id]


# -- reproducibility ------------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_bytes(folders):
    a, b, c = folders
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name == "ground_truth.npz":
            assert _npz_members(a / name) == _npz_members(b / name)
        else:
            assert _sha(a / name) == _sha(b / name), name
    for name in ("recording.dat", "spike_times.npy", "ground_truth_templates.npy"):
        assert _sha(a / name) != _sha(c / name), name
    assert not [p for p in a.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_file_equals_lazy_traces_and_windows_are_independent(gt, folders):
    a = folders[0]
    on_disk = np.fromfile(a / "recording.dat", dtype=np.int16).reshape(-1, gt.num_channels)
    whole = np.asarray(gt.traces)
    np.testing.assert_array_equal(on_disk, whole)
    for start, stop in ((0, 1), (12_345, 40_000), (gt.num_samples - 77, gt.num_samples)):
        np.testing.assert_array_equal(gt.traces[start:stop], whole[start:stop])
    np.testing.assert_array_equal(gt.traces[100:900:7, 3:9], whole[100:900:7, 3:9])
    np.testing.assert_array_equal(gt.traces[[5, 2, 70_000]], whole[[5, 2, 70_000]])
    np.testing.assert_array_equal(gt.traces[-1], whole[-1])
    np.testing.assert_array_equal(gt.traces[50:10:-3, 2], whole[50:10:-3, 2])
    np.testing.assert_array_equal(gt.traces[::-1][:5], whole[::-1][:5])


def test_dat_size_params_and_files(gt, folders):
    a = folders[0]
    assert (a / "recording.dat").stat().st_size == gt.num_samples * gt.num_channels * 2
    assert gt.num_samples == round(SMALL["duration_s"] * gt.sampling_frequency)
    params = {}
    for node in ast.parse((a / "params.py").read_text()).body:
        params[node.targets[0].id] = ast.literal_eval(node.value)
    assert params == {"dat_path": "recording.dat", "n_channels_dat": 32, "dtype": "int16",
                      "offset": 0, "sample_rate": 30000.0, "hp_filtered": False,
                      "gain_to_uv": 0.195}
    assert np.load(a / "spike_times.npy").dtype == np.uint64
    for name in ("spike_clusters.npy", "spike_templates.npy", "channel_map.npy"):
        assert np.load(a / name).dtype == np.int32
    assert np.load(a / "amplitudes.npy").dtype == np.float64
    assert np.load(a / "templates.npy").dtype == np.float32
    np.testing.assert_array_equal(np.load(a / "channel_positions.npy"), gt.channel_locations_um)
    truth = datasets.read_ground_truth(a)
    assert truth["seed"] == 3 and truth["gain_to_uv"] == pytest.approx(0.195)
    assert truth["generator_version"] == datasets.GENERATOR_VERSION
    assert datasets.is_complete(a, truth["parameters"])


def test_loaded_folder_gives_the_true_traces_in_uv(gt, folders):
    rec = sv.load(folders[0]).recording
    assert rec.gain_known
    np.testing.assert_allclose(rec.gains_to_uv, gt.gain_to_uv)
    step = gt.gain_to_uv  # µV per int16 step: rounding to int16 errs by at most half of it
    for start, stop in ((0, 3000), (150_000, 153_000), (gt.num_samples - 500, gt.num_samples)):
        expected = gt.traces_uv(start, stop)
        got = rec.traces(start, stop)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=step)
        assert np.abs(got - expected).max() > 0  # quantised, not the float µV themselves
    np.testing.assert_allclose(rec.traces(2000, 2600, channel_ids=[7, 0]),
                               gt.traces_uv(2000, 2600)[:, [7, 0]], rtol=0, atol=step)


def test_ground_truth_npz_holds_the_generated_trains(gt, folders):
    a = folders[0]
    back = read_sorting(a / "ground_truth.npz")
    assert list(back.unit_ids) == list(range(SMALL["num_units"]))
    for u in back.unit_ids:
        np.testing.assert_array_equal(back.spike_train(u), gt.sorting.spike_train(u))
    np.testing.assert_array_equal(np.load(a / "ground_truth_templates.npy"), gt.templates)
    np.testing.assert_array_equal(np.load(a / "ground_truth_amplitude_scale.npy"),
                                  gt.sorting.spike_properties["amplitude_scale"])


# -- what the data looks like ---------------------------------------------------------------
def test_probe_layouts():
    two = datasets.probe_locations_um(6, 2)
    np.testing.assert_array_equal(two, [[16, 0], [48, 0], [16, 20], [48, 20], [16, 40],
                                        [48, 40]])
    four = datasets.probe_locations_um(4, 4)
    np.testing.assert_array_equal(four, [[27, 0], [59, 0], [11, 20], [43, 20]])
    pi = pytest.importorskip("probeinterface.neuropixels_tools")
    np1 = pi.build_neuropixels_probe("NP1000").contact_positions[:8]  # shank x = ours - 11 µm
    np.testing.assert_array_equal(datasets.probe_locations_um(8, 4), np1 + np.array([11.0, 0.0]))
    with pytest.raises(InputError, match="num_columns"):
        datasets.probe_locations_um(8, 3)


def test_spikes_in_the_data_match_the_templates(gt, raw_uv):
    s, nb = gt.templates.shape[1], gt.nbefore
    checked = 0
    for u in gt.sorting.unit_ids:
        train = gt.sorting.spike_train(u)
        if train.size < 15:
            continue
        tpl = gt.templates[u]
        peak = int(np.argmax(np.ptp(tpl, axis=0)))
        idx = train[:, None] - nb + np.arange(s)[None, :]
        snippets = raw_uv[idx, peak]
        snippets -= snippets[:, :5].mean(axis=1, keepdims=True)   # slow LFP baseline
        scale = gt.sorting.spike_properties["amplitude_scale"][gt.sorting.spike_indices(u)]
        expected = tpl[:, peak] * scale.mean()
        average = snippets.mean(axis=0)
        # a negative deflection of the template's amplitude, at the spike time
        assert abs(int(np.argmin(average)) - nb) <= 2
        tolerance = 0.1 * abs(expected.min()) + 4 * 12.0 / np.sqrt(train.size)
        assert abs(average.min() - expected.min()) < tolerance, u
        if gt.unit_kind[u] != "low_amplitude":
            assert np.corrcoef(average, expected)[0, 1] > 0.9, u
        checked += 1
    assert checked >= 5


def test_amplitude_decays_with_distance(gt, raw_uv):
    table = gt.sorting.unit_table
    for u in gt.sorting.unit_ids:
        soma = table.loc[u, ["x_um", "y_um", "z_um"]].to_numpy(dtype=float)
        loc = gt.channel_locations_um
        d = np.sqrt(((loc - soma[:2]) ** 2).sum(axis=1) + soma[2] ** 2)
        trough = -gt.templates[u].min(axis=0)
        active = trough > 0
        assert trough.argmax() == d.argmin()
        assert trough.max() == pytest.approx(table.loc[u, "amplitude_uv"], rel=1e-5)
        order = np.argsort(d[active])
        depth = trough[active][order]
        assert np.all(np.diff(depth) <= 0.02 * depth[0]), u  # ~monotonic in distance
        assert (trough[d > d.min() + 120] < 0.2 * trough.max()).all()
    # and in the data: the peak channel sees more than a channel 100 µm farther
    u = int(table["amplitude_uv"].idxmax())
    train = gt.sorting.spike_train(u)
    peak = int(table.loc[u, "peak_channel_index"])
    far = int(np.argmin(np.abs(np.linalg.norm(gt.channel_locations_um
                                              - gt.channel_locations_um[peak], axis=1) - 100)))
    at = raw_uv[train, peak] - raw_uv[train - gt.nbefore, peak]
    away = raw_uv[train, far] - raw_uv[train - gt.nbefore, far]
    assert at.mean() < 2 * away.mean() and at.mean() < -40


def test_noise_level_and_spatial_correlation():
    quiet = datasets.generate(duration_s=2.0, num_channels=16, num_units=0, lfp_uv=0.0,
                              line_uv=0.0, artefact_rate_hz=0.0, seed=1)
    uv = np.asarray(quiet.traces).astype(np.float64) * quiet.gain_to_uv
    rms = uv.std(axis=0)
    assert np.all((rms > 6) & (rms < 14)), rms
    assert np.mean(rms) == pytest.approx(10.0, rel=0.1)
    assert abs(np.mean(uv)) < 0.5
    corr = np.corrcoef(uv.T)
    neighbour = np.mean([corr[c, c + 1] for c in range(15)])
    far = np.mean([corr[c, c + 8] for c in range(8)])
    assert 0.1 < neighbour < 0.4 and far < neighbour


def test_trains_are_poisson_with_a_refractory_period(gt):
    fs = gt.sampling_frequency
    for u in gt.sorting.unit_ids:
        train = gt.sorting.spike_train(u)
        assert train.dtype == np.int64
        assert np.all(np.diff(train) >= round(2e-3 * fs))
        assert train.min() >= gt.nbefore
        assert train.max() + gt.templates.shape[1] - gt.nbefore <= gt.num_samples
    rng = np.random.default_rng(0)
    long = datasets.poisson_train(rng, 20.0, 0, 30_000 * 200, 30_000.0, 2.0)
    isi = np.diff(long)
    assert isi.min() == 60
    assert long.size / 200 == pytest.approx(20.0, rel=0.05)
    assert np.std(isi - 60) / np.mean(isi - 60) == pytest.approx(1.0, abs=0.08)  # exponential


def test_drifting_units_drift():
    long = datasets.generate(duration_s=300.0, num_channels=16, num_units=12, seed=5)
    table = long.sorting.unit_table
    drifting = table.index[table["drifting"]]
    assert len(drifting) >= 2  # the split unit and at least one other
    assert (table.loc[table["kind"] == "split", "drift_fraction"] < 0).all()
    for u in table.index:
        scale = long.sorting.spike_properties["amplitude_scale"][long.sorting.spike_indices(u)]
        x = long.sorting.spike_train(u) / long.num_samples
        early, late = scale[x < 0.1].mean(), scale[x > 0.9].mean()
        expected = 1 + table.loc[u, "drift_fraction"]
        assert late / early == pytest.approx(expected, abs=0.1), u


# -- sorter output versus truth -------------------------------------------------------------------
def test_split_merge_and_perturbations_match_the_mapping(gt, folders):
    a = folders[0]
    truth = datasets.read_ground_truth(a)
    kinds = {int(u): f["kind"] for u, f in truth["units"].items()}
    assert kinds == gt.unit_kind
    assert sorted(set(kinds.values())) == ["drifting", "good", "low_amplitude", "merged",
                                           "split"]
    clusters = {int(c): f for c, f in truth["clusters"].items()}
    groups = dict(line.split("\t") for line in
                  (a / "cluster_group.tsv").read_text().splitlines()[1:])
    assert {int(c): g for c, g in groups.items()} == {c: f["group"] for c, f in
                                                      clusters.items()}

    (split,) = truth["split"]
    u = split["ground_truth_unit_id"]
    first, second = split["cluster_ids"]
    union = np.sort(np.concatenate([_phy_train(a, first), _phy_train(a, second)]))
    np.testing.assert_array_equal(union, gt.sorting.spike_train(u))
    assert _phy_train(a, first).size > 0 and _phy_train(a, second).size > 0

    (merge,) = truth["merge"]
    (cluster,) = merge["cluster_ids"]
    both = np.sort(np.concatenate([gt.sorting.spike_train(v)
                                   for v in merge["ground_truth_unit_ids"]]))
    np.testing.assert_array_equal(_phy_train(a, cluster), both)

    for cid, facts in clusters.items():
        train = _phy_train(a, cid)
        assert train.size == facts["num_spikes"]
        if facts["kind"] in ("good", "drifting", "low_amplitude"):
            (v,) = facts["ground_truth_unit_ids"]
            true = gt.sorting.spike_train(v)
            hits = np.isin(train, true).sum()
            assert true.size - hits == facts["num_missed"]
            assert train.size - hits == facts["num_false"]
            assert facts["group"] == ("mua" if facts["kind"] == "low_amplitude" else "good")
        if facts["kind"] == "artefact":
            assert facts["ground_truth_unit_ids"] == [] and facts["expected_label"] == "noise"
    # every true unit is found somewhere; ids are shuffled, not copied
    assert all(f["cluster_ids"] for f in truth["units"].values())
    low = next(f for f in truth["units"].values() if f["kind"] == "low_amplitude")
    assert 25 <= low["amplitude_uv"] <= 45
    assert [int(c) for c in sorted(clusters)] == list(range(len(clusters)))


def test_in_memory_session_and_recording(gt):
    session = gt.session()
    rec = session.recording
    assert rec.num_samples == gt.num_samples and rec.num_channels == gt.num_channels
    np.testing.assert_allclose(rec.traces(100, 200, channel_ids=[3, 1]),
                               gt.traces[100:200][:, [3, 1]] * np.float32(gt.gain_to_uv))
    assert session.sorting.num_spikes == gt.sorting.num_spikes
    sorted_out = gt.sorter_output.sorting
    assert set(sorted_out.labels) <= {"good", "mua"}


def test_generate_validates_its_arguments():
    with pytest.raises(InputError, match="duration_s"):
        datasets.generate(duration_s=-1)
    with pytest.raises(InputError, match="num_columns"):
        datasets.generate(duration_s=1, num_columns=3)
    with pytest.raises(InputError, match="seed"):
        datasets.generate(duration_s=1, seed=-2)
    tiny = datasets.generate(duration_s=0.5, num_channels=4, num_units=2, seed=0)
    assert tiny.num_units == 2 and set(tiny.unit_kind.values()) <= {"good", "drifting"}


def test_generate_to_folder_refuses_to_overwrite(tmp_path):
    out = datasets.generate_to_folder(tmp_path / "d", duration_s=0.5, num_channels=4,
                                      num_units=2)
    with pytest.raises(InputError, match="already exists"):
        datasets.generate_to_folder(out, duration_s=0.5, num_channels=4, num_units=2)
    datasets.generate_to_folder(out, duration_s=0.5, num_channels=4, num_units=2, seed=9,
                                overwrite=True)
    assert datasets.read_ground_truth(out)["seed"] == 9


# -- demo cache ----------------------------------------------------------------------------------
DEMO = {"duration_s": 1.0, "num_channels": 8, "num_units": 5}


def test_demo_folder_is_cached_and_regenerated_when_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEVIZ_DATA_DIR", str(tmp_path / "cache"))
    folder = datasets.demo_folder(**DEMO)
    assert folder.parent == tmp_path / "cache" and folder.name.startswith("demo-")
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert datasets.demo_folder(**DEMO) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp  # reused
    other = datasets.demo_folder(seed=1, **DEMO)
    assert other != folder
    # a damaged file (same size, other bytes) is noticed and the folder regenerated
    times = folder / "spike_times.npy"
    data = bytearray(times.read_bytes())
    data[-1] ^= 0xFF
    times.write_bytes(bytes(data))
    assert not datasets.is_complete(folder)
    assert datasets.demo_folder(**DEMO) == folder
    assert datasets.is_complete(folder)
    # an older generator's folder is not trusted
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["generator_version"] = -1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert not datasets.is_complete(folder)


def test_demo_session_loads(tmp_path, monkeypatch):
    pytest.importorskip("spikeviz.io.phy")
    monkeypatch.setenv("SPIKEVIZ_DATA_DIR", str(tmp_path))
    session = datasets.demo_session(**DEMO)
    truth = datasets.read_ground_truth(datasets.demo_folder(**DEMO))
    assert session.sorting.num_units == len(truth["clusters"])
    assert session.recording is not None and session.recording.gain_known
    np.testing.assert_allclose(session.recording.gains_to_uv, 0.195)
    assert session.recording.num_samples == truth["num_samples"]


# -- the Phy writer --------------------------------------------------------------------------------
def _small_sorting():
    times = np.array([10, 20, 20, 35, 90], dtype=np.int64)
    clusters = np.array([2, 0, 2, 1, 0])
    templates = np.zeros((3, 5, 4), dtype=np.float32)
    templates[:, 2, :] = -1.0
    return times, clusters, templates


def test_phy_write_new_folder(tmp_path):
    times, clusters, templates = _small_sorting()
    out = write_phy_folder(tmp_path / "phy", times, clusters, 25000.0, templates=templates,
                           amplitudes=np.ones(5),
                           channel_positions_um=datasets.probe_locations_um(4, 2),
                           cluster_groups={0: "good", 2: "noise"},
                           params={"dat_path": str(tmp_path / "phy" / "raw.dat"),
                                   "n_channels_dat": 4})
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "amplitudes.npy",
        "templates.npy", "channel_map.npy", "channel_positions.npy", "cluster_group.tsv",
        "params.py"])
    np.testing.assert_array_equal(np.load(out / "spike_templates.npy"), clusters)
    np.testing.assert_array_equal(np.load(out / "channel_map.npy"), np.arange(4))
    assert (out / "cluster_group.tsv").read_text() == "cluster_id\tgroup\n0\tgood\n2\tnoise\n"
    text = (out / "params.py").read_text()
    assert text.splitlines()[0] == "dat_path = 'raw.dat'"  # made relative
    assert "sample_rate = 25000.0" in text and "hp_filtered = False" in text


def test_phy_write_into_existing_folder_and_overwrite(tmp_path):
    times, clusters, _ = _small_sorting()
    folder = tmp_path / "ks"
    folder.mkdir()
    (folder / "raw.dat").write_bytes(b"\0" * 16)
    write_phy_folder(folder, times, clusters, 30000.0)
    assert (folder / "raw.dat").exists() and (folder / "spike_times.npy").exists()
    with pytest.raises(InputError, match="overwrite=True"):
        write_phy_folder(folder, times, clusters, 30000.0)
    (folder / "pc_features.npy").write_bytes(b"x")
    (folder / "cluster_info.tsv").write_text("cluster_id\n")
    (folder / ".phy").mkdir()
    write_phy_folder(folder, times[:2], clusters[:2], 30000.0, overwrite=True)
    assert np.load(folder / "spike_times.npy").size == 2
    assert not (folder / "pc_features.npy").exists()
    assert not (folder / "cluster_info.tsv").exists() and not (folder / ".phy").exists()
    assert (folder / "raw.dat").exists()
    assert not [p for p in folder.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"sample_index": [5, 3, 9]}, "sorted"),
    ({"sample_index": [0.1, 0.2, 0.3]}, "samples, not seconds"),
    ({"sample_index": [-1, 3, 9]}, ">= 0"),
    ({"spike_clusters": [0, 1]}, "3 spikes"),
    ({"spike_clusters": [0, -1, 2]}, ">= 0"),
    ({"templates": np.zeros((2, 5, 4))}, "only 2 templates"),
    ({"amplitudes": [1.0, 2.0]}, "amplitudes"),
    ({"channel_positions_um": np.zeros((3, 2)), "templates": np.zeros((3, 5, 4))},
     "channel positions"),
    ({"cluster_groups": {0: "great"}}, "must be one of"),
    ({"cluster_groups": {7: "good"}}, "no spikes"),
    ({"params": {"sample_rate": 20000.0}}, "sample_rate"),
    ({"params": {"n_channels_dat": 2}, "channel_map": [0, 1, 5]}, "raw file has 2"),
    ({"params": {"dtype": "nonsense"}}, "dtype"),
    ({"params": {"offset": -4}}, "offset"),
    ({"params": {"meta": object()}}, "params.meta"),
    ({"params": {"n_channels_dat": "64"}}, "n_channels_dat"),
    ({"params": {"gain_to_uv": 0.0}}, "gain_to_uv"),
    ({"params": {"gain_to_uv": "0.195"}}, "gain_to_uv"),
    ({"params": {"gain_to_uv": True}}, "gain_to_uv"),
    ({"params": {"gain_to_uv": float("nan")}}, "gain_to_uv"),
    ({"params": {"n_channels_dat": 3, "gain_to_uv": [0.195, 0.195]}}, "one gain per channel"),
    ({"sampling_frequency": 0}, "sampling_frequency"),
])
def test_phy_write_rejects_bad_input(tmp_path, kwargs, field):
    args = {"sample_index": [1, 5, 9], "spike_clusters": [0, 1, 2],
            "sampling_frequency": 30000.0}
    args.update(kwargs)
    with pytest.raises(InputError, match=field):
        write_phy_folder(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()
    assert not os.listdir(tmp_path)


def test_phy_write_gain_to_uv_reads_back(tmp_path):
    from spikeviz.io.phy import parse_params

    times, clusters, _ = _small_sorting()
    gains = np.array([0.195, 0.2, 0.25, 2.34375])
    out = write_phy_folder(tmp_path / "phy", times, clusters, 30000.0,
                           params={"n_channels_dat": 4, "gain_to_uv": gains})
    assert parse_params(out / "params.py")["gain_to_uv"] == gains.tolist()
    one = write_phy_folder(tmp_path / "one", times, clusters, 30000.0,
                           params={"n_channels_dat": 4, "gain_to_uv": np.float32(0.5)})
    assert "gain_to_uv = 0.5\n" in (one / "params.py").read_text()


def test_phylib_and_spikeinterface_open_the_folder(folders, tmp_path):
    a = shutil.copytree(folders[0], tmp_path / "copy")
    truth = datasets.read_ground_truth(a)
    phylib_model = pytest.importorskip("phylib.io.model")
    model = phylib_model.load_model(a / "params.py")
    try:
        assert model.n_spikes == np.load(a / "spike_times.npy").size
        assert sorted(model.cluster_ids.tolist()) == sorted(int(c) for c in truth["clusters"])
        assert model.traces.shape == (truth["num_samples"], truth["num_channels"])
        np.testing.assert_array_equal(model.channel_positions, np.load(a / "channel_positions.npy"))
    finally:
        model.close()
    se = pytest.importorskip("spikeinterface.extractors")
    sorting = se.read_phy(a)
    cid = int(next(iter(truth["clusters"])))
    np.testing.assert_array_equal(sorting.get_unit_spike_train(cid), _phy_train(a, cid))
