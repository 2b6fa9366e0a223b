"""The curation log on disk: one JSON document plus content-addressed ``.npy`` sidecars.

Layout, for a log at ``PATH`` (e.g. ``curation.json``)::

    PATH                 JSON document (rewritten atomically after every action)
    PATH.spikes/         one ``<sha256>.npy`` per split group: sorted int64 positions into
                         the *original* sorting's spike vector (written atomically, before
                         the document that names them; never pickled). Files the document
                         no longer names are removed after each save.
    PATH.lock            the lock file: whoever holds an exclusive ``flock`` on it may write
                         the log; it holds ``{"pid": .., "host": ..}`` of that holder. It is
                         never deleted (the OS drops the lock when the holder exits).

The document::

    {"format": "spikeviz-curation", "format_version": 1,
     "sorting": {"spikes_hash": ..., "num_spikes": ..., "num_units": ...,
                 "sampling_frequency": ...},
     "next_unit_id": 512,        # the next integer a new unit id is made from
     "position": 7,              # actions[:position] are applied; the rest can be redone
     "generation": 42,           # +1 on every save (absent in older logs: 0); a writer
                                 # refuses to save over a generation it did not write
     "actions": [{"op": "label", "unit_ids": [..], "label": "good"},
                 {"op": "tag" | "untag", "unit_ids": [..], "tags": [..]},
                 {"op": "merge", "unit_ids": [..], "new_unit_id": 512},
                 {"op": "split", "unit_id": 3, "new_unit_ids": [513, 514],
                  "groups": [{"file": "<sha256>.npy", "count": 1200}]},
                 {"op": "remove", "unit_ids": [..]}]}
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import socket
import warnings
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from ..errors import InputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:
    msvcrt = None

FORMAT = "spikeviz-curation"
FORMAT_VERSION = 1
OPS = ("label", "tag", "untag", "merge", "split", "remove")


def sidecar_folder(path: Path) -> Path:
    return path.with_name(path.name + ".spikes")


def array_name(positions: np.ndarray) -> str:
    data = np.ascontiguousarray(positions, dtype=np.int64)
    return hashlib.sha256(data.view(np.uint8)).hexdigest() + ".npy"


def write_group(path: Path, positions: np.ndarray) -> dict:
    """Write one split group's positions beside the log (idempotent); its JSON reference."""
    positions = np.ascontiguousarray(positions, dtype=np.int64)
    name = array_name(positions)
    folder = sidecar_folder(path)
    folder.mkdir(exist_ok=True)
    target = folder / name
    if not target.exists():
        with atomic_file(target, overwrite=True, suffix=".npy") as tmp:
            np.save(tmp, positions, allow_pickle=False)
    return {"file": name, "count": int(positions.size)}


def read_group(path: Path, ref, num_spikes: int, field: str) -> np.ndarray:
    """Load and check a split group referenced by the log at ``path``."""
    if not isinstance(ref, dict) or not isinstance(ref.get("file"), str) or \
            not isinstance(ref.get("count"), int):
        raise InputError("expected {'file': name, 'count': n}", path=path, field=field)
    name = ref["file"]
    if "/" in name or "\\" in name or not name.endswith(".npy"):
        raise InputError(f"bad spike file name {name!r}", path=path, field=field)
    file = sidecar_folder(path) / name
    try:
        positions = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the split's spikes: {error}", path=file,
                         field=field) from None
    if positions.dtype != np.int64 or positions.ndim != 1 or positions.size != ref["count"] \
            or array_name(positions) != name:
        raise InputError("the split's spike file is corrupt (content does not match its name)",
                         path=file, field=field)
    if positions.size and (positions[0] < 0 or positions[-1] >= num_spikes
                           or (np.diff(positions) <= 0).any()):
        raise InputError(f"spike positions must be sorted, unique, in [0, {num_spikes})",
                         path=file, field=field)
    return positions


def remove_unreferenced(path: Path, actions: list[dict]) -> None:
    """Delete the sidecar files that no action of the document names (done or undone).

    Call only after the document naming ``actions`` is in place, holding the log's lock.
    """
    keep = {g.get("file") for a in actions if a.get("op") == "split"
            for g in a.get("groups", ()) if isinstance(g, dict)}
    try:
        entries = list(os.scandir(sidecar_folder(path)))
    except OSError:
        return
    for entry in entries:
        if entry.name.endswith(".npy") and entry.name not in keep and \
                entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


_ACTIONS_TAIL = b', "actions": [\n'


def write_document(path: Path, document: dict) -> None:
    """Replace the log document atomically (the previous one survives any failure)."""
    head = {k: v for k, v in document.items() if k != "actions"}
    lines = [json.dumps(a, allow_nan=False) for a in document["actions"]]
    text = json.dumps(head, allow_nan=False)[:-1] + _ACTIONS_TAIL.decode() + \
        ",\n".join(lines) + "\n]}\n"
    data = text.encode()
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_bytes(data)


