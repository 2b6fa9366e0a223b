"""ComparisonView: the base of the comparison views — the Comparison, the pair selection,
deferred work while hidden.

Each view reads a :class:`~spikeviz.model.comparison.Comparison` and writes only a
:class:`~spikeviz.model.comparison_selection.ComparisonSelection` (the unit pair). Views never
call each other; built alone (``AgreementMatrix(comparison)``) a view makes its own selection,
and views given the same ``selection`` are linked. As with the curation views
(:class:`spikeviz.views.base.View`), a view whose ``active`` is False only marks itself stale
and redraws once when shown again.
"""

from __future__ import annotations

import numpy as np
import panel as pn
import param

from ..model.comparison import Comparison
from ..model.comparison_selection import ComparisonSelection
from .base import DeferredView
from .common import ensure_bokeh_backend

#: Colours of the two sortings (sorting1 / ground truth, sorting2 / tested) in every view.
COLOR1 = "#1f5f8b"
COLOR2 = "#d9661f"
#: Unmatched spikes are drawn in the sorting's colour, lighter; matched spikes in this colour.
MATCHED_COLOR = "#2a9d4b"
UNMATCHED1 = "#8fb5d3"
UNMATCHED2 = "#f1b48a"


def plain(value):
    """A numpy scalar as a Python scalar; pandas NA as None."""
    if value is None:
        return None
    try:
        import pandas as pd

        if value is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def side_label(comparison: Comparison, side: int) -> str:
    """"ground truth" / "tested" (ground-truth mode) or the sorting's name."""
    if comparison.ground_truth:
        return ("ground truth", "tested")[side - 1]
    return comparison.names[side - 1]


def holoviews_pane(obj, **params) -> pn.pane.HoloViews:
    """A HoloViews pane whose axes are its own (Panel links the axes of plots with the same
    dimensions across a layout by default: the two matrices would share their ranges)."""
    return pn.pane.HoloViews(obj, linked_axes=False, **params)


class ComparisonView(DeferredView):
    """``ComparisonView(comparison, selection=None, **params)``: subclasses build their
    widgets in ``__init__`` (after ``super().__init__``), follow with :meth:`_watch`,
    implement :meth:`refresh` and set ``self._layout`` (the hidden-tab deferral, failure
    isolation and disposal are :class:`~spikeviz.views.base.DeferredView`'s)."""

    comparison = param.ClassSelector(class_=Comparison, constant=True, doc="What is shown.")
    selection = param.ClassSelector(class_=ComparisonSelection, constant=True, doc="""
        The unit pair, shared with the other views of the same dashboard.""")

    def __init__(self, comparison: Comparison, selection: ComparisonSelection | None = None,
                 **params):
        if selection is None:
            selection = ComparisonSelection(comparison)
        super().__init__(comparison=comparison, selection=selection, **params)
        ensure_bokeh_backend()
