"""The comparison dashboard in a real browser: `spikeviz compare A B --ground-truth --serve` on
a generated ground truth and a perturbed copy (two Phy folders sharing the generated
recording), Playwright and Debian's Chromium.

Loads the page, checks the header numbers and the first pair, hovers a cell of the agreement
matrix (the tooltip names both units and the score), clicks another cell and sees the pair
view's caption name that pair, clicks a row of the performance table and sees the pair follow,
shows the confusion matrix and the plots, exports the matches as CSV and downloads it (read
back against the comparison), checks that no console error (other than web fonts the offline
machine cannot fetch) and no traceback shows up, saves test-artifacts/compare*.png, and stops
the server with SIGTERM (it must exit cleanly).
"""

from __future__ import annotations

import re
import warnings

import pandas as pd
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
    unexpected_messages,
    wait_text,
)

from tests.comparison_cases import ground_truth_folders

pytestmark = pytest.mark.ui

#: Where data coordinates (x, y) of the agreement matrix are on the page: the Bokeh plot
#: whose renderers include an Image glyph, its frame's scales, the plot element's position.
_CELL_JS = """([x, y, css]) => {
  const {PlotView} = Bokeh.require("models/plots/plot");
  const views = Bokeh.index.query((v) => v instanceof PlotView);
  for (const view of views) {
    const images = view.model.renderers.filter(
        (r) => r.glyph && r.glyph.constructor.name === "Image");
    if (!images.length) continue;
    let el = view.el, inside = false;
    for (let node = el; node; node = node.parentNode || node.host) {
      if (node.classList && node.classList.contains(css)) { inside = true; break; }
    }
    if (!inside) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;
    return [box.left + view.frame.x_scale.compute(x), box.top + view.frame.y_scale.compute(y)];
  }
  return null;
}"""


#: How many Bokeh plots are drawn (non-zero size) inside elements of a css class.
_PLOTS_JS = """(css) => {
  const {PlotView} = Bokeh.require("models/plots/plot");
  let n = 0;
  for (const view of Bokeh.index.query((v) => v instanceof PlotView)) {
    for (let node = view.el; node; node = node.parentNode || node.host) {
      if (node.classList && node.classList.contains(css)) {
        const box = view.el.getBoundingClientRect();
        if (box.width > 0 && box.height > 0) n += 1;
        break;
      }
    }
  }
  return n;
}"""


def cell_position(page, x: float, y: float, css: str = "spikeviz-agreement-matrix"):
    return poll(lambda: page.evaluate(_CELL_JS, [x, y, css]), timeout_s=60,
                what=f"the plot of .{css} on the page")


@pytest.fixture
def setup(tmp_path):
    require_browser()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero templates / renumbered ids of the Phy export
        truth, tested = ground_truth_folders(tmp_path / "data", duration_s=30.0,
                                             num_channels=32, num_units=12, seed=1)
    from spikeviz.app.compare_app import load_comparison

    comparison = load_comparison(truth, tested, ground_truth=True, exhaustive_gt=True)
    server = start_server(["compare", str(truth), str(tested), "--ground-truth",
                           "--exhaustive-gt", "--serve"], tmp_path)
    try:
        yield server, comparison, tmp_path
    finally:
        server.stop()


