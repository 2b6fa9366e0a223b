"""PCA features of spikes for :meth:`CuratedAnalysis.spike_features`, memoised per unit.

Split from :mod:`spikeviz.model.curated` to keep modules short.

- **Channels**: the first unit's ``FEATURE_CHANNELS`` channels of largest template
  peak-to-peak (the host's ``_best_channels``).
- **Inputs per spike**: its filtered snippet (µV) on those channels, flattened; or, when the
  session already holds ``principal_components`` with ``all_spikes=True`` and the original
  unit of every spike involved has all those channels among its sparse channels, the
  session's per-channel PCs of the spike on those channels (no trace read at all).
- **Basis**: a joint PCA (centred SVD; each axis' largest loading positive) fitted on up to
  ``FIT_SPIKES`` spikes drawn uniformly (``seed``) from every spike of the *foreground* units
  (all of them when they have fewer). It is a function of (channels, foreground unit ids,
  n_components, input kind) only, memoised under that key.
- **Foreground** units: every spike is projected (so a lasso selects among all of them),
  snippets read ``PROJECTION_CHUNK`` spikes at a time. **Background** units: at most
  ``max_spikes_per_unit`` of their spikes (seeded, per unit) are read and projected.
- Projections are memoised per (unit id, basis key[, subsample]): a unit's spikes never change
  under a given id (Curation never reuses ids), so a repeated click reads nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from ..compute import features, signal
from . import curated_units as cu
from .ids import id_key

#: Channels of the first unit the features are read on.
FEATURE_CHANNELS = 4
#: At most this many foreground spikes (drawn with the seed) fit the PCA basis.
FIT_SPIKES = 5_000
#: Default cap of spikes read per background unit.
BACKGROUND_SPIKES_PER_UNIT = 2_000
#: Spikes whose snippets are read and projected at once.
PROJECTION_CHUNK = 20_000
#: Memo of projections and bases kept (bytes), least recently used dropped first.
MEMO_BYTES = 256 * 2**20


class FeatureMemo:
    """Thread-safe LRU of arrays (bounded by total bytes)."""

    def __init__(self, max_bytes: int = MEMO_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        size = sum(np.asarray(v).nbytes for v in value) if isinstance(value, tuple) \
            else np.asarray(value).nbytes
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= sum(np.asarray(v).nbytes for v in old) \
                    if isinstance(old, tuple) else np.asarray(old).nbytes

    def __len__(self) -> int:
        return len(self._items)


def fit_basis(flat: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean float64 (d,), axes float64 (k, d))`` of the rows of ``flat``: the leading
    eigenvectors of the scatter matrix of the centred rows (the right singular vectors of a
    centred SVD, which costs far more), each signed so that its largest loading is
    positive. At most ``min(n, d)`` axes."""
    flat = np.asarray(flat, dtype=np.float64)
    mean = flat.mean(axis=0) if flat.shape[0] else np.zeros(flat.shape[1])
    if flat.shape[0] == 0:
        return mean, np.zeros((0, flat.shape[1]))
    centred = flat - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)
    keep = min(n_components, flat.shape[0], flat.shape[1])
    axes = vectors[:, ::-1][:, :keep].T
    signs = np.sign(axes[np.arange(axes.shape[0]), np.abs(axes).argmax(axis=1)])
    return mean, axes * np.where(signs == 0, 1.0, signs)[:, None]


def project_rows(flat: np.ndarray, basis, n_components: int) -> np.ndarray:
    """Rows of ``flat`` on the basis: float32 (n, n_components), 0 past the fitted axes."""
    mean, axes = basis
    out = np.zeros((flat.shape[0], n_components), np.float32)
    if flat.shape[0] and axes.shape[0]:
        out[:, :axes.shape[0]] = (np.asarray(flat, np.float64) - mean) @ axes.T
    return out


