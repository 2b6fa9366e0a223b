"""Session: a sorting, optionally its recording, and what is derived from them."""

from __future__ import annotations

import hashlib
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import param

from ..errors import InputError
from .analysis import Analysis
from .cache import DiskCache, _writable, cache_folder_for, user_cache_root
from .recording import Recording
from .sorting import Sorting

# Relative difference tolerated between the sorting's and the recording's sampling rates
# (SpikeGLX reports a calibrated rate such as 30000.27 Hz where params.py says 30000).
_RATE_TOLERANCE = 1e-3


# All-pairs correlograms cost units² x bins of int64; above this many units the precompute
# step leaves them to the views, which compute the selected units' on demand.
PRECOMPUTE_CCG_MAX_UNITS = 400


def default_precompute(session) -> list[str]:
    """What ``spikeviz precompute`` computes for ``session``."""
    names = ["firing_rates", "isi_histograms"]
    if session.sorting.num_units <= PRECOMPUTE_CCG_MAX_UNITS:
        names.append("correlograms")
    if session.recording is not None and session.sorting.num_spikes:
        names += ["noise_levels", "templates", "unit_peaks", "sparsity", "waveforms",
                  "spike_amplitudes",
                  "principal_components", "template_similarity", "merge_suggestions",
                  "feature_projections"]
        if session.channel_locations_um is not None:
            names.append("unit_locations")
    names.append("quality_metrics")
    return names


#: Builds a session's dashboard (``Session.show``); set by ``spikeviz/__init__.py`` so that the
#: model imports no UI code and ``import spikeviz`` loads no Panel.
dashboard_factory = None


