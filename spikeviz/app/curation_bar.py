"""The curation toolbar: label, tag, merge, split, remove, undo/redo, a status line and a log.

``CurationBar(curation, selection)`` acts on the units (and spikes) of one dashboard's
``Selection`` through the shared ``Curation``. Every action is a plain method (``label``,
``tag``, ``merge``, ``split``, ``remove``, ``undo``, ``redo``) that the buttons and the keyboard
shortcuts call, so tests drive them without a browser. Each returns the status message (or None
when refused); a refused or failed action is shown as a notification and in the status line,
never as a traceback.

Buttons are disabled when their action is impossible (the status line says why when it is
tried from the keyboard): labels, tag
and remove need selected units, merge two or more, split exactly one unit and some (not all)
of its spikes selected (``Selection.spike_indices``); undo/redo follow the curation. After a
merge the new unit is selected; after a split both parts; undo and redo select the units the
action brought back.
"""

from __future__ import annotations

import html
import logging

import numpy as np
import panel as pn
import param

from ..errors import SpikevizError
from ..model.curation import Curation
from ..model.selection import Selection

log = logging.getLogger(__name__)

#: How many past actions the log panel lists (newest first).
LOG_LENGTH = 12

_CSS = """
.spikeviz-status { font-size: 13px; color: #333; white-space: nowrap; overflow: hidden;
                   text-overflow: ellipsis; }
.spikeviz-status.error { color: #b00020; font-weight: 600; }
.spikeviz-log { font-size: 12px; line-height: 1.45; }
.spikeviz-log .undone { color: #999; text-decoration: line-through; }
.spikeviz-autosave { font-size: 11px; color: #666; word-break: break-all; }
"""


def _ids(unit_ids) -> str:
    return ", ".join(str(u) for u in unit_ids)


def describe(action: dict) -> str:
    """One line for a curation action dict (``Curation.actions`` items)."""
    op = action.get("op")
    if op == "label":
        return f"labelled {_ids(action['unit_ids'])} {action['label']}"
    if op in ("tag", "untag"):
        verb = "tagged" if op == "tag" else "untagged"
        return f"{verb} {_ids(action['unit_ids'])} {', '.join(action['tags'])}"
    if op == "merge":
        return f"merged {'+'.join(str(u) for u in action['unit_ids'])} → " \
               f"{action['new_unit_id']}"
    if op == "split":
        return f"split {action['unit_id']} → {', '.join(str(u) for u in action['new_unit_ids'])}"
    if op == "remove":
        return f"removed {_ids(action['unit_ids'])}"
    return str(op)


def units_before(action: dict) -> list:
    """Units an undo of ``action`` brings back (or keeps): what to select after it."""
    if action.get("op") == "split":
        return [action["unit_id"]]
    return list(action.get("unit_ids", []))


def units_after(action: dict) -> list:
    """Units ``action`` leaves in place of its inputs: what to select after doing it."""
    op = action.get("op")
    if op == "merge":
        return [action["new_unit_id"]]
    if op == "split":
        return list(action["new_unit_ids"])
    if op == "remove":
        return []
    return list(action.get("unit_ids", []))


