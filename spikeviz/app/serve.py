"""Serve the dashboard with Panel's server on one address, blocking like ``panel serve``.

The Session is loaded once, before the server starts; every browser session then gets a new
dashboard (new views, new Selection) over that same Session, whose arrays are never modified,
and the Session's one Curation.

Security: the only paths opened are those of the command line, before any browser connects.
The page reads nothing from the URL (no query parameter, cookie or widget names a file), no
static folder is served, the server binds 127.0.0.1 unless told otherwise and accepts
websockets only from pages it served itself. Code that must turn a user-supplied string into
a path uses :class:`spikeviz.app.roots.Roots`.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from ..errors import InputError
from ..model.session import Session

log = logging.getLogger(__name__)


def warm_up(session: Session, views: bool = True) -> float:
    """Do the one-off work of a first render now: numba kernels, datashader, derived arrays.

    Builds the raster's shared arrays for ``session`` (seconds, rows, depth order), the
    sorting's per-unit order, renders a tiny ``rasterize`` so datashader's kernels are
    compiled, and calls the compute kernels once (correlograms, snippets, amplitudes). With
    ``views``, also builds one dashboard offscreen with the first units selected and every
    view active (:func:`warm_views`), so that each view's own code paths and the session's
    derived results for those units are ready. Returns the time taken, in seconds.
    """
    import datashader as ds
    import holoviews as hv
    import numpy as np
    import pandas as pd
    from holoviews.operation.datashader import rasterize

    from ..views.raster import _ensure_bokeh_backend, raster_data

    start = time.perf_counter()
    _ensure_bokeh_backend()
    tiny = pd.DataFrame({"time_s": np.array([0.0, 0.5, 1.0]),
                         "row": np.array([0, 1, 1], dtype=np.float32)})
    rasterize(hv.Points(tiny, kdims=["time_s", "row"]), dynamic=False, aggregator=ds.count(),
              x_range=(0.0, 1.0), y_range=(-0.5, 1.5), width=4, height=2, pixel_ratio=1)
    sorting = session.sorting
    if sorting.num_units:
        sorting.spike_indices(sorting.unit_ids[0])  # builds the per-unit order once
    raster_data(session)
    from ..compute import warm_up_kernels
    warm_up_kernels()
    if views:
        warm_views(session)
    return time.perf_counter() - start


def warm_views(session: Session, num_units: int = 2) -> None:
    """Build one dashboard offscreen, select the first units, refresh every view, dispose.

    Runs each view's data path once (and whatever kernels it calls) on the real session;
    a view that fails here is logged, not fatal: the server still starts.
    """
    from .dashboard import Dashboard
    from .layout import set_active

    dashboard = Dashboard(session)
    try:
        units = dashboard.curation.sorting.unit_ids[:num_units].tolist()
        if units:
            dashboard.selection.unit_ids = units
        for name, view in dashboard.views.items():
            try:
                set_active(view, True)
                refresh = getattr(view, "refresh", None)
                if refresh is not None:
                    refresh()
            except Exception as err:  # one line: the server still starts
                log.warning("warming the %s view failed: %s: %s", name, type(err).__name__, err)
                log.debug("warm-up failure", exc_info=True)
        # render once, with data, after every change: plots are built but never updated
        # (updating a rendered plot outside a server's event loop is not possible)
        try:
            dashboard.__panel__().get_root()
        except Exception as err:
            log.warning("rendering the warm-up dashboard failed: %s: %s", type(err).__name__,
                        err)
            log.debug("warm-up failure", exc_info=True)
    finally:
        dashboard.dispose()


_SESSIONS: dict[tuple, Session] = {}
_SESSIONS_LOCK = threading.Lock()


def shared_session(path, recording=None, sampling_frequency=None, warm: bool = True,
                   **reader_kwargs) -> Session:
    """The Session of ``path`` for this server process: loaded (and warmed) once, then shared.

    ``panel serve`` runs an app script once per browser session; the script asks for its
    session here, so every browser session of the process shows (and curates) the same
    Session. Only the paths given by the server's command line reach this function.
    """
    from .. import load

    key = (os.path.realpath(path), None if recording is None else os.path.realpath(recording),
           sampling_frequency, tuple(sorted(reader_kwargs.items())))
    return _shared(key, lambda: load(path, sampling_frequency=sampling_frequency,
                                     recording=recording, **reader_kwargs), warm)


def precompute_in_background(session: Session):
    """Start computing, at low priority, what a first click would otherwise wait for (the
    Features view's projections of every unit; see :func:`.precompute.start_background`).
    Returns the thread, or None when everything is in the cache already."""
    from .precompute import start_background

    def done(error):
        if error is None:
            print("spikeviz: background precompute finished", flush=True)
        else:
            print(f"spikeviz: background precompute failed: {error}", flush=True)

    thread = start_background(session, on_done=done)
    if thread is not None:
        print("spikeviz: precomputing feature projections in the background (low priority)",
              flush=True)
    return thread


def shared_demo_session(warm: bool = True) -> Session:
    """The demo's synthetic Session for this server process (``apps/demo.py``)."""
    from ..datasets import demo_session

    return _shared(("demo",), demo_session, warm)


def _shared(key: tuple, loader: Callable[[], Session], warm: bool) -> Session:
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            session = loader()
            _ = session.curation  # take the curation log now: a log held elsewhere fails at start
            if warm:
                seconds = warm_up(session)
                print(f"spikeviz: prepared {session!r} in {seconds:.1f} s", flush=True)
                precompute_in_background(session)
            _SESSIONS[key] = session
        return session


class SessionPool:
    """Browser sessions of one served app, built before a page asks for one.

    Building a session (the dashboard's views, the template, their Bokeh models) takes about
    a second; a page request that finds a prepared session gets its page at once, and the
    browser loads the scripts and pulls the document while nothing else runs on the server.
    ``take()`` hands out a prepared session (waiting for the one being built, if any, which
    is sooner than starting one); the next one is built ``settle_s`` after that page has
    drawn its document (or ``connect_timeout_s`` after it was handed out, if it never does),
    so that building it does not compete with the page it replaces. A prepared session is
    kept from Bokeh's expiry of unused sessions until then.

    Each session is a real Bokeh server session (its own Document and session context), made
    by the application context exactly as a page request would make it; the page then gets a
    fresh token for it (``ServerSession.token``).
    """

    def __init__(self, tornado_app, app_path: str = "/", size: int = 1,
                 settle_s: float = 2.0, connect_timeout_s: float = 30.0):
        self._tornado = tornado_app
        self.context = tornado_app.applications[app_path]
        self.app_path = app_path
        self.size = int(size)
        self.settle_s = float(settle_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self._ready: list = []
        self._building = None  # asyncio.Task of fill()
        self._watching: set = set()  # tasks of _handed_out()

    @property
    def ready(self) -> int:
        """Prepared sessions waiting for a page."""
        return sum(not s.destroyed for s in self._ready)

    def usable(self) -> bool:
        """Whether ``ServerSession.token`` makes tokens this server accepts: it signs them
        with Bokeh's settings, so the server must use the same key and signing."""
        from bokeh.settings import settings

        return (self._tornado.secret_key == settings.secret_key_bytes()
                and bool(self._tornado.sign_sessions) == bool(settings.sign_sessions()))

    def fill_soon(self):
        """Start building sessions up to ``size`` (unless already building); the task."""
        import asyncio

        if self._building is None or self._building.done():
            self._building = asyncio.ensure_future(self.fill())
        return self._building

    async def fill(self) -> None:
        """Build sessions, one at a time, until ``size`` are ready (a failure stops it)."""
        while self.ready < self.size:
            session = await self._build()
            if session is None:
                return
            self._ready.append(session)

    async def _build(self):
        from bokeh.util.token import generate_session_id
        from tornado.httputil import HTTPServerRequest

        session_id = generate_session_id(secret_key=self._tornado.secret_key,
                                         signed=self._tornado.sign_sessions)
        # the request the session is made for: the page's own path and nothing else (the
        # dashboard reads nothing from a request); the page's token comes from the session
        request = HTTPServerRequest(method="GET", uri=self.app_path)
        try:
            session = await self.context.create_session_if_needed(session_id, request)
        except Exception as err:  # pages then get sessions built on request, as usual
            log.warning("preparing a browser session failed: %s: %s", type(err).__name__, err)
            log.debug("session preparation failure", exc_info=True)
            return None
        session.block_expiration()
        return session

    async def take(self):
        """A prepared session for a page request, or None (then the page builds its own)."""
        import asyncio

        if not self.ready and self._building is not None and not self._building.done():
            try:
                await asyncio.shield(self._building)
            except Exception:  # the page builds its own session
                log.exception("preparing a browser session failed")
        self._ready = [s for s in self._ready if not s.destroyed]
        if not self._ready:
            return None
        session = self._ready.pop(0)
        task = asyncio.ensure_future(self._handed_out(session))
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)
        return session

    def close(self) -> None:
        """Let Bokeh discard the sessions still waiting (the server is stopping)."""
        for session in self._ready:
            if not session.destroyed:
                session.unblock_expiration()
        self._ready.clear()

    async def _handed_out(self, session) -> None:
        """Once the page has drawn its document (Bokeh's ``document_ready``) or gave up, let
        Bokeh expire the session as any other, and build the next one."""
        import asyncio

        drawn = asyncio.Event()
        try:
            session.document.on_event("document_ready", lambda event: drawn.set())
            await asyncio.wait_for(drawn.wait(), timeout=self.connect_timeout_s)
            await asyncio.sleep(self.settle_s)
        except TimeoutError:
            pass
        except Exception:  # never leave the pool empty for a failure here
            log.exception("following a prepared session failed")
        if not session.destroyed:
            session.unblock_expiration()
        self.fill_soon()


_POOLS: dict = {}  # ApplicationContext -> SessionPool, for the page handler


def _prepared_doc_handler():
    """Panel's page handler, taking the page's session from the app's :class:`SessionPool`."""
    from panel.io.server import DocHandler

    class PreparedDocHandler(DocHandler):
        async def get_session(self):
            pool = _POOLS.get(self.application_context)
            session = None if pool is None else await pool.take()
            if session is None:
                session = await super().get_session()
            return session

    return DocHandler, PreparedDocHandler


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


_LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def websocket_origins(address: str, port: int, extra=()) -> list[str]:
    """The ``host:port`` origins whose pages may open the dashboard's websocket.

    A loopback bind accepts ``127.0.0.1`` and ``localhost``; a wildcard
    bind (``0.0.0.0`` / ``::``) also this machine's host names and addresses; any other
    address accepts itself. ``extra``: more ``host[:port]`` origins (``--allow-websocket-origin``,
    e.g. a name behind a proxy); without a port they get ``port``. IPv6 literals are left
    out: Bokeh's origin check does not accept them (use a host name).
    """
    import socket

    host = _url_host(address)
    hosts = [host]
    if address in ("127.0.0.1", "::1", "localhost") or address.startswith("127."):
        hosts += list(_LOOPBACK_NAMES)
    elif address in ("0.0.0.0", "::", ""):
        hosts += list(_LOOPBACK_NAMES)
        names = {socket.gethostname(), socket.getfqdn()}
        for name in sorted(n for n in names if n):
            hosts.append(name)
            try:
                infos = socket.getaddrinfo(name, None)
            except OSError:
                continue
            hosts += sorted({_url_host(info[4][0]) for info in infos})
    origins = []
    for h in hosts:
        if ":" in h:  # Bokeh's origin check takes host names and IPv4 addresses only
            continue
        origin = f"{h}:{port}"
        if origin not in origins:
            origins.append(origin)
    for item in extra:
        item = str(item).strip()
        if item and not item.rsplit(":", 1)[-1].isdigit():
            item = f"{item}:{port}"
        if item and item not in origins:
            origins.append(item)
    return origins


def serve(session_factory: Callable[[], Session], port: int = 5006,
          address: str = "127.0.0.1", show: bool = False, title: str = "spikeviz",
          warm: bool = True, allow_websocket_origin=(), prepared_sessions: int = 1) -> None:
    """Serve the dashboard at http://address:port/ until SIGINT or SIGTERM.

    ``session_factory`` is called once, here, before the server starts. Only ``address`` is
    bound and only pages served from :func:`websocket_origins` may open the websocket
    (``allow_websocket_origin`` adds more). With ``warm``,
    datashader and the session's derived arrays are prepared, and one dashboard is built,
    before the first browser connects. ``prepared_sessions`` browser sessions are kept built
    ahead of the page requests (:class:`SessionPool`; 0: each page builds its own); "serving
    at" is printed once the first one is ready. Blocks (``threaded=False``); returns after a
    clean shutdown.
    """
    import panel as pn

    from .dashboard import build_dashboard

    session = session_factory()
    if not isinstance(session, Session):
        raise InputError(f"the session factory returned {type(session).__name__}, not a "
                         f"spikeviz Session", field="session_factory")
    _ = session.curation  # take the curation log now: a log held elsewhere fails at start
    if warm:
        seconds = warm_up(session)
        print(f"spikeviz: prepared {session!r} in {seconds:.1f} s", flush=True)
        precompute_in_background(session)

    def app():
        return build_dashboard(session, title=title)

    host = _url_host(address)
    from bokeh.server import urls

    saved = list(urls.per_app_patterns)
    if prepared_sessions > 0:  # the app's routes are made when the server is: patch them then
        panel_handler, handler = _prepared_doc_handler()
        urls.per_app_patterns[:] = [(p[0], handler, *p[2:]) if p[1] is panel_handler else p
                                    for p in saved]
    try:
        # a prepared session warms everything Panel's warm-up session would
        server = pn.serve({"/": app}, port=port, address=address,
                          websocket_origin=websocket_origins(address, port,
                                                             allow_websocket_origin),
                          show=show, start=False, title=title, verbose=False,
                          threaded=False, warm=warm and prepared_sessions <= 0)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {address} is already in use; choose another "
                             f"with --port", field="port") from None
        raise
    finally:
        urls.per_app_patterns[:] = saved

    pool = None
    if prepared_sessions > 0:
        pool = SessionPool(server._tornado, "/", size=prepared_sessions)
        if pool.usable():
            _POOLS[pool.context] = pool
        else:
            log.warning("the server signs its session tokens with its own key: browser "
                        "sessions are built on request")
            pool = None
    loop = server.io_loop

    def _stop(signum, frame):
        loop.asyncio_loop.call_soon_threadsafe(loop.stop)

    previous = {}
    if threading.current_thread() is threading.main_thread():  # signals reach only that one
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    url = f"http://{host}:{port}/"

    async def announce():
        if pool is not None:
            t0 = time.perf_counter()
            await pool.fill_soon()
            if pool.ready:
                print(f"spikeviz: prepared a browser session in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
        print(f"spikeviz: serving at {url} (Ctrl+C to stop)", flush=True)

    try:
        server.start()
        loop.add_callback(announce)
        loop.start()
    finally:
        print("spikeviz: shutting down", file=sys.stderr, flush=True)
        if pool is not None:
            _POOLS.pop(pool.context, None)
            pool.close()
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
