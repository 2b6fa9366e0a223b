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
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

pytestmark = pytest.mark.ui

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
START_TIMEOUT_S = 120
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def server_command(port: int) -> list[str]:
    """Exactly what `make demo` runs: `spikeviz demo` on the synthetic dataset."""
    return [sys.executable, "-m", "spikeviz", "demo", "--port", str(port),
            "--address", "127.0.0.1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, stdout: Path, stderr: Path):
        self.proc, self.url, self.stdout, self.stderr = proc, url, stdout, stderr

    def logs(self) -> str:
        return (f"--- server stdout ---\n{self.stdout.read_text(errors='replace')}\n"
                f"--- server stderr ---\n{self.stderr.read_text(errors='replace')[-6000:]}")


@pytest.fixture
def server(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (make chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    port = free_port()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = dict(os.environ, SPIKEVIZ_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    stdout, stderr = tmp_path / "server.out", tmp_path / "server.err"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(server_command(port), cwd=tmp_path, env=env,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    srv = Server(proc, f"http://127.0.0.1:{port}/", stdout, stderr)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with code {proc.returncode} before answering"
                            f"\n{srv.logs()}")
            try:
                with urllib.request.urlopen(srv.url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer on {srv.url} within "
                            f"{START_TIMEOUT_S} s\n{srv.logs()}")
            time.sleep(0.5)
        yield srv
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


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


def _unexpected(messages: list[tuple[str, str, str]], host: str) -> list:
    """Console errors and failed requests, except failed loads from other hosts (web fonts)."""
    bad = []
    for kind, text, url in messages:
        external = bool(url) and urlparse(url).hostname not in (host, None)
        if kind == "requestfailed" and external:
            continue
        if kind == "console" and text.startswith("Failed to load resource") and external:
            continue
        bad.append((kind, text, url))
    return bad


def _unit_ids(rows) -> list[str]:
    return [t.strip() for t in rows.locator('[tabulator-field="unit_id"]').all_inner_texts()]


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
    cell = rows.nth(_unit_ids(rows).index(unit)).locator('[tabulator-field="label"]')
    expect(cell).to_have_text("noise", timeout=30_000)
    page.keyboard.press("Control+z")
    expect(status).to_contain_text(f"undid: labelled {unit} noise", timeout=30_000)
    expect(cell).to_have_text(label, timeout=30_000)

    # merge two units with Shift+M: one row fewer, the new unit selected
    before = _unit_ids(rows)
    a, b = before[2], before[3]
    rows.nth(2).click()
    rows.nth(3).click(modifiers=["Control"])
    expect(page.locator(".spikeviz-selected")).to_contain_text("2 units", timeout=30_000)
    page.keyboard.press("Shift+M")
    expect(status).to_contain_text(f"merged {a}+{b} → ", timeout=30_000)
    merged = _merged_unit(page)
    deadline = time.monotonic() + 30
    while len(_unit_ids(rows)) != len(before) - 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    after = _unit_ids(rows)
    assert len(after) == len(before) - 1 and a not in after and b not in after
    assert merged in after
    expect(page.locator(".spikeviz-selected")).to_contain_text(f"Selected: unit {merged}",
                                                               timeout=30_000)
    page.keyboard.press("Control+z")
    expect(status).to_contain_text(f"undid: merged {a}+{b}", timeout=30_000)
    page.keyboard.press("Control+Shift+z")
    expect(status).to_contain_text(f"redid: merged {a}+{b} → {merged}", timeout=30_000)
    page.keyboard.press("?")
    expect(page.locator(".spikeviz-help")).to_contain_text("Keyboard shortcuts",
                                                            timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-curated.png"))
    page.keyboard.press("?")


def test_demo_dashboard_in_chromium(server):
    from playwright.sync_api import expect, sync_playwright

    host = urlparse(server.url).hostname
    messages: list[tuple[str, str, str]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.on("console", lambda m: messages.append(
                ("console", m.text, m.location.get("url", ""))) if m.type == "error" else None)
            page.on("pageerror", lambda e: messages.append(("pageerror", str(e), "")))
            page.on("requestfailed", lambda r: messages.append(
                ("requestfailed", f"{r.failure}", r.url)))
            page.goto(server.url, timeout=60_000)

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
            other = browser.new_page(viewport={"width": 1400, "height": 850})
            other.on("pageerror", lambda e: messages.append(("pageerror", str(e), "")))
            other.goto(server.url, timeout=60_000)
            other_rows = other.locator(".spikeviz-unit-table .tabulator-row")
            expect(other_rows.first).to_be_visible(timeout=60_000)
            other.locator(".bk-tab:text-is(\"Raster\")").click()
            expect(other.locator(".spikeviz-selected")).to_contain_text("Selected: none",
                                                                        timeout=30_000)
            assert merged in _unit_ids(other_rows)
            # an action in one page reaches the other page's table
            page.keyboard.press("Control+z")
            expect(page.locator(".spikeviz-status")).to_contain_text("undid: merged",
                                                                     timeout=30_000)
            deadline = time.monotonic() + 30
            while merged in _unit_ids(other_rows) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert merged not in _unit_ids(other_rows), "the other page missed the undo"
            ARTIFACTS.mkdir(exist_ok=True)
            other.screenshot(path=str(ARTIFACTS / "demo-second-page.png"))
            other.close()

            assert page.locator("text=Traceback").count() == 0
            assert "Traceback" not in page.content()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "demo.png"))
        finally:
            browser.close()

    unexpected = _unexpected(messages, host)
    assert not unexpected, f"browser errors: {unexpected}\n{server.logs()}"

    # SIGTERM: a clean shutdown
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server ignored SIGTERM for 30 s\n{server.logs()}")
    assert code == 0, f"the server exited with {code} on SIGTERM\n{server.logs()}"
    assert "Traceback" not in server.stderr.read_text(errors="replace"), server.logs()