class _Inputs:
    """The per-spike input vectors (flattened snippets or the session's PCs) of one call.

    ``ctx``: the session's Analysis bound to one snapshot of its inputs (``analysis.bound()``).
    """

    def __init__(self, ctx, channels: np.ndarray, original_units: np.ndarray):
        self.ctx = ctx
        self.channels = channels
        self.pcs = _session_pcs(ctx, channels, original_units)
        self.kind = "snippets" if self.pcs is None else "pcs"
        if self.pcs is None:
            nbefore, nafter = cu.window_samples(ctx.session)
            self.width = (nbefore + nafter) * channels.size
        else:
            self.width = self.pcs[0].shape[1] * channels.size

    def read(self, orig: np.ndarray) -> np.ndarray:
        """(n, d) inputs of the spikes at original positions ``orig`` (ascending)."""
        if self.pcs is not None:
            projections, slots = self.pcs
            units = self.ctx.session.sorting.unit_index[orig]
            block = np.asarray(projections[orig], dtype=np.float32)  # (n, pcs, slots)
            rows = slots[units]  # (n, channels): slot of each feature channel
            picked = np.take_along_axis(block, rows[:, None, :], axis=2)
            return picked.reshape(orig.size, -1)
        samples = np.asarray(self.ctx.session.sorting.sample_index[orig])
        return read_snippets(self.ctx, samples, self.channels).reshape(orig.size, -1)


