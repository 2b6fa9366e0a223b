"""Errors raised for bad input.

Every error about a file names the file, the field (array, key, column) and what was
expected, so that a user can fix the input without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path


class SpikevizError(Exception):
    """Base class of the errors spikeviz raises on purpose."""


class InputError(SpikevizError, ValueError):
    """A file, array or argument is not what spikeviz needs.

    ``path`` is the offending file (or None for in-memory input), ``field`` the array, key or
    column inside it.
    """

    def __init__(self, message: str, path: str | Path | None = None, field: str | None = None):
        self.path = None if path is None else Path(path)
        self.field = field
        self.message = message
        where = []
        if path is not None:
            where.append(str(path))
        if field:
            where.append(f"field {field!r}")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def at(self, path: str | Path) -> InputError:
        """The same error, said of ``path`` (for in-memory checks on data read from a file)."""
        return InputError(self.message, path=path, field=self.field)
