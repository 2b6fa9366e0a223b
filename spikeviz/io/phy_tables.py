"""Cluster tables of a Phy folder: ``cluster_group.tsv`` and one ``cluster_<name>.tsv`` per
unit column.

- **Labels**: good / mua / noise / unsorted go to ``cluster_group.tsv`` (phy's curation
  column). Any other label (e.g. bombcell's "non-soma") gets no row there (phy shows the
  cluster as unsorted) and all labels are then also written to ``cluster_label.tsv``, which
  :mod:`spikeviz.io.phy` reads after ``group`` so the label survives a round trip.
- **Unit columns**: one ``cluster_<name>.tsv`` (``cluster_id<TAB><name>``, empty cell for NaN)
  per column of :func:`spikeviz.io._results.unit_columns` (unit table + quality metrics);
  phylib loads every ``*.tsv`` into ``model.metadata`` and phy shows them as cluster-view
  columns. Names are reduced to letters, digits, ``_ - .``. Left out: ``label``/``group``
  (above) and the columns phy computes itself and would show twice or stale after a merge
  (``ch``, ``sh``, ``depth``, ``fr``, ``amp``, ``n_spikes``, and the metrics
  ``num_spikes``, ``firing_rate``). Renumbered units keep their original ids in
  ``cluster_unit_id.tsv``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Session
from . import _results

CLUSTER_GROUPS = ("good", "mua", "noise", "unsorted")
PHY_COMPUTED_COLUMNS = ("ch", "sh", "depth", "fr", "amp", "n_spikes", "num_spikes", "firing_rate")
RESERVED = ("group", "info")  # cluster_group.tsv is the groups; cluster_info.tsv is phy's


# -- from a session ---------------------------------------------------------------------------
def unit_tables(session: Session, keep, cluster_ids, renumbered: bool, compute: bool):
    """(cluster_groups ``{cluster_id: group}``, cluster_tables DataFrame indexed by cluster id)
    for the units at positions ``keep`` written as clusters ``cluster_ids``."""
    columns = _results.unit_columns(session, compute).iloc[keep]
    labels = columns["label"].astype(str).tolist()
    groups = {int(c): g for c, g in zip(cluster_ids, labels, strict=True) if g in CLUSTER_GROUPS}
    table = pd.DataFrame(index=pd.Index(cluster_ids, name="cluster_id"))
    if renumbered:
        table["unit_id"] = [str(u) for u in session.sorting.unit_ids[keep]]
    if len(groups) < len(labels):
        table["label"] = labels
    for column in columns.columns:
        name = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(column))
        if column in ("label", "group") or name in PHY_COMPUTED_COLUMNS or not name:
            continue
        base, k = name, 2
        while name in table.columns or name in RESERVED:
            name, k = f"{base}_{k}", k + 1
        table[name] = columns[column].to_numpy()
    return groups, table


# -- texts ------------------------------------------------------------------------------------
def cluster_group_text(cluster_groups: Mapping, cluster_ids: np.ndarray) -> str:
    """``cluster_group.tsv``; every cluster named must have spikes in ``cluster_ids``."""
    present = set(np.unique(cluster_ids).tolist())
    rows = []
    for cluster_id, group in cluster_groups.items():
        if isinstance(cluster_id, bool) or not isinstance(cluster_id, int | np.integer):
            raise InputError(f"cluster ids must be integers, got {cluster_id!r}",
                             field="cluster_groups")
        if int(cluster_id) not in present:
            raise InputError(f"cluster {cluster_id} has a group but no spikes",
                             field="cluster_groups")
        if group not in CLUSTER_GROUPS:
            raise InputError(f"group of cluster {cluster_id} must be one of "
                             f"{', '.join(CLUSTER_GROUPS)}, got {group!r}",
                             field="cluster_groups")
        rows.append((int(cluster_id), str(group)))
    rows.sort()
    return "cluster_id\tgroup\n" + "".join(f"{c}\t{g}\n" for c, g in rows)


def _tsv_value(value) -> str:
    if value is None or value is pd.NA or value is pd.NaT or \
            (isinstance(value, float | np.floating) and np.isnan(value)):
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return repr(value) if np.isfinite(value) else str(value)
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


def cluster_table_texts(tables: pd.DataFrame, cluster_ids: np.ndarray) -> dict[str, str]:
    """``cluster_<name>.tsv`` text per column of ``tables`` (indexed by cluster id)."""
    if not isinstance(tables, pd.DataFrame):
        raise InputError("must be a DataFrame indexed by cluster id", field="cluster_tables")
    present = set(np.unique(cluster_ids).tolist())
    ids = [int(c) if isinstance(c, int | np.integer) and not isinstance(c, bool) else c
           for c in tables.index]
    unknown = [c for c in ids if not isinstance(c, int) or c not in present]
    if unknown:
        raise InputError(f"rows for clusters without spikes or non-integer ids: {unknown[:5]}",
                         field="cluster_tables")
    if len(set(ids)) != len(ids):
        raise InputError("cluster ids repeat", field="cluster_tables")
    order = np.argsort(ids, kind="stable")
    texts = {}
    for column in tables.columns:
        name = str(column)
        if not name or not all(ch.isalnum() or ch in "_-." for ch in name):
            raise InputError(f"column name {name!r} cannot be a file name cluster_<name>.tsv "
                             f"(letters, digits, _ - . only)", field="cluster_tables")
        if name in RESERVED:
            raise InputError(f"cluster_{name}.tsv is reserved (groups go to cluster_groups)",
                             field="cluster_tables")
        values = tables[column].tolist()
        rows = "".join(f"{ids[i]}\t{_tsv_value(values[i])}\n" for i in order)
        texts[f"cluster_{name}.tsv"] = f"cluster_id\t{name}\n{rows}"
    return texts