def test_compare_dashboard_in_a_browser(setup):
    server, c, tmp_path = setup
    from playwright.sync_api import sync_playwright

    messages = Messages()
    ordered = c.ordered_agreement()
    n_rows = ordered.shape[0]
    with sync_playwright() as play:
        browser = launch_chromium(play)
        try:
            page = open_page(browser, server.url, messages, viewport=(1600, 1000),
                             action_timeout_s=60)
            messages.step = "load"
            wait_text(page, rf"matched {c.num_matched} mean agreement", timeout_s=120)
            first = (ordered.index[0], ordered.columns[0])
            wait_text(page, rf"ground truth {first[0]} \(\d+ spikes\) ↔ tested {first[1]} \(")
            cell_position(page, 0.5, n_rows - 0.5)  # the matrix is drawn
            page.wait_for_timeout(1500)
            screenshot(page, "compare_initial")

            messages.step = "hover"
            i, j = 1, 1
            x, y = cell_position(page, j + 0.5, n_rows - i - 0.5)
            page.mouse.move(x, y)
            score = f"{ordered.iat[i, j]:.3f}"
            wait_text(page, rf"ground truth: ?{ordered.index[i]} tested: ?{ordered.columns[j]} "
                            rf"agreement: ?{re.escape(score)}", timeout_s=20)

            messages.step = "click a cell"
            i, j = 2, 2
            x, y = cell_position(page, j + 0.5, n_rows - i - 0.5)
            page.mouse.click(x, y)
            u1, u2 = ordered.index[i], ordered.columns[j]
            caption = wait_text(page, rf"ground truth {u1} \((\d+) spikes\) ↔ tested {u2} "
                                      rf"\((\d+) spikes\) · agreement (\d\.\d+)")
            assert int(caption.group(1)) == c.sorting1.spike_counts()[u1]
            assert int(caption.group(2)) == c.sorting2.spike_counts()[u2]
            assert caption.group(3) == f"{c.agreement.loc[u1, u2]:.3f}"
            page.mouse.move(5, 5)
            page.wait_for_timeout(1500)
            screenshot(page, "compare_pair")

            messages.step = "table row"
            perf = c.performance
            row = 5
            gt_unit = perf.index[row]
            cells = page.locator(".spikeviz-performance-table .tabulator-row")
            cells.nth(row).locator('[tabulator-field="accuracy"]').click()
            partner = perf["tested_id"].iloc[row]
            expect = rf"ground truth {gt_unit} \(\d+ spikes\) ↔ " + (
                "tested: none" if pd.isna(partner) else rf"tested {partner} \(")
            wait_text(page, expect)

            messages.step = "confusion"
            page.locator(".bk-tab").filter(has_text=re.compile(r"^\s*Confusion\s*$")).click()
            cell_position(page, 0.5, 0.5, css="spikeviz-confusion-matrix")
            page.wait_for_timeout(1500)
            screenshot(page, "compare_confusion")

            messages.step = "plots"
            page.locator(".bk-tab").filter(has_text=re.compile(r"^\s*Plots\s*$")).click()
            poll(lambda: page.evaluate(_PLOTS_JS, "spikeviz-performance-plots") >= 2,
                 what="accuracy vs SNR and vs firing rate drawn")
            poll(lambda: page.evaluate(_PLOTS_JS, "spikeviz-category-counts") >= 1,
                 what="unit category counts drawn")
            page.locator(".spikeviz-category-counts").scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            screenshot(page, "compare_plots")

            messages.step = "export"
            page.locator(".bk-tab").filter(has_text=re.compile(r"^\s*Export\s*$")).click()
            page.get_by_role("button", name="Matches CSV", exact=True).click()
            wait_text(page, r"Wrote truth_vs_tested_matches(_\d+)?\.csv", timeout_s=60)
            button = page.get_by_role("button", name=re.compile(r"Download .*matches.*\.csv"))
            with page.expect_download(timeout=60_000) as info:
                button.click()
            path = tmp_path / "downloaded.csv"
            info.value.save_as(path)
            back = pd.read_csv(path)
            matched = back.dropna(subset=["truth", "tested"])
            assert {(int(a), int(b)) for a, b in zip(matched["truth"], matched["tested"],
                                                     strict=True)} == \
                {(u, v) for u, v in c.matches.items() if not pd.isna(v)}
            screenshot(page, "compare_export")

            assert_no_traceback(page)
        finally:
            browser.close()
    bad = unexpected_messages(messages, "127.0.0.1")
    assert not bad, "\n".join(f"[{messages.where(m)}] {m}" for m in bad) + "\n" + \
        server.logs()
    assert server.terminate() == 0, server.logs()
    assert "Traceback" not in server.stderr.read_text(errors="replace"), server.logs()
