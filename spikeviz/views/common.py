"""Small helpers shared by several views (no view lives here, so views stay independent)."""

from __future__ import annotations

import holoviews as hv

#: Shading of the refractory period (|lag| or interval below it) in correlograms and ISIs.
REFRACTORY_COLOR = "#f2c6c6"


def ensure_bokeh_backend() -> None:
    """Load HoloViews' Bokeh backend (without notebook side effects) if it is not loaded."""
    if "bokeh" not in hv.Store.renderers:
        hv.renderer("bokeh")


def present_units(sorting, unit_ids) -> list:
    """``unit_ids`` that exist in ``sorting`` (a curation change may be ahead of the
    selection, which drops the gone ids right after)."""
    known = set(sorting.unit_ids.tolist())
    return [u for u in unit_ids if u in known]
