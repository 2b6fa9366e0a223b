"""UnitTable: one row per unit of the current curated sorting, filterable, linked to Selection.

Rows are the units of ``curation.sorting`` in its unit order; columns come from
``CuratedAnalysis.unit_frame()`` (label, tags, spike count, firing rate, amplitude, peak
channel, depth, every quality metric, the sorting's own unit-table columns), with ``unit_id``
first. Rows are filtered by the column header filters and by :attr:`UnitTable.expression`, a
safe expression over the columns (``snr > 5 and label == "good"``; see
:mod:`spikeviz.views.expression`): an invalid one is shown under the box
(:attr:`UnitTable.filter_error`) and the previous valid filter stays.

Selecting rows writes ``Selection.unit_ids``; a change of ``Selection.unit_ids`` from anywhere
else selects the matching rows. The two directions cannot loop: each side only writes when the
other's value differs as a set, and a guard ignores the echo of its own write.

After each curation action the table is updated in place: a label/tag action patches the
changed cells (``Tabulator.patch``), an action that changes the set of units (merge, split,
remove, their undo) replaces the data; sorters, header filters and the expression stay.

A raw unit-table column that merely repeats the label, ignoring case (Phy's ``group``,
bombcell's ``bc_unitType``), is hidden: it stays in the data and the label header's tooltip
names it. A raw column that disagrees with the label for any unit stays visible.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import HTMLTemplateFormatter, NumberFormatter

from ..errors import InputError
from ..model.depth import DEPTH_COLUMN, PEAK_CHANNEL_COLUMN, TEMPLATES_SOURCE, unit_depths_um
from ..model.session import Session
from ..model.sorting import Sorting
from .base import View
from .expression import Expression

#: The frozen unit-id column keeps its row's background when the table scrolls sideways
#: (transparent in Panel's theme, so the scrolled cells showed through it).
FROZEN_CSS = """
.tabulator-row .tabulator-cell.tabulator-frozen { background-color: #ffffff !important; }
.tabulator-row.tabulator-row-even .tabulator-cell.tabulator-frozen {
  background-color: #f4f4f4 !important; }
.tabulator-row.tabulator-selected .tabulator-cell.tabulator-frozen {
  background-color: #2c6e9e !important; color: #ffffff; }
.tabulator-row.tabulator-selectable:hover:not(.tabulator-selected)
  .tabulator-cell.tabulator-frozen { background-color: #e6eef5 !important; color: inherit; }
"""

#: Columns every table starts with, in this order.
FIXED_COLUMNS = ("unit_id", "label", "tags", "num_spikes", "firing_rate_hz")

TITLES = {"unit_id": "unit", "num_spikes": "spikes", "firing_rate_hz": "rate (Hz)",
          "amplitude_uv": "amplitude (µV)", PEAK_CHANNEL_COLUMN: "channel",
          DEPTH_COLUMN: "depth (µm)", "x_um": "x (µm)",
          # quality metrics (SpikeInterface's names stay the field names, for expressions)
          "presence_ratio": "presence", "isi_violations_ratio": "ISI viol. ratio",
          "isi_violations_count": "ISI viol.", "firing_range": "rate range (Hz)",
          "snr": "SNR", "amplitude_cutoff": "amp. cutoff", "amplitude_median": "amp. median",
          "isolation_distance": "isol. distance", "l_ratio": "L-ratio", "d_prime": "d′",
          "rp_contamination": "RP contam.", "sliding_rp_violation": "sliding RP viol.",
          "amplitude_cv_median": "amp. CV", "silhouette": "silhouette",
          "nn_hit_rate": "NN hit rate", "nn_miss_rate": "NN miss rate"}

#: Metric columns that repeat a fixed column (the metric's firing rate is spikes / duration,
#: the "rate (Hz)" column): hidden, still usable in expressions.
REPEATED_COLUMNS = ("firing_rate",)

#: Label cell colours (background) by label.
LABEL_COLORS = {"good": "#b7e4b0", "mua": "#ffc98a", "noise": "#d4d4d4"}

#: What "depth (µm)" means; the unit table's depth is y in the probe's channel locations.
DEPTH_TOOLTIP = "y on the probe, µm from the tip; larger = shallower"
_DEPTH_SOURCES = {
    DEPTH_COLUMN: "from the unit table's depth_um column",
    PEAK_CHANNEL_COLUMN: "y of the unit's peak channel (peak_channel_id)",
    TEMPLATES_SOURCE: "y of the peak channel of the unit's template",
}

EXPRESSION_HELP = ('Filter rows: e.g. snr > 5 and label == "good"; label in ["good", "mua"]; '
                   "column names, numbers, strings, == != < <= > >=, and/or/not, + - * /; "
                   "`a column` in backticks")


def basic_unit_frame(session: Session, sorting: Sorting | None = None) -> pd.DataFrame:
    """Unit table from the sorting alone (no derived results), indexed by ``unit_id``.

    ``label``, ``tags``, ``num_spikes``, ``firing_rate_hz`` (spikes / duration, Hz; NaN for a
    zero-length session), ``depth_um`` of units the session knows a depth for (see
    ``model.depth``), then the sorting's own unit-table columns.
    """
    sorting = session.sorting if sorting is None else sorting
    counts = sorting.spike_counts().to_numpy()
    duration = sorting.duration_s
    rate = counts / duration if duration > 0 else np.full(counts.shape, np.nan)
    table = sorting.unit_table
    frame = pd.DataFrame({
        "label": sorting.labels.to_numpy(dtype=object),
        "tags": table["tags"].fillna("").astype(str).to_numpy(dtype=object)
        if "tags" in table else np.full(sorting.num_units, "", dtype=object),
        "num_spikes": counts.astype(np.int64),
        "firing_rate_hz": rate.astype(np.float64),
    }, index=pd.Index(sorting.unit_ids, name="unit_id"))
    depths, source = unit_depths_um(session)
    if source and DEPTH_COLUMN not in table:
        known = dict(zip(session.sorting.unit_ids.tolist(), depths.tolist(), strict=True))
        frame[DEPTH_COLUMN] = np.array([known.get(u, np.nan) for u in frame.index.tolist()],
                                       dtype=np.float64)
    for column in table.columns:
        if column not in frame:
            frame[column] = table[column].to_numpy()
    return frame


def unit_frame(session: Session, curation=None) -> pd.DataFrame:
    """The table's DataFrame: one row per unit of the curated sorting, in its unit order,
    RangeIndex (row = unit_index), ``unit_id`` as the first column, then ``label``, ``tags``,
    ``num_spikes``, ``firing_rate_hz`` and every other column of
    ``CuratedAnalysis.unit_frame()``. Non-numeric columns are object (text).
    """
    from ..model.curated import curated_analysis

    curation = session.curation if curation is None else curation
    frame = curated_analysis(session, curation).unit_frame()
    return _table_frame(frame, curation.sorting)


def _table_frame(frame: pd.DataFrame, sorting: Sorting) -> pd.DataFrame:
    """``frame`` (indexed by unit_id) as the table's RangeIndex frame, fixed columns first."""
    frame = frame.reindex(pd.Index(sorting.unit_ids, name="unit_id"))
    out = pd.DataFrame({"unit_id": sorting.unit_ids})
    for column in FIXED_COLUMNS[1:]:
        if column in frame:
            out[column] = frame[column].to_numpy()
    if "label" not in out:
        out.insert(1, "label", sorting.labels.to_numpy(dtype=object))
    for column in frame.columns:
        name = str(column)
        if name in out:
            continue
        values = frame[column].to_numpy()
        if values.dtype.kind not in "biufcmM":
            values = values.astype(object)
        out[name] = values
    out["label"] = out["label"].fillna("unsorted").astype(str).astype(object)
    if "tags" in out:
        # shown "a, b" (stored "a,b")
        out["tags"] = out["tags"].fillna("").astype(str).str.replace(
            r"\s*,\s*", ", ", regex=True).astype(object)
    return out


def label_duplicate_columns(frame: pd.DataFrame) -> list[str]:
    """Raw columns of ``frame`` equal to ``label`` in every row, ignoring case and blanks.

    These are the columns the label was derived from (``group`` good/good, ``bc_unitType``
    GOOD/good): showing them again beside the label only adds noise. A column that is empty
    anywhere, or disagrees with the label in any row, is not one of them.
    """
    if frame.empty or "label" not in frame:
        return []
    label = frame["label"].astype(str).str.strip().str.lower()
    out = []
    for column in frame.columns:
        if column in FIXED_COLUMNS or column == DEPTH_COLUMN:
            continue
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        if values.isna().any() or not values.map(lambda v: isinstance(v, str)).all():
            continue
        if (values.str.strip().str.lower() == label).all():
            out.append(str(column))
    return out


def header_tooltips(session: Session, frame: pd.DataFrame, hidden: list[str]) -> dict:
    """Header tooltips: what the fixed columns and the depth mean."""
    hidden = [c for c in hidden if c not in REPEATED_COLUMNS]
    sources = ", ".join(hidden)
    label = "Curation label: good / mua / noise ('unsorted' where none)"
    if hidden:
        one = len(hidden) == 1
        label += (f"; the unit table's {'column' if one else 'columns'} {sources} "
                  f"{'repeats' if one else 'repeat'} it (ignoring case) and "
                  f"{'is' if one else 'are'} hidden")
    tips = {
        "unit_id": "Unit id (a label, not a position)",
        "label": label,
        "tags": "Free tags of the unit, comma-separated",
        "num_spikes": "Number of spikes of the unit",
        "firing_rate_hz": "Spikes per second over the whole recording (the metric "
                          "firing_rate, hidden: the same number)",
        "amplitude_uv": "Template peak-to-peak on the peak channel, µV",
        PEAK_CHANNEL_COLUMN: "Channel id where the template is largest",
    }
    if DEPTH_COLUMN in frame:
        depth_source = _DEPTH_SOURCES.get(unit_depths_um(session).source)
        tips[DEPTH_COLUMN] = DEPTH_TOOLTIP + (f" ({depth_source})" if depth_source else "")
    return {k: v for k, v in tips.items() if k in frame}


def _label_formatter() -> HTMLTemplateFormatter:
    colors = " : ".join(f'value == "{k}" ? "{v}"' for k, v in LABEL_COLORS.items())
    return HTMLTemplateFormatter(template=(
        f'<div class="spikeviz-label-<%- value %>" style="background:<%= {colors} : '
        '"transparent" %>; padding: 0 4px; border-radius: 3px"><%- value %></div>'))


def _formatters(frame: pd.DataFrame) -> dict:
    formatters = {"num_spikes": NumberFormatter(format="0,0", text_align="right"),
                  "firing_rate_hz": NumberFormatter(format="0.00", text_align="right"),
                  "label": _label_formatter()}
    for column in frame.columns:
        if column not in formatters and column != "unit_id" and \
                pd.api.types.is_float_dtype(frame[column]):
            formatters[column] = NumberFormatter(format="0.[000]", text_align="right")
    return formatters


#: Column widths: px per character of the longest text shown (header or cell), plus the
#: cell padding, the sort arrow and the header filter's margins; at most ``MAX_COLUMN_PX``.
CHAR_PX, CELL_PAD_PX, MAX_COLUMN_PX = 8, 40, 320


def column_widths(frame: pd.DataFrame) -> dict[str, int]:
    """Width in px of each column, from its longest text as shown (the formatters' digits).

    Given to Tabulator so that the browser does not measure the cells to fit the columns
    (``fit_data_table`` without widths forced a layout of the whole page per column: about
    60 of the ~340 layouts of the dashboard's first render).
    """
    widths = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_float_dtype(values):
            digits = 2 if column == "firing_rate_hz" else 3
            texts = [f"{v:,.{digits}f}" for v in values.dropna().tolist()]
        elif pd.api.types.is_integer_dtype(values):
            texts = [f"{v:,}" for v in values.tolist()]
        else:
            texts = [str(v) for v in values.tolist()]
        title = str(TITLES.get(column, column))
        longest = max([len(title)] + [len(t) for t in texts])
        widths[str(column)] = min(CHAR_PX * longest + CELL_PAD_PX, MAX_COLUMN_PX)
    return widths


class UnitTable(View):
    """Sortable, filterable table of the curated units; its row selection is
    ``Selection.unit_ids``.

    ``UnitTable(session, selection=None, curation=None, **params)``. ``frame`` is the data
    (every unit of ``curation.sorting``), ``visible_unit_ids`` the rows left by the filters.
    """

    height = param.Integer(default=None, allow_None=True, bounds=(100, None), doc="""
        Table height in px (None: fill the container). Rows are rendered virtually, so 1000
        units scroll smoothly.""")
    expression = param.String(default="", doc="""
        Row filter over the columns, e.g. ``snr > 5 and label == "good"`` (see
        spikeviz.views.expression). Empty: no filter.""")
    filter_error = param.String(default="", constant=True, doc="""
        Why ``expression`` was refused (empty when it is valid); shown under the box.""")
    filter_version = param.Integer(default=0, precedence=-1, doc="Bumped to refilter.")

    def __init__(self, session: Session, selection=None, curation=None, **params):
        super().__init__(session, selection, curation, **params)
        self._syncing = False
        self._expr: Expression | None = None
        self._shown_sorting: Sorting | None = None
        self.frame = self._build_frame()
        # hidden for the session's life: a source column that repeated the label at the start
        # (Phy's group) stays hidden when curation relabels units (it would show stale labels)
        self._source_duplicates = label_duplicate_columns(self.frame) + \
            [c for c in REPEATED_COLUMNS if c in self.frame]
        self.hidden_columns = list(self._source_duplicates)
        self._row = self._row_map(self.frame)
        self._shown_sorting = self.sorting
        sizing = {"sizing_mode": "stretch_width", "height": self.height} if self.height else \
            {"sizing_mode": "stretch_both", "min_height": 300}
        self.widget = pn.widgets.Tabulator(
            self.frame, show_index=False, disabled=True, selectable=True, sortable=True,
            pagination=None, layout="fit_data_table", frozen_columns=["unit_id"],
            formatters=_formatters(self.frame), header_align="center", titles=dict(TITLES),
            widths=column_widths(self.frame),
            header_filters=True,
            header_tooltips=header_tooltips(session, self.frame, self.hidden_columns),
            hidden_columns=list(self.hidden_columns),
            selection=self._rows_of(self.selection.unit_ids),
            css_classes=["spikeviz-unit-table"], stylesheets=[FROZEN_CSS], **sizing)
        self.widget.add_filter(pn.bind(self._filter, version=self.param.filter_version))
        self.expression_input = pn.widgets.TextInput.from_param(
            self.param.expression, name="", placeholder='snr > 5 and label == "good"',
            description=EXPRESSION_HELP, sizing_mode="stretch_width",
            css_classes=["spikeviz-unit-filter"])
        self.error_pane = pn.pane.HTML("", css_classes=["spikeviz-filter-error"],
                                       styles={"color": "#b00020"}, margin=(0, 10),
                                       visible=False)
        self._layout = pn.Column(self.expression_input, self.error_pane, self.widget,
                                 sizing_mode="stretch_both", min_height=350)
        self.widget.param.watch(self._on_table_selection, ["selection"])
        self.param.watch(self._on_expression, ["expression"])
        self._watch(self.selection, "unit_ids", self._on_selection)
        self._watch(self.curation, "sorting", lambda *_: self.refresh())
        if self.expression:
            self._on_expression()

    # -- data ------------------------------------------------------------------------------------
    def _build_frame(self) -> pd.DataFrame:
        return unit_frame(self.session, self.curation)

    @staticmethod
    def _row_map(frame: pd.DataFrame) -> dict:
        return {u: i for i, u in enumerate(frame["unit_id"].tolist())}

    @property
    def selected_unit_ids(self) -> list:
        """Unit ids of the selected rows, in selection order."""
        ids = self.frame["unit_id"].tolist()
        return [ids[i] for i in self.widget.selection if i < len(ids)]

    @property
    def visible_unit_ids(self) -> list:
        """Unit ids of the rows left by the header filters and the expression."""
        return self.widget.current_view["unit_id"].tolist()

    def _rows_of(self, unit_ids) -> list[int]:
        return [self._row[u] for u in unit_ids if u in self._row]

    # -- curation ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the current curated sorting: patch changed cells, or replace the data when
        the set of units changed; then reselect ``selection.unit_ids``."""
        if self.sorting is self._shown_sorting:
            return
        new = self._build_frame()
        old = self.frame
        same_rows = len(new) == len(old) and list(new.columns) == list(old.columns) and \
            new["unit_id"].tolist() == old["unit_id"].tolist()
        self._shown_sorting = self.sorting
        self._syncing = True
        try:
            if same_rows:
                changes = {}
                for column in new.columns:
                    a, b = old[column], new[column]
                    differs = ~((a == b) | (a.isna() & b.isna())).to_numpy(dtype=bool)
                    rows = np.flatnonzero(differs)
                    if rows.size:
                        changes[column] = [(int(r), b.iat[r]) for r in rows]
                self.frame = new
                if changes:
                    self.widget.patch(changes, as_index=False)
                    # patch edits the widget's frame in place; keep ours the same object
                    self.frame = self.widget.value
            else:
                self.frame = new
                self._row = self._row_map(new)
                hidden = list(dict.fromkeys(
                    [c for c in self._source_duplicates if c in new]
                    + label_duplicate_columns(new)))
                self.hidden_columns = hidden
                self.widget.param.update(
                    value=new, formatters=_formatters(new), hidden_columns=list(hidden),
                    widths=column_widths(new),
                    header_tooltips=header_tooltips(self.session, new, hidden),
                    selection=self._rows_of(self.selection.unit_ids))
        finally:
            self._syncing = False
        self._sync_from_selection(self.selection.unit_ids)

    # -- filter --------------------------------------------------------------------------------
    def _on_expression(self, *_) -> None:
        text = self.expression.strip()
        error = ""
        if not text:
            self._expr = None
        else:
            try:
                expr = Expression(text, self.frame.columns)
                expr.mask(self.frame)  # type errors show up on evaluation
                self._expr = expr
            except InputError as e:
                error = getattr(e, "message", str(e))
        with param.edit_constant(self):
            self.filter_error = error
        self.error_pane.object = f"⚠ {html.escape(error)}" if error else ""
        self.error_pane.visible = bool(error)
        self.filter_version += 1

    def _filter(self, df: pd.DataFrame, version=None) -> np.ndarray:
        if self._expr is None:
            return np.ones(len(df), dtype=bool)
        try:
            return np.array(self._expr.mask(df), dtype=bool)  # Panel ANDs into it in place
        except InputError:
            return np.ones(len(df), dtype=bool)

    # -- selection -----------------------------------------------------------------------------
    def _on_table_selection(self, event) -> None:
        if self._syncing:
            return
        ids = self.selected_unit_ids
        if set(ids) == set(self.selection.unit_ids):
            return
        self._syncing = True
        try:
            self.selection.unit_ids = ids
        finally:
            self._syncing = False

    def _on_selection(self, event) -> None:
        if self._syncing:
            return
        if self.sorting is not self._shown_sorting:
            self.refresh()  # the selection names units of a newer sorting
            return
        self._sync_from_selection(event.new)

    def _sync_from_selection(self, unit_ids) -> None:
        rows = self._rows_of(unit_ids)
        if set(rows) == set(self.widget.selection):
            return
        self._syncing = True
        try:
            self.widget.selection = rows
        finally:
            self._syncing = False
