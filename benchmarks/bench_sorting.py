"""Constructing a Sorting from 10 M spikes / 500 units and reading every unit's spike train,
side by side with SpikeInterface's NumpySorting and phylib's spikes-per-cluster.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/bench_sorting.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of, peak_rss_mb, row, spike_dataset

import spikeviz as sv


def main(num_spikes=10_000_000, num_units=500):
    sample_index, unit_index, fs = spike_dataset(num_spikes, num_units)
    print(f"{num_spikes:,} spikes, {num_units} units, one process, best of 3")

    # numba compile (paid once, cached on disk afterwards)
    t_warm, _ = best_of(lambda: sv.Sorting.from_arrays(sample_index[:1000],
                                                       unit_index[:1000], fs).spike_train(0), 1)
    row("spikeviz first call on 1000 spikes (compile/load)", t_warm)

    def ours_build():
        return sv.Sorting.from_arrays(sample_index, unit_index, fs)

    def ours_all(s):
        return [s.spike_train(u) for u in s.unit_ids]

    t_build, s = best_of(ours_build)
    t_trains, trains = best_of(lambda: ours_all(ours_build()))
    t_again, _ = best_of(lambda: ours_all(s))

    import spikeinterface.core as si

    def si_all():
        sorting = si.NumpySorting.from_samples_and_labels([sample_index], [unit_index], fs)
        return [sorting.get_unit_spike_train(u) for u in sorting.unit_ids]

    t_si, si_trains = best_of(si_all)

    from phylib.io.array import _spikes_per_cluster

    def phylib_all():
        per = _spikes_per_cluster(unit_index)
        return [sample_index[per[u]] for u in range(num_units)]

    t_ph, ph_trains = best_of(phylib_all)

    for ref in (si_trains, ph_trains):
        assert all(np.array_equal(a, b) for a, b in zip(trains, ref, strict=True))

    row("spikeviz Sorting.from_arrays (validate + offsets)", t_build)
    row("spikeviz build + spike_train for every unit", t_trains, t_si)
    row("  (vs phylib _spikes_per_cluster + gather)", t_trains, t_ph)
    row("spikeviz spike_train for every unit, built", t_again)
    row("SpikeInterface NumpySorting + get_unit_spike_train", t_si)
    row("phylib _spikes_per_cluster + gather", t_ph)
    print(f"  ratio SpikeInterface/spikeviz = {t_si / t_trains:.1f}x, "
          f"phylib/spikeviz = {t_ph / t_trains:.1f}x   (trains identical)")
    print(f"  peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spikes", type=int, default=10_000_000)
    parser.add_argument("--units", type=int, default=500)
    args = parser.parse_args()
    main(args.spikes, args.units)
