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

import numpy as np
import pandas as pd

from .. import compute as sv_compute
from ..errors import InputError
from . import curated_features as cf
from . import curated_units as cu
from . import curated_wizard
from .curated_new import NewUnits
from .ids import id_key
from .selection import same_array
from .waveforms import Templates

#: Channels of the first unit used by :meth:`CuratedAnalysis.spike_features`.
FEATURE_CHANNELS = cf.FEATURE_CHANNELS


class CuratedAnalysis(NewUnits):
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
        self._feature_memo = cf.FeatureMemo()
        self._features_stored = None
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
        labels = np.asarray(ids) if sorting.unit_ids.dtype.kind == "U" else \
            np.asarray(ids, np.int64)
        return Templates(data, labels, rec.channel_ids, std=std, nbefore=nbefore,
                         sampling_frequency=sorting.sampling_frequency,
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

    def spike_features(self, unit_ids, n_components: int = 3, background_unit_ids=(),
                       max_background_spikes_per_unit: int = cf.BACKGROUND_SPIKES_PER_UNIT,
                       seed: int = 0):
        """``(positions int64, features float32 (n, n_components), channel_ids)``: PCA
        projections of every spike of ``unit_ids`` -- plus, for each of
        ``background_unit_ids`` (units to draw behind them, never to select among), at most
        ``max_background_spikes_per_unit`` of its spikes drawn with ``seed`` -- on one channel
        set, the first unit's FEATURE_CHANNELS channels of largest template peak-to-peak;
        positions ascending in the curated spike vector. The PCA basis is fitted on up to
        ``curated_features.FIT_SPIKES`` spikes of ``unit_ids``; projections are memoised per
        unit (see :mod:`.curated_features`). None without a recording."""
        sorting, kept = self._snapshot()
        ids = self._ids(sorting, unit_ids)
        if not ids:
            raise InputError("no unit given", field="unit_ids")
        chosen = {id_key(u) for u in ids}
        background = [u for u in self._ids(sorting, background_unit_ids)
                      if id_key(u) not in chosen]
        if int(max_background_spikes_per_unit) < 0:
            raise InputError("must be >= 0", field="max_background_spikes_per_unit")
        if not self._has_traces():
            return None
        orig, features, channels = cf.spike_features(
            self, sorting, kept, ids, int(n_components), background,
            int(max_background_spikes_per_unit), int(seed))
        positions = orig if kept is None else np.searchsorted(kept, orig)
        return positions, features, self.session.recording.channel_ids[channels]

    def unit_status(self, unit_ids=None) -> pd.DataFrame:
        """Where each unit's results come from and what is known without computing, one row
        per unit of ``unit_ids`` (default: every current unit), index ``unit_id``:

        - ``new`` (bool): made by a merge or a split (not a unit of ``session.sorting``);
        - ``template``, ``amplitudes``, ``metrics`` (bool): the result is known -- for an
          original unit always (it is the session's, computed or read on use), for a new unit
          once computed from its own spikes;
        - ``template_spikes_used`` (int64): snippets averaged into its template; -1 when not
          known yet (a new unit whose template is not computed, or the session's templates
          not computed).

        Nothing is computed. A snapshot: call again after computing."""
        sorting, _ = self._snapshot()
        ids = sorting.unit_ids.tolist() if unit_ids is None else self._ids(sorting, unit_ids)
        orig = [self._orig_index(u) for u in ids]
        used_orig = None
        if self._has_traces() and any(i is not None for i in orig) and \
                self.session.analysis.is_available("templates"):
            used_orig = np.asarray(self.session.analysis.arrays("templates")[0]
                                   ["num_spikes_used"])
        rows = []
        for u, i in zip(ids, orig, strict=True):
            with self._lock:
                entry = dict(self._units.get(id_key(u), {}))
            if i is not None:
                used = -1 if used_orig is None else int(used_orig[i])
                rows.append((False, True, True, True, used))
            else:
                used = int(entry["template"]["num_spikes_used"]) if "template" in entry else -1
                rows.append((True, "template" in entry, "amplitudes" in entry,
                             "metrics" in entry, used))
        frame = pd.DataFrame(rows, columns=["new", "template", "amplitudes", "metrics",
                                            "template_spikes_used"],
                             index=pd.Index(sorting.unit_ids[[sorting.unit_index_of(u)
                                                              for u in ids]], name="unit_id"))
        return frame.astype({"new": bool, "template": bool, "amplitudes": bool,
                             "metrics": bool, "template_spikes_used": np.int64})

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
        return cf.best_channels(self.templates([unit_id]).data[0], channels)

    def _feature_store(self):
        """The session's precomputed ``feature_projections`` when available, else None."""
        from .steps_features import load_store

        store = load_store(self.session, self._features_stored)
        self._features_stored = store
        return store

    def _facts(self, sorting, kept) -> pd.DataFrame:
        return curated_wizard.unit_facts(self, sorting, kept)

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
