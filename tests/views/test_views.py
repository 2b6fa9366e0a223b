"""Views and dashboard at the Param level (no browser): selection linking, raster data, order."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.errors import InputError
from spikeviz.model.selection import Selection

pn = pytest.importorskip("panel")

from spikeviz.app.dashboard import Dashboard, build_dashboard, summary_items  # noqa: E402
from spikeviz.app.formatting import format_duration  # noqa: E402
from spikeviz.app.serve import serve  # noqa: E402
from spikeviz.model.depth import unit_depths_um  # noqa: E402
from spikeviz.views import Raster, UnitTable, raster_data  # noqa: E402
from spikeviz.views import raster as raster_module  # noqa: E402
from spikeviz.views.raster_data import _DATA as RASTER_DATA_CACHE  # noqa: E402
from spikeviz.views.unit_table import DEPTH_TOOLTIP, label_duplicate_columns  # noqa: E402

FS = 30_000.0


def make_session(num_units=20, num_spikes=200_000, duration_s=100.0, seed=0, geometry=True,
                 peak_channels=True):
    """Seeded random sorting: unit ids 1, 4, 7, ... (ids != indices), a 32-channel probe."""
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 1.0, num_units)
    unit_index = rng.choice(num_units, size=num_spikes, p=weights / weights.sum())
    sample_index = rng.integers(0, int(duration_s * FS), num_spikes)
    unit_ids = np.arange(num_units, dtype=np.int64) * 3 + 1
    table = pd.DataFrame({"label": rng.choice(["good", "mua", "noise"], num_units),
                          "amplitude_uv": rng.normal(80.0, 20.0, num_units)},
                         index=pd.Index(unit_ids, name="unit_id"))
    if peak_channels:
        table["peak_channel_id"] = rng.integers(100, 132, num_units)  # channel ids, not indices
    sorting = sv.Sorting.from_arrays(sample_index, unit_index.astype(np.int32), FS,
                                     unit_ids=unit_ids, unit_table=table,
                                     num_samples=int(duration_s * FS))
    channel_ids = np.arange(100, 132)
    locations = np.column_stack([np.tile([16.0, 48.0], 16), np.repeat(np.arange(16) * 20.0, 2)])
    if not geometry:
        return sv.Session(sorting)
    return sv.Session(sorting, channel_ids=channel_ids, channel_locations_um=locations)


@pytest.fixture(scope="module")
def session():
    return make_session()


@pytest.fixture
def linked(session):
    selection = Selection.for_session(session)
    return selection, UnitTable(session, selection), Raster(session, selection)


# -- Selection -------------------------------------------------------------------------------
def test_selection_normalises_and_validates_against_the_sorting(session):
    sorting = session.sorting
    selection = Selection.for_session(session)
    selection.unit_ids = np.array([7, 1, 7])
    assert selection.unit_ids == [7, 1]
    assert all(type(u) is int for u in selection.unit_ids)
    with pytest.raises(InputError, match="no unit with id 2"):
        selection.unit_ids = [1, 2]  # 2 is an index-like value, not an id
    assert selection.unit_ids == [7, 1]  # unchanged after a rejected value
    with pytest.raises(InputError):
        selection.unit_ids = [True]
    with pytest.raises(InputError, match="not None"):
        selection.unit_ids = None

    selection.time_window_s = (1, 2.5)
    assert selection.time_window_s == (1.0, 2.5)
    for bad in [(2.0, 1.0), (-1.0, 1.0), (0.0, np.inf), (sorting.duration_s + 1, 1e9)]:
        with pytest.raises(InputError):
            selection.time_window_s = bad
    selection.time_window_s = None

    selection.spike_indices = [5, 3, 3]
    assert selection.spike_indices.tolist() == [3, 5]
    assert selection.spike_indices.dtype == np.int64
    assert not selection.spike_indices.flags.writeable
    with pytest.raises(InputError):
        selection.spike_indices = [sorting.num_spikes]
    with pytest.raises(InputError):
        selection.spike_indices = [0.5]

    selection.channel_ids = [np.int64(101), 100]
    assert selection.channel_ids == [101, 100]
    with pytest.raises(InputError, match="no channel"):
        selection.channel_ids = [5]

    selection.clear()
    assert selection.unit_ids == [] and selection.spike_indices is None
    assert selection.time_window_s is None and selection.channel_ids is None

    with pytest.raises(InputError):
        Selection(sorting, unit_ids=[2])
    assert Selection(unit_ids=[np.int64(2)]).unit_ids == [2]  # no sorting: types only


# -- UnitTable <-> Selection <-> Raster ------------------------------------------------------
def test_table_columns(session, linked):
    _, table, _ = linked
    frame = table.widget.value
    assert list(frame.columns[:5]) == ["unit_id", "label", "tags", "num_spikes",
                                       "firing_rate_hz"]
    for column in ["amplitude_uv", "peak_channel_id", "depth_um", *session.sorting.unit_table]:
        assert column in frame.columns
    counts = session.sorting.spike_counts()
    assert frame["num_spikes"].tolist() == counts.tolist()
    np.testing.assert_allclose(frame["firing_rate_hz"], counts.to_numpy() / 100.0)
    assert frame["label"].tolist() == session.sorting.labels.tolist()
    assert table.widget.sortable and table.widget.selectable


def test_table_depth_comes_from_the_model_not_the_raster():
    session = make_session(num_spikes=5000, seed=7)
    table = UnitTable(session)
    assert session.curation.sorting not in RASTER_DATA_CACHE  # no raster data for the table
    depths, source = unit_depths_um(session)
    assert source == "peak_channel_id"
    column = table.widget.value["depth_um"].to_numpy()
    np.testing.assert_array_equal(column, depths)
    assert not np.shares_memory(column, depths)  # the model's cached array stays untouched
    assert table.widget.titles["depth_um"] == "depth (µm)"
    tip = table.widget.header_tooltips["depth_um"]
    assert tip.startswith(DEPTH_TOOLTIP) and "peak_channel_id" in tip
    assert DEPTH_TOOLTIP == "y on the probe, µm from the tip; larger = shallower"
    # the raster orders rows by the very same depths
    np.testing.assert_array_equal(Raster(session).data.depths_um, depths)
    # no depth known: no column, no tooltip
    table = UnitTable(make_session(geometry=False, num_spikes=1000, seed=7))
    assert np.isnan(table.widget.value["depth_um"]).all()


def test_views_do_not_import_each_other():
    import ast
    from pathlib import Path

    folder = Path(raster_module.__file__).parent
    # a view module defines a View subclass; shared helpers (base, colors, expression, ...) and
    # the shared base class of the scatter views (lasso.LassoScatter) may be imported
    views = {p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "lasso") and any(
        isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) == "View"
                                               for b in node.bases)
        for node in ast.walk(ast.parse(p.read_text())))}
    assert {"raster", "unit_table"} <= views
    offenders = []
    for path in folder.glob("*.py"):
        if path.stem == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1:
                    names = [module] if module else [a.name for a in node.names]
                elif module.startswith("spikeviz.views"):
                    names = [module.split(".")[2] if module.count(".") > 1 else ""]
                else:
                    continue
                offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in views]
            elif isinstance(node, ast.Import):
                offenders += [f"{path.name}: {a.name}" for a in node.names
                              if a.name.startswith("spikeviz.views.")]
    assert offenders == []


def _phy_like_session():
    unit_ids = np.array([0, 1, 2, 5])
    table = pd.DataFrame({
        "group": ["good", "mua", "noise", "good"],  # label source: same values
        "KSLabel": ["good", "good", "mua", "mua"],  # disagrees after manual curation
        "bc_unitType": ["GOOD", " MUA", "NOISE", "GOOD"],  # same values, other case/blanks
        "note": ["good", None, "noise", "good"],  # a gap: not a copy of the label
        "depth": [20.0, 40.0, 60.0, 80.0],
        "label": ["good", "mua", "noise", "good"],
    }, index=pd.Index(unit_ids, name="unit_id"))
    sorting = sv.Sorting.from_arrays(np.arange(8) * 10, np.array([0, 0, 1, 1, 2, 2, 3, 3]), FS,
                                     unit_ids=unit_ids, unit_table=table)
    return sv.Session(sorting)


def test_raw_label_columns_repeating_the_label_are_hidden():
    session = _phy_like_session()
    table = UnitTable(session)
    frame = table.widget.value
    assert label_duplicate_columns(frame) == ["group", "bc_unitType"]
    repeated = ["firing_rate"] if "firing_rate" in frame else []  # the metric = "rate (Hz)"
    assert table.widget.hidden_columns == ["group", "bc_unitType", *repeated]
    # the data is all still there, the label right after the unit id
    assert list(frame.columns[:2]) == ["unit_id", "label"]
    for column in ("group", "KSLabel", "bc_unitType", "note", "depth"):
        assert column in frame
    assert frame["bc_unitType"].tolist() == ["GOOD", " MUA", "NOISE", "GOOD"]
    tip = table.widget.header_tooltips["label"]
    assert "group, bc_unitType" in tip and "hidden" in tip and "firing_rate" not in tip
    # relabelled, the source's group no longer equals the label: it stays hidden all the same
    # (it would show the stale source label), after a structural action too
    ids = table.curation.sorting.unit_ids.tolist()
    table.curation.label([ids[0]], "noise")
    table.curation.merge(ids[1:3])
    assert {"group", "bc_unitType"} <= set(table.widget.hidden_columns)
    # nothing to hide: the label's tooltip says nothing about hidden columns
    plain = UnitTable(make_session(num_spikes=1000, seed=2))
    assert plain.widget.hidden_columns == [c for c in ["firing_rate"]
                                           if c in plain.widget.value]
    assert "hidden" not in plain.widget.header_tooltips["label"]


def test_selecting_table_rows_sets_selection(session, linked):
    selection, table, raster = linked
    ids = session.sorting.unit_ids.tolist()
    table.widget.selection = [2, 5]
    assert selection.unit_ids == [ids[2], ids[5]]
    assert len(raster.highlight) == sum(session.sorting.spike_train(u).size
                                        for u in selection.unit_ids)
    table.widget.selection = []
    assert selection.unit_ids == []
    assert len(raster.highlight) == 0


def test_selection_updates_table_and_raster_highlight(session, linked):
    selection, table, raster = linked
    unit = int(session.sorting.unit_ids[7])
    selection.unit_ids = [unit]
    assert table.widget.selection == [7]
    assert table.selected_unit_ids == [unit]
    np.testing.assert_array_equal(raster.highlight["time_s"].to_numpy(),
                                  session.sorting.spike_train_s(unit))
    assert set(raster.highlight["row"].tolist()) == {raster.row_of(unit)}
    assert f"Selected: unit {unit}" in raster._info.object
    bands = raster._bands()
    assert bands.dimension_values("y0").tolist() == [raster.row_of(unit) - 0.5]


def test_no_feedback_loop(session, linked):
    selection, table, _ = linked
    unit_events, table_events = [], []
    selection.param.watch(lambda e: unit_events.append(e.new), "unit_ids")
    table.widget.param.watch(lambda e: table_events.append(e.new), "selection")
    table.widget.selection = [3, 1]
    assert len(unit_events) == 1 and table_events == [[3, 1]]
    selection.unit_ids = [int(session.sorting.unit_ids[4])]
    assert len(unit_events) == 2 and table_events == [[3, 1], [4]]
    selection.unit_ids = [int(session.sorting.unit_ids[1]), int(session.sorting.unit_ids[3])]
    assert table_events[-1] == [1, 3]
    # the same set in another order is not echoed back
    table.widget.selection = [3, 1]
    assert len(unit_events) == 3


def test_raster_points_of_each_unit_equal_its_spike_train(session, linked):
    _, _, raster = linked
    sorting = session.sorting
    for unit in sorting.unit_ids.tolist():
        points = raster.spikes_of(unit)
        np.testing.assert_array_equal(points["time_s"].to_numpy(), sorting.spike_train_s(unit))
        assert (points["row"].to_numpy() == raster.row_of(unit)).all()
        assert raster.row_unit_ids[raster.row_of(unit)] == unit


def test_time_vector_is_computed_once_and_shared(session):
    a, b = Raster(session), Raster(session)
    assert a.data is b.data is raster_data(session)
    time_s = a.data.frame["time_s"].to_numpy()
    assert time_s.dtype == np.float64
    assert np.shares_memory(time_s, a.data.time_s)
    assert not a.data.time_s.flags.writeable
    np.testing.assert_array_equal(a.data.time_s, session.sorting.sample_index / FS)


def _values(image) -> np.ndarray:
    """The image's spike counts (NaN = none), shape (rows, columns), bottom row first."""
    ys = image.dimension_values(1, expanded=False)
    assert (np.diff(ys) > 0).all()
    return image.dimension_values(2, flat=False)


