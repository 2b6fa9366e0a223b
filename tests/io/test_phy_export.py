"""write_phy: Session -> Phy folder, checked with phylib's TemplateModel (the reader phy uses)
and read back with spikeviz's own Phy reader."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz import datasets
from spikeviz.errors import InputError
from spikeviz.io import phy_raw
from spikeviz.io.phy import parse_params, read_session
from spikeviz.io.phy_export import write_phy
from spikeviz.io.phy_write import write_phy_folder
from spikeviz.model import Session, Sorting
from tests.conftest import shared_path

phylib_model = pytest.importorskip("phylib.io.model")

STAGES = ("spikes", "templates", "channels", "pc_features", "tables")


def load_model(folder):
    return phylib_model.load_model(folder / "params.py")


# -- data -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated Phy folder (48 channels: sparse templates) with its raw recording.dat."""
    folder = tmp_path_factory.mktemp("gen") / "gen"
    return datasets.generate_to_folder(folder, duration_s=8.0, num_channels=48, num_units=8,
                                       seed=3)


def plain_session(generated, labels=None):
    """The generated sorter output with its memmapped recording but without KiloSort's
    templates (so templates are computed); one unit labelled 'non-soma'."""
    loaded = sv.load(generated)
    s = loaded.sorting
    table = s.unit_table[["label"]].copy()
    table.iloc[1, 0] = "non-soma"
    table["note"] = [f"unit {u}\twith tab" for u in s.unit_ids]
    sorting = Sorting.from_arrays(s.sample_index, s.unit_index, s.sampling_frequency,
                                  unit_ids=s.unit_ids, unit_table=table)
    return Session(sorting, recording=loaded.recording, cache_dir=None)


@pytest.fixture(scope="module")
def computed(generated, tmp_path_factory):
    """(session, exported folder, progress calls) with templates, amplitudes, similarity,
    metrics and PC features computed."""
    session = plain_session(generated)
    calls = []
    out = tmp_path_factory.mktemp("out") / "phy"
    write_phy(session, out, compute=True, progress=lambda step, f: calls.append((step, f)))
    return session, out, calls


