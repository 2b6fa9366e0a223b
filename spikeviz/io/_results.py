"""Which derived results a writer includes: what the session already has, or (on request)
what it can compute.

Writers call these instead of ``session.compute`` directly so that every format follows one
policy: ``compute=False`` (the default of the export functions) takes a result only when it is
already in memory or in a trustworthy disk-cache entry, so an export never starts an hour of
work unasked; ``compute=True`` computes what the session can (results that need traces only
with a recording).
"""

from __future__ import annotations

import pandas as pd

from ..model import Session


def result(session: Session, name: str, compute: bool = False, **params):
    """The result ``name`` (default parameters unless given) or None when it is neither
    available nor computable under the policy above."""
    from ..model.analysis import STEPS

    analysis = session.analysis
    if name not in STEPS:
        return None
    if STEPS[name].needs_recording and session.recording is None:
        return None
    if not compute and not analysis.is_available(name, **params):
        return None
    return session.compute(name, **params)


def templates(session: Session, compute: bool = False):
    """Dense mean (and std) templates in µV (stored units when the gain is unknown), or None."""
    return result(session, "templates", compute)


def quality_metrics(session: Session, compute: bool = False) -> pd.DataFrame | None:
    """The quality-metrics table indexed by unit_id, or None."""
    return result(session, "quality_metrics", compute)


def unit_columns(session: Session, compute: bool = False) -> pd.DataFrame:
    """Every per-unit column to write: the unit table (labels, properties the source carried)
    joined with the quality metrics (metrics win on a name clash), indexed by unit_id in the
    sorting's order. Always has a ``label`` column (good / mua / noise / unsorted ...)."""
    table = session.sorting.unit_table.copy()
    table["label"] = session.sorting.labels
    metrics = quality_metrics(session, compute)
    if metrics is not None and len(metrics.columns):
        metrics = metrics.reindex(table.index)
        table = table.drop(columns=[c for c in metrics.columns if c in table.columns])
        table = table.join(metrics)
    return table
