"""Prepared browser sessions: ``spikeviz serve`` builds a page's session before it is asked for.

A real server on a tiny Phy folder; pages are requested over HTTP and their documents pulled
over the websocket with Bokeh's client (as the browser does), then compared with the folder
read back by ``spikeviz.load``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page(base: str) -> tuple[str, str]:
    """(session id, token) of a page request, from the token the page embeds."""
    from bokeh.util.token import get_session_id

    with urllib.request.urlopen(base + "/", timeout=60) as response:
        html = response.read().decode()
    tokens = re.findall(r'"token":\s*"([^"]+)"', html)
    assert len(tokens) == 1, "the page embeds one session token"
    return get_session_id(tokens[0]), tokens[0]


async def _pull_document(base: str, token: str) -> tuple[dict, dict]:
    """Bokeh's PULL-DOC exchange over the page's websocket, as the browser does it: the
    document's JSON and its binary buffers by id (nothing is deserialized: the document holds
    model types only a browser knows)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = base.replace("http://", "ws://") + "/ws"
    ws = await websocket_connect(HTTPRequest(url), subprotocols=["bokeh", token])
    try:
        async def message() -> tuple[dict, dict]:
            header = json.loads(await ws.read_message())
            await ws.read_message()  # metadata
            content = json.loads(await ws.read_message())
            buffers = {}
            for _ in range(header.get("num_buffers", 0)):
                ref = json.loads(await ws.read_message())
                buffers[ref["id"]] = await ws.read_message()
            return header, content, buffers

        header, _, _ = await message()
        assert header["msgtype"] == "ACK"
        for frame in ({"msgid": "1", "msgtype": "PULL-DOC-REQ"}, {}, {}):
            await ws.write_message(json.dumps(frame))
        while True:
            header, content, buffers = await message()
            if header["msgtype"] == "PULL-DOC-REPLY":
                return content["doc"], buffers
    finally:
        ws.close()


def _objects(node, out: dict) -> dict:
    """Every serialized model of a document's JSON, by id."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "id" in node:
            out.setdefault(node["id"], node)
        for value in node.values():
            _objects(value, out)
    elif isinstance(node, list):
        for value in node:
            _objects(value, out)
    return out


def _array(value, buffers: dict) -> np.ndarray:
    if isinstance(value, list):
        return np.asarray(value)
    assert value["type"] == "ndarray", value
    data = value["array"]  # {"type": "bytes", "data": base64 text or {"id": buffer id}}
    data = data["data"] if isinstance(data, dict) and data.get("type") == "bytes" else data
    raw = buffers[data["id"]] if isinstance(data, dict) else base64.b64decode(data)
    return np.frombuffer(raw, dtype=value["dtype"]).reshape(value["shape"])


def _table_unit_ids(base: str, token: str) -> np.ndarray:
    """The unit ids of the unit table of the page's document."""
    doc, buffers = asyncio.run(_pull_document(base, token))
    models = _objects(doc, {})
    tables = [m for m in models.values() if m["name"].endswith("DataTabulator") and
              "spikeviz-unit-table" in m["attributes"].get("css_classes", [])]
    assert len(tables) == 1, "one unit table in the document"
    source = tables[0]["attributes"]["source"]
    source = models[source["id"]]
    entries = dict(source["attributes"]["data"]["entries"])
    return _array(entries["unit_id"], buffers)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`spikeviz serve` on a 6-unit Phy folder: (base url, folder, printed lines)."""
    pytest.importorskip("panel")
    from spikeviz.datasets import generate_to_folder

    tmp = tmp_path_factory.mktemp("warm")
    folder = generate_to_folder(tmp / "phy", duration_s=3.0, num_channels=8, num_units=6)
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", SPIKEVIZ_DATA_DIR=str(tmp / "data"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "spikeviz", "serve", str(folder),
                                 "--port", str(port)], cwd=tmp, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while "serving at" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", folder, log_path.read_text().splitlines()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_session_is_prepared_before_the_server_says_it_serves(server):
    _, _, lines = server
    prepared = [i for i, line in enumerate(lines) if "prepared a browser session" in line]
    serving = [i for i, line in enumerate(lines) if "serving at" in line]
    assert prepared and serving and prepared[0] < serving[0], lines


def test_every_page_gets_its_own_complete_session(server):
    """Pages one after the other: each its own session (the first one prepared), whose
    unit table lists the folder's units in order."""
    import spikeviz as sv

    base, folder, _ = server
    expected = sv.load(folder, cache_dir=None).sorting.unit_ids
    ids = []
    for _ in range(3):
        session_id, token = _page(base)
        ids.append(session_id)
        np.testing.assert_array_equal(_table_unit_ids(base, token), expected)
    assert len(set(ids)) == 3, "no two pages share a session"


def test_a_page_request_never_joins_another_pages_session(server):
    """Two page requests before either connects: two sessions (the pool hands one out once)."""
    base, _, _ = server
    (first, token1), (second, token2) = _page(base), _page(base)
    assert first != second
    assert len(_table_unit_ids(base, token2)) == len(_table_unit_ids(base, token1)) == 6


def test_pool_refuses_a_server_with_its_own_signing_key():
    """``ServerSession.token`` signs with Bokeh's settings: a server with another key (or
    signing switched on) would refuse those tokens, so the pool is not used."""
    from types import SimpleNamespace

    from bokeh.settings import settings

    from spikeviz.app.serve import SessionPool

    same = SimpleNamespace(applications={"/": object()}, secret_key=settings.secret_key_bytes(),
                           sign_sessions=settings.sign_sessions())
    assert SessionPool(same).usable()
    other = SimpleNamespace(applications={"/": object()}, secret_key=b"x" * 32,
                            sign_sessions=True)
    assert not SessionPool(other).usable()


def test_server_start_precomputes_feature_projections_in_the_background(tmp_path, capsys):
    import spikeviz as sv
    from spikeviz.app.serve import precompute_in_background
    from spikeviz.datasets import generate_to_folder

    folder = generate_to_folder(tmp_path / "phy", duration_s=4.0, num_channels=8,
                                num_units=3, seed=5)
    session = sv.load(folder)
    assert not session.analysis.is_available("feature_projections")
    thread = precompute_in_background(session)
    assert thread is not None
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert session.analysis.is_available("feature_projections")
    out = capsys.readouterr().out
    assert "in the background" in out and "background precompute finished" in out
    assert precompute_in_background(session) is None  # nothing left to do
    bare = sv.Session(session.sorting, cache_dir=None)  # no recording: no features
    assert precompute_in_background(bare) is None
