"""Write small Phy/KiloSort folders in the dtypes and shapes the real tools use."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tests.conftest import shared_path


def write_folder(folder: Path, rng, num_spikes=3000, num_units=6, num_channels=8,
                 times_dtype=np.uint64, ids_dtype=np.int32, column=True, params=True,
                 clusters_file="spike_clusters.npy", tsv=True, templates_ind=None,
                 fs=30000.0, dat=False):
    """A KiloSort-like folder; returns (folder, times int64, cluster ids int64)."""
    folder.mkdir(parents=True, exist_ok=True)
    times = np.sort(rng.integers(0, 600_000, num_spikes)).astype(np.int64)
    ids = rng.choice(np.array([0, 3, 4, 7, 11, 12])[:num_units], num_spikes).astype(np.int64)

    def save(name, values):
        values = np.asarray(values)
        np.save(folder / name, values.reshape(-1, 1) if column else values)

    save("spike_times.npy", times.astype(times_dtype))
    save(clusters_file, ids.astype(ids_dtype))
    if clusters_file == "spike_clusters.npy":
        save("spike_templates.npy", ids.astype(np.uint32))
    save("amplitudes.npy", rng.uniform(5, 50, num_spikes))
    np.save(folder / "channel_map.npy", np.arange(num_channels, dtype=np.int32).reshape(-1, 1))
    np.save(folder / "channel_positions.npy",
            np.c_[np.tile([16.0, 48.0], num_channels // 2), np.repeat(np.arange(num_channels // 2)
                                                                       * 20.0, 2)])
    n_templates = 13
    if templates_ind is None:
        np.save(folder / "templates.npy",
                rng.normal(size=(n_templates, 61, num_channels)).astype(np.float32))
    else:
        np.save(folder / "templates.npy", rng.normal(size=(n_templates, 61, 3)).astype(np.float32))
        ind = np.stack([rng.choice(num_channels, 3, replace=False) for _ in range(n_templates)])
        np.save(folder / templates_ind, ind.astype(np.int64))
    if tsv:
        (folder / "cluster_group.tsv").write_text(
            "cluster_id\tgroup\n0\tgood\n3\tmua\n4\tnoise\n7\t\n")
        (folder / "cluster_KSLabel.tsv").write_text(
            "cluster_id\tKSLabel\n0\tgood\n3\tgood\n4\tmua\n7\tmua\n11\tgood\n12\tmua\n")
        (folder / "cluster_ContamPct.tsv").write_text(
            "cluster_id\tContamPct\n0\t1.5\n3\t20.0\n4\t100.0\n7\t3.25\n11\t0.0\n12\t9.0\n")
    if dat:
        traces = rng.integers(-500, 500, size=(600_000 + 100, num_channels)).astype(np.int16)
        traces.tofile(folder / "raw.dat")
    if params:
        (folder / "params.py").write_text(
            f"dat_path = {'r' + repr('raw.dat') if dat else repr('')}\n"
            f"n_channels_dat = {num_channels}\ndtype = 'int16'\noffset = 0\n"
            f"sample_rate = {fs!r}\nhp_filtered = True\n")
    return folder, times, ids


def copy_bombcell(tmp_path: Path) -> Path:
    src = shared_path("bombcell_toy_kilosort")
    dst = tmp_path / "bombcell"
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst
