import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from spikeviz.io.phy import parse_params
from tests.conftest import shared_path
from tests.io.phy_folders import copy_bombcell, write_folder


# -- the real KiloSort 2 folder ---------------------------------------------------------------
def test_bombcell_kilosort2_folder():
    folder = shared_path("bombcell_toy_kilosort")
    session = sv.load(folder, sampling_frequency=30000)
    s = session.sorting
    assert session.format == "phy"
    assert s.num_units == 15 and s.num_spikes == 94_565
    times = np.load(folder / "spike_times.npy")[:, 0].astype(np.int64)
    clusters = np.load(folder / "spike_clusters.npy")[:, 0]
    for u in s.unit_ids:
        np.testing.assert_array_equal(s.spike_train(u), times[clusters == u])
    bc = pd.read_csv(folder / "cluster_bc_unitType.tsv", sep="\t").set_index("cluster_id")
    assert (s.unit_table["bc_unitType"] == bc["bc_unitType"].reindex(s.unit_ids).values).all()
    assert s.labels.value_counts().to_dict() == {"mua": 8, "good": 4, "non-soma": 2, "noise": 1}
    assert session.num_channels == 356 and session.channel_locations_um.shape == (356, 2)
    templates = session.results["kilosort_templates"]
    assert templates.data.shape == (15, 82, 356) and templates.units == "whitened"
    np.testing.assert_array_equal(templates.channel_ids,
                                  np.load(folder / "channel_map.npy").ravel())
    amps = np.load(folder / "amplitudes.npy")[:, 0]
    np.testing.assert_array_equal(s.spike_properties["amplitudes"], amps)
    assert session.recording is None


def test_bombcell_without_rate_says_what_to_do():
    folder = shared_path("bombcell_toy_kilosort")
    with pytest.raises(InputError, match=r"sampling_frequency=") as err:
        sv.load(folder)
    assert str(folder) in str(err.value) and "params.py" in str(err.value)


def test_bombcell_matches_spikeinterface_and_phylib(tmp_path):
    si_ext = pytest.importorskip("spikeinterface.extractors")
    folder = copy_bombcell(tmp_path)
    (folder / "params.py").write_text(
        "dat_path = ''\nn_channels_dat = 385\ndtype = 'int16'\noffset = 0\n"
        "sample_rate = 30000.0\nhp_filtered = False\n")
    ours = sv.load(folder).sorting
    theirs = si_ext.read_phy(folder)
    assert sorted(theirs.get_unit_ids().tolist()) == ours.unit_ids.tolist()
    for u in ours.unit_ids:
        np.testing.assert_array_equal(ours.spike_train(u), theirs.get_unit_spike_train(u))
    phylib_model = pytest.importorskip("phylib.io.model")
    model = phylib_model.TemplateModel(dir_path=folder, sample_rate=30000.0,
                                       n_channels_dat=385, dtype=np.int16, dat_path=[])
    try:
        np.testing.assert_array_equal(ours.sample_index, model.spike_samples)
        np.testing.assert_array_equal(ours.unit_ids[ours.unit_index], model.spike_clusters)
    finally:
        model.close()


# -- every dtype and shape KiloSort/phy write -------------------------------------------------
@pytest.mark.parametrize("times_dtype", [np.uint64, np.int64, np.uint32, np.int32])
@pytest.mark.parametrize("ids_dtype", [np.int16, np.int32, np.int64, np.uint32])
@pytest.mark.parametrize("column", [True, False])
def test_dtype_and_shape_variants(tmp_path, rng, times_dtype, ids_dtype, column):
    folder, times, ids = write_folder(tmp_path / "ks", rng, times_dtype=times_dtype,
                                      ids_dtype=ids_dtype, column=column)
    s = sv.load(folder).sorting
    assert s.unit_ids.tolist() == sorted(set(ids.tolist()))
    for u in s.unit_ids:
        np.testing.assert_array_equal(s.spike_train(u), times[ids == u])
    assert s.sampling_frequency == 30000.0


def test_spike_templates_used_when_no_clusters(tmp_path, rng):
    folder, times, ids = write_folder(tmp_path / "ks", rng, clusters_file="spike_templates.npy")
    s = sv.load(folder).sorting
    for u in s.unit_ids:
        np.testing.assert_array_equal(s.spike_train(u), times[ids == u])
    assert "template_index" not in s.spike_properties


