"""spikeviz: interactive analysis and curation of spike-sorted extracellular recordings.

``import spikeviz`` loads no Panel, Bokeh or HoloViews; the dashboards import them when used.
"""

from . import compute
from .errors import InputError, SpikevizError
from .io import load, read_recording
from .model import Recording, Session, Sorting, Templates

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "Recording",
    "Session",
    "Sorting",
    "SpikevizError",
    "Templates",
    "__version__",
    "compute",
    "load",
    "read_recording",
]