def bombcell(tmp_path):
    folder = tmp_path / "ks"
    shutil.copytree(shared_path("bombcell_toy_kilosort"), folder)
    for path in [folder, *folder.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


# -- computed templates, linked raw -----------------------------------------------------------
def test_files_and_dtypes_are_kilosorts(computed):
    session, out, _ = computed
    n, u = session.sorting.num_spikes, session.sorting.num_units
    expect = {"spike_times.npy": (np.uint64, (n,)), "spike_clusters.npy": (np.int32, (n,)),
              "spike_templates.npy": (np.int32, (n,)), "amplitudes.npy": (np.float64, (n,)),
              "channel_map.npy": (np.int32, (48,)), "channel_positions.npy": (np.float64, (48, 2)),
              "templates.npy": (np.float32, (u, 90, 32)), "template_ind.npy": (np.int32, (u, 32)),
              "similar_templates.npy": (np.float32, (u, u)),
              "whitening_mat.npy": (np.float64, (48, 48)),
              "whitening_mat_inv.npy": (np.float64, (48, 48)),
              "pc_feature_ind.npy": (np.uint32, None), "pc_features.npy": (np.float32, None)}
    for name, (dtype, shape) in expect.items():
        array = np.load(out / name)
        assert array.dtype == dtype, name
        if shape is not None:
            assert array.shape == shape, name
    np.testing.assert_array_equal(np.load(out / "whitening_mat.npy"), np.eye(48))
    params = parse_params(out / "params.py")
    assert not os.path.isabs(params["dat_path"])  # relative: the pair can move together
    assert (out / params["dat_path"]).resolve() == Path(session.recording.source).resolve()
    assert params["n_channels_dat"] == 48 and params["dtype"] == "int16"
    assert params["sample_rate"] == 30000.0 and params["hp_filtered"] is False
    assert params["offset"] == 0 and params["gain_to_uv"] == pytest.approx(0.195)
    assert not (out / ".phy").exists()


def test_phylib_sees_the_same_spikes_clusters_and_labels(computed):
    session, out, _ = computed
    s = session.sorting
    model = load_model(out)
    try:
        np.testing.assert_array_equal(model.spike_samples, s.sample_index)
        np.testing.assert_array_equal(model.spike_clusters, s.unit_ids[s.unit_index])
        np.testing.assert_array_equal(model.cluster_ids, s.unit_ids)
        counts = s.spike_counts()
        for c in model.cluster_ids:
            assert model.get_cluster_spikes(c).size == counts[c]
        labels = s.labels
        group = model.metadata["group"]
        for u in s.unit_ids:
            if labels[u] in ("good", "mua", "noise", "unsorted"):
                assert group[u] == labels[u]
            else:
                assert u not in group and model.metadata["label"][u] == labels[u]
        assert model.metadata["note"][s.unit_ids[0]] == f"unit {s.unit_ids[0]} with tab"
    finally:
        model.close()


def test_phylib_templates_equal_ours(computed):
    session, out, _ = computed
    templates = session.compute("templates")
    model = load_model(out)
    try:
        for row in range(session.sorting.num_units):
            t = model.get_template(row)
            ours = templates.data[row][:, t.channel_ids]  # µV; identity whitening
            np.testing.assert_allclose(t.template, ours, rtol=1e-6, atol=1e-6)
            ptp = np.ptp(templates.data[row], axis=0)
            assert t.best_channel == np.argmax(ptp)  # phy: first template channel is the peak
            assert model.sparse_templates.cols[row, 0] == np.argmax(ptp)
        np.testing.assert_array_equal(model.spike_templates, session.sorting.unit_index)
    finally:
        model.close()


def test_amplitudes_scale_the_template_to_the_spike(computed):
    session, out, _ = computed
    spike_uv = session.compute("spike_amplitudes")
    peak = session.compute("templates").data.min(axis=(1, 2))
    amplitudes = np.load(out / "amplitudes.npy")
    np.testing.assert_allclose(amplitudes * peak[session.sorting.unit_index], spike_uv,
                               rtol=1e-5)
    assert 0.5 < np.median(amplitudes) < 1.5


def test_metrics_become_phy_columns(computed):
    session, out, _ = computed
    metrics = session.compute("quality_metrics")
    model = load_model(out)
    try:
        for name in metrics.columns:
            if name in ("num_spikes", "firing_rate"):  # phy computes n_spikes and fr itself
                assert not (out / f"cluster_{name}.tsv").exists()
                continue
            assert (out / f"cluster_{name}.tsv").is_file()
            column = model.metadata.get(name, {})  # phylib skips empty (NaN) cells
            assert column or metrics[name].isna().all(), name
            for u, value in metrics[name].items():
                if np.isfinite(value):
                    assert column[u] == pytest.approx(value, rel=1e-12)
                else:
                    assert u not in column
        assert metrics.notna().any().sum() >= 5
        assert (out / "cluster_snr.tsv").read_text().startswith("cluster_id\tsnr\n")
    finally:
        model.close()


def test_similar_templates_and_pc_features(computed):
    session, out, _ = computed
    similarity = session.compute("template_similarity")
    np.testing.assert_allclose(np.load(out / "similar_templates.npy"), similarity.to_numpy(),
                               rtol=1e-6)
    pcs = session.compute("principal_components", all_spikes=True)
    model = load_model(out)
    try:
        n, n_pcs, k = pcs["projections"].shape
        assert model.features.shape == (n, k, n_pcs)  # phylib's (spikes, channels, pcs)
        np.testing.assert_array_equal(model.features, pcs["projections"].transpose(0, 2, 1))
        ind = model.sparse_features.cols
        assert ind.shape == (session.sorting.num_units, k)
        channels = pcs["channel_indices"]
        used = channels >= 0
        np.testing.assert_array_equal(ind[used], channels[used])
        assert all(np.unique(row).size == k for row in ind)  # padding: distinct, unused
        depths = model.get_depths()  # casts the indices to uint32: no -1 allowed
        assert depths.shape == (n,)
        spikes = model.get_cluster_spikes(session.sorting.unit_ids[0])[:5]
        assert model.get_features(spikes, ind[0]).shape == (5, k, n_pcs)
    finally:
        model.close()


def test_traces_from_the_linked_raw(computed):
    session, out, _ = computed
    model = load_model(out)
    try:
        assert model.traces.shape == (session.recording.num_samples, 48)
        np.testing.assert_array_equal(model.traces[1000:1300],
                                      session.recording.traces(1000, 1300, scaled=False))
    finally:
        model.close()


def test_our_reader_reads_it_back(computed):
    session, out, _ = computed
    back = read_session(out)
    s, b = session.sorting, back.sorting
    np.testing.assert_array_equal(b.unit_ids, s.unit_ids)
    for u in s.unit_ids:
        np.testing.assert_array_equal(b.spike_train(u), s.spike_train(u))
    pd.testing.assert_series_equal(b.labels, s.labels, check_names=False)
    np.testing.assert_array_equal(back.channel_ids, session.channel_ids)
    np.testing.assert_array_equal(back.channel_locations_um, session.channel_locations_um)
    np.testing.assert_array_equal(back.recording.traces(0, 500), session.recording.traces(0, 500))


def test_progress_covers_the_whole_export(computed):
    _, _, calls = computed
    assert calls[0] == ("phy", 0.0) and calls[-1] == ("phy", 1.0)
    assert all(0 <= f <= 1 for _, f in calls)
    steps = [step for step, _ in calls[1:-1]]
    assert [step for step, _ in itertools.groupby(steps)] == list(STAGES)  # in order, once
    for stage in STAGES:
        fractions = [f for step, f in calls if step == stage]
        assert 0 < fractions[0] and fractions == sorted(fractions) and fractions[-1] == 1.0


def test_reexport_carries_kilosort_files_over(computed, tmp_path):
    """Reading our export back gives a KiloSort-style session; writing it again keeps the
    templates, amplitudes and (same spikes) PC features as they are."""
    _, first, _ = computed
    session = read_session(first)
    second = write_phy(session, tmp_path / "again", pc_features=True)
    for name in ("templates.npy", "template_ind.npy", "spike_templates.npy", "amplitudes.npy",
                 "pc_features.npy", "pc_feature_ind.npy", "whitening_mat_inv.npy",
                 "similar_templates.npy", "spike_times.npy", "channel_map.npy"):
        np.testing.assert_array_equal(np.load(second / name), np.load(first / name), name)
    assert (second / "cluster_label.tsv").is_file()
    np.testing.assert_array_equal(read_session(second).sorting.labels, session.sorting.labels)


# -- real KiloSort 2 output, no raw -----------------------------------------------------------
def test_bombcell_kilosort_folder(tmp_path):
    source = bombcell(tmp_path)
    session = sv.load(source, sampling_frequency=30000)
    out = write_phy(session, tmp_path / "phy")
    params = parse_params(out / "params.py")
    assert params["dat_path"] == "" and params["sample_rate"] == 30000.0
    original = phylib_model.TemplateModel(dir_path=source, dat_path=[], sample_rate=30000.0,
                                          n_channels_dat=385, dtype=np.int16)
    model = load_model(out)
    try:
        assert model.traces is None
        np.testing.assert_array_equal(model.spike_samples, original.spike_samples)
        np.testing.assert_array_equal(model.spike_clusters, original.spike_clusters)
        np.testing.assert_array_equal(model.spike_templates, original.spike_templates)
        np.testing.assert_array_equal(model.amplitudes, original.amplitudes)
        np.testing.assert_array_equal(model.wmi, original.wmi)
        np.testing.assert_allclose(model.wm @ model.wmi, np.eye(356), atol=1e-9)
        np.testing.assert_array_equal(model.channel_positions, original.channel_positions)
        np.testing.assert_array_equal(model.channel_mapping, original.channel_mapping)
        for t in range(15):  # unwhitened with the carried-over inverse whitening matrix
            a, b = model.get_template(t), original.get_template(t)
            np.testing.assert_array_equal(a.channel_ids, b.channel_ids)
            np.testing.assert_allclose(a.template, b.template, rtol=1e-6)
        bc = pd.read_csv(source / "cluster_bc_unitType.tsv", sep="\t").set_index("cluster_id")
        for c, value in bc["bc_unitType"].items():
            assert model.metadata["bc_unitType"][c] == value
            label = value.lower()
            assert model.metadata["label"][c] == label
            assert model.metadata["group"].get(c) == (label if label != "non-soma" else None)
    finally:
        model.close()
        original.close()
    back = sv.load(out)
    s, b = session.sorting, back.sorting
    np.testing.assert_array_equal(b.unit_ids, s.unit_ids)
    np.testing.assert_array_equal(b.sample_index, s.sample_index)
    np.testing.assert_array_equal(b.unit_index, s.unit_index)
    assert b.labels.tolist() == s.labels.tolist()
    np.testing.assert_array_equal(back.channel_ids, session.channel_ids)
    np.testing.assert_array_equal(back.channel_locations_um, session.channel_locations_um)


# -- copied raw, zero templates, renumbered ids ---------------------------------------------------
@pytest.mark.filterwarnings("ignore:no templates")
def test_copy_raw_of_a_non_binary_recording(tmp_path):
    gt = datasets.generate(duration_s=3.0, num_channels=8, num_units=4, seed=5)
    session = gt.session()  # lazily rendered traces: nothing phy could link to
    with pytest.warns(UserWarning, match="raw='link' needs"):
        linked = write_phy(session, tmp_path / "linked", raw="link")
    assert parse_params(linked / "params.py")["dat_path"] == ""
    calls = []
    with pytest.warns(UserWarning, match="zero templates"):
        out = write_phy(session, tmp_path / "copied", raw="copy",
                        progress=lambda step, f: calls.append((step, f)))
    assert calls[-2:] == [("raw", 1.0), ("phy", 1.0)]
    params = parse_params(out / "params.py")
    assert params["dat_path"] == "recording.dat" and params["dtype"] == "int16"
    model = load_model(out)
    try:
        rec = session.recording
        assert model.traces.shape == (rec.num_samples, 8)
        for start in (0, 40_000, rec.num_samples - 300):
            np.testing.assert_array_equal(model.traces[start:start + 300],
                                          rec.traces(start, start + 300, scaled=False))
        assert model.sparse_templates.data.shape == (4, 90, 8)
        assert not model.sparse_templates.data.any()
        assert model.get_template(0).template.shape[0] == 90
        assert set(model.metadata) >= {"kind", "firing_rate_hz"}
    finally:
        model.close()
    back = sv.load(out)  # gain_to_uv in params.py: traces in µV again
    np.testing.assert_allclose(back.recording.traces(100, 200), rec.traces(100, 200))


def test_string_ids_empty_units_and_no_channels(tmp_path):
    sorting = Sorting.from_arrays(np.array([5, 9, 30, 31, 77]), np.array([0, 2, 0, 2, 0]),
                                  20000.0, unit_ids=["a", "b", "c"],
                                  unit_table=pd.DataFrame({"label": ["good", "noise", "mua"]},
                                                          index=["a", "b", "c"]))
    with pytest.warns(UserWarning) as record:
        out = write_phy(Session(sorting), tmp_path / "phy")
    messages = " ".join(str(w.message) for w in record)
    for expected in ("without spikes", "numbered 0..n-1", "zero templates", "placeholder"):
        assert expected in messages
    model = load_model(out)
    try:
        np.testing.assert_array_equal(model.spike_clusters, [0, 1, 0, 1, 0])
        assert model.metadata["unit_id"] == {0: "a", 1: "c"}
        assert model.metadata["group"] == {0: "good", 1: "mua"}
        assert model.n_channels == 1 and model.sparse_templates.data.shape == (2, 60, 1)
    finally:
        model.close()
    back = sv.load(out)
    assert back.sorting.unit_table["unit_id"].tolist() == ["a", "c"]
    assert back.sorting.labels.tolist() == ["good", "mua"]


# -- stale cache, overwrite, failures, bad input ----------------------------------------------
def test_stale_phy_cache_is_removed_and_overwrite_is_explicit(computed, tmp_path):
    session, _, _ = computed
    out = write_phy(session, tmp_path / "phy", pc_features=False)
    assert not (out / "pc_features.npy").exists()
    (out / ".phy").mkdir()
    (out / ".phy" / "spikes_per_cluster.pkl").write_bytes(b"stale")
    with pytest.raises(InputError, match="overwrite=True"):
        write_phy(session, out)
    assert (out / ".phy").is_dir()
    write_phy(session, out, overwrite=True, raw=None)
    assert not (out / ".phy").exists()
    assert parse_params(out / "params.py")["dat_path"] == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phy"]


def test_linking_a_raw_file_inside_the_replaced_folder_is_refused(generated, tmp_path):
    """The sorting's own folder (raw data, ground truth) is never replaced, whatever ``raw``;
    a Phy-only folder whose raw file would be deleted by the swap cannot be linked either."""
    folder = shutil.copytree(generated, tmp_path / "gen")
    session = sv.load(folder)
    before = sorted(p.name for p in folder.iterdir())
    for raw in ("link", "copy", None):
        with pytest.raises(InputError, match="not Phy output"):
            write_phy(session, folder, overwrite=True, raw=raw)
    assert sorted(p.name for p in folder.iterdir()) == before
    out = write_phy(session, tmp_path / "out", raw="copy")
    copied = sv.load(out)
    with pytest.raises(InputError, match="inside the folder"):
        write_phy(copied, out, overwrite=True, raw="link")
    write_phy(copied, out, overwrite=True, raw="copy")  # copied before the swap
    model = load_model(out)
    try:
        np.testing.assert_array_equal(model.traces[:100],
                                      session.recording.traces(0, 100, scaled=False))
    finally:
        model.close()


def test_failure_while_writing_leaves_nothing(computed, tmp_path, monkeypatch):
    session, _, _ = computed

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(phy_raw, "copy_raw", broken)
    with pytest.raises(InputError, match="No space left"):
        write_phy(session, tmp_path / "phy", raw="copy")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destinations(computed, tmp_path):
    session, _, _ = computed
    with pytest.raises(InputError, match="does not exist"):
        write_phy(session, tmp_path / "missing" / "phy")
    with pytest.raises(InputError, match="could not write"):
        write_phy(session, "/proc/spikeviz-phy-test", raw=None)  # refused even to root
    assert not any(p.name.startswith(".spikeviz-phy-test") for p in os.scandir("/proc"))
    if os.geteuid() != 0:  # permissions do not bind root
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="not writable"):
            write_phy(session, locked / "phy")
        assert list(locked.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == (["locked"] if os.geteuid() else [])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"session": "not a session"}, "Session"),
    ({"raw": "symlink"}, "raw must be"),
    ({"progress": 3}, "progress"),
])
def test_bad_input(computed, tmp_path, kwargs, match):
    session, _, _ = computed
    args = {"session": session, "folder": tmp_path / "phy"}
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        write_phy(**args)
    assert list(tmp_path.iterdir()) == []


