"""The curation dashboard: every view of one Session, linked by one Selection, one Curation.

``Dashboard(session)`` builds new views and a new ``Selection`` over the session's shared
``Curation`` (``session.curation``): two dashboards (two browser tabs, or a tab and a notebook)
select independently but curate the same document, and an action in one reaches the views of
the other (Panel and HoloViews schedule the updates of another page's models on that page's
next tick). ``build_dashboard(session)`` wraps it in the served template and disposes of its
views when the browser session ends; ``show(session)`` is the notebook entry point.

Layout (see :mod:`.layout`): header (summary, curation toolbar, status, autosave), left the
unit table and similar units, centre tabs of waveforms / traces / raster / amplitudes /
features, right the correlograms above tabs of ISI / rate, probe, history and export. Only the
shown tab's view works. Keyboard shortcuts (:mod:`.shortcuts`) drive the loop; "?" lists them.
"""

from __future__ import annotations

import logging

import panel as pn
import param

from ..errors import SpikevizError
from ..model.curation import Curation
from ..model.selection import Selection
from ..model.session import Session
from .curation_bar import CurationBar, notify
from .formatting import SUMMARY_CSS, format_duration
from .formatting import summary_html as formatted_summary
from .help import help_panel
from .layout import VIEWS, ActiveTabs, make_view, placeholder
from .shortcuts import KEYMAP, KeyListener

log = logging.getLogger(__name__)

ACCENT = "#1f5f8b"
#: Column widths: a share of the window between a minimum and a maximum (px), so that the
#: centre keeps room for the plots from a 1280-px laptop to a 2560-px monitor.
LEFT_WIDTH = ("27%", 330, 470)
RIGHT_WIDTH = ("31%", 380, 600)
CENTRE_MIN_WIDTH = 420
#: Correlograms: this share of the right column, at least RIGHT_TOP_HEIGHT px (controls, a
#: caption and a 220-px grid); the tabs below take the rest, at least RIGHT_TABS_HEIGHT px,
#: and the column scrolls when the window is lower than both.
RIGHT_TOP_SHARE = "52%"
RIGHT_TOP_HEIGHT = 430
RIGHT_TABS_HEIGHT = 420
SIMILARITY_HEIGHT = "38%"  # of the left column, below the unit table
#: The dashboard fills the window below the template header; each column scrolls on its own.
#: Below BODY_MIN_HEIGHT the page scrolls instead of squeezing the plots.
BODY_HEIGHT = "calc(100vh - 165px)"
BODY_MIN_HEIGHT = 600

def _column_styles(width: tuple | None = None) -> dict:
    """A body column: the body's height, its own vertical scrolling, ``width`` = (share of
    the window, min px, max px) or None for the centre (the rest)."""
    styles = {"height": "100%", "min-height": "0", "overflow-y": "auto"}
    if width is not None:
        share, low, high = width
        styles.update({"flex": f"0 0 {share}", "min-width": f"{low}px",
                       "max-width": f"{high}px"})
    return styles


def summary_items(session: Session) -> list[tuple[str, str]]:
    """(key, value) pairs of the header summary, as plain text."""
    sorting, recording = session.sorting, session.recording
    channels = session.num_channels
    if recording is None:
        rec = "no"
    else:
        rec = f"yes ({recording.num_channels} ch, {recording.dtype})"
    return [
        ("format", session.format or "unknown"),
        ("units", f"{sorting.num_units:,}"),
        ("spikes", f"{sorting.num_spikes:,}"),
        ("duration", format_duration(sorting.duration_s)),
        ("sampling rate", f"{sorting.sampling_frequency:,.6g} Hz"),
        ("channels", "unknown" if channels is None else f"{channels:,}"),
        ("recording", rec),
    ]


def summary_html(session: Session) -> str:
    return formatted_summary(summary_items(session), session.source or session.sorting.source)


def _show_error(exception: Exception) -> None:
    """Exceptions in callbacks: logged with the traceback, shown to the user as one line."""
    log.error("error in a dashboard callback", exc_info=exception)
    text = str(exception) if isinstance(exception, SpikevizError) else \
        f"{type(exception).__name__}: {exception}"
    notify(text, "error", duration=8000)


