"""Sorter comparison: spikeviz vs SpikeInterface on the same sortings, in one process.

- two sorters: ``sv.compare(a, b)`` vs ``compare_two_sorters`` (counts both ways, agreement,
  Hungarian and best matches);
- ground truth: ``sv.compare(gt, tested, ground_truth=True, exhaustive_gt=True)`` plus its
  performance table and category counts vs ``compare_sorter_to_ground_truth`` plus
  ``get_performance()`` and ``count_units_categories()``;
- three sorters: ``sv.compare_multiple`` plus the consensus sorting of units found by at least
  2 vs ``compare_multiple_sorters(n_jobs=1)`` (which builds every consensus train) plus
  ``get_agreement_sorting(2)``. Smaller data: SpikeInterface pairs consensus spikes with an
  O(n1 x n2) loop per unit.

Data: 300 ground-truth units with log-normal rates over 2400 s (~4 M spikes; ``--quick``:
100 units, 300 s) and perturbed copies (5 % of spikes dropped, jitter within 0.4 ms, splits,
merges, noise units; ~300 units each). Prints best-of-3 warm times, the ratio
SpikeInterface / spikeviz, the numba compile times (spikeviz cold, in a subprocess with an
empty cache; SpikeInterface's kernel is compiled on its first call in every process) and,
with ``--profile``, where SpikeInterface's ground-truth comparison spends its time.

    python benchmarks/bench_comparison.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, cold_compile_seconds, peak_rss_mb, row

FS = 30000.0

COLD_COMPILE = """
import time, numpy as np
from spikeviz.compute.comparison import match_counts, matched_spikes
t0 = time.perf_counter()
t = np.arange(0, 3000, 7, dtype=np.int64); u = (np.arange(t.size) % 3).astype(np.int32)
match_counts(t, u, 3, t, u, 3, 12, symmetric=True)
matched_spikes(t, t, 12)
print(time.perf_counter() - t0)
"""


def ground_truth(num_units, duration_s, seed=0):
    import spikeviz as sv

    rng = np.random.default_rng(seed)
    rates = np.clip(rng.lognormal(np.log(4.0), 0.8, num_units), 0.2, 40.0)
    sizes = rng.poisson(rates * duration_s)
    t = rng.integers(0, int(duration_s * FS), sizes.sum())
    u = np.repeat(np.arange(num_units), sizes)
    return sv.Sorting.from_arrays(t, u, FS, num_samples=int(duration_s * FS))


def perturbed(gt, seed, num_split=10, num_merge=10, num_noise=10):
    """Drop 5 %, jitter by up to 10 samples, split ``num_split`` units in two, merge
    ``num_merge`` pairs, add ``num_noise`` noise units."""
    import spikeviz as sv

    rng = np.random.default_rng(seed)
    keep = rng.random(gt.num_spikes) > 0.05
    t = np.clip(gt.sample_index[keep] + rng.integers(-10, 11, keep.sum()), 0,
                gt.num_samples - 1)
    u = gt.unit_index[keep].astype(np.int64)
    n = gt.num_units
    units = rng.permutation(n)
    split, merge = units[:num_split], units[num_split:num_split + 2 * num_merge]
    moved = np.isin(u, split) & (rng.random(u.size) < 0.4)
    u[moved] = n + np.searchsorted(np.sort(split), u[moved])
    for a, b in merge.reshape(-1, 2):
        u[u == b] = a
    noise_t = rng.integers(0, gt.num_samples, num_noise * int(3 * gt.duration_s))
    noise_u = n + num_split + rng.integers(0, num_noise, noise_t.size)
    t, u = np.concatenate([t, noise_t]), np.concatenate([u, noise_u])
    present, u = np.unique(u, return_inverse=True)
    return sv.Sorting.from_arrays(t, u.astype(np.int32), FS, unit_ids=present,
                                  num_samples=gt.num_samples)


def compare_both(label, ours, theirs, repeat=3):
    t_ours, _ = best_of(ours, repeat)
    t_si, _ = best_of(theirs, repeat)
    print(label)
    row("  SpikeInterface", t_si)
    row("  spikeviz", t_ours, peer=t_si)
    return t_si / t_ours


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 units, 300 s")
    parser.add_argument("--profile", action="store_true",
                        help="print where SpikeInterface's ground-truth comparison spends time")
    args = parser.parse_args()

    import spikeinterface.comparison as sc

    import spikeviz as sv
    from spikeviz.compute.comparison import match_counts

    num_units, duration_s = (100, 300.0) if args.quick else (300, 2400.0)
    gt = ground_truth(num_units, duration_s)
    a, b = perturbed(gt, 1), perturbed(gt, 2)
    si_gt, si_a, si_b = (sv.to_spikeinterface(s) for s in (gt, a, b))
    for s in (si_gt, si_a, si_b):
        s.to_spike_vector()  # SpikeInterface caches it; not counted
    print(f"ground truth {gt.num_units} units, {gt.num_spikes:,} spikes, {duration_s:g} s; "
          f"sorters {a.num_units} / {b.num_units} units, {a.num_spikes:,} / "
          f"{b.num_spikes:,} spikes")

    print(f"spikeviz cold numba compile (empty cache, subprocess): "
          f"{cold_compile_seconds(COLD_COMPILE):.2f} s")
    tiny = [s.select_units(s.unit_ids[:2]) for s in (si_a, si_b)]
    t0 = time.perf_counter()
    sc.compare_two_sorters(*tiny)
    print(f"SpikeInterface first call (compiles its kernel): {time.perf_counter() - t0:.2f} s")
    sv.compare(gt.select_units(gt.unit_ids[:2]), a.select_units(a.unit_ids[:2]))

    ratios = {}
    ratios["two sorters"] = compare_both(
        "two sorters", lambda: sv.compare(a, b),
        lambda: sc.compare_two_sorters(si_a, si_b))
    c = sv.compare(a, b)
    si = sc.compare_two_sorters(si_a, si_b)
    assert np.array_equal(c.match_counts.to_numpy(), si.match_event_count.to_numpy())

    def ours_gt():
        c = sv.compare(gt, a, ground_truth=True, exhaustive_gt=True)
        return c.performance, c.category_counts

    def si_gt_run():
        s = sc.compare_sorter_to_ground_truth(si_gt, si_a, exhaustive_gt=True)
        return s.get_performance(), s.count_units_categories()

    ratios["ground truth"] = compare_both("ground truth + performance + categories",
                                          ours_gt, si_gt_run)
    (perf, counts), (si_perf, si_counts) = ours_gt(), si_gt_run()
    assert counts == {k: int(v) for k, v in si_counts.items()}
    assert np.allclose(perf["accuracy"], si_perf["accuracy"].astype(float), rtol=0,
                       atol=1e-12)
    print(f"  categories: {counts}")

    c = sv.compare(gt, a, ground_truth=True)
    t_kernel, _ = best_of(lambda: match_counts(
        gt.sample_index, gt.unit_index, gt.num_units, a.sample_index, a.unit_index,
        a.num_units, c.delta_samples))
    row("  of which spikeviz's coincidence sweep (one direction)", t_kernel)

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        si_gt_run()
        prof.disable()
        stream = io.StringIO()
        pstats.Stats(prof, stream=stream).sort_stats("cumulative").print_stats(18)
        print("SpikeInterface ground-truth comparison, cumulative time:")
        print("\n".join(line for line in stream.getvalue().splitlines()
                        if "spikeinterface" in line or "numpy" in line or "ncalls" in line))

    # three sorters on a smaller recording
    m_units, m_duration = (40, 120.0) if args.quick else (100, 600.0)
    gt3 = ground_truth(m_units, m_duration, seed=5)
    sortings = [perturbed(gt3, k, num_split=3, num_merge=3, num_noise=3) for k in (6, 7, 8)]
    si_sortings = [sv.to_spikeinterface(s) for s in sortings]
    for s in si_sortings:
        s.to_spike_vector()
    print(f"three sorters: {[s.num_units for s in sortings]} units, "
          f"{sum(s.num_spikes for s in sortings):,} spikes, {m_duration:g} s")

    def ours_multi():
        m = sv.compare_multiple(sortings)
        return m.consensus_sorting(2)

    def si_multi():
        m = sc.compare_multiple_sorters(si_sortings, n_jobs=1)
        return m.get_agreement_sorting(2)

    ratios["three sorters"] = compare_both("three sorters + consensus sorting (>= 2)",
                                           ours_multi, si_multi, repeat=2)
    assert ours_multi().num_units == len(si_multi().unit_ids)
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    print("ratios SpikeInterface/spikeviz: " +
          ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
