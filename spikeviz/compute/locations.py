"""Unit locations on the probe plane from templates.

Two methods, with SpikeInterface 0.105's definitions and defaults
(``spikeinterface.postprocessing.localization_tools``):

- ``"center_of_mass"``: the feature-weighted mean of the contact positions (x, y) of the unit's
  channels. Defaults: ``radius_um=75`` around the peak channel (``peak_sign="neg"``) when no
  sparsity is given, ``feature="ptp"`` (also "mean", "energy" = L2 norm over time,
  "peak_voltage" = signed value at ``nbefore``).
- ``"monopolar_triangulation"``: the point source (x, y, z > 0, amplitude alpha) whose
  ``alpha / distance`` best fits the feature on the unit's channels, by
  ``scipy.optimize.least_squares`` from the centre of mass at ``z = 20`` µm, with
  ``max_distance_um=1000`` bounding x, y (± around the start), z (``[1, 10 * max_distance]``)
  and alpha (``[0, max feature * max_distance]``). Defaults ``radius_um=75``,
  ``feature="ptp"`` (also "energy", "peak_voltage" = |value at nbefore|). Only the
  "least_square" optimizer is provided. z is the distance from the probe plane.

Channel positions are µm; y is depth by convention. Units whose weights sum to 0 (e.g. a unit
without spikes, template all zeros) get NaN.
"""

from __future__ import annotations

import warnings

import numpy as np

from spikeviz.compute.unit_templates import PEAK_SIGNS, peak_channels, radius_sparsity
from spikeviz.errors import InputError

_COM_FEATURES = ("ptp", "mean", "energy", "peak_voltage")
_MONOPOLAR_FEATURES = ("ptp", "energy", "peak_voltage")


def _feature(wf, feature, nbefore, absolute):
    """Per-channel feature of one template ``wf`` (samples, channels), float64."""
    if feature == "ptp":
        return wf.max(axis=0) - wf.min(axis=0)
    if feature == "mean":
        return wf.mean(axis=0)
    if feature == "energy":
        return np.sqrt(np.sum(wf * wf, axis=0))
    value = wf[nbefore]
    return np.abs(value) if absolute else value


def _center_of_mass(weights, positions):
    total = weights.sum()
    if total == 0 or not np.isfinite(total):
        return np.full(positions.shape[1], np.nan)
    return (weights[:, None] * positions).sum(axis=0) / total


def _point_source_residuals(params, weights, positions):
    dx = positions[:, 0] - params[0]
    dy = positions[:, 1] - params[1]
    return weights - params[3] / np.sqrt(dx * dx + dy * dy + params[2] * params[2])


def _monopolar_fit(weights, positions, max_distance_um):
    from scipy.optimize import least_squares

    best = int(np.argmax(weights))
    peak = weights[best]
    com = _center_of_mass(weights, positions)
    if not np.all(np.isfinite(com)) or not peak > 0:
        return np.full(4, np.nan)
    z0 = 20.0
    start = np.empty(4, dtype=np.float32)  # SpikeInterface starts from float32 values
    start[:2] = com
    start[2] = z0
    start[3] = np.sqrt(np.sum((com - positions[best]) ** 2) + z0 * z0) * peak
    x0 = start.astype(np.float64)
    lower = [x0[0] - max_distance_um, x0[1] - max_distance_um, 1.0, 0.0]
    upper = [x0[0] + max_distance_um, x0[1] + max_distance_um, max_distance_um * 10.0,
             peak * max_distance_um]
    try:
        fit = least_squares(_point_source_residuals, x0=x0, bounds=(lower, upper),
                            args=(weights, positions))
    except (ValueError, np.linalg.LinAlgError) as error:
        warnings.warn(f"monopolar triangulation failed: {error}", RuntimeWarning, stacklevel=3)
        return np.full(4, np.nan)
    return fit.x


