"""``feature_projections``: the Features view's first click on every unit, computed ahead.

For every unit ``u`` of the session's sorting, exactly what
:meth:`~spikeviz.model.curated.CuratedAnalysis.spike_features` computes for a fresh click on
``u`` alone with the Features view's defaults (``n_components`` 3; background: the
``background_units`` (3) nearest other units on the probe, at most
``min(BACKGROUND_SPIKES_PER_UNIT, max_background_spikes // count)`` spikes each, drawn with
``seed`` 0): the same code (:func:`.curated_features.project`) on the same spikes and the same
snippets bit for bit, so the same numbers (to float32 precision: BLAS may round the PCA an
ulp differently from one call to the next). Stored in the session's disk cache
(``spikeviz precompute``, or a background thread of the server:
:func:`spikeviz.app.precompute.start_background`);
``spike_features`` seeds its memo from it, so a first click reads a few kB instead of
filtering the recording.

Arrays (``U`` units, ``k`` components, ``d`` inputs per spike, ``B`` background units):

- ``features`` (num_spikes, k) float32: every spike on its own unit's basis;
- ``channels`` (U, 4) int64 (-1 padded): each unit's feature channels (positions);
- ``basis_mean`` (U, d) float64, ``basis_axes`` (U, k, d) float64 (0 past ``basis_rank``),
  ``basis_rank`` (U,) int64;
- ``background_units`` (U, B) int64 unit positions (-1 padded), ``background_cap`` (U,) int64
  (the per-unit subsample cap used), ``background_offsets`` (U * B + 1,) int64 into
  ``background_positions`` (original spike positions) and ``background_features`` (., k).
- ``done`` (U,) bool: False for units without spikes or channels (nothing stored).

attrs: ``kind`` ("snippets" or "pcs": the inputs), ``d``.
"""

from __future__ import annotations

import numpy as np

from . import curated_features as cf
from .analysis import Step, register
from .ids import id_key

NAME = "feature_projections"
#: The Features view's defaults (spikeviz.views.features.Features; a test checks they agree).
DEFAULTS = {"n_components": 3, "background_units": 3, "max_background_spikes": 20_000,
            "seed": 0}


def nearest_units(unit_ids: list, xy: np.ndarray, unit_id, count: int) -> list:
    """Up to ``count`` other units nearest to ``unit_id`` on the probe (``xy``: (units, 2) µm
    in ``unit_ids`` order; NaN: unknown, never chosen), nearest first, ties in ``unit_ids``
    order: the Features view's background units."""
    ids = list(unit_ids)
    here = ids.index(unit_id)
    others = [i for i in range(len(ids)) if i != here]
    if count <= 0 or not others:
        return []
    xy = np.asarray(xy, dtype=float)
    distance = np.hypot(*(xy[others] - xy[here]).T)
    distance[~np.isfinite(distance)] = np.inf
    order = np.argsort(distance, kind="stable")[:count]
    return [ids[others[i]] for i in order if np.isfinite(distance[i])]


