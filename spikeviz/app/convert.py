"""``spikeviz convert SRC DST --to nwb|phy|hdf5``: read anything spikeviz reads, write it in
another format with a progress bar. The writers are atomic and refuse to replace ``DST``
unless ``--overwrite``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import InputError

SUFFIXES = {".nwb": "nwb", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5"}


def target_format(dst: str | Path, to: str | None) -> str:
    """``--to`` when given, else the format DST's suffix names (a folder → phy)."""
    if to is not None:
        return to
    suffix = Path(dst).suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix == "":
        return "phy"
    raise InputError(f"cannot tell the output format from the suffix {suffix!r}; pass "
                     f"--to nwb|phy|hdf5", path=dst, field="--to")


def options(args, fmt: str) -> dict:
    """Writer keywords from the command line; options of another format are refused so that
    a typo does not silently do nothing."""
    given = {
        "style": args.style, "time_unit": args.time_unit, "bin_ms": args.bin_ms,
        "metadata": args.metadata, "include_recording": args.include_recording or None,
        "raw": args.raw,
    }
    accepted = {
        "nwb": ("metadata", "include_recording"),
        "phy": ("raw",),
        "hdf5": ("style", "time_unit", "bin_ms"),
    }[fmt]
    wrong = [k for k, v in given.items() if v is not None and k not in accepted]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{flags} do(es) not apply to --to {fmt}", field="--to")
    out = {k: v for k, v in given.items() if v is not None}
    if out.get("raw") == "none":
        out["raw"] = None
    return out


def run(session, dst, fmt: str, kwargs: dict, overwrite: bool, compute: bool,
        progress: bool = True, out=None) -> Path:
    from .. import export
    from .precompute import ProgressBar

    out = out or sys.stdout
    bar = ProgressBar(None) if progress else None
    t0 = time.perf_counter()
    path = export.FORMATS[fmt](session, dst, overwrite=overwrite, compute=compute,
                               progress=bar, **kwargs)
    size = _size(Path(path))
    print(f"wrote {path} ({fmt}, {session.sorting.num_units} units, "
          f"{session.sorting.num_spikes:,} spikes, {size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - t0:.1f} s", file=out)
    return Path(path)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