def test_raster_image_counts_every_spike_in_its_unit_row(session, linked):
    _, _, raster = linked
    sorting = session.sorting
    n = len(raster.row_unit_ids)
    # one image row per unit (row height under 4 px: no separator sub-rows)
    image = raster._base_image(x_range=(0.0, sorting.duration_s), y_range=(-0.5, n - 0.5),
                               width=300, height=n * 2)
    values = np.nan_to_num(_values(image))
    assert values.shape == (n, 300)
    assert values.sum() == sorting.num_spikes
    counts = sorting.spike_counts()
    for row, unit in enumerate(raster.row_unit_ids):
        assert values[row].sum() == counts.loc[unit]
    # tall rows: each unit row is split in sub-rows with blank separators, counts repeated
    tall = raster._base_image(x_range=(0.0, sorting.duration_s), y_range=(-0.5, n - 0.5),
                              width=300, height=n * 20)
    tall = _values(tall)
    assert tall.shape[0] == 8 * n
    assert np.isnan(tall[0::8]).all() and np.isnan(tall[7::8]).all()
    for sub in range(1, 7):
        np.testing.assert_array_equal(np.nan_to_num(tall[sub::8]), values)
    # a time window: only its spikes
    window = raster._base_image(x_range=(10.0, 20.0), y_range=(-0.5, n - 0.5), width=200,
                                height=n)
    t = raster.data.time_s
    assert np.nansum(_values(window)) == np.count_nonzero((t >= 10.0) & (t <= 20.0))


