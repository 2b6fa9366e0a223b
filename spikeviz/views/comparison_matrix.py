"""Heatmaps of a comparison: the agreement matrix and the confusion matrix.

Both are ONE image (``hv.Image``: one Bokeh image glyph whatever the number of units, never a
rect per cell), so 1000 x 1000 units draw as a 1000 x 1000 float32 image (4 MB); above
:data:`REGRID_CELLS` cells the image is regridded server-side to the plot's pixels with the
*maximum* of the cells under each pixel (``holoviews.operation.datashader.regrid``), so a
match never disappears. Cell ``(i, j)`` (row i from the top, column j from the left) covers
``x in [j, j + 1)``, ``y in [n_rows - 1 - i, n_rows - i)``. Hover names both unit ids and the
value (exact, from the server's arrays); a tap on a cell writes the pair to the
:class:`~spikeviz.model.comparison_selection.ComparisonSelection`; the selected pair is
outlined.

- :class:`AgreementMatrix`: ``Comparison.ordered_agreement()`` (rows by decreasing best score,
  each row's best free column next: matches on the diagonal) or unit order; Hungarian matches
  marked with a square.
- :class:`ConfusionMatrix`: ``Comparison.confusion_matrix()`` (coincident spike counts of the
  matched pairs on the diagonal, then unmatched; an "FP" row and "FN" column), counts written
  in the cells when there are few.
"""

from __future__ import annotations

import html

import holoviews as hv
import numpy as np
import panel as pn
import param
from bokeh.models import CustomJSHover, CustomJSTickFormatter, FixedTicker

from .comparison_base import ComparisonView, holoviews_pane, plain, side_label

#: Above this many cells the heatmap is regridded to the screen's pixels (max per pixel).
REGRID_CELLS = 2_000_000
#: Up to this many rows/columns every tick is labelled with its unit id; beyond, a subset.
MAX_TICK_LABELS = 60
#: Counts are written in the confusion matrix's cells up to this many cells.
MAX_CELL_LABELS = 900
SELECTED_COLOR = "#d62728"
MATCH_COLOR = "#ffffff"  # white squares: a match is never lighter than mid-blue (>= 0.5)

_LABEL_JS = "const i = Math.floor(%s); return (i >= 0 && i < labels.length) ? labels[i] : '';"


