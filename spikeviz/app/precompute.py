"""``spikeviz precompute PATH``: compute every derived result once, with a progress bar."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings

LOG = logging.getLogger(__name__)

#: Results worth computing ahead beyond the default list: the Features view's first click of
#: every unit (a filtered read of the whole recording per unit when done on click).
AHEAD = ("feature_projections",)


class ProgressBar:
    """A one-line text progress bar on ``stream`` (redrawn in place on a terminal).

    Called as ``bar(name, fraction)``; a new name starts a new line. Off a terminal (logs,
    CI) it prints one line per finished step instead of redrawing. ``total_steps`` None: the
    number of steps is not known in advance (no ``[k/n]`` counter).
    """

    def __init__(self, total_steps: int | None, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.total = total_steps
        self.width = width
        self.done: list[str] = []
        self.current: str | None = None
        self.started = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, name: str, fraction: float) -> None:
        if name != self.current:
            self.current = name
            self.started = time.perf_counter()
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction >= 1.0:
            if name in self.done:
                return
            self.done.append(name)
        if self.tty:
            filled = round(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            elapsed = time.perf_counter() - self.started
            self.stream.write(f"\r{self._counter(fraction < 1.0)}{name:<22} [{bar}] "
                              f"{fraction:4.0%} {elapsed:6.1f} s")
            if fraction >= 1.0:
                self.stream.write("\n")
        elif fraction >= 1.0:
            elapsed = time.perf_counter() - self.started
            self.stream.write(f"{self._counter(False)}{name} done in {elapsed:.1f} s\n")
        self.stream.flush()

    def _counter(self, running: bool) -> str:
        if self.total is None:
            return ""
        return f"[{len(self.done) + running}/{self.total}] "


def run(session, names=None, jobs: int = 1, progress: bool = True, out=None) -> list[str]:
    """Precompute ``names`` (default: everything the session supports); print a summary."""
    from ..model.session import default_precompute

    out = out or sys.stdout
    if names:
        names = list(names)
    else:
        names = default_precompute(session)
        if session.recording is not None and session.sorting.num_spikes:
            names += [n for n in AHEAD if n not in names]
    session.n_jobs = max(int(jobs), 1)
    plan = session.analysis.plan(names)
    bar = ProgressBar(len(plan)) if progress and plan else None
    t0 = time.perf_counter()
    computed = session.precompute(names, progress=bar)
    cache = session.analysis.cache
    where = cache.folder if cache.folder is not None else "memory only (no disk cache)"
    reused = [n for n in names if n not in computed]
    print(f"{len(names)} results for {session.source or 'the session'} in "
          f"{time.perf_counter() - t0:.1f} s; cache: {where}", file=out)
    print(f"  computed: {', '.join(computed) or 'nothing'}", file=out)
    print(f"  already cached: {', '.join(reused) or 'nothing'}", file=out)
    return computed


def start_background(session, names=AHEAD, on_done=None) -> threading.Thread | None:
    """Compute ``names`` (default parameters) for ``session`` in a daemon thread at low CPU
    priority, without holding the session's Analysis lock (views keep reading other results
    meanwhile), and store them in its disk cache (in memory when it has none), where views
    find them. Returns the thread, or None when there is nothing to do (no recording, no
    spikes, already computed). ``on_done(error)`` is called at the end (error None on
    success). Call once after the server's warm-up."""
    from ..model import steps  # noqa: F401 (registers the results)

    if session.recording is None or session.sorting.num_spikes == 0:
        return None
    todo = [n for n in names if not session.analysis.is_available(n)]
    if not todo:
        return None
    thread = threading.Thread(target=_background, args=(session, todo, on_done),
                              name="spikeviz-precompute", daemon=True)
    thread.start()
    return thread


def _background(session, names, on_done) -> None:
    error = None
    try:
        try:  # Linux: this thread only, below the threads serving clicks
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        for name in names:
            t0 = time.perf_counter()
            compute_unlocked(session, name)
            LOG.info("precomputed %s in %.1f s", name, time.perf_counter() - t0)
    except Exception as err:  # reported, never raised in a server thread
        error = err
        warnings.warn(f"background precompute failed: {err}", stacklevel=1)
    if on_done is not None:
        on_done(error)


def compute_unlocked(session, name: str, **given) -> None:
    """Compute the result ``name`` and store it in the session's disk cache (in memory when it
    has none) without holding the Analysis lock during the computation (its dependencies are
    read or computed first, as usual). Nothing happens when it is already available."""
    analysis = session.analysis
    ctx = analysis.bound()
    params = ctx.params(name, **given)
    if ctx.is_available(name, **params):
        return
    step = ctx.step(name)
    deps = {dep: ctx.arrays(dep, **dep_params)
            for dep, dep_params in step.depends(ctx, params).items()}
    key = ctx.key(name, params)
    arrays, attrs = step.run(ctx, params, deps)
    if not ctx.cache.store(name, key, arrays, attrs,
                           {"params": params, "source": ctx.session.source}):
        analysis.store(name, arrays, attrs, **params)
