"""Which views a dashboard has, where they go, and which of them are visible (``active``).

:data:`VIEWS` is the registry: the attribute name on the dashboard, the view class
(``spikeviz.views.<module>.<class>``), the title and the area:

- ``left``: the unit table, with the similarity view below it;
- ``centre``: tabs — waveforms (templates), traces, raster, amplitudes, features;
- ``right``: correlograms on top, tabs below — ISI / firing rate, probe (plus the history and
  export tabs the dashboard adds).

Hidden views do no work: a view in a tab is ``active`` only while its tab is the shown one
(:class:`ActiveTabs` keeps that true); views outside tabs are always active.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass

import panel as pn
import param

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewSpec:
    name: str  # attribute of the dashboard
    module: str  # spikeviz.views.<module>
    cls: str
    title: str
    area: str  # left, left_bottom, centre, right_top, right


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("unit_table", "unit_table", "UnitTable", "Units", "left"),
    ViewSpec("similarity", "similarity", "Similarity", "Similar units", "left_bottom"),
    ViewSpec("templates", "templates", "TemplatesView", "Waveforms", "centre"),
    ViewSpec("traces", "traces", "Traces", "Traces", "centre"),
    ViewSpec("raster", "raster", "Raster", "Raster", "centre"),
    ViewSpec("amplitudes", "amplitudes", "Amplitudes", "Amplitudes", "centre"),
    ViewSpec("features", "features", "Features", "Features", "centre"),
    ViewSpec("correlograms", "correlograms", "Correlograms", "Correlograms", "right_top"),
    ViewSpec("isi", "isi", "ISIView", "ISI / rate", "right"),
    ViewSpec("probe", "probe", "Probe", "Probe", "right"),
)


def view_class(spec: ViewSpec):
    """The view class of ``spec``, or None while its module does not exist yet."""
    module_name = f"spikeviz.views.{spec.module}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise  # a missing dependency of an existing view is a real error
        return None
    return getattr(module, spec.cls, None)


def make_view(spec: ViewSpec, session, selection, curation, active: bool = True):
    """An instance of the view of ``spec`` (None when not available); a view that defers
    hidden work is built with ``active`` (False: it does nothing until shown)."""
    cls = view_class(spec)
    if cls is None:
        return None
    params = {"active": active} if "active" in cls.param else {}
    if "curation" in inspect.signature(cls.__init__).parameters:
        return cls(session, selection=selection, curation=curation, **params)
    return cls(session, selection=selection, **params)  # shows the original sorting


def placeholder(title: str) -> pn.pane.HTML:
    return pn.pane.HTML(f"<div style='color:#888;padding:20px'>{title}: not available in "
                        f"this version</div>", sizing_mode="stretch_both")


def set_active(view, value: bool) -> None:
    """``view.active = value`` for views that defer hidden work (others always work)."""
    if view is not None and "active" in getattr(view, "param", {}):
        if view.active != value:
            view.active = value


class ActiveTabs(param.Parameterized):
    """Tabs whose views are ``active`` exactly while their tab is shown.

    ``ActiveTabs([(title, view_or_None, panel_object), ...])``; ``tabs`` is the ``pn.Tabs``
    (``dynamic=True``: a hidden tab is not even rendered in the browser).
    """

    def __init__(self, items, **params):
        super().__init__(**params)
        self.items = list(items)
        self.tabs = pn.Tabs(*[(title, obj) for title, _, obj in self.items], dynamic=True,
                            sizing_mode="stretch_both", margin=(0, 4))
        self._watcher = self.tabs.param.watch(self._on_active, ["active"])
        self.sync()

    @property
    def views(self) -> list:
        return [view for _, view, _ in self.items if view is not None]

    def show(self, title: str) -> None:
        """Bring the tab called ``title`` to the front."""
        for i, (t, _, _) in enumerate(self.items):
            if t == title:
                self.tabs.active = i
                return
        raise KeyError(title)

    def _on_active(self, event) -> None:
        self.sync()

    def sync(self) -> None:
        """Deactivate the hidden tabs' views first, then activate the shown one."""
        shown = self.tabs.active
        for i, (_, view, _) in enumerate(self.items):
            if i != shown:
                set_active(view, False)
        if 0 <= shown < len(self.items):
            set_active(self.items[shown][1], True)

    def dispose(self) -> None:
        try:
            self.tabs.param.unwatch(self._watcher)
        except (ValueError, KeyError):
            pass
