"""Template similarity: spikeviz vs SpikeInterface, same templates, one process.

1. The shared SpikeInterface ground-truth dataset (64 ch, 100 units): SpikeInterface's
   SortingAnalyzer computes templates (500 random spikes per unit, 1 ms / 2 ms, sparse by its
   default radius); then SI's ``template_similarity`` extension vs spikeviz's
   ``compute_template_similarity`` on SI's templates and sparsity (cosine, union), without
   and with a lag search (checked equal where SI searches the same lags).
2. Neuropixels scale: 300 and 1000 random templates of 384 channels x 90 samples, dense and
   40-channel sparse, cosine, max lag 0 and 5 samples; SpikeInterface's
   ``compute_similarity_with_templates_array`` (the function behind the extension, numba
   ``prange`` on all cores) side by side where it takes less than about a minute.

SI's symmetric lag search visits lags -n..0 only (n + 1 lags); spikeviz visits -n..n.
Numba compile time: a cold compile in a subprocess with an empty cache, and this process's
first call (loading the kernels cached on disk).

    python benchmarks/bench_similarity.py [--quick] [--full]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _si_dataset
from _common import best_of, peak_rss_mb, row
from _common import cold_compile_seconds as _cold_compile_seconds

COLD_COMPILE = """
import time, numpy as np
from spikeviz.compute.similarity import compute_template_similarity
t0 = time.perf_counter()
x = np.random.default_rng(0).normal(size=(4, 20, 6))
for m in ("cosine", "l1", "l2"):
    compute_template_similarity(x, np.array([[0, 1, -1]] * 4), method=m, max_lag_samples=1)