def read_document(path: Path, sorting_facts: dict) -> dict:
    """The checked document at ``path``; InputError naming the file and field otherwise."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the curation log: {error}", path=path) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"not a spikeviz curation log (expected format {FORMAT!r})",
                         path=path, field="format")
    if document.get("format_version") != FORMAT_VERSION:
        raise InputError(f"unsupported format_version {document.get('format_version')!r}; "
                         f"this spikeviz reads version {FORMAT_VERSION}", path=path,
                         field="format_version")
    facts = document.get("sorting")
    if not isinstance(facts, dict) or facts.get("spikes_hash") != sorting_facts["spikes_hash"]:
        got = facts.get("spikes_hash") if isinstance(facts, dict) else None
        raise InputError(
            f"this curation log belongs to another sorting (spikes_hash {str(got)[:12]}..., "
            f"the open sorting has {sorting_facts['spikes_hash'][:12]}...); it is never "
            f"applied to other spikes", path=path, field="sorting.spikes_hash")
    actions = document.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise InputError("expected a list of actions", path=path, field="actions")
    for i, action in enumerate(actions):
        if action.get("op") not in OPS:
            raise InputError(f"unknown op {action.get('op')!r}; expected one of {OPS}",
                             path=path, field=f"actions[{i}].op")
    position = document.get("position")
    if not isinstance(position, int) or isinstance(position, bool) or \
            not 0 <= position <= len(actions):
        raise InputError(f"position must be an integer in [0, {len(actions)}]", path=path,
                         field="position")
    next_id = document.get("next_unit_id")
    if not isinstance(next_id, int) or isinstance(next_id, bool):
        raise InputError("next_unit_id must be an integer", path=path, field="next_unit_id")
    generation = document.get("generation", 0)
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise InputError("generation must be a non-negative integer", path=path,
                         field="generation")
    return document


def read_generation(path: Path) -> int | None:
    """The ``generation`` of the document at ``path`` (0 if it has none); None if there is
    no file; -1 if it cannot be read. Reads only the first line of a log written here."""
    try:
        with open(path, "rb") as file:
            first = file.readline(1 << 20)
            head = None
            if first.endswith(_ACTIONS_TAIL):
                try:
                    head = json.loads(first[:-len(_ACTIONS_TAIL)] + b"}")
                except ValueError:
                    head = None
            if head is None:
                head = json.loads(first + file.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return -1
    generation = head.get("generation", 0) if isinstance(head, dict) else -1
    return generation if isinstance(generation, int) and not isinstance(generation, bool) \
        else -1


def check_generation(path: Path, expected: int) -> None:
    """InputError unless the log at ``path`` is missing or has generation ``expected``."""
    on_disk = read_generation(path)
    if on_disk is not None and on_disk != expected:
        found = "an unreadable document" if on_disk < 0 else f"generation {on_disk}"
        raise InputError(
            f"the curation log was changed by another writer ({found} on disk, this curation "
            f"last wrote generation {expected}); this change was not saved and the log was "
            f"not overwritten: close this curation and open the log again", path=path,
            field="generation")


# -- the lock ---------------------------------------------------------------------------------
class LogLockedError(InputError):
    """The curation log is being written by another Curation (this process or another)."""


_WINDOWS_LOCK_OFFSET = 1 << 20  # msvcrt locks a byte range; keep the holder text readable


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class LogLock:
    """An exclusive advisory lock on the log at ``path``, held from :meth:`acquire` to
    :meth:`release` (or the process's end: the OS drops it, so a killed holder leaves none).

    ``flock`` locks belong to the open file, so a second Curation of the same log in the
    same process is refused too. Where the lock file cannot be created or the file system
    cannot lock, a warning says so and the log is used unlocked (the generation check of
    every save still refuses to overwrite another writer's log).
    """

    def __init__(self, path: Path):
        self.log = Path(path)
        self.path = lock_path(self.log)
        self._fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None and msvcrt is None:
            self._unlocked("this platform cannot lock files")
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            self._unlocked(f"cannot create {self.path}: {err}")
            return
        try:
            if not self._try_lock(fd):
                holder = _read_holder(fd)
                here = holder == (os.getpid(), socket.gethostname())
                if here:
                    gc.collect()  # an unreachable Curation of this process may still hold it
                if not here or not self._try_lock(fd):
                    raise _locked_error(self.log, holder, here)
            _write_holder(fd)
        except OSError as err:  # no locks on this file system (some network mounts)
            os.close(fd)
            self._unlocked(f"cannot lock {self.path}: {err}")
            return
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops the lock

    @staticmethod
    def _try_lock(fd: int) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:  # msvcrt reports a held lock as EACCES / EDEADLOCK
            return False
        return True

    def _unlocked(self, why: str) -> None:
        warnings.warn(f"the curation log {self.log} is used without a lock ({why}): another "
                      f"spikeviz process curating it would not be detected", stacklevel=4)


def _write_holder(fd: int) -> None:
    data = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode() + b"\n"
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.ftruncate(fd, len(data))


def _read_holder(fd: int) -> tuple:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 4096).split(b"\n", 1)[0])
        return int(holder["pid"]), str(holder["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def _locked_error(log_path: Path, holder: tuple, here: bool) -> LogLockedError:
    pid, host = holder
    who = "holder unknown" if pid is None else f"pid {pid} on host {host}"
    if here:
        return LogLockedError(
            f"the curation log is already open in this process ({who}: another Curation or "
            f"Session of the same folder); close that one first (curation.close()), or open "
            f"this session with cache_dir=None to curate in memory", path=log_path)
    return LogLockedError(
        f"the curation log is open in another spikeviz process ({who}); close it there, or "
        f"open this session with cache_dir=None to curate in memory", path=log_path)
