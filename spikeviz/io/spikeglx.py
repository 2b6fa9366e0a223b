"""SpikeGLX recordings: a ``.bin`` of interleaved int16 samples beside its ``.meta`` text file.

The ``.meta`` holds ``key=value`` lines; keys starting with ``~`` are tables written as
``(header)(entry)(entry)...``. From it we take the channel count (``nSavedChans``), the
sampling rate in Hz (``imSampRate`` for imec probes, ``niSampRate`` for the NI-DAQ), the
expected file size (``fileSizeBytes``), which acquired channels were saved
(``snsSaveChanSubset``), their kinds (``snsApLfSy``: AP, LF, SY; ``snsMnMaXaDw``: MN, MA, XA,
DW), the gains that turn int16 values into µV, and the probe geometry in µm.

Channel ids are the acquisition channel numbers of the saved channels, in file order (for a
Neuropixels 1.0 AP file: 0..383 and 768, the sync channel). Sync (SY) and digital-word (DW)
channels get gain 1, location NaN and channel group -1.

Positions follow probeinterface's convention (and so SpikeInterface's, which reads geometry
through it): x is measured from the centre of the shank's leftmost electrode column in
the odd rows, plus ``shank * shank pitch``; y is the depth from the tip-most row. SpikeGLX's
``~snsGeomMap`` measures x from the shank edge; the probe type's odd-row offset is subtracted
(left as is for probe types this reader does not know).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import Recording, Session
from . import binary

FORMAT = "spikeglx"
_NEURAL = ("AP", "LF")  # imec channel kinds that sit on an electrode

# Electrode layout per probe part number (facts from imec's ProbeTable): columns per shank,
# horizontal and vertical pitch, x of the first column in even and in odd rows (from the shank
# edge) and shank pitch, all in µm.
_LAYOUT_TABLE = (
    ("NP1000 NP1001 NP1010 NP1011 NP1012 NP1013 NP1014 PRB_1_2_0480_2 PRB_1_4_0480_1 "
     "PRB_1_4_0480_1_C", (2, 32, 20, 27, 11, 0)),
    ("NP1015 NP1016 NP1017", (2, 32, 20, 27, 27, 0)),
    ("NP1020 NP1021 NP1030 NP1031", (2, 87, 20, 27, 11, 0)),
    ("NP1022 NP1032 NP1033 NP1040 NP1041 NP1042 NP1050 NP1051", (2, 103, 20, 11, 11, 0)),
    ("NP1100", (8, 6, 6, 14, 14, 0)),
    ("NP1110", (8, 6, 6, 15.5, 15.5, 0)),
    ("NP1120", (2, 4.5, 4.5, 6.75, 6.75, 0)),
    ("NP1121", (1, 0, 3, 6.25, 6.25, 0)),
    ("NP1122", (16, 3, 3, 12.5, 12.5, 0)),
    ("NP1123", (12, 4.5, 4.5, 10.25, 10.25, 0)),
    ("NP1200 NP1210", (2, 32, 31, 56.5, 36.5, 0)),
    ("NP1300 NP1400", (2, 48, 20, 11, 11, 0)),
    ("NP2000 PRB2_1_2_0640_0 NP2003 NP2004 NP2005 NP3010 NP3011 NP3012", (2, 32, 15, 27, 27, 0)),
    ("NP2006", (2, 32, 15, 27, 11, 0)),
    ("NP2010 PRB2_4_2_0640_0 NP2013 NP2014 NP2020 NP2021 NP3020 NP3021 NP3022 NP3023 NP3024",
     (2, 32, 15, 27, 27, 250)),
    ("NP2022", (2, 20, 15, 27, 11, 2141.45)),
    ("NP2300", (2, 48, 15, 11, 11, 0)),
    ("NP3000", (1, 0, 15, 59, 59, 0)),
)
_LAYOUTS = {pn: layout for names, layout in _LAYOUT_TABLE for pn in names.split()}
_TYPE_TO_PN = {0: "NP1000", 21: "NP2000", 24: "NP2010"}  # imDatPrb_type -> a part number
# Probe types whose gain is not configurable: NP2.0 phase 1 (80, 14-bit ADC, imMaxInt 8192) and
# later 2.0-style probes (100, 12-bit ADC, imMaxInt 2048). NP1.0-style types (< 2000 except
# these and 1110) carry per-channel gains in the imro table and have a 10-bit ADC (512).
_FIXED_GAIN = {21: 80.0, 24: 80.0, 2003: 100.0, 2013: 100.0, 2020: 100.0, 3010: 100.0,
               3020: 100.0, 3022: 100.0}


def sniff(path: Path) -> bool:
    """A ``.bin`` whose ``.meta`` exists, or a ``.meta`` whose ``.bin`` exists."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in (".bin", ".meta"):
        return False
    return path.with_suffix(".meta" if suffix == ".bin" else ".bin").is_file()


