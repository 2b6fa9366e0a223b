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
   in the table's tags column; the Remove button: the row goes, Undo brings it back;
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

import csv
import datetime as dt
import json
import re
import zoneinfo
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
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
    lasso_amplitudes,
)

pytestmark = pytest.mark.ui

NUM_UNITS = 10
SAMPLING_FREQUENCY_HZ = 30000.0
TAGS = ("burst", "check later")


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


def original_trains(folder: Path) -> dict[int, np.ndarray]:
    """Spike sample indices of every cluster of the original Phy folder, read with numpy."""
    times = np.load(folder / "spike_times.npy").ravel().astype(np.int64)
    clusters = np.load(folder / "spike_clusters.npy").ravel().astype(np.int64)
    return {int(c): np.sort(times[clusters == c]) for c in np.unique(clusters)}


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
    document = json.loads(json_path.read_text())
    steps = document if isinstance(document, list) else [document]
    from spikeinterface.curation import apply_curation, validate_curation_dict

    for step in steps:
        validate_curation_dict(step)
    ui.shot("6_export_json")

    # the steps turn the original sorting into the curated units
    import spikeinterface.core as si

    times = np.load(folder / "spike_times.npy").ravel().astype(np.int64)
    clusters = np.load(folder / "spike_clusters.npy").ravel().astype(np.int64)
    original = si.NumpySorting.from_samples_and_labels([times], [clusters],
                                                       SAMPLING_FREQUENCY_HZ)
    curated = apply_curation(original, document)
    assert curated.get_num_units() == NUM_UNITS
    counts = sorted(curated.count_num_spikes_per_unit().values())
    assert counts == sorted(ui.spikes_of(u) for u in ui.table_ids())

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


def test_8_tags_and_remove_button(ui, dataset):
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

    # the Remove button: the row goes; Undo brings it back, selected, as it was
    gone = original_unit(ui, avoid=(unit,))
    shown = (ui.label_of(gone), ui.spikes_of(gone))
    rows = len(ui.table_ids())
    ui.select(gone)
    ui.button("Remove").click()
    ui.wait_rows(rows - 1)
    assert gone not in ui.table_ids()
    ui.status_line(rf"removed {gone}\b")
    assert done_ops(folder)[-1] == ("remove", (gone,))
    ui.shot("8_removed_button")
    ui.button("↶ Undo").click()
    ui.wait_rows(rows)
    ui.status_line(rf"undid: removed {gone}\b")
    ui.wait_selected([gone])
    assert (ui.label_of(gone), ui.spikes_of(gone)) == shown
    assert done_ops(folder)[-1] == ("tag", ((unit,), tuple(sorted(TAGS))))
    assert set(ui.table_ids()) == expected_ids(ui)
    assert ui.tags_of(unit) == set(TAGS)
    assert_no_traceback(page)
    ui.state["tagged"] = unit