def test_cluster_tsvs_become_unit_properties(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng)
    (folder / "cluster_info.tsv").write_text(
        "id\tgroup\tdepth\tfr\n0\tmua\t100.0\t3.0\n3\tmua\t20.0\t1.0\n")
    t = sv.load(folder).sorting.unit_table
    assert t.loc[0, "ContamPct"] == 1.5 and t.loc[7, "ContamPct"] == 3.25
    assert t.loc[0, "group"] == "good"  # cluster_group.tsv overrides cluster_info.tsv
    assert t.loc[0, "depth"] == 100.0 and np.isnan(t.loc[4, "depth"])
    # label: phy's group first, KSLabel where phy says nothing
    assert t["label"].to_dict() == {0: "good", 3: "mua", 4: "noise", 7: "mua", 11: "good",
                                    12: "mua"}


@pytest.mark.parametrize("name", ["template_ind.npy", "templates_ind.npy"])
def test_sparse_templates(tmp_path, rng, name):
    folder, _, _ = write_folder(tmp_path / "ks", rng, templates_ind=name)
    templates = sv.load(folder).results["kilosort_templates"]
    ind = np.load(folder / name)
    data = np.load(folder / "templates.npy")
    dense = templates.dense(4)
    np.testing.assert_array_equal(dense[:, ind[4]], data[4])
    assert np.count_nonzero(np.abs(dense).sum(axis=0)) == 3


def test_raw_recording_from_dat_path(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng, dat=True)
    session = sv.load(folder)
    rec = session.recording
    assert rec is not None and rec.num_channels == 8 and rec.is_filtered
    raw = np.fromfile(folder / "raw.dat", dtype=np.int16).reshape(-1, 8)
    np.testing.assert_array_equal(rec.traces(1000, 1010, scaled=False), raw[1000:1010])
    np.testing.assert_array_equal(rec.channel_locations_um, np.load(folder /
                                                                    "channel_positions.npy"))
    assert session.sorting.num_samples == raw.shape[0]


def test_dat_path_from_another_machine_is_found_by_name(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng, dat=True)
    (folder / "params.py").write_text(
        "dat_path = r'D:\\\\data\\\\mouse1\\\\raw.dat'\nn_channels_dat = 8\ndtype = 'int16'\n"
        "offset = 0\nsample_rate = 30000.\nhp_filtered = False\n")
    assert sv.load(folder).recording.source == str(folder / "raw.dat")


def test_missing_dat_is_a_warning_not_an_error(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng)
    assert sv.load(folder).recording is None  # dat_path = '': nothing to say
    text = (folder / "params.py").read_text().replace("dat_path = ''", "dat_path = 'gone.dat'")
    (folder / "params.py").write_text(text)
    with pytest.warns(UserWarning, match=r"params.py.*'gone.dat' not found"):
        assert sv.load(folder).recording is None


# -- params.py is parsed, never executed ------------------------------------------------------
def test_params_literals(tmp_path):
    p = tmp_path / "params.py"
    p.write_text('"""doc"""\ndat_path = ["a.bin"]\nsample_rate = 3e4\nhp_filtered = True\n')
    assert parse_params(p) == {"dat_path": ["a.bin"], "sample_rate": 30000.0,
                               "hp_filtered": True}


@pytest.mark.parametrize("code", [
    "import os\nos.system('touch {marker}')\nsample_rate = 30000",
    "sample_rate = __import__('os').system('touch {marker}')",
    "open('{marker}', 'w')\nsample_rate = 30000",
    "def f():\n    pass\nsample_rate = 30000",
])
def test_params_code_is_never_run(tmp_path, rng, code):
    folder, _, _ = write_folder(tmp_path / "ks", rng)
    marker = tmp_path / "pwned"
    (folder / "params.py").write_text(code.format(marker=marker))
    with pytest.raises(InputError, match=r"never executed") as err:
        sv.load(folder)
    assert "params.py" in str(err.value)
    assert not marker.exists()