def _pair(path: Path) -> tuple[Path, Path]:
    """(bin, meta) paths for either of the two files."""
    path = Path(path)
    if path.suffix.lower() == ".meta":
        return path.with_suffix(".bin"), path
    if path.suffix.lower() != ".bin":
        raise InputError("a SpikeGLX recording is opened from its .bin or .meta file",
                         path=path)
    meta = path.with_suffix(".meta")
    if not meta.is_file():
        raise InputError(f"no SpikeGLX metadata file {meta.name} beside this .bin; without "
                         f"it the channel count, sampling rate and gains are unknown (open a "
                         f"plain binary with format='binary', num_channels= and "
                         f"sampling_frequency=)", path=path)
    return path, meta


def read_meta(path: Path) -> dict[str, str]:
    """The ``key -> value`` strings of a ``.meta`` file; table keys keep their ``~``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("SpikeGLX .meta file not found", path=path)
    meta = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            meta[key.strip()] = value.strip()
    return meta


def _number(meta: dict, key: str, path: Path, kind=int, positive: bool = True):
    if key not in meta:
        raise InputError(f"required key {key!r} is missing", path=path, field=key)
    try:
        value = kind(meta[key])
    except ValueError:
        value = None
    if value is None or not np.isfinite(value) or value < 0 or (positive and value == 0):
        raise InputError(f"expected a {'positive' if positive else 'non-negative'} "
                         f"{'integer' if kind is int else 'number'}, got {meta[key]!r}",
                         path=path, field=key)
    return value


def _table(meta: dict, key: str, path: Path) -> tuple[list[str], list[str]]:
    """(header fields, entry strings) of a ``~key=(h,e,a,d)(entry)(entry)...`` table."""
    if key not in meta:
        raise InputError(f"required table {key!r} is missing", path=path, field=key)
    text = meta[key]
    if not (text.startswith("(") and text.endswith(")")):
        raise InputError(f"expected a table '(header)(entry)...', got {text[:40]!r}",
                         path=path, field=key)
    header, *entries = text[1:-1].split(")(")
    return header.split(","), entries


def _saved_channels(meta: dict, path: Path, n: int) -> np.ndarray:
    """Acquisition channel numbers of the saved channels, in file order (int64)."""
    text = meta.get("snsSaveChanSubset", "all")
    if text == "all":  # SpikeGLX's own readers number these 0..nSavedChans-1
        return np.arange(n, dtype=np.int64)
    channels = []
    try:
        for part in text.split(","):
            first, _, last = part.partition(":")
            channels.extend(range(int(first), int(last or first) + 1))
    except ValueError:
        raise InputError(f"expected 'all' or ranges like '0:383,768', got {text!r}",
                         path=path, field="snsSaveChanSubset") from None
    if len(channels) != n or len(set(channels)) != n:
        raise InputError(f"lists {len(channels)} channels but nSavedChans is {n}", path=path,
                         field="snsSaveChanSubset")
    return np.array(channels, dtype=np.int64)


def _kinds(meta: dict, path: Path, n: int, imec: bool) -> np.ndarray:
    """Kind of each saved channel, from the per-kind counts (channels are saved in kind order)."""
    key, names = ("snsApLfSy", ("AP", "LF", "SY")) if imec else \
        ("snsMnMaXaDw", ("MN", "MA", "XA", "DW"))
    try:
        counts = [int(c) for c in meta[key].split(",")]
    except (KeyError, ValueError):
        counts = []
    if len(counts) != len(names) or min(counts) < 0 or sum(counts) != n:
        raise InputError(f"expected {len(names)} channel counts ({','.join(names)}) adding up "
                         f"to nSavedChans={n}, got {meta.get(key)!r}", path=path, field=key)
    return np.repeat(np.array(names), counts)


def _probe_type(meta: dict, path: Path) -> int:
    """imec probe type code (0 for NP1.0 and 3A, 21/24 for NP2.0, 1110 for UHD2, ...)."""
    if "imDatPrb_type" in meta:
        return _number(meta, "imDatPrb_type", path, positive=False)
    header, _ = _table(meta, "~imroTbl", path)
    if len(header) == 3:  # 3A: (serial number, option, channels)
        return 0
    code = header[0].removeprefix("NP")
    if not code.isdigit():
        raise InputError(f"cannot tell the probe type from {header[0]!r}", path=path,
                         field="~imroTbl")
    return int(code)


def _per_channel_gains(probe_type: int) -> bool:
    """NP1.0-style imro tables: one entry per channel with AP and LF gain columns."""
    return probe_type < 2000 and probe_type not in (*_FIXED_GAIN, 1110)


def _imec_gains(meta: dict, path: Path, kinds: np.ndarray, channels: np.ndarray,
                probe_type: int) -> np.ndarray:
    """µV per int16 unit: imAiRangeMax / imMaxInt / probe gain * 1e6 for AP and LF channels."""
    gains = np.ones(len(kinds))
    neural = np.flatnonzero(np.isin(kinds, _NEURAL))
    if neural.size == 0:
        return gains
    if "imMaxInt" in meta:
        max_int = _number(meta, "imMaxInt", path)
    elif probe_type in _FIXED_GAIN:
        max_int = 8192 if probe_type in (21, 24) else 2048
    elif probe_type < 2000:  # NP1.0, 3A, UHD: 10-bit ADC
        max_int = 512
    else:
        raise InputError(f"imMaxInt is missing and probe type {probe_type} is unknown",
                         path=path, field="imMaxInt")
    int_to_v = _number(meta, "imAiRangeMax", path, float) / max_int
    probe_gain = np.empty(neural.size)
    try:
        if _per_channel_gains(probe_type):
            _, entries = _table(meta, "~imroTbl", path)
            column = {"AP": 3, "LF": 4}
            for k, i in enumerate(neural):
                fields = entries[channels[i] % len(entries)].split()
                probe_gain[k] = float(fields[column[kinds[i]]])
        else:  # one gain per kind: fixed by the probe type, or UHD2's imro header
            ap, lf = _FIXED_GAIN.get(probe_type), None
            if probe_type == 1110:
                header, _ = _table(meta, "~imroTbl", path)
                ap, lf = float(header[3]), float(header[4])
            if "imChan0apGain" in meta:  # newer metas state it
                ap = _number(meta, "imChan0apGain", path, float)
            if "imChan0lfGain" in meta:
                lf = _number(meta, "imChan0lfGain", path, float)
            if ap is None:
                raise InputError(f"unknown probe type {probe_type} and no imChan0apGain: "
                                 f"cannot convert to µV", path=path, field="imDatPrb_type")
            # a 2.0 probe's LF file (made by CatGT from the full band) keeps the AP gain
            probe_gain[:] = np.where(kinds[neural] == "AP", ap, ap if lf is None else lf)
    except InputError:
        raise
    except (IndexError, ValueError) as err:
        raise InputError(f"cannot read the channel gains ({err})", path=path,
                         field="~imroTbl") from None
    if not np.all(probe_gain > 0):
        raise InputError("channel gains must be positive", path=path, field="~imroTbl")
    gains[neural] = int_to_v / probe_gain * 1e6
    return gains


def _nidq_gains(meta: dict, path: Path, kinds: np.ndarray) -> np.ndarray:
    """µV per int16 unit: niAiRangeMax / niMaxInt (32768) / MN or MA gain * 1e6; DW stays 1."""
    int_to_v = _number(meta, "niAiRangeMax", path, float) / \
        (_number(meta, "niMaxInt", path) if "niMaxInt" in meta else 32768)
    gains = np.ones(len(kinds))
    for kind, key in (("MN", "niMNGain"), ("MA", "niMAGain"), ("XA", None)):
        if np.any(kinds == kind):
            gain = _number(meta, key, path, float) if key else 1.0
            gains[kinds == kind] = int_to_v / gain * 1e6
    return gains


def _xy(layout, shank, col, row) -> np.ndarray:
    _, x_pitch, y_pitch, even_x, odd_x, shank_pitch = layout
    x = col * x_pitch + np.where(row % 2 == 0, even_x - odd_x, 0) + shank * shank_pitch
    return np.column_stack([x, row * y_pitch]).astype(np.float64)


def _positions(key: str, meta: dict, path: Path, layout, probe_type: int,
               channels: np.ndarray):
    """(xy µm, shank) of the saved electrode channels from one table, or None if unusable."""
    header, entries = _table(meta, key, path)
    if key == "~snsGeomMap":  # (pn,shanks,shank pitch,width)(shank:x:z:used)..., x from the edge
        f = np.array([e.split(":") for e in entries], dtype=np.float64)
        x = f[:, 1] - (layout[4] if layout else 0.0) + f[:, 0] * float(header[2])
        return np.column_stack([x, f[:, 2]]), f[:, 0]
    if layout is None:
        return None
    if key == "~snsShankMap":  # (shanks,cols,rows)(shank:col:row:used)...
        f = np.array([e.split(":") for e in entries], dtype=np.int64)
        return _xy(layout, f[:, 0], f[:, 1], f[:, 2]), f[:, 0]
    if probe_type == 1110:  # group-based addressing: rely on its ~snsGeomMap
        return None
    f = np.array([entries[c % len(entries)].split() for c in channels], dtype=np.int64)
    if _per_channel_gains(probe_type):  # (channel bank ref apgain lfgain ...)
        shank, electrode = np.zeros(len(f), np.int64), f[:, 1] * 384 + f[:, 0]
    elif f.shape[1] == 4:  # (channel bank_mask ref electrode)
        shank, electrode = np.zeros(len(f), np.int64), f[:, 3]
    else:  # (channel shank bank ref electrode)
        shank, electrode = f[:, 1], f[:, 4]
    row, col = np.divmod(electrode, layout[0])
    return _xy(layout, shank, col, row), shank


def _geometry(meta: dict, path: Path, kinds: np.ndarray, channels: np.ndarray,
              probe_type: int):
    """(locations µm (n, 2), shank per channel), from the first of ~snsGeomMap, ~snsShankMap
    and ~imroTbl that covers the saved AP/LF channels; (None, None) when none does."""
    neural = np.flatnonzero(np.isin(kinds, _NEURAL))
    layout = _LAYOUTS.get(meta.get("imDatPrb_pn")) or \
        _LAYOUTS.get(_TYPE_TO_PN.get(probe_type, f"NP{probe_type}"))
    for key in ("~snsGeomMap", "~snsShankMap", "~imroTbl"):
        if key not in meta or neural.size == 0:
            continue
        try:
            found = _positions(key, meta, path, layout, probe_type, channels[neural])
        except InputError:
            raise
        except (IndexError, ValueError) as err:
            raise InputError(f"malformed channel geometry table ({err})", path=path,
                             field=key) from None
        if found is not None and len(found[0]) == neural.size:
            locations = np.full((len(kinds), 2), np.nan)
            groups = np.full(len(kinds), -1, dtype=np.int64)
            locations[neural], groups[neural] = found
            return locations, groups
    return None, None


def read_recording(path: Path, sampling_frequency: float | None = None,
                   **_ignored) -> Recording:
    """SpikeGLX ``.bin`` (given it or its ``.meta``) as a lazy int16 Recording.

    ``sampling_frequency`` (Hz) overrides the meta's imSampRate/niSampRate when given. Gains
    convert to µV; locations are in µm (NaN for sync/digital channels).
    """
    bin_path, meta_path = _pair(Path(path))
    meta = read_meta(meta_path)
    n = _number(meta, "nSavedChans", meta_path)
    size = _number(meta, "fileSizeBytes", meta_path, positive=False)
    device = meta.get("typeThis") or ("imec" if "imSampRate" in meta else "nidq")
    if device not in ("imec", "nidq"):
        raise InputError(f"SpikeGLX {device!r} streams are not supported (imec and nidq are)",
                         path=meta_path, field="typeThis")
    imec = device == "imec"
    rate = _number(meta, "imSampRate" if imec else "niSampRate", meta_path, float)
    channels = _saved_channels(meta, meta_path, n)
    kinds = _kinds(meta, meta_path, n, imec)
    if imec:
        probe_type = _probe_type(meta, meta_path)
        gains = _imec_gains(meta, meta_path, kinds, channels, probe_type)
        locations, groups = _geometry(meta, meta_path, kinds, channels, probe_type)
    else:
        gains, (locations, groups) = _nidq_gains(meta, meta_path, kinds), (None, None)
    traces = binary.memmap_traces(bin_path, n, "int16", 0, expected_bytes=size)
    return Recording(traces, rate if sampling_frequency is None else sampling_frequency,
                     channel_ids=channels, channel_locations_um=locations,
                     channel_groups=groups, gains_to_uv=gains, source=str(bin_path))


def read_session(path: Path, sampling_frequency: float | None = None, **kwargs) -> Session:
    """A SpikeGLX recording opened on its own: a Session with the recording and no units."""
    recording = read_recording(path, sampling_frequency=sampling_frequency, **kwargs)
    return binary.empty_session(recording, FORMAT)
