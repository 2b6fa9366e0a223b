"""The dashboard: a session summary, the unit table and the raster, linked by one Selection.

``build_dashboard(session)`` returns a ``FastListTemplate`` ready to serve; each call builds
new views and a new Selection over the same (immutable, shared) Session, so every browser
session has its own state.
"""

from __future__ import annotations

import html
import logging

import panel as pn
import param

from ..model.selection import Selection
from ..model.session import Session
from ..views.raster import Raster
from ..views.unit_table import UnitTable
from .formatting import format_duration

log = logging.getLogger(__name__)

ACCENT = "#1f5f8b"
TABLE_WIDTH = 540

_CSS = """
.spikeviz-summary { display: flex; flex-wrap: wrap; gap: 6px 22px; align-items: baseline;
                    font-size: 14px; padding: 4px 2px; }
.spikeviz-summary .item { white-space: nowrap; }
.spikeviz-summary .key { color: #666; margin-right: 5px; }
.spikeviz-summary .value { font-weight: 600; }
.spikeviz-summary .source { color: #666; font-size: 12px; white-space: normal;
                            word-break: break-all; }
"""


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
    items = "".join(
        f"<span class='item'><span class='key'>{html.escape(k)}</span>"
        f"<span class='value'>{html.escape(v)}</span></span>"
        for k, v in summary_items(session))
    source = session.source or session.sorting.source
    if source:
        items += f"<span class='item source'>{html.escape(source)}</span>"
    return f"<div class='spikeviz-summary'>{items}</div>"


def _show_error(exception: Exception) -> None:
    """Exceptions in callbacks: logged with the traceback, shown to the user as one line."""
    log.error("error in a dashboard callback", exc_info=exception)
    if pn.state.notifications is not None:
        pn.state.notifications.error(f"{type(exception).__name__}: {exception}", duration=8000)


class Dashboard(pn.viewable.Viewer):
    """Summary + UnitTable + Raster over one Session, linked by one Selection."""

    session = param.ClassSelector(class_=Session, constant=True, doc="What is shown.")
    selection = param.ClassSelector(class_=Selection, constant=True,
                                    doc="The selection shared by every view of this dashboard.")
    title = param.String(default="spikeviz", doc="Browser tab and header title.")

    def __init__(self, session: Session, selection: Selection | None = None, **params):
        if selection is None:
            selection = Selection.for_session(session)
        super().__init__(session=session, selection=selection, **params)
        self.summary = pn.pane.HTML(summary_html(session), sizing_mode="stretch_width",
                                    stylesheets=[_CSS], margin=(0, 10))
        self.unit_table = UnitTable(session, selection)
        self.raster = Raster(session, selection)
        self._layout = pn.Column(
            self.summary,
            pn.Row(
                pn.Column(self.unit_table, width=TABLE_WIDTH, sizing_mode="stretch_height",
                          min_height=450),
                self.raster, sizing_mode="stretch_both", min_height=470),
            sizing_mode="stretch_both")

    def __panel__(self):
        return self._layout

    def template(self) -> pn.template.FastListTemplate:
        """The dashboard in a FastListTemplate (what ``serve`` shows)."""
        return pn.template.FastListTemplate(
            title=self.title, main=[self._layout], accent=ACCENT, header_background=ACCENT,
            main_layout=None, collapsed_sidebar=True, theme_toggle=False,
            main_max_width="")


def build_dashboard(session: Session, title: str = "spikeviz") -> pn.template.FastListTemplate:
    """A new dashboard (new views, new Selection) over ``session``, in a template."""
    pn.extension("tabulator", notifications=True, exception_handler=_show_error)
    return Dashboard(session, title=title).template()