def _run_count_formatter(code: str, images, index: dict) -> str:
    """Run the hover's spike-count formatter (Bokeh CustomJSHover code) in node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the formatter's JavaScript is not run")
    script = ("const f = new Function('source', 'value', 'format', 'special_vars', "
              f"{json.dumps(code)});"
              f"const images = {json.dumps(images)}.map(a => Array.isArray(a[0]) ? a "
              "  : Float32Array.from(a, v => v === null ? NaN : v));"
              f"console.log(JSON.stringify(f({{data: {{image: images}}}}, {json.dumps(index)}, "
              "'custom', {})));")
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_hover_shows_zero_spikes_for_empty_pixels(session):
    from bokeh.models import CustomJSHover, HoverTool

    raster = Raster(session)
    root = raster.__panel__().get_root()
    hovers = [h for h in root.select({"type": HoverTool})
              if ("spikes in pixel", "$image_index{custom}") in list(h.tooltips)]
    assert len(hovers) == 1, "no hover tool shows the pixel's spike count through a formatter"
    formatter = hovers[0].formatters["$image_index"]
    assert isinstance(formatter, CustomJSHover)
    assert formatter.code == raster_module.SPIKE_COUNT_HOVER_CODE
    image_source = formatter.args["source"]
    assert "image" in image_source.data  # the base image's own data source
    # the image holds NaN for empty pixels (transparent)
    image = raster._base_image(x_range=(0.0, 0.001), y_range=(-0.5, 19.5), width=50,
                               height=40)
    assert np.isnan(_values(image)).any()
    # the formatter reads the pixel from the ImageIndex Bokeh gives it: NaN shows 0
    flat = [None, 0, 3, 1234]  # a flat 2 x 2 image (Bokeh's typed arrays), NaN as null
    for flat_index, expected in enumerate(["0", "0", "3", "1,234"]):
        index = {"index": 0, "i": flat_index % 2, "j": flat_index // 2, "flat_index": flat_index}
        assert _run_count_formatter(formatter.code, [flat], index) == expected
    nested = [[7, None], [2, 5]]  # an image as a list of rows
    assert _run_count_formatter(formatter.code, [nested], {"index": 0, "i": 0, "j": 1,
                                                           "flat_index": 2}) == "2"
    assert _run_count_formatter(formatter.code, [nested], {"index": 0, "i": 1, "j": 0,
                                                           "flat_index": 1}) == "0"


def test_units_ordered_by_depth_when_known(session):
    raster = Raster(session)
    assert raster.order == "depth"
    depths, source = unit_depths_um(session)
    assert source == "peak_channel_id"
    table = session.sorting.unit_table
    lookup = dict(zip(session.channel_ids.tolist(), session.channel_locations_um[:, 1],
                      strict=True))
    expected = np.array([lookup[c] for c in table["peak_channel_id"]])
    np.testing.assert_array_equal(depths, expected)
    row_depths = [depths[session.sorting.unit_index_of(u)] for u in raster.row_unit_ids]
    assert row_depths == sorted(row_depths)  # deepest (smallest y) at row 0, the bottom
    # ties broken by unit order
    for r in range(len(row_depths) - 1):
        if row_depths[r] == row_depths[r + 1]:
            a, b = raster.row_unit_ids[r], raster.row_unit_ids[r + 1]
            assert session.sorting.unit_index_of(a) < session.sorting.unit_index_of(b)


def test_units_ordered_by_id_without_geometry():
    session = make_session(geometry=False, num_spikes=5000, seed=3)
    raster = Raster(session)
    assert raster.order == "unit id"
    assert raster.row_unit_ids == sorted(session.sorting.unit_ids.tolist())
    session = make_session(peak_channels=False, num_spikes=5000, seed=3)
    assert Raster(session).order == "unit id"


def test_tap_and_box_select_write_unit_ids(session, linked):
    selection, table, raster = linked
    unit = raster.row_unit_ids[5]
    raster._on_tap(x=1.0, y=5.3)
    assert selection.unit_ids == [unit]
    assert table.selected_unit_ids == [unit]
    raster._on_tap(x=1.0, y=len(raster.row_unit_ids) + 3.0)  # above every row
    assert selection.unit_ids == []
    raster._on_box(bounds=(0.0, 2.2, session.sorting.duration_s, 4.4))
    assert selection.unit_ids == raster.row_unit_ids[2:5]
    raster._on_box(bounds=(50.0, 2.6, 50.0 + 1e-9, 2.7))  # a box with no spike in it
    assert selection.unit_ids == []


def test_time_window_zooms_the_time_axis(session, linked):
    selection, _, raster = linked
    raster.__panel__().get_root()  # render the Bokeh models (captures the x range)
    x_ranges = list(raster._x_ranges)
    assert x_ranges and (x_ranges[0].start, x_ranges[0].end) == (0.0, 100.0)
    selection.time_window_s = (10.0, 12.5)
    assert [(r.start, r.end) for r in x_ranges] == [(10.0, 12.5)]
    assert raster._range.x_range == (10.0, 12.5)
    assert raster.x_range_s == (10.0, 12.5)
    selection.time_window_s = (90.0, 500.0)  # clipped to the session
    assert (x_ranges[0].start, x_ranges[0].end) == (90.0, 100.0)
    selection.time_window_s = None
    assert (x_ranges[0].start, x_ranges[0].end) == (0.0, 100.0)


def test_empty_sorting_renders():
    sorting = sv.Sorting.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int32), FS)
    session = sv.Session(sorting)
    dashboard = Dashboard(session)
    dashboard.__panel__().get_root()
    assert dashboard.unit_table.widget.value.empty
    assert dashboard.raster.row_unit_ids == []
    image = dashboard.raster._base_image(x_range=(0.0, 1.0), y_range=(-0.5, 0.5), width=50,
                                         height=50)
    assert np.isnan(_values(image)).all()
    dashboard.raster._on_tap(x=0.5, y=0.0)
    assert dashboard.selection.unit_ids == []
    assert "No units" in dashboard.raster._info.object
    build_dashboard(session)  # the served template builds too


def test_units_without_spikes_and_string_ids():
    sorting = sv.Sorting.from_arrays(np.array([10, 20, 30]), np.array([0, 0, 2]), FS,
                                     unit_ids=np.array(["a", "b", "c"]))
    session = sv.Session(sorting)
    dashboard = Dashboard(session)
    dashboard.__panel__().get_root()
    dashboard.selection.unit_ids = ["b"]
    assert dashboard.unit_table.widget.selection == [1]
    assert len(dashboard.raster.highlight) == 0
    dashboard.unit_table.widget.selection = [2, 0]
    assert dashboard.selection.unit_ids == ["c", "a"]


def test_dashboards_do_not_share_state(session):
    one, two = Dashboard(session), Dashboard(session)
    assert one.selection is not two.selection
    assert one.unit_table is not two.unit_table and one.raster is not two.raster
    assert one.raster.data is two.raster.data  # the heavy arrays are shared, read-only
    one.selection.unit_ids = [int(session.sorting.unit_ids[0])]
    assert two.selection.unit_ids == [] and two.unit_table.widget.selection == []


def test_summary(session):
    items = dict(summary_items(session))
    assert items["format"] == "memory"
    assert items["units"] == "20" and items["spikes"] == "200,000"
    assert items["duration"].startswith("100.0 s")
    assert items["channels"] == "32" and items["recording"] == "no"


@pytest.mark.parametrize("seconds, text", [
    (0.0, "0.0 s (0:00.0)"),
    (59.94, "59.9 s (0:59.9)"),
    (59.96, "60.0 s (1:00.0)"),
    (100.0, "100.0 s (1:40.0)"),
    (119.97, "120.0 s (2:00.0)"),
    (3599.97, "3,600.0 s (1:00:00.0)"),
    (5025.34, "5,025.3 s (1:23:45.3)"),
])
def test_duration_is_rounded_before_it_is_split(seconds, text):
    assert format_duration(seconds) == text


def test_summary_duration_never_shows_60_seconds():
    sorting = sv.Sorting.from_arrays(np.array([0, 10]), np.array([0, 0]), FS,
                                     num_samples=3_599_100)  # 119.97 s
    assert dict(summary_items(sv.Session(sorting)))["duration"] == "120.0 s (2:00.0)"


@pytest.mark.filterwarnings("ignore:There is no current event loop:DeprecationWarning")
def test_serve_rejects_a_bad_factory_and_a_busy_port(session):
    with pytest.raises(InputError, match="not a spikeviz Session"):
        serve(lambda: "not a session", warm=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError, match="already in use"):
            serve(lambda: session, port=port, address="127.0.0.1", warm=False)


def test_column_widths_fit_the_longest_shown_text():
    from spikeviz.views.unit_table import CELL_PAD_PX, CHAR_PX, MAX_COLUMN_PX, column_widths

    frame = pd.DataFrame({"unit_id": [1, 12345], "firing_rate_hz": [1.5, 123.456],
                          "note": ["x" * 200, ""]})
    widths = column_widths(frame)
    assert widths["unit_id"] == CHAR_PX * len("12,345") + CELL_PAD_PX
    assert widths["firing_rate_hz"] == CHAR_PX * len("rate (Hz)") + CELL_PAD_PX  # title longer
    assert widths["note"] == MAX_COLUMN_PX
