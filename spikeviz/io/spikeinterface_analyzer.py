"""A SpikeInterface ``SortingAnalyzer`` as a Session that reuses its computed extensions.

The session holds the analyzer's sorting and (when it has one) its recording, and computes on
the traces as they are (``filter_band_hz=None``), as the analyzer does. Each computed
extension whose parameters map onto a spikeviz result is seeded into the session's analysis
(:meth:`~spikeviz.model.analysis.Analysis.store`, memory only), so ``session.compute(name,
**params)`` with the mapped parameters returns it without computing. What was reused, under
which parameters, is in ``session.results["spikeinterface_reused"]`` ({name: params}); what
was not, and why, in ``session.results["spikeinterface_not_reused"]`` ({extension: reason});
approximations in ``session.results["spikeinterface_notes"]`` (list of str).

Mapping (SpikeInterface 0.105 extension -> spikeviz result):

- ``random_spikes`` (method "uniform") -> ``random_spikes`` with ``ms_before``/``ms_after`` of
  the templates extension, its ``max_spikes_per_unit``, and ``seed=0``. A seed only labels a
  draw: SpikeInterface's draw (whatever its seed) is filed as the session's default draw, so
  templates, waveforms and PCA all use the analyzer's spikes. Drawn spikes whose snippet
  window leaves the recording are left out of the seeded draw (spikeviz never draws them;
  SpikeInterface averages them zero-padded into its templates: a difference of a few spikes
  in hundreds, counted in ``session.results["spikeinterface_notes"]``).
- ``templates`` (average + std) -> ``templates`` with those parameters, for dense analyzers
  whose templates are in the units spikeviz uses (µV when the gain is known). The analyzer's
  templates are always in ``session.results["spikeinterface_templates"]`` too.
- ``spike_amplitudes`` -> ``spike_amplitudes`` (``peak_sign`` = the analyzer's), when the
  analyzer's main channel of every unit is the peak channel spikeviz finds on the templates
  (``unit_peaks``, computed from the seeded templates without reading traces; then the peak
  shifts agree too) and its ``peak_mode`` is "extremum".
- ``noise_levels`` -> ``noise_levels`` with the analyzer's chunk count, chunk size (samples)
  and method, ``seed=0`` (a label, as above).
- ``correlograms``, ``isi_histograms`` -> same names, ``window_ms``/``bin_ms``.
- ``template_similarity`` -> ``template_similarity`` with ``support="dense"`` (a dense
  analyzer compares templates on every channel), its ``method`` and ``max_lag_ms``.
- ``unit_locations`` ("center_of_mass" / "monopolar_triangulation" with ``feature="ptp"``,
  optimizer "least_square", max distance 1000 µm) -> ``unit_locations`` with
  ``sparsity_method="radius"``, its ``radius_um`` and ``peak_sign``, dense analyzers only.
- ``quality_metrics``: every column joins the unit table (properties the source carried, which
  exports include); the metrics spikeviz computes with SpikeInterface's default parameters
  are seeded as ``quality_metrics(metric_names=[...])`` (list in the order of
  ``spikeviz.compute.metrics.METRIC_NAMES``), and, for a session without recording, as the
  default ``quality_metrics()`` when it covers the spike-train metrics.
- Not reused: waveforms, principal_components, sparsity (estimated by SpikeInterface from
  other spikes), median templates, multi-segment analyzers' extensions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import Session, Templates
from ..model.steps import SPARSITY
from ..model.steps_metrics import TRAIN_METRICS
from .spikeinterface_ import FORMAT
from .spikeinterface_import import _ids, recording_from_si, sorting_from_si

# Spikeviz metric columns seeded when SpikeInterface's group parameters are its defaults
# (spikeviz's defaults mirror SpikeInterface 0.105's), with the inputs they need.
_METRIC_GROUPS = {
    "num_spikes": ((), {}), "firing_rate": ((), {}),
    "presence_ratio": ((), {"bin_duration_s": 60, "mean_fr_ratio_thresh": 0.0}),
    "isi_violations_ratio": ((), {"isi_threshold_ms": 1.5, "min_isi_ms": 0}),
    "isi_violations_count": ((), {"isi_threshold_ms": 1.5, "min_isi_ms": 0}),
    "firing_range": ((), {"bin_size_s": 5, "percentiles": [5, 95]}),
    "amplitude_cutoff": (("spike_amplitudes",), {"num_histogram_bins": 100,
                                                 "histogram_smoothing_value": 3,
                                                 "amplitudes_bins_min_ratio": 5}),
    "amplitude_median": (("spike_amplitudes",), {}),
}
_ORDER = ("num_spikes", "firing_rate", "presence_ratio", "isi_violations_ratio",
          "isi_violations_count", "snr", "amplitude_cutoff", "amplitude_median", "firing_range")
_SI_GROUP = {"isi_violations_ratio": "isi_violation", "isi_violations_count": "isi_violation"}


def _same(a, b) -> bool:
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return isinstance(a, list | tuple) and isinstance(b, list | tuple) and \
            len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b)
    except Exception:
        return False


class _Seeder:
    def __init__(self, analyzer, session: Session):
        self.analyzer = analyzer
        self.session = session
        self.reused: dict = {}
        self.skipped: dict = {}
        self.notes: list = []
        self.window: dict | None = None

    def ext(self, name):
        return self.analyzer.get_extension(name) if self.analyzer.has_extension(name) else None

    def store(self, name, arrays, attrs=None, **params):
        self.session.analysis.store(name, arrays, attrs, **params)
        self.reused[name] = self.session.analysis.params(name, **params)

    def skip(self, name, reason):
        if self.ext(name) is not None:
            self.skipped[name] = reason

    # -- trace results ----------------------------------------------------------------------
    def traces(self):
        a, s, rec = self.analyzer, self.session.sorting, self.session.recording
        tpl, rnd = self.ext("templates"), self.ext("random_spikes")
        if tpl is None or rnd is None:
            return self.skip("templates", "needs random_spikes and templates")
        ms_before, ms_after = float(tpl.params["ms_before"]), float(tpl.params["ms_after"])
        if rnd.params.get("method") != "uniform":
            return self.skip("random_spikes", f"method {rnd.params.get('method')!r}")
        self.window = {"ms_before": ms_before, "ms_after": ms_after,
                       "max_spikes_per_unit": int(rnd.params["max_spikes_per_unit"]), "seed": 0}
        chosen = np.asarray(rnd.data["random_spikes_indices"], dtype=np.int64)
        nbefore, nafter = tpl.nbefore, tpl.nafter
        times = s.sample_index[chosen]
        inside = (times >= nbefore) & (times < rec.num_samples - nafter)
        if not inside.all():
            self.notes.append(f"random_spikes: {int((~inside).sum())} of {inside.size} drawn "
                              f"spikes lie within the snippet window of the recording's ends; "
                              f"SpikeInterface averaged them zero-padded into the templates, "
                              f"spikeviz's draw leaves them out")
        self.store("random_spikes", {"spike_indices": chosen[inside]},
                   {"nbefore": nbefore, "nafter": nafter}, **self.window)
        data = tpl.data
        if a.sparsity is not None:
            return self.skip("templates", "sparse analyzer (spikeviz templates are dense)")
        if rec.gain_known and not a.return_in_uV:
            return self.skip("templates", "templates in stored units, spikeviz's in µV")
        if "average" not in data or "std" not in data:
            return self.skip("templates", "needs the average and std operators")
        average = np.asarray(data["average"], dtype=np.float32)
        counts = np.bincount(s.unit_index[chosen], minlength=s.num_units)
        self.store("templates", {"average": average,
                                 "std": np.asarray(data["std"], dtype=np.float32),
                                 "num_spikes_used": counts},
                   {"nbefore": nbefore, "nafter": nafter}, **self.window)
        self.amplitudes()
        self.similarity()
        self.locations()

    def amplitudes(self):
        ext = self.ext("spike_amplitudes")
        if ext is None:
            return
        sign, mode = self.analyzer.peak_sign, getattr(self.analyzer, "peak_mode", "extremum")
        if sign not in ("neg", "pos", "both") or mode != "extremum":
            return self.skip("spike_amplitudes", f"peak_sign {sign!r}, peak_mode {mode!r}")
        # spikeviz's peak channels of the (seeded) templates: no trace is read
        peaks = self.session.analysis.get("unit_peaks", **self.window, peak_sign=sign)
        main = np.asarray(self.analyzer.main_channel_indices, dtype=np.int64)
        if not np.array_equal(peaks["peak_channel_index"].to_numpy(), main):
            return self.skip("spike_amplitudes", "the analyzer's main channels are not the "
                                                 "templates' peak channels")
        self.store("spike_amplitudes",
                   {"amplitudes": np.asarray(ext.data["amplitudes"], dtype=np.float32)},
                   **self.window, peak_sign=sign)

    def similarity(self):
        ext = self.ext("template_similarity")
        if ext is None:
            return
        p = ext.params
        fs = self.session.sorting.sampling_frequency
        lag_ms = float(p.get("max_lag_ms", 0) or 0)
        if int(lag_ms * fs / 1000.0) != round(lag_ms * fs / 1000.0):
            return self.skip("template_similarity", "max_lag_ms rounds differently")
        self.store("template_similarity",
                   {"similarity": np.asarray(ext.data["similarity"], dtype=np.float32)},
                   **self.window, method=p.get("method", "cosine"), max_lag_ms=lag_ms,
                   support="dense")

    def locations(self):
        ext = self.ext("unit_locations")
        if ext is None or self.session.channel_locations_um is None:
            return self.skip("unit_locations", "no probe geometry")
        p = dict(ext.params)
        method = p.get("method", "monopolar_triangulation")
        fixed = {"feature": "ptp", "optimizer": "least_square", "max_distance_um": 1000,
                 "enforce_decrease": False, "return_alpha": False}
        if method not in ("center_of_mass", "monopolar_triangulation") or any(
                k in p and not _same(p[k], v) for k, v in fixed.items()):
            return self.skip("unit_locations", f"method/parameters {p} have no spikeviz twin")
        sign = p.get("peak_sign") or (self.analyzer.peak_sign if method != "center_of_mass"
                                      else "neg")
        xy = np.asarray(ext.data["unit_locations"], dtype=np.float64)
        if method == "center_of_mass":
            xy = xy[:, :2]
        self.store("unit_locations", {"locations_um": xy}, **self.window,
                   **{**SPARSITY, "sparsity_method": "radius",
                      "radius_um": float(p.get("radius_um", 75.0)), "peak_sign": sign},
                   method=method)

    def noise(self):
        ext = self.ext("noise_levels")
        if ext is None:
            return
        p = dict(ext.params)
        kw = dict(p.get("random_slices_kwargs") or {})
        fs = self.session.recording.sampling_frequency
        if kw.get("method", "full_random") != "full_random" or kw.get("margin_frames", 0):
            return self.skip("noise_levels", f"chunk selection {kw}")
        size = kw.get("chunk_size")
        if size is None:
            duration = str(kw.get("chunk_duration", "500ms"))
            if not duration.endswith("ms"):
                return self.skip("noise_levels", f"chunk_duration {duration!r}")
            size = int(float(duration[:-2]) * fs / 1000.0)
        method = p.get("method", "mad")
        if method not in ("mad", "std") or (self.session.recording.gain_known
                                            and not self.analyzer.return_in_uV):
            return self.skip("noise_levels", f"method {method!r} or units")
        self.store("noise_levels", {"noise_levels": np.asarray(ext.data["noise_levels"],
                                                              dtype=np.float32)},
                   num_chunks=int(kw.get("num_chunks_per_segment", 20)),
                   chunk_samples=int(size), method=method, seed=0)

    # -- spike-train results ----------------------------------------------------------------
    def trains(self):
        for name, key in (("correlograms", "ccgs"), ("isi_histograms", "isi_histograms")):
            ext = self.ext(name)
            if ext is None:
                continue
            self.store(name, {"counts": np.asarray(ext.data[key], dtype=np.int64),
                              "bin_edges_ms": np.asarray(ext.data["bins"], dtype=np.float64)},
                       window_ms=float(ext.params["window_ms"]),
                       bin_ms=float(ext.params["bin_ms"]))

    def metrics(self):
        ext = self.ext("quality_metrics")
        if ext is None:
            return
        s = self.session.sorting
        table = ext.get_data()
        table.index = pd.Index(_ids(table.index, "unit_id"), name="unit_id")
        table = table.reindex(s.unit_table.index)
        self.session.sorting = s.with_unit_table(
            s.unit_table.drop(columns=[c for c in table.columns if c in s.unit_table.columns])
            .join(table))
        given = ext.params.get("metric_params") or {}
        names = []
        for name in _ORDER:
            if name not in table.columns or name not in _METRIC_GROUPS:
                continue
            needs, defaults = _METRIC_GROUPS[name]
            if any(n not in self.reused for n in needs):
                continue
            group = given.get(_SI_GROUP.get(name, name), {})
            if all(_same(group.get(k, v), v) for k, v in defaults.items()):
                names.append(name)
        if not names:
            return self.skip("quality_metrics", "no column spikeviz computes the same way")
        arrays = {n: table[n].to_numpy() for n in names}
        peak = {"peak_sign": self.analyzer.peak_sign} if "spike_amplitudes" in self.reused \
            else {}
        window = self.window or {}
        self.store("quality_metrics", arrays, {"columns": names}, metric_names=names,
                   **peak, **window)
        if self.session.recording is None and set(TRAIN_METRICS) <= set(names):
            self.store("quality_metrics", {n: arrays[n] for n in TRAIN_METRICS},
                       {"columns": list(TRAIN_METRICS)})


def _templates_result(analyzer, session: Session) -> Templates | None:
    if not analyzer.has_extension("templates"):
        return None
    ext = analyzer.get_extension("templates")
    average = np.asarray(ext.data.get("average"), dtype=np.float32) \
        if "average" in ext.data else None
    if average is None:
        return None
    std = ext.data.get("std")
    return Templates(average, session.sorting.unit_ids, np.asarray(analyzer.channel_ids),
                     std=None if std is None else np.asarray(std, np.float32),
                     nbefore=int(ext.nbefore), sampling_frequency=analyzer.sampling_frequency,
                     units="uV" if analyzer.return_in_uV else "raw")


def session_from_analyzer(analyzer, segment_index=None, load_recording: bool = True,
                          source: str = "") -> Session:
    """A Session over a ``SortingAnalyzer`` reusing its extensions (see the module doc)."""
    sorting = sorting_from_si(analyzer.sorting, segment_index, source=source)
    recording = None
    if load_recording and analyzer.has_recording():
        recording = recording_from_si(analyzer.recording, segment_index, source=source)
    session = Session(sorting, recording=recording, source=str(source), format=FORMAT,
                      filter_band_hz=None)
    seeder = _Seeder(analyzer, session)
    if analyzer.get_num_segments() > 1:
        seeder.skipped["*"] = "multi-segment analyzer: extensions span every segment"
    else:
        seeder.trains()
        if recording is not None:
            seeder.traces()
            seeder.noise()
        seeder.metrics()
    results = {"spikeinterface_reused": seeder.reused,
               "spikeinterface_not_reused": seeder.skipped,
               "spikeinterface_notes": seeder.notes}
    templates = _templates_result(analyzer, session)
    if templates is not None:
        results["spikeinterface_templates"] = templates
    session.results = results
    return session
