"""Dashboard: raster frame, unit click, open to first paint and RSS on a 10 M-spike session.

The session (``_big_session.py``): 500 units, 10 M spikes (lognormal rates), 1 h at 30 kHz,
unit ids that are not indices, a 384-channel Neuropixels-like probe, a ``peak_channel_id``
unit column; no recording (1 h x 384 ch of int16 is 83 GB). ``--quick``: 100 units, 1 M.

1. **Raster frame** — ``Raster._base_image`` (the whole session rasterized by datashader into
   a 1200 x 600 px image): cold (a new Session: the view's unit frame, time/row arrays, then
   the frame) and warm; plus the server-side re-render of a zoom event on a rendered raster
   (base + highlight re-rasterized, Bokeh models updated). Target ≤ 300 ms.
2. **Unit click** — a ``Dashboard`` is built and rendered to Bokeh models (no browser), every
   view made active (as if all were visible; views in hidden tabs rendered on their own root);
   time from ``selection.unit_ids = [u]`` until every view has recomputed (all watchers run
   synchronously: without a server session HoloViews and Panel update the models in place).
   Units from the largest to the smallest; median and max; then each view alone (the others
   inactive) for the breakdown. Target ≤ 250 ms. Two cases:
   (a) the 10 M-spike session: sorting-only views (table, raster, correlograms, ISI / rate,
       similarity, probe; templates/traces/amplitudes/features show "no recording");
   (b) every view, with a recording: the SpikeInterface ground-truth dataset of
       ``_si_dataset.py`` (64 ch x 600 s x 100 units, ~830 k spikes) after
       ``session.precompute()`` (computed once, then read from its disk cache).
   Not done: a 384-channel recording for the 10 M-spike session. A sparse 83 GB file would
   read back zero pages from the page cache (no disk I/O, zero templates), which flatters the
   trace-based views, so it is not reported.
3. **Traces frame** (384 ch x 1 s / 10 s): see ``bench_traces.py``.
4. **Open to first paint, RSS** — the session written as a Phy folder (with synthetic sparse
   templates), ``python -m spikeviz serve FOLDER`` started as a subprocess: time until it
   prints that it serves, then ``--pages`` pages opened one after the other in one headless
   Chromium (Playwright; the first with an empty HTTP cache = the 1st browser session): time
   from ``page.goto`` until a unit-table row is visible, timestamped inside the page (a poll
   every 20 ms through Bokeh's shadow roots; what Playwright's ``expect`` saw, up to ~1 s
   later because its retries back off, is printed beside it), the server's CPU seconds in
   that interval, then the raster drawn with spikes; the server's peak RSS (VmHWM). Targets
   first paint ≤ 3 s, RSS ≤ 1 GB. Peers: phylib's ``TemplateModel`` load of the same folder
   (what phy's GUI does before its first paint), in a fresh process and in-process; and the
   same server without prepared browser sessions (``serve(..., prepared_sessions=0)``: each
   page builds its dashboard when requested), same pages (``--no-serve-peer`` skips it).

    python benchmarks/bench_dashboard.py [--quick] [--only raster,click,serve] [--pages N]
        [--no-browser] [--no-serve-peer] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _big_session import big_session, write_phy_folder  # noqa: E402
from _common import best_of, peak_rss_mb  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
WIDTH, HEIGHT = 1200, 600
RESULTS: list[tuple[str, str, str, str]] = []  # (case, figure, value, target)


def record(case: str, name: str, value: str, target: str = "") -> None:
    RESULTS.append((case, name, value, target))
    print(f"  {name:<60}{value:>14}  {target}", flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.0f} ms"


def verdict(seconds: float, target_s: float) -> str:
    return f"target ≤ {target_s * 1e3:.0f} ms: {'ok' if seconds <= target_s else 'MISSED'}"


def _check_counts(image, num_spikes: int) -> None:
    """Every spike is in the image (tall rows are drawn as k copies of sub-rows)."""
    total = float(np.nansum(image.dimension_values(2)))
    assert total > 0 and total % num_spikes == 0, (total, num_spikes)


# -- 1. raster ----------------------------------------------------------------------------------
def bench_raster(session) -> None:
    import spikeviz as sv
    from spikeviz.app.serve import warm_up
    from spikeviz.views.raster import Raster

    print(f"\n1. Raster frame, {session.sorting.num_spikes:,} spikes, whole session, "
          f"{WIDTH} x {HEIGHT} px", flush=True)
    whole = (0.0, session.sorting.duration_s)
    t0 = time.perf_counter()
    warm_up(session, views=False)  # datashader and numba kernels, as the server does at start
    print(f"  (server kernel warm-up, no views: {time.perf_counter() - t0:.2f} s)")

    def fresh():  # a new Session whose arrays no cache has seen
        s = session.sorting
        sorting = sv.Sorting.from_arrays(s.sample_index.copy(), s.unit_index.copy(),
                                         s.sampling_frequency, unit_ids=s.unit_ids,
                                         unit_table=s.unit_table, num_samples=s.num_samples)
        return sv.Session(sorting, channel_ids=session.channel_ids,
                          channel_locations_um=session.channel_locations_um, cache_dir=None)

    colds = []
    for _ in range(3):
        new = fresh()
        t0 = time.perf_counter()
        view = Raster(new)
        image = view._base_image(x_range=whole, width=WIDTH, height=HEIGHT)
        colds.append(time.perf_counter() - t0)
        _check_counts(image, new.sorting.num_spikes)
        del view, new
    cold = min(colds)
    record("10M, no rec", "raster frame, cold (new session: view + frame)", ms(cold),
           verdict(cold, 0.3))

    view = Raster(session)
    warm, image = best_of(lambda: view._base_image(x_range=whole, width=WIDTH, height=HEIGHT),
                          repeat=5)
    _check_counts(image, session.sorting.num_spikes)
    record("10M, no rec", "raster frame, warm (datashader image)", ms(warm),
           verdict(warm, 0.3))

    # the server-side re-render on a zoom event: base + highlight rasterized, models updated
    import panel as pn
    counts = session.sorting.spike_counts()
    session.selection.unit_ids = [counts.index[int(np.argmax(counts.to_numpy()))]]
    pane = pn.panel(view)
    pane.get_root()
    view._size.event(width=WIDTH, height=HEIGHT)
    times = []
    for i in range(5):
        x1 = whole[1] * (0.999 if i % 2 else 1.0)  # a different range each time
        t0 = time.perf_counter()
        view._range.event(x_range=(0.0, x1), y_range=None)
        times.append(time.perf_counter() - t0)
    record("10M, no rec", "raster re-render (base + highlight -> Bokeh), median",
           ms(statistics.median(times)), verdict(statistics.median(times), 0.3))
    session.selection.unit_ids = []


# -- 2. unit click ------------------------------------------------------------------------------
def _render_dashboard(session):
    """A Dashboard with every view active and rendered to Bokeh models."""
    import panel as pn

    from spikeviz.app.dashboard import Dashboard
    from spikeviz.app.layout import set_active

    dashboard = Dashboard(session)
    roots = [dashboard.__panel__().get_root()]
    for view in dashboard.views.values():
        set_active(view, True)
    for tabs in (dashboard.centre, dashboard.right):  # views in hidden tabs: their own root
        for i, (_, view, _) in enumerate(tabs.items):
            if view is not None and i != tabs.tabs.active:
                roots.append(pn.panel(view).get_root())
    return dashboard, roots


def _click_units(sorting, n: int) -> list:
    """``n`` units from the largest to the smallest spike count (quantiles)."""
    counts = sorting.spike_counts().sort_values(ascending=False)
    picks = np.unique(np.linspace(0, len(counts) - 1, n).round().astype(int))
    return [counts.index[i] for i in picks]


async def _drain() -> None:
    """Run every task the update scheduled (HoloViews' Bokeh callbacks are coroutines on the
    server's loop), until none is left."""
    me = asyncio.current_task()
    while True:
        await asyncio.sleep(0)
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=30)