class HeatmapView(ComparisonView):
    """A matrix of the comparison as one image; subclasses give :meth:`matrix`."""

    min_height = param.Integer(default=380, bounds=(150, None), doc="Plot height, px.")
    cmap = "Blues"
    value_label = "value"
    value_format = "0.000"

    def __init__(self, comparison, selection=None, **params):
        super().__init__(comparison, selection, **params)
        self._pair_stream = hv.streams.Stream.define("Pair", pair=(None, None))()
        self._version = hv.streams.Stream.define("Version", version=0)()
        self._set_matrix()
        self._x_hover = CustomJSHover(args={"labels": []}, code=_LABEL_JS % "value")
        self._y_hover = CustomJSHover(args={"labels": []}, code=_LABEL_JS % "value")
        image = hv.DynamicMap(self._image, streams=[self._version])
        if self.values.size > REGRID_CELLS:
            import datashader as ds
            from holoviews.operation.datashader import regrid
            image = regrid(image, aggregator=ds.max("value"), upsample=False)
        self._tap = hv.streams.Tap(source=image)
        self._tap.add_subscriber(self._on_tap)
        marks = hv.DynamicMap(self._marks, streams=[self._version])
        outline = hv.DynamicMap(self._outline, streams=[self._pair_stream, self._version])
        self.plot = (image * marks * outline).opts(self._opts())
        self._info = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["spikeviz-comparison-info"])
        self._pane = holoviews_pane(self.plot, sizing_mode="stretch_both",
                                    min_height=self.min_height, margin=(0, 5),
                                    css_classes=[f"spikeviz-{self.css_name}"])
        self._layout = pn.Column(*self._controls(), self._info, self._pane,
                                 sizing_mode="stretch_both", min_height=self.min_height + 40)
        self._watch(self.selection, ["unit1", "unit2"], self._on_pair)
        self._start()

    css_name = "heatmap"

    # -- data --------------------------------------------------------------------------------
    def matrix(self):
        """``(values (rows, cols) float, row labels, column labels, row unit ids, column unit
        ids)``; ids are None for rows/columns that are not units (FP / FN)."""
        raise NotImplementedError

    def _set_matrix(self) -> None:
        values, self.row_labels, self.col_labels, self.row_ids, self.col_ids = self.matrix()
        self.values = np.asarray(values, dtype=np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    def cell_of(self, x: float, y: float) -> tuple[int, int] | None:
        """``(row, column)`` of the cell at data coordinates (x, y), or None outside."""
        if x is None or y is None or not (np.isfinite(x) and np.isfinite(y)):
            return None
        n_rows, n_cols = self.shape
        j, i = int(np.floor(x)), int(np.floor(n_rows - y))
        if 0 <= i < n_rows and 0 <= j < n_cols:
            return i, j
        return None

    def pair_at(self, x: float, y: float) -> tuple | None:
        """The unit pair ``(unit1, unit2)`` of the cell at (x, y) (None for FP/FN sides)."""
        cell = self.cell_of(x, y)
        if cell is None:
            return None
        return plain(self.row_ids[cell[0]]), plain(self.col_ids[cell[1]])

    def tap(self, x: float, y: float) -> None:
        """What a tap at (x, y) does: select the cell's pair (nothing outside the matrix)."""
        pair = self.pair_at(x, y)
        if pair is not None and pair != (None, None):
            self.selection.select(*pair)

    def _on_tap(self, x=None, y=None, **_) -> None:
        self.tap(x, y)

    def position(self, unit1, unit2) -> tuple[int | None, int | None]:
        """(row, column) of the pair's units (None where not shown)."""
        def find(ids, unit):
            if unit is None:
                return None
            hits = np.flatnonzero([plain(u) == unit for u in ids])
            return int(hits[0]) if hits.size else None
        return find(self.row_ids, unit1), find(self.col_ids, unit2)

    # -- drawing -----------------------------------------------------------------------------
    def refresh(self) -> None:
        self._x_hover.args = {"labels": [str(v) for v in self.col_labels]}
        self._y_hover.args = {"labels": [str(v) for v in self.row_labels][::-1]}
        self._pair_stream.event(pair=self.selection.pair)
        self._info.object = self._info_html()

    def _on_pair(self, *events) -> None:
        self._pair_stream.event(pair=self.selection.pair)
        self._info.object = self._info_html()

    def _image(self, version=0):
        n_rows, n_cols = self.shape
        return hv.Image(self.values, bounds=(0, 0, max(n_cols, 1), max(n_rows, 1)),
                        kdims=["x", "y"], vdims=[hv.Dimension("value", label=self.value_label)])

    def _marks(self, version=0):
        return hv.Points(([], []), kdims=["x", "y"])

    def _outline(self, pair=(None, None), version=0):
        n_rows, n_cols = self.shape
        i, j = self.position(*pair)
        boxes = []
        if i is not None and j is not None:
            boxes.append((j, n_rows - 1 - i, j + 1, n_rows - i))
        elif i is not None:
            boxes.append((0, n_rows - 1 - i, n_cols, n_rows - i))
        elif j is not None:
            boxes.append((j, 0, j + 1, n_rows))
        return hv.Rectangles(boxes, kdims=["x0", "y0", "x1", "y1"])

    def _ticks(self, labels, reverse: bool):
        n = len(labels)
        shown = range(n) if n <= MAX_TICK_LABELS else \
            np.unique(np.linspace(0, n - 1, MAX_TICK_LABELS // 2).astype(int))
        text = [str(v) for v in labels]
        if reverse:
            return [(n - 1 - k + 0.5, text[k]) for k in shown]
        return [(k + 0.5, text[k]) for k in shown]

    def _axis_hook(self, plot, element) -> None:
        plot.state.toolbar.logo = None
        fig = plot.state
        for axis, labels, reverse in ((fig.xaxis, self.col_labels, False),
                                      (fig.yaxis, self.row_labels, True)):
            ticks = self._ticks(labels, reverse)
            for a in axis:
                a.ticker = FixedTicker(ticks=[t for t, _ in ticks])
                a.major_label_overrides = {float(t): s for t, s in ticks}
                a.formatter = CustomJSTickFormatter(code="return '';") if not ticks else \
                    a.formatter
        fig.xaxis.major_label_orientation = 0.9 if len(self.col_labels) > 12 else 0.0
        x_range, y_range = plot.handles.get("x_range"), plot.handles.get("y_range")
        n_rows, n_cols = self.shape
        if x_range is not None:
            x_range.bounds = (0, max(n_cols, 1))
        if y_range is not None:
            y_range.bounds = (0, max(n_rows, 1))

    def _opts(self, responsive: bool = True) -> list:
        tools = ["save", "pan", "wheel_zoom", "box_zoom", "reset"]
        size = {"responsive": True, "min_height": self.min_height} if responsive else \
            {"width": 900, "height": 820}
        big = max(self.shape) > 40
        return [
            hv.opts.Image(cmap=self.cmap, colorbar=True, clim=self._clim(), cnorm=self._cnorm(),
                          clipping_colors={"min": "white", "NaN": "white"},
                          tools=["hover", "tap"], default_tools=tools,
                          hover_tooltips=[(side_label(self.comparison, 1), "$y{custom}"),
                                          (side_label(self.comparison, 2), "$x{custom}"),
                                          (self.value_label, f"@image{{{self.value_format}}}")],
                          hover_formatters={"$x": self._x_hover, "$y": self._y_hover},
                          colorbar_opts={"title": self.value_label}),
            hv.opts.Points(marker="square", fill_alpha=0, line_color=MATCH_COLOR,
                           line_width=1 if big else 1.5, size=4 if big else 12,
                           default_tools=tools),
            hv.opts.Rectangles(fill_alpha=0, line_color=SELECTED_COLOR, line_width=2.5,
                               default_tools=tools),
            hv.opts.Labels(text_font_size="8pt", default_tools=tools),
            hv.opts.Overlay(xlabel=f"{side_label(self.comparison, 2)}: "
                                   f"{self.comparison.names[1]}",
                            ylabel=f"{side_label(self.comparison, 1)}: "
                                   f"{self.comparison.names[0]}",
                            show_grid=False, show_legend=False, toolbar="above",
                            active_tools=["wheel_zoom"], default_tools=tools,
                            hooks=[self._axis_hook], **size),
        ]

    def _clim(self):
        return (0.0, 1.0)

    def _cnorm(self):
        return "linear"

    def _controls(self) -> list:
        return []

    def _info_html(self) -> str:
        return ""

    def static_plot(self):
        """The heatmap for a file (fixed size, not linked): what the PNG export renders."""
        overlay = self._image() * self._marks() * self._outline(self.selection.pair)
        c = self.comparison
        title = (f"{self.value_label}: {c.names[0]} vs {c.names[1]} "
                 f"({c.num_matched} matched, delta {c.delta_ms:g} ms)")
        return overlay.opts(self._opts(responsive=False)).opts(
            hv.opts.Overlay(toolbar=None, title=title))


class AgreementMatrix(HeatmapView):
    """Agreement scores of every unit pair, ordered by best match (or unit order).

    Hungarian matches are marked with a square; a tap selects the pair.
    """

    order = param.Selector(default="best match", objects=["best match", "unit id"], doc="""
        'best match': Comparison.ordered_agreement() (matches on the diagonal); 'unit id':
        both sortings in unit order.""")
    value_label = "agreement"
    css_name = "agreement-matrix"

    def __init__(self, comparison, selection=None, **params):
        super().__init__(comparison, selection, **params)
        self.param.watch(self._on_order, ["order"])

    def matrix(self):
        c = self.comparison
        frame = c.ordered_agreement() if self.order == "best match" else c.agreement
        rows, cols = frame.index.to_numpy(), frame.columns.to_numpy()
        return frame.to_numpy(), rows, cols, rows, cols

    def _on_order(self, *events) -> None:
        self._set_matrix()
        self._version.event(version=self._version.version + 1)
        self._run(self.refresh)

    def matched_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) of the Hungarian matches in the drawn matrix."""
        matches = self.comparison.matches
        col_of = {plain(u): j for j, u in enumerate(self.col_ids)}
        rows, cols = [], []
        for i, u in enumerate(self.row_ids):
            v = plain(matches.get(u))
            if v is not None and v in col_of:
                rows.append(i)
                cols.append(col_of[v])
        return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)

    def _marks(self, version=0):
        rows, cols = self.matched_cells()
        n_rows = self.shape[0]
        return hv.Points((cols + 0.5, n_rows - rows - 0.5), kdims=["x", "y"])

    def _controls(self) -> list:
        return [pn.widgets.RadioButtonGroup.from_param(self.param.order, margin=(0, 10),
                                                       css_classes=["spikeviz-matrix-order"])]

    def _info_html(self) -> str:
        c = self.comparison
        n1, n2 = c.sorting1.num_units, c.sorting2.num_units
        text = (f"{n1} × {n2} units · {c.num_matched} matched (□, Hungarian, agreement ≥ "
                f"{c.match_score:g}) · tap a cell to compare the two units")
        return f"<span style='color:#555'>{html.escape(text)}</span>"


class ConfusionMatrix(HeatmapView):
    """Coincident spike counts of matched pairs (diagonal), unmatched units, FP row, FN
    column (SpikeInterface's confusion matrix); a tap selects the pair."""

    value_label = "spikes"
    value_format = "0,0"
    css_name = "confusion-matrix"

    def matrix(self):
        frame = self.comparison.confusion_matrix()
        rows, cols = frame.index.to_numpy(), frame.columns.to_numpy()
        row_ids = np.array([None if (k == len(rows) - 1) else r for k, r in enumerate(rows)],
                           dtype=object)
        col_ids = np.array([None if (k == len(cols) - 1) else r for k, r in enumerate(cols)],
                           dtype=object)
        return frame.to_numpy(), rows, cols, row_ids, col_ids

    def _cnorm(self):
        return "log"

    def _clim(self):  # log colours from 1 spike; 0 (below) is white
        top = float(self.values.max()) if self.values.size else 1.0
        return (1.0, max(top, 2.0))

    def _marks(self, version=0):
        n_rows, n_cols = self.shape
        if n_rows * n_cols > MAX_CELL_LABELS:
            return hv.Labels(([], [], [], []), kdims=["x", "y"], vdims=["text", "color"])
        i, j = np.nonzero(self.values > 0)
        values = self.values[i, j]
        text = [f"{int(v):,}" for v in values]
        # white on the darker half of the (log) colour scale
        top = np.log(max(float(values.max()) if values.size else 2.0, 2.0))
        color = np.where(np.log(np.maximum(values, 1.0)) > 0.55 * top, "white", "#222222")
        return hv.Labels((j + 0.5, n_rows - i - 0.5, text, color), kdims=["x", "y"],
                         vdims=["text", "color"]).opts(text_color="color")

    def _info_html(self) -> str:
        text = ("coincident spikes of each matched pair on the diagonal; FP: tested spikes "
                "matching no ground-truth spike, FN: ground-truth spikes missed"
                if self.comparison.ground_truth else
                "coincident spikes of each pair; last row/column: spikes of a unit not "
                "matched by its Hungarian partner")
        return f"<span style='color:#555'>{html.escape(text)}</span>"
