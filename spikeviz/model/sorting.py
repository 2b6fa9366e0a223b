"""Sorting: the spike vector plus a unit table.

A sorting is one time-sorted array of ``sample_index`` (int64) and a parallel array of
``unit_index`` (int32, a position in ``unit_ids``), plus a unit table (pandas DataFrame indexed
by ``unit_id``). The spike-vector positions of each unit come from a unit-ordered index
(int32 per spike) built once, in O(n), on first use; per-unit trains are gathered through it;
offsets per unit are computed at construction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import param

from ..compute.spikes import first_unsorted, ids_to_indices, order_by_unit, unit_offsets
from ..errors import InputError
from .cache import hash_arrays
from .ids import id_key


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _as_sample_index(sample_index, field: str = "sample_index") -> np.ndarray:
    sample_index = np.asarray(sample_index)
    if sample_index.size == 0 and sample_index.ndim <= 2:
        return np.zeros(0, dtype=np.int64)
    if sample_index.ndim == 2 and sample_index.shape[1] == 1:
        sample_index = sample_index[:, 0]
    if sample_index.ndim != 1:
        raise InputError(f"expected a 1-D array of sample indices, got shape {sample_index.shape}",
                         field=field)
    if sample_index.dtype.kind == "u":
        if sample_index.size and int(sample_index.max()) > np.iinfo(np.int64).max:
            raise InputError("sample index exceeds the int64 range", field=field)
    elif sample_index.dtype.kind != "i":
        raise InputError(f"expected integer sample indices (samples, not seconds), got dtype "
                         f"{sample_index.dtype}", field=field)
    sample_index = sample_index.astype(np.int64, copy=False)
    if sample_index.size and int(sample_index.min()) < 0:
        raise InputError("sample indices must be >= 0", field=field)
    return sample_index


def _normalise_unit_ids(unit_ids) -> np.ndarray:
    if isinstance(unit_ids, list | tuple):
        kinds = {str if isinstance(u, str | np.str_) else int if isinstance(u, int | np.integer)
                 and not isinstance(u, bool | np.bool_) else type(u) for u in unit_ids}
        if len(kinds) > 1 or not kinds <= {int, str}:
            raise InputError(f"unit_ids must be all integers or all strings, got "
                             f"{sorted(k.__name__ for k in kinds)}", field="unit_ids")
    unit_ids = np.asarray(unit_ids)
    if unit_ids.ndim != 1:
        raise InputError(f"unit_ids must be 1-D, got shape {unit_ids.shape}", field="unit_ids")
    if unit_ids.dtype.kind == "O":
        kinds = {type(u) for u in unit_ids}
        if kinds <= {str}:
            unit_ids = unit_ids.astype(str)
        elif all(isinstance(u, int | np.integer) for u in unit_ids):
            unit_ids = unit_ids.astype(np.int64)
        else:
            raise InputError("unit_ids must be all integers or all strings", field="unit_ids")
    elif unit_ids.dtype.kind in "iu":
        if unit_ids.dtype.kind == "u" and unit_ids.size and \
                int(unit_ids.max()) > np.iinfo(np.int64).max:
            raise InputError("unit id exceeds the int64 range", field="unit_ids")
        unit_ids = unit_ids.astype(np.int64, copy=False)
    elif unit_ids.dtype.kind != "U":
        raise InputError(f"unit_ids must be integers or strings, got dtype {unit_ids.dtype}",
                         field="unit_ids")
    if len(pd.unique(unit_ids)) != unit_ids.size:
        raise InputError("unit_ids must be unique", field="unit_ids")
    return unit_ids


class Sorting(param.Parameterized):
    """Spike times of every unit of one recording, in samples.

    Build one with :meth:`from_arrays` (unit indices) or :meth:`from_unit_ids` (per-spike unit
    ids); both validate their input and never loop over spikes in Python.
    """

    sampling_frequency = param.Number(default=None, allow_None=True, bounds=(0, None),
                                      inclusive_bounds=(False, True), constant=True,
                                      doc="Sampling frequency of the sample indices, Hz.")
    num_samples = param.Integer(default=None, allow_None=True, bounds=(0, None), constant=True,
                                doc="""
        Length of the recording the spikes come from, in samples, when known. Sets
        duration_s; otherwise the duration ends at the last spike.""")
    unit_table = param.DataFrame(default=None, allow_None=True, constant=True, doc="""
        One row per unit, indexed by unit_id (same order as unit_ids): labels and properties.
        Constant: :meth:`with_unit_table` gives a Sorting with another table.""")
    source = param.String(default="", doc="Where the sorting was read from, if anywhere.")

    def __init__(self, sample_index, unit_index, sampling_frequency, unit_ids=None,
                 unit_table=None, spike_properties=None, *, sort=True, **params):
        if sampling_frequency is None:
            raise InputError("sampling_frequency (Hz) is required", field="sampling_frequency")
        sampling_frequency = float(sampling_frequency)
        if not np.isfinite(sampling_frequency) or sampling_frequency <= 0:
            raise InputError(f"sampling_frequency must be a positive number of Hz, got "
                             f"{sampling_frequency}", field="sampling_frequency")
        sample_index = _as_sample_index(sample_index)
        unit_index = np.asarray(unit_index)
        if unit_index.size == 0 and unit_index.ndim <= 2:
            unit_index = np.zeros(0, dtype=np.int32)
        if unit_index.ndim == 2 and unit_index.shape[1] == 1:
            unit_index = unit_index[:, 0]
        if unit_index.shape != sample_index.shape:
            raise InputError(f"unit_index has {unit_index.shape[0] if unit_index.ndim else 0} "
                             f"entries but sample_index has {sample_index.shape[0]}",
                             field="unit_index")
        if unit_index.size and unit_index.dtype.kind not in "iu":
            raise InputError(f"unit_index must be integers, got dtype {unit_index.dtype}",
                             field="unit_index")
        if unit_ids is None:
            top = int(unit_index.max()) + 1 if unit_index.size else 0
            unit_ids = np.arange(top, dtype=np.int64)
        unit_ids = _normalise_unit_ids(unit_ids)
        if unit_index.size:
            lo, hi = int(unit_index.min()), int(unit_index.max())
            if lo < 0 or hi >= unit_ids.size:
                raise InputError(f"unit_index must lie in [0, {unit_ids.size}), found values "
                                 f"from {lo} to {hi}", field="unit_index")
        unit_index = unit_index.astype(np.int32, copy=False)

        properties = {}
        for name, values in (spike_properties or {}).items():
            values = np.asarray(values)
            if values.shape[:1] != sample_index.shape:
                raise InputError(f"spike property has {values.shape[0]} rows, expected "
                                 f"{sample_index.shape[0]}", field=name)
            properties[name] = values

        if sort and first_unsorted(sample_index) >= 0:
            order = np.argsort(sample_index, kind="stable")
            sample_index = sample_index[order]
            unit_index = unit_index[order]
            properties = {k: v[order] for k, v in properties.items()}
        elif not sort:
            bad = first_unsorted(sample_index)
            if bad >= 0:
                raise InputError(f"sample indices must be sorted in time; spike {bad} "
                                 f"({sample_index[bad]}) comes before spike {bad - 1} "
                                 f"({sample_index[bad - 1]})", field="sample_index")

        table = self._make_table(unit_ids, unit_table)
        super().__init__(sampling_frequency=sampling_frequency, unit_table=table, **params)
        self._sample_index = _readonly(sample_index)
        self._unit_index = _readonly(unit_index)
        self._unit_ids = _readonly(unit_ids)
        self._spike_properties = {k: _readonly(v) for k, v in properties.items()}
        self._offsets = _readonly(unit_offsets(unit_index, unit_ids.size))
        self._position = {id_key(u): i for i, u in enumerate(unit_ids.tolist())}
        self._order = None
        self._hash_box: dict = {}  # hashes and unit order, shared by copies from _replace
        self._lock = threading.Lock()
        if self.num_samples is not None and sample_index.size and \
                int(sample_index[-1]) >= self.num_samples:
            raise InputError(f"last spike at sample {int(sample_index[-1])} lies beyond the "
                             f"recording's {self.num_samples} samples", field="num_samples")

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, sample_index, unit_index, sampling_frequency, unit_ids=None, **kwargs):
        """Sorting from int sample indices and unit *indices* (positions in ``unit_ids``).

        ``unit_ids`` defaults to ``0 .. max(unit_index)``. Unsorted input is sorted by time
        (stably); pass ``sort=False`` to reject it instead.
        """
        return cls(sample_index, unit_index, sampling_frequency, unit_ids=unit_ids, **kwargs)

    @classmethod
    def from_unit_ids(cls, sample_index, spike_unit_ids, sampling_frequency, unit_ids=None,
                      **kwargs):
        """Sorting from int sample indices and the unit *id* of every spike.

        ``unit_ids`` (optional) lists every unit, including ones without spikes; by default the
        distinct ids found, ascending.
        """
        spike_unit_ids = np.asarray(spike_unit_ids)
        if spike_unit_ids.ndim == 2 and spike_unit_ids.shape[1] == 1:
            spike_unit_ids = spike_unit_ids[:, 0]
        found_ids, unit_index = ids_to_indices(spike_unit_ids)
        if unit_ids is not None:
            unit_ids = _normalise_unit_ids(unit_ids)
            if found_ids.size:
                where = pd.Index(unit_ids).get_indexer(found_ids)
                if (where < 0).any():
                    missing = found_ids[where < 0][:5].tolist()
                    raise InputError(f"spikes carry unit ids {missing} not listed in unit_ids",
                                     field="unit_ids")
                unit_index = where.astype(np.int32)[unit_index]
        else:
            unit_ids = found_ids
        return cls(sample_index, unit_index, sampling_frequency, unit_ids=unit_ids, **kwargs)

    @staticmethod
    def _make_table(unit_ids: np.ndarray, unit_table) -> pd.DataFrame:
        index = pd.Index(unit_ids, name="unit_id")
        if unit_table is None:
            return pd.DataFrame(index=index)
        if not isinstance(unit_table, pd.DataFrame):
            raise InputError("unit_table must be a pandas DataFrame", field="unit_table")
        if len(unit_table.index) != len(index) or not (
                np.asarray(unit_table.index) == np.asarray(index)).all():
            raise InputError("unit_table must be indexed by unit_id in the order of unit_ids",
                             field="unit_table")
        table = unit_table.copy()
        table.index = index
        return table

    # -- basic facts -----------------------------------------------------------------------
    @property
    def unit_ids(self) -> np.ndarray:
        """Unit labels (int64 or str), in unit_index order."""
        return self._unit_ids

    @property
    def sample_index(self) -> np.ndarray:
        """Spike times, int64 samples, sorted (read-only)."""
        return self._sample_index

    @property
    def unit_index(self) -> np.ndarray:
        """Unit position (in ``unit_ids``) of every spike, int32 (read-only)."""
        return self._unit_index

    @property
    def spike_properties(self) -> Mapping[str, np.ndarray]:
        """Per-spike arrays in spike-vector order (e.g. ``amplitudes``, ``template_index``)."""
        return dict(self._spike_properties)

    @property
    def num_units(self) -> int:
        return int(self._unit_ids.size)

    @property
    def num_spikes(self) -> int:
        return int(self._sample_index.size)

    @property
    def duration_s(self) -> float:
        """Recording length in seconds: num_samples if known, else up to the last spike."""
        if self.num_samples is not None:
            return self.num_samples / self.sampling_frequency
        if self.num_spikes == 0:
            return 0.0
        return (int(self._sample_index[-1]) + 1) / self.sampling_frequency

    @property
    def labels(self) -> pd.Series:
        """Curation label of every unit ('unsorted' where none is known)."""
        if "label" in self.unit_table:
            return self.unit_table["label"].fillna("unsorted").astype(str)
        return pd.Series("unsorted", index=self.unit_table.index, name="label")

    def spike_counts(self) -> pd.Series:
        """Number of spikes per unit, indexed by unit_id."""
        return pd.Series(np.diff(self._offsets), index=pd.Index(self._unit_ids, name="unit_id"),
                         name="num_spikes")

    def unit_index_of(self, unit_id) -> int:
        """Position of ``unit_id`` in ``unit_ids``; KeyError naming the id if absent."""
        key = id_key(unit_id)
        try:
            if key is None:
                raise KeyError(unit_id)
            return self._position[key]
        except (KeyError, TypeError):
            raise KeyError(f"no unit with id {unit_id!r} (type {type(unit_id).__name__}); "
                           f"unit ids are {self._describe_ids()}") from None

    def _describe_ids(self) -> str:
        ids = self._unit_ids.tolist()
        shown = ", ".join(repr(u) for u in ids[:8])
        return f"[{shown}{', ...' if len(ids) > 8 else ''}] ({len(ids)} units)"

    # -- per-unit access --------------------------------------------------------------------
    def _ensure_order(self) -> None:
        if self._order is not None:
            return
        with self._lock:
            # shared with the Sortings made by ``with_*`` (same spikes): built once for all
            shared = self._hash_box.get("order")
            if shared is None:
                order, _ = order_by_unit(self._unit_index, self._sample_index,
                                         np.asarray(self._offsets))
                shared = self._hash_box.setdefault("order", _readonly(order))
            self._order = shared

    def spike_indices(self, unit_id) -> np.ndarray:
        """Positions in the spike vector of the spikes of ``unit_id``, ascending (view)."""
        i = self.unit_index_of(unit_id)
        self._ensure_order()
        return self._order[self._offsets[i]:self._offsets[i + 1]]

    def spike_train(self, unit_id, start_sample: int | None = None,
                    end_sample: int | None = None) -> np.ndarray:
        """Spike times of ``unit_id`` in samples (int64, sorted, read-only; gathered from the
        spike vector in O(spikes of the unit): no per-unit copy of every time is kept).

        With ``start_sample``/``end_sample``, only spikes in [start_sample, end_sample).
        """
        i = self.unit_index_of(unit_id)
        self._ensure_order()
        train = _readonly(self._sample_index[self._order[self._offsets[i]:self._offsets[i + 1]]])
        if start_sample is not None or end_sample is not None:
            lo = 0 if start_sample is None else np.searchsorted(train, start_sample, "left")
            hi = train.size if end_sample is None else np.searchsorted(train, end_sample, "left")
            train = train[lo:hi]
        return train

    def spike_train_s(self, unit_id, start_s: float | None = None,
                      end_s: float | None = None) -> np.ndarray:
        """Spike times of ``unit_id`` in seconds (float64), optionally in [start_s, end_s)."""
        times_s = self.spike_train(unit_id) / self.sampling_frequency
        lo = 0 if start_s is None else np.searchsorted(times_s, start_s, "left")
        hi = times_s.size if end_s is None else np.searchsorted(times_s, end_s, "left")
        return times_s[lo:hi]

    # -- derived sortings -------------------------------------------------------------------
    def spikes_hash(self) -> str:
        """sha256 (hex) of the spikes: sample_index, unit_index, unit_ids and the rate.

        What derived results are keyed by (with ``num_samples`` where it matters). Computed once
        (about 0.35 s per 100 M spikes) and shared with Sortings made by ``with_*``.
        """
        with self._lock:
            if "spikes" not in self._hash_box:
                ids = np.asarray(self._unit_ids)
                ids = ids.astype("U") if ids.dtype.kind in "OUS" else ids
                self._hash_box["spikes"] = hash_arrays(
                    self._sample_index, self._unit_index, ids,
                    np.array([self.sampling_frequency], dtype=np.float64))
            return self._hash_box["spikes"]

    def property_hash(self, name: str) -> str:
        """sha256 (hex) of the per-spike property ``name`` (cached like :meth:`spikes_hash`)."""
        with self._lock:
            if f"property:{name}" not in self._hash_box:
                self._hash_box[f"property:{name}"] = hash_arrays(
                    np.asarray(self._spike_properties[name]))
            return self._hash_box[f"property:{name}"]

    def _replace(self, **params) -> Sorting:
        """A Sorting sharing this one's (read-only) arrays, with other parameter values."""
        new = Sorting.__new__(Sorting)
        values = {name: getattr(self, name) for name in
                  ("sampling_frequency", "num_samples", "unit_table", "source")}
        values.update(params)
        param.Parameterized.__init__(new, **values)
        for name in ("_sample_index", "_unit_index", "_unit_ids", "_spike_properties",
                     "_offsets", "_position", "_order", "_hash_box"):
            setattr(new, name, getattr(self, name))
        new._lock = threading.Lock()
        return new

    def with_num_samples(self, num_samples: int | None) -> Sorting:
        """The same spikes with the recording length set to ``num_samples`` (shares arrays)."""
        if num_samples is not None and self.num_spikes and \
                int(self._sample_index[-1]) >= int(num_samples):
            raise InputError(f"last spike at sample {int(self._sample_index[-1])} lies beyond "
                             f"the recording's {int(num_samples)} samples", field="num_samples")
        return self._replace(num_samples=None if num_samples is None else int(num_samples))

    def with_unit_table(self, unit_table: pd.DataFrame) -> Sorting:
        """The same spikes with another unit table (indexed by unit_id, in unit_ids order)."""
        return self._replace(unit_table=self._make_table(np.asarray(self._unit_ids), unit_table))

    def select_units(self, unit_ids: Iterable) -> Sorting:
        """A new Sorting with only ``unit_ids``, in the given order (unit table rows kept)."""
        keep = [self.unit_index_of(u) for u in unit_ids]
        if len(set(keep)) != len(keep):
            raise InputError("select_units got the same unit twice", field="unit_ids")
        lut = np.full(self.num_units, -1, dtype=np.int32)
        lut[keep] = np.arange(len(keep), dtype=np.int32)
        new_index = lut[self._unit_index]
        mask = new_index >= 0
        return Sorting(
            self._sample_index[mask], new_index[mask], self.sampling_frequency,
            unit_ids=self._unit_ids[keep], unit_table=self.unit_table.iloc[keep],
            spike_properties={k: v[mask] for k, v in self._spike_properties.items()},
            sort=False, num_samples=self.num_samples, source=self.source)

    def __repr__(self) -> str:
        return (f"Sorting({self.num_units} units, {self.num_spikes:,} spikes, "
                f"{self.sampling_frequency:g} Hz, {self.duration_s:.1f} s)")

    __str__ = __repr__