# -- bad input: clear errors naming the file --------------------------------------------------
def test_truncated_npy(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng)
    path = folder / "spike_times.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"truncated or corrupt") as err:
        sv.load(folder)
    assert "spike_times.npy" in str(err.value)


def test_garbage_npy(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng)
    (folder / "spike_clusters.npy").write_bytes(b"not numpy at all")
    with pytest.raises(InputError, match=r"spike_clusters.npy"):
        sv.load(folder)


def test_length_mismatch(tmp_path, rng):
    folder, _, ids = write_folder(tmp_path / "ks", rng)
    np.save(folder / "spike_clusters.npy", ids[:-3].astype(np.int32))
    with pytest.raises(InputError, match=r"spike_clusters.npy.*2,997 entries.*3,000 spikes"):
        sv.load(folder)


def test_unsorted_times(tmp_path, rng):
    folder, times, _ = write_folder(tmp_path / "ks", rng)
    times = times.copy()
    times[[10, 11]] = times[[11, 10]] + np.array([0, 1])
    times[10] += 5
    np.save(folder / "spike_times.npy", times.astype(np.uint64))
    with pytest.raises(InputError, match=r"spike_times.npy.*sorted"):
        sv.load(folder)


def test_negative_ids(tmp_path, rng):
    folder, _, ids = write_folder(tmp_path / "ks", rng)
    ids = ids.copy()
    ids[5] = -1
    np.save(folder / "spike_clusters.npy", ids.astype(np.int32))
    with pytest.raises(InputError, match=r"spike_clusters.npy.*negative cluster id -1"):
        sv.load(folder)


def test_float_ids_rejected(tmp_path, rng):
    folder, _, ids = write_folder(tmp_path / "ks", rng)
    np.save(folder / "spike_clusters.npy", ids + 0.5)
    with pytest.raises(InputError, match=r"spike_clusters.npy.*integer"):
        sv.load(folder)


@pytest.mark.parametrize("missing, match", [
    ("spike_times.npy", "spike_times.npy.*required file is missing"),
    ("clusters", "neither spike_clusters.npy nor spike_templates.npy"),
])
def test_missing_files(tmp_path, rng, missing, match):
    folder, _, _ = write_folder(tmp_path / "ks", rng)
    if missing == "clusters":
        (folder / "spike_clusters.npy").unlink()
        (folder / "spike_templates.npy").unlink()
    else:
        (folder / missing).unlink()
    with pytest.raises(InputError, match=match):
        sv.load(folder)


def test_amplitudes_length_mismatch(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng)
    np.save(folder / "amplitudes.npy", np.ones(10))
    with pytest.raises(InputError, match=r"amplitudes.npy"):
        sv.load(folder)


def test_tsv_without_id_column(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng)
    (folder / "cluster_group.tsv").write_text("cluster\tgroup\n0\tgood\n")
    with pytest.raises(InputError, match=r"cluster_group.tsv.*cluster_id"):
        sv.load(folder)


def test_dat_size_not_matching_channel_count(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng, dat=True)
    with open(folder / "raw.dat", "ab") as f:
        f.write(b"\0" * 6)
    with pytest.raises(InputError, match=r"raw.dat.*whole number of samples"):
        sv.load(folder)


def test_not_a_folder_or_unknown(tmp_path):
    with pytest.raises(InputError, match=r"no such file"):
        sv.load(tmp_path / "nothing")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match=r"not a format spikeviz reads"):
        sv.load(tmp_path / "x.txt")


def test_gain_from_params_or_argument(tmp_path, rng):
    folder, _, _ = write_folder(tmp_path / "ks", rng, dat=True)
    raw = np.fromfile(folder / "raw.dat", dtype=np.int16).reshape(-1, 8)
    rec = sv.load(folder).recording
    assert rec.gain_known is False
    np.testing.assert_array_equal(rec.traces(0, 5), raw[:5].astype(np.float32))
    rec = sv.load(folder, gain_to_uv=0.195).recording
    assert rec.gain_known is True
    np.testing.assert_allclose(rec.traces(0, 5), raw[:5] * np.float32(0.195))
    with open(folder / "params.py", "a") as f:
        f.write("gain_to_uv = 2.5\n")
    np.testing.assert_allclose(sv.load(folder).recording.traces(0, 5), raw[:5] * 2.5)
