"""Views: one ``pn.viewable.Viewer`` per view.

Each view reads the model (a Session) and writes only the shared ``Selection`` (and, later,
``Curation``); views never call each other. Importing this package imports Panel, Bokeh and
HoloViews.
"""

from .raster import Raster, raster_data
from .unit_table import UnitTable, unit_frame

__all__ = ["Raster", "UnitTable", "raster_data", "unit_frame"]
