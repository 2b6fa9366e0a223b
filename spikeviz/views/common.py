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


def compact_controls(owner, labels: dict, width: int = 100):
    """A wrapping row of small widgets for ``owner``'s parameters ``labels`` (name -> label):
    number boxes for numbers (a typed value, not a slider: fits narrow columns and takes
    exact values), a checkbox for booleans, buttons for selectors."""
    import panel as pn
    import param

    widgets = []
    for name, label in labels.items():
        p = owner.param[name]
        if isinstance(p, param.Boolean):
            widget = pn.widgets.Checkbox.from_param(p, name=label, width=width,
                                                    align="end", margin=(5, 5, 12, 5))
        elif isinstance(p, param.Selector):
            widget = pn.widgets.RadioButtonGroup.from_param(p, name=label, align="end",
                                                            margin=(5, 5, 5, 5))
        elif isinstance(p, param.Integer):
            widget = pn.widgets.IntInput.from_param(p, name=label, width=width)
        else:
            widget = pn.widgets.FloatInput.from_param(p, name=label, width=width)
        widgets.append(widget)
    return pn.FlexBox(*widgets, flex_wrap="wrap", align_items="end",
                      sizing_mode="stretch_width", margin=0)