def background_cap(count: int, max_background_spikes: int) -> int:
    """Spikes drawn per background unit when ``count`` units share the budget."""
    return min(cf.BACKGROUND_SPIKES_PER_UNIT, int(max_background_spikes) // max(count, 1))


def _depends(ctx, params):
    deps = {"templates": {}, "sparsity": {}}
    if ctx.session.channel_locations_um is not None:
        deps["unit_locations"] = {}
    return deps


def _extra_key(ctx, params):
    return {"fit_spikes": cf.FIT_SPIKES, "chunk": cf.PROJECTION_CHUNK,
            "memo_bytes": cf.MEMO_BYTES, "channels": cf.FEATURE_CHANNELS,
            "per_unit": cf.BACKGROUND_SPIKES_PER_UNIT,
            "session_pcs": ctx.is_available("principal_components", all_spikes=True)}


def run(ctx, params, deps, units=None):
    """Compute the arrays (see the module docstring); ``units``: positions to compute (all)."""
    sorting = ctx.session.sorting
    ids = sorting.unit_ids.tolist()
    num_units, k = len(ids), int(params["n_components"])
    templates = np.asarray(deps["templates"][0]["average"], dtype=np.float32)
    sparsity = np.asarray(deps["sparsity"][0]["channel_indices"])
    xy = np.asarray(deps["unit_locations"][0]["locations_um"])[:, :2] \
        if "unit_locations" in deps else np.full((num_units, 2), np.nan)
    count = int(params["background_units"])
    features = np.zeros((sorting.num_spikes, k), np.float32)
    channels = np.full((num_units, cf.FEATURE_CHANNELS), -1, np.int64)
    done = np.zeros(num_units, bool)
    bg_units = np.full((num_units, max(count, 0)), -1, np.int64)
    caps = np.zeros(num_units, np.int64)
    bases, backgrounds, kind = {}, {}, "snippets"
    todo = range(num_units) if units is None else units
    for step, i in enumerate(todo):
        if ctx.progress is not None:
            ctx.progress(NAME, step / max(len(todo), 1))
        fg_orig = np.asarray(sorting.spike_indices(ids[i]), dtype=np.int64)
        sparse = sparsity[i][sparsity[i] >= 0]
        if fg_orig.size == 0 or sparse.size == 0:
            continue
        unit_channels = cf.best_channels(templates[i], sparse)
        neighbours = nearest_units(ids, xy, ids[i], count)
        cap = background_cap(len(neighbours), params["max_background_spikes"])
        bg = {}
        for u in neighbours:
            bg[u] = cf.background_sample(np.asarray(sorting.spike_indices(u), np.int64), cap,
                                         int(params["seed"]))
        memo = cf.FeatureMemo(max_bytes=2**62)  # a fresh click: nothing known
        *_, basis_key = cf.project(ctx, memo, unit_channels, {ids[i]: fg_orig}, bg, k, cap,
                                   int(params["seed"]))
        kind = basis_key[0]
        features[fg_orig] = memo.get((id_key(ids[i]), basis_key))
        bases[i] = memo.get(("basis", basis_key))
        backgrounds[i] = [(ids.index(u), bg[u], memo.get((id_key(u), basis_key, cap)))
                          for u in neighbours]
        channels[i, :unit_channels.size] = unit_channels
        bg_units[i, :len(neighbours)] = [ids.index(u) for u in neighbours]
        caps[i], done[i] = cap, True
    d = next((b[0].size for b in bases.values()), 0)
    mean = np.zeros((num_units, d))
    axes = np.zeros((num_units, k, d))
    rank = np.zeros(num_units, np.int64)
    for i, (m, a) in bases.items():
        mean[i], axes[i, :a.shape[0]], rank[i] = m, a, a.shape[0]
    slots = [(i, s) for i in range(num_units) for s in range(bg_units.shape[1])]
    lengths = [0] * len(slots)
    positions, values = [], []
    for n, (i, s) in enumerate(slots):
        if i in backgrounds and s < len(backgrounds[i]):
            _, pos, val = backgrounds[i][s]
            lengths[n] = pos.size
            positions.append(pos)
            values.append(val)
    if ctx.progress is not None:
        ctx.progress(NAME, 1.0)
    return ({"features": features, "channels": channels, "basis_mean": mean,
             "basis_axes": axes, "basis_rank": rank, "background_units": bg_units,
             "background_cap": caps,
             "background_offsets": np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
             "background_positions": np.concatenate([*positions, np.zeros(0, np.int64)]),
             "background_features": np.concatenate([*values, np.zeros((0, k), np.float32)]),
             "done": done},
            {"kind": kind, "d": int(d)})


register(Step(NAME, 2, dict(DEFAULTS), run, depends=_depends, extra_key=_extra_key,
              needs_recording=True,
              doc="Per unit, the Features view's first click (its spikes and its nearest "
                  "units' background spikes on its PCA basis), computed ahead."))


class FeatureStore:
    """A loaded ``feature_projections`` result that seeds a :class:`~.curated_features.
    FeatureMemo` (see :func:`.curated_features.project`)."""

    def __init__(self, key: str, arrays: dict, attrs: dict, params: dict, unit_ids):
        self.key = key
        self.arrays = arrays
        self.attrs = attrs
        self.params = params
        self._index = {id_key(u): i for i, u in enumerate(list(unit_ids))}
        self._ids = list(unit_ids)

    def seed_memo(self, memo, kind, basis_key, unit_id, fg: dict, bg: dict, keys: dict) -> bool:
        """Put the stored basis, ``unit_id``'s projections and those of its stored
        background units that ``bg`` asks for (same spikes) into ``memo``; False when the
        request is not the one stored (other channels, components, seed or inputs)."""
        a = self.arrays
        i = self._index.get(id_key(unit_id))
        _, channels, _, n_components, seed = basis_key
        if i is None or not a["done"][i] or kind != self.attrs.get("kind") or \
                n_components != self.params["n_components"] or seed != self.params["seed"]:
            return False
        stored = np.asarray(a["channels"][i])
        if tuple(stored[stored >= 0].tolist()) != tuple(channels):
            return False
        rank = int(a["basis_rank"][i])
        memo.put(("basis", basis_key), (np.array(a["basis_mean"][i]),
                                         np.array(a["basis_axes"][i, :rank])))
        values = np.array(a["features"][fg[unit_id]])
        values.flags.writeable = False
        memo.put(keys[unit_id], values)
        cap = int(a["background_cap"][i])
        width = a["background_units"].shape[1]
        for s, j in enumerate(np.asarray(a["background_units"][i]).tolist()):
            if j < 0:
                continue
            u = self._ids[j]
            key = (id_key(u), basis_key, cap)
            if u not in bg or keys.get(u) != key:
                continue
            lo, hi = a["background_offsets"][i * width + s:i * width + s + 2]
            if not np.array_equal(a["background_positions"][lo:hi], bg[u]):
                continue
            values = np.array(a["background_features"][lo:hi])
            values.flags.writeable = False
            memo.put(key, values)
        return True


def load_store(session, previous: FeatureStore | None = None) -> FeatureStore | None:
    """The session's ``feature_projections`` (default parameters) when computed (in memory
    or in the disk cache; nothing is computed), else None. ``previous`` is returned as it is
    when its key is still current."""
    if session.recording is None or session.sorting.num_spikes == 0:
        return None
    ctx = session.analysis.bound()
    params = ctx.params(NAME)
    key = ctx.key(NAME, params)
    if previous is not None and previous.key == key:
        return previous
    if not ctx.is_available(NAME):
        return None
    arrays, attrs = ctx.arrays(NAME)
    return FeatureStore(key, arrays, attrs, params, ctx.session.sorting.unit_ids.tolist())