async def _click(dashboard, unit) -> float:
    """Seconds from ``selection.unit_ids = [unit]`` until every watcher and every task it
    scheduled has run."""
    t0 = time.perf_counter()
    dashboard.selection.unit_ids = [unit]
    await _drain()
    return time.perf_counter() - t0


def bench_click(session, case: str, n_units: int, profile: bool) -> None:
    asyncio.run(_bench_click(session, case, n_units, profile))


async def _bench_click(session, case: str, n_units: int, profile: bool) -> None:
    from spikeviz.app.layout import set_active
    from spikeviz.app.serve import warm_up

    t0 = time.perf_counter()
    warm_up(session)  # what `spikeviz serve` does before the first browser connects
    print(f"  (server warm-up incl. one offscreen dashboard: {time.perf_counter() - t0:.2f} s)")
    t0 = time.perf_counter()
    dashboard, _ = _render_dashboard(session)
    await _drain()
    print(f"  (dashboard built and rendered, every view active: "
          f"{time.perf_counter() - t0:.2f} s)", flush=True)
    sorting = dashboard.curation.sorting
    units = _click_units(sorting, n_units)
    spare = [u for u in sorting.unit_ids.tolist() if u not in units][:2]
    for u in spare:  # warm: the first click of the dashboard
        await _click(dashboard, u)
    counts = sorting.spike_counts()
    times = []
    for u in units:
        times.append(await _click(dashboard, u))
        print(f"    unit {u} ({int(counts.loc[u]):,} spikes): {ms(times[-1])}", flush=True)
    worst = units[int(np.argmax(times))]
    med, top = statistics.median(times), max(times)
    record(case, f"unit click, all views, median of {len(units)} units", ms(med),
           verdict(med, 0.25))
    record(case, f"unit click, all views, max (unit {worst}, "
           f"{int(counts.loc[worst]):,} spikes)", ms(top), verdict(top, 0.25))
    again = min([await _click(dashboard, u) for u in (spare[0], worst, spare[0], worst)])
    record(case, "unit click, all views, unit seen before (best)", ms(again))

    # as laid out: only the views of the shown tabs are active (what a user's click costs);
    # units not clicked before, so first-time computations are included
    shown = set()
    for tabs in (dashboard.centre, dashboard.right):
        shown.update(id(view) for i, (_, view, _) in enumerate(tabs.items)
                     if view is not None and i == tabs.tabs.active)
    tabbed = {id(view) for tabs in (dashboard.centre, dashboard.right)
              for _, view, _ in tabs.items if view is not None}
    for view in dashboard.views.values():
        set_active(view, id(view) in shown or id(view) not in tabbed)
    await _drain()
    fresh = [u for u in sorting.spike_counts().sort_values(ascending=False).index.tolist()
             if u not in units and u not in spare][:len(units)]
    laid_out = [await _click(dashboard, u) for u in fresh]
    active = sorted(name for name, view in dashboard.views.items() if view.active)
    print(f"  as laid out (active: {', '.join(active)}):")
    record(case, f"unit click, default tabs, median of {len(fresh)} new units",
           ms(statistics.median(laid_out)), verdict(statistics.median(laid_out), 0.25))
    record(case, "unit click, default tabs, max", ms(max(laid_out)), verdict(max(laid_out), 0.25))
    for view in dashboard.views.values():
        set_active(view, True)
    await _drain()

    # breakdown: each view alone (the others inactive; they catch up outside the timing)
    print("  per view (that view alone active), median over the same units:")
    views = dashboard.views
    breakdown = {}
    for name, view in views.items():
        per = []
        for u in [spare[0], *units]:
            for other in views.values():
                set_active(other, other is view)
            per.append(await _click(dashboard, u))
            for other in views.values():
                set_active(other, True)
            await _drain()
        breakdown[name] = (statistics.median(per[1:]), max(per[1:]))
        print(f"    {name:<14} median {ms(breakdown[name][0]):>9}   max "
              f"{ms(breakdown[name][1]):>9}")
    if profile and top > 0.25:
        order = sorting.spike_counts().sort_values(ascending=False).index.tolist()
        unseen = [u for u in order if u not in units and u not in spare][:2]
        await _profile(dashboard, unseen, case)
    dashboard.dispose()


