"""Lazy, cached derived results of a Session (templates, amplitudes, metrics, ...).

``Analysis`` resolves a result by name and parameters: it builds a key from the step's name and
version, its full parameters, the sorting's spike hash, the recording's fingerprint (for steps
that read traces) and the keys of the results it depends on. It then looks in memory, then on
disk (:class:`~spikeviz.model.cache.DiskCache`), and only computes on a miss. The steps
themselves live in :mod:`spikeviz.model.steps`; the numeric work is in :mod:`spikeviz.compute`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..compute.signal import DEFAULT_BAND_HZ, filtered_reader
from ..errors import InputError
from .cache import DiskCache, hash_json


@dataclass(frozen=True)
class Step:
    """One derived result: how to compute it, what it depends on, how to present it.

    ``run(ctx, params, deps) -> (arrays, attrs)``: ``deps`` maps dependency names to their
    ``(arrays, attrs)``. ``depends(ctx, params) -> {name: params}`` names the dependencies
    (``ctx`` is the Analysis, so a step can depend on what the session has).
    ``wrap(ctx, arrays, attrs, params)`` builds the public object (Templates, DataFrame, ...).
    ``extra_key(ctx, params)``: anything else the result depends on (JSON-able) that the key
    must include. ``open_params``: extra keyword parameters are accepted and passed through
    (quality metrics' per-metric options).
    """

    name: str
    version: int
    defaults: dict
    run: Callable
    depends: Callable = lambda ctx, params: {}
    wrap: Callable = lambda ctx, arrays, attrs, params: arrays
    extra_key: Callable = lambda ctx, params: None
    needs_recording: bool = False
    open_params: bool = False
    doc: str = ""


STEPS: dict[str, Step] = {}


@dataclass(frozen=True)
class _Inputs:
    """What results are computed from, fixed for the length of one request."""

    sorting: object
    recording: object
    channel_locations_um: object
    source: str
    filter_band_hz: object


def register(step: Step) -> Step:
    STEPS[step.name] = step
    return step


def _normalise(value):
    if isinstance(value, tuple | list):
        return [_normalise(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


@dataclass
class Analysis:
    """Derived results of one session; see the module docstring.

    ``computed`` lists the step names actually computed by this object (cache misses), in
    order; ``cache.hits`` lists those read from disk.
    """

    session: object
    cache: DiskCache
    n_jobs: int = 1
    progress: Callable | None = None
    computed: list = field(default_factory=list)
    _memory: dict = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- keys -------------------------------------------------------------------------------
    def step(self, name: str) -> Step:
        try:
            return STEPS[name]
        except KeyError:
            raise InputError(f"unknown result {name!r}; known: {', '.join(sorted(STEPS))}",
                             field="name") from None

    def params(self, name: str, **given) -> dict:
        """The step's full parameters: defaults overridden by ``given`` (checked)."""
        step = self.step(name)
        unknown = set(given) - set(step.defaults)
        if unknown and not step.open_params:
            raise InputError(f"{name} takes no parameter {', '.join(sorted(unknown))}; it "
                             f"takes {', '.join(sorted(step.defaults)) or 'none'}",
                             field=sorted(unknown)[0])
        out = dict(step.defaults)
        for k, v in given.items():
            default = step.defaults.get(k)
            if isinstance(default, float) and isinstance(v, int | np.integer) \
                    and not isinstance(v, bool | np.bool_):
                v = float(v)  # window_ms=50 and window_ms=50.0 are one result
            out[k] = v
        return {k: _normalise(v) for k, v in sorted(out.items())}

    def key(self, name: str, params: dict) -> str:
        step = self.step(name)
        session = self.session
        inputs = {"step": name, "version": step.version, "params": params,
                  "spikes": session.sorting.spikes_hash(),
                  "num_samples": (session.recording.num_samples if session.recording is not None
                                  else session.sorting.num_samples),
                  "deps": {dep: self.key(dep, self.params(dep, **dep_params))
                           for dep, dep_params in sorted(step.depends(self, params).items())},
                  "extra": step.extra_key(self, params)}
        if step.needs_recording:
            inputs["recording"] = self._recording().fingerprint()
            inputs["channel_locations_um"] = session.channel_locations_um
            inputs["filter_band_hz"] = self.filter_band_hz()
        return hash_json(inputs)

    def _recording(self):
        if self.session.recording is None:
            raise InputError("this result needs the raw recording; load the session with "
                             "recording=PATH (--recording RAW)", path=self.session.source or None,
                             field="recording")
        return self.session.recording

    # -- access -----------------------------------------------------------------------------
    def arrays(self, name: str, **given) -> tuple[dict, dict]:
        """``(arrays, attrs)`` of a result (read-only arrays), computing it if needed."""
        ctx = self.bound()
        return ctx._resolve(name, ctx.params(name, **given))

    def bound(self) -> Analysis:
        """This Analysis bound to a snapshot of the session's inputs (sorting, recording,
        geometry, filter), sharing its memory, cache and lock: a request computes its key and
        its result from the same inputs even if the session changes meanwhile."""
        s = self.session
        if isinstance(s, _Inputs):
            return self
        snapshot = _Inputs(sorting=s.sorting, recording=s.recording,
                           channel_locations_um=s.channel_locations_um, source=s.source,
                           filter_band_hz=s.filter_band_hz)
        return dataclasses.replace(self, session=snapshot)

    def get(self, name: str, **given):
        """The public object of a result (Templates, DataFrame, arrays, ...).

        Arrays are read-only; tables are copies, so callers may change them freely.
        """
        ctx = self.bound()
        params = ctx.params(name, **given)
        key = ctx.key(name, params)
        wrapped = self._memory.get(("wrapped", key))  # a hit does not wait for running work
        if wrapped is None:
            with self._lock:
                wrapped = self._memory.get(("wrapped", key))
                if wrapped is None:
                    arrays, attrs = ctx._resolve(name, params, key)
                    wrapped = ctx.step(name).wrap(ctx, arrays, attrs, params)
                    self._memory[("wrapped", key)] = wrapped
        return wrapped.copy() if isinstance(wrapped, pd.DataFrame | pd.Series) else wrapped

    def store(self, name: str, arrays: dict, attrs: dict | None = None, **given) -> str:
        """Seed the result ``name`` for parameters ``given`` with values computed elsewhere
        (e.g. a SpikeInterface SortingAnalyzer's extensions); returns its key.

        ``arrays``/``attrs`` must have the layout the step's ``run`` returns. The values are
        kept in memory only (not written to the disk cache) and read-only; later requests
        with these parameters, and results that depend on them, use them instead of
        computing. The caller vouches that they are what the step would compute.
        """
        ctx = self.bound()
        params = ctx.params(name, **given)
        if ctx.step(name).needs_recording and ctx.session.recording is None:
            raise InputError(f"{name} needs a recording; this session has none",
                             field="recording")
        frozen = {}
        for k, v in arrays.items():
            if isinstance(v, np.ndarray):
                v = v.view()
                v.setflags(write=False)
            frozen[k] = v
        key = ctx.key(name, params)
        with self._lock:
            self._memory[key] = (frozen, dict(attrs or {}))
            self._memory.pop(("wrapped", key), None)
        return key

    def is_available(self, name: str, **given) -> bool:
        """True if the result is in memory or in a trustworthy disk entry (nothing computed)."""
        ctx = self.bound()
        params = ctx.params(name, **given)
        if ctx.step(name).needs_recording and ctx.session.recording is None:
            return False
        key = ctx.key(name, params)
        return key in self._memory or self.cache.load(name, key, count=False) is not None

    def plan(self, names) -> list[str]:
        """The steps that computing ``names`` (default parameters) would run, in order:
        dependencies first, skipping what is in memory or on disk."""
        if not isinstance(self.session, _Inputs):
            return self.bound().plan(names)
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str, params: dict) -> None:
            key = self.key(name, params)
            if key in seen:
                return
            seen.add(key)
            if key in self._memory or self.cache.load(name, key, count=False) is not None:
                return
            for dep, dep_params in self.step(name).depends(self, params).items():
                visit(dep, self.params(dep, **dep_params))
            order.append(name)

        for name in names:
            visit(name, self.params(name))
        return order

    def _resolve(self, name: str, params: dict, key: str | None = None) -> tuple[dict, dict]:
        step = self.step(name)
        key = key or self.key(name, params)
        with self._lock:
            if key in self._memory:
                return self._memory[key]
            found = self.cache.load(name, key)
            if found is None:
                deps = {dep: self._resolve(dep, self.params(dep, **dep_params))
                        for dep, dep_params in step.depends(self, params).items()}
                if self.progress is not None:
                    self.progress(name, 0.0)
                arrays, attrs = step.run(self, params, deps)
                self.computed.append(name)
                stored = self.cache.store(name, key, arrays, attrs,
                                          {"params": params, "source": self.session.source})
                # the stored copy as read-only memmaps: no RAM kept, no caller can alter it
                found = self.cache.load(name, key, count=False) if stored else None
                if found is None:
                    for array in arrays.values():
                        if isinstance(array, np.ndarray):
                            array.setflags(write=False)
                    found = (arrays, attrs)
                if self.progress is not None:
                    self.progress(name, 1.0)
            self._memory[key] = found
            return found

    def forget(self) -> None:
        """Drop the in-memory copies (the disk cache stays)."""
        with self._lock:
            self._memory.clear()

    # -- helpers for steps ------------------------------------------------------------------
    def filter_band_hz(self) -> tuple | None:
        """The band (Hz) traces are filtered to before any computation, or None."""
        band = self.session.filter_band_hz
        if isinstance(band, str) and band == "auto":
            return None if self._recording().is_filtered else tuple(DEFAULT_BAND_HZ)
        return None if band is None else tuple(float(b) if b is not None else None
                                               for b in band)

    def scaling(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (gains, offsets) to apply to what :meth:`reader` returns."""
        rec = self._recording()
        if self.filter_band_hz() is not None:  # the filtered reader already gives µV
            return (np.ones(rec.num_channels, np.float32),
                    np.zeros(rec.num_channels, np.float32))
        return rec.gains_to_uv.astype(np.float32), rec.offsets_to_uv.astype(np.float32)

    def reader(self, name: str = ""):
        """``read(start, end)`` over the recording (filtered when :meth:`filter_band_hz` is
        set), reporting progress by sample position; scale with :meth:`scaling`."""
        recording = self._recording()
        total = max(recording.num_samples, 1)

        def read_raw(start_sample: int, end_sample: int):
            if self.progress is not None and name:
                self.progress(name, min(end_sample / total, 0.999))
            return recording.traces(int(start_sample), int(end_sample), scaled=False)

        band = self.filter_band_hz()
        if band is None:
            return read_raw
        return filtered_reader(read_raw, recording.num_samples, recording.sampling_frequency,
                               recording.gains_to_uv, recording.offsets_to_uv, band_hz=band)
