"""UnitTable: one row per unit (id, label, spike count, firing rate, every unit-table column).

Everything shown comes from the model: spike counts from ``Sorting.spike_counts()``, depths
from ``model.depth.unit_depths_um`` (cached per Session in the model, shared with the raster).

Selecting rows writes ``Selection.unit_ids``; a change of ``Selection.unit_ids`` from anywhere
else selects the matching rows. The two directions cannot loop: each side only writes when the
other's value differs as a set, and a guard ignores the echo of its own write.

``label`` is the sorting's curation label ("unsorted" when none; lower-cased by the Phy
reader), shown right after the unit id. A raw unit-table column it merely repeats, ignoring case
(Phy's ``group`` "good", bombcell's ``bc_unitType`` "GOOD", when that is where the label came
from), is hidden: it stays in the table's data and the label header's tooltip names it. A raw
column that disagrees with the label for any unit (e.g. ``KSLabel`` after manual curation)
stays visible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from ..model.depth import DEPTH_COLUMN, PEAK_CHANNEL_COLUMN, TEMPLATES_SOURCE, unit_depths_um
from ..model.selection import Selection
from ..model.session import Session

#: Columns every table has, in this order, before the sorting's own unit-table columns.
FIXED_COLUMNS = ("unit_id", "label", "num_spikes", "firing_rate_hz")

TITLES = {"unit_id": "unit", "num_spikes": "spikes", "firing_rate_hz": "rate (Hz)",
          DEPTH_COLUMN: "depth (µm)"}

#: What "depth (µm)" means; the unit table's depth is y in the probe's channel locations.
DEPTH_TOOLTIP = "y on the probe, µm from the tip; larger = shallower"
_DEPTH_SOURCES = {
    DEPTH_COLUMN: "from the unit table's depth_um column",
    PEAK_CHANNEL_COLUMN: "y of the unit's peak channel (peak_channel_id)",
    TEMPLATES_SOURCE: "y of the peak channel of the unit's template",
}


def unit_frame(session: Session) -> pd.DataFrame:
    """The table's DataFrame: one row per unit in unit_index order, RangeIndex (row = unit_index).

    Columns: unit_id, label, num_spikes, firing_rate_hz (spikes / duration, Hz; NaN for a
    zero-length session), depth_um when known and not already a unit-table column, then every
    column of ``sorting.unit_table`` (except ``label``; a name clashing with the fixed columns
    gets a ``_table`` suffix).
    """
    sorting = session.sorting
    counts = sorting.spike_counts().to_numpy()
    duration = sorting.duration_s
    rate = counts / duration if duration > 0 else np.full(counts.shape, np.nan)
    frame = pd.DataFrame({
        "unit_id": sorting.unit_ids,
        "label": sorting.labels.to_numpy(dtype=object),
        "num_spikes": counts.astype(np.int64),
        "firing_rate_hz": rate.astype(np.float64),
    })
    table = sorting.unit_table
    depths, source = unit_depths_um(session)
    if source and DEPTH_COLUMN not in table:
        frame[DEPTH_COLUMN] = np.array(depths, dtype=np.float64)  # a copy: the cache is shared
    for column in table.columns:
        if column == "label":
            continue
        name = str(column)
        if name in frame:
            name = f"{name}_table"
        values = table[column].to_numpy()
        if values.dtype.kind not in "biufcmMUSO":
            values = values.astype(object)
        frame[name] = values
    return frame


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
    sources = ", ".join(hidden)
    label = "Curation label ('unsorted' where none)"
    if hidden:
        one = len(hidden) == 1
        label += (f"; the unit table's {'column' if one else 'columns'} {sources} "
                  f"{'repeats' if one else 'repeat'} it (ignoring case) and "
                  f"{'is' if one else 'are'} hidden")
    tips = {
        "unit_id": "Unit id (a label, not a position)",
        "label": label,
        "num_spikes": "Number of spikes of the unit",
        "firing_rate_hz": "Spikes per second over the whole recording",
    }
    if DEPTH_COLUMN in frame:
        depth_source = _DEPTH_SOURCES.get(unit_depths_um(session).source)
        tips[DEPTH_COLUMN] = DEPTH_TOOLTIP + (f" ({depth_source})" if depth_source else "")
    return tips


def _formatters(frame: pd.DataFrame) -> dict:
    formatters = {"num_spikes": NumberFormatter(format="0,0", text_align="right"),
                  "firing_rate_hz": NumberFormatter(format="0.00", text_align="right")}
    for column in frame.columns:
        if column not in formatters and column != "unit_id" and \
                pd.api.types.is_float_dtype(frame[column]):
            formatters[column] = NumberFormatter(format="0.[000]", text_align="right")
    return formatters


class UnitTable(pn.viewable.Viewer):
    """Sortable table of all units; its row selection is ``Selection.unit_ids``."""

    session = param.ClassSelector(class_=Session, constant=True, doc="What is listed.")
    selection = param.ClassSelector(class_=Selection, constant=True,
                                    doc="Shared selection; rows selected here are its unit_ids.")
    height = param.Integer(default=None, allow_None=True, bounds=(100, None), doc="""
        Table height in px (None: fill the container). Rows are rendered virtually, so 1000
        units scroll smoothly.""")

    def __init__(self, session: Session, selection: Selection | None = None, **params):
        if selection is None:
            selection = Selection.for_session(session)
        super().__init__(session=session, selection=selection, **params)
        self.frame = unit_frame(session)
        #: raw columns repeating ``label``: kept in the data, not shown
        self.hidden_columns = label_duplicate_columns(self.frame)
        # unit id -> row position in self.frame (== unit_index)
        self._row = {u: i for i, u in enumerate(self.frame["unit_id"].tolist())}
        self._syncing = False
        sizing = {"sizing_mode": "stretch_width", "height": self.height} if self.height else \
            {"sizing_mode": "stretch_both", "min_height": 300}
        self.widget = pn.widgets.Tabulator(
            self.frame, show_index=False, disabled=True, selectable=True, sortable=True,
            pagination=None, layout="fit_data_table", frozen_columns=["unit_id"],
            formatters=_formatters(self.frame), header_align="center", titles=dict(TITLES),
            header_tooltips=header_tooltips(session, self.frame, self.hidden_columns),
            hidden_columns=list(self.hidden_columns),
            selection=self._rows_of(selection.unit_ids), css_classes=["spikeviz-unit-table"],
            **sizing)
        self.widget.param.watch(self._on_table_selection, ["selection"])
        selection.param.watch(self._on_selection, ["unit_ids"])

    def __panel__(self):
        return self.widget

    @property
    def selected_unit_ids(self) -> list:
        """Unit ids of the selected rows, in selection order."""
        ids = self.frame["unit_id"].tolist()
        return [ids[i] for i in self.widget.selection]

    def _rows_of(self, unit_ids) -> list[int]:
        return [self._row[u] for u in unit_ids if u in self._row]

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
        rows = self._rows_of(event.new)
        if set(rows) == set(self.widget.selection):
            return
        self._syncing = True
        try:
            self.widget.selection = rows
        finally:
            self._syncing = False
