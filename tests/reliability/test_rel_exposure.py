"""Exposure: a default `searchd serve` listens on loopback only; with --token every route but
/healthz and the page's own assets (which the login page needs) refuses a request that lacks the
token (401) and gives nothing away in the refusal."""

from __future__ import annotations

import base64
import socket
import urllib.parse
from pathlib import Path

import psutil
import pytest

from relkit import get

TOKEN = "correct horse battery staple"
PROTECTED = ["/", "/search?q=secretword", "/doc/news/a.txt", "/api/search?q=secretword", "/api/doc/news/a.txt",
             "/api/suggest?q=sec", "/api/similar/news/a.txt", "/api/openapi.json", "/search.atom?q=secretword",
             "/opensearch.xml", "/help", "/no/such/page", "/doc/../../etc/passwd"]
# The stylesheet, script and icon of the pages (the 401 page itself uses them): open, and only that.
ASSETS = ["/static/style.css", "/static/app.js", "/static/favicon.svg", "/favicon.ico"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exposure") / "articles"
    (root / "news").mkdir(parents=True)
    # Words that appear in no URL: a refusal that contained them would have leaked the article.
    (root / "news" / "a.txt").write_text("Classified Title\n\nThe body mentions secretword and hiddenbodytext.\n")
    return root


def test_default_bind_is_loopback_only(folder: Path, tmp_path: Path, spawn) -> None:
    server = spawn("serve", folder, tmp_path / "index")  # no --host: the default
    server.wait_ready()
    listening = {conn.laddr.ip for conn in psutil.Process(server.proc.pid).net_connections(kind="inet")
                 if conn.status == psutil.CONN_LISTEN}
    assert listening == {"127.0.0.1"}, listening
    outward = _outward_address()
    if outward:  # the same port on the machine's network address must refuse the connection
        with pytest.raises(OSError):
            socket.create_connection((outward, server.port), timeout=2).close()


def _outward_address() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_token_guards_every_route_but_healthz_and_assets(folder: Path, tmp_path: Path, spawn) -> None:
    server = spawn("serve", folder, tmp_path / "index", "--token", TOKEN)
    server.wait_ready().wait_caught_up()
    assert get(server.port, "/healthz").status == 200
    for asset in ASSETS:
        reply = get(server.port, asset)
        assert reply.status == 200 and b"secretword" not in reply.body and b"Classified" not in reply.body, asset
    assert get(server.port, "/static/../index/status.json").status == 404
    wrong = {
        "none": {},
        "wrong bearer": {"Authorization": "Bearer nope"},
        "prefix of the token": {"Authorization": "Bearer " + TOKEN[:-1]},
        "token plus more": {"Authorization": "Bearer " + TOKEN + "x"},
        "wrong basic": {"Authorization": "Basic " + base64.b64encode(b"user:nope").decode()},
        "garbage basic": {"Authorization": "Basic %%%"},
        "token as a query parameter": {},
        "empty bearer": {"Authorization": "Bearer "},
    }
    for route in PROTECTED:
        for label, headers in wrong.items():
            target = route + (("&" if "?" in route else "?") + urllib.parse.urlencode({"token": TOKEN}) if label.startswith("token as") else "")
            reply = get(server.port, target, headers=headers)
            assert reply.status == 401, (route, label, reply.status)
            assert b"hiddenbodytext" not in reply.body and b"Classified" not in reply.body
            assert b"Traceback" not in reply.body
            assert "www-authenticate" in reply.headers
    good = {
        "bearer": {"Authorization": "Bearer " + TOKEN},
        "basic password": {"Authorization": "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()},
    }
    for route in PROTECTED:
        for label, headers in good.items():
            reply = get(server.port, route, headers=headers)
            assert reply.status != 401 and reply.status < 500, (route, label, reply.status)
    found = get(server.port, "/api/search?q=secretword", headers=good["bearer"]).json()
    assert [hit["id"] for hit in found["hits"]] == ["news/a.txt"]


def test_token_from_environment_for_the_web_process(folder: Path, tmp_path: Path, spawn) -> None:
    index_dir = tmp_path / "index"
    spawn("watch", folder, index_dir).wait_caught_up()
    web = spawn("web", None, index_dir, env={"SEARCHD_TOKEN": TOKEN})
    web.wait_ready()
    assert get(web.port, "/api/search?q=secretword").status == 401
    assert get(web.port, "/api/search?q=secretword", headers={"Authorization": "Bearer " + TOKEN}).status == 200
    assert get(web.port, "/healthz").status == 200
