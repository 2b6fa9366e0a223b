"""The help panel: the keyboard shortcuts (from the one table in :mod:`.shortcuts`) and the loop."""

from __future__ import annotations

import html

import panel as pn

from .shortcuts import SHORTCUTS, display_key

_CSS = """
.spikeviz-help { font-size: 13px; }
.spikeviz-help table { border-collapse: collapse; margin: 4px 0 8px 0; }
.spikeviz-help td { padding: 2px 10px 2px 0; vertical-align: top; }
.spikeviz-help kbd { background: #f3f3f3; border: 1px solid #bbb; border-radius: 3px;
                     padding: 0 5px; font-family: monospace; font-size: 12px;
                     box-shadow: 0 1px 0 #aaa; white-space: nowrap; }
"""

LOOP = (
    "Select units in the table (Ctrl/Shift-click for several), the raster or the probe. "
    "Label them, merge them, or lasso spikes in the amplitudes or features view and split "
    "them off. Space walks through the units best first; . and , walk through the units "
    "most similar to it. Every action is saved at once and can be undone. Shortcuts do "
    "nothing while you type in a text field."
)


def help_html() -> str:
    rows = "".join(
        "<tr><td>" + " or ".join(f"<kbd>{html.escape(display_key(k))}</kbd>" for k in s.keys)
        + f"</td><td>{html.escape(s.label)}</td></tr>" for s in SHORTCUTS)
    return (f"<div class='spikeviz-help'><b>Keyboard shortcuts</b><table>{rows}</table>"
            f"<p>{html.escape(LOOP)}</p></div>")


#: The help floats over the dashboard (top right) instead of pushing the views down.
OVERLAY_STYLES = {"position": "fixed", "top": "72px", "right": "24px", "z-index": "1000",
                  "width": "520px", "max-height": "80vh", "overflow-y": "auto",
                  "background": "white", "box-shadow": "0 6px 24px rgba(0, 0, 0, 0.25)",
                  "border-radius": "6px"}


def help_panel(**params) -> pn.Card:
    """The shortcuts as a card floating over the dashboard, hidden until the "?" button or key
    shows it; its Close button (or "?" again) hides it."""
    params.setdefault("visible", False)
    close = pn.widgets.Button(label="Close", width=80, margin=(0, 10, 10, 10),
                              css_classes=["spikeviz-help-close"])
    card = pn.Card(pn.pane.HTML(help_html(), stylesheets=[_CSS], sizing_mode="stretch_width"),
                   close, title="Help: curation shortcuts", collapsible=False,
                   css_classes=["spikeviz-help-card"], styles=dict(OVERLAY_STYLES),
                   margin=0, **params)
    close.on_click(lambda event: setattr(card, "visible", False))
    return card
