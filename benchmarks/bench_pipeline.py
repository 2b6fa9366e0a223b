"""End to end: everything the curation views need, from raw data to quality metrics.

SpikeInterface: a SortingAnalyzer (in memory, its default sparsity) computing random_spikes,
waveforms, templates, noise_levels, spike_amplitudes, unit_locations, principal_components,
correlograms, template_similarity and quality_metrics (non-PC metrics, then with PC metrics).
spikeviz: ``Session.precompute`` of the same results into a fresh cache, then a second
Session on the same data that finds them all on disk. Same data, same process, n_jobs=1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _si_dataset
from _common import peak_rss_mb, row

STEPS_SV = ["random_spikes", "templates", "waveforms", "noise_levels", "spike_amplitudes",
            "unit_locations", "principal_components", "correlograms", "template_similarity",
            "quality_metrics"]


def spikeinterface_side(d, with_pc: bool) -> float:
    import spikeinterface.core as sc

    job = {"n_jobs": 1, "chunk_duration": "1s", "progress_bar": False}
    t0 = time.perf_counter()
    analyzer = sc.create_sorting_analyzer(d.si_sorting, d.si_recording, format="memory",
                                          **job)
    analyzer.compute("random_spikes", max_spikes_per_unit=500, seed=0)
    analyzer.compute("waveforms", ms_before=1.0, ms_after=2.0, **job)
    analyzer.compute(["templates", "noise_levels"])
    analyzer.compute("spike_amplitudes", **job)
    analyzer.compute(["unit_locations", "correlograms", "template_similarity"])
    if with_pc:
        analyzer.compute("principal_components", n_components=5, mode="by_channel_local",
                         **job)
    analyzer.compute("quality_metrics", skip_pc_metrics=not with_pc)
    return time.perf_counter() - t0


def spikeviz_side(d, cache_dir: Path, with_pc: bool) -> tuple[float, float, list]:
    import spikeviz as sv

    names = list(STEPS_SV)
    metrics = None
    if not with_pc:
        names.remove("principal_components")
        metrics = ["num_spikes", "firing_rate", "presence_ratio", "isi_violations_ratio",
                   "isi_violations_count", "snr", "amplitude_cutoff", "amplitude_median",
                   "firing_range"]
    def run(sorting) -> tuple[float, object]:
        t0 = time.perf_counter()
        # filter_band_hz=None: SpikeInterface is given the stored traces too
        session = sv.Session(sorting, d.recording, cache_dir=cache_dir, filter_band_hz=None)
        for name in names:
            params = {"metric_names": metrics} if name == "quality_metrics" else {}
            session.compute(name, **params)
        return time.perf_counter() - t0, session

    cold, _ = run(d.sorting)
    # a second Session on an equal but new Sorting: its spike hash is computed afresh
    warm, again = run(sv.Sorting.from_arrays(d.sorting.sample_index, d.sorting.unit_index,
                                             d.sorting.sampling_frequency,
                                             unit_ids=d.sorting.unit_ids))
    return cold, warm, again.analysis.computed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="60 s instead of 600 s")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    d = _si_dataset.load(duration_s=60.0) if args.quick else _si_dataset.load()
    print(f"{d.sorting.num_spikes:,} spikes, {d.sorting.num_units} units, "
          f"{d.recording.num_channels} channels, {d.recording.duration_s:.0f} s; n_jobs=1, "
          f"one run each (minutes of work)")
    import spikeviz.compute as svc
    t0 = time.perf_counter()
    svc.warm_up_kernels()
    print(f"  spikeviz kernels loaded from the numba disk cache in "
          f"{time.perf_counter() - t0:.2f} s (not counted below)")
    for with_pc in (False, True):
        label = "with PCA + PC metrics" if with_pc else "without PCA"
        with tempfile.TemporaryDirectory() as tmp:
            cold, warm, recomputed = spikeviz_side(d, Path(tmp), with_pc)
        si = spikeinterface_side(d, with_pc)
        print(f"everything the views need, {label}")
        row("SpikeInterface SortingAnalyzer", si)
        row("spikeviz Session, empty cache", cold, si)
        row("spikeviz second Session, same data (disk cache)", warm, si)
        print(f"  second session recomputed: {recomputed or 'nothing'}")
    print(f"  peak RSS {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
