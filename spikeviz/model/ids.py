"""Unit and channel ids are labels: integers or strings, never positions or floats."""

from __future__ import annotations

import numpy as np


def id_key(value):
    """The dict key an id is looked up by: numpy scalars become Python int/str.

    Floats and booleans return None: ``2.0`` or ``True`` name no unit or channel (a position
    or a number is never silently taken for a label).
    """
    if isinstance(value, bool | np.bool_ | float | np.floating):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.str_):
        return str(value)
    return value