def compute_unit_locations(templates, channel_locations_um, nbefore, sparse_channel_indices=None,
                           method="center_of_mass", **kwargs) -> np.ndarray:
    """Location of each unit in µm from its template.

    ``templates`` is float ``(units, samples, channels)`` µV, ``channel_locations_um``
    ``(channels, 2 or 3)`` (only x, y are used), ``nbefore`` the spike sample within a
    template. ``sparse_channel_indices`` (int ``(units, K)``, -1 padded) chooses each unit's
    channels; when None they are the channels within ``radius_um`` of the peak channel.

    ``method="center_of_mass"`` returns float64 ``(units, 2)`` x/y; keyword arguments
    ``radius_um=75``, ``feature="ptp"``, ``peak_sign="neg"``.
    ``method="monopolar_triangulation"`` returns float64 ``(units, 3)`` x/y/z (``(units, 4)``
    with alpha when ``return_alpha=True``); keyword arguments ``radius_um=75``,
    ``max_distance_um=1000``, ``feature="ptp"``, ``peak_sign="neg"``,
    ``optimizer="least_square"``, ``return_alpha=False``. See the module docstring.
    """
    templates = np.asarray(templates)
    if templates.ndim != 3:
        raise InputError(f"templates must be (units, samples, channels), got shape "
                         f"{templates.shape}", field="templates")
    num_units, num_samples, num_channels = templates.shape
    locations = np.asarray(channel_locations_um, dtype=np.float64)
    if locations.ndim != 2 or locations.shape[0] != num_channels or locations.shape[1] < 2:
        raise InputError(f"channel_locations_um must be (channels={num_channels}, 2 or 3), got "
                         f"shape {locations.shape}", field="channel_locations_um")
    if method == "center_of_mass":
        allowed = {"radius_um": 75.0, "feature": "ptp", "peak_sign": "neg"}
        features = _COM_FEATURES
    elif method == "monopolar_triangulation":
        allowed = {"radius_um": 75.0, "feature": "ptp", "peak_sign": "neg",
                   "max_distance_um": 1000.0, "optimizer": "least_square",
                   "return_alpha": False}
        features = _MONOPOLAR_FEATURES
    else:
        raise InputError(f"method must be 'center_of_mass' or 'monopolar_triangulation', got "
                         f"{method!r}", field="method")
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise InputError(f"unknown arguments {unknown} for method {method!r}; accepted: "
                         f"{sorted(allowed)}", field=unknown[0])
    params = {**allowed, **kwargs}
    if params["feature"] not in features:
        raise InputError(f"feature must be one of {features} for {method!r}, got "
                         f"{params['feature']!r}", field="feature")
    if params["peak_sign"] not in PEAK_SIGNS:
        raise InputError(f"peak_sign must be one of {PEAK_SIGNS}, got {params['peak_sign']!r}",
                         field="peak_sign")
    if params.get("optimizer", "least_square") != "least_square":
        raise InputError("only optimizer='least_square' is provided", field="optimizer")
    nbefore = int(nbefore)
    if params["feature"] == "peak_voltage" and not 0 <= nbefore < num_samples:
        raise InputError(f"nbefore must lie in [0, {num_samples}) for feature 'peak_voltage'",
                         field="nbefore")

    if sparse_channel_indices is None:
        peak = peak_channels(templates, nbefore, params["peak_sign"])
        sparse = radius_sparsity(peak, locations, params["radius_um"])
    else:
        sparse = np.asarray(sparse_channel_indices, dtype=np.int64)
        if sparse.ndim != 2 or sparse.shape[0] != num_units or (
                sparse.size and (sparse.min() < -1 or sparse.max() >= num_channels)):
            raise InputError(f"sparse_channel_indices must be (units={num_units}, K) channel "
                             f"positions in [0, {num_channels}) or -1",
                             field="sparse_channel_indices")

    positions_xy = locations[:, :2]
    width = 2 if method == "center_of_mass" else (4 if params["return_alpha"] else 3)
    out = np.full((num_units, width), np.nan, dtype=np.float64)
    for u in range(num_units):
        chans = sparse[u][sparse[u] >= 0]
        if chans.size == 0:
            continue
        wf = templates[u][:, chans].astype(np.float64)
        if method == "center_of_mass":
            weights = _feature(wf, params["feature"], nbefore, absolute=False)
            out[u] = _center_of_mass(weights, positions_xy[chans])
        else:
            weights = _feature(wf, params["feature"], nbefore, absolute=True)
            fit = _monopolar_fit(weights, positions_xy[chans], float(params["max_distance_um"]))
            out[u] = fit[:width]
    return out
