"""Keyboard shortcuts of the curation loop: the table, key normalisation, the browser listener.

:data:`SHORTCUTS` is the one table the listener, the dashboard's dispatcher and the help panel
all read. Keys are normalised combos: modifiers ``ctrl``, ``alt``, ``shift`` in that order, then
the key (lower-case letter, ``space``, ``delete``, ``escape``, or the printed character), e.g.
``"g"``, ``"shift+m"``, ``"ctrl+shift+z"``, ``"space"``, ``"."``. Cmd on macOS counts as Ctrl.

:class:`KeyListener` is a tiny ``pn.custom.JSComponent``: it listens to ``keydown`` on the whole
page, ignores keys typed into inputs, text areas, selects and editable elements (so a tag can be
typed), ignores auto-repeat, and sends only the combos of the table to Python, where
``on_key(combo)`` is called. The browser's default for those keys (Space scrolling the page) is
prevented. It occupies no space in the layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import panel as pn
import param


@dataclass(frozen=True)
class Shortcut:
    keys: tuple[str, ...]  # normalised combos
    action: str  # the dashboard method's name: Dashboard.<action>()
    label: str  # for the help panel


#: The curation loop. ``action`` names a method of the dashboard (see ``Dashboard.do``).
SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut(("g",), "label_good", "label the selected units good"),
    Shortcut(("m",), "label_mua", "label the selected units mua (multi-unit)"),
    Shortcut(("n",), "label_noise", "label the selected units noise"),
    Shortcut(("u",), "label_unsorted", "label the selected units unsorted (clear the label)"),
    Shortcut(("shift+m",), "merge", "merge the selected units (the new unit is selected)"),
    Shortcut(("k",), "split", "split the selected spikes off the selected unit"),
    Shortcut(("delete",), "remove", "remove the selected units"),
    Shortcut(("ctrl+z",), "undo", "undo the last action"),
    Shortcut(("ctrl+shift+z", "ctrl+y"), "redo", "redo"),
    Shortcut(("space",), "next_best", "next best unit (wizard: the best unit not yet seen)"),
    Shortcut(("shift+space",), "previous_best", "previous best unit"),
    Shortcut((".",), "next_similar", "next unit most similar to the best unit"),
    Shortcut((",",), "previous_similar", "previous similar unit"),
    Shortcut(("escape",), "clear_spikes", "clear the spike selection"),
    Shortcut(("?",), "toggle_help", "show or hide this help"),
)

#: combo -> action name
KEYMAP: dict[str, str] = {key: s.action for s in SHORTCUTS for key in s.keys}

_NAMED = {" ": "space", "spacebar": "space", "del": "delete", "esc": "escape"}


def normalize_key(key: str, ctrl: bool = False, alt: bool = False, shift: bool = False) -> str:
    """The combo of a browser ``KeyboardEvent`` (``event.key`` and its modifier flags).

    Letters are lower-cased (``"M"`` with shift is ``"shift+m"``). For any other printed
    character the shift is already in the character (``"?"``, ``">"``) and is dropped.
    """
    if not isinstance(key, str) or not key:
        return ""
    name = _NAMED.get(key.lower(), key)
    if len(name) == 1:
        if name.isalpha():
            name = name.lower()
        else:
            shift = False
    else:
        name = name.lower()
    mods = [m for m, on in (("ctrl", ctrl), ("alt", alt), ("shift", shift)) if on]
    return "+".join([*mods, name])


def display_key(combo: str) -> str:
    """A combo as shown in the help panel: ``"ctrl+shift+z"`` -> ``"Ctrl+Shift+Z"``."""
    names = {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "space": "Space",
             "delete": "Delete", "escape": "Esc"}
    parts = combo.split("+") if len(combo) > 1 else [combo]
    return "+".join(names.get(p, p.upper() if p.isalpha() else p) for p in parts)


class KeyListener(pn.custom.JSComponent):
    """Sends the shortcut combos typed anywhere on the page (outside inputs) to ``on_key``."""

    keys = param.List(default=sorted(KEYMAP), doc="The combos sent to Python.")
    enabled = param.Boolean(default=True, doc="False: keys are ignored.")

    _esm = """
    const NAMED = {" ": "space", "spacebar": "space", "del": "delete", "esc": "escape"};
    function combo(e) {
      let name = NAMED[e.key.toLowerCase()] || e.key;
      let shift = e.shiftKey;
      if (name.length === 1) {
        if (/[a-z]/i.test(name)) { name = name.toLowerCase(); } else { shift = false; }
      } else { name = name.toLowerCase(); }
      const mods = [];
      if (e.ctrlKey || e.metaKey) mods.push("ctrl");
      if (e.altKey) mods.push("alt");
      if (shift) mods.push("shift");
      return mods.concat([name]).join("+");
    }
    function typing(e) {
      const path = e.composedPath ? e.composedPath() : [e.target];
      for (const el of path) {
        if (!el || !el.tagName) continue;
        const tag = el.tagName.toUpperCase();
        if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable) {
          return true;
        }
      }
      return false;
    }
    export function render({ model }) {
      const handler = (e) => {
        if (!model.enabled || e.repeat || !e.key || typing(e)) return;
        const c = combo(e);
        if (!model.keys.includes(c)) return;
        e.preventDefault();
        e.stopPropagation();
        model.send_msg({combo: c});
      };
      document.addEventListener("keydown", handler, true);
      model.on("remove", () => document.removeEventListener("keydown", handler, true));
      const el = document.createElement("span");
      el.className = "spikeviz-keys";
      el.style.display = "none";
      return el;
    }
    """

    def __init__(self, on_key: Callable[[str], object] | None = None, **params):
        params.setdefault("height", 0)
        params.setdefault("width", 0)
        params.setdefault("margin", 0)
        super().__init__(**params)
        self._on_key = on_key

    def _handle_msg(self, data) -> None:
        combo = data.get("combo") if isinstance(data, dict) else None
        if isinstance(combo, str) and combo in KEYMAP and self._on_key is not None:
            self._on_key(combo)