def _tsv(path: Path) -> dict:
    """{cluster id: value} of a two-column Phy table (``cluster_id<TAB>name``)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows and rows[0][0] == "cluster_id", rows[:1]
    return {int(r[0]): r[1] for r in rows[1:]}


def test_9_export_curation_json_with_tags_and_phy_folder(ui, dataset):
    folder, _ = dataset
    if "tagged" not in ui.state:
        pytest.skip("needs the tags of test_8")
    tagged = ui.state["tagged"]
    shown = ui.shown_units()
    assert set(shown) == expected_ids(ui)

    # the curation JSON carries the tags; SpikeInterface turns them into unit properties
    json_path = export(ui, "Curation", "Export curation JSON")
    document = json.loads(json_path.read_text())
    steps = document if isinstance(document, list) else [document]
    from spikeinterface.curation import apply_curation, validate_curation_dict

    for step in steps:
        validate_curation_dict(step)
    listed = [set(entry["labels"].get("tags", [])) for step in steps
              for entry in step.get("manual_labels", []) if entry["unit_id"] == tagged]
    assert set(TAGS) in listed, steps[-1].get("manual_labels")
    import spikeinterface.core as si

    trains = original_trains(folder)
    samples = np.concatenate(list(trains.values()))
    labels = np.concatenate([np.full(t.size, c) for c, t in trains.items()])
    original = si.NumpySorting.from_samples_and_labels([samples], [labels],
                                                       SAMPLING_FREQUENCY_HZ)
    curated = apply_curation(original, document)
    assert sorted(curated.count_num_spikes_per_unit().values()) == \
        sorted(spikes for _, spikes in shown.values())
    si_ids = list(curated.unit_ids)
    for tag in TAGS:
        flags = dict(zip(si_ids, curated.get_property(tag), strict=True))
        assert flags[tagged] and sum(bool(v) for v in flags.values()) == 1, (tag, flags)
    ui.shot("9_export_json_tags")

    # the Phy folder
    phy = export(ui, "Phy", "Export Phy folder")
    assert phy.is_dir() and (phy / "params.py").is_file(), phy
    assert phy.with_name(phy.name + ".zip").is_file()
    ui.shot("9_export_phy")
    groups = _tsv(phy / "cluster_group.tsv")
    assert set(groups) <= set(shown)
    for unit, (label, _) in shown.items():
        assert groups.get(unit, "unsorted") == label, (unit, groups.get(unit), label)
    if (phy / "cluster_info.tsv").is_file():  # phy's own summary, when written
        with open(phy / "cluster_info.tsv", newline="") as f:
            info = {int(r["cluster_id"]): r for r in csv.DictReader(f, delimiter="\t")}
        for unit, (label, _) in shown.items():
            assert info[unit].get("group", label) == label, unit

    from phylib.io.model import load_model

    model = load_model(phy / "params.py")
    try:
        clusters = np.asarray(model.spike_clusters)
        spike_samples = np.asarray(model.spike_samples).astype(np.int64)
        ids, counts = np.unique(clusters, return_counts=True)
        assert dict(zip(ids.tolist(), counts.tolist(), strict=True)) == \
            {u: spikes for u, (_, spikes) in shown.items()}
        phy_groups = model.metadata.get("group", {})
        for unit, (label, _) in shown.items():
            assert phy_groups.get(unit, "unsorted") == label, unit
        assert model.sample_rate == SAMPLING_FREQUENCY_HZ
        # spike trains against the original folder's: unchanged units are identical; the
        # parts of the twice-split pair hold exactly the spikes of the two original clusters
        exported = {u: np.sort(spike_samples[clusters == u]) for u in shown}
        for unit in shown:
            if unit < NUM_UNITS:
                np.testing.assert_array_equal(exported[unit], trains[unit], err_msg=str(unit))
        new = sorted(u for u in shown if u >= NUM_UNITS)
        origins = ui.state.get("origins")
        if origins:
            np.testing.assert_array_equal(
                np.sort(np.concatenate([exported[u] for u in new])),
                np.sort(np.concatenate([trains[u] for u in origins])))
    finally:
        close = getattr(model, "close", None)
        if close is not None:
            close()

    import spikeviz

    sorting = spikeviz.load(phy).sorting
    assert set(sorting.unit_ids.tolist()) == set(shown)
    loaded_labels = sorting.labels
    for unit, (label, spikes) in shown.items():
        assert sorting.spike_indices(unit).size == spikes, unit
        assert loaded_labels[unit] == label, unit
    assert_no_traceback(ui.page)


def _fill_nwb_form(page, start: dt.datetime, zone: str) -> None:
    """Type the DANDI fields of the NWB form (found by their placeholders and options)."""
    page.get_by_placeholder("e.g. m42").fill("m42")
    species = page.get_by_placeholder("Latin binomial, e.g. Mus musculus")
    species.fill("Mus musculus")
    species.press("Enter")
    page.locator("select").filter(
        has=page.locator("option", has_text="M (male)")).select_option(label="M (male)")
    page.get_by_placeholder("e.g. P90D, P12W, P90D/P120D").fill("P90D")
    page.get_by_placeholder("What was recorded").fill("spikeviz browser test session")
    timezone = page.get_by_placeholder("e.g. Europe/Paris")
    timezone.click()
    timezone.press_sequentially(zone, delay=20)
    page.locator(".bk-menu div, .bk-menu li").filter(
        has_text=re.compile(rf"^\s*{re.escape(zone)}\s*$")).first.click()
    # the start: the picker takes no typed text (read-only input): its calendar, as a person
    picker = page.locator("input.flatpickr-input").first
    picker.click()
    calendar = page.locator(".flatpickr-calendar.open")
    calendar.locator("input.cur-year").fill(str(start.year))
    calendar.locator("select.flatpickr-monthDropdown-months").select_option(
        index=start.month - 1)
    calendar.locator(".flatpickr-day:not(.prevMonthDay):not(.nextMonthDay)").filter(
        has_text=re.compile(rf"^{start.day}$")).click()
    for name, value in (("hour", start.hour), ("minute", start.minute),
                        ("second", start.second)):
        field = calendar.locator(f"input.flatpickr-{name}")
        field.fill(f"{value:02d}")
        field.press("Tab")
    want = start.strftime("%Y-%m-%d %H:%M:%S")
    poll(lambda: picker.input_value() == want, 30,
         what=f"the session start shows {want} (now {picker.input_value()!r})")
    page.keyboard.press("Escape")  # closes the calendar (keys in a text box are not shortcuts)
    blur(page)


def test_10_export_nwb(ui, dataset):
    folder, _ = dataset
    shown = ui.shown_units()
    start, zone = dt.datetime(2024, 5, 1, 10, 30, 0), "Europe/Paris"
    path = export(ui, "NWB", "Export NWB", fill=lambda page: _fill_nwb_form(page, start, zone))
    assert path.suffix == ".nwb", path
    ui.shot("10_export_nwb")
    text = page_text(ui.page)
    assert "DANDI requires them" not in text, text[-2000:]

    from nwbinspector import Importance, inspect_nwbfile

    found = list(inspect_nwbfile(nwbfile_path=str(path)))
    critical = [m for m in found if m.importance == Importance.CRITICAL]
    assert not critical, [(m.check_function_name, m.message) for m in critical]
    ui.state["nwbinspector"] = sorted({(m.importance.name, m.check_function_name)
                                       for m in found})

    from pynwb import NWBHDF5IO

    trains = original_trains(folder)
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        assert nwb.subject.subject_id == "m42"
        assert nwb.subject.species == "Mus musculus"
        assert nwb.subject.sex == "M" and nwb.subject.age == "P90D"
        assert nwb.session_start_time == start.replace(tzinfo=zoneinfo.ZoneInfo(zone))
        units = nwb.units
        ids = [int(i) for i in units.id[:]]
        assert set(ids) == set(shown)
        quality = units["quality"][:]
        for row, unit in enumerate(ids):
            times_s = np.asarray(units["spike_times"][row])
            label, spikes = shown[unit]
            assert times_s.size == spikes, unit
            assert quality[row] == label, unit
            if unit < NUM_UNITS:  # unchanged original units: the same samples
                np.testing.assert_array_equal(
                    np.round(times_s * SAMPLING_FREQUENCY_HZ).astype(np.int64),
                    trains[unit], err_msg=str(unit))
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
