"""The ground truth: :func:`generate` draws the units, trains, artefacts, noise and sorter
output from independent seeded streams and returns a :class:`GroundTruth`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Recording, Session, Sorting
from .render import SyntheticTraces, _make_renderer, _Renderer
from .sorter import SorterOutput, _sorter_output
from .units import (
    _ARTEFACT_DEAD_MS,
    _artefact_template,
    _make_units,
    _taper,
    _unit_templates,
    poisson_train,
    probe_locations_um,
)

# Bump whenever the output for given parameters and seed changes (invalidates demo caches).
GENERATOR_VERSION = 3

# Independent random streams, one per role: changing how one is used leaves the others alone.
_ROLE_UNITS, _ROLE_TRAINS, _ROLE_AMPLITUDES, _ROLE_SORTER, _ROLE_NOISE, _ROLE_ARTEFACTS = range(6)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(eq=False)
class GroundTruth:
    """A synthetic recording and its true units (see :mod:`spikeviz.datasets`).

    ``traces``: lazy int16 (samples, channels) array-like, µV = value x ``gain_to_uv``.
    ``sorting``: the true units (ids ``0..num_units-1``; per-spike ``amplitude_scale`` in
    ``spike_properties``; unit table columns kind, drifting, drift_fraction, waveform,
    amplitude_uv, firing_rate_hz, x_um, y_um, z_um, peak_channel_index). Spike ``i`` of unit
    ``u`` is ``amplitude_scale[i] * templates[u]`` with its trough at sample ``nbefore``.
    ``templates``: (units, samples, channels) float32 µV. ``sorter_output``: the simulated
    sorter's clusters. ``mapping``: what ``ground_truth.json`` holds.
    """

    sampling_frequency: float
    num_samples: int
    gain_to_uv: float
    channel_locations_um: np.ndarray
    templates: np.ndarray
    nbefore: int
    sorting: Sorting
    unit_kind: dict
    sorter_output: SorterOutput
    seed: int
    parameters: dict
    mapping: dict
    _renderer: _Renderer = field(repr=False)

    @property
    def num_channels(self) -> int:
        return int(self.channel_locations_um.shape[0])

    @property
    def num_units(self) -> int:
        return self.sorting.num_units

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sampling_frequency

    @cached_property
    def traces(self) -> SyntheticTraces:
        return SyntheticTraces(self._renderer)

    def traces_uv(self, start_sample: int, end_sample: int) -> np.ndarray:
        """Samples [start_sample, end_sample) in µV before int16 quantisation (float32)."""
        if not 0 <= start_sample <= end_sample <= self.num_samples:
            raise InputError(f"window [{start_sample}, {end_sample}) is outside [0, "
                             f"{self.num_samples})", field="traces")
        return self._renderer.render_uv(int(start_sample), int(end_sample))

    def recording(self) -> Recording:
        """The traces as a lazy Recording (µV via gains_to_uv, probe geometry)."""
        return Recording(self.traces, self.sampling_frequency,
                         channel_locations_um=self.channel_locations_um,
                         gains_to_uv=self.gain_to_uv, source="spikeviz.datasets")

    def session(self) -> Session:
        """The true units with the lazy recording."""
        return Session(self.sorting, recording=self.recording(), source="spikeviz.datasets",
                       format="synthetic")


def _parameters(duration_s, num_channels, num_units, sampling_frequency, seed, num_columns,
                noise_uv, lfp_uv, line_uv, line_frequency_hz, artefact_rate_hz, gain_to_uv,
                refractory_ms, ms_before, ms_after) -> dict:
    """Validated, JSON-ready generator parameters (also the demo cache key)."""
    def number(name, value, lo=0.0, strict=True):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"must be a number, got {value!r}", field=name) from None
        if not np.isfinite(value) or value < lo or (strict and value == lo):
            raise InputError(f"must be {'>' if strict else '>='} {lo:g}, got {value}",
                             field=name)
        return value

    def integer(name, value, lo):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
            raise InputError(f"must be an integer >= {lo}, got {value!r}", field=name)
        return int(value)

    params = {
        "duration_s": number("duration_s", duration_s),
        "num_channels": integer("num_channels", num_channels, 1),
        "num_units": integer("num_units", num_units, 0),
        "sampling_frequency": number("sampling_frequency", sampling_frequency),
        "seed": integer("seed", seed, 0),
        "num_columns": integer("num_columns", num_columns, 1),
        "noise_uv": number("noise_uv", noise_uv, strict=False),
        "lfp_uv": number("lfp_uv", lfp_uv, strict=False),
        "line_uv": number("line_uv", line_uv, strict=False),
        "line_frequency_hz": number("line_frequency_hz", line_frequency_hz),
        "artefact_rate_hz": number("artefact_rate_hz", artefact_rate_hz, strict=False),
        "gain_to_uv": number("gain_to_uv", gain_to_uv),
        "refractory_ms": number("refractory_ms", refractory_ms, strict=False),
        "ms_before": number("ms_before", ms_before),
        "ms_after": number("ms_after", ms_after),
    }
    if params["num_columns"] not in (1, 2, 4):
        raise InputError(f"must be 1, 2 or 4, got {num_columns}", field="num_columns")
    if params["refractory_ms"] * 30.0 >= 1000.0:
        raise InputError("must leave room for 30 Hz firing", field="refractory_ms")
    if params["artefact_rate_hz"] * _ARTEFACT_DEAD_MS >= 1000.0:
        raise InputError(f"must be below {1000.0 / _ARTEFACT_DEAD_MS:g} Hz",
                         field="artefact_rate_hz")
    return params


def generate(duration_s: float = 60.0, num_channels: int = 64, num_units: int = 20,
             sampling_frequency: float = 30000.0, seed: int = 0, num_columns: int = 2, *,
             noise_uv: float = 10.0, lfp_uv: float = 40.0, line_uv: float = 3.0,
             line_frequency_hz: float = 50.0, artefact_rate_hz: float = 0.1,
             gain_to_uv: float = 0.195, refractory_ms: float = 2.0, ms_before: float = 1.0,
             ms_after: float = 2.0) -> GroundTruth:
    """Build a synthetic recording and its ground truth (traces rendered lazily).

    ``duration_s`` s, ``sampling_frequency`` Hz, ``noise_uv`` / ``lfp_uv`` / ``line_uv`` rms or
    amplitude in µV, ``gain_to_uv`` µV per int16 step, ``refractory_ms`` dead time of every
    train, ``ms_before`` / ``ms_after`` the template window around the trough. Same arguments,
    same result, to the byte.
    """
    p = _parameters(duration_s, num_channels, num_units, sampling_frequency, seed, num_columns,
                    noise_uv, lfp_uv, line_uv, line_frequency_hz, artefact_rate_hz, gain_to_uv,
                    refractory_ms, ms_before, ms_after)
    fs, seed = p["sampling_frequency"], p["seed"]
    num_samples = round(p["duration_s"] * fs)
    locations = probe_locations_um(p["num_channels"], p["num_columns"])
    num_channels = locations.shape[0]
    nbefore = max(1, round(p["ms_before"] * 1e-3 * fs))
    span = nbefore + max(2, round(p["ms_after"] * 1e-3 * fs))
    t_ms = (np.arange(span) - nbefore) / fs * 1e3
    taper = _taper(span, nbefore, fs)
    first, last = nbefore, num_samples - (span - nbefore)  # spikes lie fully inside

    # true units
    units = _make_units(_rng(seed, _ROLE_UNITS), p["num_units"], locations)
    templates = _unit_templates(units, locations, t_ms, taper)
    num_units = templates.shape[0]
    trains, scales = [], []
    for u in range(num_units):
        train = poisson_train(_rng(seed, _ROLE_TRAINS, u), units["rate_hz"][u], first, last,
                              fs, p["refractory_ms"])
        rng = _rng(seed, _ROLE_AMPLITUDES, u)
        x = train / max(num_samples, 1)
        drift = 1.0 + units["drift_fraction"][u] * (3 * x ** 2 - 2 * x ** 3)
        jitter = np.clip(np.exp(rng.normal(0.0, 0.1, train.size)), 0.7, 1.4)
        trains.append(train)
        scales.append((drift * jitter).astype(np.float32))
    gt_times = np.concatenate(trains) if trains else np.zeros(0, np.int64)
    gt_units = np.repeat(np.arange(num_units, dtype=np.int64), [t.size for t in trains])
    gt_scales = np.concatenate(scales) if scales else np.zeros(0, np.float32)
    order = np.lexsort((gt_units, gt_times))
    gt_times, gt_units, gt_scales = gt_times[order], gt_units[order], gt_scales[order]

    # artefacts
    rng = _rng(seed, _ROLE_ARTEFACTS)
    artefact = _artefact_template(rng, locations, t_ms, taper)
    if p["artefact_rate_hz"] > 0:
        art_times = poisson_train(rng, p["artefact_rate_hz"], first, last, fs,
                                  _ARTEFACT_DEAD_MS)
    else:
        art_times = np.zeros(0, np.int64)
    art_scales = rng.uniform(0.6, 1.4, art_times.size).astype(np.float32)

    # the sorter's view of it
    sorter = _sorter_output(_rng(seed, _ROLE_SORTER), units, templates, trains, scales,
                            art_times, art_scales, artefact, first, last, fs, num_samples)

    # unit table of the truth
    peak_channel = np.argmax(np.ptp(templates, axis=1), axis=1) if num_units else \
        np.zeros(0, np.int64)
    kind = [str(k) for k in units["kind"]]
    table = pd.DataFrame({
        "kind": kind,
        "drifting": units["drift_fraction"] != 0,
        "drift_fraction": units["drift_fraction"],
        "waveform": np.where(units["narrow"], "narrow", "broad"),
        "amplitude_uv": units["amplitude_uv"],
        "firing_rate_hz": units["rate_hz"],
        "x_um": units["position_um"][:, 0],
        "y_um": units["position_um"][:, 1],
        "z_um": units["position_um"][:, 2],
        "peak_channel_index": peak_channel.astype(np.int64),
    }, index=pd.Index(np.arange(num_units, dtype=np.int64), name="unit_id"))
    sorting = Sorting.from_arrays(gt_times, gt_units.astype(np.int32), fs,
                                  unit_ids=np.arange(num_units, dtype=np.int64),
                                  unit_table=table,
                                  spike_properties={"amplitude_scale": gt_scales},
                                  num_samples=num_samples, sort=False,
                                  source=f"spikeviz.datasets.generate(seed={seed})")

    renderer = _make_renderer(_rng(seed, _ROLE_NOISE), p, locations, num_samples, nbefore,
                              templates, artefact, gt_times, gt_units, gt_scales, art_times,
                              art_scales)
    mapping = _mapping(p, units, table, trains, sorter, num_samples, nbefore, span)
    return GroundTruth(sampling_frequency=fs, num_samples=num_samples,
                       gain_to_uv=p["gain_to_uv"], channel_locations_um=locations,
                       templates=templates, nbefore=nbefore, sorting=sorting,
                       unit_kind={u: kind[u] for u in range(num_units)},
                       sorter_output=sorter, seed=seed, parameters=p, mapping=mapping,
                       _renderer=renderer)


def _mapping(p, units, table, trains, sorter, num_samples, nbefore, span) -> dict:
    """The content of ground_truth.json."""
    clusters_of = {u: [] for u in range(len(trains))}
    for cid, info in sorter.clusters.items():
        for u in info["ground_truth_unit_ids"]:
            clusters_of[u].append(cid)
    unit_facts = {}
    for u in range(len(trains)):
        row = table.loc[u]
        unit_facts[str(u)] = {
            "kind": str(row["kind"]),
            "drifting": bool(row["drifting"]),
            "drift_fraction": float(row["drift_fraction"]),
            "waveform": str(row["waveform"]),
            "amplitude_uv": float(row["amplitude_uv"]),
            "firing_rate_hz": float(row["firing_rate_hz"]),
            "num_spikes": int(trains[u].size),
            "position_um": [float(row["x_um"]), float(row["y_um"]), float(row["z_um"])],
            "peak_channel_index": int(row["peak_channel_index"]),
            "cluster_ids": sorted(clusters_of[u]),
        }
    split = [{"ground_truth_unit_id": u, "cluster_ids": sorted(clusters_of[u]),
              "rule": "spikes with amplitude_scale >= the unit's median go to one cluster, "
                      "the others to the other; their union is exactly the unit's train"}
             for u in range(len(trains)) if units["kind"][u] == "split"]
    merge = []
    if units["merge_pair"] is not None:
        a, b = units["merge_pair"]
        merge.append({"ground_truth_unit_ids": [a, b], "cluster_ids": sorted(clusters_of[a]),
                      "rule": "one cluster holding exactly the union of both trains"})
    artefact_ids = [c for c, info in sorter.clusters.items() if info["kind"] == "artefact"]
    return {
        "generator": "spikeviz.datasets",
        "generator_version": GENERATOR_VERSION,
        "seed": p["seed"],
        "parameters": p,
        "sampling_frequency": p["sampling_frequency"],
        "num_samples": int(num_samples),
        "num_channels": int(p["num_channels"]),
        "gain_to_uv": p["gain_to_uv"],
        "nbefore": int(nbefore),
        "num_template_samples": int(span),
        "files": {
            "recording": "recording.dat",
            "ground_truth_sorting": "ground_truth.npz",
            "ground_truth_templates": "ground_truth_templates.npy",
            "ground_truth_amplitude_scale": "ground_truth_amplitude_scale.npy",
        },
        "units": unit_facts,
        "clusters": {str(c): info for c, info in sorter.clusters.items()},
        "split": split,
        "merge": merge,
        "artefact_cluster_ids": artefact_ids,
        "notes": "Ground-truth unit ids are 0..num_units-1; cluster ids are the sorter "
                 "output's (Phy folder). Spike i of unit u is amplitude_scale[i] x "
                 "ground_truth_templates[u] (µV) with its trough at sample t; µV = int16 x "
                 "gain_to_uv. Matched spikes keep their true sample index.",
    }