print(time.perf_counter() - t0)
"""


def cold_compile_seconds() -> float:
    """Compile the kernels from scratch in a subprocess with an empty numba cache."""
    return _cold_compile_seconds(COLD_COMPILE)


def channel_rows(mask):
    rows = np.full((mask.shape[0], int(mask.sum(axis=1).max())), -1, dtype=np.int64)
    for u, m in enumerate(mask):
        ch = np.flatnonzero(m)
        rows[u, :ch.size] = ch
    return rows


def si_recording(d):
    """The dataset's SI recording (rebuilt when ``load`` returns None: in SI 0.105
    ``set_probe`` works in place and returns None)."""
    if d.si_recording is not None:
        return d.si_recording
    import json

    import spikeinterface.core as si
    from probeinterface import Probe
    meta = json.loads((d.path / "meta.json").read_text())
    nch = meta["num_channels"]
    rec = si.read_binary(d.path / "traces.int16", sampling_frequency=meta["sampling_frequency"],
                         dtype="int16", num_channels=nch, gain_to_uV=meta["gain_to_uv"],
                         offset_to_uV=0.0)
    probe = Probe(ndim=2, si_units="um")
    probe.set_contacts(positions=np.load(d.path / "locations_um.npy"), shapes="circle",
                       shape_params={"radius": 6})
    probe.set_device_channel_indices(np.arange(nch))
    rec.set_probe(probe)
    return rec


def on_dataset(quick):
    import spikeinterface.core as si
    from spikeinterface.core.template_tools import get_dense_templates_array

    d = _si_dataset.load(duration_s=60.0) if quick else _si_dataset.load()
    t0 = time.perf_counter()
    an = si.create_sorting_analyzer(d.si_sorting, si_recording(d), format="memory", sparse=True)
    an.compute("random_spikes", max_spikes_per_unit=500, seed=0)
    an.compute("templates", ms_before=1.0, ms_after=2.0)
    templates = get_dense_templates_array(an, return_in_uV=True)
    mask = an.sparsity.mask
    rows = channel_rows(mask)
    print(f"\n1. SI dataset: {templates.shape[0]} units x {templates.shape[1]} samples x "
          f"{templates.shape[2]} channels, {mask.sum(axis=1).mean():.1f} channels per unit "
          f"(SI templates in {time.perf_counter() - t0:.1f} s)")

    from spikeviz.compute.similarity import compute_template_similarity
    fs = an.sampling_frequency
    for max_lag_ms in (0.0, 0.2):
        n = int(max_lag_ms * fs / 1000)

        def si_ext(lag=max_lag_ms):
            return an.compute("template_similarity", method="cosine", support="union",
                              max_lag_ms=lag).get_data()

        si_ext()  # numba compile of SI's kernel
        t_si, ref = best_of(si_ext)
        t_sv, ours = best_of(lambda n=n: compute_template_similarity(
            templates, rows, max_lag_samples=n))
        diff = np.abs(ours - ref)
        same = diff.max() if n == 0 else np.median(diff)
        print(f"  cosine/union, max lag {n} samples: |spikeviz - SI| "
              f"{'max' if n == 0 else 'median'} {same:.1e}"
              + ("" if n == 0 else f"; spikeviz >= SI - 2e-6: {bool(np.all(ours >= ref - 2e-6))}"))
        row(f"SI extension vs spikeviz, lag {n}", t_sv, t_si)


def at_scale(sizes, si_limit_s, full):
    from spikeinterface.postprocessing.template_similarity import (
        compute_similarity_with_templates_array,
    )

    from spikeviz.compute.similarity import compute_template_similarity
    rng = np.random.default_rng(0)
    num_samples, num_channels, k = 90, 384, 40
    print(f"\n2. random templates, {num_channels} channels x {num_samples} samples, cosine/union")
    for units in sizes:
        dense = rng.normal(size=(units, num_samples, num_channels)).astype(np.float32)
        start = rng.integers(0, num_channels - k, units)
        rows = start[:, None] + np.arange(k)[None, :]
        mask = np.zeros((units, num_channels), dtype=bool)
        mask[np.arange(units)[:, None], rows] = True
        sparse = dense * mask[:, None, :]
        for label, tm, r, m in (("dense", dense, None, None), (f"{k}-ch sparse", sparse, rows,
                                                                 mask)):
            for n in (0, 5):
                repeat = 1 if units >= 1000 else 2
                t_sv, ours = best_of(lambda tm=tm, r=r, n=n: compute_template_similarity(
                    tm, r, max_lag_samples=n), repeat)
                slow = label == "dense" and (units * units * (n + 1) > 300 * 300 * 6 or
                                             units >= 1000)
                t_si = None
                if full or not slow:
                    t_si, (ref, _) = best_of(lambda tm=tm, m=m, n=n:
                                             compute_similarity_with_templates_array(
                                                 tm, tm, "cosine", num_shifts=n, sparsity=m,
                                                 other_sparsity=m), 1)
                    if n == 0:
                        assert np.abs(ours - ref).max() < 2e-6
                name = f"{units} units {label}, lag {n}"
                row(name + ("" if t_si is not None else "  (SI skipped: --full)"), t_sv, t_si)
                if t_si is not None and t_si > si_limit_s:
                    full = False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="60 s of data; 300 units only at scale")
    parser.add_argument("--full", action="store_true", help="also time SI on large dense sets")
    args = parser.parse_args()

    from spikeviz.compute.similarity import compute_template_similarity
    t_cold = cold_compile_seconds()
    x = np.random.default_rng(1).normal(size=(4, 20, 6))
    t0 = time.perf_counter()
    for m in ("cosine", "l1", "l2"):
        compute_template_similarity(x, np.array([[0, 1, -1]] * 4), method=m, max_lag_samples=1)
    t_first = time.perf_counter() - t0
    print("numba compile (paid once, cached on disk):")
    row("cold compile, empty cache (subprocess)", t_cold)
    row("first call in this process (cache load)", t_first)

    on_dataset(args.quick)
    at_scale([300] if args.quick else [300, 1000], 60.0, args.full)
    print(f"\npeak RSS {peak_rss_mb():.0f} MB; machine: {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
