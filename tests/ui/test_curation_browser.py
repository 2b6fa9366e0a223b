"""The curation loop in a real browser: `spikeviz serve` on a synthetic Phy folder, Chromium.

One server and one page for the module; the tests run in order and each starts from the state
the previous one left (as a scientist would work):

1. load: 10 rows, the summary says 10 units, no traceback text;
2. a click on a row updates the other views (waveform, similarity, ISI texts name the unit; the
   correlogram canvas changes);
3. labels through the toolbar and the keyboard, Undo button, Ctrl+Z, Ctrl+Shift+Z; "?" help;
4. merge of the generator's two split clusters (Ctrl-click, Merge): 9 rows, the new unit
   selected; Ctrl+Z: 10 rows; Redo: 9;
5. split of the merged unit by a lasso drawn with the mouse on the amplitude plot: "N spikes
   selected", Split: 10 rows with the two parts (N and the rest); Ctrl+Z, Ctrl+Shift+Z;
6. export of the curation JSON (valid SpikeInterface v2, applies to the original sorting) and
   of HDF5 (loads back with the curated units);
7. no console error (except web fonts the offline machine cannot fetch), no page error;
8. the curation log on disk follows every step; after kill -9, reopening the folder gives the
   same curated units and labels.

Screenshots of each step are saved to test-artifacts/curation_*.png.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Messages,
    assert_no_traceback,
    page_text,
    poll,
    require_browser,
    screenshot,
    start_server,
    unexpected_messages,
    wait_text,
)

pytestmark = pytest.mark.ui

NUM_UNITS = 10
TABLE = ".spikeviz-unit-table"
ACTION_TIMEOUT_S = 90  # one curation action and the redraw of the shown views, 2 slow cores
EXPORT_TIMEOUT_S = 240


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    require_browser()
    from spikeviz.datasets import generate_to_folder

    folder = generate_to_folder(tmp_path_factory.mktemp("curation") / "phy", duration_s=20,
                                num_channels=32, num_units=NUM_UNITS, seed=3)
    truth = json.loads((folder / "ground_truth.json").read_text())
    return folder, truth


@pytest.fixture(scope="module")
def server(dataset, tmp_path_factory):
    folder, _ = dataset
    workdir = tmp_path_factory.mktemp("server")
    srv = start_server(["serve", str(folder)], workdir,
                       env={"SPIKEVIZ_CACHE_DIR": str(workdir / "cache")})
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _step(request):
    """Messages from the browser are tagged with the test that was running."""
    if "ui" in request.fixturenames:
        request.getfixturevalue("ui").messages.step = request.node.name


@pytest.fixture(scope="module")
def ui(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(ACTION_TIMEOUT_S * 1000)
            messages = Messages()
            messages.listen(page)
            page.goto(server.url, timeout=120_000)
            yield UI(page, messages, server)
        finally:
            browser.close()


class UI:
    """The page and what the tests share: the server, the messages, the story's unit ids."""

    def __init__(self, page, messages, server):
        self.page, self.messages, self.server = page, messages, server
        self.state: dict = {}

    # table
    def rows(self):
        return self.page.locator(f"{TABLE} .tabulator-row")

    def row(self, unit):
        return self.rows().filter(has=self.page.locator(
            '[tabulator-field="unit_id"]', has_text=re.compile(rf"^\s*{unit}\s*$")))

    def cell(self, unit, field: str = "unit_id"):
        return self.row(unit).locator(f'[tabulator-field="{field}"]')

    def click_unit(self, unit, add: bool = False) -> None:
        """Click the (frozen) unit id cell of ``unit``'s row; ``add``: Ctrl-click."""
        self.cell(unit).click(modifiers=["Control"] if add else None)

    def table_ids(self) -> list[int]:
        return [int(t) for t in self.page.locator(
            f'{TABLE} .tabulator-row [tabulator-field="unit_id"]').all_inner_texts()]

    def selected_ids(self) -> list[int]:
        return sorted(int(t) for t in self.page.locator(
            f'{TABLE} .tabulator-row.tabulator-selected [tabulator-field="unit_id"]')
            .all_inner_texts())

    def wait_rows(self, n: int) -> None:
        from playwright.sync_api import expect

        expect(self.rows()).to_have_count(n, timeout=ACTION_TIMEOUT_S * 1000)

    def wait_selected(self, ids) -> None:
        poll(lambda: self.selected_ids() == sorted(ids), ACTION_TIMEOUT_S,
             what=f"the table's selected rows are {sorted(ids)} (now {self.selected_ids()})")

    def wait_label(self, unit, label: str) -> None:
        from playwright.sync_api import expect

        expect(self.cell(unit, "label")).to_have_text(label, timeout=ACTION_TIMEOUT_S * 1000)

    def spikes_of(self, unit) -> int:
        return int(self.cell(unit, "num_spikes").inner_text().replace(",", ""))

    # toolbar
    def button(self, name: str):
        return self.page.get_by_role("button", name=name, exact=True)

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)

    def tab(self, title: str):
        return self.page.locator(".bk-tab").filter(has_text=re.compile(rf"^\s*{title}\s*$"))

    def status(self, pattern: str):
        return wait_text(self.page, pattern, ACTION_TIMEOUT_S)

    def shot(self, name: str, full_page: bool = False) -> Path:
        return screenshot(self.page, f"curation_{name}", full_page=full_page)