def test_a_sorting_without_spikes_is_refused(tmp_path):
    empty = Sorting.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int32), 30000.0,
                                unit_ids=[1, 2])
    with pytest.raises(InputError, match="no spikes"):
        write_phy(Session(empty), tmp_path / "phy")
    assert list(tmp_path.iterdir()) == []


def test_curated_kilosort_session_keeps_its_templates(tmp_path):
    """A merge after sorting: clusters change, KiloSort's templates stay (phy's own model)."""
    session = sv.load(bombcell(tmp_path), sampling_frequency=30000)
    s = session.sorting
    merged_index = np.where(s.unit_index == 3, 2, s.unit_index)  # unit 3 into unit 2
    kept = [u for u in range(s.num_units) if u != 3]
    sorting = Sorting.from_arrays(s.sample_index, np.searchsorted(kept, merged_index),
                                  s.sampling_frequency, unit_ids=s.unit_ids[kept],
                                  unit_table=s.unit_table.iloc[kept],
                                  spike_properties=s.spike_properties)
    curated = Session(sorting, source=session.source, format="phy",
                      channel_ids=session.channel_ids,
                      channel_locations_um=session.channel_locations_um,
                      results=session.results)
    out = write_phy(curated, tmp_path / "phy")
    model = load_model(out)
    try:
        assert model.cluster_ids.tolist() == s.unit_ids[kept].tolist()
        np.testing.assert_array_equal(model.spike_templates,
                                      s.spike_properties["template_index"])
        counts = model.get_template_counts(s.unit_ids[2])
        assert counts[2] == (s.unit_index == 2).sum() and counts[3] == (s.unit_index == 3).sum()
        assert model.sparse_templates.data.shape == (15, 82, 356)
    finally:
        model.close()


