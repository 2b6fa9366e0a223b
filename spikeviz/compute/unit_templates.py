"""Templates from snippets, peak channel / shift / amplitude per unit, channel sparsity.

Templates are float32 arrays ``(units, samples, channels)`` in µV; ``nbefore`` is the sample of
the spike within a template. Definitions follow SpikeInterface 0.105 (``ComputeTemplates``,
``Templates.get_main_channels``, ``get_template_peak_shift_on_main_channel``,
``get_template_amplitude_on_main_channel`` with ``peak_mode="extremum"``, and
``ChannelSparsity.from_radius`` / ``from_best_channels``):

- ``peak_sign="neg"``: a channel's extremum is its minimum over time; ``"pos"`` its maximum;
  ``"both"`` its largest absolute value.
- The peak channel maximises that extremum (``-min`` for "neg"); ties go to the lowest channel.
- The peak shift is the sample of the extremum on the peak channel minus ``nbefore``.

Sparsity is an int64 ``(units, K)`` array of channel positions, ascending per unit, padded
with -1 (K is the largest channel count of any unit).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numba
import numpy as np

from spikeviz.compute.select import median_inplace
from spikeviz.compute.spikes import order_by_unit, unit_offsets
from spikeviz.errors import InputError

PEAK_SIGNS = ("neg", "pos", "both")
OPERATORS = ("average", "std", "median")


# -- templates from snippets -------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _sum_by_unit(waveforms, units, sums, squares, with_squares, c0, c1):
    num_t = waveforms.shape[1]
    for k in range(waveforms.shape[0]):
        u = units[k]
        for t in range(num_t):
            row = waveforms[k, t, c0:c1]
            total = sums[u, t, c0:c1]
            if with_squares:
                square = squares[u, t, c0:c1]
                for c in range(c1 - c0):
                    v = np.float64(row[c])
                    total[c] += v
                    square[c] += v * v
            else:
                for c in range(c1 - c0):
                    total[c] += row[c]


@numba.njit(cache=True, nogil=True)
def _median_by_unit(waveforms, order, offsets, unit_list, out):
    num_t = waveforms.shape[1]
    num_c = waveforms.shape[2]
    for u in unit_list:
        first = offsets[u]
        n = offsets[u + 1] - first
        if n == 0:
            continue
        column = np.empty((num_c, n), dtype=np.float64)
        for t in range(num_t):
            for j in range(n):
                k = order[first + j]
                for c in range(num_c):
                    column[c, j] = waveforms[k, t, c]
            for c in range(num_c):
                out[u, t, c] = median_inplace(column[c], n)


def _split(n, parts):
    edges = np.linspace(0, n, max(1, min(parts, n)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in pairwise(edges)]


def _threads(n_jobs, tasks):
    """Run callables, on ``n_jobs`` threads when more than one (the kernels release the GIL)."""
    if n_jobs == 1 or len(tasks) < 2:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()


def moments(sums, squares, counts):
    """float32 ``(mean, std)`` from float64 per-unit sums and sums of squares ``(units, ...)``.

    Population std (ddof=0); units with a count of 0 get zeros. Works in place on ``sums``
    and ``squares`` (no full-size temporaries); ``squares`` may be empty (std is then None).
    """
    for u in range(sums.shape[0]):
        if counts[u] == 0:
            continue
        sums[u] /= counts[u]
        if squares.size:
            squares[u] /= counts[u]
            squares[u] -= sums[u] * sums[u]
    mean = sums.astype(np.float32)
    if not squares.size:
        return mean, None
    np.maximum(squares, 0.0, out=squares)
    np.sqrt(squares, out=squares)
    return mean, squares.astype(np.float32)


def compute_templates(waveforms, spike_unit_index, num_units,
                      operators=("average", "std", "median"), n_jobs=1) -> dict[str, np.ndarray]:
    """Per-unit statistics of snippets: ``{operator: float32 (num_units, T, C)}`` in µV.

    ``waveforms`` is ``(n_spikes, T, C)`` (e.g. from ``extract_waveforms``), ``spike_unit_index``
    the unit position of each snippet. "average" is the mean, "std" the population standard
    deviation (ddof=0, like ``numpy.std`` in SpikeInterface's templates extension), "median" the
    element-wise median (mean of the two middle values for an even count). Sums are float64.
    Units without spikes get zeros. ``n_jobs`` threads split the channels (average, std) and
    the units (median).
    """
    waveforms = np.asarray(waveforms)
    if waveforms.ndim != 3:
        raise InputError(f"waveforms must be (spikes, samples, channels), got shape "
                         f"{waveforms.shape}", field="waveforms")
    operators = tuple(operators)
    unknown = [op for op in operators if op not in OPERATORS]
    if unknown:
        raise InputError(f"unknown operators {unknown}; expected any of {OPERATORS}",
                         field="operators")
    units = np.ascontiguousarray(spike_unit_index)
    num_units = int(num_units)
    n = waveforms.shape[0]
    if units.shape != (n,) or (n and (units.min() < 0 or units.max() >= num_units)):
        raise InputError(f"spike_unit_index must hold one unit position in [0, {num_units}) per "
                         f"snippet ({n})", field="spike_unit_index")
    units = units.astype(np.int64, copy=False)
    n_jobs = int(n_jobs)
    if n_jobs < 1:
        raise InputError(f"n_jobs must be >= 1, got {n_jobs}", field="n_jobs")
    shape = (num_units, *waveforms.shape[1:])
    result = {}
    if "average" in operators or "std" in operators:
        with_std = "std" in operators
        sums = np.zeros(shape, dtype=np.float64)
        squares = np.zeros(shape if with_std else (0, 0, 0), dtype=np.float64)
        _threads(n_jobs, [
            (lambda c0=c0, c1=c1: _sum_by_unit(waveforms, units, sums, squares, with_std,
                                               c0, c1))
            for c0, c1 in _split(shape[2], n_jobs)])
        mean, std = moments(sums, squares, np.bincount(units, minlength=num_units))
        if "average" in operators:
            result["average"] = mean
        if with_std:
            result["std"] = std
    if "median" in operators:
        median = np.zeros(shape, dtype=np.float32)
        offsets = unit_offsets(units, num_units)
        order, _ = order_by_unit(units, np.zeros(n, dtype=np.int64), offsets)
        # units dealt round-robin, largest first, to balance the threads
        by_size = np.argsort(-np.diff(offsets), kind="stable")
        _threads(n_jobs, [
            (lambda part=by_size[j::n_jobs]: _median_by_unit(waveforms, order, offsets,
                                                             part, median))
            for j in range(min(n_jobs, max(num_units, 1)))])
        result["median"] = median
    return {op: result[op] for op in operators}


# -- peak channel, shift and amplitude ---------------------------------------------------------
def _check_templates(templates, peak_sign):
    templates = np.asarray(templates)
    if templates.ndim != 3:
        raise InputError(f"templates must be (units, samples, channels), got shape "
                         f"{templates.shape}", field="templates")
    if peak_sign not in PEAK_SIGNS:
        raise InputError(f"peak_sign must be one of {PEAK_SIGNS}, got {peak_sign!r}",
                         field="peak_sign")
    return templates


def _channel_extremum(templates, peak_sign):
    """(units, channels) extremum over time, signed ("neg": min, "pos": max, "both": max |.|)."""
    if peak_sign == "neg":
        return templates.min(axis=1)
    if peak_sign == "pos":
        return templates.max(axis=1)
    return np.abs(templates).max(axis=1)


def _peak_channels(templates, peak_sign):
    extremum = _channel_extremum(templates, peak_sign)
    score = -extremum if peak_sign == "neg" else extremum
    if templates.shape[0] == 0 or templates.shape[2] == 0:
        return np.zeros(templates.shape[0], dtype=np.int64)
    return np.argmax(score, axis=1).astype(np.int64)


def peak_channels(templates, nbefore, peak_sign="neg") -> np.ndarray:
    """Peak channel (position) per unit, int64 ``(units,)``: the channel whose extremum over time
    is largest (most negative minimum for "neg", largest maximum for "pos", largest absolute
    value for "both"). ``nbefore`` is unused by this extremum definition (kept for symmetry)."""
    return _peak_channels(_check_templates(templates, peak_sign), peak_sign)


def peak_shifts(templates, nbefore, peak_sign="neg") -> np.ndarray:
    """Samples from the spike sample (``nbefore``) to the extremum on the peak channel, int64
    ``(units,)``; negative when the peak comes before the spike sample."""
    templates = _check_templates(templates, peak_sign)
    if templates.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    main = templates[np.arange(templates.shape[0]), :, _peak_channels(templates, peak_sign)]
    if peak_sign == "neg":
        pos = np.argmin(main, axis=1)
    elif peak_sign == "pos":
        pos = np.argmax(main, axis=1)
    else:
        pos = np.argmax(np.abs(main), axis=1)
    return (pos - int(nbefore)).astype(np.int64)


def peak_amplitudes(templates, nbefore, peak_sign="neg") -> np.ndarray:
    """Absolute extremum of each unit's template on its peak channel, float64 µV ``(units,)``
    (SpikeInterface's ``get_template_amplitude_on_main_channel``, extremum mode,
    ``abs_value=True``)."""
    templates = _check_templates(templates, peak_sign)
    if templates.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    extremum = _channel_extremum(templates, peak_sign)
    main = _peak_channels(templates, peak_sign)
    return np.abs(extremum[np.arange(templates.shape[0]), main]).astype(np.float64)


# -- sparsity ----------------------------------------------------------------------------------
def _mask_to_indices(mask):
    counts = mask.sum(axis=1)
    width = int(counts.max()) if counts.size else 0
    out = np.full((mask.shape[0], width), -1, dtype=np.int64)
    rows, cols = np.nonzero(mask)  # row-major: ascending channels within a row
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out[rows, np.arange(rows.size) - starts[rows]] = cols
    return out


def sparsity_mask(sparse_channel_indices, num_channels) -> np.ndarray:
    """Boolean ``(units, num_channels)`` mask of a -1 padded sparsity array."""
    idx = np.asarray(sparse_channel_indices, dtype=np.int64)
    mask = np.zeros((idx.shape[0], int(num_channels)), dtype=bool)
    rows, cols = np.nonzero(idx >= 0)
    mask[rows, idx[rows, cols]] = True
    return mask


def _locations(channel_locations_um, num_channels):
    locations = np.asarray(channel_locations_um, dtype=np.float64)
    if locations.ndim != 2 or locations.shape[0] != num_channels:
        raise InputError(f"channel_locations_um must be (channels={num_channels}, dims), got "
                         f"shape {locations.shape}", field="channel_locations_um")
    return locations


def radius_sparsity(peak_channel_per_unit, channel_locations_um, radius_um) -> np.ndarray:
    """Channels within ``radius_um`` (Euclidean, inclusive) of each unit's peak channel:
    int64 ``(units, K)``, ascending, -1 padded (``ChannelSparsity.from_radius_and_main_channel``).
    """
    peak = np.asarray(peak_channel_per_unit, dtype=np.int64)
    locations = np.asarray(channel_locations_um, dtype=np.float64)
    if locations.ndim != 2:
        raise InputError(f"channel_locations_um must be (channels, dims), got shape "
                         f"{locations.shape}", field="channel_locations_um")
    if peak.ndim != 1 or (peak.size and (peak.min() < 0 or peak.max() >= locations.shape[0])):
        raise InputError(f"peak channels must be positions in [0, {locations.shape[0]})",
                         field="peak_channel_per_unit")
    distance = np.linalg.norm(locations[peak][:, None, :] - locations[None, :, :], axis=2)
    return _mask_to_indices(distance <= float(radius_um))


def sparsity_from_templates(templates, channel_locations_um, nbefore, method="radius",
                            radius_um=100.0, num_channels=None, peak_sign="neg") -> np.ndarray:
    """Channel sparsity per unit from templates: int64 ``(units, K)``, ascending, -1 padded.

    ``"radius"``: channels within ``radius_um`` (µm, inclusive) of the peak channel
    (``ChannelSparsity.from_radius``). ``"best_channels"``: the ``num_channels`` channels
    (default 5, SpikeInterface's) with the largest absolute extremum over time, ranked like
    ``ChannelSparsity.from_best_channels(amplitude_mode="extremum")``; equal amplitudes rank
    the lower channel first.
    """
    templates = _check_templates(templates, peak_sign)
    num_chans = templates.shape[2]
    locations = _locations(channel_locations_um, num_chans)
    if method == "radius":
        return radius_sparsity(_peak_channels(templates, peak_sign), locations, radius_um)
    if method == "best_channels":
        k = 5 if num_channels is None else int(num_channels)
        if k < 1:
            raise InputError(f"num_channels must be >= 1, got {k}", field="num_channels")
        amplitude = np.abs(_channel_extremum(templates, peak_sign))
        ranked = np.argsort(-amplitude, axis=1, kind="stable")[:, :min(k, num_chans)]
        return np.sort(ranked, axis=1).astype(np.int64)
    raise InputError(f"method must be 'radius' or 'best_channels', got {method!r}",
                     field="method")
