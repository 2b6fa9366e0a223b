"""Unit colours shared by every view, so a unit has the same colour everywhere.

Selected units are coloured by their position in ``Selection.unit_ids`` (phy's convention):
the first selected unit takes ``PALETTE[0]`` in the traces, templates, correlograms, amplitudes
and features alike, and the units of one selection have distinct colours (up to
``len(PALETTE)`` of them). A unit outside the selection gets a colour derived from its id
alone (stable across sessions and selections): ``unit_color(unit_id)``.

Pure Python: no UI library is needed to pick a colour.
"""

from __future__ import annotations

import zlib

import numpy as np

#: 20 distinguishable colours on white (Glasbey-like order: neighbours contrast strongly).
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#e377c2", "#8c564b",
    "#bcbd22", "#393b79", "#ad494a", "#637939", "#e6550d", "#7b4173", "#3182bd", "#31a354",
    "#de9ed6", "#843c39", "#6baed6", "#fd8d3c",
)

#: Colour of units drawn as background (not selected), e.g. "all units" overlays.
BACKGROUND_COLOR = "#9a9a9a"


def _plain(unit_id):
    return unit_id.item() if isinstance(unit_id, np.generic) else unit_id


def id_color(unit_id) -> str:
    """A colour from the unit id alone: ``PALETTE[id % n]`` for integer ids, a CRC32 of the
    text for string ids."""
    unit_id = _plain(unit_id)
    if isinstance(unit_id, int | np.integer) and not isinstance(unit_id, bool):
        return PALETTE[int(unit_id) % len(PALETTE)]
    return PALETTE[zlib.crc32(str(unit_id).encode()) % len(PALETTE)]


def unit_color(unit_id, selected=None) -> str:
    """Colour of ``unit_id``: by its position in ``selected`` (the selection's unit ids, in
    selection order) when it is there, else :func:`id_color`."""
    unit_id = _plain(unit_id)
    if selected:
        for position, other in enumerate(selected):
            if _plain(other) == unit_id:
                return PALETTE[position % len(PALETTE)]
    return id_color(unit_id)


def unit_colors(unit_ids, selected=None) -> list[str]:
    """``[unit_color(u, selected) for u in unit_ids]`` (``selected`` defaults to
    ``unit_ids``: the colours of a selection)."""
    unit_ids = list(unit_ids)
    selected = unit_ids if selected is None else list(selected)
    position = {}
    for i, u in enumerate(selected):
        position.setdefault(_plain(u), i)
    return [PALETTE[position[_plain(u)] % len(PALETTE)] if _plain(u) in position
            else id_color(u) for u in unit_ids]
