"""Waveforms + templates and spike amplitudes: spikeviz vs SpikeInterface's SortingAnalyzer.

Same recording (int16 on disk, 0.195 µV per count), same spikes, same parameters, one process:

- waveforms + templates, 500 spikes per unit, 1 ms before / 2 ms after, dense.
  SpikeInterface: ``create_sorting_analyzer(format="memory", sparse=False)`` +
  ``compute("random_spikes", max_spikes_per_unit=500)`` + ``compute("waveforms")`` +
  ``compute("templates")`` (its default operators: average and std).
  spikeviz: ``select_random_spikes`` + ``extract_waveforms`` + ``compute_templates`` (average
  and std).
- spike amplitudes of every spike, templates precomputed on both sides: only
  ``compute("spike_amplitudes")`` vs ``compute_spike_amplitudes`` is timed.

Both sides read 1 s chunks; n_jobs=1 against n_jobs=1, then n_jobs=2 against n_jobs=2
(SpikeInterface's default process pool). Prints timings, ratios peer/spikeviz, numba compile
(first call) time and the accuracy of spikeviz against SpikeInterface.

    python benchmarks/bench_waveforms.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _si_dataset
from _common import best_of, peak_rss_mb, row

MS_BEFORE, MS_AFTER, MAX_SPIKES, SEED = 1.0, 2.0, 500, 0


def si_recording(d):
    """The SI recording of the dataset (rebuilt when the loader's ``set_probe`` returned None)."""
    if d.si_recording is not None:
        return d.si_recording
    import json

    import spikeinterface.core as sc
    from probeinterface import Probe
    meta = json.loads((d.path / "meta.json").read_text())
    rec = sc.read_binary(d.path / "traces.int16", sampling_frequency=meta["sampling_frequency"],
                         dtype="int16", num_channels=meta["num_channels"],
                         gain_to_uV=meta["gain_to_uv"], offset_to_uV=0.0)
    probe = Probe(ndim=2, si_units="um")
    probe.set_contacts(positions=d.recording.channel_locations_um, shapes="circle",
                       shape_params={"radius": 6})
    probe.set_device_channel_indices(np.arange(meta["num_channels"]))
    rec.set_probe(probe)
    return rec


def first_and_warm_call(num_channels, nbefore, nafter):
    """Time of the first call of every kernel in this process, and of a warm call."""
    from spikeviz.compute.waveforms import (
        accumulate_templates,
        compute_spike_amplitudes,
        compute_templates,
        extract_waveforms,
    )
    tiny = np.zeros((200, num_channels), dtype=np.int16)
    samples, units = np.array([50, 120]), np.array([0, 1])
    gains, offsets = np.ones(num_channels), np.zeros(num_channels)

    def call():
        wf = extract_waveforms(lambda a, b: tiny[a:b], 200, samples, nbefore, nafter, gains,
                               offsets)
        compute_templates(wf, units, 2)
        accumulate_templates(lambda a, b: tiny[a:b], 200, samples, units, 2, nbefore, nafter,
                             gains, offsets)
        compute_spike_amplitudes(lambda a, b: tiny[a:b], 200, samples, units, [0, 1], [0, 0],
                                 gains, offsets)
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    warm, _ = best_of(call, 3)
    return first, warm


def fresh_compile_s(num_channels):
    """First-call time in a new process whose numba cache directory is empty."""
    import os
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, __file__, "--first-call", str(num_channels)],
                             env={**os.environ, "NUMBA_CACHE_DIR": cache}, check=True,
                             capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 s of the dataset")
    parser.add_argument("--first-call", type=int, metavar="CHANNELS",
                        help=argparse.SUPPRESS)  # internal: time a first call and exit
    args = parser.parse_args()
    if args.first_call:
        first, _ = first_and_warm_call(args.first_call, 30, 60)
        print(f"first call {first}")
        return

    import spikeinterface.core as sc
    import spikeinterface.postprocessing  # noqa: F401  (registers spike_amplitudes)

    from spikeviz.compute.waveforms import (
        accumulate_templates,
        compute_spike_amplitudes,
        compute_templates,
        extract_waveforms,
        peak_channels,
        peak_shifts,
        select_random_spikes,
    )

    d = _si_dataset.load(duration_s=60.0) if args.quick else _si_dataset.load()
    rec, sorting = si_recording(d), d.si_sorting
    fs = rec.sampling_frequency
    nbefore, nafter = round(MS_BEFORE * fs / 1000), round(MS_AFTER * fs / 1000)
    raw = np.memmap(d.path / "traces.int16", dtype=np.int16, mode="r").reshape(
        -1, rec.get_num_channels())
    num_samples = raw.shape[0]

    def read_raw(start, end):
        return raw[start:end]

    gains = rec.get_channel_gains().astype(np.float64)
    offsets = rec.get_channel_offsets().astype(np.float64)
    vector = sorting.to_spike_vector()
    samples = vector["sample_index"].astype(np.int64)
    units = vector["unit_index"].astype(np.int64)
    num_units = len(sorting.unit_ids)
    print(f"dataset: {rec.get_num_channels()} channels x {num_samples / fs:.0f} s at "
          f"{fs:g} Hz, {num_units} units, {samples.size:,} spikes; {MAX_SPIKES} spikes/unit, "
          f"{MS_BEFORE} ms / {MS_AFTER} ms ({nbefore} + {nafter} samples), dense")

    # -- numba: first call here (kernels loaded from the on-disk cache, or compiled), and a
    # fresh compile measured in a subprocess with an empty cache directory
    first, warm = first_and_warm_call(rec.get_num_channels(), nbefore, nafter)
    print(f"\nnumba: first call {first * 1e3:.0f} ms, warm {warm * 1e3:.1f} ms in this process; "
          f"fresh compile (empty cache) {fresh_compile_s(rec.get_num_channels()):.1f} s")

    # -- waveforms + templates
    def ours_waveforms_templates(n_jobs):
        sel = select_random_spikes(samples, units, num_units, MAX_SPIKES, seed=SEED)
        wfs = extract_waveforms(read_raw, num_samples, samples[sel], nbefore, nafter, gains,
                                offsets, chunk_samples=int(fs), n_jobs=n_jobs)
        return sel, wfs, compute_templates(wfs, units[sel], num_units,
                                           operators=("average", "std"))

    def si_waveforms_templates(job_kwargs):
        analyzer = sc.create_sorting_analyzer(sorting, rec, format="memory", sparse=False,
                                              job_kwargs=job_kwargs)
        analyzer.compute("random_spikes", max_spikes_per_unit=MAX_SPIKES, seed=SEED)
        analyzer.compute("waveforms", ms_before=MS_BEFORE, ms_after=MS_AFTER, **job_kwargs)
        analyzer.compute("templates", **job_kwargs)
        return analyzer

    print("\nwaveforms + templates (average, std)")
    timings = {}
    for n_jobs in (1, 2):
        job_kwargs = dict(n_jobs=n_jobs, chunk_duration="1s", progress_bar=False)
        print(f"  SpikeInterface job kwargs {job_kwargs} (pool_engine "
              f"{sc.get_global_job_kwargs()['pool_engine']}); spikeviz n_jobs={n_jobs}, "
              f"chunk_samples={int(fs)}")
        gc.collect()
        t_si, analyzer = best_of(lambda kw=job_kwargs: si_waveforms_templates(kw), 2)
        row(f"SpikeInterface SortingAnalyzer, n_jobs={n_jobs}", t_si)
        t_sv, result = best_of(lambda n=n_jobs: ours_waveforms_templates(n), 3)
        row(f"spikeviz, n_jobs={n_jobs}", t_sv, t_si)
        timings[n_jobs] = (t_si, t_sv)
        if n_jobs == 1:
            sel, wfs, ours = result
            si_sel = analyzer.get_extension("random_spikes").get_data()
            si_wfs = analyzer.get_extension("waveforms").get_data()
            ext = analyzer.get_extension("templates")
            peak = np.abs(ours["average"]).max()
            accuracy = dict(
                same_spikes=bool(np.array_equal(sel, si_sel)),
                waveforms=float(np.abs(wfs - si_wfs).max() / np.abs(si_wfs).max()),
                average=float(np.abs(ours["average"] - ext.get_templates(operator="average")).max()
                              / peak),
                std=float(np.abs(ours["std"] - ext.get_templates(operator="std")).max() / peak))
            templates = ours["average"]
        del analyzer, result
        gc.collect()
    wfs = si_wfs = None
    gc.collect()

    # extras: the median, and streamed templates without snippets (what 384 ch x 1000 units use)
    def median_templates():
        snippets = extract_waveforms(read_raw, num_samples, samples[sel], nbefore, nafter,
                                     gains, offsets, chunk_samples=int(fs))
        t0 = time.perf_counter()
        compute_templates(snippets, units[sel], num_units, operators=("median",))
        return time.perf_counter() - t0
    row("spikeviz median template (from snippets in memory)", median_templates())
    gc.collect()
    for n_jobs in (1, 2):
        t_acc, _ = best_of(lambda n=n_jobs: accumulate_templates(
            read_raw, num_samples, samples[sel], units[sel], num_units, nbefore, nafter, gains,
            offsets, chunk_samples=int(fs), n_jobs=n), 3)
        row(f"spikeviz accumulate_templates (streamed), n_jobs={n_jobs}", t_acc)

    # -- spike amplitudes, templates precomputed on both sides, same main channels
    main = peak_channels(templates, nbefore, "neg")
    shifts = peak_shifts(templates, nbefore, "neg")
    print("\nspike amplitudes, all spikes (templates precomputed; peak_sign='neg')")
    for n_jobs in (1, 2):
        job_kwargs = dict(n_jobs=n_jobs, chunk_duration="1s", progress_bar=False)
        analyzer = sc.create_sorting_analyzer(sorting, rec, format="memory", sparse=False,
                                              main_channel_indices=main, peak_sign="neg")
        analyzer.compute("random_spikes", max_spikes_per_unit=MAX_SPIKES, seed=SEED)
        analyzer.compute("templates", ms_before=MS_BEFORE, ms_after=MS_AFTER, **job_kwargs)

        def si_amplitudes(analyzer=analyzer, job_kwargs=job_kwargs):
            analyzer.compute("spike_amplitudes", **job_kwargs)
            return analyzer.get_extension("spike_amplitudes").get_data()
        t_si, si_amps = best_of(si_amplitudes, 3)
        row(f"SpikeInterface spike_amplitudes, n_jobs={n_jobs}", t_si)
        t_sv, amps = best_of(lambda n=n_jobs: compute_spike_amplitudes(
            read_raw, num_samples, samples, units, main, shifts, gains, offsets,
            chunk_samples=int(fs), n_jobs=n), 3)
        row(f"spikeviz compute_spike_amplitudes, n_jobs={n_jobs}", t_sv, t_si)
        timings[f"amp{n_jobs}"] = (t_si, t_sv)
        accuracy["amplitudes"] = float(np.abs(amps - si_amps).max() / np.abs(si_amps).max())

    print("\naccuracy vs SpikeInterface (same spikes):")
    print(f"  random spike selection identical: {accuracy['same_spikes']}")
    print(f"  waveforms  max |diff| / max |SI| = {accuracy['waveforms']:.2e}")
    print(f"  average    max |diff| / peak     = {accuracy['average']:.2e}")
    print(f"  std        max |diff| / peak     = {accuracy['std']:.2e}")
    print(f"  amplitudes max |diff| / max |SI| = {accuracy['amplitudes']:.2e}")
    print("\nsummary (peer / spikeviz):")
    for n_jobs in (1, 2):
        t_si, t_sv = timings[n_jobs]
        print(f"  waveforms + templates, n_jobs={n_jobs}: {t_si / t_sv:5.1f}x (target >= 5x)")
    for n_jobs in (1, 2):
        t_si, t_sv = timings[f"amp{n_jobs}"]
        print(f"  spike amplitudes,      n_jobs={n_jobs}: {t_si / t_sv:5.1f}x (target >= 3x)")
    print(f"  peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
