"""Templates view: the selected units' waveforms drawn where their channels sit on the probe.

As in phy's waveform view, each shown channel's snippet is a small curve placed at the
channel's (x, y) position (µm). The placement is exact and documented (:class:`WaveformLayout`):
sample ``i`` of ``S`` on channel ``k`` at ``(x_k, y_k)`` with value ``v`` µV is drawn at

    x = x_k + (i - (S - 1) / 2) * um_per_sample,     y = y_k + v * um_per_uv

``um_per_sample = pitch_x / ceil(S / 0.85)`` (a snippet spans < 85 % of the distance between
probe columns, and every sample of every channel falls on one lattice of pitch um_per_sample);
``um_per_uv = vertical_scale * pitch_y / peak_uv`` where ``pitch_y`` is the smallest vertical
distance between channels and ``peak_uv`` the largest |template| value of the shown units on
the shown channels: at scale 1 the largest deflection spans one row pitch.

Channels shown: the ``num_channels`` channels nearest to the first selected unit's peak channel
(distance on the probe; without geometry its largest channels, stacked in id order). In modes
'mean' and 'mean+samples' the plot has the same layers whatever the units (every unit's std
bands in one ``hv.Polygons``, sample snippets and means in one ``hv.Contours`` each, a unit's
channels joined with NaN separators, its colour a column): a new selection only updates the
data of the same Bokeh figure. 'density' adds one ``hv.Image`` per unit (a 2-D histogram of
snippet samples on the layout's lattice: one column per sample position, bins ``pitch_y / 25``
µm tall) and is redrawn — never one renderer per channel.

Templates come from ``results.templates`` (µV, with std); without a recording, from KiloSort's
templates in ``session.results['kilosort_templates']`` (each unit its dominant template by the
``template_index`` spike property, in the templates' own units, labelled as such).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import holoviews as hv
import numpy as np
import panel as pn
import param

from ..model.depth import TEMPLATE_INDEX_PROPERTY
from ..model.waveforms import Templates
from .base import View
from .colors import PALETTE, unit_color

MODES = ["mean", "mean+samples", "density"]
_SPAN = 0.85  # fraction of the column pitch a snippet spans at most

Version = hv.streams.Stream.define("Version", version=0)


def _tint(color: str, amount: float = 0.8) -> str:
    """``color`` (hex) mixed with ``amount`` of white."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def _pitch(values: np.ndarray, default: float) -> float:
    """Smallest positive difference between distinct values (default when there is none)."""
    steps = np.diff(np.unique(np.round(np.asarray(values, dtype=float), 6)))
    steps = steps[steps > 0]
    return float(steps.min()) if steps.size else default


def nearest_channels(locations_um: np.ndarray, center: int, count: int) -> np.ndarray:
    """Indices of the ``count`` channels nearest to channel ``center`` (ties: lower index),
    sorted by index."""
    d = np.hypot(*(locations_um - locations_um[center]).T)
    order = np.lexsort((np.arange(d.size), d))
    return np.sort(order[:count])


