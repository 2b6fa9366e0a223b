"""Probe view: the channel layout with every unit's location; tap a unit to select it.

Channels are small squares at their (x, y) positions (µm, equal aspect); the channels within
``radius_um`` of a selected unit's peak channel are highlighted. Units are points at their
locations (``results.unit_locations()``; without them, the peak channel's position from the
unit frame's ``x_um`` / ``depth_um``): selected units large, outlined, in their colour; the
others small and faint. Hover names the unit, its label and depth.

The figure is built once: the channels are static, and a selection or curation change only
sends new data to the highlight, unit and focus glyphs (one DynamicMap stream, constant
structure). The axes auto-range on an invisible focus box: the probe's width by ±300 µm around
the first selected unit (the whole probe when none is selected), so a long probe does not open
as a thin strip; the view re-zooms when that box changes and keeps the user's pan/zoom
otherwise.

Tap (shift-tap for several) or box-select units: the indices Bokeh reports are mapped to unit
ids on the server through :attr:`Probe.frame` (the drawn rows, in order), exactly. The view
follows ``selection.unit_ids`` and ``curation.sorting`` (a merged unit appears at its location,
its parents vanish; undo brings them back).
"""

from __future__ import annotations

import html
import weakref

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.properties import field
from bokeh.models import BoxSelectTool, DataRange1d, TapTool

from .base import View
from .colors import BACKGROUND_COLOR, unit_color

CHANNEL_COLOR = "#d9d9d9"
HIGHLIGHT_COLOR = "#f2b35c"
PEAK_COLOR = "#d9822b"

FOCUS_HALF_HEIGHT_UM = 300.0  # the view zooms to ±this around the first selected unit
FOCUS_NAME = "probe-focus"  # the invisible box the auto-ranged axes fit

Version = hv.streams.Stream.define("Version", version=0)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _pitch(values: np.ndarray) -> float:
    steps = np.diff(np.unique(np.asarray(values, dtype=float)))
    steps = steps[steps > 0]
    return float(steps.min()) if steps.size else np.inf


