"""The paths a server was started with: nothing outside them is ever opened.

A server (``spikeviz serve PATH``, ``panel serve apps/curate.py --args PATH``) loads its
session from the command line, once, before any browser connects; no URL query parameter,
cookie or widget value names a file. Anything in the app that has to turn a user-supplied
string into a path goes through :meth:`Roots.resolve`, which follows ``..`` and symbolic
links first and refuses any result outside the started roots (a root that is a file allows
only that file; a folder allows what lies inside it).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError


def _real(path) -> Path:
    try:
        return Path(os.path.realpath(os.fspath(path)))
    except (TypeError, ValueError) as err:  # not a path, or an embedded NUL byte
        raise InputError(f"not a usable path: {path!r} ({err})", field="path") from None


class Roots:
    """``Roots(paths)``: the files and folders a server may open (after resolving links)."""

    def __init__(self, paths):
        paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        if not paths:
            raise InputError("a server needs at least one root path", field="roots")
        self.paths: tuple[Path, ...] = tuple(_real(p) for p in paths)

    def allows(self, path) -> bool:
        """Whether ``path`` (already absolute or not) resolves inside a root."""
        try:
            self.resolve(path)
        except InputError:
            return False
        return True

    def resolve(self, path) -> Path:
        """``path`` with links and ``..`` resolved; InputError unless it lies inside a root.

        A relative ``path`` is taken relative to the first root (its folder, when that root
        is a file), never to the server's working directory.
        """
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise InputError(f"expected a path, got {path!r}", field="path")
        candidate = Path(os.fspath(path))
        if not candidate.is_absolute():
            base = self.paths[0] if self.paths[0].is_dir() else self.paths[0].parent
            candidate = base / candidate
        real = _real(candidate)
        for root in self.paths:
            if real == root or (root.is_dir() and real.is_relative_to(root)):
                return real
        raise InputError(f"{path} is outside the paths this server was started with "
                         f"({', '.join(str(p) for p in self.paths)})", field="path")

    def __repr__(self) -> str:
        return f"Roots({[str(p) for p in self.paths]!r})"
