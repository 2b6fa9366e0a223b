"""Features: PCA projections of the selected units' spikes, with background spikes and a lasso.

Every spike of the selected units is projected (``results.spike_features``) on a common channel
set — the first selected unit's best channels — so the units are comparable in one plot. Each
axis is one feature: a principal component on one of those channels (default: PC1 of the best
channel against PC1 of the second best, as in phy). The spikes are datashaded by unit (unit
colours); a random subsample of the spikes of the nearest other units is drawn in grey behind
them, projected on the same channels, so a cluster's neighbours are visible. Background spikes
are never selectable.

A lasso or box selects exactly on the server, over every spike of the selected units, and
writes their positions in the curated spike vector to ``Selection.spike_indices``; selected
spikes are drawn on top in black.
"""

from __future__ import annotations

import numpy as np
import panel as pn
import param

from ..errors import InputError
from .lasso import LassoScatter
from .scatter import SpikeCloud, make_cloud

NO_RECORDING = ("No features: PCA features are computed from each spike's waveform, and this "
                "session has no recording.")


TIME = "time (s)"


def feature_labels(n_components: int) -> list[str]:
    """Axis choices: "PC1" ... "PC<n>", then "time (s)"."""
    return [f"PC{k + 1}" for k in range(n_components)] + [TIME]