class Session(param.Parameterized):
    """What one analysis works on: a Sorting, an optional Recording, derived results."""

    sorting = param.ClassSelector(class_=Sorting, doc="The spike sorting.")
    recording = param.ClassSelector(class_=Recording, default=None, allow_None=True,
                                    doc="Raw traces, when available.")
    source = param.String(default="", doc="Path the session was loaded from.")
    format = param.String(default="memory", doc="Format of the source (phy, npz, ...).")
    channel_ids = param.Array(default=None, allow_None=True, doc="""
        Channel ids of the probe; the recording's when there is one, else from the sorting's
        own files (e.g. Phy's channel_map.npy), else None.""")
    channel_locations_um = param.Array(default=None, allow_None=True,
                                       doc="(channels, 2) x/y in µm matching channel_ids.")
    results = param.Dict(default={}, doc="""
        Results read with the source, e.g. 'kilosort_templates' (Templates) from a Phy
        folder. Computed results come from :meth:`compute`.""")
    cache_dir = param.Parameter(default="auto", doc="""
        Where computed results are cached: 'auto' (a .spikeviz/ folder beside the source, or
        the user cache dir when that is read-only), a folder path, or None (memory only).""")
    filter_band_hz = param.Parameter(default="auto", doc="""
        Band (low, high) in Hz the traces are filtered to (zero-phase Butterworth, order 5)
        before templates, amplitudes, noise and PCA are computed; high=None for a high-pass.
        'auto': (300, 6000) unless the recording is already filtered (Phy's hp_filtered);
        None: the stored traces as they are. Part of every cache key.""")
    n_jobs = param.Integer(default=1, bounds=(1, None), doc="""
        Threads for chunked computations (results do not depend on it).""")

    def __init__(self, sorting: Sorting, recording: Recording | None = None, **params):
        if not isinstance(sorting, Sorting):
            raise InputError(f"expected a spikeviz Sorting, got {type(sorting).__name__}",
                             field="sorting")
        if recording is not None:
            if not isinstance(recording, Recording):
                raise InputError(f"expected a spikeviz Recording, got "
                                 f"{type(recording).__name__}", field="recording")
            rate_s, rate_r = sorting.sampling_frequency, recording.sampling_frequency
            if abs(rate_s - rate_r) > _RATE_TOLERANCE * rate_r:
                raise InputError(f"the sorting's sampling frequency ({rate_s:g} Hz) differs "
                                 f"from the recording's ({rate_r:g} Hz)",
                                 path=recording.source or None, field="sampling_frequency")
            if sorting.num_spikes and int(sorting.sample_index[-1]) >= recording.num_samples:
                raise InputError(f"the sorting has spikes up to sample "
                                 f"{int(sorting.sample_index[-1])} but the recording has only "
                                 f"{recording.num_samples} samples",
                                 path=recording.source or None, field="num_samples")
            if sorting.num_samples != recording.num_samples:
                sorting = sorting.with_num_samples(recording.num_samples)
            params.setdefault("channel_ids", recording.channel_ids)
            params.setdefault("channel_locations_um", recording.channel_locations_um)
        super().__init__(sorting=sorting, recording=recording, **params)
        self._analysis = None
        self._analysis_lock = threading.Lock()
        self._curation = None
        self._selection = None
        self._curation_lock = threading.RLock()

    # -- derived results -------------------------------------------------------------------
    @property
    def analysis(self) -> Analysis:
        """The lazy, cached derived results of this session (see :mod:`.analysis`)."""
        with self._analysis_lock:
            if self._analysis is None:
                from . import steps, steps_metrics  # noqa: F401 (registers the results)
                folder = cache_folder_for(self.source) if self.cache_dir == "auto" else \
                    self.cache_dir
                self._analysis = Analysis(self, DiskCache(folder), n_jobs=self.n_jobs)
            return self._analysis

    def compute(self, name: str, **params):
        """A derived result by name, computed on first use and cached (memory and disk).

        Names: ``templates``, ``median_templates``, ``unit_peaks``, ``waveforms``,
        ``noise_levels``, ``sparsity``, ``spike_amplitudes``, ``unit_locations``,
        ``principal_components``, ``correlograms``, ``isi_histograms``, ``firing_rates``,
        ``quality_metrics``, ``template_similarity``, ``merge_suggestions``,
        ``random_spikes``. Parameters are those of
        :data:`spikeviz.model.analysis.STEPS` ``[name].defaults``. Values computed from
        traces are in µV when the recording's gain is known, else in stored units.
        """
        self.analysis.n_jobs = self.n_jobs
        return self.analysis.get(name, **params)

    def precompute(self, names=None, progress=None) -> list[str]:
        """Compute (or find in the cache) the results the views need; returns what ran.

        ``names`` default: :func:`default_precompute` — what the views need: results that need
        traces only with a recording, all-pairs correlograms only up to
        ``PRECOMPUTE_CCG_MAX_UNITS`` units, no median templates. ``progress(name, fraction)``
        is called as work advances.
        """
        analysis = self.analysis
        analysis.n_jobs = self.n_jobs
        if names is None:
            names = default_precompute(self)
        before = len(analysis.computed)
        analysis.progress = progress
        try:
            for name in names:
                analysis.get(name)
        finally:
            analysis.progress = None
        return analysis.computed[before:]

    # -- curation ----------------------------------------------------------------------------
    def curation_log_path(self) -> Path | None:
        """Where :attr:`curation` keeps its log: ``<cache folder>/curation.json``.

        The cache folder is the one of :attr:`cache_dir` ('auto': a ``.spikeviz/`` folder
        beside the source, or the user cache dir when that is read-only; an explicit folder
        that cannot be written falls back to the user cache dir too). None (memory only)
        when ``cache_dir`` is None or the session has no source on disk.
        """
        if self.cache_dir is None:
            return None
        if isinstance(self.cache_dir, str) and self.cache_dir == "auto":
            folder = cache_folder_for(self.source)
        else:
            folder = Path(self.cache_dir).expanduser()
            if not _writable(folder):
                digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]
                folder = user_cache_root() / f"{folder.name}-{digest}"
        return None if folder is None else folder / "curation.json"

    @property
    def curation(self):
        """The curation of this session (one per Session, created on first use, shared).

        A :class:`~spikeviz.model.curation.Curation` of :attr:`sorting` whose log is
        :meth:`curation_log_path` (resumed when it exists). If the log folder cannot be
        created the curation is kept in memory only, with a warning. A log that belongs to
        other spikes (or cannot be read) is moved aside to ``curation.json.orphan-<time>``,
        with a warning, and a new curation starts: nothing is deleted. A log another
        Curation holds (another Session of the same folder, here or in another process: a
        notebook, ``spikeviz serve``) raises
        :class:`~spikeviz.model.curation_log.LogLockedError`, an InputError naming the
        holder; ``cache_dir=None`` curates in memory instead.
        """
        with self._curation_lock:
            if self._curation is None:
                self._curation = self._open_curation()
            return self._curation

    def _open_curation(self):
        from .curation import Curation
        from .curation_log import LogLockedError
        path = self.curation_log_path()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                fallback = user_cache_root() / \
                    f"{path.parent.name}-{hashlib.sha256(str(path).encode()).hexdigest()[:20]}"
                try:
                    fallback.mkdir(parents=True, exist_ok=True)
                    path = fallback / "curation.json"
                except OSError:
                    warnings.warn(f"cannot create {path.parent} ({err}): the curation is kept "
                                  f"in memory only", stacklevel=3)
                    path = None
        if path is None:
            return Curation(self.sorting)
        try:
            return Curation(self.sorting, log_path=path)
        except OSError as err:
            warnings.warn(f"cannot write the curation log {path} ({err}): the curation is "
                          f"kept in memory only", stacklevel=3)
            return Curation(self.sorting)
        except InputError as err:
            if isinstance(err, LogLockedError) or not path.exists():
                raise  # a log held by another writer is never moved aside
            aside = path.with_name(f"{path.name}.orphan-{time.strftime('%Y%m%d-%H%M%S')}")
            path.replace(aside)
            warnings.warn(f"the curation log {path} cannot be resumed ({err.message}); it was "
                          f"moved to {aside} and a new curation starts", stacklevel=3)
            return Curation(self.sorting, log_path=path)

    @property
    def selection(self):
        """The default Selection of this session, bound to :attr:`curation` (created on first
        use): every view built from the session alone shares it (notebooks)."""
        with self._curation_lock:
            if self._selection is None:
                from .selection import Selection
                self._selection = Selection.for_session(self, curation=self.curation)
            return self._selection

    @property
    def curated(self):
        """Derived results of the current curated sorting of :attr:`curation`
        (:func:`spikeviz.model.curated.curated_analysis`)."""
        from .curated import curated_analysis
        return curated_analysis(self, self.curation)

    def show(self, **params):
        """The curation dashboard of this session, inline in Jupyter (needs Panel).

        The dashboard uses :attr:`selection` and :attr:`curation`, so it stays linked to every
        view built from this session in the same notebook. Keyword arguments go to
        ``spikeviz.app.dashboard.Dashboard``.
        """
        if dashboard_factory is None:
            raise RuntimeError("no dashboard available: import spikeviz (the package) first")
        params.setdefault("selection", self.selection)
        return dashboard_factory(self, **params)

    @property
    def num_channels(self) -> int | None:
        return None if self.channel_ids is None else int(np.asarray(self.channel_ids).size)

    def info(self) -> dict:
        """Summary used by ``spikeviz info``: JSON-serialisable."""
        s = self.sorting
        labels = s.labels.value_counts().sort_index()
        return {
            "source": self.source,
            "format": self.format,
            "num_units": s.num_units,
            "num_spikes": s.num_spikes,
            "sampling_frequency": s.sampling_frequency,
            "duration_s": s.duration_s,
            "num_channels": self.num_channels,
            "has_recording": self.recording is not None,
            "labels": {str(k): int(v) for k, v in labels.items()},
            "unit_properties": [str(c) for c in s.unit_table.columns],
        }

    def __repr__(self) -> str:
        rec = repr(self.recording) if self.recording is not None else "no recording"
        return f"Session({self.format}: {self.sorting!r}, {rec})"

    __str__ = __repr__
