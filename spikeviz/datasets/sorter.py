"""The simulated sorter: clusters derived from the true units with the mistakes curation is
for (split, merge, missed and false spikes, an artefact cluster), under shuffled ids."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..model import Sorting


@dataclass(eq=False)
class SorterOutput:
    """The simulated sorter's result: what the Phy folder holds.

    ``sample_index`` int64 samples (sorted), ``cluster_ids`` int64 per spike, ``amplitudes``
    per-spike template scaling (~1), ``templates`` (clusters, samples, channels) float32 µV with
    row = cluster id, ``cluster_groups`` {cluster_id: 'good'|'mua'} as a sorter labels them,
    ``clusters`` {cluster_id: facts} (kind, ground_truth_unit_ids, group, expected_label,
    num_spikes, num_missed, num_false).
    """

    sample_index: np.ndarray
    cluster_ids: np.ndarray
    amplitudes: np.ndarray
    templates: np.ndarray
    cluster_groups: dict
    clusters: dict
    sampling_frequency: float
    num_samples: int

    @cached_property
    def sorting(self) -> Sorting:
        """The sorter output as a Sorting (unit ids = cluster ids; 'label' = group)."""
        ids = np.array(sorted(self.clusters), dtype=np.int64)
        table = pd.DataFrame({"label": [self.cluster_groups[int(c)] for c in ids]},
                             index=pd.Index(ids, name="unit_id"))
        return Sorting.from_unit_ids(self.sample_index, self.cluster_ids,
                                     self.sampling_frequency, unit_ids=ids, unit_table=table,
                                     spike_properties={"amplitudes": self.amplitudes},
                                     num_samples=self.num_samples, source="spikeviz.datasets")


def _sorter_output(rng, units, templates, trains, scales, art_times, art_scales, artefact,
                   first, last, fs, num_samples) -> SorterOutput:
    """Derive the sorter's clusters from the truth: split, merge, misses, false spikes."""
    clusters = []  # (facts, times, amplitudes, template µV)

    def add(kind, unit_ids, times, amps, true_sum, group, expected, missed=0, false=0):
        if times.size == 0:
            return
        order = np.argsort(times, kind="stable")
        clusters.append(({"kind": kind, "ground_truth_unit_ids": [int(u) for u in unit_ids],
                          "group": group, "expected_label": expected,
                          "num_spikes": int(times.size), "num_missed": int(missed),
                          "num_false": int(false)},
                         times[order], amps[order], true_sum))

    def perturbed(u, miss, false_fraction, group, kind):
        train, scale = trains[u], scales[u]
        keep = rng.random(train.size) >= miss
        num_false = int(rng.binomial(train.size, false_fraction)) if last > first else 0
        false_times = np.sort(rng.integers(first, last, num_false)) if num_false else \
            np.zeros(0, np.int64)
        false_amps = rng.uniform(0.3, 0.8, num_false)
        true_sum = float(scale[keep].sum()) * templates[u] / max(1, int(keep.sum()) + num_false)
        add(kind, [u], np.concatenate([train[keep], false_times]),
            np.concatenate([scale[keep], false_amps]), true_sum, group, group,
            missed=int((~keep).sum()), false=num_false)

    merge_pair = units["merge_pair"]
    for u in range(templates.shape[0]):
        kind = units["kind"][u]
        if kind in ("good", "drifting"):
            perturbed(u, rng.uniform(0.0, 0.03), rng.uniform(0.0, 0.01), "good", kind)
        elif kind == "low_amplitude":
            perturbed(u, 0.3, 0.15, "mua", kind)
        elif kind == "split":
            scale = scales[u]
            high = scale >= np.median(scale) if scale.size else np.zeros(0, bool)
            for part in (high, ~high):
                n = max(1, int(part.sum()))
                add("split", [u], trains[u][part], scale[part],
                    float(scale[part].sum()) / n * templates[u], "good", "good")
        elif kind == "merged" and u == merge_pair[0]:
            a, b = merge_pair
            times = np.concatenate([trains[a], trains[b]])
            amps = np.concatenate([scales[a], scales[b]])
            n = max(1, times.size)
            mean = (float(scales[a].sum()) * templates[a]
                    + float(scales[b].sum()) * templates[b]) / n
            add("merged", [a, b], times, amps, mean, "good", "good")
    if art_times.size:
        add("artefact", [], art_times, art_scales, float(art_scales.mean()) * artefact, "mua",
            "noise")

    ids = rng.permutation(len(clusters)).astype(np.int64)
    num_template_samples, num_channels = artefact.shape
    sorted_templates = np.zeros((len(clusters), num_template_samples, num_channels),
                                dtype=np.float32)
    facts, times, cluster_of, amps = {}, [], [], []
    for cid, (info, t, a, template) in zip(ids.tolist(), clusters, strict=True):
        facts[cid] = info
        sorted_templates[cid] = template
        times.append(t)
        cluster_of.append(np.full(t.size, cid, dtype=np.int64))
        amps.append(np.asarray(a, dtype=np.float64))
    if clusters:
        times, cluster_of, amps = (np.concatenate(x) for x in (times, cluster_of, amps))
    else:
        times, cluster_of, amps = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    order = np.lexsort((cluster_of, times))
    return SorterOutput(sample_index=times[order], cluster_ids=cluster_of[order],
                        amplitudes=amps[order], templates=sorted_templates,
                        cluster_groups={c: facts[c]["group"] for c in sorted(facts)},
                        clusters={c: facts[c] for c in sorted(facts)},
                        sampling_frequency=fs, num_samples=num_samples)