class Probe(View):
    """Channel layout and unit locations; writes ``selection.unit_ids`` (tap, box-select)."""

    radius_um = param.Number(default=40.0, bounds=(0.0, None), doc="""
        Channels within this distance (µm) of a selected unit's peak channel are highlighted.""")
    min_height = param.Integer(default=500, bounds=(100, None), doc="Plot height, px.")

    def __init__(self, session, selection=None, curation=None, **params):
        super().__init__(session, selection, curation, **params)
        if "bokeh" not in hv.Store.renderers:
            hv.renderer("bokeh")
        self.renders = 0
        self.frame = self._empty_frame()
        self.highlighted_channel_ids: list = []
        self.peak_channel_ids: list = []
        self.missing_location = 0
        self.location_source = ""
        self.focus_box_um: tuple = ()  # (x0, y0, x1, y1) the axes fit, µm
        self._zoom = 0  # incremented when focus_box_um changes: the plot re-zooms
        self._zoomed = weakref.WeakKeyDictionary()  # Bokeh figure -> zoom applied
        self._focus_renderers = weakref.WeakKeyDictionary()  # Bokeh figure -> focus glyph
        self._version = Version()
        self._info = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        ids, loc = session.channel_ids, session.channel_locations_um
        self.has_geometry = ids is not None and loc is not None and len(ids) > 0
        if self.has_geometry:
            self._channel_ids = np.asarray(ids)
            self._xy = np.asarray(loc, dtype=np.float64)[:, :2]
            pitch = min(_pitch(self._xy[:, 0]), _pitch(self._xy[:, 1]))
            self.square_um = 0.6 * pitch if np.isfinite(pitch) else 10.0
            highlight = hv.DynamicMap(self._highlight_element, streams=[self._version])
            units = hv.DynamicMap(self._units_element, streams=[self._version])
            focus = hv.DynamicMap(self._focus_element, streams=[self._version])
            self._select = hv.streams.Selection1D(source=units)
            self._select.add_subscriber(self._on_select)
            self.plot = (highlight * focus * units).opts(hv.opts.Overlay(
                responsive=True, min_height=self.min_height, data_aspect=1,
                xlabel="x (µm)", ylabel="y (µm)", toolbar="above",
                active_tools=["wheel_zoom", "tap"], show_legend=False,
                hooks=[self._equal_aspect_hook]))
            body = pn.pane.HoloViews(self.plot, sizing_mode="stretch_both",
                                     min_height=self.min_height,
                                     css_classes=["spikeviz-probe"])
        else:
            self._select = None
            self.plot = None
            body = pn.pane.HTML("<i>No probe geometry in this session (no channel "
                                "locations), so the probe cannot be drawn.</i>",
                                sizing_mode="stretch_width")
        self._layout = pn.Column(self._info, body, sizing_mode="stretch_both",
                                 min_height=self.min_height + 30)
        self._watch(self.selection, ["unit_ids"], self._changed)
        self._watch(self.curation, ["sorting"], self._changed)
        self._watch(self, ["radius_um"], self._changed)
        self._start()

    @staticmethod
    def _empty_frame() -> pd.DataFrame:
        # typed like a real frame: BokehJS refuses a float64 (empty) colour column
        text = ["unit_id", "label", "color", "line_color"]
        number = ["x_um", "y_um", "depth_um", "size", "alpha"]
        columns = {c: pd.Series([], dtype=object) for c in text}
        columns.update({c: pd.Series([], dtype=np.float64) for c in number})
        columns["selected"] = pd.Series([], dtype=bool)
        return pd.DataFrame(columns)[["unit_id", "x_um", "y_um", "label", "depth_um", "color",
                                      "size", "alpha", "line_color", "selected"]]

    # -- data -----------------------------------------------------------------------------------
    def unit_locations(self) -> pd.DataFrame:
        """x_um, y_um of every unit of the current sorting (NaN where unknown):
        ``results.unit_locations()`` (template centre of mass with a recording, else the peak
        channel's position)."""
        self.location_source = "template centre of mass" \
            if self.session.recording is not None else "peak channel position"
        ids = pd.Index(self.sorting.unit_ids, name="unit_id")
        return self.results.unit_locations()[["x_um", "y_um"]].reindex(ids).astype(float)

    def compute_frame(self, unit_ids: list) -> pd.DataFrame:
        """One row per located unit of the current sorting (sorting order): position, label,
        depth, and the style of its point (selected: ``unit_ids``)."""
        loc = self.unit_locations()
        located = loc.dropna()
        labels = self.sorting.labels.reindex(located.index)
        chosen = set(unit_ids)
        ids = [_plain(u) for u in located.index.tolist()]
        selected = np.array([u in chosen for u in ids], dtype=bool)
        frame = pd.DataFrame({
            "unit_id": [str(u) for u in ids],
            "x_um": located["x_um"].to_numpy(),
            "y_um": located["y_um"].to_numpy(),
            "label": labels.astype(str).to_numpy(),
            "depth_um": located["y_um"].to_numpy(),
            "color": [unit_color(u, unit_ids) if chosen_ else BACKGROUND_COLOR
                      for u, chosen_ in zip(ids, selected.tolist(), strict=True)],
            "size": np.where(selected, 14.0, 7.0),
            "alpha": np.where(selected, 1.0, 0.6),
            "line_color": np.where(selected, "#000000", "#ffffff"),
            "selected": selected,
        }, index=pd.Index(ids, name="unit"))
        self.missing_location = int(len(loc) - len(located))
        return frame

    def channels_near(self, unit_ids: list) -> tuple[list, list]:
        """(peak channel ids, channel ids within ``radius_um`` of a peak channel) of the
        selected units (probe order)."""
        if not unit_ids or not self.has_geometry:
            return [], []
        peaks = [p for p in self.results.peak_channel_ids(unit_ids).tolist() if p is not None]
        where = {_plain(c): i for i, c in enumerate(self._channel_ids.tolist())}
        peak_index = [where[_plain(p)] for p in np.asarray(peaks).tolist()
                      if _plain(p) in where]
        if not peak_index:
            return [], []
        d = np.hypot(self._xy[:, None, 0] - self._xy[None, peak_index, 0],
                     self._xy[:, None, 1] - self._xy[None, peak_index, 1]).min(axis=1)
        near = np.flatnonzero(d <= self.radius_um + 1e-9)
        ids = self._channel_ids.tolist()
        return [ids[i] for i in sorted(set(peak_index))], [ids[i] for i in near]

    # -- updates --------------------------------------------------------------------------------
    def _changed(self, *events) -> None:
        self.refresh()

    def refresh(self) -> None:
        if not self.has_geometry:
            self._info.object = ""
            return
        self.renders += 1
        units = list(self.selection.unit_ids)
        self.frame = self.compute_frame(units)
        self.peak_channel_ids, self.highlighted_channel_ids = self.channels_near(units)
        box = self.focus_box(units)
        if box != self.focus_box_um:
            self.focus_box_um, self._zoom = box, self._zoom + 1
        self._info.object = self._info_html()
        self._version.event(version=self._version.version + 1)

    def focus_box(self, unit_ids: list) -> tuple:
        """(x0, y0, x1, y1) µm the axes fit: the channels' x extent by ±FOCUS_HALF_HEIGHT_UM
        around the first selected unit's y, clipped to the channels' y extent (the whole probe
        when no located unit is selected)."""
        (x0, y0), (x1, y1) = self._xy.min(axis=0), self._xy.max(axis=0)
        h = self.square_um / 2
        x0, y0, x1, y1 = x0 - h, y0 - h, x1 + h, y1 + h
        first = _plain(unit_ids[0]) if unit_ids else None
        if first is not None and first in self.frame.index:
            y = float(self.frame.loc[first, "y_um"])
            lo, hi = y - FOCUS_HALF_HEIGHT_UM, y + FOCUS_HALF_HEIGHT_UM
            y0, y1 = max(y0, lo), min(y1, hi)
            if y1 <= y0:  # a unit far off the probe: centre on it
                y0, y1 = lo, hi
        return (float(x0), float(y0), float(x1), float(y1))

    def unit_at_index(self, index: int):
        """Unit id of row ``index`` of the drawn points (what Bokeh reports)."""
        return self.frame.index[int(index)]

    def _on_select(self, index=None, **_) -> None:
        if not index or not len(self.frame):
            return  # an empty selection (click beside the units) keeps the current one
        units = [_plain(self.unit_at_index(i)) for i in index if 0 <= i < len(self.frame)]
        ordered = [u for u in self.selection.unit_ids if u in units]
        self.selection.unit_ids = ordered + [u for u in units if u not in ordered]

    # -- rendering --------------------------------------------------------------------------------
    def _squares(self, indices) -> list:
        h = self.square_um / 2
        return [(x - h, y - h, x + h, y + h) for x, y in self._xy[indices].tolist()]

    def _equal_aspect_hook(self, plot, element) -> None:
        """One µm is as long on x as on y whatever the plot's size: Bokeh's match_aspect,
        which needs auto-ranging (DataRange1d) axes, fitted to the focus box only. A new focus
        box re-zooms: changing ``default_span`` makes BokehJS drop the user's pan/zoom and
        auto-range again (otherwise new data keeps it)."""
        fig = plot.state
        fig.toolbar.logo = None
        if not isinstance(fig.x_range, DataRange1d):
            fig.x_range = DataRange1d(range_padding=0.05)
            fig.y_range = DataRange1d(range_padding=0.02)
        fig.match_aspect = True
        fig.aspect_scale = 1.0
        if fig not in self._zoomed:  # the channels: static, drawn once, under the rest
            squares = np.array(self._squares(np.arange(len(self._channel_ids))))
            fig.quad(left=squares[:, 0], bottom=squares[:, 1], right=squares[:, 2],
                     top=squares[:, 3], color=CHANNEL_COLOR, line_alpha=0, level="underlay")
        focus = self._focus_renderers.get(fig)
        if focus is not None and fig.y_range.renderers != [focus]:
            fig.x_range.renderers = [focus]
            fig.y_range.renderers = [focus]
        if self._zoomed.get(fig, self._zoom) != self._zoom:
            for rng in (fig.x_range, fig.y_range):
                rng.default_span = 2.0 if rng.default_span != 2.0 else 2.0 + 1e-9
        self._zoomed[fig] = self._zoom

    @staticmethod
    def _units_hook(plot, element) -> None:
        """Map the points' colour, size and alpha to their data columns in Bokeh directly
        (a HoloViews style mapping validates every value on every update: ~100 ms for 500
        units), and draw selected points as the data says (no selection dimming)."""
        renderer = plot.handles["glyph_renderer"]
        renderer.glyph.update(fill_color=field("color"), line_color=field("line_color"),
                              size=field("size"), fill_alpha=field("alpha"),
                              line_alpha=field("alpha"))
        renderer.selection_glyph = None
        renderer.nonselection_glyph = None
        for tool in plot.state.tools:  # tap and box-select pick units, nothing else
            if isinstance(tool, (TapTool, BoxSelectTool)):
                tool.renderers = [renderer]

    def _highlight_element(self, version=0):
        where = {c: i for i, c in enumerate(self._channel_ids.tolist())}
        near = [where[c] for c in self.highlighted_channel_ids]
        peaks = {where[c] for c in self.peak_channel_ids}
        rects = self._squares(near)
        colors = [PEAK_COLOR if i in peaks else HIGHLIGHT_COLOR for i in near]
        # typed columns even when empty: BokehJS refuses a float64 colour array
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        data = pd.DataFrame({"x0": rects[:, 0], "y0": rects[:, 1], "x1": rects[:, 2],
                             "y1": rects[:, 3], "color": pd.Series(colors, dtype=object)})
        return hv.Rectangles(data, vdims="color").opts(color="color", line_alpha=0)

    def _units_element(self, version=0):
        points = hv.Points(self.frame, kdims=["x_um", "y_um"],
                           vdims=["unit_id", "label", "depth_um", "color", "size", "alpha",
                                  "line_color"])
        selected = np.flatnonzero(self.frame["selected"].to_numpy()).tolist()
        return points.opts(
            tools=["hover", "tap", "box_select"], selected=selected, hooks=[self._units_hook],
            hover_tooltips=[("unit", "@unit_id"), ("label", "@label"),
                            ("depth (µm)", "@depth_um{0.0}"), ("x (µm)", "@x_um{0.0}")])

    def _focus_element(self, version=0):
        """An invisible box the axes fit (see :meth:`focus_box`)."""
        box = self.focus_box_um or self.focus_box([])
        return hv.Rectangles([box]).opts(alpha=0, line_alpha=0, hooks=[self._name_focus])

    def _name_focus(self, plot, element) -> None:
        renderer = plot.handles["glyph_renderer"]
        renderer.name = FOCUS_NAME
        self._focus_renderers[plot.state] = renderer

    def _info_html(self) -> str:
        units = self.selection.unit_ids
        sel = ", ".join(f"<b style='color:{unit_color(u, units)}'>"
                        f"{html.escape(str(u))}</b>" for u in units[:12]) or "none"
        more = f" and {len(units) - 12} more" if len(units) > 12 else ""
        note = f" &middot; {self.missing_location} without a location" \
            if self.missing_location else ""
        return (f"Selected: {sel}{more} &middot; {len(self.frame)} units "
                f"({self.location_source}){note} &middot; {len(self._channel_ids)} channels")