async def _profile(dashboard, units, case: str, top: int = 25) -> None:
    import cProfile
    import pstats

    print(f"  cProfile of a unit click ({case}), top {top} by cumulative time:")
    prof = cProfile.Profile()
    prof.enable()
    for u in units:
        await _click(dashboard, u)
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative")
    rows = []
    for (path, line, func), (_, nc, tt, ct, _) in stats.stats.items():
        if "spikeviz" in path or "datashader" in path or "holoviews" in path:
            rows.append((ct, tt, nc, f"{Path(path).parent.name}/{Path(path).name}:{line}"
                                     f"({func})"))
    for ct, tt, nc, name in sorted(rows, reverse=True)[:top]:
        print(f"    {ct * 1e3:9.1f} ms cum {tt * 1e3:8.1f} ms self {nc:6d}x  {name}")


# -- 4. serve, first paint, RSS -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _dark_pixels(png: bytes) -> int:
    import io

    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)[40:]
    return int(np.count_nonzero(rgb.max(axis=-1) < 120))


#: Installed in every page before its scripts run: records ``performance.now()`` (ms since
#: navigation start) when a unit-table row is first visible (``table``) and when the raster's
#: canvas first exists (``raster_canvas``). Bokeh renders into shadow roots, so it searches
#: them; it polls every 20 ms and stops once both are seen (the recorded time is at most one
#: poll late, unlike Playwright's ``expect``, whose retries back off to 1 s apart).
PAINT_WATCH_JS = """
(() => {
  const t = window.__spikeviz_paint = {};
  const find = (root, sel) => {
    const hit = root.querySelector(sel);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const h = find(el.shadowRoot, sel); if (h) return h; }
    }
    return null;
  };
  const visible = (el) => {
    if (!el) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  };
  const poll = () => {
    const now = performance.now();
    try {
      if (t.table === undefined && visible(find(document, '.tabulator-row'))) t.table = now;
    } catch (e) { t.error = String(e); }
    if (t.table === undefined) setTimeout(poll, 20);
  };
  poll();
})();
"""


