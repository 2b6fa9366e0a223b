"""Selection: what the user is looking at, shared by every view of one browser session.

Views never call each other: they watch one ``Selection`` and one ``Curation`` and write to
them. Every value is validated and normalised when it is set, so a watcher always sees
clean values:

- unit ids are plain Python ``int``/``str`` (never numpy scalars), without duplicates;
- times are seconds (float);
- spike positions are a sorted, unique, read-only int64 array.

With a ``Sorting`` (and optionally the probe's channel ids) the values are also checked against
it: an unknown unit id or channel id, or a spike position outside the spike vector, raises
``InputError`` and leaves the selection unchanged.

A Selection bound to a Curation (``Selection.for_session(session, curation=curation)``)
checks ids against the *current* ``curation.sorting`` and follows it: after every action,
undo or redo, unit ids that no longer exist are dropped, and ``spike_indices`` is cleared when
the spike vector itself changed (a removal or its undo: positions would name other spikes);
everything else is kept. One event carries both changes.

No Panel, Bokeh or HoloViews here: this is model state, usable headless.
"""

from __future__ import annotations

import numbers
import weakref

import numpy as np
import param

from ..errors import InputError
from .sorting import Sorting


def _plain(value):
    """A numpy scalar as the equivalent Python scalar; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _as_list(value, name: str) -> list:
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise InputError(f"expected a 1-D list, got an array of shape {value.shape}",
                             field=name)
        return value.tolist()
    if isinstance(value, tuple | set | frozenset | range):
        return list(value)
    if isinstance(value, list):
        return list(value)
    raise InputError(f"expected a list, got {type(value).__name__}", field=name)


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """True if ``a`` and ``b`` view the same memory the same way (read-only arrays: then they
    hold the same values without comparing them)."""
    return a is b or (a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
                      and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _has_unit(sorting: Sorting, unit_id) -> bool:
    try:
        sorting.unit_index_of(unit_id)
    except KeyError:
        return False
    return True


class _Checked:
    """Mixin for Parameters whose values the owning Selection normalises and checks.

    Setting the parameter on a Selection instance calls ``obj._check_<name>(value)`` first;
    it returns the normalised value or raises, in which case nothing is changed.
    """

    def __set__(self, obj, val):
        if isinstance(obj, Selection):
            val = getattr(obj, f"_check_{self.name}")(val)
        super().__set__(obj, val)


class _CheckedList(_Checked, param.List):
    pass


class _CheckedRange(_Checked, param.Range):
    pass


class _CheckedArray(_Checked, param.Array):
    pass


class Selection(param.Parameterized):
    """The current selection: units, a time window, spikes and visible channels.

    ``Selection(sorting)`` validates ids against ``sorting``; ``Selection.for_session(session)``
    also validates channel ids against the session's probe, and with ``curation=`` follows
    that curation's sorting (see the module docstring). ``Selection()`` validates only types
    (useful before anything is loaded).
    """

    unit_ids = _CheckedList(default=[], doc="""
        Ids (labels, not indices) of the selected units, in selection order, without
        duplicates; plain Python int or str. Empty when no unit is selected.""")

    time_window_s = _CheckedRange(default=None, allow_None=True, doc="""
        (start_s, end_s) in seconds from the start of the recording, start < end; None means
        the whole session.""")

    spike_indices = _CheckedArray(default=None, allow_None=True, doc="""
        Selected spikes as positions in the sorting's spike vector (``sorting.sample_index``),
        sorted, unique, int64, read-only; None when no spike is selected.""")

    channel_ids = _CheckedList(default=None, allow_None=True, doc="""
        Ids (labels) of the visible channels, in display order; None means all channels.""")

    def __init__(self, sorting: Sorting | None = None, probe_channel_ids=None, **params):
        if sorting is not None and not isinstance(sorting, Sorting):
            raise InputError(f"expected a spikeviz Sorting, got {type(sorting).__name__}",
                             field="sorting")
        # set before Parameterized.__init__ so the initial values are checked too
        self._sorting = sorting
        self._curation = None
        self._curation_watcher = None
        if probe_channel_ids is None:
            self._channels = None
        else:
            self._channels = {_plain(c) for c in np.asarray(probe_channel_ids).tolist()}
        super().__init__(**params)

    @classmethod
    def for_session(cls, session, curation=None, **params) -> Selection:
        """A Selection checked against ``session.channel_ids`` and ``session.sorting``, or,
        with ``curation``, against ``curation.sorting`` as it changes (bound to it)."""
        if curation is None:
            return cls(session.sorting, probe_channel_ids=session.channel_ids, **params)
        selection = cls(curation.sorting, probe_channel_ids=session.channel_ids, **params)
        selection._bind(curation)
        return selection

    @property
    def sorting(self) -> Sorting | None:
        """The Sorting the ids are checked against (None: types only); with a curation, the
        current ``curation.sorting``."""
        return self._sorting

    @property
    def curation(self):
        """The Curation this selection follows, or None."""
        return self._curation

    def _bind(self, curation) -> None:
        self._curation = curation
        ref = weakref.ref(self)
        holder = {}

        def follow(event):
            selection = ref()
            if selection is None:  # garbage: stop following
                try:
                    curation.param.unwatch(holder["watcher"])
                except (ValueError, KeyError):
                    pass
                return
            selection._follow(event.old, event.new)

        holder["watcher"] = curation.param.watch(follow, ["sorting"])
        self._curation_watcher = holder["watcher"]

    def dispose(self) -> None:
        """Stop following the curation (e.g. when its browser session ends)."""
        if self._curation is not None and self._curation_watcher is not None:
            try:
                self._curation.param.unwatch(self._curation_watcher)
            except (ValueError, KeyError):
                pass
        self._curation_watcher = None

    def _follow(self, old: Sorting | None, new: Sorting) -> None:
        """The curation's sorting changed from ``old`` to ``new``: keep what still holds."""
        self._sorting = new
        changes = {}
        kept = [u for u in self.unit_ids if _has_unit(new, u)]
        if kept != self.unit_ids:
            changes["unit_ids"] = kept
        if self.spike_indices is not None and (
                old is None or not same_array(new.sample_index, old.sample_index)
                or (self.spike_indices.size and self.spike_indices[-1] >= new.num_spikes)):
            changes["spike_indices"] = None
        if changes:
            self.param.update(**changes)

    def clear(self) -> None:
        """Select nothing: no units, no spikes, whole session, all channels (one event)."""
        self.param.update(unit_ids=[], spike_indices=None, time_window_s=None,
                          channel_ids=None)

    # -- checks (called by the parameters' __set__) --------------------------------------------
    def _check_unit_ids(self, value) -> list:
        if value is None:
            raise InputError("unit_ids must be a list (empty for no selection), not None",
                             field="unit_ids")
        ids = []
        for unit_id in _as_list(value, "unit_ids"):
            unit_id = _plain(unit_id)
            if isinstance(unit_id, bool) or not isinstance(unit_id, int | str):
                raise InputError(f"unit ids are int or str, got {unit_id!r} "
                                 f"({type(unit_id).__name__})", field="unit_ids")
            if self._sorting is not None:
                try:
                    self._sorting.unit_index_of(unit_id)
                except KeyError as err:
                    raise InputError(err.args[0], field="unit_ids") from None
            if unit_id not in ids:
                ids.append(unit_id)
        return ids

    def _check_time_window_s(self, value):
        if value is None:
            return None
        try:
            start, end = (float(v) for v in value)
        except (TypeError, ValueError):
            raise InputError(f"time_window_s must be (start_s, end_s) in seconds or None, got "
                             f"{value!r}", field="time_window_s") from None
        if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or start >= end:
            raise InputError(f"time_window_s must satisfy 0 <= start_s < end_s (seconds), got "
                             f"({start}, {end})", field="time_window_s")
        if self._sorting is not None and self._sorting.num_spikes and \
                start >= self._sorting.duration_s:
            raise InputError(f"time window starts at {start} s, after the end of the session "
                             f"({self._sorting.duration_s:.6g} s)", field="time_window_s")
        return (start, end)

    def _check_spike_indices(self, value):
        if value is None:
            return None
        positions = np.asarray(value)
        if positions.ndim != 1:
            raise InputError(f"spike_indices must be 1-D, got shape {positions.shape}",
                             field="spike_indices")
        if positions.size and positions.dtype.kind not in "iu":
            raise InputError(f"spike_indices are integer positions in the spike vector, got "
                             f"dtype {positions.dtype}", field="spike_indices")
        positions = positions.astype(np.int64, copy=False)
        if positions.size > 1 and not bool(np.all(positions[1:] > positions[:-1])):
            positions = np.unique(positions)  # sort + dedupe only when needed (lasso: sorted)
        elif positions.flags.writeable or positions.base is not None:
            positions = positions.copy()  # our own read-only copy: the caller keeps theirs
        if positions.size:
            lo, hi = int(positions[0]), int(positions[-1])
            top = None if self._sorting is None else self._sorting.num_spikes
            if lo < 0 or (top is not None and hi >= top):
                raise InputError(f"spike_indices must lie in [0, {top if top is not None else 'n'}"
                                 f"), found values from {lo} to {hi}", field="spike_indices")
        positions.flags.writeable = False
        return positions

    def _check_channel_ids(self, value):
        if value is None:
            return None
        ids = []
        for channel_id in _as_list(value, "channel_ids"):
            channel_id = _plain(channel_id)
            if isinstance(channel_id, bool) or not isinstance(channel_id, numbers.Integral | str):
                raise InputError(f"channel ids are int or str, got {channel_id!r}",
                                 field="channel_ids")
            if self._channels is not None and channel_id not in self._channels:
                raise InputError(f"no channel with id {channel_id!r} on this probe",
                                 field="channel_ids")
            if channel_id not in ids:
                ids.append(channel_id)
        return ids

    def __repr__(self) -> str:
        spikes = "none" if self.spike_indices is None else f"{self.spike_indices.size:,}"
        return (f"Selection(units={self.unit_ids!r}, time_window_s={self.time_window_s!r}, "
                f"spikes={spikes}, channels={self.channel_ids!r})")

    __str__ = __repr__
