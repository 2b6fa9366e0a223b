"""spikeviz: interactive analysis and curation of spike-sorted extracellular recordings.

``import spikeviz`` loads no Panel, Bokeh or HoloViews (nor pynwb or SpikeInterface); the
dashboards and the format modules import them when used.
"""

from . import compute, export
from .errors import InputError, SpikevizError
from .io import load, read_recording
from .model import Recording, Session, Sorting, Templates
from .model.comparison import Comparison, compare
from .model.comparison_multi import MultiComparison, compare_multiple

__version__ = "0.1.0"


def from_spikeinterface(obj):
    """A SpikeInterface object as spikeviz's: BaseRecording → :class:`Recording` (lazy),
    BaseSorting → :class:`Sorting`, SortingAnalyzer → :class:`Session` reusing its computed
    extensions. Needs the optional ``spikeinterface`` package."""
    from .io.spikeinterface_ import from_spikeinterface as convert

    return convert(obj)


def to_spikeinterface(obj):
    """A spikeviz object as SpikeInterface's: :class:`Recording` → BaseRecording (lazy),
    :class:`Sorting` → BaseSorting, :class:`Session` → SortingAnalyzer (with a recording) or
    BaseSorting. Needs the optional ``spikeinterface`` package."""
    from .io.spikeinterface_ import to_spikeinterface as convert

    return convert(obj)


def _dashboard(session, **params):
    """``Session.show``'s factory: imports Panel only when a dashboard is asked for."""
    from .app.dashboard import show

    return show(session, **params)


def _comparison_dashboard(comparison, **params):
    """``Comparison.show``'s factory: imports Panel only when a dashboard is asked for."""
    from .app.compare_app import show

    return show(comparison, **params)


from .model import comparison as _comparison_module  # noqa: E402
from .model import session as _session_module  # noqa: E402

_session_module.dashboard_factory = _dashboard
_comparison_module.dashboard_factory = _comparison_dashboard

__all__ = [
    "Comparison",
    "InputError",
    "MultiComparison",
    "Recording",
    "Session",
    "Sorting",
    "SpikevizError",
    "Templates",
    "__version__",
    "compare",
    "compare_multiple",
    "compute",
    "export",
    "from_spikeinterface",
    "load",
    "read_recording",
    "to_spikeinterface",
]