def _first_paint(page, url: str, server_cpu=None) -> dict:
    """Seconds from ``page.goto``: ``load`` event, ``table`` rows shown (timestamped in the
    page, see :data:`PAINT_WATCH_JS`; ``table_seen``: when Playwright's ``expect`` saw them,
    the measure used before), ``raster`` drawn with spikes (after a click on its tab when it is
    not the shown one: ``tab_click`` then is the click -> drawn time). With ``server_cpu`` (a
    function: the server's CPU seconds so far), ``server_cpu`` is the server's CPU time from
    ``goto`` until the rows were seen."""
    from playwright.sync_api import expect

    out = {}
    page.add_init_script(PAINT_WATCH_JS)
    cpu0 = server_cpu() if server_cpu is not None else None
    t0_epoch = time.time()
    t0 = time.perf_counter()
    page.goto(url, timeout=120_000, wait_until="load")
    out["load"] = time.perf_counter() - t0
    expect(page.locator(".tabulator-row").first).to_be_visible(timeout=120_000)
    out["table_seen"] = time.perf_counter() - t0
    if cpu0 is not None:
        out["server_cpu"] = server_cpu() - cpu0
    page.wait_for_function("window.__spikeviz_paint && window.__spikeviz_paint.table "
                           "!== undefined", timeout=120_000)
    origin_ms, table_ms = page.evaluate(
        "[performance.timeOrigin, window.__spikeviz_paint.table]")
    out["table"] = (origin_ms + table_ms) / 1e3 - t0_epoch
    raster = page.locator(".spikeviz-raster")
    try:
        expect(raster.locator("canvas").first).to_be_visible(timeout=3_000)
    except AssertionError:  # the raster is not in the shown centre tab: open it
        t_click = time.perf_counter()
        page.locator(".bk-tab").filter(has_text="Raster").first.click(timeout=30_000)
        out["tab_click_at"] = t_click - t0
        expect(raster.locator("canvas").first).to_be_visible(timeout=120_000)
    while _dark_pixels(raster.screenshot()) < 2000:
        if time.perf_counter() - t0 > 120:
            raise TimeoutError("the raster drew no spikes within 120 s")
        time.sleep(0.05)
    out["raster"] = time.perf_counter() - t0
    if "tab_click_at" in out:
        out["tab_click"] = out["raster"] - out["tab_click_at"]
    return out


