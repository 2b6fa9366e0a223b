"""Helpers for the browser tests: a `spikeviz` server subprocess, Chromium, page text, waits.

Debian's Chromium (``/usr/bin/chromium``) driven by Playwright (:func:`launch_chromium`,
:func:`open_page`); the server is started on a free 127.0.0.1 port and waited for (generous
timeout: warm-up compiles kernels on slow machines), stopped with SIGKILL (:meth:`Server.stop`)
or SIGTERM (:meth:`Server.terminate`, which must end it cleanly).
Panel renders into shadow roots, so :func:`page_text` walks them (``innerText`` of the body
does not). :func:`unexpected_messages` is the console policy: every console error, page error
and failed request counts, except failed loads from other hosts (web fonts the offline machine
cannot fetch).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
START_TIMEOUT_S = 180
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]

#: Text that must never show up in the page.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\b\w+(Error|Exception): ")


def require_browser() -> None:
    """Skip (saying why) when Chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (make chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess; ``url`` answers once :func:`start_server` returned it."""

    def __init__(self, proc: subprocess.Popen, url: str, stdout: Path, stderr: Path):
        self.proc, self.url, self.stdout, self.stderr = proc, url, stdout, stderr

    def logs(self) -> str:
        return (f"--- server stdout ---\n{self.stdout.read_text(errors='replace')[-4000:]}\n"
                f"--- server stderr ---\n{self.stderr.read_text(errors='replace')[-6000:]}")

    def stop(self) -> None:
        """SIGKILL (no chance to flush anything), when still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait: the exit code (fails the test when it is ignored)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the server ignored SIGTERM for {timeout_s:.0f} s\n{self.logs()}")


def start_server(args: list[str], workdir: Path, env: dict | None = None,
                 timeout_s: float = START_TIMEOUT_S) -> Server:
    """Run ``python -m spikeviz <args> --port P --address 127.0.0.1`` and wait for HTTP 200."""
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    stdout, stderr = workdir / "server.out", workdir / "server.err"
    command = [sys.executable, "-m", "spikeviz", *args, "--port", str(port),
               "--address", "127.0.0.1"]
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
    server = Server(proc, f"http://127.0.0.1:{port}/", stdout, stderr)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with code {proc.returncode} before answering"
                        f"\n{server.logs()}")
        try:
            with urllib.request.urlopen(server.url, timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"the server did not answer on {server.url} within {timeout_s:.0f} s"
                        f"\n{server.logs()}")
        time.sleep(0.5)


class Messages(list):
    """Console errors, page errors and failed requests of the pages it listens to:
    ``(kind, text, url)``; ``steps[i]`` is what ``step`` said when message i came."""

    def __init__(self):
        super().__init__()
        self.steps: list[str] = []
        self.step = ""

    def add(self, kind: str, text: str, url: str) -> None:
        self.append((kind, text, url))
        self.steps.append(self.step)

    def listen(self, page) -> None:
        page.on("console", lambda m: self.add(
            "console", m.text, m.location.get("url", "")) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.add(
            "pageerror", f"{e}\n{getattr(e, 'stack', '') or ''}"[:2000], ""))
        page.on("requestfailed", lambda r: self.add("requestfailed", f"{r.failure}", r.url))

    def where(self, message) -> str:
        """The step of ``message`` (one of this list's items)."""
        return self.steps[self.index(message)]


def launch_chromium(playwright):
    """Debian's Chromium, headless, with the arguments this machine needs."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def open_page(browser, url: str, messages: Messages | None = None,
              viewport: tuple[int, int] = (1600, 1000), timeout_s: float = 120,
              action_timeout_s: float | None = None):
    """A new page of ``browser`` at ``url``; ``messages`` (when given) listens to it before
    it loads, so nothing it says is missed."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    if action_timeout_s is not None:
        page.set_default_timeout(action_timeout_s * 1000)
    if messages is not None:
        messages.listen(page)
    page.goto(url, timeout=timeout_s * 1000)
    return page


def unexpected_messages(messages, host: str) -> list:
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


#: All text of the page, through Panel's shadow roots, whitespace collapsed (hidden elements
#: included: Panel hides with ``display: none``).
_TEXT_WALK_JS = """const pageText = () => {
  const out = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === 3) out.push(child.textContent);
      else if (child.nodeType === 1 && child.tagName !== "STYLE" && child.tagName !== "SCRIPT")
        walk(child);
    }
  };
  walk(document.body);
  return out.join(" ").replace(/\\s+/g, " ");
};"""
_PAGE_TEXT_JS = "() => { " + _TEXT_WALK_JS + " return pageText(); }"
_WAIT_TEXT_JS = ("([pattern, flags]) => { " + _TEXT_WALK_JS
                 + " return new RegExp(pattern, flags).test(pageText()); }")


def page_text(page) -> str:
    return page.evaluate(_PAGE_TEXT_JS)


def wait_text(page, pattern: str, timeout_s: float = 60, flags: str = "") -> re.Match:
    """Wait until the page text matches the JavaScript/Python regex ``pattern``; the match."""
    try:
        page.wait_for_function(_WAIT_TEXT_JS, arg=[pattern, flags], polling=250,
                               timeout=timeout_s * 1000)
    except Exception as err:
        text = page_text(page)
        raise AssertionError(f"{pattern!r} did not appear within {timeout_s} s "
                             f"({type(err).__name__}); page text: {text[-6000:]}") from None
    match = re.search(pattern, page_text(page))
    assert match is not None, pattern
    return match


def poll(fn, timeout_s: float = 60, interval_s: float = 0.25, what: str = "condition"):
    """Call ``fn`` until it returns something truthy (returned) or time runs out (fail)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout_s} s (last: {value!r})")
        time.sleep(interval_s)


def assert_no_traceback(page) -> None:
    text = page_text(page)
    match = TRACEBACK.search(text)
    assert match is None, f"error text on the page: ...{text[max(0, match.start() - 200):
                                                                match.end() + 300]}..."


def screenshot(page, name: str, full_page: bool = False) -> Path:
    """Save the page (the viewport, or all of it) to test-artifacts/<name>.png; the path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def blur(page) -> None:
    """Take the keyboard focus off whatever has it (through shadow roots), so that the next
    keys go to the page's shortcuts, not into a text box."""
    page.evaluate("""() => {
      let el = document.activeElement;
      while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
      if (el && el.blur) el.blur();
    }""")


def tabulator_column(table, field: str) -> list[str]:
    """Texts of column ``field`` in every row of the Tabulator inside locator ``table``, in
    order. Tabulator renders only the rows near the visible ones (virtual DOM), so its holder
    is scrolled from top to bottom and back to where it was."""
    holder = table.locator(".tabulator-tableholder").first
    cells = table.locator(f'.tabulator-row [tabulator-field="{field}"]')
    start = holder.evaluate("el => el.scrollTop")
    seen: dict[str, None] = {}

    def read_at(top: int) -> tuple[int, int]:
        holder.evaluate("(el, top) => { el.scrollTop = top; }", top)
        table.page.wait_for_timeout(250)  # Tabulator redraws on the scroll event
        for text in cells.all_text_contents():  # not innerText: a hidden cell has none
            seen.setdefault(text.strip(), None)
        return holder.evaluate("el => [el.clientHeight, el.scrollHeight]")

    try:
        top = 0
        height, bottom = read_at(top)
        while height > 0 and top + height < bottom:
            top += max(height // 2, 1)
            height, bottom = read_at(top)
        read_at(bottom)  # the last rows, whatever the rounding
    finally:
        holder.evaluate("(el, top) => { el.scrollTop = top; }", start)
    return list(seen)
