"""Param model objects: state and invariants, no widgets and no file formats."""

from .curation import Curation
from .recording import Recording
from .session import Session
from .sorting import Sorting
from .waveforms import Templates, Waveforms

__all__ = ["Curation", "Recording", "Session", "Sorting", "Templates", "Waveforms"]
