"""Helpers shared by the benchmarks: timing, memory and a seeded spike dataset."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(fn, repeat=3):
    """Best wall time (s) of ``repeat`` calls and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spike_dataset(num_spikes=10_000_000, num_units=500, duration_s=3600.0, fs=30000.0,
                  seed=0):
    """Time-sorted int64 sample indices and int32 unit indices with lognormal rates."""
    rng = np.random.default_rng(seed)
    rates = rng.lognormal(0.0, 1.0, num_units)
    unit_index = rng.choice(num_units, num_spikes, p=rates / rates.sum()).astype(np.int32)
    sample_index = np.sort(rng.integers(0, int(duration_s * fs), num_spikes)).astype(np.int64)
    return sample_index, unit_index, fs


def row(name, seconds, peer=None):
    ratio = "" if peer is None else f"   peer/spikeviz = {peer / seconds:6.1f}x"
    print(f"  {name:<52}{seconds * 1e3:10.1f} ms{ratio}")


def cold_compile_seconds(code: str) -> float:
    """Run ``code`` in a fresh interpreter with an empty numba cache; it must print the
    seconds its first calls took as its last line (the kernels' cold compile time)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.strip().splitlines()[-1])
