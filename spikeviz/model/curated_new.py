"""Results of the new units (made by merges and splits) for CuratedAnalysis: computed on
first use from their own spikes (:mod:`spikeviz.model.curated_units`), memoised by unit id.

A mixin of :class:`~spikeviz.model.curated.CuratedAnalysis` (see its module docstring for
what is computed and how); split from it to keep modules short.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from . import curated_units as cu
from .ids import id_key

#: Metrics from every spike's amplitude (a new unit's may need a pass over the traces).
AMPLITUDE_METRICS = ("amplitude_cutoff", "amplitude_median")


class NewUnits:
    """Memo and computation of new units' results (host: CuratedAnalysis)."""

    def _entry(self, unit_id, sorting, kept, what: str) -> dict:
        """The memo of a new unit, with ``what`` ('template', 'amplitudes', 'metrics', ...)
        computed if it was not yet."""
        key = id_key(unit_id)
        with self._lock:
            entry = self._units.get(key)
            if entry is None:
                orig = self._original_positions(sorting, kept, unit_id)
                entry = {"unit_id": unit_id, "original_positions": orig,
                         "samples": np.asarray(self.session.sorting.sample_index[orig])}
                self._units[key] = entry
                self.computed_units.append(unit_id)
            lock = self._unit_locks.setdefault(key, threading.Lock())
        with lock:
            if what not in entry:
                entry[what] = getattr(self, f"_compute_{what}")(entry)
        return entry

    def _compute_template(self, entry):
        kind, parents = self.curation.origin(entry["unit_id"])
        parts = [self._part(p) for p in parents] if kind == "merge" else None
        if parts is not None and all(p is not None for p in parts):
            result = cu.combine(self.session, parts)
        else:
            peak = self._peak_channel_of(parents[0]) if kind == "split" else None
            channels = None if peak is None else cu.channels_near(self.session, peak)
            result = cu.template(self.session, entry["samples"], channels)
        result["location_um"] = cu.location(self.session, result)
        return result

    def _peak_channel_of(self, unit_id) -> int | None:
        """Peak channel position of an original unit or of a new one already computed."""
        i = self._orig_index(unit_id)
        if i is not None:
            return int(self._orig("unit_peaks")["peak_channel_index"].iloc[i])
        entry = self._units.get(id_key(unit_id))
        if entry is None or "template" not in entry:
            return None
        return entry["template"]["peak_channel"]

    def _part(self, unit_id):
        """``(mean, std, candidates, used)`` of a merged part's template, or None if unknown
        (a new unit merged before its template was ever computed)."""
        i = self._orig_index(unit_id)
        if i is not None:
            t = self._orig("templates")
            candidates = int(self._original_candidates()[i])
            used = min(candidates, cu.TEMPLATE_PARAMS["max_spikes_per_unit"])
            return t.data[i], t.std[i], candidates, used
        entry = self._units.get(id_key(unit_id))
        if entry is None or "template" not in entry:
            return None
        t = entry["template"]
        return t["mean"], t["std"], t["candidates"], t["num_spikes_used"]

    def _reusable_amplitudes(self, entry):
        """``(values, todo)``: the amplitudes of a new unit's spikes that equal the session's
        cached ones (their original unit has the same peak channel and shift: same definition,
        same number), and the mask of those still to read from the traces."""
        t = self._entry_template(entry)
        orig = entry["original_positions"]
        out = np.empty(orig.size, np.float32)
        todo = np.ones(orig.size, bool)
        if self.session.analysis.is_available("spike_amplitudes"):
            peaks = self._orig("unit_peaks")
            same = (peaks["peak_channel_index"].to_numpy() == t["peak_channel"]) & \
                (peaks["peak_shift_samples"].to_numpy() == t["peak_shift"])
            reuse = same[self.session.sorting.unit_index[orig]]
            if reuse.any():
                out[reuse] = np.asarray(self._orig("spike_amplitudes"))[orig[reuse]]
                todo = ~reuse
        return out, todo

    def _compute_amplitudes(self, entry):
        """Per-spike amplitudes (µV) of a new unit: reused where possible, else read on its
        peak channel only (a pass over the recording when the spikes span it)."""
        t = self._entry_template(entry)
        out, todo = self._reusable_amplitudes(entry)
        if todo.any():
            out[todo] = cu.amplitudes(self.session, entry["samples"][todo], t["peak_channel"],
                                      t["peak_shift"])
        out.flags.writeable = False
        with self._lock:
            self.revision += 1  # amplitude metrics of this unit are now known
        return out

    def _amplitudes_if_cheap(self, entry):
        """The unit's amplitudes if known or fully reusable (no trace read), else None."""
        if "amplitudes" in entry:
            return entry["amplitudes"]
        _, todo = self._reusable_amplitudes(entry)
        return None if todo.any() else self._entry_field(entry, "amplitudes")

    def _compute_metrics(self, entry):
        """Metrics of a new unit that need no per-spike amplitude read (see module doc)."""
        columns = [c for c in self._orig("quality_metrics").columns if c not in AMPLITUDE_METRICS
                   or not self._has_traces()]
        samples = entry["samples"]
        if self._has_traces():
            t = self._entry_template(entry) if "snr" in columns else None
            noise = np.asarray(self._orig("noise_levels")) if t is not None else None
            return cu.unit_metrics(self.session, samples, columns, entry=t, noise_uv=noise)
        phy = self.session.sorting.spike_properties.get("amplitudes")
        phy = None if phy is None else np.asarray(phy)[entry["original_positions"]]
        return cu.unit_metrics(self.session, samples, columns, phy_amplitudes=phy)

    def _amplitude_metrics(self, entry, columns) -> dict:
        """amplitude_cutoff / amplitude_median of a new unit (NaN while its amplitudes are not
        known and would need a pass over the traces)."""
        wanted = [c for c in columns if c in AMPLITUDE_METRICS]
        if not wanted or not self._has_traces():
            return {}
        amps = self._amplitudes_if_cheap(entry)
        if amps is None:
            return dict.fromkeys(wanted, np.nan)
        if "amplitude_metrics" not in entry:
            entry["amplitude_metrics"] = cu.unit_metrics(self.session, entry["samples"], wanted,
                                                         amplitudes_uv=amps)
        return entry["amplitude_metrics"]

    def _original_candidates(self) -> np.ndarray:
        """Per original unit, its spikes whose snippet lies inside the recording."""
        found = self._memo.get("candidates")
        if found is None:
            s = self.session.sorting
            nbefore, nafter = cu.window_samples(self.session)
            lo, hi = np.searchsorted(s.sample_index, [nbefore, max(
                cu.num_samples_of(self.session) - nafter, 0)])
            edges = np.concatenate([s.unit_index[:lo], s.unit_index[hi:]])
            found = s.spike_counts().to_numpy() - np.bincount(edges, minlength=s.num_units)
            self._memo["candidates"] = found
        return found

    def _entry_template(self, entry) -> dict:
        return self._entry_field(entry, "template")

    def _entry_field(self, entry, what):
        if what not in entry:
            entry[what] = getattr(self, f"_compute_{what}")(entry)
        return entry[what]

    def _new(self, unit_id, sorting, kept, what: str):
        return self._entry(unit_id, sorting, kept, what)[what]

    def _metrics(self, sorting, kept) -> pd.DataFrame:
        qm = self._orig("quality_metrics")
        ids = sorting.unit_ids.tolist()
        out = pd.DataFrame(index=pd.Index(sorting.unit_ids, name="unit_id"),
                           columns=qm.columns, dtype=np.float64)
        original = [u for u in ids if self._orig_index(u) is not None]
        if original:
            rows = qm.iloc[[self._orig_index(u) for u in original]]
            for column in qm.columns:
                values = rows[column].to_numpy()
                if out[column].dtype != values.dtype and values.dtype.kind in "iu":
                    out[column] = out[column].astype(np.float64)
                out.loc[original, column] = values
        for u in ids:
            if self._orig_index(u) is None:
                entry = self._entry(u, sorting, kept, "metrics")
                values = {**entry["metrics"], **self._amplitude_metrics(entry, qm.columns)}
                out.loc[u, list(values)] = list(values.values())
        return out
