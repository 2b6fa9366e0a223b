"""All-pairs correlograms (100 ms window, 1 ms bins): spikeviz vs SpikeInterface vs phylib.

Same spikes (the shared SpikeInterface ground-truth dataset, 100 units, ~900 k spikes over
600 s), one process:

- SpikeInterface: ``spikeinterface.postprocessing.compute_correlograms(sorting, window_ms,
  bin_ms, method="numba")`` (its default for 100 units: single-threaded numba kernel);
- phylib: ``phylib.stats.ccg.correlograms`` (numpy, times in seconds), as phy calls it;
- spikeviz: ``compute_correlograms`` with ``n_jobs=1`` and ``n_jobs=2``.

Prints the best of 3 warm calls, the ratio peer/spikeviz, the numba compile time (a cold
compile in a subprocess with an empty cache, and this process's first call, which loads the
kernels cached on disk), and checks that the counts are identical to SpikeInterface's. Also
times ISI histograms (vs SpikeInterface's default numpy implementation) and firing rates.

    python benchmarks/bench_correlograms.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _si_dataset
from _common import best_of, peak_rss_mb, row
from _common import cold_compile_seconds as _cold_compile_seconds

WINDOW_MS, BIN_MS = 100.0, 1.0

COLD_COMPILE = """
import time, numpy as np
t0 = time.perf_counter()
from spikeviz.compute.ccg import compute_correlograms, compute_isi_histograms
t1 = time.perf_counter()
t = np.arange(0, 3000, 7, dtype=np.int64); u = (np.arange(t.size) % 3).astype(np.int32)
compute_correlograms(t, u, 3, 30000.0, 100.0, 1.0)
compute_isi_histograms(t, u, 3, 30000.0)
print(time.perf_counter() - t1)
"""


def cold_compile_seconds() -> float:
    """Compile the kernels from scratch in a subprocess with an empty numba cache."""
    return _cold_compile_seconds(COLD_COMPILE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 s of data instead of 600 s")
    args = parser.parse_args()

    d = _si_dataset.load(duration_s=60.0) if args.quick else _si_dataset.load()
    s = d.sorting
    t, u, k, fs = s.sample_index, s.unit_index, s.num_units, s.sampling_frequency
    print(f"{s.num_spikes:,} spikes, {k} units, {t[-1] / fs:.0f} s; window {WINDOW_MS} ms, "
          f"bin {BIN_MS} ms; best of 3, one process")

    from spikeviz.compute.ccg import compute_correlograms, compute_isi_histograms
    from spikeviz.compute.rates import compute_firing_rates

    # -- compile / first call --
    t_cold = cold_compile_seconds()
    t0 = time.perf_counter()
    ours, edges = compute_correlograms(t, u, k, fs, WINDOW_MS, BIN_MS)
    t_first = time.perf_counter() - t0

    def sv_ccg(n_jobs):
        return lambda: compute_correlograms(t, u, k, fs, WINDOW_MS, BIN_MS, n_jobs=n_jobs)

    t_sv1, ours1 = best_of(sv_ccg(1))
    t_sv2, ours2 = best_of(sv_ccg(2))

    # -- SpikeInterface --
    from spikeinterface.postprocessing import compute_correlograms as si_compute_correlograms

    def si_ccg():
        return si_compute_correlograms(d.si_sorting, window_ms=WINDOW_MS, bin_ms=BIN_MS,
                                       method="numba")

    t0 = time.perf_counter()
    si_counts, si_edges = si_ccg()
    t_si_first = time.perf_counter() - t0
    t_si, (si_counts, si_edges) = best_of(si_ccg)

    # -- phylib --
    from phylib.stats.ccg import correlograms as phylib_correlograms
    times_s = t / fs

    def ph_ccg():
        return phylib_correlograms(times_s, u, cluster_ids=np.arange(k), sample_rate=fs,
                                   bin_size=BIN_MS * 1e-3, window_size=WINDOW_MS * 1e-3)

    t_ph, ph_counts = best_of(ph_ccg)

    checks = {"first call": np.array_equal(ours, si_counts),
              "n_jobs=1": np.array_equal(ours1[0], si_counts),
              "n_jobs=2": np.array_equal(ours2[0], si_counts),
              "bin edges": np.array_equal(edges, si_edges)}
    identical = all(checks.values())

    print("correlograms, all pairs")
    row("numba compile, cold (empty cache, subprocess)", t_cold)
    row("spikeviz first call here (loads cached kernels)", t_first)
    row("SpikeInterface first call (compiles, cache=False)", t_si_first)
    row("SpikeInterface numba", t_si)
    row("phylib correlograms", t_ph)
    row("spikeviz n_jobs=1  vs SpikeInterface", t_sv1, t_si)
    row("spikeviz n_jobs=1  vs phylib", t_sv1, t_ph)
    row("spikeviz n_jobs=2  vs SpikeInterface", t_sv2, t_si)
    row("spikeviz n_jobs=2  vs phylib", t_sv2, t_ph)
    print(f"  pairs counted: {int(si_counts.sum()):,} (phylib, half-window symmetric bins: "
          f"{int(ph_counts.sum()):,}); result {ours.nbytes / 2**20:.1f} MB int64")
    print(f"  counts identical to SpikeInterface: {'yes' if identical else 'NO'}"
          + ("" if identical else f" {checks}"))

    # -- ISI histograms and firing rates --
    from spikeinterface.postprocessing.isi import compute_isi_histograms_numpy
    t_isi, (isi, isi_edges) = best_of(lambda: compute_isi_histograms(t, u, k, fs, 50.0, 1.0))
    t_si_isi, (si_isi, si_isi_edges) = best_of(
        lambda: compute_isi_histograms_numpy(d.si_sorting, 50.0, 1.0))
    isi_identical = np.array_equal(isi, si_isi) and np.array_equal(isi_edges, si_isi_edges)
    num_samples = int(d.recording.num_samples) if hasattr(d.recording, "num_samples") \
        else int(t[-1]) + 1
    t_rates, _ = best_of(lambda: compute_firing_rates(t, u, k, fs, num_samples, 1.0))
    print("ISI histograms 50 ms / 1 ms, firing rates 1 s bins")
    row("SpikeInterface ISI histograms (numpy, its default)", t_si_isi)
    row("spikeviz ISI histograms", t_isi, t_si_isi)
    row("spikeviz firing rates", t_rates)
    print(f"  ISI counts identical to SpikeInterface: {'yes' if isi_identical else 'NO'}")
    print(f"  peak RSS {peak_rss_mb():.0f} MB")
    assert identical, "correlogram counts differ from SpikeInterface's"
    assert isi_identical, "ISI counts differ from SpikeInterface's"


if __name__ == "__main__":
    main()
