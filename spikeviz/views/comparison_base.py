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

import logging

import numpy as np
import panel as pn
import param

from ..model.comparison import Comparison
from ..model.comparison_selection import ComparisonSelection
from .common import ensure_bokeh_backend

log = logging.getLogger(__name__)

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


class ComparisonView(pn.viewable.Viewer):
    """``ComparisonView(comparison, selection=None, **params)``: subclasses build their
    widgets in ``__init__`` (after ``super().__init__``), follow with :meth:`_watch`,
    implement :meth:`refresh` and set ``self._layout``."""

    comparison = param.ClassSelector(class_=Comparison, constant=True, doc="What is shown.")
    selection = param.ClassSelector(class_=ComparisonSelection, constant=True, doc="""
        The unit pair, shared with the other views of the same dashboard.""")
    active = param.Boolean(default=True, doc="""
        False while hidden: changes are deferred and applied once when it becomes True.""")

    def __init__(self, comparison: Comparison, selection: ComparisonSelection | None = None,
                 **params):
        if selection is None:
            selection = ComparisonSelection(comparison)
        super().__init__(comparison=comparison, selection=selection, **params)
        ensure_bokeh_backend()
        self._watchers: list = []
        self._stale = False
        doc = pn.state.curdoc
        self._doc = doc if doc is not None and doc.session_context is not None else None
        self.param.watch(self._on_active, ["active"])

    def __panel__(self):
        return self._layout

    def _start(self) -> None:
        if self.active:
            self.refresh()
        else:
            self._stale = True

    def _watch(self, obj, names, fn) -> None:
        names = [names] if isinstance(names, str) else list(names)

        def callback(*events):
            if not self.active:
                self._stale = True
                return
            self._run(fn, *events)

        self._watchers.append((obj, obj.param.watch(callback, names)))

    def _on_active(self, event) -> None:
        if event.new and self._stale:
            self._stale = False
            self._run(self.refresh)

    def _run(self, fn, *args) -> None:
        """``fn(*args)``; a failure is logged and notified instead of stopping the others."""
        try:
            if self._doc is not None and pn.state.curdoc is self._doc:
                with pn.io.unlocked():
                    fn(*args)
            else:
                fn(*args)
        except Exception as err:
            self._stale = True
            log.exception("%s failed to follow a change", type(self).__name__)
            if pn.state.notifications is not None:
                pn.state.notifications.error(f"{type(self).__name__}: {err}", duration=8000)

    def refresh(self) -> None:
        raise NotImplementedError

    def dispose(self) -> None:
        for obj, watcher in self._watchers:
            try:
                obj.param.unwatch(watcher)
            except (ValueError, KeyError):
                pass
        self._watchers.clear()
