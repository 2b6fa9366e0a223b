"""ComparisonSelection: the unit pair a comparison dashboard looks at.

The comparison views write only this object (a tap on a matrix cell, a click on a table row)
and the pair view reads it. ``unit1`` is a unit id of the comparison's first sorting (the ground
truth in ground-truth mode), ``unit2`` one of the second; either may be None (nothing chosen
on that side). Ids are stored as plain Python ``int``/``str``, checked against the sortings
when a :class:`~spikeviz.model.comparison.Comparison` is given: an unknown id raises
``InputError`` and leaves the selection unchanged. Set both at once with :meth:`select`, so
that watchers see one event with the new pair.

No Panel, Bokeh or HoloViews here: model state, usable headless.
"""

from __future__ import annotations

import numpy as np
import param

from ..errors import InputError
from .comparison import Comparison


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


class ComparisonSelection(param.Parameterized):
    """``ComparisonSelection(comparison=None, unit1=None, unit2=None)``."""

    comparison = param.ClassSelector(class_=Comparison, default=None, allow_None=True,
                                     constant=True, doc="Checks the ids when given.")
    unit1 = param.Parameter(default=None, doc="Unit id of sorting1 (ground truth), or None.")
    unit2 = param.Parameter(default=None, doc="Unit id of sorting2 (tested), or None.")

    def __init__(self, comparison: Comparison | None = None, unit1=None, unit2=None, **params):
        super().__init__(comparison=comparison, **params)
        self.select(unit1, unit2)

    def _check(self, unit_id, side: int):
        unit_id = _plain(unit_id)
        if unit_id is None or self.comparison is None:
            return unit_id
        sorting = self.comparison.sorting1 if side == 1 else self.comparison.sorting2
        try:
            sorting.unit_index_of(unit_id)
        except (KeyError, ValueError, TypeError):
            name = self.comparison.names[side - 1]
            raise InputError(f"{unit_id!r} is not a unit of {name!r}",
                             field=f"unit{side}") from None
        ids = sorting.unit_ids
        return int(unit_id) if ids.dtype.kind in "iu" else str(unit_id)

    def select(self, unit1, unit2) -> None:
        """Set the pair (either may be None) in one event."""
        pair = (self._check(unit1, 1), self._check(unit2, 2))
        self.param.update(unit1=pair[0], unit2=pair[1])

    def clear(self) -> None:
        self.select(None, None)

    @property
    def pair(self) -> tuple:
        """``(unit1, unit2)``."""
        return (self.unit1, self.unit2)
