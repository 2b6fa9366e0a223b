"""The ``.npy`` arrays of a Phy folder: check what the caller gives and cast it to KiloSort's
dtypes (see :mod:`spikeviz.io.phy_write` for the table of files). Nothing here writes."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


class Blocks:
    """An array-like (e.g. a memmap or a lazy view) written to ``.npy`` block by block as
    ``dtype``, so that a large array is never loaded whole."""

    def __init__(self, source, dtype):
        self.source, self.dtype, self.shape = source, np.dtype(dtype), tuple(source.shape)

    def __getitem__(self, key):
        return np.asarray(self.source[key], dtype=self.dtype)


def _as_int_vector(values, field: str, num: int | None = None) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 2 and 1 in values.shape:
        values = values.reshape(-1)
    if values.ndim != 1:
        raise InputError(f"expected a 1-D array, got shape {values.shape}", field=field)
    if values.size and values.dtype.kind not in "iu":
        raise InputError(f"expected integers, got dtype {values.dtype}", field=field)
    if num is not None and values.size != num:
        raise InputError(f"has {values.size} entries but there are {num} spikes", field=field)
    if values.size and int(values.min()) < 0:
        raise InputError(f"must be >= 0, found {int(values.min())}", field=field)
    return values


def _int32_vector(values, field: str, num: int | None = None) -> np.ndarray:
    values = _as_int_vector(values, field, num)
    if values.size and int(values.max()) > np.iinfo(np.int32).max:
        raise InputError(f"values above {np.iinfo(np.int32).max} do not fit KiloSort's int32",
                         field=field)
    return values.astype(np.int32)


def _check_sample_index(sample_index) -> np.ndarray:
    sample_index = np.asarray(sample_index)
    if sample_index.ndim == 2 and sample_index.shape[1:] == (1,):
        sample_index = sample_index[:, 0]
    if sample_index.ndim != 1:
        raise InputError(f"expected a 1-D array of sample indices, got shape "
                         f"{sample_index.shape}", field="sample_index")
    if sample_index.size and sample_index.dtype.kind not in "iu":
        raise InputError(f"expected integer sample indices (samples, not seconds), got dtype "
                         f"{sample_index.dtype}", field="sample_index")
    if sample_index.size and int(sample_index.min()) < 0:
        raise InputError(f"sample indices must be >= 0, found {int(sample_index.min())}",
                         field="sample_index")
    if sample_index.size > 1:
        steps = np.diff(sample_index.astype(np.int64))
        if (steps < 0).any():
            bad = int(np.flatnonzero(steps < 0)[0]) + 1
            raise InputError(f"sample indices must be sorted in time; spike {bad} "
                             f"({int(sample_index[bad])}) comes before spike {bad - 1} "
                             f"({int(sample_index[bad - 1])})", field="sample_index")
    return sample_index.astype(np.uint64)


def _float_array(values, field: str, shape: tuple, dtype=np.float64) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != shape or (values.size and values.dtype.kind not in "fiu"):
        raise InputError(f"expected numbers of shape {shape}, got {values.dtype} {values.shape}",
                         field=field)
    if not np.isfinite(values).all():
        raise InputError("must be finite", field=field)
    return values.astype(dtype)


def _channel_table(values, field: str, shape: tuple, num_channels: int, lowest: int, dtype):
    values = np.asarray(values)
    if values.shape != shape or (values.size and values.dtype.kind not in "iu"):
        raise InputError(f"expected integers of shape {shape}, got {values.dtype} "
                         f"{values.shape}", field=field)
    if values.size and (int(values.min()) < lowest or int(values.max()) >= num_channels):
        raise InputError(f"channel indices must lie in [{lowest}, {num_channels}), found "
                         f"{int(values.min())}..{int(values.max())}", field=field)
    return values.astype(dtype)


def check_arrays(sample_index, spike_clusters, *, templates=None, spike_templates=None,
                 amplitudes=None, channel_positions_um=None, channel_map=None,
                 n_channels_dat: int | None = None, template_ind=None, similar_templates=None,
                 whitening_mat=None, whitening_mat_inv=None, pc_features=None,
                 pc_feature_ind=None, channel_shanks=None) -> tuple[dict, int | None]:
    """(``{file name: array}`` in KiloSort's dtypes, number of channels or None). Arguments as
    :func:`spikeviz.io.phy_write.write_phy_folder`; ``n_channels_dat`` (valid or None) gives
    the default channel map when nothing else says how many channels there are."""
    times = _check_sample_index(sample_index)
    n = times.size
    clusters = _int32_vector(spike_clusters, "spike_clusters", n)
    if spike_templates is None:
        spike_templates = clusters
    spike_templates = _int32_vector(spike_templates, "spike_templates", n)
    arrays: dict = {"spike_times.npy": times, "spike_clusters.npy": clusters,
                    "spike_templates.npy": spike_templates}

    if amplitudes is not None:
        amplitudes = np.asarray(amplitudes, dtype=np.float64)
        if amplitudes.shape != (n,):
            raise InputError(f"expected {n} amplitudes (one per spike), got shape "
                             f"{amplitudes.shape}", field="amplitudes")
        if not np.isfinite(amplitudes).all():
            raise InputError("amplitudes must be finite", field="amplitudes")
        arrays["amplitudes.npy"] = amplitudes

    num_channels = None
    num_templates = int(spike_templates.max()) + 1 if n else 0
    if templates is not None:
        templates = np.asarray(templates)
        if templates.ndim != 3:
            raise InputError(f"templates must be (templates, samples, channels), got shape "
                             f"{templates.shape}", field="templates")
        if templates.dtype.kind not in "fiu":
            raise InputError(f"templates must be numbers, got dtype {templates.dtype}",
                             field="templates")
        if n and int(spike_templates.max()) >= templates.shape[0]:
            raise InputError(f"spikes refer to template {int(spike_templates.max())} but "
                             f"only {templates.shape[0]} templates are given",
                             field="spike_templates")
        arrays["templates.npy"] = templates.astype(np.float32)
        num_templates = templates.shape[0]
        if template_ind is None:
            num_channels = templates.shape[2]

    if channel_positions_um is not None:
        positions = np.asarray(channel_positions_um, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 2:
            raise InputError(f"channel positions must be (channels, 2) in µm, got shape "
                             f"{positions.shape}", field="channel_positions_um")
        if num_channels is not None and positions.shape[0] != num_channels:
            raise InputError(f"{positions.shape[0]} channel positions but the templates have "
                             f"{num_channels} channels", field="channel_positions_um")
        if not np.isfinite(positions).all():
            raise InputError("channel positions must be finite", field="channel_positions_um")
        arrays["channel_positions.npy"] = positions
        num_channels = positions.shape[0]

    if channel_map is not None:
        channel_map = _int32_vector(channel_map, "channel_map")
        if num_channels is not None and channel_map.size != num_channels:
            raise InputError(f"channel map has {channel_map.size} entries but there are "
                             f"{num_channels} channels", field="channel_map")
        if np.unique(channel_map).size != channel_map.size:
            raise InputError("channel map entries must be unique", field="channel_map")
        num_channels = channel_map.size
    elif num_channels is not None or n_channels_dat is not None:
        num_channels = num_channels if num_channels is not None else int(n_channels_dat)
        channel_map = np.arange(num_channels, dtype=np.int32)
    if channel_map is not None:
        arrays["channel_map.npy"] = channel_map
    arrays.update(_optional_arrays(n, num_templates, num_channels, templates, template_ind,
                                   similar_templates, whitening_mat, whitening_mat_inv,
                                   pc_features, pc_feature_ind, channel_shanks))
    return arrays, num_channels


def _optional_arrays(n: int, num_templates: int, num_channels: int | None, templates,
                     template_ind, similar_templates, whitening_mat, whitening_mat_inv,
                     pc_features, pc_feature_ind, channel_shanks) -> dict:
    out = {}
    needs_channels = {"template_ind": template_ind, "whitening_mat": whitening_mat,
                      "whitening_mat_inv": whitening_mat_inv, "pc_feature_ind": pc_feature_ind,
                      "channel_shanks": channel_shanks}
    for field, value in needs_channels.items():
        if value is not None and num_channels is None:
            raise InputError("needs the channels: give channel_positions_um or channel_map",
                             field=field)
    if template_ind is not None:
        if templates is None:
            raise InputError("sparse template channels without templates", field="template_ind")
        out["template_ind.npy"] = _channel_table(template_ind, "template_ind",
                                                 templates.shape[::2], num_channels, -1, np.int32)
    if similar_templates is not None:
        out["similar_templates.npy"] = _float_array(
            similar_templates, "similar_templates", (num_templates, num_templates), np.float32)
    for name, value in (("whitening_mat", whitening_mat),
                        ("whitening_mat_inv", whitening_mat_inv)):
        if value is not None:
            out[f"{name}.npy"] = _float_array(value, name, (num_channels, num_channels))
    if (pc_features is None) != (pc_feature_ind is None):
        raise InputError("pc_features and pc_feature_ind go together", field="pc_features")
    if pc_features is not None:
        shape = tuple(pc_features.shape)
        if len(shape) != 3 or shape[0] != n or np.dtype(pc_features.dtype).kind not in "fiu":
            raise InputError(f"expected numbers of shape ({n} spikes, pcs, channels), got "
                             f"{pc_features.dtype} {shape}", field="pc_features")
        out["pc_feature_ind.npy"] = _channel_table(pc_feature_ind, "pc_feature_ind",
                                                   (num_templates, shape[2]), num_channels, 0,
                                                   np.uint32)
        out["pc_features.npy"] = Blocks(pc_features, np.float32)
    if channel_shanks is not None:
        shanks = _int32_vector(channel_shanks, "channel_shanks")
        if shanks.size != num_channels:
            raise InputError(f"{shanks.size} shanks but there are {num_channels} channels",
                             field="channel_shanks")
        out["channel_shanks.npy"] = shanks
    return out