def curation_log(folder: Path) -> dict:
    """The curation log the server writes (where ``Session.curation_log_path`` says)."""
    import spikeviz

    path = spikeviz.load(folder).curation_log_path()
    assert path is not None and path.is_file(), f"no curation log at {path}"
    return json.loads(path.read_text())


def done_ops(folder: Path) -> list[tuple]:
    """(op, detail) of the actions in effect (up to the log's position)."""
    doc = curation_log(folder)
    out = []
    for action in doc["actions"][:doc["position"]]:
        op = action["op"]
        detail = {"label": lambda a: (tuple(a["unit_ids"]), a["label"]),
                  "merge": lambda a: (tuple(sorted(a["unit_ids"])), a["new_unit_id"]),
                  "split": lambda a: (a["unit_id"], tuple(sorted(a["new_unit_ids"])))}.get(
            op, lambda a: None)(action)
        out.append((op, detail))
    return out


def _png(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _drawn_pixels(png: bytes) -> int:
    """Coloured (not grey, not white) pixels: bars and shading, not axes or text."""
    rgb = _png(png)
    return int(np.count_nonzero(rgb.max(axis=-1) - rgb.min(axis=-1) > 60))


def _correlograms(ui):
    """The correlogram figure: ``.spikeviz-correlograms`` when the page has it, else the
    figure right under the correlograms' info line (the Bokeh pane's css class does not reach
    the page)."""
    page = ui.page
    tagged = page.locator(".spikeviz-correlograms")
    if tagged.count():
        return tagged.first
    info = page.locator(".spikeviz-correlograms-info").bounding_box()
    if info is None:
        return tagged
    below = []
    figures = page.locator(".bk-Figure")
    for i in range(figures.count()):
        box = figures.nth(i).bounding_box()
        gap = box["y"] - info["y"] - info["height"] if box else -1
        if box and box["width"] > 20 and -5 <= gap <= 80 and abs(box["x"] - info["x"]) < 150:
            below.append((box["y"], i))
    return figures.nth(min(below)[1]) if below else tagged


# -- the story ---------------------------------------------------------------------------------
def test_1_load(ui):
    page = ui.page
    ui.wait_rows(NUM_UNITS)
    assert ui.table_ids() == list(range(NUM_UNITS))
    summary = page.locator(".spikeviz-summary")
    poll(lambda: re.search(r"units\s*10\b", summary.inner_text()), 30,
         what="the summary says 10 units")
    wait_text(page, r"Select a unit \(table, raster or probe\) to see its waveforms")
    assert ui.selected_ids() == []
    assert ui.button("Merge").is_disabled() and ui.button("Split").is_disabled()
    assert ui.button("↶ Undo").is_disabled()
    assert_no_traceback(page)
    ui.shot("1_load")


def test_2_select_unit_updates_views(ui):
    page = ui.page
    assert not _correlograms(ui).is_visible()  # no unit selected: no correlogram grid
    unit = 2
    spikes = ui.spikes_of(unit)
    ui.click_unit(unit)
    ui.wait_selected([unit])
    # waveforms, similar units, ISI: their texts name the unit
    wait_text(page, rf"Units {unit} · \d+ channels", ACTION_TIMEOUT_S)
    wait_text(page, rf"Similar to unit {unit}\b", ACTION_TIMEOUT_S)
    wait_text(page, rf"ISI violations \([^)]*\):\W*{unit} ?: [\d.]+ ?%", ACTION_TIMEOUT_S)
    similar = page.locator(".spikeviz-similarity .tabulator-row")
    poll(lambda: similar.count() >= 3, ACTION_TIMEOUT_S, what="the similar-unit list fills")
    listed = [int(t) for t in page.locator(
        '.spikeviz-similarity .tabulator-row [tabulator-field="unit_id"]').all_inner_texts()]
    assert unit not in listed and set(listed) <= set(range(NUM_UNITS))
    # the correlogram panel shows up and draws the unit's autocorrelogram (bars, not white)
    poll(lambda: _correlograms(ui).is_visible(), ACTION_TIMEOUT_S,
         what="the correlogram grid shows")
    poll(lambda: _drawn_pixels(_correlograms(ui).screenshot()) > 300, ACTION_TIMEOUT_S,
         what="the correlogram panel draws bars")
    assert spikes > 0
    assert_no_traceback(page)
    ui.shot("2_selected")


def test_3_label_undo_redo_toolbar_and_keyboard(ui, dataset):
    folder, _ = dataset
    unit = 7
    ui.click_unit(unit)
    ui.wait_selected([unit])
    ui.wait_label(unit, "good")
    ui.button("MUA").click()
    ui.wait_label(unit, "mua")
    ui.status(rf"labelled {unit} mua")
    assert done_ops(folder) == [("label", ((unit,), "mua"))]
    ui.press("n")  # the keyboard shortcut for noise
    ui.wait_label(unit, "noise")
    assert done_ops(folder)[-1] == ("label", ((unit,), "noise"))
    ui.button("↶ Undo").click()
    ui.wait_label(unit, "mua")
    ui.press("Control+z")
    ui.wait_label(unit, "good")
    ui.status(r"undid: labelled 7 mua")
    assert done_ops(folder) == []
    ui.press("Control+Shift+z")
    ui.wait_label(unit, "mua")
    assert done_ops(folder) == [("label", ((unit,), "mua"))]
    # the other units kept their labels
    assert ui.cell(6, "label").inner_text().strip() == "good"
    # "?" shows the shortcut help, and hides it again
    help_card = ui.page.locator(".spikeviz-help-card")
    ui.press("?")
    poll(help_card.is_visible, 30, what="the help panel shows")
    ui.shot("3_help")
    ui.press("?")
    poll(lambda: not help_card.is_visible(), 30, what="the help panel hides")
    assert_no_traceback(ui.page)
    ui.shot("3_labelled")


def test_4_merge_undo_redo(ui, dataset):
    folder, truth = dataset
    a, b = truth["split"][0]["cluster_ids"]
    total = ui.spikes_of(a) + ui.spikes_of(b)
    ui.click_unit(a)
    ui.wait_selected([a])
    ui.click_unit(b, add=True)
    ui.wait_selected([a, b])
    merge = ui.button("Merge")
    poll(merge.is_enabled, ACTION_TIMEOUT_S, what="Merge is enabled with two units selected")
    merge.click()
    ui.wait_rows(NUM_UNITS - 1)
    match = ui.status(rf"merged {a}\+{b} → (\d+)")
    new = int(match.group(1))
    assert new not in range(NUM_UNITS)
    ui.wait_selected([new])
    assert set(ui.table_ids()) == (set(range(NUM_UNITS)) - {a, b}) | {new}
    assert ui.spikes_of(new) == total
    assert done_ops(folder)[-1] == ("merge", ((a, b), new))
    wait_text(ui.page, rf"Units {new} · \d+ channels", ACTION_TIMEOUT_S)
    ui.shot("4_merged")

    ui.press("Control+z")
    ui.wait_rows(NUM_UNITS)
    ui.wait_selected([a, b])
    assert done_ops(folder)[-1][0] == "label"
    ui.button("↷ Redo").click()
    ui.wait_rows(NUM_UNITS - 1)
    ui.wait_selected([new])
    assert done_ops(folder)[-1] == ("merge", ((a, b), new))
    assert_no_traceback(ui.page)
    ui.state.update(merged=new, merged_spikes=total, parts=(a, b))


def _centre_canvas(ui):
    """The biggest visible canvas between the unit table and the correlograms (the plot of
    the centre tab)."""
    page = ui.page
    left = page.locator(TABLE).bounding_box()
    right = page.locator(".spikeviz-correlograms-info").bounding_box()
    x0, x1 = left["x"] + left["width"], right["x"]
    best, area = None, 0
    for canvas in page.locator("canvas").all():
        if not canvas.is_visible():
            continue
        box = canvas.bounding_box()
        if box is None or not (x0 - 5 <= box["x"] and box["x"] + box["width"] <= x1 + 5):
            continue
        if box["width"] * box["height"] > area:
            best, area = box, box["width"] * box["height"]
    assert best is not None, "no plot canvas in the centre column"
    return best


def test_5_split_by_lasso(ui, dataset):
    folder, _ = dataset
    page = ui.page
    if "merged" not in ui.state:
        pytest.skip("needs the merge of test_4")
    unit, total = ui.state["merged"], ui.state["merged_spikes"]
    ui.wait_selected([unit])
    ui.tab("Amplitudes").click()
    wait_text(page, rf"0 spikes selected of {total:,}\b", ACTION_TIMEOUT_S)
    assert ui.button("Split").is_disabled()
    page.wait_for_timeout(500)  # settle: the plot's ranges arrive after its first render
    box = _centre_canvas(ui)
    # a lasso (the plot's active drag tool) around the first ~third of the session, every
    # amplitude: some of the spikes, not all
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    corners = [(0.2, 0.12), (0.5, 0.12), (0.5, 0.92), (0.2, 0.92)]
    points = [(x + fx * w, y + fy * h) for fx, fy in corners]
    page.mouse.move(*points[0])
    page.mouse.down()
    for px, py in [*points[1:], points[0]]:
        page.mouse.move(px, py, steps=12)
    page.mouse.up()
    match = wait_text(page, rf"([1-9][\d,]*) spikes selected of {total:,}\b",
                      ACTION_TIMEOUT_S)
    picked = int(match.group(1).replace(",", ""))
    assert 0 < picked < total
    ui.shot("5_lasso")
    split = ui.button("Split")
    poll(split.is_enabled, ACTION_TIMEOUT_S, what="Split is enabled after the lasso")
    before = set(ui.table_ids())
    split.click()
    ui.wait_rows(NUM_UNITS)
    ui.status(rf"split {unit} → ")
    parts = sorted(set(ui.table_ids()) - before)
    assert len(parts) == 2 and not set(parts) & (set(range(NUM_UNITS)) | {unit}), parts
    ui.wait_selected(parts)
    counts = {u: ui.spikes_of(u) for u in parts}
    assert sorted(counts.values()) == sorted([picked, total - picked]), counts
    first = next(u for u in parts if counts[u] == picked)  # the lassoed spikes
    second = next(u for u in parts if u != first)
    assert unit not in ui.table_ids()
    assert done_ops(folder)[-1] == ("split", (unit, tuple(parts)))
    ui.shot("5_split")

    ui.press("Control+z")
    ui.wait_rows(NUM_UNITS - 1)
    ui.wait_selected([unit])
    assert done_ops(folder)[-1][0] == "merge"
    ui.press("Control+Shift+z")
    ui.wait_rows(NUM_UNITS)
    ui.wait_selected([first, second])
    assert done_ops(folder)[-1] == ("split", (unit, tuple(parts)))
    assert_no_traceback(page)
    ui.state.update(split=(first, second), picked=picked)


def _expected_ids(ui) -> set:
    a, b = ui.state["parts"]
    return (set(range(NUM_UNITS)) - {a, b}) | set(ui.state["split"])


def _show_export_result(ui) -> None:
    """Scroll the export panel's result line into view (for the screenshot)."""
    written = ui.page.get_by_text(re.compile(r"Written to")).last
    try:
        written.scroll_into_view_if_needed(timeout=5000)
    except Exception:  # only the screenshot is worse
        pass


def test_6_export_curation_json_and_hdf5(ui, dataset):
    folder, _ = dataset
    page = ui.page
    if "split" not in ui.state:
        pytest.skip("needs the merge and split of test_4 and test_5")
    ui.tab("Export").click()
    ui.tab("Curation").click()
    ui.button("Export curation JSON").click()
    match = wait_text(page, r"Written to (\S+\.json)\b", EXPORT_TIMEOUT_S)
    json_path = Path(match.group(1))
    wait_text(page, r"✅ Done", 10)
    assert json_path.is_file(), json_path
    document = json.loads(json_path.read_text())
    steps = document if isinstance(document, list) else [document]
    from spikeinterface.curation import apply_curation, validate_curation_dict

    for step in steps:
        validate_curation_dict(step)
    _show_export_result(ui)
    ui.shot("6_export_json")

    # the steps turn the original sorting into the curated units
    import spikeinterface.core as si

    times = np.load(folder / "spike_times.npy").ravel().astype(np.int64)
    clusters = np.load(folder / "spike_clusters.npy").ravel().astype(np.int64)
    original = si.NumpySorting.from_samples_and_labels([times], [clusters], 30000.0)
    curated = apply_curation(original, document)
    assert curated.get_num_units() == NUM_UNITS
    counts = sorted(curated.count_num_spikes_per_unit().values())
    assert counts == sorted(ui.spikes_of(u) for u in ui.table_ids())

    ui.tab("HDF5").click()
    ui.button("Export HDF5").click()
    match = wait_text(page, r"Written to (\S+\.h5)\b", EXPORT_TIMEOUT_S)
    h5_path = Path(match.group(1))
    assert h5_path.is_file(), h5_path
    import spikeviz

    exported = spikeviz.load(h5_path).sorting
    expected = _expected_ids(ui)
    assert set(exported.unit_ids.tolist()) == expected
    for unit in expected:
        assert exported.spike_indices(unit).size == ui.spikes_of(unit), unit
    assert_no_traceback(page)
    _show_export_result(ui)
    ui.shot("6_export_hdf5")


def test_7_no_console_errors(ui):
    assert_no_traceback(ui.page)
    host = urlparse(ui.server.url).hostname
    bad = [(ui.messages.where(m), *m) for m in unexpected_messages(ui.messages, host)]
    assert not bad, f"browser errors (step, kind, text, url): {bad}\n{ui.server.logs()}"
    log = ui.server.stderr.read_text(errors="replace")
    assert "Traceback" not in log, ui.server.logs()


def test_8_kill_and_reopen_resumes_the_curation(ui, dataset):
    folder, _ = dataset
    if "split" not in ui.state:
        pytest.skip("needs the merge and split of test_4 and test_5")
    shown = {u: (ui.cell(u, "label").inner_text().strip(), ui.spikes_of(u))
             for u in ui.table_ids()}
    ui.server.proc.kill()  # SIGKILL: no chance to flush anything
    ui.server.proc.wait(timeout=30)
    page_text(ui.page)  # the page is still there (no assertion on its state)
    import spikeviz

    curation = spikeviz.load(folder).curation
    try:
        sorting = curation.sorting
        assert set(sorting.unit_ids.tolist()) == set(shown) == _expected_ids(ui)
        labels = curation.labels  # indexed by unit id
        for unit, (label, spikes) in shown.items():
            assert labels[unit] == label, unit
            assert sorting.spike_indices(unit).size == spikes, unit
        assert labels[7] == "mua"
    finally:
        curation.close()
