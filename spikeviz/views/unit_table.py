"""UnitTable: one row per unit (id, label, spike count, firing rate, every unit-table column).

Selecting rows writes ``Selection.unit_ids``; a change of ``Selection.unit_ids`` from anywhere
else selects the matching rows. The two directions cannot loop: each side only writes when the
other's value differs as a set, and a guard ignores the echo of its own write.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from ..model.selection import Selection
from ..model.session import Session
from .raster import raster_data

#: Columns every table has, in this order, before the sorting's own unit-table columns.
FIXED_COLUMNS = ("unit_id", "label", "num_spikes", "firing_rate_hz")


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
    data = raster_data(session)
    if data.depth_source and "depth_um" not in table:
        frame["depth_um"] = data.depths_um
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
        # unit id -> row position in self.frame (== unit_index)
        self._row = {u: i for i, u in enumerate(self.frame["unit_id"].tolist())}
        self._syncing = False
        sizing = {"sizing_mode": "stretch_width", "height": self.height} if self.height else \
            {"sizing_mode": "stretch_both", "min_height": 300}
        self.widget = pn.widgets.Tabulator(
            self.frame, show_index=False, disabled=True, selectable=True, sortable=True,
            pagination=None, layout="fit_data_table", frozen_columns=["unit_id"],
            formatters=_formatters(self.frame), header_align="center",
            titles={"unit_id": "unit", "num_spikes": "spikes", "firing_rate_hz": "rate (Hz)",
                    "depth_um": "depth (µm)"},
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
