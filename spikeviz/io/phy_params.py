"""``params.py`` of a Phy folder: build and validate its entries, write its text.

Entries (KiloSort's, in this order): ``dat_path`` (raw file(s), relative to the folder when
inside it; ``''`` is phylib's "no raw data"), ``n_channels_dat``, ``dtype``, ``offset``
(bytes), ``sample_rate`` (Hz), ``hp_filtered``; optionally ``gain_to_uv`` (µV per stored
unit of the raw file: a spikeviz extension that phy and SpikeInterface ignore). Other keys
follow, sorted. Every value is a Python literal that ``ast.literal_eval`` reads back.
"""

from __future__ import annotations

import ast
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import InputError

# params.py keys in KiloSort's order; other keys follow, sorted.
PARAMS_KEYS = ("dat_path", "n_channels_dat", "dtype", "offset", "sample_rate", "hp_filtered")


def _literal(value, key: str):
    """``value`` as a plain Python literal that ``repr`` writes and ``literal_eval`` reads."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple | list):
        return [_literal(v, key) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, float) and not np.isfinite(value):
            raise InputError(f"must be a finite number, got {value}", field=f"params.{key}")
        return value
    raise InputError(f"must be a str, number, bool, None or a list of those, got "
                     f"{type(value).__name__}", field=f"params.{key}")


def _dat_path(value, folder: Path):
    """dat_path relative to the folder when the file lies inside it (portable folders)."""
    def one(p):
        if not isinstance(p, str | os.PathLike):
            raise InputError(f"must be a path or a list of paths, got {type(p).__name__}",
                             field="params.dat_path")
        if not str(os.fspath(p)).strip():
            return ""  # phylib's "no raw data file" (Path('') would be '.', the folder)
        p = Path(p)
        if p.is_absolute():
            with contextlib.suppress(ValueError):
                return p.relative_to(folder.absolute()).as_posix()
            return str(p)
        return p.as_posix()
    if isinstance(value, list | tuple):
        return [one(p) for p in value]
    return one(value)


def positive_int(value) -> int | None:
    """``value`` as an int when it is a positive integer (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) <= 0:
        return None
    return int(value)


def make_params(params: Mapping | None, sampling_frequency: float, num_channels: int | None,
                folder: Path) -> dict:
    """The validated ``params.py`` entries: KiloSort's defaults (``dat_path=''``,
    ``n_channels_dat=num_channels``, int16, offset 0, ``sampling_frequency`` Hz, not filtered)
    updated with ``params``; ``sample_rate`` must equal ``sampling_frequency`` when given."""
    given = dict(params or {})
    for key in given:
        if not isinstance(key, str) or not key.isidentifier():
            raise InputError(f"params keys must be Python identifiers, got {key!r}",
                             field="params")
    out = {
        # phylib needs dat_path; '' is its "no raw data file" entry.
        "dat_path": "",
        "n_channels_dat": num_channels,
        "dtype": "int16",
        "offset": 0,
        "sample_rate": float(sampling_frequency),
        "hp_filtered": False,
    }
    out.update(given)
    out["dat_path"] = _dat_path(out["dat_path"], folder)
    if out["n_channels_dat"] is None:
        del out["n_channels_dat"]
    else:
        n = positive_int(out["n_channels_dat"])
        if n is None:
            raise InputError(f"must be a positive integer, got {out['n_channels_dat']!r}",
                             field="params.n_channels_dat")
        out["n_channels_dat"] = n
    try:
        out["dtype"] = np.dtype(out["dtype"]).name
    except TypeError:
        raise InputError(f"unknown dtype {out['dtype']!r}", field="params.dtype") from None
    offset = out["offset"]
    if isinstance(offset, bool) or not isinstance(offset, int | np.integer) or offset < 0:
        raise InputError(f"must be a non-negative number of bytes, got {offset!r}",
                         field="params.offset")
    rate = out["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.number):
        raise InputError(f"must be a number of Hz, got {rate!r}", field="params.sample_rate")
    rate = float(rate)
    if abs(rate - sampling_frequency) > 1e-9 * sampling_frequency:
        raise InputError(f"params say {rate:g} Hz but sampling_frequency is "
                         f"{sampling_frequency:g} Hz", field="params.sample_rate")
    out["sample_rate"] = rate
    if not isinstance(out["hp_filtered"], bool | np.bool_):
        raise InputError(f"must be True or False, got {out['hp_filtered']!r}",
                         field="params.hp_filtered")
    if "gain_to_uv" in out:
        out["gain_to_uv"] = _gain_to_uv(out["gain_to_uv"], out.get("n_channels_dat"))
    return {key: _literal(value, key) for key, value in out.items()}


def _gain_to_uv(gain, num_channels: int | None):
    """µV per stored unit of the raw file: a positive number, or one per channel."""
    def positive(value) -> float:
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
            raise InputError(f"must be a number of µV per stored unit, got {value!r}",
                             field="params.gain_to_uv")
        value = float(value)
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"must be a positive number of µV per stored unit, got {value}",
                             field="params.gain_to_uv")
        return value

    if isinstance(gain, np.ndarray):
        gain = gain.tolist()
    if not isinstance(gain, list | tuple):
        return positive(gain)
    if num_channels is None:
        raise InputError("one gain per channel needs n_channels_dat", field="params.gain_to_uv")
    if len(gain) != num_channels:
        raise InputError(f"expected one gain per channel of the raw file ({num_channels}), got "
                         f"{len(gain)}", field="params.gain_to_uv")
    return [positive(g) for g in gain]


def params_text(params: Mapping) -> str:
    """The text of a ``params.py``: one ``key = repr(value)`` line per key, KiloSort's keys
    first. Every value is a literal, so readers can parse it with ``ast.literal_eval``."""
    keys = [k for k in PARAMS_KEYS if k in params]
    keys += sorted(k for k in params if k not in PARAMS_KEYS)
    for key in keys:  # what we write must read back identically
        value = _literal(params[key], key)
        if ast.literal_eval(repr(value)) != value:
            raise InputError(f"{value!r} does not survive a round trip through repr",
                             field=f"params.{key}")
    return "".join(f"{key} = {_literal(params[key], key)!r}\n" for key in keys)
