"""Param model objects: state and invariants, no widgets and no file formats."""

from .recording import Recording
from .session import Session
from .sorting import Sorting
from .waveforms import Templates, Waveforms

__all__ = ["Recording", "Session", "Sorting", "Templates", "Waveforms"]