def read_snippets(ctx, samples: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """(n, samples, channels) float32 µV snippets on the channel positions ``channels``: bit
    for bit :func:`.curated_units.snippets` (the session's filter, window by window with its
    margins, in chunks of spike time), read through one fused kernel per window."""
    session = ctx.session
    rec = session.recording
    nbefore, nafter = cu.window_samples(session)
    channels = np.asarray(channels, dtype=np.int64)
    read_raw, gains, offsets = cu.raw_channel_reader(rec, channels)
    band = ctx.filter_band_hz()
    if band is None:
        return features.filtered_snippets(read_raw, rec.num_samples, samples, nbefore, nafter,
                                          gains.astype(np.float32), offsets.astype(np.float32))
    # filtered_reader's filter and margin (the test against curated_units.snippets guards it)
    sos = signal.butter_sos(rec.sampling_frequency, band, signal.DEFAULT_ORDER)
    margin_ms = signal.MARGIN_PERIODS * 1000.0 / float(band[0])
    margin = round(margin_ms * rec.sampling_frequency / 1000.0)
    return features.filtered_snippets(read_raw, rec.num_samples, samples, nbefore, nafter,
                                      gains, offsets, sos=sos, margin_samples=margin)


def _session_pcs(ctx, channels, original_units):
    """``(projections, slot table)`` when the session holds every spike's PCs and each of
    ``original_units`` has all ``channels`` among its PC channels; else None."""
    session = ctx.session
    if not ctx.is_available("principal_components", all_spikes=True):
        return None
    pcs = ctx.arrays("principal_components", all_spikes=True)[0]
    unit_channels = np.asarray(pcs["channel_indices"])
    if unit_channels.ndim != 2 or np.asarray(pcs["spike_indices"]).size != \
            session.sorting.num_spikes:
        return None
    slots = np.full((unit_channels.shape[0], channels.size), -1, np.int64)
    for k, ch in enumerate(channels.tolist()):
        unit, slot = np.nonzero(unit_channels == ch)
        slots[unit, k] = slot
    if (slots[np.asarray(original_units, np.int64)] < 0).any():
        return None
    return pcs["projections"], np.maximum(slots, 0)


def best_channels(template: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """The ``FEATURE_CHANNELS`` positions among ``channels`` of largest peak-to-peak of
    ``template`` (samples, all channels), ascending (ties: the first listed)."""
    channels = np.asarray(channels, dtype=np.int64)
    ptp = np.ptp(np.asarray(template)[:, channels], axis=0)
    order = np.argsort(-ptp, kind="stable")[:FEATURE_CHANNELS]
    return np.sort(channels[order])


def background_sample(orig: np.ndarray, max_spikes: int, seed: int) -> np.ndarray:
    """At most ``max_spikes`` of a background unit's original positions, drawn with ``seed``
    (ascending)."""
    if orig.size > max_spikes:
        rng = np.random.default_rng(seed)
        orig = orig[np.sort(rng.choice(orig.size, max_spikes, replace=False))]
    return orig


def spike_features(analysis, sorting, kept, ids: list, n_components: int, background: list,
                   max_spikes_per_unit: int, seed: int):
    """``(original positions int64 ascending, features float32 (n, k), channel positions)``
    of every spike of ``ids`` and a seeded subsample of each ``background`` unit."""
    channels = analysis._best_channels(ids[0], sorting, kept)
    fg = {u: analysis._positions(sorting, kept, u)[1] for u in ids}
    bg = {u: background_sample(analysis._positions(sorting, kept, u)[1], max_spikes_per_unit,
                               seed) for u in background}
    stored = None
    if len(ids) == 1 and analysis._orig_index(ids[0]) is not None:
        stored = analysis._feature_store()
    orig, values, _ = project(analysis.session.analysis.bound(), analysis._feature_memo,
                              channels, fg, bg, n_components, max_spikes_per_unit, seed, stored)
    return orig, values, channels


def project(ctx, memo: FeatureMemo, channels, fg: dict, bg: dict, n_components: int,
            max_spikes_per_unit: int, seed: int, stored=None):
    """``(original positions ascending, features, basis key)`` of the spikes ``fg`` (unit id ->
    original positions, every spike) and ``bg`` (their background samples) on the basis of ``fg``,
    memoised in ``memo``; ``stored``: precomputed results to seed the memo from (an object
    with ``seed_memo(memo, kind, basis_key, unit_id, fg, bg, keys)``)."""
    ids = list(fg)
    every = np.concatenate([*fg.values(), *bg.values(), np.zeros(0, np.int64)])
    inputs = _Inputs(ctx, channels, np.unique(ctx.session.sorting.unit_index[every]))
    basis_key = (inputs.kind, tuple(channels.tolist()), tuple(id_key(u) for u in ids),
                 int(n_components), int(seed))
    keys = {u: (id_key(u), basis_key) for u in fg}
    keys.update({u: (id_key(u), basis_key, int(max_spikes_per_unit)) for u in bg})
    found = {u: memo.get(keys[u]) for u in keys}
    if stored is not None and any(v is None for v in found.values()):
        stored.seed_memo(memo, inputs.kind, basis_key, ids[0], fg, bg, keys)
        found = {u: memo.get(keys[u]) for u in keys}
    todo = [u for u in keys if found[u] is None]
    basis = memo.get(("basis", basis_key))
    # one pass over the recording: every spike still to project, in time order
    rows = np.unique(np.concatenate([(fg | bg)[u] for u in todo] + [np.zeros(0, np.int64)]))
    data = None
    if basis is None:
        fit_rows = np.sort(np.concatenate(list(fg.values())))
        if fit_rows.size > FIT_SPIKES:
            rng = np.random.default_rng(seed)
            fit_rows = fit_rows[np.sort(rng.choice(fit_rows.size, FIT_SPIKES, replace=False))]
        if rows.size * inputs.width * 4 <= MEMO_BYTES and np.isin(fit_rows, rows).all():
            data = _read_chunked(inputs, rows)
            basis = fit_basis(data[np.searchsorted(rows, fit_rows)], int(n_components))
        else:
            basis = fit_basis(inputs.read(fit_rows), int(n_components))
        memo.put(("basis", basis_key), basis)
    if rows.size:
        projected = project_rows(data, basis, int(n_components)) if data is not None else \
            _project_chunked(inputs, rows, basis, int(n_components))
        for u in todo:
            values = projected[np.searchsorted(rows, (fg | bg)[u])]
            values.flags.writeable = False
            memo.put(keys[u], values)
            found[u] = values
    orig = np.concatenate([(fg | bg)[u] for u in keys])
    values = np.concatenate([found[u] for u in keys]).reshape(orig.size, int(n_components))
    order = np.argsort(orig, kind="stable")
    return orig[order], values[order], basis_key


def _read_chunked(inputs, rows: np.ndarray) -> np.ndarray:
    """(n, d) float32 inputs of ``rows`` (ascending), read PROJECTION_CHUNK at a time (chunks
    cover disjoint time spans: one pass over the recording in all)."""
    out = np.empty((rows.size, inputs.width), np.float32)
    for start in range(0, rows.size, PROJECTION_CHUNK):
        out[start:start + PROJECTION_CHUNK] = inputs.read(rows[start:start + PROJECTION_CHUNK])
    return out


def _project_chunked(inputs, rows, basis, n_components) -> np.ndarray:
    out = np.empty((rows.size, n_components), np.float32)
    for start in range(0, rows.size, PROJECTION_CHUNK):
        chunk = rows[start:start + PROJECTION_CHUNK]
        out[start:start + chunk.size] = project_rows(inputs.read(chunk), basis, n_components)
    return out
