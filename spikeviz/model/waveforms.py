"""Templates: one mean waveform per unit (or per KiloSort template) over its channels."""

from __future__ import annotations

import itertools

import numpy as np
import param

from ..errors import InputError


class Templates(param.Parameterized):
    """Average waveforms, ``data[unit, sample, channel]`` (float32).

    Dense templates cover every channel in ``channel_ids``. Sparse templates cover, per
    unit, the channels in ``sparse_channel_indices[unit]`` (positions in ``channel_ids``;
    -1 pads unused slots).
    """

    unit_ids = param.Array(doc="Label of each template row (unit ids, or KiloSort template ids).")
    channel_ids = param.Array(doc="All channel ids the sparse indices refer to.")
    nbefore = param.Integer(default=None, allow_None=True, bounds=(0, None),
                            doc="Samples before the spike peak, when known.")
    sampling_frequency = param.Number(default=None, allow_None=True, doc="Hz.")
    units = param.String(default="uV", doc="""
        'uV'; 'raw' (stored units, gain unknown); 'whitened' for raw KiloSort templates.""")

    def __init__(self, data, unit_ids, channel_ids, sparse_channel_indices=None, std=None,
                 **params):
        data = np.asarray(data)
        if data.ndim != 3:
            raise InputError(f"templates must be (units, samples, channels), got shape "
                             f"{data.shape}", field="templates")
        unit_ids = np.asarray(unit_ids)
        channel_ids = np.asarray(channel_ids)
        if unit_ids.shape != (data.shape[0],):
            raise InputError(f"{data.shape[0]} templates but {unit_ids.size} unit ids",
                             field="unit_ids")
        if sparse_channel_indices is None:
            if data.shape[2] != channel_ids.size:
                raise InputError(f"dense templates have {data.shape[2]} channels but "
                                 f"{channel_ids.size} channel ids are given", field="channel_ids")
        else:
            sparse_channel_indices = np.asarray(sparse_channel_indices, dtype=np.int64)
            if sparse_channel_indices.shape != (data.shape[0], data.shape[2]):
                raise InputError(f"sparse channel indices must have shape "
                                 f"{(data.shape[0], data.shape[2])}, got "
                                 f"{sparse_channel_indices.shape}", field="template_ind")
            if sparse_channel_indices.size and (
                    sparse_channel_indices.max() >= channel_ids.size
                    or sparse_channel_indices.min() < -1):
                raise InputError(f"sparse channel indices must lie in [-1, {channel_ids.size})",
                                 field="template_ind")
        if std is not None and np.shape(std) != data.shape:
            raise InputError(f"template std must have the templates' shape {data.shape}, got "
                             f"{np.shape(std)}", field="std")
        super().__init__(unit_ids=unit_ids, channel_ids=channel_ids, **params)
        self.data = data
        self.std = std
        self.sparse_channel_indices = sparse_channel_indices

    @property
    def num_samples(self) -> int:
        return int(self.data.shape[1])

    def dense(self, index: int) -> np.ndarray:
        """Template row ``index`` on every channel, (samples, len(channel_ids)) float32."""
        row = np.asarray(self.data[index], dtype=np.float32)
        if self.sparse_channel_indices is None:
            return row
        out = np.zeros((row.shape[0], self.channel_ids.size), dtype=np.float32)
        channels = self.sparse_channel_indices[index]
        used = channels >= 0
        out[:, channels[used]] = row[:, used]
        return out

    def peak_channel_indices(self) -> np.ndarray:
        """Position in ``channel_ids`` of each template's largest peak-to-peak channel."""
        ptp = np.ptp(np.asarray(self.data, dtype=np.float32), axis=1)
        best = np.argmax(ptp, axis=1)
        if self.sparse_channel_indices is None:
            return best
        return self.sparse_channel_indices[np.arange(best.size), best]

    def __repr__(self) -> str:
        kind = "dense" if self.sparse_channel_indices is None else "sparse"
        return (f"Templates({self.data.shape[0]} units, {self.num_samples} samples, "
                f"{self.data.shape[2]} of {self.channel_ids.size} channels ({kind}), "
                f"{self.units})")

    __str__ = __repr__


class Waveforms(param.Parameterized):
    """Sampled snippets: ``data[k, sample, c]`` float32 µV for spike ``spike_indices[k]``.

    Snippets are sparse: spike k covers the channels ``sparse_channel_indices[unit]`` (positions
    in ``channel_ids``, -1 pads) of its unit ``spike_unit_index[k]`` (unit position).
    """

    unit_ids = param.Array(doc="Unit ids; spike_unit_index refers to positions in it.")
    channel_ids = param.Array(doc="All channel ids the sparse indices refer to.")
    nbefore = param.Integer(default=0, bounds=(0, None), doc="Samples before the spike sample.")
    sampling_frequency = param.Number(default=None, allow_None=True, doc="Hz.")

    def __init__(self, data, spike_indices, spike_unit_index, sparse_channel_indices, **params):
        super().__init__(**params)
        self.data = data
        self.spike_indices = np.asarray(spike_indices)
        self.spike_unit_index = np.asarray(spike_unit_index)
        self.sparse_channel_indices = np.asarray(sparse_channel_indices)
        order = np.argsort(self.spike_unit_index, kind="stable")
        bounds = np.searchsorted(self.spike_unit_index[order],
                                 np.arange(len(self.unit_ids) + 1))
        self._rows = [order[a:b] for a, b in itertools.pairwise(bounds)]

    def for_unit(self, unit_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(snippets (n, samples, K) float32, spike_indices (n,), channel positions (K,))``
        of the unit at position ``unit_index``; padded channels are dropped."""
        rows = self._rows[unit_index]
        channels = self.sparse_channel_indices[unit_index]
        used = channels >= 0
        return (np.asarray(self.data[rows][:, :, used]), self.spike_indices[rows],
                channels[used])

    def __repr__(self) -> str:
        return (f"Waveforms({self.data.shape[0]} snippets of {self.data.shape[1]} samples on "
                f"{self.data.shape[2]} of {len(self.channel_ids)} channels, "
                f"{len(self.unit_ids)} units)")

    __str__ = __repr__