class Dashboard(pn.viewable.Viewer):
    """Every view of one Session, one Selection, the session's Curation, a toolbar, shortcuts."""

    session = param.ClassSelector(class_=Session, constant=True, doc="What is shown.")
    curation = param.ClassSelector(class_=Curation, constant=True, doc="""
        The curation (shared by every dashboard of the session: ``session.curation``).""")
    selection = param.ClassSelector(class_=Selection, constant=True,
                                    doc="The selection shared by every view of this dashboard.")
    title = param.String(default="spikeviz", doc="Browser tab and header title.")

    def __init__(self, session: Session, selection: Selection | None = None,
                 curation: Curation | None = None, **params):
        if curation is None:
            curation = session.curation
        if selection is None:
            selection = Selection.for_session(session, curation=curation)
        super().__init__(session=session, selection=selection, curation=curation, **params)
        # the toolbar follows the selection and the curation before any view does, so that a
        # view failing in its callback cannot leave the buttons stale
        self.bar = CurationBar(curation, selection)
        self.views: dict[str, object] = {}
        first_tabs = {a: next((s.name for s in VIEWS if s.area == a), None)
                      for a in ("centre", "right")}
        for spec in VIEWS:  # a view in a hidden tab starts inactive: no work until shown
            shown = spec.area not in first_tabs or first_tabs[spec.area] == spec.name
            view = make_view(spec, session, selection, curation, active=shown)
            setattr(self, spec.name, view)
            if view is not None:
                self.views[spec.name] = view
        self.help = help_panel()
        self.keys = KeyListener(on_key=self.handle_key)
        self.export = _export_panel(session, curation, self.views)
        self.summary = pn.pane.HTML(summary_html(session), sizing_mode="stretch_width",
                                    stylesheets=[SUMMARY_CSS], margin=(0, 10))
        self.help_button = pn.widgets.Button(label="?", width=34, height=32, margin=(4, 3),
                                             description="Keyboard shortcuts (?)")
        self.help_button.on_click(lambda e: self.toggle_help())
        self.centre = ActiveTabs(self._tab_items("centre"))
        right = self._tab_items("right")
        right.append(("History", None, pn.Column(self.bar.log_pane, self.bar.autosave_pane,
                                                 sizing_mode="stretch_both", margin=8)))
        if self.export is not None:
            right.append(("Export", None, self.export))
        self.right = ActiveTabs(right)
        self._layout = self._build_layout()

    # -- layout ------------------------------------------------------------------------------
    def _tab_items(self, area: str) -> list:
        return [(spec.title, self.views.get(spec.name),
                 self.views.get(spec.name) or placeholder(spec.title))
                for spec in VIEWS if spec.area == area]

    def _area(self, area: str):
        objs = [self.views.get(s.name) for s in VIEWS if s.area == area]
        return [o for o in objs if o is not None]

    def _build_layout(self):
        toolbar = pn.FlexBox(self.bar, self.help_button, self.bar.status_pane,
                             flex_wrap="wrap", align_items="center",
                             sizing_mode="stretch_width", margin=(0, 6))
        header = pn.Column(self.summary, toolbar, self.help, self.keys,
                           sizing_mode="stretch_width", margin=0,
                           css_classes=["spikeviz-header"])
        left_bottom = [pn.Column(v, sizing_mode="stretch_both", margin=0,
                                 styles={"flex": f"0 0 {SIMILARITY_HEIGHT}",
                                         "min-height": "200px"},
                                 css_classes=["spikeviz-similarity-pane"])
                       for v in self._area("left_bottom")]
        left_top = [pn.Column(v, sizing_mode="stretch_both", margin=0, min_height=260,
                              css_classes=["spikeviz-unit-table-pane"])
                    for v in self._area("left")]
        left = pn.Column(*left_top, *left_bottom, sizing_mode="stretch_both",
                         margin=(0, 4), styles=_column_styles(LEFT_WIDTH),
                         css_classes=["spikeviz-left"])
        right_top = [pn.Column(v, sizing_mode="stretch_both", margin=0,
                               styles={"flex": f"0 0 {RIGHT_TOP_SHARE}", "overflow-y": "auto",
                                       "min-height": f"{RIGHT_TOP_HEIGHT}px"},
                               css_classes=["spikeviz-correlograms-pane"])
                     for v in self._area("right_top")]
        right_tabs = pn.Column(self.right.tabs, sizing_mode="stretch_both", margin=0,
                               styles={"flex": "1 1 0", "min-height": f"{RIGHT_TABS_HEIGHT}px"},
                               css_classes=["spikeviz-right-tabs"])
        right = pn.Column(*right_top, right_tabs, sizing_mode="stretch_both",
                          margin=(0, 4), styles=_column_styles(RIGHT_WIDTH),
                          css_classes=["spikeviz-right"])
        centre = pn.Column(self.centre.tabs, sizing_mode="stretch_both", margin=0,
                           min_width=CENTRE_MIN_WIDTH, styles=_column_styles(),
                           css_classes=["spikeviz-centre"])
        body = pn.Row(left, centre, right, sizing_mode="stretch_both", margin=0,
                      styles={"height": BODY_HEIGHT, "min-height": f"{BODY_MIN_HEIGHT}px"},
                      css_classes=["spikeviz-body"])
        return pn.Column(header, body, sizing_mode="stretch_both", margin=0,
                         css_classes=["spikeviz-dashboard"])

    def __panel__(self):
        return self._layout

    def template(self) -> pn.template.FastListTemplate:
        """The dashboard in a FastListTemplate (what ``serve`` shows)."""
        return pn.template.FastListTemplate(
            title=self.title, main=[self._layout], accent=ACCENT, header_background=ACCENT,
            main_layout=None, collapsed_sidebar=True, theme_toggle=False,
            main_max_width="")

    # -- keyboard and actions ----------------------------------------------------------------
    def handle_key(self, combo: str):
        """Run the action of a shortcut combo (see :data:`.shortcuts.SHORTCUTS`)."""
        action = KEYMAP.get(combo)
        if action is None:
            return None
        return self.do(action)

    def do(self, action: str):
        """Run a named action: label_good/mua/noise/unsorted, merge, split, remove, undo, redo,
        next_best, previous_best, next_similar, previous_similar, clear_spikes, toggle_help."""
        bar = self.bar
        actions = {
            "label_good": lambda: bar.label("good"),
            "label_mua": lambda: bar.label("mua"),
            "label_noise": lambda: bar.label("noise"),
            "label_unsorted": lambda: bar.label("unsorted"),
            "merge": bar.merge, "split": bar.split, "remove": bar.remove,
            "undo": bar.undo, "redo": bar.redo,
            "next_best": lambda: self._wizard("next_best"),
            "previous_best": lambda: self._wizard("previous_best"),
            "next_similar": lambda: self._wizard("next_similar"),
            "previous_similar": lambda: self._wizard("previous_similar"),
            "clear_spikes": self.clear_spikes,
            "toggle_help": self.toggle_help,
        }
        if action not in actions:
            raise KeyError(f"unknown action {action!r}")
        return actions[action]()

    def toggle_help(self) -> bool:
        self.help.visible = not self.help.visible
        return self.help.visible

    def clear_spikes(self) -> None:
        self.selection.spike_indices = None

    def _wizard(self, method: str):
        """phy's wizard through the similarity view; without it, walk the units in order."""
        similarity = self.views.get("similarity")
        fn = getattr(similarity, method, None)
        try:
            if fn is not None:
                return fn()
            if method.endswith("similar"):
                self.bar._refuse("similar-unit navigation needs the similarity view")
                return None
            return self._step_unit(1 if method == "next_best" else -1)
        except SpikevizError as err:
            self.bar._refuse(str(err))
            return None

    def _step_unit(self, step: int):
        ids = self.curation.sorting.unit_ids.tolist()
        if not ids:
            return None
        current = self.selection.unit_ids
        i = ids.index(current[0]) + step if current and current[0] in ids else \
            (0 if step > 0 else len(ids) - 1)
        unit = ids[i % len(ids)]
        self.selection.unit_ids = [unit]
        return unit

    # -- lifetime ----------------------------------------------------------------------------
    def dispose(self) -> None:
        """Stop following the shared objects: the browser session of this dashboard ended."""
        for view in self.views.values():
            dispose = getattr(view, "dispose", None)
            if dispose is not None:
                try:
                    dispose()
                except Exception:  # one view's failure must not keep the others alive
                    log.exception("disposing of %s failed", type(view).__name__)
        for obj in (self.bar, self.centre, self.right, self.export, self.selection):
            dispose = getattr(obj, "dispose", None)
            if dispose is not None:
                dispose()


def _export_panel(session, curation, views):
    """The export panel, when this version has one."""
    try:
        from .export_panel import ExportPanel
    except ModuleNotFoundError as err:
        if err.name != f"{__package__}.export_panel":
            raise
        return None
    return ExportPanel(session, curation, views=views)


def _extension() -> None:
    pn.extension("tabulator", notifications=True, exception_handler=_show_error)


def build_dashboard(session: Session, title: str = "spikeviz") -> pn.template.FastListTemplate:
    """A new dashboard (new views, new Selection) over ``session``, in a template.

    In a server session its views are disposed of when the browser session ends.
    """
    _extension()
    dashboard = Dashboard(session, title=title)
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        pn.state.on_session_destroyed(lambda context: dashboard.dispose())
    template = dashboard.template()
    template.dashboard = dashboard  # for tests and the warm-up
    return template


def show(session: Session, **params) -> Dashboard:
    """The dashboard of ``session`` for a notebook cell (``session.show()``)."""
    _extension()
    return Dashboard(session, **params)
