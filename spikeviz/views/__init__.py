"""Views: one ``pn.viewable.Viewer`` per view, each usable alone in a notebook.

Each view reads the model (a Session and its Curation) and writes only the shared
``Selection`` and ``Curation``; views never call each other. ``View(session)`` links to the
session's default Selection and Curation, so views built from one session follow each other.
Importing this package imports Panel, Bokeh and HoloViews.
"""

from .amplitudes import Amplitudes
from .base import View
from .correlograms import Correlograms
from .features import Features
from .isi import ISIView
from .probe import Probe
from .raster import Raster, raster_data
from .similarity import Similarity
from .templates import TemplatesView
from .traces import Traces
from .unit_table import UnitTable, unit_frame

__all__ = ["Amplitudes", "Correlograms", "Features", "ISIView", "Probe", "Raster", "Similarity",
           "TemplatesView", "Traces", "UnitTable", "View", "raster_data", "unit_frame"]
