"""Amplitudes over time: every spike of the selected units, time (s) against amplitude.

The spikes are datashaded by unit (each in its unit colour), so millions of spikes reach the
browser as one image. A lasso or box selects spikes exactly on the server over every spike of
the selected units (not only what a drawn subsample shows) and writes their positions in the
curated spike vector to ``Selection.spike_indices``; the selected spikes are drawn on top in
black, whichever view selected them. ``Selection.time_window_s`` sets the time axis.

Where the amplitudes come from, in order:

1. with a recording: ``results.spike_amplitudes`` — the filtered trace (µV, or stored units
   when the recording's gain is unknown) at each spike's unit peak channel and peak sample;
2. without one, the sorting's own per-spike ``amplitudes`` (Phy's ``amplitudes.npy``): KiloSort's
   template scaling factor, unitless, labelled as such — not µV;
3. otherwise nothing, with a message saying why.
"""

from __future__ import annotations

import numpy as np

from ..model.sorting import Sorting
from .lasso import LassoScatter
from .scatter import SpikeCloud, make_cloud

#: ``Sorting.spike_properties`` entry holding a per-spike amplitude (Phy's amplitudes.npy).
AMPLITUDES_PROPERTY = "amplitudes"

NO_AMPLITUDES = ("No spike amplitudes: there is no recording to measure them on, and the "
                 "sorting has no per-spike amplitudes (e.g. Phy's amplitudes.npy).")


def spike_times_s(sorting: Sorting, positions: np.ndarray) -> np.ndarray:
    """Times (s, float64) of the spikes at ``positions`` of ``sorting``'s spike vector."""
    return sorting.sample_index[positions] / sorting.sampling_frequency


def unit_positions(sorting: Sorting, unit_ids) -> np.ndarray:
    """Ascending positions (int64) of every spike of ``unit_ids`` in the spike vector."""
    parts = [np.asarray(sorting.spike_indices(u), dtype=np.int64) for u in unit_ids]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


class Amplitudes(LassoScatter):
    """Amplitude of every spike of the selected units over time, with an exact lasso.

    ``Amplitudes(session, selection=None, curation=None)``. Follows ``selection.unit_ids``,
    ``selection.spike_indices`` (highlight), ``selection.time_window_s`` (x range) and
    ``curation.sorting``; writes ``selection.spike_indices``. :attr:`source` says where the
    amplitudes come from ("recording", "template scaling" or None).
    """

    def __init__(self, session, selection=None, curation=None, **params):
        self._source = self._pick_source(session, curation or session.curation)
        super().__init__(session, selection=selection, curation=curation, **params)
        self._watch(self.selection, "time_window_s", lambda *e: self._on_window())

    @staticmethod
    def _pick_source(session, curation) -> str | None:
        if session.recording is not None:
            return "recording"
        if AMPLITUDES_PROPERTY in curation.sorting.spike_properties:
            return "template scaling"
        return None

    @property
    def source(self) -> str | None:
        """"recording" (µV from the traces), "template scaling" (the sorting's own per-spike
        amplitudes, unitless) or None (no amplitudes)."""
        return self._source

    @property
    def xlabel(self) -> str:
        return "time (s)"

    @property
    def ylabel(self) -> str:
        if self._source == "recording":
            gain = getattr(self.session.recording, "gain_known", True)
            return "amplitude (µV)" if gain else "amplitude (stored units, gain unknown)"
        if self._source == "template scaling":
            return "template scaling (amplitudes.npy, not µV)"
        return "amplitude"

    def load(self, unit_ids: list) -> SpikeCloud | str:
        sorting = self.sorting
        if self._source == "recording":
            result = self.results.spike_amplitudes(unit_ids)
            if result is None:
                return NO_AMPLITUDES
            positions, amplitudes = result
            positions = np.asarray(positions, dtype=np.int64)
        elif self._source == "template scaling":
            positions = unit_positions(sorting, unit_ids)
            amplitudes = sorting.spike_properties[AMPLITUDES_PROPERTY][positions]
        else:
            return NO_AMPLITUDES
        return make_cloud(sorting, unit_ids, positions, spike_times_s(sorting, positions),
                          amplitudes, x_sorted=True)

    @property
    def amplitudes(self) -> np.ndarray:
        """Amplitude of every shown spike (y), in :attr:`positions` order."""
        return np.zeros(0) if self.cloud is None else self.cloud.y

    @property
    def positions(self) -> np.ndarray:
        """Positions (curated spike vector) of every shown spike, ascending."""
        return np.zeros(0, np.int64) if self.cloud is None else self.cloud.positions

    # -- time axis ------------------------------------------------------------------------------
    def default_x_range(self) -> tuple[float, float]:
        """``selection.time_window_s`` clipped to the session, else the whole session (s)."""
        duration = float(self.sorting.duration_s)
        whole = (0.0, duration if duration > 0 else 1.0)
        window = self.selection.time_window_s
        if window is None:
            return whole
        start, end = max(window[0], 0.0), min(window[1], whole[1])
        return (start, end) if start < end else whole

    @property
    def x_range_s(self) -> tuple[float, float]:
        """The time range (s) the plot is set to show."""
        return self.default_x_range()

    def _on_window(self) -> None:
        x0, x1 = self.default_x_range()
        for handle in list(self._handles["x"]):
            handle.update(start=x0, end=x1)
        self._range.event(x_range=(x0, x1), y_range=self._range.y_range)