#: ``spikeviz serve`` as it was before prepared sessions (each page builds its dashboard when
#: it is requested): the peer of the A/B of section 4 (``--serve-peer``).
UNPREPARED_SERVER = ("import sys, spikeviz as sv; from spikeviz.app.serve import serve; "
                     "s = sv.load(sys.argv[1]); "
                     "serve(lambda: s, port=int(sys.argv[2]), prepared_sessions=0)")


class _Server:
    """A server subprocess: ``start()`` waits until it prints "serving at"."""

    def __init__(self, cmd: list[str], env: dict, cwd: Path):
        self.cmd, self.env, self.cwd = cmd, env, cwd
        self.lines: list[tuple[float, str]] = []
        self.proc = None

    def start(self, timeout_s: float = 300) -> float:
        serving = threading.Event()
        t_start = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)

        def reader():
            for line in self.proc.stdout:
                self.lines.append((time.perf_counter() - t_start, line.rstrip()))
                if "serving at" in line:
                    serving.set()

        threading.Thread(target=reader, daemon=True).start()
        if not serving.wait(timeout_s):
            raise RuntimeError("the server did not start:\n" +
                               "\n".join(t for _, t in self.lines[-30:]))
        return next(t for t, text in self.lines if "serving at" in text)

    def said(self, word: str) -> list[str]:
        return [text.split("spikeviz: ")[-1] for _, text in self.lines if word in text]

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def bench_serve(session, browser: bool, pages: int = 3, peer: bool = True) -> None:
    print("\n4. Open to first paint and RSS (Phy folder, `spikeviz serve`, headless Chromium)",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        folder = write_phy_folder(session, tmp / "phy")
        print(f"  (Phy folder written in {time.perf_counter() - t0:.1f} s: "
              f"{sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.0f} MB)")
        t_ours_load, _ = _spikeviz_load(folder)
        t_phylib, t_phylib_proc = _phylib_load(folder)
        record("10M Phy", "spikeviz.load(folder), in-process (best of 3)", ms(t_ours_load))
        if t_phylib is not None:
            record("10M Phy", "phylib TemplateModel(folder), in-process (best of 3)",
                   ms(t_phylib), f"peer/spikeviz = {t_phylib / t_ours_load:.2f}x")
            record("10M Phy", "phylib: process start -> model loaded", ms(t_phylib_proc))

        def server(cmd, data: str) -> _Server:
            env = dict(os.environ, SPIKEVIZ_DATA_DIR=str(tmp / data), PYTHONUNBUFFERED="1")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO),
                                                               env.get("PYTHONPATH")]))
            return _Server(cmd, env, tmp)

        port = _free_port()
        ours = server([sys.executable, "-m", "spikeviz", "serve", str(folder), "--port",
                       str(port), "--address", "127.0.0.1"], "data")
        firsts = []
        try:
            t_serving = ours.start()
            rss_start = _vm(ours.proc.pid, "VmHWM")
            record("10M Phy", "server: process start -> 'serving at'", f"{t_serving:,.1f} s",
                   f"peer/spikeviz = {t_phylib_proc / t_serving:.2f}x (peer: model, no GUI)"
                   if t_phylib is not None else "")
            for text in ours.said("prepared"):
                print(f"    ({text})")
            record("10M Phy", "server peak RSS after start (VmHWM)", f"{rss_start:,.0f} MB")
            if browser:
                firsts = _browser_paint(f"http://127.0.0.1:{port}/", pages, ours, screenshot=True)
            rss = _vm(ours.proc.pid, "VmHWM")
            record("10M Phy", "server peak RSS (VmHWM, after the pages loaded)",
                   f"{rss:,.0f} MB", f"target ≤ 1024 MB: {'ok' if rss <= 1024 else 'MISSED'}")
        finally:
            ours.stop()
        if firsts:
            _record_paint("10M Phy", firsts)
        if not (browser and peer and firsts):
            return
        print("  peer: the same server without prepared sessions (each page builds its own)",
              flush=True)
        port = _free_port()
        before = server([sys.executable, "-c", UNPREPARED_SERVER, str(folder), str(port)],
                        "data-peer")
        try:
            before.start()
            peers = _browser_paint(f"http://127.0.0.1:{port}/", pages, before)
        finally:
            before.stop()
        if peers:
            _record_paint("10M unprep.", peers)
            for i, label in ((0, "1st session"), (slice(1, None), "later sessions (median)")):
                a = [f["table"] for f in (firsts[i] if isinstance(i, slice) else [firsts[i]])]
                b = [f["table"] for f in (peers[i] if isinstance(i, slice) else [peers[i]])]
                if a and b:
                    ratio = statistics.median(b) / statistics.median(a)
                    record("10M Phy", f"goto -> table rows, {label}: unprepared / prepared",
                           f"{ratio:.2f}x")


