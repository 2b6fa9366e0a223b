"""TemplatesView at the Param level (no browser): what is drawn, where, and when."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz import datasets
from spikeviz.model.selection import Selection
from spikeviz.model.waveforms import Templates
from spikeviz.views.colors import PALETTE

pytest.importorskip("panel")

from spikeviz.views.templates import (
    TemplatesView,
    WaveformLayout,
    make_layout,
    nearest_channels,
)

ROW_PITCH_UM = 20.0  # synthetic probe: rows 20 µm apart, columns at x = 16 and 48 µm
COLUMN_PITCH_UM = 32.0


@pytest.fixture(scope="module")
def gt():
    return datasets.generate(duration_s=6.0, num_channels=32, num_units=6, seed=3, lfp_uv=0.0,
                             line_uv=0.0, artefact_rate_hz=0.0)


def relabelled(gt, recording=True, **session_params):
    """The true units with ids 10, 17, 24, ... (ids != indices), fresh Session each call."""
    s = gt.sorting
    ids = np.arange(s.num_units) * 7 + 10
    sorting = sv.Sorting(s.sample_index, s.unit_index, s.sampling_frequency, unit_ids=ids,
                         num_samples=gt.num_samples,
                         spike_properties=session_params.pop("spike_properties", None))
    if recording:
        return sv.Session(sorting, recording=gt.recording(), cache_dir=None, **session_params)
    return sv.Session(sorting, cache_dir=None, **session_params)


@pytest.fixture(scope="module")
def session(gt):
    return relabelled(gt)


def biggest_unit(gt) -> tuple[int, int]:
    """(unit id in the relabelled session, true peak channel index) of the largest unit."""
    ptp = np.ptp(gt.templates, axis=1)  # (units, channels), µV
    unit = int(np.argmax(ptp.max(axis=1)))
    return unit * 7 + 10, int(np.argmax(ptp[unit]))


def decode(xy, layout: WaveformLayout, locations: np.ndarray):
    """Drawn (x, y) → (x offsets from each channel (K, S), values (n, S, K) in µV)."""
    x, y = xy
    s, k = layout.num_samples, layout.channel_ids.size
    x = x.reshape(-1, k, s + 1)
    y = y.reshape(-1, k, s + 1)
    assert np.isnan(x[:, :, s]).all() and np.isnan(y[:, :, s]).all()  # NaN separators
    chan = locations[layout.channel_indices]
    dx = x[:, :, :s] - chan[None, :, 0, None]
    values = (y[:, :, :s] - chan[None, :, 1, None]) / layout.um_per_uv
    return dx, values.transpose(0, 2, 1)


def test_selected_units_templates_drawn_at_their_channels(gt, session):
    unit, true_peak = biggest_unit(gt)
    view = TemplatesView(session)
    assert view.figure.layout is None and "Select a unit" in view.figure.message
    other = 10 + 7 * ((unit - 10) // 7 + 1) % (7 * gt.num_units)
    session.selection.unit_ids = [unit, other]
    fig = view.figure
    assert list(fig.curves) == [unit, other]
    tpl = view.results.templates([unit, other])
    data = np.asarray(tpl.data, dtype=np.float64)
    assert int(np.argmax(np.ptp(data[0], axis=0))) == true_peak  # the data is the truth's
    locations = gt.channel_locations_um
    lay = fig.layout
    # channels: the 16 nearest to the first unit's peak channel, by plain distances
    d = np.sqrt(((locations - locations[true_peak]) ** 2).sum(axis=1))
    expected = sorted(sorted(range(d.size), key=lambda i: (d[i], i))[:16])
    assert lay.channel_indices.tolist() == expected
    assert lay.channel_ids.tolist() == np.asarray(session.channel_ids)[expected].tolist()
    # scales: largest |template| of the shown units spans one row pitch at scale 1
    num_samples = data.shape[1]
    assert lay.um_per_uv == pytest.approx(ROW_PITCH_UM / np.abs(data[:, :, expected]).max())
    assert lay.um_per_sample == pytest.approx(COLUMN_PITCH_UM / np.ceil(num_samples / 0.85))
    offsets = (np.arange(num_samples) - (num_samples - 1) / 2) * lay.um_per_sample
    for row, u in enumerate([unit, other]):
        dx, values = decode(fig.curves[u], lay, locations)
        np.testing.assert_allclose(dx[0], np.broadcast_to(offsets, dx[0].shape), atol=1e-9)
        np.testing.assert_allclose(values[0], data[row][:, expected], rtol=1e-5, atol=1e-4)
    # a snippet spans less than the column pitch: columns never overlap
    assert offsets.max() - offsets.min() < 0.85 * COLUMN_PITCH_UM

    view.vertical_scale = 2.0
    assert view.figure.layout.um_per_uv == pytest.approx(2 * lay.um_per_uv)
    session.selection.unit_ids = [other]
    assert list(view.figure.curves) == [other]
    view.num_channels = 4
    assert view.figure.layout.channel_ids.size == 4
    session.selection.unit_ids = []
    assert view.figure.curves == {}
    view.dispose()


def test_std_band_is_template_plus_minus_std(gt, session):
    unit, _ = biggest_unit(gt)
    view = TemplatesView(session, selection=Selection(session.sorting),
                         num_channels=6)
    view.selection.unit_ids = [unit]
    tpl = view.results.templates([unit])
    lay = view.figure.layout
    mean = np.asarray(tpl.data[0], np.float64)[:, lay.channel_indices]
    std = np.asarray(tpl.std[0], np.float64)[:, lay.channel_indices]
    assert (std > 0).any()
    polygons = view.figure.bands[unit]
    assert len(polygons) == 6
    s = lay.num_samples
    for k, (x, y) in enumerate(polygons):
        cx, cy = gt.channel_locations_um[lay.channel_indices[k]]
        np.testing.assert_allclose(x[:s], x[s:][::-1])  # out along the lower edge, back on top
        lower = (y[:s] - cy) / lay.um_per_uv
        upper = (y[s:][::-1] - cy) / lay.um_per_uv
        np.testing.assert_allclose(lower, mean[:, k] - std[:, k], atol=1e-3)
        np.testing.assert_allclose(upper, mean[:, k] + std[:, k], atol=1e-3)
        assert x[0] - cx == pytest.approx(-(s - 1) / 2 * lay.um_per_sample)
    view.show_std = False
    assert view.figure.bands == {}
    assert unit in view.figure.std_uv  # still known, just not drawn


def test_sample_waveforms_and_density(gt, session):
    unit, _ = biggest_unit(gt)
    view = TemplatesView(session, selection=Selection(session.sorting),
                         mode="mean+samples", num_waveforms=12, seed=4)
    view.selection.unit_ids = [unit]
    snippets, channel_ids, _ = view.results.waveforms(unit, max_spikes=12, seed=4)
    lay = view.figure.layout
    assert view.figure.sample_counts[unit] == snippets.shape[0] == 12
    _, values = decode(view.figure.samples[unit], lay, gt.channel_locations_um)
    column = {c: i for i, c in enumerate(np.asarray(channel_ids).tolist())}
    for k, c in enumerate(lay.channel_ids.tolist()):
        if c in column:
            np.testing.assert_allclose(values[:, :, k], snippets[:, :, column[c]], atol=1e-3)
        else:
            assert np.isnan(values[:, :, k]).all()

    view.param.update(mode="density", density_spikes=150)
    snippets, channel_ids, _ = view.results.waveforms(unit, max_spikes=150, seed=4)
    covered = [c for c in lay.channel_ids.tolist() if c in set(np.asarray(channel_ids).tolist())]
    counts, x_edges, y_edges = view.figure.density[unit]
    n, s = snippets.shape[:2]
    assert view.figure.sample_counts[unit] == n
    assert counts.sum() == n * s * len(covered)  # every snippet sample in exactly one bin
    # every column of the grid is one sample position of one probe column: it holds one
    # sample of each snippet on each covered channel of that probe column
    xs = gt.channel_locations_um[:, 0]
    where = {c: i for i, c in enumerate(np.asarray(session.channel_ids).tolist())}
    per_probe_column = pd.Series([xs[where[c]] for c in covered]).value_counts()
    centres = (x_edges[:-1] + x_edges[1:]) / 2
    offsets = (np.arange(s) - (s - 1) / 2) * lay.um_per_sample
    for x_probe, channels in per_probe_column.items():
        for dx in offsets[[0, s // 2, s - 1]]:
            j = int(np.argmin(np.abs(centres - (x_probe + dx))))
            assert counts[:, j].sum() == n * channels
    assert np.allclose(np.diff(y_edges), ROW_PITCH_UM / 25)
    assert view.figure.curves[unit] is not None  # the mean stays on top


def test_hidden_view_does_no_work_until_shown(gt, session):
    unit, _ = biggest_unit(gt)
    selection = Selection(session.sorting)
    view = TemplatesView(session, selection=selection, active=False)
    assert view.renders == 0
    selection.unit_ids = [unit]
    view.mode = "mean+samples"
    assert view.renders == 0 and view.figure.curves == {}
    view.active = True
    assert view.renders == 1
    assert list(view.figure.curves) == [unit] and unit in view.figure.samples
    view.active = False
    selection.unit_ids = []
    assert view.renders == 1
    view.dispose()
    view.active = True  # disposed: nothing is followed, but pending work is done once
    assert view.figure.curves == {}


def test_merged_unit_is_drawn_and_undo_removes_it(gt):
    session = relabelled(gt)
    view = TemplatesView(session)
    a, b = 10, 17
    new = session.curation.merge([a, b])
    session.selection.unit_ids = [new]
    assert list(view.figure.curves) == [new]
    tpl = view.results.templates([new])
    _, values = decode(view.figure.curves[new], view.figure.layout, gt.channel_locations_um)
    np.testing.assert_allclose(values[0], np.asarray(tpl.data[0])[:, view.figure.layout
                                                                   .channel_indices], atol=1e-3)
    session.curation.undo()
    assert session.selection.unit_ids == []
    assert view.figure.curves == {}


def test_without_recording_or_templates_a_clear_message(gt):
    session = relabelled(gt, recording=False)
    view = TemplatesView(session)
    session.selection.unit_ids = [10]
    assert view.figure.layout is None
    assert "no recording" in view.figure.message and "KiloSort" in view.figure.message


def test_kilosort_templates_are_used_and_labelled_honestly(gt):
    # two whitened "KiloSort" templates; unit 10's spikes use template 1 mostly, unit 17's none
    s = gt.sorting
    template_index = np.where(s.unit_index == 0, 1, 0).astype(np.int64)
    template_index[np.flatnonzero(s.unit_index == 0)[:3]] = 0  # a few spikes on another one
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 61, 32)).astype(np.float32)
    ks = Templates(data, [0, 1], np.arange(32), units="whitened", nbefore=20)
    session = relabelled(gt, recording=False, results={"kilosort_templates": ks},
                         spike_properties={"template_index": template_index},
                         channel_ids=np.arange(32),
                         channel_locations_um=gt.channel_locations_um)
    view = TemplatesView(session)
    session.selection.unit_ids = [10]
    fig = view.figure
    assert "whitened" in fig.units_label and "10→1" in fig.units_label
    _, values = decode(fig.curves[10], fig.layout, gt.channel_locations_um)
    np.testing.assert_allclose(values[0], data[1][:, fig.layout.channel_indices], atol=1e-4)
    assert fig.std_uv == {} and fig.bands == {}


def test_nearest_channels_and_layout_without_geometry():
    locations = np.array([[0, 0], [0, 20], [0, 40], [30, 0], [0, 60.0]])
    assert nearest_channels(locations, 1, 3).tolist() == [0, 1, 2]  # ties: lower index
    assert nearest_channels(locations, 4, 2).tolist() == [2, 4]
    lay = make_layout(np.array([7, 8, 9]), None, np.array([2, 0]), 30, 50.0, 1.0)
    assert lay.channel_ids.tolist() == [7, 9] and not lay.geometry
    assert lay.xy_um.tolist() == [[0.0, 0.0], [0.0, 20.0]]  # stacked in id order, bottom up
    assert lay.um_per_uv == pytest.approx(20.0 / 50.0)


def test_new_selection_updates_the_same_figure_in_place(gt, session):
    import asyncio

    from bokeh.models import GlyphRenderer, MultiLine, Plot

    unit, _ = biggest_unit(gt)
    other = 10 + 7 * ((unit - 10) // 7 + 1) % (7 * gt.num_units)
    view = TemplatesView(session, selection=Selection(session.sorting), num_channels=6)
    locations = gt.channel_locations_um

    def curves(fig):
        """The drawn mean curves: one multi-line entry per unit, (x, y) µm."""
        lines = [r for r in fig.renderers
                 if isinstance(r, GlyphRenderer) and isinstance(r.glyph, MultiLine)]
        data = lines[-1].data_source.data  # samples first, then the means
        return lines[-1], [(np.asarray(x), np.asarray(y))
                           for x, y in zip(data["xs"], data["ys"], strict=True)]

    async def run():
        root = view.__panel__().get_root()
        fig = root.select_one({"type": Plot})
        view.selection.unit_ids = [unit]
        await asyncio.sleep(0)
        renderer, drawn = curves(fig)
        tpl = view.results.templates([unit, other])
        lay = view.figure.layout
        (xy,) = drawn
        _, values = decode(xy, lay, locations)
        np.testing.assert_allclose(values[0], np.asarray(tpl.data[0])[:, lay.channel_indices],
                                   atol=1e-3)
        view.selection.unit_ids = [other, unit]
        await asyncio.sleep(0)
        assert root.select_one({"type": Plot}).id == fig.id  # the same figure and glyph
        renderer2, drawn = curves(fig)
        assert renderer2 is renderer and len(drawn) == 2
        lay = view.figure.layout
        for row, xy in zip([1, 0], drawn, strict=True):
            _, values = decode(xy, lay, locations)
            np.testing.assert_allclose(
                values[0], np.asarray(tpl.data[row])[:, lay.channel_indices], atol=1e-3)
        # colours: PALETTE[0] for the first selected unit, PALETTE[1] for the second
        assert list(renderer.data_source.data["color"]) == [0, 1]
        assert renderer.glyph.line_color.transform.palette[:2] == list(PALETTE[:2])

    asyncio.run(run())
