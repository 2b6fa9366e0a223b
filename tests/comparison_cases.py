"""Comparison test data: a generated ground truth and a perturbed copy of it, as spikeviz
sortings or as two Phy folders that share the generated recording (so both sides have
templates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import spikeviz as sv
from spikeviz import datasets


def perturbed_copy(gt: sv.Sorting, seed: int = 0) -> sv.Sorting:
    """The ground truth as a sorter might return it: every unit with 5 % of its spikes
    dropped and the rest jittered within ±6 samples (< delta), except one unit split 70/30
    ("split_major", "split_minor"), two units merged ("merged") and a noise unit ("noise").
    String unit ids ("good<k>" for the kept ones)."""
    rng = np.random.default_rng(seed)
    ids = [int(u) for u in gt.unit_ids]
    counts = gt.spike_counts()
    big, small = next((x, y) for x in ids for y in ids if x != y and
                      0.4 <= counts[y] / max(counts[x], 1) <= 0.6)
    split = next(u for u in ids if u not in (big, small))
    trains, names = [], []
    for u in ids:
        if u in (big, small, split):
            continue
        t = gt.spike_train(u)
        t = t[rng.random(t.size) > 0.05]
        trains.append(np.sort(np.clip(t + rng.integers(-6, 7, t.size), 0, None)))
        names.append(f"good{u}")
    t = gt.spike_train(split)
    part = rng.random(t.size) < 0.7
    num_samples = gt.num_samples or int(gt.sample_index[-1]) + 1
    trains += [t[part], t[~part],
               np.sort(np.concatenate([gt.spike_train(big), gt.spike_train(small)])),
               np.sort(rng.integers(0, num_samples, 300))]
    names += ["split_major", "split_minor", "merged", "noise"]
    sample_index = np.concatenate(trains)
    unit_index = np.repeat(np.arange(len(trains)), [len(x) for x in trains])
    order = np.argsort(sample_index, kind="stable")
    return sv.Sorting.from_arrays(sample_index[order], unit_index[order],
                                  gt.sampling_frequency, unit_ids=np.array(names))


def ground_truth_folders(root: Path, duration_s: float = 30.0, num_channels: int = 32,
                         num_units: int = 12, seed: int = 1) -> tuple[Path, Path]:
    """``(truth, tested)``: Phy folders of a generated ground truth and of its perturbed copy,
    both pointing at the generated recording."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    generated = datasets.generate_to_folder(root / "generated", duration_s=duration_s,
                                            num_channels=num_channels, num_units=num_units,
                                            seed=seed)
    session = sv.load(generated)
    gt = sv.load(generated / "ground_truth.npz",
                 sampling_frequency=session.sorting.sampling_frequency).sorting
    recording = session.recording
    truth = sv.export.to_phy(sv.Session(gt, recording=recording), root / "truth")
    tested = sv.export.to_phy(sv.Session(perturbed_copy(gt, seed), recording=recording),
                              root / "tested")
    return Path(truth), Path(tested)
