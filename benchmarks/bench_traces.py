"""Traces frames: server-side time to produce a 384-channel frame vs SpikeInterface get_traces.

A seeded 384-channel, 30 kHz int16 binary recording (60 s, 1.4 GB; 15 s with ``--quick``) is
written once to ``benchmarks/.data/`` and read through a ``numpy.memmap``, as a raw ``.dat`` /
SpikeGLX ``.bin`` is. For 1 s and 10 s windows starting at 1.25 s (inside a 0.5-s chunk: the
unaligned case, three chunks for a 1-s window) this times, best of 3 warm calls (numba kernels
loaded, page cache warm on both sides):

- spikeviz: ``traces_data.make_frame`` — read the window, filter / re-reference if asked,
  exact min/max envelope of 1920 pixel columns, all 384 envelopes drawn into one 1920 x 1000
  count image (what the browser receives). Filtered / re-referenced frames are timed twice:
  "first look" with the chunk cache emptied before every call (everything computed), and
  "second look" with the chunks cached (what panning back and zooming out cost);
- SpikeInterface: ``read_binary(...).get_traces(start, end)`` (+ ``bandpass_filter`` /
  ``common_reference(reference="global", operator="median")`` for the processed cases) — the
  full-rate window only, no reduction or rendering; and the same followed by a numpy min/max
  reduction to the same columns (the comparable pipeline).

Prints wall ms per frame, the process CPU ms of the spikeviz call (all threads; steadier than
wall time on a shared machine) and the ratio peer/spikeviz of wall times (>1: spikeviz faster);
target: a frame <= 100 ms.

    python benchmarks/bench_traces.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, peak_rss_mb

FS, N_CHANNELS, WIDTH, HEIGHT = 30000.0, 384, 1920, 1000
DATA = Path(__file__).resolve().parent / ".data"


def make_binary(duration_s: float, seed: int = 0) -> Path:
    """Seeded int16 noise + LFP-like sine + per-channel offsets + spikes, written once."""
    n = int(duration_s * FS)
    path = DATA / f"traces_{N_CHANNELS}ch_{int(duration_s)}s_seed{seed}.bin"
    if path.exists() and path.stat().st_size == n * N_CHANNELS * 2:
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    out = np.memmap(tmp, dtype=np.int16, mode="w+", shape=(n, N_CHANNELS))
    offsets = rng.integers(-300, 300, N_CHANNELS).astype(np.float32)
    chunk = int(FS)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        t = np.arange(a, b) / FS
        x = rng.normal(0, 30, (b - a, N_CHANNELS)).astype(np.float32)
        x += (200 * np.sin(2 * np.pi * 8 * t)).astype(np.float32)[:, None] + offsets
        spikes = rng.integers(0, b - a, 200)
        x[spikes, rng.integers(0, N_CHANNELS, 200)] -= 400
        out[a:b] = np.round(x).astype(np.int16)
    out.flush()
    del out
    tmp.rename(path)
    return path


def envelope_numpy(traces: np.ndarray, n_columns: int):
    """min/max per column with numpy (the peer pipeline's reduction)."""
    n = traces.shape[0] // n_columns * n_columns
    blocks = traces[:n].reshape(n_columns, -1, traces.shape[1])
    return blocks.min(axis=1), blocks.max(axis=1)


def peer_row(name, seconds, ours):
    print(f"    {name:<50}{seconds * 1e3:10.1f} ms   peer/spikeviz = {seconds / ours:6.2f}x")


def best_of_cpu(fn, before=None, repeat=3):
    """Best wall time (s) of ``repeat`` calls, the process CPU time (s, all threads) of that
    call, and the last result; ``before()`` runs untimed before each call."""
    best, cpu, result = float("inf"), float("nan"), None
    for _ in range(repeat):
        if before is not None:
            before()
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        wall, used = time.perf_counter() - t0, time.process_time() - c0
        if wall < best:
            best, cpu = wall, used
    return best, cpu, result


def ours_row(name, wall, cpu):
    print(f"  {name:<52}{wall * 1e3:10.1f} ms   (cpu {cpu * 1e3:7.1f} ms)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 s of data instead of 60 s")
    args = parser.parse_args()
    duration = 15.0 if args.quick else 60.0

    t0 = time.perf_counter()
    path = make_binary(duration)
    print(f"{N_CHANNELS} channels x {duration:.0f} s int16 at {FS:g} Hz: {path.name} "
          f"({path.stat().st_size / 1e9:.2f} GB, ready in {time.perf_counter() - t0:.1f} s); "
          f"frame {WIDTH} x {HEIGHT} px; best of 3")

    import spikeviz as sv
    from spikeviz.compute.trace_chunks import warm_up
    from spikeviz.views.traces_data import TRACE_CACHE, channel_order, make_frame

    memmap = np.memmap(path, dtype=np.int16, mode="r").reshape(-1, N_CHANNELS)
    locations = np.column_stack([np.tile([16.0, 48.0, 0.0, 32.0], N_CHANNELS // 4),
                                 np.repeat(np.arange(N_CHANNELS // 2) * 20.0, 2)])
    rec = sv.Recording(memmap, FS, channel_locations_um=locations, gains_to_uv=0.195)
    channels = channel_order(rec)

    import spikeinterface.core as si
    import spikeinterface.preprocessing as spre
    si_raw = si.read_binary(str(path), sampling_frequency=FS, dtype="int16",
                            num_channels=N_CHANNELS)
    si_raw.set_channel_gains(0.195)
    si_raw.set_channel_offsets(0.0)
    si_bp = spre.bandpass_filter(si_raw, freq_min=300.0, freq_max=6000.0, dtype="float32")
    si_hp = spre.highpass_filter(si_raw, freq_min=300.0, dtype="float32")
    si_cmr = spre.common_reference(si_raw, reference="global", operator="median",
                                   dtype="float32")
    si_bp_cmr = spre.common_reference(si_bp, reference="global", operator="median")

    cases = [("raw", "none", False, si_raw), ("high-pass 300 Hz", "highpass", False, si_hp),
             ("band-pass 300-6000 Hz", "bandpass", False, si_bp),
             ("CMR", "none", True, si_cmr), ("band-pass + CMR", "bandpass", True, si_bp_cmr)]

    # warm the kernels (numba compile or cache load) and the page cache
    t0 = time.perf_counter()
    warm_up()
    make_frame(rec, 0, 3000, channels, 100, 100, "bandpass", cmr=True)
    make_frame(rec, 0, 3000, channels, 100, 100)
    print(f"  first call (numba kernels compiled or loaded): {time.perf_counter() - t0:.2f} s")
    np.asarray(memmap[: int(min(duration, 12.0) * FS)]).sum(dtype=np.int64)

    for window_s in (1.0, 10.0):
        start = int(1.25 * FS)
        end = start + int(window_s * FS)
        print(f"\n{window_s:g} s window ({end - start:,} samples x {N_CHANNELS} channels)")
        for name, filt, cmr, peer in cases:
            def ours(filt=filt, cmr=cmr, start=start, end=end):
                return make_frame(rec, start, end, channels, WIDTH, HEIGHT, filt, cmr=cmr)

            def theirs(peer=peer, start=start, end=end):
                return peer.get_traces(start_frame=start, end_frame=end)

            def theirs_reduced(theirs=theirs):
                return envelope_numpy(np.asarray(theirs()), WIDTH)

            processed = filt != "none" or cmr
            t_ours, cpu, frame = best_of_cpu(ours, TRACE_CACHE.clear if processed else None)
            assert frame.image is not None and frame.image.shape == (HEIGHT, WIDTH)
            t_peer, _ = best_of(theirs)
            t_peer_red, _ = best_of(theirs_reduced)
            label = "first look" if processed else "frame"
            ours_row(f"{name}: spikeviz {label} (envelope + image)", t_ours, cpu)
            peer_row("SpikeInterface get_traces", t_peer, t_ours)
            peer_row("SpikeInterface get_traces + numpy min/max", t_peer_red, t_ours)
            if processed:
                ours()  # the chunks of this window are cached now
                t_again, cpu, _ = best_of_cpu(ours)
                ours_row(f"{name}: spikeviz second look (cached chunks)", t_again, cpu)
                peer_row("SpikeInterface get_traces + numpy min/max", t_peer_red, t_again)
        TRACE_CACHE.clear()
    print(f"\npeak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
