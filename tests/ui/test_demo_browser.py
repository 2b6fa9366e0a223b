"""The demo dashboard in a real browser: a server subprocess, Playwright, Debian's Chromium.

Starts the server on a free 127.0.0.1 port, waits for it, loads the page, checks the unit table
and (in its tab) the raster render, clicks a unit row and sees the raster highlight it, taps the
raster and sees the table follow; curates with the keyboard (label, undo, merge, redo) and sees
the table and the status line follow; checks that a second browser session has its own
selection but sees the shared curation, that no console error (other than web fonts the
offline machine cannot fetch) and no traceback shows up, saves test-artifacts/demo*.png, and
stops the server with SIGTERM (it must exit cleanly).
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from browser import (
    Messages,
    assert_no_traceback,
    launch_chromium,
    open_page,
    poll,
    require_browser,
    screenshot,
    start_server,
    tabulator_column,
    unexpected_messages,
)

pytestmark = pytest.mark.ui


@pytest.fixture
def server(tmp_path):
    """Exactly what `make demo` runs: `spikeviz demo` on the synthetic dataset, generated in a
    fresh data folder, with a fresh cache folder (the curation log of a demo the user runs
    at the same time is neither locked against the test nor changed by it)."""
    require_browser()
    env = {"SPIKEVIZ_DATA_DIR": str(tmp_path / "data"),
           "SPIKEVIZ_CACHE_DIR": str(tmp_path / "cache")}
    for folder in env.values():
        Path(folder).mkdir()
    srv = start_server(["demo"], tmp_path, env=env)
    try:
        yield srv
    finally:
        srv.stop()


def _pixels(png: bytes) -> np.ndarray:
    """RGB of a screenshot of the raster, without the toolbar strip at its top."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)[40:]


def _highlight_pixels(png: bytes) -> int:
    """Pixels in the raster's highlight colours (orange to dark red)."""
    rgb = _pixels(png)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(np.count_nonzero((r > 140) & (r - g > 60) & (r - b > 90)))


def _highlight_y(png: bytes) -> float:
    """Mean y (px from the top of the raster element) of the highlight-coloured pixels."""
    rgb = _pixels(png)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    ys, _ = np.nonzero((r > 140) & (r - g > 60) & (r - b > 90))
    return float(ys.mean()) + 40 if ys.size else float("nan")


def _dark_pixels(png: bytes) -> int:
    return int(np.count_nonzero(_pixels(png).max(axis=-1) < 120))


def _unit_ids(page) -> list[str]:
    """Every unit id of the table (all rows, also those Tabulator has not rendered)."""
    return tabulator_column(page.locator(".spikeviz-unit-table"), "unit_id")


def _row(rows, unit: str):
    return rows.filter(has=rows.page.locator('[tabulator-field="unit_id"]',
                                             has_text=re.compile(rf"^\s*{unit}\s*$")))


def _merged_unit(page) -> str:
    text = page.locator(".spikeviz-status").inner_text()
    return text.split("→", 1)[1].split()[0].strip()


def _curate_with_the_keyboard(page, rows, expect) -> None:
    """Label noise, undo, merge two units, undo, redo — through the keyboard only."""
    page.mouse.click(5, 5)  # focus the page, not an input
    row = rows.nth(1)
    unit = row.locator('[tabulator-field="unit_id"]').inner_text().strip()
    label = row.locator('[tabulator-field="label"]').inner_text().strip()
    row.click()
    page.keyboard.press("n")
    status = page.locator(".spikeviz-status")
    expect(status).to_contain_text(f"labelled {unit} noise", timeout=30_000)
    cell = _row(rows, unit).locator('[tabulator-field="label"]')
    expect(cell).to_have_text("noise", timeout=30_000)
    page.keyboard.press("Control+z")
    expect(status).to_contain_text(f"undid: labelled {unit} noise", timeout=30_000)
    expect(cell).to_have_text(label, timeout=30_000)

    # merge two units with Shift+M: one row fewer, the new unit selected
    before = _unit_ids(page)
    a, b = before[2], before[3]
    _row(rows, a).click()
    _row(rows, b).click(modifiers=["Control"])
    expect(page.locator(".spikeviz-selected")).to_contain_text("2 units", timeout=30_000)
    page.keyboard.press("Shift+M")
    expect(status).to_contain_text(f"merged {a}+{b} → ", timeout=30_000)
    merged = _merged_unit(page)
    # one row fewer, with the new unit (a loaded machine can take a while to patch the table;
    # the rows are read by scrolling Tabulator's virtual rows, so the read is retried too)
    after = poll(lambda: ids if len(ids := _unit_ids(page)) == len(before) - 1 and
                 merged in ids else None, 90, interval_s=0.5,
                 what=f"the table has {len(before) - 1} rows with unit {merged}")
    screenshot(page, "demo-merged")
    assert len(after) == len(before) - 1 and a not in after and b not in after, \
        f"merged {a}+{b} -> {merged}; table: {','.join(after)}"
    assert merged in after, f"{merged} not in the table: {','.join(after)}"
    expect(page.locator(".spikeviz-selected")).to_contain_text(f"Selected: unit {merged}",
                                                               timeout=30_000)
    page.keyboard.press("Control+z")
    expect(status).to_contain_text(f"undid: merged {a}+{b}", timeout=30_000)
    page.keyboard.press("Control+Shift+z")
    expect(status).to_contain_text(f"redid: merged {a}+{b} → {merged}", timeout=30_000)
    page.keyboard.press("?")
    expect(page.locator(".spikeviz-help")).to_contain_text("Keyboard shortcuts",
                                                            timeout=30_000)
    screenshot(page, "demo-curated")
    page.keyboard.press("?")


