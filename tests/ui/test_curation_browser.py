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
7. the keys of the loop: Shift+M merges the two parts back, a lasso and "k" split the merged
   unit, Delete removes a unit;
8. tags typed in the tag box (the letters typed there are not shortcuts) and the Tag button:
   in the table's tags column; the Remove button: the row goes, Undo brings it back (8b: the
   Undo button right after Remove, an expected failure while Remove's tooltip covers it);
9. export of the curation JSON again (the tags are in it, SpikeInterface applies them) and of
   a Phy folder: phylib's ``load_model`` (TemplateModel) and ``spikeviz.load`` open it with the
   curated cluster ids, spike trains (checked against the original folder's spike times) and
   labels (``cluster_group.tsv``);
10. export of NWB with the metadata form filled in: no CRITICAL nwbinspector message, pynwb
    reads the units (ids, spike counts, ``quality`` labels) and the subject and start time;
11. no console error (except web fonts the offline machine cannot fetch), no page error;
12. the curation log on disk follows every step; after kill -9, reopening the folder gives the
    same curated units and labels.

Screenshots of each step are saved to test-artifacts/curation_*.png.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from urllib.parse import urlparse

import pytest
from browser import (
    Messages,
    assert_no_traceback,
    blur,
    launch_chromium,
    open_page,
    page_text,
    poll,
    require_browser,
    start_server,
    unexpected_messages,
    wait_text,
)
from curation_ui import (
    ACTION_TIMEOUT_S,
    UI,
    correlograms,
    done_ops,
    drawn_pixels,
    export,
    fill_nwb_form,
    lasso_amplitudes,
)
from export_checks import check_curation_json, check_nwb_file, check_phy_folder

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the tests skip (require_browser)
    PlaywrightTimeout = Exception

pytestmark = pytest.mark.ui

NUM_UNITS = 10
SAMPLING_FREQUENCY_HZ = 30000.0
TAGS = ("burst", "check later")
LOCATION = "VISp"  # brain area of the electrodes (Allen CCF acronym)


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
        browser = launch_chromium(p)
        try:
            messages = Messages()
            page = open_page(browser, server.url, messages, viewport=(1600, 1000),
                             action_timeout_s=ACTION_TIMEOUT_S)
            yield UI(page, messages, server)
        finally:
            browser.close()


def expected_ids(ui) -> set:
    """The unit ids the story's actions leave (kept by the tests, not read from the table)."""
    return set(ui.state["ids"])


def original_unit(ui, avoid=()) -> int:
    """The smallest original unit id in the table, other than unit 7 (labelled mua) and
    ``avoid``."""
    ids = ui.table_ids()
    return min(u for u in ids if u < NUM_UNITS and u != 7 and u not in avoid)


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
    assert not correlograms(ui).is_visible()  # no unit selected: no correlogram grid
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
    poll(lambda: correlograms(ui).is_visible(), ACTION_TIMEOUT_S,
         what="the correlogram grid shows")
    poll(lambda: drawn_pixels(correlograms(ui).screenshot()) > 300, ACTION_TIMEOUT_S,
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


def test_5_split_by_lasso(ui, dataset):
    folder, _ = dataset
    page = ui.page
    if "merged" not in ui.state:
        pytest.skip("needs the merge of test_4")
    unit, total = ui.state["merged"], ui.state["merged_spikes"]
    ui.wait_selected([unit])
    ui.tab("Amplitudes").click()
    wait_text(page, rf"\b0 spikes selected of {total:,}\b", ACTION_TIMEOUT_S)
    assert ui.button("Split").is_disabled()
    # a lasso (the plot's active drag tool) around the first ~third of the session, every
    # amplitude: some of the spikes, not all
    picked = lasso_amplitudes(ui, total)
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
    ui.state.update(split=(first, second), picked=picked,
                    ids=(set(range(NUM_UNITS)) - set(ui.state["parts"])) | {first, second})


def test_6_export_curation_json_and_hdf5(ui, dataset):
    folder, _ = dataset
    page = ui.page
    if "split" not in ui.state:
        pytest.skip("needs the merge and split of test_4 and test_5")
    json_path = export(ui, "Curation", "Export curation JSON")
    assert json_path.suffix == ".json", json_path
    ui.shot("6_export_json")
    # the steps turn the original sorting into the curated units
    check_curation_json(json.loads(json_path.read_text()), folder, SAMPLING_FREQUENCY_HZ,
                        ui.shown_units())

    h5_path = export(ui, "HDF5", "Export HDF5")
    assert h5_path.suffix == ".h5", h5_path
    import spikeviz

    exported = spikeviz.load(h5_path).sorting
    expected = expected_ids(ui)
    assert set(exported.unit_ids.tolist()) == expected
    for unit in expected:
        assert exported.spike_indices(unit).size == ui.spikes_of(unit), unit
    assert_no_traceback(page)
    ui.shot("6_export_hdf5")


def test_7_keys_merge_split_remove(ui, dataset):
    """Shift+M, a lasso then "k", Delete: the keyboard's merge, split and remove."""
    folder, _ = dataset
    page = ui.page
    ids = ui.table_ids()
    ui.state.setdefault("ids", set(ids))
    a, b = ui.state.get("split") or [u for u in ids if u != 7][:2]
    total = ui.spikes_of(a) + ui.spikes_of(b)
    ui.select(a, b)
    blur(page)
    ui.press("Shift+M")
    ui.wait_rows(len(ids) - 1)
    merged = int(ui.status_line(rf"merged (?:{a}\+{b}|{b}\+{a}) → (\d+)").group(1))
    ui.wait_selected([merged])
    assert merged not in ids and a not in ui.table_ids() and b not in ui.table_ids()
    assert ui.spikes_of(merged) == total
    assert done_ops(folder)[-1] == ("merge", (tuple(sorted((a, b))), merged))
    ui.shot("7_merged_by_key")

    # the lassoed spikes of test_5 are still selected (a merge keeps the spike selection);
    # Esc clears it, then a new lasso
    ui.tab("Amplitudes").click()
    blur(page)
    ui.press("Escape")
    wait_text(page, rf"\b0 spikes selected of {total:,}\b", ACTION_TIMEOUT_S)
    picked = lasso_amplitudes(ui, total)
    before = set(ui.table_ids())
    ui.press("k")
    ui.wait_rows(len(ids))
    ui.status_line(rf"split {merged} → ")
    parts = sorted(set(ui.table_ids()) - before)
    assert len(parts) == 2 and merged not in ui.table_ids(), parts
    ui.wait_selected(parts)
    counts = sorted(ui.spikes_of(u) for u in parts)
    assert counts == sorted([picked, total - picked]), counts
    assert done_ops(folder)[-1] == ("split", (merged, tuple(parts)))
    ui.shot("7_split_by_key")

    removed = original_unit(ui)
    label, spikes = ui.label_of(removed), ui.spikes_of(removed)
    ui.select(removed)
    blur(page)
    ui.press("Delete")
    ui.wait_rows(len(ids) - 1)
    ui.status_line(rf"removed {removed}\b")
    assert removed not in ui.table_ids()
    ui.wait_selected([])
    assert done_ops(folder)[-1] == ("remove", (removed,))
    assert_no_traceback(page)
    ui.state["ids"] = (ui.state["ids"] - {a, b, removed}) | set(parts)
    assert set(ui.table_ids()) == expected_ids(ui)
    ui.state.update(parts2=tuple(parts), removed=(removed, label, spikes),
                    origins=(*ui.state.get("parts", (a, b)),))
    ui.shot("7_removed_by_key")


def test_8_tags(ui, dataset):
    folder, _ = dataset
    page = ui.page
    ui.state.setdefault("ids", set(ui.table_ids()))
    unit = original_unit(ui)
    label = ui.label_of(unit)
    ui.select(unit)
    tag_box = page.get_by_placeholder("tags, comma-separated")
    tag = ui.button("Tag")
    assert tag.is_disabled()  # nothing typed yet
    actions = len(done_ops(folder))
    # typed into the box, "u", "k"... are letters of a tag, not the shortcuts (unsorted, split)
    tag_box.click()
    tag_box.press_sequentially(", ".join(TAGS), delay=30)
    poll(tag.is_enabled, ACTION_TIMEOUT_S, what="Tag is enabled once a tag is typed")
    assert len(done_ops(folder)) == actions, done_ops(folder)[actions:]
    assert ui.label_of(unit) == label
    tag.click()
    ui.status_line(rf"tagged {unit} {re.escape(', '.join(sorted(TAGS)))}")
    poll(lambda: ui.tags_of(unit) == set(TAGS), ACTION_TIMEOUT_S,
         what=f"the tags column of unit {unit} shows {TAGS} (now {ui.tags_of(unit)})")
    assert done_ops(folder)[-1] == ("tag", ((unit,), tuple(sorted(TAGS))))
    poll(lambda: tag_box.input_value() == "", 30, what="the tag box is emptied")
    assert ui.label_of(unit) == label
    ui.wait_selected([unit])
    ui.shot("8_tagged")

    ui.state["tagged"] = unit


def test_8a_remove_button(ui, dataset):
    """The Remove button: the row goes."""
    folder, _ = dataset
    ui.state.setdefault("ids", set(ui.table_ids()))
    gone = original_unit(ui, avoid=(ui.state.get("tagged"),))
    shown = (ui.label_of(gone), ui.spikes_of(gone))
    rows = len(ui.table_ids())
    ui.select(gone)
    remove = ui.button("Remove")
    remove.hover()  # as a person reaches for it: its tooltip shows first
    tooltip = ui.page.locator(".bk-Tooltip").filter(has_text="Remove the selected units")
    poll(tooltip.is_visible, 30, what="Remove's tooltip shows on hover")
    remove.click()
    ui.wait_rows(rows - 1)
    assert gone not in ui.table_ids()
    ui.status_line(rf"removed {gone}\b")
    assert done_ops(folder)[-1] == ("remove", (gone,))
    ui.shot("8_removed_button")
    ui.state["removed_by_button"] = (gone, shown, rows)


def test_8b_undo_button_after_remove(ui):
    """Undo, clicked right after Remove, as a person would. (Remove turns disabled under the
    pointer; its tooltip used to stay shown over the Undo button and catch the click: a
    disabled button has no tooltip now, so the click must work and no tooltip is left.)"""
    if "removed_by_button" not in ui.state:
        pytest.skip("needs the removal of test_8a")
    assert not ui.page.locator(".bk-Tooltip").filter(has_text="select units first").count()
    ui.button("↶ Undo").click(timeout=15_000)
    ui.state["undone_by_button"] = True


def test_8c_undo_brings_the_removed_unit_back(ui, dataset):
    """Undo (the button, or Ctrl+Z where test_8b could not click it) brings the unit back,
    selected, with its label and spikes."""
    folder, _ = dataset
    if "removed_by_button" not in ui.state:
        pytest.skip("needs the removal of test_8a")
    gone, shown, rows = ui.state["removed_by_button"]
    if not ui.state.get("undone_by_button"):
        blur(ui.page)
        ui.press("Control+z")
    ui.wait_rows(rows)
    ui.status_line(rf"undid: removed {gone}\b")
    ui.wait_selected([gone])
    assert (ui.label_of(gone), ui.spikes_of(gone)) == shown
    tagged = ui.state.get("tagged")
    if tagged is not None:
        assert done_ops(folder)[-1] == ("tag", ((tagged,), tuple(sorted(TAGS))))
        assert ui.tags_of(tagged) == set(TAGS)
    assert set(ui.table_ids()) == expected_ids(ui)
    assert_no_traceback(ui.page)


def test_9_export_curation_json_with_tags_and_phy_folder(ui, dataset):
    folder, _ = dataset
    if "tagged" not in ui.state:
        pytest.skip("needs the tags of test_8")
    tagged = ui.state["tagged"]
    shown = ui.shown_units()
    assert set(shown) == expected_ids(ui)

    # the curation JSON carries the tags; SpikeInterface turns them into unit properties
    json_path = export(ui, "Curation", "Export curation JSON")
    check_curation_json(json.loads(json_path.read_text()), folder, SAMPLING_FREQUENCY_HZ,
                        shown, tags={tagged: TAGS})
    ui.shot("9_export_json_tags")

    phy = export(ui, "Phy", "Export Phy folder")
    assert phy.with_name(phy.name + ".zip").is_file()  # the download
    ui.shot("9_export_phy")
    # the parts of the twice-split pair hold exactly the spikes of the two original clusters
    check_phy_folder(phy, folder, SAMPLING_FREQUENCY_HZ, shown, NUM_UNITS,
                     origins=ui.state.get("origins", ()))
    assert_no_traceback(ui.page)


def test_10_export_nwb(ui, dataset):
    folder, _ = dataset
    shown = ui.shown_units()
    subject = {"subject_id": "m42", "species": "Mus musculus", "sex": "M", "age": "P90D"}
    start, zone = dt.datetime(2024, 5, 1, 10, 30, 0), "Europe/Paris"
    path = export(ui, "NWB", "Export NWB", fill=lambda page: fill_nwb_form(
        page, subject, start, zone, LOCATION, "spikeviz browser test session"))
    assert path.suffix == ".nwb", path
    ui.shot("10_export_nwb")
    text = page_text(ui.page)
    assert "DANDI requires them" not in text, text[-2000:]
    assert "is unknown" not in text, text[-2000:]  # the electrodes' location was given
    ui.state["nwbinspector"] = check_nwb_file(
        path, folder, SAMPLING_FREQUENCY_HZ, shown, NUM_UNITS, subject,
        start.replace(tzinfo=zoneinfo.ZoneInfo(zone)), LOCATION)
    assert_no_traceback(ui.page)


def test_11_no_console_errors(ui):
    assert_no_traceback(ui.page)
    host = urlparse(ui.server.url).hostname
    bad = [(ui.messages.where(m), *m) for m in unexpected_messages(ui.messages, host)]
    assert not bad, f"browser errors (step, kind, text, url): {bad}\n{ui.server.logs()}"
    log = ui.server.stderr.read_text(errors="replace")
    assert "Traceback" not in log, ui.server.logs()


def test_12_kill_and_reopen_resumes_the_curation(ui, dataset):
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
        assert set(sorting.unit_ids.tolist()) == set(shown) == expected_ids(ui)
        labels = curation.labels  # indexed by unit id
        for unit, (label, spikes) in shown.items():
            assert labels[unit] == label, unit
            assert sorting.spike_indices(unit).size == spikes, unit
        assert labels[7] == "mua"
    finally:
        curation.close()
