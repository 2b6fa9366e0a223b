"""Atomic writes: write under a temporary name beside the target, then rename.

A crash or an error leaves either the old target or nothing, never a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise InputError("already exists; pass overwrite=True (--overwrite) to replace it",
                         path=path)
    if not path.parent.is_dir():
        raise InputError("the destination folder does not exist", path=path.parent)
    if not os.access(path.parent, os.W_OK):
        raise InputError("the destination folder is not writable", path=path.parent)


@contextlib.contextmanager
def atomic_file(path: str | Path, overwrite: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    ``suffix`` is kept on the temporary name for writers that insist on one (``np.savez``).
    """
    path = Path(path)
    check_target(path, overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it takes the place of ``path``."""
    path = Path(path)
    check_target(path, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        mask = _umask()
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700
        for inner in tmp.rglob("*"):
            if inner.is_file() and inner.stat().st_mode & 0o777 == 0o600:
                os.chmod(inner, 0o666 & ~mask)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
