"""The server opens only the paths it was started with, and binds 127.0.0.1 by default.

Two parts: :class:`spikeviz.app.roots.Roots` refuses every way out of the started roots
(``..``, symbolic links, absolute paths, NUL bytes); and a real ``spikeviz serve`` process
answers query parameters and traversal URLs without ever returning a file from outside.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from spikeviz.app.cli import build_parser
from spikeviz.app.roots import Roots
from spikeviz.errors import InputError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path):
    """root/ (data, sub/inner.txt, link_out -> outside/secret.txt), outside/secret.txt."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "data.npy").write_bytes(b"x")
    (root / "sub" / "inner.txt").write_text("inner")
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside / "secret.txt", root / "link_out")
    os.symlink(outside, root / "dir_out")
    os.symlink(root / "sub" / "inner.txt", root / "link_in")
    return root, outside


def test_paths_inside_a_root_resolve(tree):
    root, _ = tree
    roots = Roots([root])
    assert roots.resolve(root / "data.npy") == (root / "data.npy").resolve()
    assert roots.resolve("sub/inner.txt") == (root / "sub" / "inner.txt").resolve()
    assert roots.resolve(root / "sub" / ".." / "data.npy") == (root / "data.npy").resolve()
    assert roots.resolve(root / "link_in") == (root / "sub" / "inner.txt").resolve()
    assert roots.resolve(root) == root.resolve()
    assert roots.allows(root / "new_file_not_yet_written.nwb")


@pytest.mark.parametrize("escape", [
    "../outside/secret.txt",  # relative .. (taken against the root, not the cwd)
    "sub/../../outside/secret.txt",
    "link_out",  # a link inside pointing outside
    "dir_out/secret.txt",  # through a linked folder
    "/etc/passwd",  # absolute
    "..",
    "../root_sibling",  # a sibling whose name starts like the root
])
def test_escapes_are_refused(tree, escape):
    root, _ = tree
    roots = Roots([root])
    with pytest.raises(InputError, match="outside the paths this server was started with"):
        roots.resolve(escape)
    assert not roots.allows(escape)


def test_absolute_path_outside_and_prefix_sibling(tree, tmp_path):
    root, outside = tree
    sibling = tmp_path / "root2"  # shares the prefix "root" but is not inside it
    sibling.mkdir()
    roots = Roots([root])
    assert not roots.allows(outside / "secret.txt")
    assert not roots.allows(sibling)
    assert not roots.allows(str(root) + "2")


def test_file_root_allows_only_that_file(tree):
    root, _ = tree
    roots = Roots([root / "data.npy"])
    assert roots.resolve(root / "data.npy") == (root / "data.npy").resolve()
    assert not roots.allows(root / "sub" / "inner.txt")
    assert not roots.allows("sub/inner.txt")


@pytest.mark.parametrize("bad", ["", "a\0b", None, 3])
def test_not_a_path(tree, bad):
    with pytest.raises(InputError):
        Roots([tree[0]]).resolve(bad)


def test_server_binds_this_machine_only_by_default():
    args = build_parser().parse_args(["serve", "somewhere"])
    assert args.address == "127.0.0.1" and args.port == 5006
    args = build_parser().parse_args(["demo"])
    assert args.address == "127.0.0.1"


def test_app_code_reads_nothing_from_the_url():
    """No module of the app layer reads query arguments, cookies or headers of the request."""
    offenders = []
    for path in (REPO / "spikeviz" / "app").glob("*.py"):
        text = path.read_text()
        for needle in ("session_args", "query_params", "location.search", "cookies",
                       "headers", "request.arguments"):
            if needle in text:
                offenders.append(f"{path.name}: {needle}")
    assert offenders == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outward_address() -> str | None:
    """This machine's non-loopback IPv4 address, if any (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            host = s.getsockname()[0]
        except OSError:
            return None
    return None if host.startswith("127.") or host == "0.0.0.0" else host


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _websocket_opens(port: int, origin_host: str) -> bool:
    """Whether the server's websocket accepts a page served as ``origin_host:port``."""
    import asyncio
    import re

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    page = _get(f"http://127.0.0.1:{port}/")[1].decode()
    token = re.search(r'"token":\s*"([^"]+)"', page) or re.search(r"token\W+([\w.-]+)", page)
    assert token, "no session token in the page"

    async def connect():
        request = HTTPRequest(f"ws://127.0.0.1:{port}/ws",
                              headers={"Origin": f"http://{origin_host}:{port}"})
        try:
            connection = await websocket_connect(request, subprotocols=["bokeh", token[1]])
        except Exception:
            return False
        connection.close()
        return True

    return asyncio.run(connect())


def test_websocket_origins():
    from spikeviz.app.serve import websocket_origins

    assert websocket_origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]
    assert websocket_origins("10.1.2.3", 80) == ["10.1.2.3:80"]
    assert websocket_origins("::1", 7, ["lab.example.org", "proxy:443"])[-2:] == [
        "lab.example.org:7", "proxy:443"]
    wide = websocket_origins("0.0.0.0", 5006)
    assert "localhost:5006" in wide and socket.gethostname() + ":5006" in wide


def test_served_app_never_returns_a_file_from_outside(tmp_path):
    """A real `spikeviz serve` on a tiny Phy folder; traversal URLs and query parameters."""
    pytest.importorskip("panel")
    from spikeviz.datasets import generate_to_folder

    data = generate_to_folder(tmp_path / "data", duration_s=2.0, num_channels=4, num_units=3)
    token = secrets.token_hex(16)
    secret = tmp_path / "secret.txt"
    secret.write_text(token)
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "spikeviz", "serve", str(data), "--port",
                             str(port)], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if _get(base + "/")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        rel = os.path.relpath(secret, "/")
        urls = [
            f"/?path={secret}", f"/?file={secret}&recording={secret}",
            f"/static/../../../../../../{rel}", f"/static/%2e%2e/%2e%2e/%2e%2e/{rel}",
            f"/static/..%2f..%2f..%2f..%2f..%2f{rel}", f"/{secret}", f"//{secret}",
            f"/components/../../../../../../{rel}", f"/panel_dist/../../../../{rel}",
            f"/static/extensions/..%2f..%2f..%2f..%2f{rel}",
        ]
        for url in urls:
            status, body = _get(base + url)
            assert token.encode() not in body, f"{url} returned the secret"
        # the page shown for a query parameter is still the started session's
        status, body = _get(base + f"/?path={secret}")
        assert status == 200 and str(secret).encode() not in body
        # the websocket accepts this machine's loopback names (localhost included), not others
        assert _websocket_opens(port, "127.0.0.1") and _websocket_opens(port, "localhost")
        assert not _websocket_opens(port, "evil.example")
        # nothing listens on the machine's other addresses (when it has one)
        host = _outward_address()
        if host is not None:
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((host, port)) != 0, f"the server answers on {host}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
