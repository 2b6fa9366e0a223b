"""CuratedAnalysis: derived results of the *current* curated sorting, kept up to date cheaply.

A :class:`~spikeviz.model.curation.Curation` never changes the spikes of a unit id: a merge or
a split makes new ids (never reused), a removal drops ids. So the results of a unit are fixed
by its id:

- **original units** (ids of ``session.sorting``) take theirs from ``session.compute(...)``
  (computed once, cached on disk); per-spike values (amplitudes) are the original sorting's,
  read through the map from curated spike positions to original ones (``Curation.snapshot``);
- **new units** get theirs computed on first use from their own spikes only
  (:mod:`spikeviz.model.curated_units`), with the steps' definitions and parameters, and
  memoised by unit id. :attr:`CuratedAnalysis.computed_units` lists the ids computed.
  Templates: a split part's is the mean (and std) of up to ``max_spikes_per_unit`` of its
  snippets drawn as a sorting holding it alone would draw them, read on the channels within
  ``SPLIT_RADIUS_UM`` (200 µm) of its parent's peak channel (0 µV beyond: the part's spikes
  are some of the parent's, whose signal is there); a merged unit's combines its
  parts' templates, weighted by their spike counts (pooled std) -- exactly the mean and std
  over its spikes when each part's template used all of its spikes, otherwise an estimate
  from up to ``max_spikes_per_unit`` spikes of *each* part (no trace is read).

Quality metrics of a new unit: the train metrics (num_spikes, firing_rate, presence_ratio,
isi_violations_*, firing_range), ``snr`` (its template's peak over the session's noise on its
peak channel) and ``amplitude_cutoff`` / ``amplitude_median`` (its own spike amplitudes) are
computed exactly as for a sorting holding that unit. Its spike amplitudes reuse the session's
where a spike's original unit has the same peak channel and peak shift (the usual merge);
the others need a read of the peak channel over the unit's time span (for interleaved binary
files, a pass over the file), so :meth:`CuratedAnalysis.unit_frame` does not wait for them:
the two amplitude metrics stay NaN until :meth:`CuratedAnalysis.spike_amplitudes` of that
unit has run, which increments :attr:`CuratedAnalysis.revision` (call ``unit_frame`` again).
The PC metrics (isolation_distance, l_ratio, d_prime) depend on the whole population's PCA
space and neighbours: they are NaN for new units (never a parent's value). Original units keep
the session's values (their PC metrics refer to the original population).

Every method takes one snapshot of the curation, so its result is consistent even if an
action happens meanwhile. Methods needing raw traces return None without a recording.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from .. import compute as sv_compute
from ..errors import InputError
from . import curated_units as cu
from . import curated_wizard
from .ids import id_key
from .selection import same_array
from .waveforms import Templates

#: Channels of the first unit used by :meth:`CuratedAnalysis.spike_features`.
FEATURE_CHANNELS = 4
#: Metrics from every spike's amplitude (a new unit's may need a pass over the traces).
AMPLITUDE_METRICS = ("amplitude_cutoff", "amplitude_median")


class CuratedAnalysis:
    """Results of ``curation.sorting`` for ``session``; see the module docstring.

    Get one with :func:`curated_analysis` (one per (session, curation)). Thread-safe.
    ``revision`` (int) grows when results of current units become known without a curation
    change (a new unit's amplitude metrics): a view showing :meth:`unit_frame` may poll it.
    """

    def __init__(self, session, curation):
        original = curation.original
        same = original is session.sorting or (
            same_array(original.sample_index, session.sorting.sample_index)
            and same_array(original.unit_index, session.sorting.unit_index)) or \
            original.spikes_hash() == session.sorting.spikes_hash()
        if not same:
            raise InputError("this curation is of another sorting than the session's",
                             field="curation")
        self.session = session
        self.curation = curation
        self.computed_units: list = []
        self._lock = threading.RLock()
        self._units: dict = {}
        self._unit_locks: dict = {}
        self._original = {id_key(u): i for i, u in enumerate(session.sorting.unit_ids.tolist())}
        self._frame = (None, None, None)
        self.revision = 0
        self._features: OrderedDict = OrderedDict()
        self._memo: dict = {}

    # -- snapshot and ids ----------------------------------------------------------------------
    @property
    def sorting(self):
        """The current curated sorting (``curation.sorting``)."""
        return self.curation.sorting

    def _snapshot(self):
        return self.curation.snapshot()

    @staticmethod
    def _ids(sorting, unit_ids) -> list:
        if isinstance(unit_ids, str | int | np.integer | np.str_):
            unit_ids = [unit_ids]
        ids = []
        for u in np.asarray(unit_ids).tolist() if isinstance(unit_ids, np.ndarray) \
                else list(unit_ids):
            try:
                sorting.unit_index_of(u)
            except KeyError as err:
                raise InputError(err.args[0], field="unit_ids") from None
            ids.append(u.item() if isinstance(u, np.generic) else u)
        return ids

    def _orig_index(self, unit_id) -> int | None:
        """Position in ``session.sorting`` of an original unit; None for a new unit."""
        return self._original.get(id_key(unit_id))

    def _original_positions(self, sorting, kept, unit_id) -> np.ndarray:
        """Original positions of a unit of the snapshot ``sorting`` (without ordering it)."""
        if sorting is self.curation.sorting:
            try:
                return self.curation.original_spike_indices(unit_id)
            except InputError:
                pass  # the curation moved on since the snapshot
        return self._positions(sorting, kept, unit_id)[1]

    @staticmethod
    def _positions(sorting, kept, unit_id) -> tuple[np.ndarray, np.ndarray]:
        """(curated positions, original positions) of the unit's spikes, time order."""
        pos = np.asarray(sorting.spike_indices(unit_id), dtype=np.int64)
        return pos, (pos if kept is None else kept[pos])

    # -- results of original units (the session's cache) -------------------------------------
    def _orig(self, name: str):
        return self.session.compute(name)

    def _has_traces(self) -> bool:
        return self.session.recording is not None and self.session.sorting.num_spikes > 0

    # -- new units -----------------------------------------------------------------------------
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

    # -- public API ----------------------------------------------------------------------------
    def templates(self, unit_ids) -> Templates | None:
        """Dense templates (mean and std, float32 µV, (units, samples, channels) on every
        channel of the recording) of ``unit_ids`` in that order; None without a recording."""
        sorting, kept = self._snapshot()
        ids = self._ids(sorting, unit_ids)
        if not self._has_traces():
            return None
        rec = self.session.recording
        nbefore, nafter = cu.window_samples(self.session)
        data = np.zeros((len(ids), nbefore + nafter, rec.num_channels), np.float32)
        std = np.zeros_like(data)
        orig = self._orig("templates") if any(self._orig_index(u) is not None for u in ids) \
            else None
        for row, u in enumerate(ids):
            i = self._orig_index(u)
            if i is not None:
                data[row], std[row] = orig.data[i], orig.std[i]
            else:
                t = self._new(u, sorting, kept, "template")
                data[row], std[row] = t["mean"], t["std"]
        return Templates(data, np.asarray(ids, dtype=sorting.unit_ids.dtype), rec.channel_ids,
                         std=std, nbefore=nbefore, sampling_frequency=sorting.sampling_frequency,
                         units="uV" if rec.gain_known else "raw")

    def peak_channel_ids(self, unit_ids) -> np.ndarray:
        """Peak channel id (largest negative template peak) of each unit, in ``unit_ids``
        order; without a recording from the unit table / KiloSort templates (object array with
        None where unknown)."""
        sorting, kept = self._snapshot()
        ids = self._ids(sorting, unit_ids)
        frame = self._facts(sorting, kept)
        values = frame.loc[ids, "peak_channel_id"].tolist() if ids else []
        if all(v is not None and not (isinstance(v, float) and np.isnan(v)) for v in values) \
                and self.session.channel_ids is not None:
            return np.asarray(values, dtype=np.asarray(self.session.channel_ids).dtype)
        return np.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else v
                         for v in values], dtype=object)

    def unit_locations(self) -> pd.DataFrame:
        """x_um, y_um (µm on the probe) of every current unit (NaN where unknown): template
        centre of mass with a recording, else the peak channel's position."""
        sorting, kept = self._snapshot()
        facts = self._facts(sorting, kept)
        return facts[["x_um", "y_um"]].copy()

    def unit_frame(self) -> pd.DataFrame:
        """One row per current unit (index ``unit_id``): label, tags, num_spikes,
        firing_rate_hz (Hz over the session), amplitude_uv (template peak-to-peak on the peak
        channel, µV), peak_channel_id, depth_um (µm, y on the probe), x_um, then every quality
        metric (see the module docstring), then the sorting's own unit-table columns. NaN
        where unknown. A copy: callers may change it."""
        sorting, kept = self._snapshot()
        with self._lock:
            if self._frame[0] is sorting and self._frame[2] == self.revision:
                return self._frame[1].copy()
            revision = self.revision
        table = sorting.unit_table
        index = pd.Index(sorting.unit_ids, name="unit_id")
        counts = sorting.spike_counts().to_numpy()
        duration = sorting.duration_s
        frame = pd.DataFrame({
            "label": sorting.labels.to_numpy(),
            "tags": table["tags"].fillna("").astype(str).to_numpy() if "tags" in table
            else np.full(len(index), "", dtype=object),
            "num_spikes": counts,
            "firing_rate_hz": counts / duration if duration > 0 else np.full(len(index), np.nan),
        }, index=index)
        facts = self._facts(sorting, kept)
        frame["amplitude_uv"] = facts["amplitude_uv"].to_numpy()
        frame["peak_channel_id"] = facts["peak_channel_id"].to_numpy()
        frame["depth_um"] = facts["depth_um"].to_numpy()
        frame["x_um"] = facts["x_um"].to_numpy()
        qm = self._metrics(sorting, kept)
        for column in qm.columns:
            if column not in frame:
                frame[column] = qm[column].to_numpy()
        for column in table.columns:
            if column not in frame:
                frame[column] = table[column].to_numpy()
        with self._lock:
            self._frame = (sorting, frame, revision)
        return frame.copy()

    def waveforms(self, unit_id, max_spikes: int = 100, seed: int = 0):
        """``(snippets float32 (n, samples, channels) µV, channel_ids, positions int64)``: up
        to ``max_spikes`` spikes of the unit drawn with ``seed`` (snippets inside the
        recording), on its sparse channels; positions in the curated spike vector, ascending.
        None without a recording."""
        sorting, kept = self._snapshot()
        (unit_id,) = self._ids(sorting, [unit_id])
        if not self._has_traces():
            return None
        channels = self._channels(unit_id, sorting, kept)
        pos, orig = self._positions(sorting, kept, unit_id)
        samples = np.asarray(self.session.sorting.sample_index[orig])
        pick = cu.random_spikes(self.session, samples, int(max_spikes), int(seed))
        data = cu.snippets(self.session, samples[pick], channels)
        return data, self.session.recording.channel_ids[channels], pos[pick]

    def spike_amplitudes(self, unit_ids):
        """``(positions int64, amplitudes_uv float32)`` of every spike of ``unit_ids``:
        positions in the curated spike vector, ascending; the trace (µV) on the unit's peak
        channel at its template's peak offset. None without a recording."""
        sorting, kept = self._snapshot()
        ids = self._ids(sorting, unit_ids)
        if not self._has_traces():
            return None
        positions, values = [], []
        for u in ids:
            pos, orig = self._positions(sorting, kept, u)
            if self._orig_index(u) is not None:
                values.append(np.asarray(self._orig("spike_amplitudes"))[orig])
            else:
                values.append(self._new(u, sorting, kept, "amplitudes"))
            positions.append(pos)
        return _by_position(positions, values)

    def spike_features(self, unit_ids, n_components: int = 3):
        """``(positions int64, features float32 (n, n_components), channel_ids)``: PCA
        projections of every spike of ``unit_ids`` on one channel set, the first unit's
        FEATURE_CHANNELS channels of largest template peak-to-peak; positions ascending in the
        curated spike vector. None without a recording."""
        sorting, kept = self._snapshot()
        ids = self._ids(sorting, unit_ids)
        if not ids:
            raise InputError("no unit given", field="unit_ids")
        if not self._has_traces():
            return None
        key = (tuple(id_key(u) for u in ids), int(n_components))
        with self._lock:
            found = self._features.get(key)
        if found is None:
            channels = self._best_channels(ids[0], sorting, kept)
            origs = [self._positions(sorting, kept, u)[1] for u in ids]
            orig = np.sort(np.concatenate(origs))
            samples = np.asarray(self.session.sorting.sample_index[orig])
            data = cu.snippets(self.session, samples, channels)
            found = (orig, cu.pca_features(data, int(n_components)), channels)
            with self._lock:
                self._features[key] = found
                while len(self._features) > 4:
                    self._features.popitem(last=False)
        orig, features, channels = found
        positions = orig if kept is None else np.searchsorted(kept, orig)
        return positions, features, self.session.recording.channel_ids[channels]

    def similar_units(self, unit_id, top: int = 10) -> pd.DataFrame:
        """The units most like ``unit_id``, best first (see :mod:`.curated_wizard`)."""
        sorting, kept = self._snapshot()
        (unit_id,) = self._ids(sorting, [unit_id])
        return curated_wizard.similar_units(self, sorting, kept, unit_id, int(top))

    def correlograms(self, unit_ids, window_ms: float = 50.0, bin_ms: float = 1.0):
        """``(counts int64 (k, k, bins), bin_edges_ms)`` of ``unit_ids`` in the curated
        sorting (``sv.compute.correlograms`` convention)."""
        sorting = self.sorting
        return sv_compute.correlograms(sorting, window_ms, bin_ms,
                                       unit_ids=self._ids(sorting, unit_ids))

    def isi_histograms(self, unit_ids, window_ms: float = 50.0, bin_ms: float = 1.0):
        """``(counts int64 (k, bins), bin_edges_ms)`` of ``unit_ids`` in the curated sorting."""
        sorting = self.sorting
        return sv_compute.isi_histograms(sorting, window_ms, bin_ms,
                                         unit_ids=self._ids(sorting, unit_ids))

    def firing_rates(self, unit_ids, bin_s: float = 1.0):
        """``(rates_hz float64 (k, bins), bin_edges_s)`` of ``unit_ids`` over the session."""
        sorting = self.sorting
        return sv_compute.firing_rates(sorting, bin_s, unit_ids=self._ids(sorting, unit_ids))

    # -- per-unit facts -------------------------------------------------------------------------
    def _channels(self, unit_id, sorting, kept) -> np.ndarray:
        """Sparse channel positions of a unit (recording needed)."""
        i = self._orig_index(unit_id)
        if i is None:
            return self._new(unit_id, sorting, kept, "template")["sparsity"]
        row = np.asarray(self._orig("sparsity"))[i]
        return row[row >= 0]

    def _best_channels(self, unit_id, sorting, kept) -> np.ndarray:
        channels = self._channels(unit_id, sorting, kept)
        template = self.templates([unit_id]).data[0][:, channels]
        order = np.argsort(-np.ptp(template, axis=0), kind="stable")[:FEATURE_CHANNELS]
        return np.sort(channels[order])

    def _facts(self, sorting, kept) -> pd.DataFrame:
        return curated_wizard.unit_facts(self, sorting, kept)

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


def _by_position(positions: list, values: list):
    if not positions:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    pos = np.concatenate(positions)
    val = np.concatenate(values).astype(np.float32, copy=False)
    order = np.argsort(pos, kind="stable")
    return pos[order], val[order]


_LOCK = threading.Lock()


def curated_analysis(session, curation) -> CuratedAnalysis:
    """The CuratedAnalysis of ``session`` and ``curation`` (one per pair, shared).

    Kept on the curation object (keyed by the session), so it lives as long as the curation.
    """
    with _LOCK:
        store = curation.__dict__.setdefault("_curated_analyses", {})
        analysis = store.get(id(session))
        if analysis is None or analysis.session is not session:
            analysis = CuratedAnalysis(session, curation)
            store[id(session)] = analysis
        return analysis