def test_destination_that_is_a_file_is_refused(computed, tmp_path):
    session, _, _ = computed
    (tmp_path / "phy").write_text("keep me")
    with pytest.raises(InputError, match="not a folder"):
        write_phy(session, tmp_path / "phy", overwrite=True)
    assert (tmp_path / "phy").read_text() == "keep me"


# -- progress: from ("phy", 0.0) before any file to ("phy", 1.0) before the rename -------------
@pytest.fixture(scope="module")
def small():
    """A small session (40 channels: sparse templates) with everything computed, and the
    progress calls of its export with a copied raw."""
    session = datasets.generate(duration_s=2.0, num_channels=40, num_units=4, seed=7).session()
    calls = []
    with tempfile.TemporaryDirectory() as tmp:
        write_phy(session, Path(tmp) / "phy", raw="copy", compute=True,
                  progress=lambda step, f: calls.append((step, f)))
    return session, calls


def snapshot(folder: Path) -> dict:
    """Every entry below ``folder``; files with their size and modification time."""
    return {str(p.relative_to(folder)):
            "folder" if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def stop_at(k: int):
    count = itertools.count()

    def progress(step, fraction):
        if next(count) == k:
            raise RuntimeError(f"stop at {k} ({step}, {fraction})")
    return progress


def test_progress_starts_before_any_file_and_ends_before_the_rename(small, tmp_path):
    session, calls = small
    assert calls[0] == ("phy", 0.0) and calls[-2:] == [("raw", 1.0), ("phy", 1.0)]
    assert [s for s, _ in itertools.groupby(s for s, _ in calls)] == ["phy", *STAGES, "raw",
                                                                      "phy"]
    seen = {}

    def look(step, fraction):
        if step == "phy":
            seen[fraction] = sorted(p.name for p in tmp_path.iterdir())
    write_phy(session, tmp_path / "phy", raw="copy", compute=True, progress=look)
    assert seen[0.0] == []
    (temporary,) = seen[1.0]
    assert temporary.startswith(".phy.")  # all written, under the temporary name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phy"]


def test_an_exception_from_progress_at_any_call_leaves_nothing(small, tmp_path):
    """New destination: nothing afterwards. Existing folder with overwrite=True: its old
    content untouched."""
    session, calls = small
    old = write_phy(session, tmp_path / "old", raw=None, pc_features=False)
    (old / ".phy").mkdir()
    (old / ".phy" / "cache.pkl").write_bytes(b"stale")
    before = snapshot(tmp_path)
    for k in range(len(calls)):
        for destination, overwrite in ((tmp_path / "new", False), (old, True)):
            with pytest.raises(RuntimeError, match=f"stop at {k} "):
                write_phy(session, destination, overwrite=overwrite, raw="copy", compute=True,
                          progress=stop_at(k))
            assert snapshot(tmp_path) == before, (calls[k], destination.name)
    write_phy(session, old, overwrite=True, raw="copy", compute=True)  # fully replaced
    assert not (old / ".phy").exists() and (old / "pc_features.npy").is_file()
    assert parse_params(old / "params.py")["dat_path"] == "recording.dat"


def test_write_phy_folder_progress_and_exceptions(tmp_path):
    """Into an existing folder (beside its raw file) every file is written under a temporary
    name and renamed only at the end: an exception from progress leaves the folder as it was,
    stale files and all."""
    times, clusters = np.array([3, 8, 8, 20, 41]), np.array([0, 2, 0, 2, 2])
    args = {"templates": np.ones((3, 6, 4)), "cluster_groups": {0: "good", 2: "mua"},
            "params": {"dat_path": "raw.dat", "n_channels_dat": 4},
            "pc_features": np.ones((5, 3, 2)), "pc_feature_ind": np.tile([0, 1], (3, 1)),
            "cluster_tables": pd.DataFrame({"snr": [4.5, 2.0]}, index=[0, 2])}
    calls = []
    write_phy_folder(tmp_path / "new", times, clusters, 30000.0,
                     progress=lambda step, f: calls.append((step, f)), **args)
    assert calls[0] == ("phy", 0.0) and calls[-1] == ("phy", 1.0)
    assert [s for s, _ in itertools.groupby(s for s, _ in calls)] == ["phy", *STAGES, "phy"]
    assert calls[-2] == ("tables", 1.0)

    folder = tmp_path / "ks"
    folder.mkdir()
    (folder / "raw.dat").write_bytes(b"\0" * 160)
    write_phy_folder(folder, times[:2], clusters[:2], 30000.0, templates=np.ones((3, 6, 4)),
                     params={"dat_path": "raw.dat", "n_channels_dat": 4})
    (folder / "cluster_old.tsv").write_text("cluster_id\told\n0\t1\n")
    (folder / ".phy").mkdir()
    before = snapshot(tmp_path)
    for k in range(len(calls)):
        for destination, overwrite in ((tmp_path / "fresh", False), (folder, True)):
            with pytest.raises(RuntimeError, match=f"stop at {k} "):
                write_phy_folder(destination, times, clusters, 30000.0, overwrite=overwrite,
                                 progress=stop_at(k), **args)
            assert snapshot(tmp_path) == before, (calls[k], destination.name)
    write_phy_folder(folder, times, clusters, 30000.0, overwrite=True, **args)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["raw.dat", *(name for name in os.listdir(tmp_path / "new"))])
    np.testing.assert_array_equal(np.load(folder / "spike_clusters.npy"), clusters)