@dataclass(frozen=True)
class WaveformLayout:
    """Where snippets are drawn: see the module docstring for the formulas."""

    channel_ids: np.ndarray  # shown channels
    channel_indices: np.ndarray  # their positions in the templates' channel_ids
    xy_um: np.ndarray  # (K, 2) channel positions, µm
    num_samples: int
    um_per_sample: float
    um_per_uv: float
    pitch_y_um: float
    geometry: bool  # False: positions are a made-up column (no probe geometry)

    def offsets_um(self) -> np.ndarray:
        """x offset (µm) of each sample from its channel's x."""
        return (np.arange(self.num_samples) - (self.num_samples - 1) / 2) * self.um_per_sample

    def place(self, values_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Snippets ``(..., S, K)`` µV on the shown channels → flat (x, y) µm arrays, one
        NaN after each channel's S points (order: snippet, channel, sample)."""
        v = np.asarray(values_uv, dtype=np.float64)
        v = v.reshape(-1, self.num_samples, v.shape[-1]).transpose(0, 2, 1)  # (n, K, S)
        n, k, s = v.shape
        x = np.full((n, k, s + 1), np.nan)
        y = np.full((n, k, s + 1), np.nan)
        x[:, :, :s] = self.xy_um[:, 0][None, :, None] + self.offsets_um()[None, None, :]
        y[:, :, :s] = self.xy_um[:, 1][None, :, None] + v * self.um_per_uv
        return x.ravel(), y.ravel()

    def density(self, values_uv: np.ndarray, bin_um: float | None = None):
        """2-D histogram of snippet samples ``(n, S, K)`` µV on the layout's lattice.

        Returns ``(counts (ny, nx) int64, x_edges, y_edges)``: one column per sample position
        (width um_per_sample, centred on it), rows ``bin_um`` µm tall (default pitch_y / 25);
        the grid covers every finite sample, so ``counts.sum()`` is their number.
        """
        x, y = self.place(values_uv)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        bin_um = self.pitch_y_um / 25 if bin_um is None else bin_um
        step = self.um_per_sample
        if x.size == 0:
            return np.zeros((0, 0), np.int64), np.zeros(1), np.zeros(1)
        x0 = x.min() - step / 2
        nx = max(int(np.ceil((x.max() + step / 2 - x0) / step)), 1)
        x_edges = x0 + np.arange(nx + 1) * step
        ny = max(int(np.ceil((y.max() - y.min()) / bin_um)), 1)
        y_edges = np.linspace(y.min(), y.min() + ny * bin_um, ny + 1)
        counts, _, _ = np.histogram2d(y, x, bins=(y_edges, x_edges))
        return counts.astype(np.int64), x_edges, y_edges


def make_layout(channel_ids, locations_um, shown: np.ndarray, num_samples: int,
                peak_uv: float, vertical_scale: float) -> WaveformLayout:
    """The layout of channels ``shown`` (indices into ``channel_ids``); ``locations_um``
    None stacks them in one column, 20 µm apart, in index order (bottom up)."""
    shown = np.sort(np.asarray(shown, dtype=np.int64))
    geometry = locations_um is not None
    if geometry:
        locations_um = np.asarray(locations_um, dtype=np.float64)[:, :2]
        xy = locations_um[shown]
        pitch_x = _pitch(locations_um[:, 0], default=0.0)
        pitch_y = _pitch(locations_um[:, 1], default=20.0)
        pitch_x = pitch_x if pitch_x > 0 else 2 * pitch_y
    else:
        pitch_x, pitch_y = 40.0, 20.0
        xy = np.column_stack([np.zeros(shown.size), np.arange(shown.size) * pitch_y])
    um_per_sample = pitch_x / int(np.ceil(num_samples / _SPAN))
    um_per_uv = vertical_scale * pitch_y / (peak_uv if peak_uv > 0 else 1.0)
    return WaveformLayout(np.asarray(channel_ids)[shown], shown, xy, num_samples,
                          um_per_sample, um_per_uv, pitch_y, geometry)


@dataclass
class TemplatesFigure:
    """What the view shows (plain arrays; see the module docstring)."""

    unit_ids: list
    layout: WaveformLayout | None = None
    units_label: str = "µV"
    mean_uv: dict = field(default_factory=dict)  # unit id -> (S, K) on the shown channels
    std_uv: dict = field(default_factory=dict)  # unit id -> (S, K) or absent
    curves: dict = field(default_factory=dict)  # unit id -> (x, y) of the mean
    bands: dict = field(default_factory=dict)  # unit id -> list of (x, y) polygons
    samples: dict = field(default_factory=dict)  # unit id -> (x, y) of sample snippets
    sample_counts: dict = field(default_factory=dict)  # unit id -> number of snippets drawn
    density: dict = field(default_factory=dict)  # unit id -> (counts, x_edges, y_edges)
    message: str = ""


def _dominant_templates(sorting, unit_ids, n_templates: int) -> list:
    """Per unit, the KiloSort template most of its spikes have (None without one)."""
    spike_template = sorting.spike_properties.get(TEMPLATE_INDEX_PROPERTY)
    out = []
    for unit_id in unit_ids:
        if spike_template is None:
            out.append(None)
            continue
        t = np.asarray(spike_template)[sorting.spike_indices(unit_id)]
        t = t[(t >= 0) & (t < n_templates)]
        out.append(int(np.bincount(t).argmax()) if t.size else None)
    return out


class TemplatesView(View):
    """Templates (mean ± std), sample snippets or waveform density of the selected units.

    Follows ``selection.unit_ids`` and ``curation.sorting``; writes nothing.
    """

    mode = param.Selector(default="mean", objects=MODES, doc="""
        'mean': templates; 'mean+samples': plus num_waveforms snippets per unit;
        'density': 2-D histogram of density_spikes snippets per unit.""")
    num_channels = param.Integer(default=16, bounds=(1, 128), doc="""
        Channels shown: this many nearest to the first selected unit's peak channel.""")
    vertical_scale = param.Number(default=1.0, bounds=(0.05, 20.0), softbounds=(0.1, 5.0),
                                  doc="1: the largest deflection spans one row pitch.")
    show_std = param.Boolean(default=True, doc="Draw template ± std as a band.")
    num_waveforms = param.Integer(default=30, bounds=(1, 500), doc="""
        Sample snippets per unit in 'mean+samples' mode.""")
    density_spikes = param.Integer(default=500, bounds=(10, 5000), doc="""
        Snippets per unit in 'density' mode.""")
    seed = param.Integer(default=0, doc="Seed of the snippet draw.")
    min_height = param.Integer(default=420, bounds=(100, None), doc="Plot height, px.")

    def __init__(self, session, selection=None, curation=None, **params):
        super().__init__(session, selection, curation, **params)
        if "bokeh" not in hv.Store.renderers:
            hv.renderer("bokeh")
        self.figure = TemplatesFigure(unit_ids=[])
        self.renders = 0
        self._info = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["spikeviz-templates-info"])
        self._version = Version()
        self._drawn: str | None = None  # the message drawn, when nothing else is
        self._dmap = hv.DynamicMap(self._elements, streams=[self._version])
        self._pane = pn.pane.HoloViews(self._dmap, sizing_mode="stretch_both",
                                       min_height=self.min_height,
                                       css_classes=["spikeviz-templates"])
        self._controls = pn.FlexBox(
            pn.widgets.RadioButtonGroup.from_param(self.param.mode, color="default"),
            pn.widgets.IntInput.from_param(self.param.num_channels, width=90, name="channels"),
            pn.widgets.FloatSlider.from_param(self.param.vertical_scale, width=160,
                                              name="scale", start=0.1, end=5.0),
            pn.widgets.Checkbox.from_param(self.param.show_std, name="std", width=60),
            flex_wrap="wrap", align_items="center", sizing_mode="stretch_width")
        # the empty frame stays hidden while there is only a message (no unit selected)
        self._plot_box = pn.Column(self._pane, visible=False, sizing_mode="stretch_both",
                                   margin=0, css_classes=["spikeviz-templates-plot"])
        self._layout = pn.Column(self._controls, self._info, self._plot_box,
                                 sizing_mode="stretch_both", min_height=self.min_height + 60)
        self._watch(self.selection, ["unit_ids"], self._changed)
        self._watch(self.curation, ["sorting"], self._changed)
        self._watch(self, ["mode", "num_channels", "vertical_scale", "show_std",
                           "num_waveforms", "density_spikes", "seed"], self._changed)
        self._start()

    def _changed(self, *events) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.renders += 1
        self.figure = self.compute_figure(list(self.selection.unit_ids))
        self._info.object = self._info_html()
        self._plot_box.visible = self.figure.layout is not None
        if self.mode == "density":  # one image per unit: a new plot
            self._pane.object = self._plot()
            return
        if self._pane.object is not self._dmap:
            self._pane.object = self._dmap
        elif self.figure.layout is None and self._drawn == self.figure.message:
            return  # the same message drawn already (e.g. no recording): no redraw
        self._drawn = self.figure.message if self.figure.layout is None else None
        self._version.event(version=self._version.version + 1)

    # -- data -----------------------------------------------------------------------------------
    def _templates(self, unit_ids) -> tuple[Templates | None, list, str]:
        """(templates with one row per unit in ``unit_ids``, units without one, units label)."""
        tpl = self.results.templates(unit_ids)
        if tpl is not None:
            return tpl, [], "µV" if tpl.units == "uV" else "stored units (gain unknown)"
        ks = self.session.results.get("kilosort_templates")
        if not isinstance(ks, Templates):
            return None, list(unit_ids), ""
        rows = _dominant_templates(self.sorting, unit_ids, ks.data.shape[0])
        keep = [(u, r) for u, r in zip(unit_ids, rows, strict=True) if r is not None]
        missing = [u for u, r in zip(unit_ids, rows, strict=True) if r is None]
        if not keep:
            return None, missing, ""
        dense = np.stack([ks.dense(r) for _, r in keep])
        label = {"whitened": "KiloSort templates, whitened units (not µV)",
                 "raw": "KiloSort templates, stored units"}.get(ks.units, "KiloSort templates")
        label += " — template " + ", ".join(f"{u}→{r}" for u, r in keep)
        out = Templates(dense, [u for u, _ in keep], ks.channel_ids, nbefore=ks.nbefore,
                        units=ks.units)
        return out, missing, label

    def compute_figure(self, unit_ids: list) -> TemplatesFigure:
        """Everything drawn for ``unit_ids`` (plain arrays, no HoloViews)."""
        fig = TemplatesFigure(unit_ids=list(unit_ids))
        if not unit_ids:
            fig.message = "Select a unit (table, raster or probe) to see its waveforms."
            return fig
        tpl, missing, label = self._templates(unit_ids)
        if tpl is None:
            fig.message = ("No templates: this session has no recording and no KiloSort "
                           "templates, so waveforms cannot be shown.")
            return fig
        fig.units_label = label
        if missing:
            fig.message = "No template for unit " + ", ".join(map(str, missing)) + "."
        ids = [u.item() if isinstance(u, np.generic) else u for u in np.asarray(tpl.unit_ids)]
        data = np.asarray(tpl.data, dtype=np.float32)
        peak = int(np.argmax(np.ptp(data[0], axis=0)))
        channel_ids = np.asarray(tpl.channel_ids)
        locations = self._locations_for(channel_ids)
        count = min(self.num_channels, channel_ids.size)
        if locations is not None:
            shown = nearest_channels(locations, peak, count)
        else:
            shown = np.sort(np.argsort(-np.ptp(data[0], axis=0), kind="stable")[:count])
        peak_uv = float(np.abs(data[:, :, shown]).max()) if data.size else 1.0
        fig.layout = lay = make_layout(channel_ids, locations, shown, data.shape[1], peak_uv,
                                       self.vertical_scale)
        for row, unit_id in enumerate(ids):
            mean = data[row][:, shown]
            fig.mean_uv[unit_id] = mean
            fig.curves[unit_id] = lay.place(mean)
            if tpl.std is not None:
                std = np.asarray(tpl.std[row], dtype=np.float32)[:, shown]
                fig.std_uv[unit_id] = std
                if self.show_std:
                    lo_x, lo_y = lay.place(mean - std)
                    _, hi_y = lay.place(mean + std)
                    s = lay.num_samples + 1
                    fig.bands[unit_id] = [
                        (np.concatenate([lo_x[i:i + s - 1], lo_x[i:i + s - 1][::-1]]),
                         np.concatenate([lo_y[i:i + s - 1], hi_y[i:i + s - 1][::-1]]))
                        for i in range(0, lo_x.size, s)]
        if self.mode != "mean":
            n = self.num_waveforms if self.mode == "mean+samples" else self.density_spikes
            for unit_id in ids:
                snippets = self._snippets(unit_id, n, lay)
                if snippets is None:
                    fig.message = (fig.message + f" No snippets of unit {unit_id} (they need "
                                   "the recording).").strip()
                    continue
                fig.sample_counts[unit_id] = snippets.shape[0]
                if self.mode == "mean+samples":
                    fig.samples[unit_id] = lay.place(snippets)
                else:
                    fig.density[unit_id] = lay.density(snippets)
        return fig

    def _locations_for(self, channel_ids) -> np.ndarray | None:
        """Positions (µm) of ``channel_ids`` from the session's probe, or None."""
        ids, loc = self.session.channel_ids, self.session.channel_locations_um
        if ids is None or loc is None:
            return None
        where = {c: i for i, c in enumerate(np.asarray(ids).tolist())}
        try:
            return np.asarray(loc, dtype=np.float64)[[where[c] for c in channel_ids.tolist()]]
        except KeyError:
            return None

    def _snippets(self, unit_id, n: int, lay: WaveformLayout) -> np.ndarray | None:
        """Up to ``n`` snippets (n, S, K) µV of ``unit_id`` on the shown channels; channels
        the unit's snippets do not cover are NaN."""
        got = self.results.waveforms(unit_id, max_spikes=n, seed=self.seed)
        if got is None:
            return None
        snippets, channel_ids, _ = got
        snippets = np.asarray(snippets, dtype=np.float32)
        if snippets.shape[1] != lay.num_samples:
            return None
        where = {c: i for i, c in enumerate(np.asarray(channel_ids).tolist())}
        out = np.full((snippets.shape[0], lay.num_samples, lay.channel_ids.size), np.nan,
                      dtype=np.float32)
        for k, c in enumerate(lay.channel_ids.tolist()):
            if c in where:
                out[:, :, k] = snippets[:, :, where[c]]
        return out

    # -- rendering --------------------------------------------------------------------------------
    def _info_html(self) -> str:
        fig = self.figure
        parts = []
        if fig.layout is not None:
            lay = fig.layout
            units = ", ".join(f"<b style='color:{unit_color(u, fig.unit_ids)}'>"
                              f"{html.escape(str(u))}</b>" for u in fig.curves)
            parts.append(f"Units {units} &middot; {lay.channel_ids.size} channels &middot; "
                         f"{html.escape(fig.units_label)}")
            scale = lay.pitch_y_um / lay.um_per_uv
            parts.append(f"row pitch = {scale:.3g} {'µV' if fig.units_label == 'µV' else ''}")
            if not lay.geometry:
                parts.append("no probe geometry: channels stacked by id")
        if fig.message:
            parts.append(f"<i>{html.escape(fig.message)}</i>")
        return " &middot; ".join(parts)

    def _elements(self, version=0):
        """Modes 'mean' and 'mean+samples': always the same layers (std bands, samples,
        means, channel labels, a message) whatever the units, so a new selection only updates
        the data of the same Bokeh glyphs. One element per layer holds every unit (a colour
        column), each unit's channels joined with NaN separators."""
        fig, lay = self.figure, self.figure.layout
        kdims = ["x_um", "y_um"]

        def slot(unit_id) -> float:  # the unit's colour: PALETTE[slot]
            return float(PALETTE.index(unit_color(unit_id, fig.unit_ids)))

        def lines(items):
            return [{"x_um": x, "y_um": y, "slot": slot(u)} for u, x, y in items]

        bands = hv.Polygons(lines((u, x, y) for u, polygons in fig.bands.items()
                                  for x, y in polygons), kdims=kdims, vdims=["slot"])
        samples = hv.Contours(lines((u, *xy) for u, xy in fig.samples.items()),
                              kdims=kdims, vdims=["slot"])
        curves = hv.Contours(lines((u, *xy) for u, xy in fig.curves.items()),
                             kdims=kdims, vdims=["slot"])
        colors = {"color": "slot", "cmap": list(PALETTE), "colorbar": False,
                  "clim": (-0.5, len(PALETTE) - 0.5), "framewise": True}
        if lay is None:
            labels = hv.Labels(([], [], []), kdims=kdims, vdims="channel")
            message = hv.Text(0, 0, fig.message or "Nothing to show")
        else:
            half = (lay.num_samples - 1) / 2 * lay.um_per_sample
            labels = hv.Labels((lay.xy_um[:, 0] - half, lay.xy_um[:, 1],
                                [str(c) for c in lay.channel_ids.tolist()]),
                               kdims=kdims, vdims="channel")
            message = hv.Text(float(lay.xy_um[:, 0].mean()), float(lay.xy_um[:, 1].mean()), "")
        return hv.Overlay([
            bands.opts(alpha=0.25, line_alpha=0, **colors),
            samples.opts(alpha=0.25, line_width=0.6, **colors),
            curves.opts(line_width=1.6, **colors),
            labels.opts(text_align="right", text_font_size="8pt", text_color="#777",
                        xoffset=-1, framewise=True),
            message.opts(text_color="#777", framewise=True),
        ]).opts(self._overlay_opts())

    def _plot(self):
        """Mode 'density': one image per unit under the layers of :meth:`_elements` (means
        thicker); a new plot each time."""
        fig = self.figure
        images = []
        for unit_id, (counts, xe, ye) in fig.density.items():
            z = counts.astype(np.float32)
            z[z == 0] = np.nan
            xc, yc = (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2
            color = unit_color(unit_id, fig.unit_ids)
            images.append(hv.Image((xc, yc, z), kdims=["x_um", "y_um"], vdims="snippets").opts(
                cmap=[_tint(color), color], cnorm="eq_hist",
                alpha=0.9 if len(fig.density) == 1 else 0.6))
        layers = list(self._elements())
        layers[2] = layers[2].opts(line_width=2, clone=True)
        return hv.Overlay(images + layers).opts(self._overlay_opts())

    def _overlay_opts(self):
        return hv.opts.Overlay(responsive=True, min_height=self.min_height, show_legend=False,
                               xlabel="x (µm)", ylabel="y (µm)", toolbar="above",
                               active_tools=["wheel_zoom"], show_grid=False)
