"""The curation dashboard as the browser tests see it: the unit table, the toolbar, the status
line, tabs, the lasso, the export panel, and the curation log the server writes.

Elements are found by visible text, roles, Tabulator classes and the ``spikeviz-*`` classes the
app puts on its panes, never by pixel positions (the layout changes); the lasso is drawn inside
the biggest visible canvas of the centre column (between the unit table and the right column).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
from browser import blur, page_text, poll, screenshot, wait_text

TABLE = ".spikeviz-unit-table"
ACTION_TIMEOUT_S = 90  # one curation action and the redraw of the shown views, 2 slow cores
EXPORT_TIMEOUT_S = 300


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

    def select(self, *units) -> None:
        """Click the first unit, Ctrl-click the others; wait until the table shows them and
        the server has them (Tabulator marks a row before the server hears of it, and a key
        pressed in between would act on the old selection): one unit, the similar-units view
        names it; several, Merge is enabled."""
        for i, unit in enumerate(units):
            self.click_unit(unit, add=i > 0)
            self.wait_selected(units[:i + 1])
        if len(units) == 1:
            wait_text(self.page, rf"Similar to unit {units[0]}\b", ACTION_TIMEOUT_S)
        else:
            poll(self.button("Merge").is_enabled, ACTION_TIMEOUT_S,
                 what=f"Merge is enabled with {units} selected")

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

    def label_of(self, unit) -> str:
        return self.cell(unit, "label").inner_text().strip()

    def tags_of(self, unit) -> set[str]:
        text = self.cell(unit, "tags").inner_text()
        return {t.strip() for t in text.split(",") if t.strip()}

    def spikes_of(self, unit) -> int:
        return int(self.cell(unit, "num_spikes").inner_text().replace(",", ""))

    def shown_units(self) -> dict:
        """{unit id: (label, spike count)} of every row of the table."""
        return {u: (self.label_of(u), self.spikes_of(u)) for u in self.table_ids()}

    # toolbar, keys, tabs
    def button(self, name: str):
        return self.page.get_by_role("button", name=name, exact=True)

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)

    def tab(self, title: str):
        return self.page.locator(".bk-tab").filter(has_text=re.compile(rf"^\s*{title}\s*$"))

    def status(self, pattern: str):
        """Wait until the page text matches ``pattern`` (the status line or anywhere)."""
        return wait_text(self.page, pattern, ACTION_TIMEOUT_S)

    def status_line(self, pattern: str) -> re.Match:
        """Wait until the toolbar's status line (only it) matches ``pattern``."""
        line = self.page.locator(".spikeviz-status")

        def match():
            return re.search(pattern, " ".join(line.all_inner_texts()))

        poll(match, ACTION_TIMEOUT_S,
             what=f"the status line matches {pattern!r} (now {line.all_inner_texts()})")
        return match()

    def shot(self, name: str, full_page: bool = False) -> Path:
        return screenshot(self.page, f"curation_{name}", full_page=full_page)


# -- the curation log on disk ------------------------------------------------------------------
def curation_log(folder: Path) -> dict:
    """The curation log the server writes (where ``Session.curation_log_path`` says)."""
    import spikeviz

    path = spikeviz.load(folder).curation_log_path()
    assert path is not None and path.is_file(), f"no curation log at {path}"
    return json.loads(path.read_text())


def done_ops(folder: Path) -> list[tuple]:
    """(op, detail) of the actions in effect (up to the log's position)."""
    doc = curation_log(folder)
    details = {"label": lambda a: (tuple(a["unit_ids"]), a["label"]),
               "tag": lambda a: (tuple(a["unit_ids"]), tuple(sorted(a["tags"]))),
               "merge": lambda a: (tuple(sorted(a["unit_ids"])), a["new_unit_id"]),
               "split": lambda a: (a["unit_id"], tuple(sorted(a["new_unit_ids"]))),
               "remove": lambda a: tuple(sorted(a["unit_ids"]))}
    return [(a["op"], details.get(a["op"], lambda a: None)(a))
            for a in doc["actions"][:doc["position"]]]


