"""Atomic writes: write under a temporary name beside the target, then rename.

A crash or an error leaves either the old target or nothing, never a half-written file. The
new data is flushed to disk (fsync) before the rename, and the folder holding the name after
it, so that a power loss does not leave an empty file under the target's name either.
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


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))  # Windows needs write access
    except PermissionError:  # a read-only file (copied with its mode): POSIX syncs it anyway
        if os.name == "nt":
            return
        fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where folders can be opened."""
    if os.name == "nt":
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder (EINVAL): nothing more to do
        pass
    finally:
        os.close(fd)


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
        fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
        fsync_folder(path.parent)
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
            if inner.is_file() and not inner.is_symlink():
                fsync_file(inner)
                if inner.stat().st_mode & 0o777 == 0o600:
                    os.chmod(inner, 0o666 & ~mask)
            elif inner.is_dir() and not inner.is_symlink():
                fsync_folder(inner)
        fsync_folder(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            fsync_folder(path.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
            fsync_folder(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