class CurationBar(pn.viewable.Viewer):
    """Buttons and status of the curation loop over one Selection and the shared Curation."""

    curation = param.ClassSelector(class_=Curation, constant=True)
    selection = param.ClassSelector(class_=Selection, constant=True)
    status = param.String(default="", doc="The last message (an action or an error).")
    status_is_error = param.Boolean(default=False)

    def __init__(self, curation: Curation, selection: Selection, **params):
        super().__init__(curation=curation, selection=selection, **params)
        button = dict(height=32, margin=(4, 3), sizing_mode="fixed")
        self.good = pn.widgets.Button(label="Good", color="success", width=62, **button)
        self.mua = pn.widgets.Button(label="MUA", color="warning", width=58, **button)
        self.noise = pn.widgets.Button(label="Noise", color="danger", width=62, **button)
        self.tag_input = pn.widgets.TextInput(placeholder="tags, comma-separated", width=150,
                                              height=32, margin=(4, 3))
        self.tag_button = pn.widgets.Button(label="Tag", width=48, **button)
        self.merge_button = pn.widgets.Button(label="Merge", color="primary", width=70,
                                              **button)
        self.split_button = pn.widgets.Button(label="Split", color="primary", width=60,
                                              **button)
        self.remove_button = pn.widgets.Button(label="Remove", width=74, **button)
        self.undo_button = pn.widgets.Button(label="↶ Undo", width=74, **button)
        self.redo_button = pn.widgets.Button(label="↷ Redo", width=74, **button)
        self.good.on_click(lambda e: self.label("good"))
        self.mua.on_click(lambda e: self.label("mua"))
        self.noise.on_click(lambda e: self.label("noise"))
        self.tag_button.on_click(lambda e: self.tag())
        self.merge_button.on_click(lambda e: self.merge())
        self.split_button.on_click(lambda e: self.split())
        self.remove_button.on_click(lambda e: self.remove())
        self.undo_button.on_click(lambda e: self.undo())
        self.redo_button.on_click(lambda e: self.redo())
        self.status_pane = pn.pane.HTML("", stylesheets=[_CSS], sizing_mode="stretch_width",
                                        margin=(12, 8, 0, 8),
                                        css_classes=["spikeviz-status-line"])
        self.log_pane = pn.pane.HTML("", stylesheets=[_CSS], sizing_mode="stretch_width",
                                     css_classes=["spikeviz-action-log"])
        path = curation.log_path
        where = f"autosaved to {path}" if path is not None else \
            "not autosaved (no cache folder: the curation lives in memory only)"
        self.autosave_pane = pn.pane.HTML(
            f"<div class='spikeviz-autosave'>{html.escape(where)}</div>",
            stylesheets=[_CSS], sizing_mode="stretch_width")
        self.buttons = pn.Row(
            self.good, self.mua, self.noise, pn.Spacer(width=8), self.tag_input,
            self.tag_button, pn.Spacer(width=8), self.merge_button, self.split_button,
            self.remove_button, pn.Spacer(width=8), self.undo_button, self.redo_button,
            margin=0, css_classes=["spikeviz-curation-bar"])
        self._watchers = [
            (selection, selection.param.watch(self._update, ["unit_ids", "spike_indices"])),
            (curation, curation.param.watch(self._on_curation, ["sorting"])),
            (self.tag_input, self.tag_input.param.watch(self._update, ["value_input"])),
            (self, self.param.watch(self._render_status, ["status", "status_is_error"])),
        ]
        self._update()
        self._render_log()
        self._render_status()

    def __panel__(self):
        return self.buttons

    # -- actions ---------------------------------------------------------------------------
    def label(self, label: str) -> str | None:
        """Label the selected units ``label`` (good, mua, noise, unsorted)."""
        units = self._units("label")
        if units is None:
            return None
        return self._apply(lambda: self.curation.label(units, label), select="same")

    def tag(self, tags: str | list[str] | None = None) -> str | None:
        """Tag the selected units with ``tags`` (default: the comma-separated tag input)."""
        units = self._units("tag")
        if units is None:
            return None
        if tags is None:
            text = self.tag_input.value_input or self.tag_input.value or ""
            tags = [t.strip() for t in text.split(",") if t.strip()]
        elif isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        if not tags:
            return self._refuse("type a tag first")
        message = self._apply(lambda: self.curation.tag(units, tags), select="same")
        if message is not None:
            self.tag_input.param.update(value="", value_input="")
        return message

    def merge(self) -> str | None:
        """Merge the selected units; the new unit becomes the selection."""
        units = list(self.selection.unit_ids)
        if len(units) < 2:
            return self._refuse("select two or more units to merge")
        return self._apply(lambda: self.curation.merge(units))

    def split(self) -> str | None:
        """Split the selected spikes off the one selected unit; both parts are selected."""
        reason = self.split_refusal()
        if reason:
            return self._refuse(reason)
        unit = self.selection.unit_ids[0]
        positions = self._unit_spikes(unit)
        return self._apply(lambda: self.curation.split(unit, positions),
                           detail=f" ({positions.size:,} spikes split off)")

    def remove(self) -> str | None:
        """Remove the selected units (undo brings them back)."""
        units = self._units("remove")
        if units is None:
            return None
        return self._apply(lambda: self.curation.remove(units))

    def undo(self) -> str | None:
        """Undo the last action; the units it brings back are selected."""
        if not self.curation.can_undo:
            return self._refuse("nothing to undo")
        return self._apply(self.curation.undo, undo=True)

    def redo(self) -> str | None:
        """Redo the last undone action; the units it leaves are selected."""
        if not self.curation.can_redo:
            return self._refuse("nothing to redo")
        return self._apply(self.curation.redo, prefix="redid: ")

    def _apply(self, fn, select: str = "after", undo: bool = False, detail: str = "",
               prefix: str = ""):
        """Run a curation action; say what it did, select its units; None if refused.

        An error raised before the curation changed is a refusal (status + notification). An
        error raised after it changed comes from something following the curation (a view):
        the action stands, so it is reported, and the selection still moves on.
        """
        before = self.curation.sorting
        selected = list(self.selection.unit_ids)
        follower_error = None
        try:
            fn()
        except Exception as err:  # never a traceback in the page
            if self.curation.sorting is before:
                if not isinstance(err, SpikevizError):
                    log.exception("curation action failed")
                return self._refuse(_text(err))
            log.exception("the curation changed but something following it failed")
            follower_error = err
        if undo:
            action = self.curation.undone_actions[0]
            message, units = f"undid: {describe(action)}", units_before(action)
        else:
            action = self.curation.actions[-1]
            message = prefix + describe(action) + detail
            units = selected if select == "same" else units_after(action)
        self._select(units)
        self._say(message)
        if follower_error is not None:
            notify(f"{message}, but a view failed to update: {_text(follower_error)}",
                   "error", duration=10000)
        return message

    # -- state -----------------------------------------------------------------------------
    def split_refusal(self) -> str:
        """Why a split is impossible now ('' when it is possible)."""
        units = self.selection.unit_ids
        if len(units) != 1:
            return "select exactly one unit to split" if units else \
                "select one unit and some of its spikes to split"
        spikes = self.selection.spike_indices
        if spikes is None or spikes.size == 0:
            return "select spikes first (lasso in the amplitudes or features view)"
        positions = self._unit_spikes(units[0])
        if positions.size == 0:
            return f"none of the selected spikes belongs to unit {units[0]}"
        if positions.size == self.curation.sorting.spike_indices(units[0]).size:
            return f"all spikes of unit {units[0]} are selected: nothing would remain"
        return ""

    def _unit_spikes(self, unit_id) -> np.ndarray:
        """Selected spike positions that belong to ``unit_id`` (current curated sorting)."""
        spikes = self.selection.spike_indices
        sorting = self.curation.sorting
        if spikes is None or spikes.size == 0:
            return np.zeros(0, np.int64)
        try:
            index = sorting.unit_index_of(unit_id)
        except KeyError:
            return np.zeros(0, np.int64)
        spikes = spikes[spikes < sorting.num_spikes]
        return spikes[sorting.unit_index[spikes] == index]

    def _update(self, *events) -> None:
        """Enable the buttons whose action is possible. An enabled button's tooltip says what it
        does; a disabled one has none: browsers send no mouse events to a disabled button, so
        a tooltip shown when it became disabled under the pointer stayed over the next button
        and caught its clicks. Why an action is impossible is said in the status line when it
        is tried (a shortcut key) and by :meth:`split_refusal`."""
        n = len(self.selection.unit_ids)
        for widget, text in ((self.good, "Label the selected units good (g)"),
                             (self.mua, "Label the selected units mua (m)"),
                             (self.noise, "Label the selected units noise (n)"),
                             (self.remove_button, "Remove the selected units (Delete)")):
            _enable(widget, n > 0, text)
        has_tag = bool((self.tag_input.value_input or "").strip())
        _enable(self.tag_button, n > 0 and has_tag, "Add the typed tags to the selected units")
        _enable(self.merge_button, n >= 2, "Merge the selected units (Shift+M)")
        _enable(self.split_button, not self.split_refusal(),
                "Split the selected spikes off the unit (k)")
        curation = self.curation
        _enable(self.undo_button, curation.can_undo,
                f"Undo: {describe(curation.actions[-1])} (Ctrl+Z)" if curation.can_undo else "")
        _enable(self.redo_button, curation.can_redo,
                f"Redo: {describe(curation.undone_actions[0])} (Ctrl+Shift+Z)"
                if curation.can_redo else "")

    def _on_curation(self, event) -> None:
        self._update()
        self._render_log()

    def _render_log(self) -> None:
        done = [describe(a) for a in self.curation.actions][::-1][:LOG_LENGTH]
        undone = [describe(a) for a in self.curation.undone_actions][:LOG_LENGTH]
        if not done and not undone:
            body = "<i>no curation yet</i>"
        else:
            items = [f"<li class='undone'>{html.escape(t)}</li>" for t in undone[::-1]]
            items += [f"<li>{html.escape(t)}</li>" for t in done]
            body = f"<ol reversed style='margin:0;padding-left:22px'>{''.join(items)}</ol>"
        total = len(self.curation.actions)
        self.log_pane.object = (f"<div class='spikeviz-log'><b>{total} action"
                                f"{'s' if total != 1 else ''}</b>{body}</div>")

    def _render_status(self, *events) -> None:
        cls = "spikeviz-status error" if self.status_is_error else "spikeviz-status"
        self.status_pane.object = f"<div class='{cls}'>{html.escape(self.status)}</div>"

    # -- helpers -------------------------------------------------------------------------
    def _units(self, verb: str) -> list | None:
        units = list(self.selection.unit_ids)
        if not units:
            self._refuse(f"select units to {verb} first")
            return None
        return units

    def _select(self, unit_ids) -> None:
        alive = set(self.curation.sorting.unit_ids.tolist())
        try:
            self.selection.unit_ids = [u for u in unit_ids if u in alive]
        except SpikevizError:
            log.debug("could not select %r", unit_ids, exc_info=True)

    def _say(self, message: str) -> str:
        self.param.update(status=message, status_is_error=False)
        return message

    def _refuse(self, message: str) -> None:
        self.param.update(status=message, status_is_error=True)
        notify(message, "warning")
        return None

    def dispose(self) -> None:
        """Stop following the shared curation and the selection."""
        for obj, watcher in self._watchers:
            try:
                obj.param.unwatch(watcher)
            except (ValueError, KeyError):
                pass
        self._watchers.clear()


def _text(err: Exception) -> str:
    return str(err) if isinstance(err, SpikevizError) else f"{type(err).__name__}: {err}"


def notify(message: str, kind: str = "info", duration: int = 6000) -> None:
    """A notification toast when there is a page to show it on (not in tests or notebooks)."""
    notifications = pn.state.notifications
    if notifications is None:
        return
    try:
        getattr(notifications, kind)(message, duration=duration)
    except Exception:  # a closed page: nowhere to show it
        log.debug("notification not shown: %s", message, exc_info=True)


def _enable(button, enabled: bool, description: str) -> None:
    """``button`` enabled with the tooltip ``description``, or disabled without a tooltip."""
    button.param.update(disabled=not enabled, description=description if enabled else None)
