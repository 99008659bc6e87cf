"""/healthz tells the truth from the first answer: `pending == 0` only once every file seen is
searchable (also during the first bulk index, in `searchd serve` and in `searchd web` reading
what `searchd watch` reports), `progress` counts a bulk index, the search page says it is
indexing, and without the token /healthz names no file, folder or process."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from searchd.engines.whoosh import WhooshEngine
from searchd.engines.whoosh.store import read_status
from searchd.watcher import Daemon
from searchd.web import PUBLIC_HEALTH, create_app

from .conftest import REPO
from .daemon_helpers import eventually, make_config

FILES = 3000


def _many_files(folder: Path, count: int = FILES) -> None:
    """Articles of about 500 bytes, so that indexing them takes seconds (a start-up to watch)."""
    words = "tide harbour ferry crane quay cargo pilot buoy anchor vessel berth dredge".split()
    rng = random.Random(2)
    for n in range(count):
        path = folder / f"d{n % 20}" / f"f{n}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Every text its own: no two may be folded as near-duplicates of each other.
        body = " ".join(rng.choice(words) + str(rng.randrange(1000)) for _ in range(60))
        path.write_text(f"Report {n}\n\nHarbour report number {n}, token{n}, on the tides. {body}\n", encoding="utf-8")


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            return response.status, json.loads(body) if response.headers.get_content_type() == "application/json" else body.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "searchd", *args], stdout=subprocess.DEVNULL,
                            stderr=log.open("wb"), cwd=REPO, env={**os.environ, "SEARCHD_LOG_LEVEL": "INFO"})


def _base_url(proc: subprocess.Popen, log: Path) -> str:
    """The address a server started with --port 0 says it serves on."""
    def announced() -> str | None:
        assert proc.poll() is None, f"searchd exited with {proc.returncode}: {log.read_text()}"
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)/", log.read_text())
        return found.group(1) if found else None

    return eventually(announced, timeout=60, interval=0.01)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _poll_until_nothing_pending(base: str) -> tuple[dict, list[dict], list[str]]:
    """/healthz every few milliseconds from the first answer until pending is 0; the search page
    too while a bulk index runs. Returns the first answer with pending 0, every answer before it,
    and the page's indexing notices seen. (Answers of a `searchd web` before any indexer has
    written a status say "no index": nothing has been seen yet, by anyone; they are skipped.)"""
    seen: list[dict] = []
    notices: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status, health = _get(f"{base}/healthz")
        assert status == 200, health
        if health["status"] == "no index" and not seen:
            time.sleep(0.003)
            continue
        if health["pending"] == 0:
            return health, seen, notices
        seen.append(health)
        if health.get("progress") and len(notices) < 3:
            page = _get(f"{base}/search?q=harbour")[1]
            notices += re.findall(r"Indexing [\d,]+ of [\d,]+ articles…", page)
        time.sleep(0.003)
    raise AssertionError(f"pending never reached 0; last answer {seen[-1] if seen else None}")


def _assert_first_zero_is_the_whole_folder(base: str, first_zero: dict, before: list[dict], notices: list[str]) -> None:
    # Searchable now, not just counted: the search that follows the answer finds every file.
    total = _get(f"{base}/api/search?q=harbour")[1]["total"]
    assert total == FILES, f"first pending=0 answer {first_zero}, but a search finds {total} of {FILES}"
    assert first_zero["documents"] == FILES, first_zero
    assert first_zero["progress"] in (None, {"done": FILES, "total": FILES}) and first_zero["status"] == "ok"
    assert before, "the first answer already had nothing pending: the start-up was not observed"
    assert all(answer["pending"] > 0 for answer in before)
    progress = [answer["progress"] for answer in before if answer.get("progress")]
    assert progress and all(p["total"] == FILES and 0 <= p["done"] <= FILES for p in progress), progress[-3:]
    assert any(p["done"] < FILES for p in progress), "no answer caught the bulk index under way"
    assert all(a["pending"] >= a["progress"]["total"] - a["progress"]["done"] for a in before if a.get("progress"))
    assert notices and all(notice.endswith(f"of {FILES:,} articles…") for notice in notices), notices


@pytest.mark.slow
def test_serve_says_nothing_is_pending_only_once_every_file_is_searchable(tmp_path: Path, procs) -> None:
    folder, log = tmp_path / "articles", tmp_path / "serve.log"
    _many_files(folder)
    proc = _start(["serve", str(folder), "--index", str(tmp_path / "index"), "--port", "0"], log)
    procs.append(proc)
    base = _base_url(proc, log)
    first_zero, before, notices = _poll_until_nothing_pending(base)
    _assert_first_zero_is_the_whole_folder(base, first_zero, before, notices)
    # The bulk index winds up (segments settle) a moment after its last commit; then the page
    # stops saying it is indexing.
    def page_done() -> str | None:
        page = _get(f"{base}/search?q=harbour")[1]
        return page if "Indexing" not in page else None

    assert f"{FILES:,} results" in eventually(page_done, timeout=30)


@pytest.mark.slow
def test_web_reading_what_watch_reports_says_nothing_is_pending_only_once_every_file_is_searchable(
        tmp_path: Path, procs) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    _many_files(folder)
    # The web server first (as systemd may start them), so that it answers through the whole
    # start-up of the indexer.
    log = tmp_path / "web.log"
    web = _start(["web", "--index", str(index_dir), "--port", "0"], log)
    procs.append(web)
    base = _base_url(web, log)
    assert _get(f"{base}/healthz")[1]["status"] == "no index"
    watch = _start(["watch", str(folder), "--index", str(index_dir)], tmp_path / "watch.log")
    procs.append(watch)
    first_zero, before, notices = _poll_until_nothing_pending(base)
    assert before[0]["status"] == "indexing" and read_status(index_dir)["pid"] == watch.pid
    _assert_first_zero_is_the_whole_folder(base, first_zero, before, notices)


def test_a_writer_that_has_reported_nothing_yet_is_indexing_not_done(tmp_path: Path) -> None:
    """A new index exists (empty) a moment before its daemon's first report, and `searchd index`
    never reports: a web server reading that index must not answer "nothing pending" then."""
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    folder.mkdir()
    client = create_app(make_config(folder, index_dir)).test_client()
    assert client.get("/healthz").get_json()["status"] == "no index"
    writer = WhooshEngine(index_dir).open_writer()  # what a starting daemon does first
    try:
        health = client.get("/healthz").get_json()
        assert health["status"] == "indexing" and health["pending"] > 0 and health["documents"] == 0, health
    finally:
        writer.close()
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["pending"] == 0, health


def test_without_the_token_healthz_names_no_file_folder_or_process(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    (folder / "hostile").mkdir(parents=True)
    (folder / "hostile" / "bad.json").write_text('{"title": "broken', encoding="utf-8")
    (folder / "a.txt").write_text("Tides\n\nThe harbour tides.\n", encoding="utf-8")
    daemon = Daemon(make_config(folder, tmp_path / "index", token="health-token")).start()
    try:
        assert daemon.wait_until_caught_up(30)
        client = create_app(daemon.config, status=daemon.status).test_client()
        anonymous = client.get("/healthz")
        assert anonymous.status_code == 200
        public = anonymous.get_json()
        assert set(public) == set(PUBLIC_HEALTH)
        assert public["status"] == "ok" and public["documents"] == 1 and public["pending"] == 0
        body = anonymous.get_data(as_text=True)
        for secret in ("bad.json", "hostile", str(folder), str(tmp_path), str(os.getpid())):
            assert secret not in body, secret
        wrong = client.get("/healthz", headers={"Authorization": "Bearer nope"}).get_json()
        assert set(wrong) == set(PUBLIC_HEALTH)
        full = client.get("/healthz", headers={"Authorization": "Bearer health-token"}).get_json()
        assert full["folder"] == str(folder.resolve()) and full["pid"] == os.getpid()
        assert "hostile/bad.json" in full["skipped"]
    finally:
        daemon.stop()