def test_demo_dashboard_in_chromium(server):
    from playwright.sync_api import expect, sync_playwright

    host = urlparse(server.url).hostname
    messages = Messages()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = open_page(browser, server.url, messages, viewport=(1600, 900),
                             timeout_s=60)

            rows = page.locator(".spikeviz-unit-table .tabulator-row")
            expect(rows.first).to_be_visible(timeout=60_000)
            page.locator(".bk-tab:text-is(\"Raster\")").click()
            raster = page.locator(".spikeviz-raster")
            expect(raster.locator("canvas").first).to_be_visible(timeout=60_000)
            info = page.locator(".spikeviz-selected")
            expect(info).to_contain_text("Selected: none", timeout=30_000)
            # the raster image has arrived (dark spike ticks), with nothing highlighted
            deadline = time.monotonic() + 30
            while _dark_pixels(raster.screenshot()) < 2000 and time.monotonic() < deadline:
                time.sleep(0.5)
            before = raster.screenshot()
            assert _dark_pixels(before) >= 2000, "the raster shows no spikes"
            assert _highlight_pixels(before) == 0
            assert rows.count() >= 5
            first_cells = rows.first.locator(".tabulator-cell")
            assert first_cells.count() >= 4

            # a click on a table row selects that unit in the raster
            row = rows.nth(3)
            unit = row.locator('[tabulator-field="unit_id"]').inner_text().strip()
            spikes = row.locator('[tabulator-field="num_spikes"]').inner_text().strip()
            assert unit and spikes.replace(",", "").isdigit()
            row.click()
            expect(info).to_contain_text(f"Selected: unit {unit}", timeout=30_000)
            expect(info).to_contain_text(f"{spikes} spike", timeout=30_000)
            deadline = time.monotonic() + 30
            while _highlight_pixels(raster.screenshot()) < 50 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _highlight_pixels(raster.screenshot()) >= 50, \
                "the selected unit's spikes are not drawn in the highlight colour"

            clicked_y = _highlight_y(raster.screenshot())

            # a tap on the raster, far from that unit's row, selects the unit of the tapped
            # row: the highlight moves there and the table follows
            box = raster.bounding_box()
            tap_y = box["height"] * (0.8 if clicked_y < box["height"] / 2 else 0.2)
            page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + tap_y)
            expect(info).not_to_contain_text(f"Selected: unit {unit} ", timeout=30_000)
            expect(info).to_contain_text("Selected: unit ", timeout=30_000)
            tapped = info.inner_text().split("Selected: unit ", 1)[1].split()[0]
            selected_row = page.locator(".spikeviz-unit-table .tabulator-row.tabulator-selected")
            expect(selected_row).to_have_count(1, timeout=30_000)
            expect(selected_row.locator('[tabulator-field="unit_id"]')).to_have_text(tapped)
            deadline = time.monotonic() + 30
            while abs(_highlight_y(raster.screenshot()) - tap_y) > 40 and \
                    time.monotonic() < deadline:
                time.sleep(0.5)
            moved_y = _highlight_y(raster.screenshot())
            assert abs(moved_y - tap_y) <= 40, \
                f"the highlight is at y={moved_y:.0f} px, not on the tapped row (y={tap_y:.0f})"

            _curate_with_the_keyboard(page, rows, expect)

            # another browser session has its own selection but the same curation
            merged = _merged_unit(page)
            messages.step = "second page"
            other = open_page(browser, server.url, messages, viewport=(1400, 850),
                              timeout_s=60)
            other_rows = other.locator(".spikeviz-unit-table .tabulator-row")
            expect(other_rows.first).to_be_visible(timeout=60_000)
            other.locator(".bk-tab:text-is(\"Raster\")").click()
            expect(other.locator(".spikeviz-selected")).to_contain_text("Selected: none",
                                                                        timeout=30_000)
            rows_before = poll(lambda: ids if merged in (ids := _unit_ids(other)) else None,
                               60, interval_s=0.5, what=f"the other page lists unit {merged}")
            # an action in one page reaches the other page's table: one row more, without
            # the merged unit (typed in the first page, brought to the front as a person
            # switches back to its tab)
            page.bring_to_front()
            page.keyboard.press("Control+z")
            expect(page.locator(".spikeviz-status")).to_contain_text("undid: merged",
                                                                     timeout=30_000)
            poll(lambda: merged not in (ids := _unit_ids(other)) and
                 len(ids) == len(rows_before) + 1, 60, interval_s=0.5,
                 what="the other page's table follows the undo")
            screenshot(other, "demo-second-page")
            assert_no_traceback(other)
            other.close()

            assert_no_traceback(page)
            screenshot(page, "demo")
        finally:
            browser.close()

    unexpected = [(messages.where(m), *m) for m in unexpected_messages(messages, host)]
    assert not unexpected, f"browser errors (step, kind, text, url): {unexpected}\n" \
                           f"{server.logs()}"

    # SIGTERM: a clean shutdown
    code = server.terminate(timeout_s=30)
    assert code == 0, f"the server exited with {code} on SIGTERM\n{server.logs()}"
    assert "Traceback" not in server.stderr.read_text(errors="replace"), server.logs()
