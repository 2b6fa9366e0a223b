"""``spikeviz precompute PATH``: compute every derived result once, with a progress bar."""

from __future__ import annotations

import sys
import time


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
    names = list(names) if names else default_precompute(session)
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