def _browser_paint(url: str, pages: int, server: _Server, screenshot: bool = False) -> list:
    """``pages`` pages opened one after the other in one browser (the first with an empty
    HTTP cache); each page's :func:`_first_paint` plus ``server_cpu`` (server CPU seconds from
    ``goto`` until the table rows were seen)."""
    if not CHROMIUM.exists():
        print(f"  (no Chromium at {CHROMIUM}: first paint not measured)")
        return []
    from playwright.sync_api import sync_playwright

    firsts = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for i in range(pages):  # first browser session, then later ones on the same server
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                f = _first_paint(page, url, server.cpu_s)
                firsts.append(f)
                tab = f" (Raster tab clicked at {f['tab_click_at']:.2f} s, drawn " \
                      f"{f['tab_click']:.2f} s later)" if "tab_click" in f else ""
                print(f"    page {i + 1}: load event {f['load']:.2f} s, table rows "
                      f"{f['table']:.2f} s (expect() saw them at {f['table_seen']:.2f} s), "
                      f"raster drawn {f['raster']:.2f} s{tab}; server CPU "
                      f"{f['server_cpu']:.2f} s", flush=True)
                if i == 0 and screenshot:
                    shots = REPO / "test-artifacts"
                    shots.mkdir(exist_ok=True)
                    page.screenshot(path=str(shots / "bench_dashboard.png"))
                page.close()
        finally:
            browser.close()
    return firsts


def _record_paint(case: str, firsts: list) -> None:
    ok = lambda t: f"target ≤ 3 s: {'ok' if t <= 3 else 'MISSED'}"  # noqa: E731
    first, later = firsts[0], firsts[1:]
    record(case, "page: goto -> unit table rows, 1st session", f"{first['table']:.2f} s",
           ok(first["table"]))
    if later:
        med = statistics.median(f["table"] for f in later)
        record(case, "page: goto -> unit table rows, later sessions (median)", f"{med:.2f} s",
               ok(med))
    record(case, "  (as Playwright's expect() saw them: 1st / later median)",
           f"{first['table_seen']:.2f} / "
           f"{statistics.median(f['table_seen'] for f in later or [first]):.2f} s")
    record(case, "server CPU from goto to table rows: 1st / later median",
           f"{first['server_cpu']:.2f} / "
           f"{statistics.median(f['server_cpu'] for f in later or [first]):.2f} s")
    if "tab_click" in first:
        med = statistics.median(f["tab_click"] for f in firsts)
        record(case, "Raster tab click -> raster drawn (median)", f"{med:.2f} s")
        record(case, "goto -> table + raster (1st session, incl. tab click)",
               f"{first['raster']:.2f} s")
    else:
        record(case, "page: goto -> raster drawn, 1st session", f"{first['raster']:.2f} s",
               ok(first["raster"]))