# -- pixels and plots --------------------------------------------------------------------------
def _png(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def drawn_pixels(png: bytes) -> int:
    """Coloured (not grey, not white) pixels: bars and shading, not axes or text."""
    rgb = _png(png)
    return int(np.count_nonzero(rgb.max(axis=-1) - rgb.min(axis=-1) > 60))


def correlograms(ui):
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


def centre_canvas(ui) -> dict:
    """The bounding box of the biggest visible canvas between the unit table and the
    correlograms (the plot of the centre tab)."""
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


def lasso_amplitudes(ui, total: int) -> int:
    """Show the Amplitudes tab (one unit of ``total`` spikes selected), draw a lasso around
    the first ~third of the session at every amplitude; the number of spikes it selected
    (some, not all)."""
    page = ui.page
    ui.tab("Amplitudes").click()
    wait_text(page, rf"\b0 spikes selected of {total:,}\b", ACTION_TIMEOUT_S)
    page.wait_for_timeout(500)  # settle: the plot's ranges arrive after its first render
    box = centre_canvas(ui)
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
    assert 0 < picked < total, (picked, total)
    return picked


# -- the export panel --------------------------------------------------------------------------
def _written(page) -> list[str]:
    return re.findall(r"Written to (\S+)", page_text(page))


def open_export(ui, kind_tab: str) -> None:
    """The right column's Export tab, then its ``kind_tab`` (NWB, HDF5, Phy, Curation...)."""
    ui.tab("Export").click()
    ui.tab(kind_tab).click()


def export(ui, kind_tab: str, button: str, timeout_s: float = EXPORT_TIMEOUT_S,
           fill=None) -> Path:
    """Press ``button`` in the export panel's ``kind_tab`` (after ``fill(page)``, when given)
    and wait for the job: the path it wrote (a new one: earlier results' text stays in the
    page). A failed job fails the test with the panel's message."""
    page = ui.page
    open_export(ui, kind_tab)
    if fill is not None:
        fill(page)
    before = set(_written(page))
    blur(page)
    ui.button(button).click()

    def finished():
        text = page_text(page)
        failed = re.search(r"(Export failed[^\n]{0,400}|Not started:[^\n]{0,300})", text)
        if failed:
            return f"failed: {failed.group(1)}"
        new = [w for w in _written(page) if w not in before]
        return new[-1] if new and "Done:" in text else None

    outcome = poll(finished, timeout_s, interval_s=0.5, what=f"{button} finishes")
    assert not outcome.startswith("failed: "), f"{button}: {outcome}"
    path = Path(outcome.strip("`'\"()"))
    assert path.exists(), path
    try:  # the result line in view, for the screenshot
        page.get_by_text(re.compile(r"Written to")).last.scroll_into_view_if_needed(
            timeout=5000)
    except Exception:  # only the screenshot is worse
        pass
    return path


def fill_nwb_form(page, subject: dict, start, zone: str, location: str,
                  description: str) -> None:
    """Fill the export panel's NWB form as a person would (fields found by their
    placeholders and options): ``subject`` has subject_id, species, sex (M/F/U/O), age;
    ``start`` a naive datetime picked in the calendar, ``zone`` chosen from the timezone
    completions; ``location`` is the brain area of the electrodes."""
    page.get_by_placeholder("e.g. m42").fill(subject["subject_id"])
    species = page.get_by_placeholder("Latin binomial, e.g. Mus musculus")
    species.fill(subject["species"])
    species.press("Enter")
    sexes = {"F": "F (female)", "M": "M (male)", "U": "U (unknown)", "O": "O (other)"}
    page.locator("select").filter(has=page.locator("option", has_text="M (male)")) \
        .select_option(label=sexes[subject["sex"]])
    page.get_by_placeholder("e.g. P90D, P12W, P90D/P120D").fill(subject["age"])
    page.get_by_placeholder("What was recorded").fill(description)
    page.get_by_placeholder("Allen CCF acronym for mice, e.g. VISp").fill(location)
    timezone = page.get_by_placeholder("e.g. Europe/Paris")
    timezone.click()
    timezone.press_sequentially(zone, delay=20)
    page.locator(".bk-menu div, .bk-menu li").filter(
        has_text=re.compile(rf"^\s*{re.escape(zone)}\s*$")).first.click()
    # the start: the picker takes no typed text (read-only input): its calendar
    picker = page.locator("input.flatpickr-input").first
    picker.click()
    calendar = page.locator(".flatpickr-calendar.open")
    year = calendar.locator("input.cur-year")  # flatpickr reads the year on key-up
    year.select_text()
    year.press_sequentially(str(start.year), delay=30)
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
