"""Disk cache of derived results, keyed by a hash of everything they depend on.

An entry is a folder ``<cache>/<name>-<key[:16]>/`` holding one ``.npy`` per array and a
``meta.json`` with the full key, the parameters, the input fingerprints and each array's dtype
and shape. It is written under a temporary name and renamed into place, so a crash leaves no
half-written entry. On reading, the entry is trusted only if its stored key equals the key
asked for and every array has the recorded dtype and shape; otherwise it is treated as missing
(and replaced when recomputed). Arrays are opened as read-only memmaps, so large results
(per-spike amplitudes, snippets) cost no memory until used; a freshly computed result is
stored, then reopened the same way. ``allow_pickle`` is never enabled.

Where the cache lives (:func:`cache_folder_for`): ``<folder>/.spikeviz/`` for a folder source
(Phy), ``<parent>/.spikeviz/<file name>/`` for a file source, or, when that place is not
writable, ``$SPIKEVIZ_CACHE_DIR`` (default ``$XDG_CACHE_HOME/spikeviz`` or
``~/.cache/spikeviz``) under a hash of the source's absolute path. In-memory sessions have no
disk cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
_HASH_BLOCK = 64 << 20  # bytes hashed per thread task


def hash_arrays(*arrays: np.ndarray) -> str:
    """sha256 (hex) of the arrays' dtypes, shapes and bytes; large arrays hashed in parallel.

    Each array is cut into 64 MB blocks hashed on two threads (hashlib releases the GIL), and
    the block digests are hashed in order: about 0.35 s per GB on two cores.
    """
    top = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        top.update(f"{array.dtype.str}{array.shape}".encode())
        flat = array.reshape(-1).view(np.uint8) if array.size else np.zeros(0, np.uint8)
        blocks = [flat[i:i + _HASH_BLOCK] for i in range(0, flat.size, _HASH_BLOCK)]
        if len(blocks) > 1:
            with ThreadPoolExecutor(2) as pool:
                digests = list(pool.map(lambda b: hashlib.sha256(memoryview(b)).digest(),
                                        blocks))
        else:
            digests = [hashlib.sha256(memoryview(b)).digest() for b in blocks]
        for digest in digests:
            top.update(digest)
    return top.hexdigest()


def hash_json(value) -> str:
    """sha256 (hex) of a JSON-serialisable value (keys sorted)."""
    text = json.dumps(value, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def user_cache_root() -> Path:
    """``$SPIKEVIZ_CACHE_DIR``, else ``$XDG_CACHE_HOME/spikeviz``, else ``~/.cache/spikeviz``."""
    if os.environ.get("SPIKEVIZ_CACHE_DIR"):
        return Path(os.environ["SPIKEVIZ_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spikeviz"


def _writable(folder: Path) -> bool:
    """True if ``folder`` exists (or can be created) and accepts new files."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def cache_folder_for(source: str | os.PathLike | None) -> Path | None:
    """Where the derived results of a session loaded from ``source`` are kept (None: no disk)."""
    if not source:
        return None
    source = Path(source).expanduser().resolve()
    if not source.exists():
        return None
    local = source / ".spikeviz" if source.is_dir() else \
        source.parent / ".spikeviz" / source.name
    if _writable(local):
        return local
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:20]
    return user_cache_root() / f"{source.name}-{digest}"


class DiskCache:
    """Entries ``name -> arrays + attrs`` under ``folder``; see the module docstring.

    ``folder=None`` keeps nothing on disk (every :meth:`load` misses). ``hits``/``writes``
    count what happened, for tests and for ``spikeviz precompute``.
    """

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = None if folder is None else Path(folder)
        self.hits: list[str] = []
        self.writes: list[str] = []
        self._lock = threading.Lock()

    def _entry(self, name: str, key: str) -> Path:
        return self.folder / f"{name}-{key[:16]}"

    def load(self, name: str, key: str, count: bool = True
             ) -> tuple[dict[str, np.ndarray], dict] | None:
        """The arrays and attrs stored for (name, key), or None when absent or untrustworthy.

        ``count=False``: a look that is not recorded in :attr:`hits`."""
        if self.folder is None:
            return None
        entry = self._entry(name, key)
        try:
            meta = json.loads((entry / "meta.json").read_text())
            if meta.get("key") != key or meta.get("format_version") != FORMAT_VERSION:
                return None
            arrays = {}
            for field, spec in meta["arrays"].items():
                array = np.load(entry / f"{field}.npy", mmap_mode="r", allow_pickle=False)
                if array.dtype.str != spec["dtype"] or list(array.shape) != spec["shape"]:
                    return None
                arrays[field] = array
        except Exception:  # any damage (truncated file, odd JSON) means: not in the cache
            return None
        if count:
            with self._lock:
                self.hits.append(name)
        return arrays, meta.get("attrs", {})

    def store(self, name: str, key: str, arrays: dict[str, np.ndarray], attrs: dict,
              description: dict) -> bool:
        """Write an entry atomically; returns False (with a warning) if the disk refuses."""
        if self.folder is None:
            return False
        entry = self._entry(name, key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp",
                                        dir=self.folder))
        except OSError as err:
            warnings.warn(f"cannot write the cache in {self.folder}: {err}", stacklevel=3)
            return False
        try:
            specs = {}
            for field, array in arrays.items():
                array = np.asarray(array)
                if array.dtype.hasobject:
                    raise TypeError(f"cache entry {name}.{field} has an object dtype")
                with open(tmp / f"{field}.npy", "wb") as f:
                    np.save(f, array, allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
                specs[field] = {"dtype": array.dtype.str, "shape": list(array.shape)}
            meta = {"format_version": FORMAT_VERSION, "name": name, "key": key,
                    "arrays": specs, "attrs": attrs, "inputs": description}
            with open(tmp / "meta.json", "w") as f:
                f.write(json.dumps(meta, indent=1, default=_json_default))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o755)
            if self.load(name, key, count=False) is not None:
                pass  # another writer stored the same result meanwhile: keep theirs
            else:
                if entry.exists():
                    old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.old-", dir=self.folder))
                    os.replace(entry, old / "entry")
                    shutil.rmtree(old, ignore_errors=True)
                os.replace(tmp, entry)
        except OSError as err:
            warnings.warn(f"cannot write the cache entry {entry}: {err}", stacklevel=3)
            return False
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        with self._lock:
            self.writes.append(name)
        return True

    def clear(self) -> None:
        """Delete every entry (the folder itself stays)."""
        if self.folder is None or not self.folder.is_dir():
            return
        for entry in self.folder.iterdir():
            if entry.is_dir() and (entry / "meta.json").exists():
                shutil.rmtree(entry, ignore_errors=True)

    def __repr__(self) -> str:
        return f"DiskCache({self.folder})"