def _spikeviz_load(folder: Path):
    import spikeviz as sv

    return best_of(lambda: sv.load(folder), repeat=3)


def _phylib_load(folder: Path):
    """(in-process best of 3, process start -> loaded) of phylib's TemplateModel, or Nones."""
    try:
        from phylib.io.model import load_model
    except ImportError:
        print("  (phylib not installed: no peer)")
        return None, None
    import logging
    logging.getLogger("phylib").setLevel(logging.ERROR)

    def load():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = load_model(folder / "params.py")
            model.spike_clusters, model.amplitudes  # noqa: B018 (what the GUI reads first)
        return model

    t_in, model = best_of(load, repeat=3)
    model.close()
    code = ("import time; t=time.perf_counter(); from phylib.io.model import load_model; "
            f"m=load_model({str(folder / 'params.py')!r}); m.spike_clusters; m.amplitudes")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return t_in, time.perf_counter() - t0


# -- main ---------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="100 units / 1 M spikes, 60 s SI dataset, fewer clicks")
    parser.add_argument("--no-browser", action="store_true", help="skip Chromium")
    parser.add_argument("--only", default="raster,click,serve",
                        help="comma-separated parts to run: raster, click, serve")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile a unit click when it misses its target")
    parser.add_argument("--pages", type=int, default=3,
                        help="serve: pages opened one after the other (the first is the 1st "
                             "browser session)")
    parser.add_argument("--no-serve-peer", action="store_true",
                        help="serve: skip the server without prepared sessions")
    args = parser.parse_args()
    size = dict(num_spikes=1_000_000, num_units=100) if args.quick else \
        dict(num_spikes=10_000_000, num_units=500)
    n_clicks = 4 if args.quick else 8

    t0 = time.perf_counter()
    session = big_session(**size)
    print(f"{session!r}: generated in {time.perf_counter() - t0:.1f} s "
          f"(peak RSS {peak_rss_mb():.0f} MB)", flush=True)

    parts = set(args.only.split(","))
    if "raster" in parts:
        bench_raster(session)
    if "click" in parts:
        bench_clicks(session, n_clicks, args)
    print("\n3. Traces frames (384 ch x 1 s / 10 s): benchmarks/bench_traces.py")
    if "serve" in parts:
        bench_serve(session, browser=not args.no_browser, pages=max(2, args.pages),
                    peer=not args.no_serve_peer)

    print("\nSummary")
    print(f"  {'case':<12} {'figure':<60}{'value':>14}  target")
    for case, name, value, target in RESULTS:
        print(f"  {case:<12} {name:<60}{value:>14}  {target}")
    print(f"\npeak RSS of this process {peak_rss_mb():.0f} MB")


def bench_clicks(session, n_clicks: int, args) -> None:
    print(f"\n2a. Unit click, {session.sorting.num_spikes:,}-spike session, no recording "
          f"(sorting-only views)", flush=True)
    bench_click(session, "10M, no rec", n_clicks, args.profile)

    import _si_dataset
    si_size = dict(duration_s=60.0) if args.quick else {}
    t0 = time.perf_counter()
    ds = _si_dataset.load(**si_size)
    si = ds.session
    ran = si.precompute()
    what = f"computed {', '.join(ran)}" if ran else "all read from the disk cache"
    print(f"\n2b. Unit click, every view, with a recording: {si!r}\n  (dataset + "
          f"precompute {time.perf_counter() - t0:.1f} s: {what})", flush=True)
    bench_click(si, "SI 64ch rec", n_clicks, args.profile)


if __name__ == "__main__":
    main()
