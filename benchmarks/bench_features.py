"""Features view: a unit's first click (PCA projections of all its spikes + background units),
on demand and precomputed, side by side with SpikeInterface's ``principal_components``.

Dataset: ``_si_dataset.py`` (64 ch x 600 s x 100 units, ~830 k spikes; ``--quick``: 60 s),
after ``session.precompute()`` (read from its disk cache after the first run).

1. **Click** — ``CuratedAnalysis.spike_features`` exactly as the Features view calls it (the
   unit, its 3 nearest units as background, at most 2,000 spikes each, 3 components), on a
   fresh CuratedAnalysis (a first click: nothing memoised), units from the largest to the
   smallest; median and max of:
   (a) the previous read (``curated_units.snippets``: scipy ``sosfiltfilt`` per window),
   (b) the fused read (the same filter kernel per window, snippets cut from it directly;
       the same numbers bit for bit),
   (c) precomputed: ``feature_projections`` read from the disk cache by a new Session.
   The three results are compared: same spikes and channels, features to float32 precision
   (the snippets are bit for bit the same; the PCA's BLAS may round an ulp differently).
2. **Ahead of time** — ``feature_projections`` for every unit (computed once, then on disk),
   and its size.
3. **Peer** — SpikeInterface 0.105 on the same data (``bandpass_filter`` 300-6000 Hz, a
   sparse in-memory ``SortingAnalyzer``: random_spikes (500/unit), waveforms, templates,
   ``principal_components`` (3 components, by_channel_local)): the extension's compute (fit
   + projections of the sampled spikes), a unit's lookup (``get_projections_one_unit``: what
   spikeinterface-gui shows, sampled spikes only) and ``run_for_all_spikes`` (every spike:
   what a lasso over all spikes needs; ``--quick`` or ``--peer-all-spikes`` only: minutes).

    python benchmarks/bench_features.py [--quick] [--units N] [--peer-all-spikes] [--no-peer]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _si_dataset  # noqa: E402
from _common import peak_rss_mb, row  # noqa: E402


def view_click(session, unit_id, reader=None, stored=True):
    """One first click of the Features view on ``unit_id``; (seconds, result)."""
    from spikeviz.model import curated_features as cf
    from spikeviz.model import steps_features as sf
    from spikeviz.model.curated import CuratedAnalysis
    from spikeviz.model.curation import Curation

    a = CuratedAnalysis(session, Curation(session.sorting))
    ids = session.sorting.unit_ids.tolist()
    xy = a.unit_locations()[["x_um", "y_um"]].to_numpy(dtype=float)
    background = sf.nearest_units(ids, xy, unit_id, sf.DEFAULTS["background_units"])
    cap = sf.background_cap(len(background), sf.DEFAULTS["max_background_spikes"])
    if not stored:
        a._feature_store = lambda: None
    original = cf.read_snippets
    if reader is not None:
        cf.read_snippets = reader
    try:
        t0 = time.perf_counter()
        result = a.spike_features([unit_id], sf.DEFAULTS["n_components"],
                                  background_unit_ids=background,
                                  max_background_spikes_per_unit=cap, seed=0)
        return time.perf_counter() - t0, result
    finally:
        cf.read_snippets = original


def pick_units(sorting, n):
    counts = sorting.spike_counts().sort_values(ascending=False)
    picks = np.unique(np.linspace(0, len(counts) - 1, n).round().astype(int))
    return [counts.index[i] for i in picks], counts


def bench_clicks(ds, units, counts):
    import spikeviz as sv
    from spikeviz.model import curated_units as cu
    from spikeviz.model import steps_features as sf

    session = ds.session
    old = lambda ctx, t, ch: cu.snippets(session, t, ch)  # noqa: E731
    view_click(session, units[-1], stored=False)  # numba kernels loaded once
    print("\n1. First click of a unit (Features view defaults), per unit: previous read / "
          "fused read / precomputed")
    times = {"previous": [], "fused": [], "stored": []}
    same, worst = True, 0.0
    for u in units:
        t_old, r_old = view_click(session, u, reader=old, stored=False)
        t_new, r_new = view_click(session, u, stored=False)
        later = sv.Session(ds.sorting, ds.recording, source=session.source, format="benchmark")
        assert sf.load_store(later) is not None, "feature_projections not on disk"
        t_st, r_st = view_click(later, u)
        same &= all(np.array_equal(r[k], r_old[k]) for r in (r_new, r_st) for k in (0, 2))
        scale = float(np.abs(r_old[1]).max())
        worst = max(worst, *(float(np.abs(r[1] - r_old[1]).max()) / scale
                             for r in (r_new, r_st)))
        for k, t in zip(times, (t_old, t_new, t_st), strict=True):
            times[k].append(t)
        print(f"    unit {u} ({int(counts.loc[u]):,} spikes): {t_old * 1e3:8.0f} / "
              f"{t_new * 1e3:8.0f} / {t_st * 1e3:6.1f} ms", flush=True)
    print(f"  same spikes and channels: {same}; features: largest difference "
          f"{worst:.1e} of the largest feature (float32 eps {np.finfo(np.float32).eps:.1e})")
    for k, label in (("previous", "previous read (curated_units.snippets)"),
                     ("fused", "fused read (numba, on demand)"),
                     ("stored", "precomputed (disk cache, new Session)")):
        row(f"click, {label}, median", statistics.median(times[k]),
            statistics.median(times["previous"]) if k != "previous" else None)
    row("click, precomputed, max", max(times["stored"]))
    return times


def bench_ahead(ds):
    from spikeviz.app.precompute import compute_unlocked
    from spikeviz.model import steps_features as sf

    session = ds.session
    ctx = session.analysis.bound()
    key = ctx.key(sf.NAME, ctx.params(sf.NAME))
    print("\n2. Ahead of time: feature_projections for every unit")
    t0 = time.perf_counter()
    compute_unlocked(session, sf.NAME)
    took = time.perf_counter() - t0
    entry = ctx.cache._entry(sf.NAME, key)
    size = sum(f.stat().st_size for f in entry.iterdir()) if entry.exists() else 0
    state = "computed" if sf.NAME in ctx.cache.writes else "already on disk"
    print(f"  {state} in {took:.1f} s; {size / 2**20:.1f} MB on disk ({entry.name})")


def bench_peer(ds, units, all_spikes: bool):
    import spikeinterface.core as sc
    from spikeinterface.preprocessing import bandpass_filter

    print("\n3. Peer: SpikeInterface principal_components (3 components, by_channel_local)")
    job = dict(n_jobs=1, chunk_duration="1s", progress_bar=False)
    rec = bandpass_filter(ds.si_recording, freq_min=300.0, freq_max=6000.0)
    t0 = time.perf_counter()
    analyzer = sc.create_sorting_analyzer(ds.si_sorting, rec, format="memory", sparse=True,
                                          **job)
    analyzer.compute("random_spikes", max_spikes_per_unit=500, seed=0)
    analyzer.compute("waveforms", ms_before=1.0, ms_after=2.0, **job)
    analyzer.compute("templates")
    prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    analyzer.compute("principal_components", n_components=3, mode="by_channel_local", **job)
    t_pca = time.perf_counter() - t0
    ext = analyzer.get_extension("principal_components")
    lookups = []
    for u in units:
        t0 = time.perf_counter()
        ext.get_projections_one_unit(u, sparse=True)
        lookups.append(time.perf_counter() - t0)
    print(f"  (analyzer + random spikes + waveforms + templates: {prep:.1f} s)")
    row("SI principal_components compute (sampled spikes)", t_pca)
    row("SI get_projections_one_unit (a click: sampled only), median",
        statistics.median(lookups))
    if all_spikes:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            ext.run_for_all_spikes(Path(tmp) / "all_pcs.npy", **job)
            t_all = time.perf_counter() - t0
        row("SI run_for_all_spikes (every spike, all units)", t_all)
        return t_all
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 s dataset")
    parser.add_argument("--units", type=int, default=6, help="units clicked")
    parser.add_argument("--peer-all-spikes", action="store_true",
                        help="also time SpikeInterface's run_for_all_spikes (minutes)")
    parser.add_argument("--no-peer", action="store_true", help="skip SpikeInterface")
    args = parser.parse_args()
    t0 = time.perf_counter()
    ds = _si_dataset.load(**(dict(duration_s=60.0) if args.quick else {}))
    ran = ds.session.precompute()
    print(f"{ds.session!r}\n  (dataset + precompute {time.perf_counter() - t0:.1f} s: "
          f"{'computed ' + ', '.join(ran) if ran else 'all read from the disk cache'})")
    units, counts = pick_units(ds.sorting, args.units)
    bench_ahead(ds)
    bench_clicks(ds, units, counts)
    if not args.no_peer:
        bench_peer(ds, units, args.quick or args.peer_all_spikes)
    print(f"\npeak RSS of this process {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
