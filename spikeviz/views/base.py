"""View: the base of every view — the shared Session, Selection, Curation, and deferred work.

A view reads the model and writes only ``selection`` and ``curation``; views never call each
other. ``View(session)`` alone (in a notebook) uses the session's default Curation and
Selection, so every view built from one session is linked to the others.

Hidden views do no work: while ``active`` is False a watched change only marks the view stale,
and the view redraws once (``refresh()``) when it becomes active again.
"""

from __future__ import annotations

import logging

import panel as pn
import param

from ..model.curated import CuratedAnalysis, curated_analysis
from ..model.curation import Curation
from ..model.selection import Selection
from ..model.session import Session
from ..model.sorting import Sorting

log = logging.getLogger(__name__)


class DeferredView(pn.viewable.Viewer):
    """What every view shares, whatever it shows: ``active`` (False while hidden: watched
    changes only mark the view stale, and it redraws once when shown), :meth:`_watch`,
    failure isolation (:meth:`_run`), ``__panel__`` (``self._layout``) and :meth:`dispose`.

    Subclasses call ``super().__init__(**params)``, build ``self._layout``, register what they
    follow with :meth:`_watch`, call :meth:`_start` and implement :meth:`refresh`.
    """

    active = param.Boolean(default=True, doc="""
        False while the view is hidden (e.g. in an inactive tab): changes are deferred and
        applied once when it becomes True.""")

    def __init__(self, **params):
        super().__init__(**params)
        self._watchers: list[tuple[param.Parameterized, object]] = []
        self._stale = False
        # the page (Bokeh document) this view was built for: a change made from another
        # browser session (the curation is shared) is applied on this page's own tick
        doc = pn.state.curdoc
        self._doc = doc if doc is not None and doc.session_context is not None else None
        self.param.watch(self._on_active, ["active"])

    def __panel__(self):
        """The view's layout (subclasses build ``self._layout``)."""
        return self._layout

    def _start(self) -> None:
        """Draw now if shown, else once when first shown (end of a subclass's __init__)."""
        if self.active:
            self.refresh()
        else:
            self._stale = True

    # -- watching ----------------------------------------------------------------------------
    def _watch(self, obj: param.Parameterized, names, fn) -> None:
        """Call ``fn(*events)`` when ``names`` of ``obj`` change, or defer it while hidden."""
        names = [names] if isinstance(names, str) else list(names)

        def run(events):
            self._run(fn, *events)

        def callback(*events):
            if not self.active:
                self._stale = True
                return
            if self._doc is not None and not pn.state._unblocked(self._doc):
                self._doc.add_next_tick_callback(lambda: run(events))
                return
            run(events)

        self._watchers.append((obj, obj.param.watch(callback, names)))

    def _on_active(self, event) -> None:
        if event.new and self._stale:
            self._stale = False
            self._run(self.refresh)

    def _run(self, fn, *args) -> None:
        """``fn(*args)``; on a served page inside Panel's dispatch; a failure is logged and
        notified (the view is marked stale) instead of stopping the other watchers."""
        try:
            if self._doc is not None and pn.state.curdoc is self._doc:
                # views that patch Bokeh models directly (data sources, ranges) need Panel's
                # dispatch on a served page: hold the events and flush them
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
        """Redraw everything from the current selection and curation (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must implement refresh()")

    def dispose(self) -> None:
        """Stop following the shared objects (the browser session ended)."""
        for obj, watcher in self._watchers:
            try:
                obj.param.unwatch(watcher)
            except (ValueError, KeyError):
                log.debug("watcher already removed", exc_info=True)
        self._watchers.clear()


class View(DeferredView):
    """Base class: ``View(session, selection=None, curation=None, **params)``.

    Subclasses build their widgets and plots in ``__init__`` (after ``super().__init__``),
    register what they follow with :meth:`_watch`, and implement :meth:`refresh`.
    """

    session = param.ClassSelector(class_=Session, constant=True, doc="What is shown.")
    selection = param.ClassSelector(class_=Selection, constant=True, doc="""
        The selection shared with the other views of the same dashboard (or notebook).""")
    curation = param.ClassSelector(class_=Curation, constant=True, doc="""
        The curation of ``session``; ``curation.sorting`` is the sorting every view shows.""")

    def __init__(self, session: Session, selection: Selection | None = None,
                 curation: Curation | None = None, **params):
        if curation is None:
            curation = session.curation
        if selection is None:
            selection = session.selection if curation is session.curation else \
                Selection.for_session(session, curation=curation)
        super().__init__(session=session, selection=selection, curation=curation, **params)

    # -- shared facts ------------------------------------------------------------------------
    @property
    def results(self) -> CuratedAnalysis:
        """Derived results of the current curated sorting (shared, incremental)."""
        return curated_analysis(self.session, self.curation)

    @property
    def sorting(self) -> Sorting:
        """The current curated sorting."""
        return self.curation.sorting