def test_overwrite_never_deletes_files_a_phy_export_did_not_write(generated, tmp_path,
                                                                  monkeypatch):
    """Overwriting replaces the whole folder, so a folder holding anything else (the raw
    data, notes, another tool's output) is refused even with overwrite=True, and kept."""
    session = plain_session(generated)
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    shutil.copy(generated / "recording.dat", user / "recording.dat")
    before = sorted((p.name, p.stat().st_size) for p in user.iterdir())
    with pytest.raises(InputError, match=r"not Phy output.*notes\.txt"):
        write_phy(session, user, overwrite=True, raw=None)
    assert sorted((p.name, p.stat().st_size) for p in user.iterdir()) == before
    # the folder of a sorting itself (with its raw data and ground truth) is refused too
    with pytest.raises(InputError, match="not Phy output"):
        sv.export.to_phy(session, generated, overwrite=True, raw=None)
    # a previous export (with its copied raw data) may be replaced
    out = write_phy(session, tmp_path / "out", raw="copy")
    write_phy(session, out, overwrite=True, raw="copy")
    assert (out / "recording.dat").is_file() and (out / "params.py").is_file()
    # never the current folder: the shell would be left in a deleted directory
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(InputError, match="current folder"):
        sv.export.to_phy(session, ".", overwrite=True, raw=None)
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_templates_an_nwb_file_carried_become_the_phy_templates(generated, tmp_path):
    """A session read from NWB with waveform_mean and no computed templates: the Phy export
    writes those (µV) templates, not zeros, and phylib reads them back."""
    pytest.importorskip("pynwb")
    session = plain_session(generated)
    session.cache_dir = None
    nwb = sv.export.to_nwb(session, tmp_path / "t.nwb", compute=True)
    back = sv.load(nwb)
    held = back.results["nwb_templates"]
    assert np.abs(held.data).max() > 10  # real waveforms, µV
    out = write_phy(back, tmp_path / "phy", raw=None)
    templates = np.load(out / "templates.npy")
    assert np.abs(templates).max() > 10
    model = load_model(out)
    try:
        for row in range(back.sorting.num_units):
            expected = held.dense(row)
            peak = int(np.argmax(np.ptp(expected, axis=0)))
            got = model.get_template(row)
            # phylib gives the template on its best channels, peak channel first
            np.testing.assert_allclose(got.template[:, 0], expected[:, peak], atol=1e-3)
            assert int(got.channel_ids[0]) == peak
    finally:
        model.close()