class Features(LassoScatter):
    """PCA feature scatter of the selected units, background spikes in grey, exact lasso.

    ``Features(session, selection=None, curation=None, **params)``. Follows
    ``selection.unit_ids``, ``selection.spike_indices`` (highlight) and ``curation.sorting``;
    writes ``selection.spike_indices``. ``x_feature``/``y_feature`` pick the axes among
    "PC1" ... "PC<n_components>" and "time (s)".
    """

    n_components = param.Integer(default=3, bounds=(2, 10), doc="""
        Principal components computed (joint PCA of the snippets on the common channels).""")
    x_feature = param.Selector(default="PC1", objects=feature_labels(3),
                               doc="Feature on the x axis.")
    y_feature = param.Selector(default="PC2", objects=feature_labels(3),
                               doc="Feature on the y axis.")
    background_units = param.Integer(default=3, bounds=(0, None), doc="""
        How many other units (the nearest on the probe to the first selected one) give
        background spikes: a seeded subsample of each (at most 2,000 spikes) is projected
        on the selected units' PCA basis (fitted on the selected units only).""")
    max_background_spikes = param.Integer(default=20_000, bounds=(0, None), doc="""
        At most this many background spikes are drawn (a seeded random subsample).""")
    seed = param.Integer(default=0, doc="Seed of the background subsample.")

    def __init__(self, session, selection=None, curation=None, **params):
        # (positions, features, channel_ids, unit_ids, background features, background ids)
        self._data = None
        super().__init__(session, selection=selection, curation=curation, **params)
        self.param.watch(self._on_axes, ["x_feature", "y_feature"])
        self.param.watch(self._on_components, ["n_components"])
        self.param.watch(lambda *e: self._deferred(self.refresh),
                         ["background_units", "max_background_spikes", "seed"])

    def controls(self) -> list:
        return [pn.widgets.Select.from_param(self.param.x_feature, name="x", width=110),
                pn.widgets.Select.from_param(self.param.y_feature, name="y", width=110)]

    @property
    def xlabel(self) -> str:
        return self.x_feature

    @property
    def ylabel(self) -> str:
        return self.y_feature

    # -- facts ----------------------------------------------------------------------------------
    @property
    def channel_ids(self) -> list:
        """The channels the snippets were projected from (the first unit's best)."""
        return [] if self._data is None else list(self._data[2])

    @property
    def background_unit_ids(self) -> list:
        """The units whose spikes are drawn in grey."""
        return [] if self._data is None else list(self._data[5])

    @property
    def features(self) -> np.ndarray:
        """(spikes, n_components) features of the shown spikes, in ``cloud.positions`` order."""
        return np.zeros((0, self.n_components)) if self._data is None else self._data[1]

    # -- data -----------------------------------------------------------------------------------
    def neighbours(self, unit_ids: list, count: int) -> list:
        """Up to ``count`` other units nearest (on the probe) to the first of ``unit_ids``;
        none without unit locations."""
        chosen = set(unit_ids)
        others = [u for u in self.sorting.unit_ids.tolist() if u not in chosen]
        if count <= 0 or not others:
            return []
        try:
            locations = self.results.unit_locations()
        except InputError:  # no probe geometry
            return []
        if locations is None or unit_ids[0] not in locations.index:
            return []
        here = locations.loc[unit_ids[0], ["x_um", "y_um"]].to_numpy(dtype=float)
        there = locations.reindex(others)[["x_um", "y_um"]].to_numpy(dtype=float)
        distance = np.hypot(*(there - here).T)
        distance[~np.isfinite(distance)] = np.inf
        order = np.argsort(distance, kind="stable")[:count]
        return [others[i] for i in order if np.isfinite(distance[i])]

    def load(self, unit_ids: list) -> SpikeCloud | str:
        self._data = None
        if self.session.recording is None:
            return NO_RECORDING
        background = self.neighbours(unit_ids, self.background_units)
        per_unit = min(2000, self.max_background_spikes // max(len(background), 1))
        result = self.results.spike_features(list(unit_ids), self.n_components,
                                             background_unit_ids=background,
                                             max_background_spikes_per_unit=per_unit,
                                             seed=self.seed)
        if result is None:
            return NO_RECORDING
        positions, features, channel_ids = result
        positions = np.asarray(positions, dtype=np.int64)
        features = np.asarray(features).reshape(positions.size, -1)
        sorting = self.sorting
        lut = np.zeros(sorting.num_units, dtype=bool)
        lut[[sorting.unit_index_of(u) for u in unit_ids]] = True
        shown = lut[sorting.unit_index[positions]]
        rest = np.flatnonzero(~shown)
        if rest.size > self.max_background_spikes:
            rng = np.random.default_rng(self.seed)
            rest = np.sort(rng.choice(rest, self.max_background_spikes, replace=False))
        self._data = (positions[shown], features[shown], list(np.asarray(channel_ids).tolist()),
                      list(unit_ids), (positions[rest], features[rest]), background)
        return self._cloud_for_axes()

    def _column(self, positions: np.ndarray, features: np.ndarray, label: str) -> np.ndarray:
        if label == TIME:
            return self.sorting.sample_index[positions] / self.sorting.sampling_frequency
        return np.asarray(features[:, int(label[2:]) - 1], dtype=np.float64)

    def _cloud_for_axes(self) -> SpikeCloud:
        positions, features, _, unit_ids, (bg_positions, bg_features), _ = self._data
        x, y = self.x_feature, self.y_feature
        bg = None
        if bg_positions.size:
            bg = (self._column(bg_positions, bg_features, x),
                  self._column(bg_positions, bg_features, y))
        return make_cloud(self.sorting, unit_ids, positions,
                          self._column(positions, features, x),
                          self._column(positions, features, y), background=bg)

    # -- controls -------------------------------------------------------------------------------
    def _deferred(self, fn) -> None:
        if self.active:
            fn()
        else:
            self._stale = True

    def _on_axes(self, *events) -> None:
        def redraw():
            if self._data is None:
                return
            self._cloud = self._cloud_for_axes()
            self._update_selected()
            self._reset_ranges()
        self._deferred(redraw)

    def _on_components(self, *events) -> None:
        labels = feature_labels(self.n_components)
        self.param.x_feature.objects = labels
        self.param.y_feature.objects = labels
        self.param.update(x_feature=self.x_feature if self.x_feature in labels else "PC1",
                          y_feature=self.y_feature if self.y_feature in labels else "PC2")
        self._deferred(self.refresh)
